"""tools/gen_zenoss_db.py against the real MariaDB: Zenoss 4's databases, shaped like the real ones, the same for
the same arguments."""
import uuid

import pytest

from tools.gen_zenoss_db import build_databases, describe


@pytest.fixture
def generated(mariadb_conn):
    """build(**kwargs) -> the generator's summary, in databases of a unique prefix, dropped afterwards."""
    prefixes = []

    def build(prefix=None, **kwargs):
        prefix = prefix or f"ferrygen_{uuid.uuid4().hex[:8]}_"
        prefixes.append(prefix)
        return build_databases(lambda: mariadb_conn(autocommit=True), prefix=prefix, **kwargs)

    yield build
    with mariadb_conn(autocommit=True) as conn, conn.cursor() as cursor:
        for prefix in set(prefixes):
            for name in ("zenoss_zep", "zodb", "zodb_session"):
                cursor.execute(f"DROP DATABASE IF EXISTS `{prefix}{name}`")


def test_same_arguments_same_data_other_seed_other_data(generated):
    first, second, other = generated(rows=40, seed=3), generated(rows=40, seed=3), generated(rows=40, seed=4)
    for key in ("zep", "zodb", "session"):
        assert first[key]["checksums"] == second[key]["checksums"]
        assert first[key]["tables"] == second[key]["tables"]
    assert first["zep"]["checksums"]["event_archive"] != other["zep"]["checksums"]["event_archive"]
    assert first["zodb"]["checksums"]["object_state"] != other["zodb"]["checksums"]["object_state"]


def test_shape_of_the_three_databases(generated, mariadb_conn):
    info = generated(rows=30, state_bytes=200)
    zep, zodb, session = info["zep"], info["zodb"], info["session"]
    assert zep["tables"]["event_archive"] == 30 and zep["tables"]["event_summary"] == 6
    # the triggers filled the index queues, as on a Zenoss 4 host
    assert zep["tables"]["event_archive_index_queue"] == 30 and zep["tables"]["event_summary_index_queue"] == 6
    assert zep["triggers"] == ["event_archive_index_queue_insert", "event_archive_index_queue_update",
                               "event_summary_index_queue_insert", "event_summary_index_queue_update"]
    assert zep["routines"] == ["BINARY_SHA1_TO_STR", "BINARY_UUID_TO_STR", "UNIX_MS_TO_DATETIME"]
    assert zep["views"] == ["v_daemon_heartbeat", "v_event_summary", "v_index_metadata"]
    assert {"event_detail_index_config", "event_trigger", "event_time", "daemon_heartbeat"} <= set(zep["tables"])
    assert "current_object" not in zodb["tables"]  # history-free RelStorage, as Zenoss runs it
    assert zodb["tables"]["object_state"] == 30 and set(session["tables"]) == set(zodb["tables"])
    with mariadb_conn() as conn, conn.cursor() as cursor:
        zep_db, zodb_db = zep["database"], zodb["database"]
        cursor.execute("SELECT definer, action_statement FROM information_schema.triggers WHERE trigger_schema=%s",
                       (zep_db,))
        assert {row[0] for row in cursor.fetchall()} == {"zenoss@localhost"}
        cursor.execute(f"SELECT uuid, fingerprint_hash FROM `{zep_db}`.v_event_summary LIMIT 1")
        text_uuid, sha1 = cursor.fetchone()
        assert len(text_uuid) == 36 and text_uuid.count("-") == 4 and len(sha1) == 40
        cursor.execute("SELECT COUNT(*) FROM information_schema.partitions WHERE table_schema=%s "
                       "AND table_name='event_archive'", (zep_db,))
        assert cursor.fetchone()[0] > 1
        cursor.execute(f"SELECT state FROM `{zodb_db}`.object_state")
        states = [row[0] for row in cursor.fetchall()]
        assert all(b"\x00" in state and b"\\" in state and b"'" in state and b"\n" in state for state in states)
        undecodable = 0
        for state in states:
            try:
                state.decode("utf-8")
            except UnicodeDecodeError:
                undecodable += 1
        assert undecodable == len(states)
        assert all(state.startswith(b"((U") for state in states)


def test_an_existing_database_is_kept_without_replace(generated):
    prefix = f"ferrygen_{uuid.uuid4().hex[:8]}_"
    generated(prefix=prefix, rows=5)
    with pytest.raises(SystemExit, match="exists"):
        generated(prefix=prefix, rows=5)
    assert generated(prefix=prefix, rows=7, replace=True)["zep"]["tables"]["event_archive"] == 7


def test_bad_sizes_are_refused(mariadb_conn):
    for kwargs in ({"rows": 0}, {"state_bytes": 10}):
        with pytest.raises(ValueError):
            build_databases(lambda: mariadb_conn(autocommit=True), prefix="ferrygen_never_", **kwargs)
    with mariadb_conn() as conn, conn.cursor() as cursor:
        cursor.execute("SHOW DATABASES LIKE 'ferrygen_never_%'")
        assert cursor.fetchall() == ()


def test_describe_of_a_missing_database_is_empty(mariadb_conn):
    with mariadb_conn() as conn, conn.cursor() as cursor:
        empty = {"database": "ferrygen_missing_db", "tables": {}, "checksums": {}, "triggers": [], "routines": [],
                 "views": []}
        assert describe(cursor, "ferrygen_missing_db") == empty
