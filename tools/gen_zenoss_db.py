"""Load Zenoss 4's databases, generated, into a MariaDB server: what a Zenoss 4 host's ``zenbackup`` dumps.

Three databases, each shaped like the real one (the DDL follows a real Zenoss 4.2 ``mysqldump`` of them and the
ZEP schema files of zenoss-zep; the data is made up):

``zenoss_zep`` (the event server, ZEP)
    lookup tables (``event_class``, ``agent``, ``monitor``, ...), ``event_summary`` and ``event_archive``
    (BINARY(16) UUIDs and BINARY(20) SHA-1 fingerprints: raw bytes that are no UTF-8; ``event_archive``
    partitioned by day on ``last_seen``), ``event_time`` (MyISAM), ``event_trigger`` and its subscriptions,
    ``event_detail_index_config``, ``daemon_heartbeat``, ``index_metadata``, the two index queues, ``config``,
    ``schema_version``; the triggers that fill the index queues (with a ``DEFINER``: ``zenoss@localhost`` by
    default, created on the server if missing, as on a Zenoss 4 host), the stored functions
    ``BINARY_UUID_TO_STR`` (a ``BEGIN ... END`` body: a dump needs ``DELIMITER``), ``BINARY_SHA1_TO_STR`` and
    ``UNIX_MS_TO_DATETIME``, and views using them (``v_event_summary``, ``v_daemon_heartbeat``,
    ``v_index_metadata``).
``zodb`` (the model: RelStorage, history-free as Zenoss runs it, so there is no ``current_object`` table)
    ``object_state`` (``state`` LONGBLOB: two ZODB pickles, class and state, with 8-byte binary oid references:
    NUL bytes, quotes, backslashes, newlines and bytes above 0x7f), ``new_oid``, ``object_ref``,
    ``object_refs_added``, ``pack_object``, ``blob_chunk`` (a foreign key to ``object_state``),
    ``connection_info`` (Zenoss's patch: MyISAM, latin1, stack traces), ``schema_version``.
``zodb_session`` (Zope sessions)
    the same RelStorage tables; zenbackup dumps it with ``--no-data``, so its rows must not arrive.

Sizes: ``rows`` is the number of ``event_archive`` rows; ``event_summary`` gets a fifth of it, ``object_state``
as many as ``rows``, each state about ``state_bytes`` long. The same arguments give the same data (a PRNG seeded
with ``seed``; timestamps derive from ``end``), so two loads have equal ``CHECKSUM TABLE`` values.

Usage: python tools/gen_zenoss_db.py [--host H --port P --user U | --socket S] [--rows N] [--seed N]
       [--state-bytes N] [--prefix P] [--definer USER@HOST] [--replace]
The password comes from the environment variable named by --password-env (default FERRY_MARIADB_PASSWORD), never
from the command line; host, port and user default to FERRY_MARIADB_HOST/_PORT/_USER. Prints a JSON summary:
each database's tables with their row counts, triggers, routines and views.
"""

import argparse
import hashlib
import json
import os
import random
import struct
import sys

import pymysql

__all__ = ["build_databases", "DEFAULT_END", "describe"]

DEFAULT_END = 1527854400  # 2018-06-01 12:00:00 UTC, as tools/gen_zenoss_bundle.py
DAY_MS = 86400 * 1000
ARCHIVE_DAYS = 8
BATCH = 500
DEVICE_KINDS = (("Server/Linux", "web"), ("Server/Linux", "db"), ("Network/Router/Cisco", "rtr"),
                ("Server/Windows", "win"))
EVENT_CLASSES = ("/Status/Ping", "/Perf/CPU", "/Perf/Filesystem", "/Status/Snmp", "/Change/Set",
                 "/Net/Link", "/App/Zenoss", "/Unknown")
AGENTS = ("zenping", "zenperfsnmp", "zensyslog", "zentrap", "zeneventlog", "zenhub", "zenmodeler")
MONITORS = ("localhost", "collector2")
SESSION_ROWS = 12
ZENPACK_CLASSES = ("Products.ZenModel.Device", "Products.ZenModel.IpInterface", "Products.ZenModel.FileSystem",
                   "Products.ZenRelations.ToManyContRelationship", "ZenPacks.zenoss.LinuxMonitor.LinuxDevice")


# -- schemas -------------------------------------------------------------------------------------------------

def _event_columns(summary):
    """The columns event_summary and event_archive share (event_archive has no fingerprint hashes)."""
    hashed = "  `fingerprint_hash` binary(20) NOT NULL COMMENT 'SHA-1 hash of the fingerprint.',\n" if summary else ""
    clear = "  `clear_fingerprint_hash` binary(20) DEFAULT NULL,\n" if summary else ""
    return f"""  `uuid` binary(16) NOT NULL,
{hashed}  `fingerprint` varchar(255) NOT NULL,
  `status_id` tinyint(4) NOT NULL,
  `event_group_id` int(11) DEFAULT NULL,
  `event_class_id` int(11) NOT NULL,
  `event_class_key_id` int(11) DEFAULT NULL,
  `event_class_mapping_uuid` binary(16) DEFAULT NULL,
  `event_key_id` int(11) DEFAULT NULL,
  `severity_id` tinyint(4) NOT NULL,
  `element_uuid` binary(16) DEFAULT NULL,
  `element_type_id` tinyint(4) DEFAULT NULL,
  `element_identifier` varchar(255) NOT NULL,
  `element_title` varchar(255) DEFAULT NULL,
  `element_sub_uuid` binary(16) DEFAULT NULL,
  `element_sub_type_id` tinyint(4) DEFAULT NULL,
  `element_sub_identifier` varchar(255) DEFAULT NULL,
  `element_sub_title` varchar(255) DEFAULT NULL,
  `update_time` bigint(20) NOT NULL,
  `first_seen` bigint(20) NOT NULL,
  `status_change` bigint(20) NOT NULL,
  `last_seen` bigint(20) NOT NULL,
  `event_count` int(11) NOT NULL,
  `monitor_id` int(11) DEFAULT NULL,
  `agent_id` int(11) DEFAULT NULL,
  `syslog_facility` int(11) DEFAULT NULL,
  `syslog_priority` tinyint(4) DEFAULT NULL,
  `nt_event_code` int(11) DEFAULT NULL,
  `current_user_uuid` binary(16) DEFAULT NULL,
  `current_user_name` varchar(32) DEFAULT NULL,
{clear}  `cleared_by_event_uuid` binary(16) DEFAULT NULL,
  `summary` varchar(255) NOT NULL DEFAULT '',
  `message` varchar(4096) NOT NULL DEFAULT '',
  `details_json` mediumtext,
  `tags_json` mediumtext,
  `notes_json` mediumtext,
  `audit_json` mediumtext,
"""


def _lookup_table(name, width):
    return (f"CREATE TABLE `{name}` (`id` int(11) NOT NULL AUTO_INCREMENT, `name` varchar({width}) NOT NULL, "
            f"PRIMARY KEY (`id`), UNIQUE KEY `name` (`name`)) ENGINE=InnoDB DEFAULT CHARSET=utf8")


def _archive_partitions(end_ms):
    first_day = end_ms // DAY_MS - ARCHIVE_DAYS + 1
    parts = ",\n ".join(f"PARTITION p{day:06d} VALUES LESS THAN ({(day + 1) * DAY_MS}) ENGINE = InnoDB"
                        for day in range(first_day, first_day + ARCHIVE_DAYS))
    return f"PARTITION BY RANGE (last_seen)\n({parts},\n PARTITION pmax VALUES LESS THAN MAXVALUE ENGINE = InnoDB)"


def zep_tables(end_ms):
    queue = ("CREATE TABLE `{name}` (`id` bigint(20) unsigned NOT NULL AUTO_INCREMENT, `uuid` binary(16) NOT NULL,"
             "{extra} `update_time` bigint(20) NOT NULL, PRIMARY KEY (`id`)) ENGINE=InnoDB DEFAULT CHARSET=latin1")
    return [
        "CREATE TABLE `schema_version` (`version` int(11) NOT NULL, `installed_time` datetime NOT NULL, "
        "PRIMARY KEY (`version`)) ENGINE=InnoDB DEFAULT CHARSET=utf8",
        _lookup_table("event_class", 128), _lookup_table("event_class_key", 128), _lookup_table("event_key", 128),
        _lookup_table("monitor", 128), _lookup_table("agent", 64), _lookup_table("event_group", 64),
        "CREATE TABLE `index_metadata` (`zep_instance` binary(16) NOT NULL, `index_name` varchar(32) NOT NULL, "
        "`index_version` int(11) NOT NULL, `index_version_hash` binary(20) DEFAULT NULL, "
        "PRIMARY KEY (`zep_instance`,`index_name`)) ENGINE=InnoDB DEFAULT CHARSET=utf8",
        "CREATE TABLE `event_summary` (\n" + _event_columns(True) + """  PRIMARY KEY (`uuid`),
  UNIQUE KEY `fingerprint_hash` (`fingerprint_hash`),
  KEY `element_uuid` (`element_uuid`,`element_type_id`,`element_identifier`),
  KEY `event_summary_clear_idx` (`clear_fingerprint_hash`,`status_id`,`last_seen`),
  KEY `event_summary_age_idx` (`severity_id`,`status_id`,`last_seen`),
  CONSTRAINT `fk_event_class_id` FOREIGN KEY (`event_class_id`) REFERENCES `event_class` (`id`),
  CONSTRAINT `fk_agent_id` FOREIGN KEY (`agent_id`) REFERENCES `agent` (`id`),
  CONSTRAINT `fk_monitor_id` FOREIGN KEY (`monitor_id`) REFERENCES `monitor` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8""",
        queue.format(name="event_summary_index_queue", extra=""),
        "CREATE TABLE `event_archive` (\n" + _event_columns(False)
        + "  PRIMARY KEY (`uuid`,`last_seen`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8\n" + _archive_partitions(end_ms),
        queue.format(name="event_archive_index_queue", extra=" `last_seen` bigint(20) NOT NULL,"),
        "CREATE TABLE `event_time` (`summary_uuid` binary(16) NOT NULL, `processed` bigint(20) NOT NULL, "
        "`created` bigint(20) NOT NULL, `first_seen` bigint(20) NOT NULL, KEY `processed` (`processed`)) "
        "ENGINE=MyISAM DEFAULT CHARSET=utf8",
        "CREATE TABLE `config` (`config_name` varchar(64) NOT NULL, `config_value` varchar(4096) NOT NULL, "
        "PRIMARY KEY (`config_name`)) ENGINE=InnoDB DEFAULT CHARSET=utf8 COMMENT='ZEP configuration data.'",
        "CREATE TABLE `event_trigger` (`uuid` binary(16) NOT NULL, `name` varchar(255) DEFAULT NULL, "
        "`enabled` tinyint(4) NOT NULL, `rule_api_version` tinyint(4) NOT NULL, `rule_type_id` tinyint(4) NOT NULL, "
        "`rule_source` varchar(8192) NOT NULL, PRIMARY KEY (`uuid`)) ENGINE=InnoDB DEFAULT CHARSET=utf8",
        "CREATE TABLE `event_trigger_subscription` (`uuid` binary(16) NOT NULL, "
        "`event_trigger_uuid` binary(16) NOT NULL, `subscriber_uuid` binary(16) NOT NULL, "
        "`delay_seconds` int(11) NOT NULL DEFAULT '0', `repeat_seconds` int(11) NOT NULL DEFAULT '0', "
        "`send_initial_occurrence` tinyint(4) NOT NULL, PRIMARY KEY (`uuid`), "
        "UNIQUE KEY `event_trigger_uuid` (`event_trigger_uuid`,`subscriber_uuid`), "
        "CONSTRAINT `fk_event_trigger_uuid` FOREIGN KEY (`event_trigger_uuid`) REFERENCES `event_trigger` (`uuid`) "
        "ON DELETE CASCADE) ENGINE=InnoDB DEFAULT CHARSET=utf8",
        "CREATE TABLE `event_trigger_signal_spool` (`uuid` binary(16) NOT NULL, "
        "`event_trigger_subscription_uuid` binary(16) NOT NULL, `event_summary_uuid` binary(16) NOT NULL, "
        "`flush_time` bigint(20) NOT NULL DEFAULT '0', `created` bigint(20) NOT NULL, "
        "`event_count` int(11) NOT NULL DEFAULT '1', `sent_signal` tinyint(4) NOT NULL DEFAULT '0', "
        "PRIMARY KEY (`uuid`), UNIQUE KEY `subscription_summary` (`event_trigger_subscription_uuid`,"
        "`event_summary_uuid`), CONSTRAINT `fk_event_summary_uuid` FOREIGN KEY (`event_summary_uuid`) "
        "REFERENCES `event_summary` (`uuid`) ON DELETE CASCADE, CONSTRAINT `fk_event_trigger_subscription_uuid` "
        "FOREIGN KEY (`event_trigger_subscription_uuid`) REFERENCES `event_trigger_subscription` (`uuid`) "
        "ON DELETE CASCADE) ENGINE=InnoDB DEFAULT CHARSET=utf8 COMMENT='Spool for event flapping.'",
        "CREATE TABLE `event_detail_index_config` (`detail_item_name` varchar(255) NOT NULL, "
        "`proto_json` mediumtext NOT NULL, PRIMARY KEY (`detail_item_name`)) ENGINE=InnoDB DEFAULT CHARSET=utf8",
        "CREATE TABLE `daemon_heartbeat` (`monitor` varchar(255) NOT NULL, `daemon` varchar(255) NOT NULL "
        "DEFAULT '', `timeout_seconds` int(11) NOT NULL, `last_time` bigint(20) NOT NULL, "
        "PRIMARY KEY (`monitor`,`daemon`)) ENGINE=InnoDB DEFAULT CHARSET=utf8 COMMENT='Daemon heartbeats.'",
    ]


ZEP_ROUTINES = [
    "CREATE FUNCTION BINARY_SHA1_TO_STR(sha1_hash BINARY(20)) RETURNS CHAR(40) DETERMINISTIC NO SQL "
    "RETURN IF(sha1_hash IS NOT NULL, LOWER(HEX(sha1_hash)), NULL)",
    "CREATE FUNCTION UNIX_MS_TO_DATETIME(epoch_millis BIGINT) RETURNS CHAR(23) DETERMINISTIC NO SQL "
    "RETURN CONCAT_WS('.', FROM_UNIXTIME(epoch_millis DIV 1000), LPAD(epoch_millis MOD 1000, 3, '0'))",
    # A body with ';' inside: a dump of it needs DELIMITER.
    """CREATE FUNCTION BINARY_UUID_TO_STR(uuid BINARY(16)) RETURNS CHAR(36) DETERMINISTIC NO SQL
BEGIN
  DECLARE str_uuid CHAR(32);
  SET str_uuid = IF(uuid IS NOT NULL, LOWER(HEX(uuid)), NULL);
  RETURN IF(uuid IS NOT NULL, CONCAT_WS('-', SUBSTR(str_uuid, 1, 8), SUBSTR(str_uuid, 9, 4),
            SUBSTR(str_uuid, 13, 4), SUBSTR(str_uuid, 17, 4), SUBSTR(str_uuid, 21, 12)), NULL);
END""",
]

ZEP_VIEWS = [
    "CREATE VIEW `v_index_metadata` AS SELECT BINARY_UUID_TO_STR(zep_instance) AS zep_instance, index_name, "
    "index_version, BINARY_SHA1_TO_STR(index_version_hash) AS index_version_hash FROM index_metadata",
    "CREATE VIEW `v_daemon_heartbeat` AS SELECT monitor, daemon, timeout_seconds, "
    "UNIX_MS_TO_DATETIME(last_time) AS last_time FROM daemon_heartbeat",
    "CREATE VIEW `v_event_summary` AS SELECT BINARY_UUID_TO_STR(s.uuid) AS uuid, "
    "BINARY_SHA1_TO_STR(s.fingerprint_hash) AS fingerprint_hash, s.fingerprint, s.status_id, "
    "c.name AS event_class, s.severity_id, s.element_identifier, s.element_sub_identifier, "
    "UNIX_MS_TO_DATETIME(s.first_seen) AS first_seen, UNIX_MS_TO_DATETIME(s.last_seen) AS last_seen, "
    "s.event_count, m.name AS monitor, a.name AS agent, s.summary FROM event_summary s "
    "JOIN event_class c ON c.id = s.event_class_id LEFT JOIN monitor m ON m.id = s.monitor_id "
    "LEFT JOIN agent a ON a.id = s.agent_id",
]


def zep_triggers(definer):
    """The index-queue triggers, each with the DEFINER clause a Zenoss 4 host has."""
    body = {"event_summary": "uuid=NEW.uuid, update_time=NEW.update_time",
            "event_archive": "uuid=NEW.uuid, last_seen=NEW.last_seen, update_time=NEW.update_time"}
    return [f"CREATE DEFINER={definer} TRIGGER `{table}_index_queue_{when.lower()}` AFTER {when} ON `{table}` "
            f"FOR EACH ROW BEGIN INSERT INTO `{table}_index_queue` SET {body[table]}; END"
            for table in ("event_summary", "event_archive") for when in ("INSERT", "UPDATE")]


RELSTORAGE_TABLES = [
    "CREATE TABLE `object_state` (`zoid` bigint(20) NOT NULL, `tid` bigint(20) NOT NULL, "
    "`state_size` bigint(20) NOT NULL, `state` longblob, PRIMARY KEY (`zoid`), KEY `object_state_tid` (`tid`)) "
    "ENGINE=InnoDB DEFAULT CHARSET=latin1 ROW_FORMAT=COMPRESSED",
    "CREATE TABLE `blob_chunk` (`zoid` bigint(20) NOT NULL, `chunk_num` bigint(20) NOT NULL, "
    "`tid` bigint(20) NOT NULL, `chunk` longblob NOT NULL, PRIMARY KEY (`zoid`,`chunk_num`), "
    "KEY `blob_chunk_lookup` (`zoid`), CONSTRAINT `blob_chunk_fk` FOREIGN KEY (`zoid`) "
    "REFERENCES `object_state` (`zoid`) ON DELETE CASCADE) ENGINE=InnoDB DEFAULT CHARSET=latin1",
    "CREATE TABLE `connection_info` (`connection_id` int(11) NOT NULL, `pid` int(11) NOT NULL, "
    "`info` varchar(60000) NOT NULL, `ts` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, "
    "PRIMARY KEY (`connection_id`), KEY `pid` (`pid`)) ENGINE=MyISAM DEFAULT CHARSET=latin1",
    "CREATE TABLE `new_oid` (`zoid` bigint(20) NOT NULL AUTO_INCREMENT, PRIMARY KEY (`zoid`)) "
    "ENGINE=MyISAM DEFAULT CHARSET=latin1",
    "CREATE TABLE `object_ref` (`zoid` bigint(20) NOT NULL, `to_zoid` bigint(20) NOT NULL, "
    "`tid` bigint(20) NOT NULL, PRIMARY KEY (`zoid`,`to_zoid`)) ENGINE=MyISAM DEFAULT CHARSET=latin1",
    "CREATE TABLE `object_refs_added` (`zoid` bigint(20) NOT NULL, `tid` bigint(20) NOT NULL, "
    "PRIMARY KEY (`zoid`)) ENGINE=MyISAM DEFAULT CHARSET=latin1",
    "CREATE TABLE `pack_object` (`zoid` bigint(20) NOT NULL, `keep` tinyint(1) NOT NULL, "
    "`keep_tid` bigint(20) NOT NULL, `visited` tinyint(1) NOT NULL DEFAULT '0', PRIMARY KEY (`zoid`), "
    "KEY `pack_object_keep_zoid` (`keep`,`zoid`)) ENGINE=MyISAM DEFAULT CHARSET=latin1",
    "CREATE TABLE `schema_version` (`version` int(11) NOT NULL, `installed_time` datetime NOT NULL, "
    "PRIMARY KEY (`version`)) ENGINE=InnoDB DEFAULT CHARSET=utf8",
]


# -- data ------------------------------------------------------------------------------------------------------

class _Data:
    """Everything random comes from one PRNG, in a fixed order: the same arguments give the same rows."""

    def __init__(self, seed, rows, state_bytes, end):
        self.rng = random.Random(seed)
        self.rows = rows
        self.state_bytes = state_bytes
        self.end_ms = end * 1000
        self.devices = [f"{prefix}{index // len(DEVICE_KINDS) + 1:02d}"
                        for index, (_kind, prefix) in zip(range(max(4, rows // 50)), _cycle(DEVICE_KINDS))]

    def raw(self, size):
        return bytes(self.rng.getrandbits(8) for _i in range(size))

    def uuid(self):
        return self.raw(16)

    def stamp(self):
        return self.end_ms - self.rng.randrange(ARCHIVE_DAYS * DAY_MS - 1)


def _cycle(items):
    while True:
        yield from items


def _event(data, summary, ids):
    rng = data.rng
    device = rng.choice(data.devices)
    klass = rng.randrange(len(EVENT_CLASSES)) + 1
    component = rng.choice([None, "eth0", "eth1", "/boot", "/var"])
    last = data.stamp()
    first = last - rng.randrange(3 * DAY_MS)
    fingerprint = f"{device}|{component or ''}|{EVENT_CLASSES[klass - 1]}|{rng.randrange(10 ** 6)}"
    details = {"zenoss.device.ip_address": [f"10.0.{rng.randrange(256)}.{rng.randrange(256)}"],
               "zenoss.device.production_state": ["1000"], "note": ["caf\u00e9 \u2713 \"quoted\" back\\slash"]}
    row = [data.uuid()]
    if summary:
        row.append(hashlib.sha1(fingerprint.encode()).digest())
    row += [fingerprint, rng.choice([0, 1, 2, 3, 4, 6]), None, klass, None, None, None, rng.randrange(6),
            data.uuid(), 1, device, device.upper(), data.uuid() if component else None, 2 if component else None,
            component, component, last + rng.randrange(1000), first, last, last, rng.randrange(1, 500),
            ids["monitor"][rng.randrange(len(MONITORS))], ids["agent"][rng.randrange(len(AGENTS))],
            None, None, None, None, None]
    if summary:
        row.append(data.raw(20) if rng.random() < 0.3 else None)
    row += [None, f"{EVENT_CLASSES[klass - 1]} on {device}", "message\n\twith 'quotes', \\ and \u00fc",
            json.dumps(details), json.dumps([{"type": "zenoss.device", "uuid": [data.uuid().hex()]}]), None, None]
    return row


def _zodb_state(data, zoid):
    """Two pickles as ZODB writes them: the class, then the state with persistent references (8-byte oids)."""
    klass = ZENPACK_CLASSES[zoid % len(ZENPACK_CLASSES)]
    module, name = klass.rsplit(".", 1)
    head = b"((U" + bytes([len(module)]) + module.encode() + b"q\x01U" + bytes([len(name)]) + name.encode() + b"tNt."
    refs = b"".join(b"(U\x08" + struct.pack(">Q", data.rng.randrange(1, 1 << 20)) + b"q\x02tQ"
                    for _i in range(3))
    body = b"}q\x03(U\x02idq\x04U" + bytes([min(255, len(name))]) + name.encode()[:255] + refs
    filler = data.raw(max(0, data.state_bytes - len(head) - len(body) - 2))
    return head + body + b"U'\x00\"\\\n" + filler + b"u."


def _zep_rows(data, zep_instance):
    rng = data.rng
    ids = {"monitor": list(range(1, len(MONITORS) + 1)), "agent": list(range(1, len(AGENTS) + 1))}
    yield "schema_version", [(version, "2014-04-25 10:46:48") for version in range(1, 12)]
    for table, names in (("event_class", EVENT_CLASSES), ("agent", AGENTS), ("monitor", MONITORS),
                         ("event_class_key", ("snmp", "syslog", "ping")), ("event_key", ("ifOperStatus", "cpu")),
                         ("event_group", ("group-1", "group-2"))):
        yield table, [(index + 1, name) for index, name in enumerate(names)]
    yield "index_metadata", [(zep_instance, name, 4, data.raw(20)) for name in ("event_summary", "event_archive")]
    summaries = [_event(data, True, ids) for _i in range(max(1, data.rows // 5))]
    yield "event_summary", summaries
    for start in range(0, data.rows, BATCH):
        yield "event_archive", [_event(data, False, ids) for _i in range(min(BATCH, data.rows - start))]
    yield "event_time", [(row[0], row[20], row[20] - rng.randrange(1000), row[19]) for row in summaries]
    yield "config", [("event_archive_interval_minutes", "4320"), ("event_age_severity_inclusive", "false"),
                     ("event_archive_purge_interval_days", "90")]
    triggers = [(data.uuid(), f"trigger {index} \u00e9", 1, 1, 1, f"(dev.production_state == 1000) and {index}")
                for index in range(3)]
    yield "event_trigger", triggers
    subscriptions = [(data.uuid(), trigger[0], data.uuid(), 0, 60 * index, 1) for index, trigger in enumerate(triggers)]
    yield "event_trigger_subscription", subscriptions
    yield "event_trigger_signal_spool", [(data.uuid(), subscriptions[0][0], summary[0], 0, summary[20], 1, 0)
                                         for summary in summaries[:2]]
    yield "event_detail_index_config", [(f"zenoss.device.{name}", json.dumps({"key": name, "type": "STRING"}))
                                        for name in ("ip_address", "priority", "location")]
    yield "daemon_heartbeat", [(monitor, daemon, 90, data.end_ms - rng.randrange(60000))
                               for monitor in MONITORS for daemon in AGENTS[:4]]


def _relstorage_rows(data, objects, connections):
    tid = (data.end_ms // 1000) << 32
    for start in range(1, objects + 1, BATCH):
        chunk = range(start, min(objects, start + BATCH - 1) + 1)
        states = [(zoid, tid + zoid, _zodb_state(data, zoid)) for zoid in chunk]
        yield "object_state", [(zoid, state_tid, len(state), state) for zoid, state_tid, state in states]
        yield "object_ref", [(zoid, zoid + 1, tid) for zoid in chunk if zoid < objects]
        yield "pack_object", [(zoid, zoid % 2, tid, 0) for zoid in chunk if zoid % 7 == 0]
    yield "blob_chunk", [(zoid, 0, tid, data.raw(64)) for zoid in range(1, min(objects, 4) + 1)]
    yield "new_oid", [(objects + 1,)]
    yield "object_refs_added", [(zoid, tid) for zoid in range(1, min(objects, 10) + 1)]
    yield "connection_info", [(index, 2700 + index, f"pid={2700 + index} tid=1397\n  File \"runzope\", line 8\n"
                               f"caf\u00e9 {index}", "2018-06-01 11:00:00") for index in range(connections)]
    yield "schema_version", [(1, "2014-04-25 10:46:48")]


# -- loading ---------------------------------------------------------------------------------------------------

def _insert(cursor, table, rows):
    if rows:
        marks = ", ".join(["%s"] * len(rows[0]))
        cursor.executemany(f"INSERT INTO `{table}` VALUES ({marks})", rows)


def _create_database(cursor, name, replace):
    cursor.execute("SHOW DATABASES LIKE %s", (name,))
    if cursor.fetchone():
        if not replace:
            raise SystemExit(f"gen_zenoss_db: database {name} exists (--replace drops it first)")
        cursor.execute(f"DROP DATABASE `{name}`")
    cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8")
    cursor.execute(f"USE `{name}`")


def _ensure_definer(cursor, definer, database):
    """The triggers' DEFINER must exist with rights on the tables, or every insert would fail (error 1449)."""
    user, _at, host = definer.partition("@")
    account = f"'{user.strip('`')}'@'{host.strip('`')}'"
    cursor.execute(f"CREATE USER IF NOT EXISTS {account}")
    cursor.execute(f"GRANT ALL PRIVILEGES ON `{database}`.* TO {account}")


def _load(cursor, rows):
    for table, batch in rows:
        _insert(cursor, table, batch)


def build_databases(connect, seed=1, rows=500, state_bytes=600, prefix="", definer="`zenoss`@`localhost`",
                    replace=False, end=DEFAULT_END):
    """Create and fill ``<prefix>zenoss_zep``, ``<prefix>zodb`` and ``<prefix>zodb_session`` through
    ``connect()`` (a PyMySQL connection factory, autocommit). Returns describe() of the three databases."""
    if rows < 1 or state_bytes < 64:
        raise ValueError("rows must be 1 or more and state_bytes 64 or more")
    data = _Data(seed, rows, state_bytes, end)
    names = {"zep": prefix + "zenoss_zep", "zodb": prefix + "zodb", "session": prefix + "zodb_session"}
    with connect() as conn, conn.cursor() as cursor:
        cursor.execute("SET NAMES utf8mb4")
        _create_database(cursor, names["zep"], replace)
        for statement in zep_tables(data.end_ms) + ZEP_ROUTINES:
            cursor.execute(statement)
        _ensure_definer(cursor, definer, names["zep"])
        for statement in zep_triggers(definer):
            cursor.execute(statement)
        _load(cursor, _zep_rows(data, data.uuid()))
        for statement in ZEP_VIEWS:
            cursor.execute(statement)
        for key, objects, connections in (("zodb", rows, 3), ("session", SESSION_ROWS, 2)):
            _create_database(cursor, names[key], replace)
            for statement in RELSTORAGE_TABLES:
                cursor.execute(statement)
            _load(cursor, _relstorage_rows(data, objects, connections))
        conn.commit()
        return {key: describe(cursor, name) for key, name in names.items()}


def describe(cursor, database):
    """Tables with row counts and CHECKSUM TABLE, triggers, routines and views of one database."""
    cursor.execute("SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = %s "
                   "ORDER BY table_name", (database,))
    kinds = cursor.fetchall()
    tables, checksums = {}, {}
    for name, kind in kinds:
        if kind == "BASE TABLE":
            cursor.execute(f"SELECT COUNT(*) FROM `{database}`.`{name}`")
            tables[name] = cursor.fetchone()[0]
            cursor.execute(f"CHECKSUM TABLE `{database}`.`{name}`")
            checksums[name] = cursor.fetchone()[1]
    cursor.execute("SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = %s "
                   "ORDER BY trigger_name", (database,))
    triggers = [row[0] for row in cursor.fetchall()]
    cursor.execute("SELECT routine_name FROM information_schema.routines WHERE routine_schema = %s "
                   "ORDER BY routine_name", (database,))
    routines = [row[0] for row in cursor.fetchall()]
    return {"database": database, "tables": tables, "checksums": checksums, "triggers": triggers,
            "routines": routines, "views": [name for name, kind in kinds if kind == "VIEW"]}


def _connector(args):
    password = os.environ.get(args.password_env, "")
    params = dict(user=args.user, password=password, charset="utf8mb4", autocommit=True, connect_timeout=10,
                  max_allowed_packet=64 << 20)
    params.update(unix_socket=args.socket) if args.socket else params.update(host=args.host, port=args.port)
    return lambda: pymysql.connect(**params)


def main(argv=None):
    env = os.environ.get
    parser = argparse.ArgumentParser(description="Load generated Zenoss 4 databases into a MariaDB server.")
    parser.add_argument("--host", default=env("FERRY_MARIADB_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env("FERRY_MARIADB_PORT", "3306")))
    parser.add_argument("--user", default=env("FERRY_MARIADB_USER", "root"))
    parser.add_argument("--socket", help="a Unix socket instead of host and port")
    parser.add_argument("--password-env", default="FERRY_MARIADB_PASSWORD",
                        help="the environment variable holding the password")
    parser.add_argument("--rows", type=int, default=500, help="event_archive rows (and object_state rows)")
    parser.add_argument("--state-bytes", type=int, default=600, help="average object_state.state size")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--end", type=int, default=DEFAULT_END, help="the export's time (epoch seconds)")
    parser.add_argument("--prefix", default="", help="prefix of the three database names")
    parser.add_argument("--definer", default="`zenoss`@`localhost`", help="the triggers' DEFINER")
    parser.add_argument("--replace", action="store_true", help="drop the databases first when they exist")
    args = parser.parse_args(argv)
    try:
        info = build_databases(_connector(args), seed=args.seed, rows=args.rows, state_bytes=args.state_bytes,
                               prefix=args.prefix, definer=args.definer, replace=args.replace, end=args.end)
    except (ValueError, pymysql.MySQLError) as exc:
        raise SystemExit(f"gen_zenoss_db: {exc}")
    json.dump(info, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
