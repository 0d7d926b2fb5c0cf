"""sql_import on a >= 200 MB ZEP-like dump against what an operator would type, side by side in one run.

Baseline: gunzip -c dump.sql.gz | mariadb --defaults-file=<private cnf> DB
ferry:    the sql_import module (run as Ansible runs it: python sql_import.py ARGS.json), with its journal
          progress on (bytes, statements), its pre-scan (largest statement, DEFINERs, objects), the sha256 of the
          file and the per-table row counts.
Each round imports into a fresh database; rounds alternate which goes first. The dump is generated once (events
tables with big text and binary columns, as zenoss_zep's event_summary / event_archive) and kept in .run/bench.

Wiring into bench/run.py: ``import bench_sql_import`` and ``"sql_import": bench_sql_import.main`` in BENCHMARKS.
"""

import gzip
import json
import os
import random
import subprocess
import sys
import uuid

from common import BENCH_DIR, ROOT, collection_env, fresh_dir, median, save_result, timed

MODULE = os.path.join(ROOT, "plugins", "modules", "sql_import.py")
SERVERS = os.path.join(os.environ.get("FERRY_RUN_DIR", os.path.join(ROOT, ".run")), "servers", "servers.json")
_ESCAPES = {0: b"\\0", 10: b"\\n", 13: b"\\r", 26: b"\\Z", 39: b"\\'", 34: b'\\"', 92: b"\\\\"}
_TABLE = bytes.maketrans(b"", b"")

COLUMNS = """  `uuid` binary(16) NOT NULL,
  `fingerprint_hash` binary(20) NOT NULL,
  `fingerprint` varchar(255) NOT NULL,
  `status_id` tinyint(4) NOT NULL,
  `event_class_id` int(11) NOT NULL,
  `severity_id` tinyint(4) NOT NULL,
  `element_uuid` binary(16) DEFAULT NULL,
  `element_identifier` varchar(255) NOT NULL,
  `element_title` varchar(255) DEFAULT NULL,
  `element_sub_identifier` varchar(255) DEFAULT NULL,
  `update_time` bigint(20) NOT NULL,
  `first_seen` bigint(20) NOT NULL,
  `last_seen` bigint(20) NOT NULL,
  `event_count` int(11) NOT NULL,
  `summary` varchar(255) NOT NULL DEFAULT '',
  `message` varchar(4096) NOT NULL DEFAULT '',
  `details_json` mediumtext DEFAULT NULL,
  `tags_json` mediumtext DEFAULT NULL,
  `notes_json` mediumtext DEFAULT NULL,
  PRIMARY KEY (`uuid`),
  KEY `fingerprint_hash` (`fingerprint_hash`),
  KEY `last_seen` (`last_seen`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;"""

HEADER = b"""-- MySQL dump 10.13  Distrib 5.5.40, for Linux (x86_64)
--
-- Host: localhost    Database: zenoss_zep
-- ------------------------------------------------------
/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET NAMES utf8mb4 */;
/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;
/*!40103 SET TIME_ZONE='+00:00' */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;
/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;
/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;
/*!40111 SET @OLD_SQL_NOTES=@@SQL_NOTES, SQL_NOTES=0 */;
"""
FOOTER = b"""/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;
/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;
/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;
/*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;
/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;
/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;
-- Dump completed
"""
ROUTINES = b"""DELIMITER ;;
/*!50003 CREATE*/ /*!50003 TRIGGER `config_audit` AFTER UPDATE ON `config` FOR EACH ROW BEGIN
  INSERT INTO `config_log` VALUES (NEW.`config_name`, 'changed; again');
END */;;
CREATE FUNCTION `severity_name`(s INT) RETURNS varchar(16) DETERMINISTIC
BEGIN
  IF s >= 5 THEN RETURN 'critical'; END IF;
  RETURN 'other';
END ;;
DELIMITER ;
/*!50001 CREATE ALGORITHM=UNDEFINED */
/*!50001 VIEW `open_events` AS select `event_summary`.`uuid` AS `uuid` from `event_summary` where `status_id` < 2 */;
"""


def escape(data):
    """A byte string as mysqldump writes it inside quotes."""
    if not any(byte in data for byte in b"\0\n\r\x1a'\"\\"):
        return data
    return b"".join(_ESCAPES.get(byte, bytes((byte,))) for byte in data)


def _row(rng, number):
    raw = [uuid.UUID(int=rng.getrandbits(128)).bytes, rng.getrandbits(160).to_bytes(20, "big")]
    device = "dev%05d.example.com" % rng.randrange(20000)
    text = " ".join(rng.choice(WORDS) for _i in range(rng.randrange(40, 160)))
    details = json.dumps([{"name": "zenoss.device.%s" % rng.choice(WORDS), "value": [rng.choice(WORDS) * 3]}
                          for _i in range(rng.randrange(4, 14))])
    fields = [b"'%s'" % escape(raw[0]), b"'%s'" % escape(raw[1]),
              b"'%s|/Status/Ping|%d'" % (device.encode(), number), b"%d" % rng.randrange(7),
              b"%d" % rng.randrange(400), b"%d" % rng.randrange(6), b"'%s'" % escape(os.urandom(16)),
              b"'%s'" % device.encode(), b"'%s'" % device.encode(), b"'eth%d'" % rng.randrange(8),
              b"%d" % (1400000000000 + number), b"%d" % (1400000000000 + number), b"%d" % (1400000000000 + number),
              b"%d" % rng.randrange(1, 900), b"'%s'" % escape(text[:250].encode()),
              b"'%s'" % escape(("%s\n%s 'quoted'; \\ caf\u00e9" % (text, text[:400])).encode()),
              b"'%s'" % escape(details.encode()), b"'[]'", b"NULL"]
    return b"(" + b",".join(fields) + b")"


WORDS = ("ping", "down", "interface", "threshold", "exceeded", "snmp", "timeout", "collector", "disk", "usage",
         "cpu", "memory", "critical", "cleared", "heartbeat", "zenperfsnmp", "zenping", "eth0", "filesystem", "/var")


def write_dump(path, size_mb, seed=13):
    """A mysqldump-shaped zenoss_zep dump of about ``size_mb`` MiB (uncompressed), gzipped."""
    rng = random.Random(seed)
    target = size_mb << 20
    written = 0
    rows = 0
    with gzip.open(path + ".tmp", "wb", compresslevel=6) as out:
        out.write(HEADER)
        for table in ("event_summary", "event_archive"):
            out.write(b"DROP TABLE IF EXISTS `%s`;\nCREATE TABLE `%s` (\n%s\n" % (
                table.encode(), table.encode(), COLUMNS.encode()))
            out.write(b"LOCK TABLES `%s` WRITE;\n/*!40000 ALTER TABLE `%s` DISABLE KEYS */;\n" % (
                table.encode(), table.encode()))
            share = target // (4 if table == "event_summary" else 1) - written
            end = written + max(share, 0)
            while written < end:
                statement = [b"INSERT INTO `%s` VALUES " % table.encode()]
                size = 0
                while size < (1 << 20) - 8192 and written + size < end:
                    rows += 1
                    row = _row(rng, rows)
                    statement.append(row if size == 0 else b"," + row)
                    size += len(row) + 1
                data = b"".join(statement) + b";\n"
                out.write(data)
                written += len(data)
            out.write(b"/*!40000 ALTER TABLE `%s` ENABLE KEYS */;\nUNLOCK TABLES;\n" % table.encode())
        out.write(b"DROP TABLE IF EXISTS `config`;\nCREATE TABLE `config` (`config_name` varchar(64) NOT NULL,"
                  b" `config_value` blob, PRIMARY KEY (`config_name`)) ENGINE=InnoDB;\n"
                  b"INSERT INTO `config` VALUES ('a','\\0\\'x'),('b;c',NULL);\n"
                  b"DROP TABLE IF EXISTS `config_log`;\nCREATE TABLE `config_log` (`n` varchar(64), `what` text)"
                  b" ENGINE=InnoDB;\n")
        out.write(ROUTINES)
        out.write(FOOTER)
    os.rename(path + ".tmp", path)
    return rows


def dump(size_mb):
    """The benchmark dump, built once and kept in .run/bench."""
    path = os.path.join(BENCH_DIR, "zep-%dm.sql.gz" % size_mb)
    info_path = path + ".json"
    if os.path.exists(info_path) and os.path.exists(path):
        with open(info_path) as handle:
            info = json.load(handle)
        if os.path.getsize(path) == info["size"]:
            return info
    os.makedirs(BENCH_DIR, exist_ok=True)
    print("writing a %d MiB ZEP-like dump (once)..." % size_mb, file=sys.stderr)
    rows = write_dump(path, size_mb)
    with gzip.open(path, "rb") as handle:
        uncompressed = sum(len(chunk) for chunk in iter(lambda: handle.read(1 << 20), b""))
    info = {"path": path, "size": os.path.getsize(path), "uncompressed": uncompressed, "rows": rows}
    with open(info_path, "w") as handle:
        json.dump(info, handle)
    return info


def servers():
    with open(SERVERS) as handle:
        return json.load(handle)


def client_cnf(env):
    """A private option file for the mariadb client (the password never on its command line)."""
    path = os.path.join(BENCH_DIR, "client.cnf")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("[client]\nhost=%s\nport=%s\nuser=%s\npassword=\"%s\"\n" % (
            env["FERRY_MARIADB_HOST"], env["FERRY_MARIADB_PORT"], env["FERRY_MARIADB_USER"],
            env["FERRY_MARIADB_PASSWORD"]))
    return path


def sql(cnf, text):
    subprocess.run(["mariadb", "--defaults-file=" + cnf, "-N", "-e", text], check=True, stdout=subprocess.PIPE)


def checksums(cnf, database):
    out = subprocess.run(["mariadb", "--defaults-file=" + cnf, "-N", "-e",
                          "CHECKSUM TABLE `%s`.event_summary, `%s`.event_archive" % (database, database)],
                         check=True, stdout=subprocess.PIPE).stdout.decode()
    return sorted(line.split("\t")[1] for line in out.splitlines())


def run_baseline(info, cnf, database):
    sql(cnf, "DROP DATABASE IF EXISTS `%s`; CREATE DATABASE `%s`" % (database, database))
    return timed("gunzip -c %s | mariadb --defaults-file=%s %s" % (info["path"], cnf, database), shell=True)


def run_ferry(info, env, database):
    sql(env["cnf"], "DROP DATABASE IF EXISTS `%s`" % database)
    state = fresh_dir(os.path.join(BENCH_DIR, "sql_import_state"))  # no pre-scan kept from the round before
    args = os.path.join(BENCH_DIR, "sql_import_args.json")
    with open(args, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": {
            "src": info["path"], "database": database, "login_host": env["FERRY_MARIADB_HOST"],
            "login_port": int(env["FERRY_MARIADB_PORT"]), "login_user": env["FERRY_MARIADB_USER"],
            "login_password": env["FERRY_MARIADB_PASSWORD"], "force": True,
            "state_dir": state}}, handle)
    seconds, rss, out = timed([sys.executable, MODULE, args], env=env["env"])
    result = json.loads(out)
    if result.get("failed"):
        raise RuntimeError("sql_import failed: %s" % out[-2000:])
    return seconds, rss, out


def main(size_mb=210, rounds=3):
    info = dump(size_mb)
    env = servers()
    cnf = client_cnf(env)
    ferry_env = {"env": collection_env(), "cnf": cnf}
    ferry_env.update(env)
    base, ferry = [], []
    for index in range(rounds):
        order = [("baseline", run_baseline), ("ferry", run_ferry)]
        for label, func in order if index % 2 == 0 else reversed(order):
            database = "bench_sql_%s" % label
            seconds, rss = (func(info, cnf, database) if label == "baseline" else func(info, ferry_env, database))[:2]
            (base if label == "baseline" else ferry).append((seconds, rss))
    same = checksums(cnf, "bench_sql_baseline") == checksums(cnf, "bench_sql_ferry")
    for label in ("baseline", "ferry"):
        sql(cnf, "DROP DATABASE IF EXISTS `bench_sql_%s`" % label)
    mib = info["uncompressed"] / float(1 << 20)
    result = {
        "dump_bytes": info["size"],
        "uncompressed_bytes": info["uncompressed"],
        "rows": info["rows"],
        "rounds": rounds,
        "baseline_s": [round(seconds, 2) for seconds, rss in base],
        "ferry_s": [round(seconds, 2) for seconds, rss in ferry],
        "baseline_mib_s": round(mib / median([seconds for seconds, rss in base]), 1),
        "ferry_mib_s": round(mib / median([seconds for seconds, rss in ferry]), 1),
        "ferry_peak_rss_mib": round(max(rss for seconds, rss in ferry), 1),
        "same_checksums": same,
        "target_throughput_ratio_min": 0.9,
    }
    result["ratio"] = round(result["ferry_mib_s"] / result["baseline_mib_s"], 3)
    result["ok"] = same and result["ratio"] >= result["target_throughput_ratio_min"]
    save_result("sql_import", result)
    return result


if __name__ == "__main__":
    print(json.dumps(main(*(int(arg) for arg in sys.argv[1:])), indent=2))
