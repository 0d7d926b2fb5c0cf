# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sql_dump and sql_import against the real MariaDB of scripts/test-servers: a round trip with triggers, routines,
views, binary BLOBs and latin1 text; each DEFINER policy with a missing account; a statement over
max_allowed_packet; a corrupt gzip; a wrong password; a dead server; a kill mid-import then a rerun; the no-op
rerun; check mode. Every test uses fresh database names."""
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import Journal
from ansible_collections.ferry.migrate.plugins.modules import sql_dump, sql_import

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import bench_sql_import  # noqa: E402  pylint: disable=wrong-import-position

MODULE = os.path.join(ROOT, "plugins", "modules", "sql_import.py")


def fresh(prefix):
    return "ferry_%s_%s" % (prefix, uuid.uuid4().hex[:10])


def connection_params(servers, **extra):
    params = dict(login_host=servers["FERRY_MARIADB_HOST"], login_port=int(servers["FERRY_MARIADB_PORT"]),
                  login_user=servers["FERRY_MARIADB_USER"], login_password=servers["FERRY_MARIADB_PASSWORD"],
                  login_unix_socket=None, config_file="/nonexistent/.my.cnf", connect_timeout=10, ca_cert=None,
                  client_cert=None, client_key=None, check_hostname=None, step=None, force=False)
    params.update(extra)
    return params


def import_params(servers, src, database, state, **extra):
    params = connection_params(servers, src=str(src), database=database, create_database=True, definer="strip",
                               state_dir=str(state))
    params.update(extra)
    return params


@pytest.fixture
def databases(mariadb_conn):
    """Names of databases to drop after the test."""
    names = []
    yield names
    conn = mariadb_conn(autocommit=True)
    with conn.cursor() as cursor:
        for name in names:
            cursor.execute("DROP DATABASE IF EXISTS `%s`" % name)


def execute(conn, *statements):
    with conn.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
    conn.commit()


def query(conn, sql):
    with conn.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def exists(conn, database):
    return query(conn, "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME='%s'" % database)


def checksums(conn, database, tables):
    rows = query(conn, "CHECKSUM TABLE %s" % ", ".join("`%s`.`%s`" % (database, t) for t in tables))
    return [(name.split(".")[-1], value) for name, value in rows]


def make_source(conn, name):
    latin1 = "caf\u00e9 \u00fc\u00df".encode("latin1")
    execute(conn, "CREATE DATABASE `%s`" % name, "USE `%s`" % name,
            "CREATE TABLE events (id INT PRIMARY KEY AUTO_INCREMENT, payload LONGBLOB, note VARCHAR(64) CHARACTER SET "
            "latin1, body TEXT) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            "CREATE TABLE audit (id INT PRIMARY KEY AUTO_INCREMENT, what VARCHAR(200)) ENGINE=InnoDB",
            "CREATE TRIGGER events_audit AFTER INSERT ON events FOR EACH ROW "
            "INSERT INTO audit (what) VALUES (CONCAT('insert;', NEW.id))",
            "CREATE PROCEDURE purge_audit(IN keep INT) BEGIN DELETE FROM audit WHERE id > keep; SELECT 'done;'; END",
            "CREATE FUNCTION severity_name(s INT) RETURNS VARCHAR(16) DETERMINISTIC RETURN IF(s > 4, 'crit', 'other')",
            "CREATE VIEW recent AS SELECT id, note FROM events WHERE id > 1")
    with conn.cursor() as cursor:
        cursor.execute("SET NAMES utf8mb4")
        for index in range(40):
            blob = bytes(range(256)) * (index + 1) + os.urandom(64)
            cursor.execute("INSERT INTO events (payload, note, body) VALUES (%s, _latin1 %s, %s)",
                           (blob, latin1 + b"%d" % index, "multi\nline; 'quoted' \\ %d \u2603" % index))
    conn.commit()


def test_round_trip_dump_then_import_gives_the_same_tables_rows_and_objects(servers, mariadb_conn, databases, tmp_path):
    source, target = fresh("src"), fresh("dst")
    databases += [source, target]
    conn = mariadb_conn(autocommit=True)
    make_source(conn, source)
    dest = tmp_path / "zep.sql.gz"
    dumped = sql_dump.run(connection_params(servers, database=source, dest=str(dest), no_data=False,
                                            definer="strip", state_dir=str(tmp_path / "s")), False)
    assert dumped["tables"] == {"events": 40, "audit": 40}
    assert dumped["triggers"] == ["events_audit"] and dumped["views"] == ["recent"]
    assert dumped["routines"] == ["purge_audit", "severity_name"] and dumped["definers_stripped"] == 4
    assert oct(os.stat(str(dest)).st_mode & 0o777) == "0o600"
    with gzip.open(str(dest)) as handle:
        text = handle.read()
    assert b"DEFINER=" not in text and b"caf\xc3\xa9" in text
    assert not [name for name in os.listdir(str(tmp_path)) if name.startswith(".")]  # no temporary file left

    again = sql_dump.run(connection_params(servers, database=source, dest=str(dest), no_data=False,
                                           definer="strip", state_dir=str(tmp_path / "s")), False)
    assert again["decision"] == "skip" and again["changed"] is False and again["sha256"] == dumped["sha256"]

    loaded = sql_import.run(import_params(servers, dest, target, tmp_path / "s"), False)
    assert loaded["tables"] == {"events": 40, "audit": 40} and loaded["source_database"] == source
    assert checksums(conn, source, ["events", "audit"]) == checksums(conn, target, ["events", "audit"])
    assert query(conn, "SELECT note FROM `%s`.events ORDER BY id LIMIT 1" % target)[0][0] == "caf\u00e9 \u00fc\u00df0"
    assert query(conn, "SELECT TRIGGER_NAME, DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA='%s'"
                 % target) == (("events_audit", "%s@%s" % (servers["FERRY_MARIADB_USER"], "127.0.0.1")),)
    assert sorted(r[0] for r in query(conn, "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE "
                                            "ROUTINE_SCHEMA='%s'" % target)) == ["purge_audit", "severity_name"]
    assert query(conn, "SELECT COUNT(*) FROM `%s`.recent" % target)[0][0] == 39
    execute(conn, "INSERT INTO `%s`.events (note) VALUES ('x')" % target)  # the trigger works under its definer
    assert query(conn, "SELECT COUNT(*) FROM `%s`.audit" % target)[0][0] == 41

    rerun = sql_import.run(import_params(servers, dest, target, tmp_path / "s"), False)
    assert rerun["decision"] == "skip" and rerun["changed"] is False
    assert rerun["tables"] == {"events": 40, "audit": 40}


DEFINER_DUMP = b"""-- Host: localhost    Database: zenoss_zep
/*!40101 SET NAMES utf8mb4 */;
CREATE TABLE `t` (`id` int PRIMARY KEY, `v` varchar(10));
CREATE TABLE `log` (`id` int);
DELIMITER ;;
/*!50003 CREATE*/ /*!50017 DEFINER=`nobody_ferry_x`@`localhost`*/ /*!50003 TRIGGER `t_log` AFTER INSERT ON `t`
FOR EACH ROW INSERT INTO `log` VALUES (NEW.id) */;;
DELIMITER ;
INSERT INTO `t` VALUES (1,'a'),(2,'b;');
"""


@pytest.mark.parametrize("policy", ["keep", "strip", "account", "missing-account"])
def test_definer_of_a_missing_account_under_each_policy(servers, mariadb_conn, databases, tmp_path, policy):
    target = fresh("definer")
    databases.append(target)
    src = tmp_path / "d.sql"
    src.write_bytes(DEFINER_DUMP)
    user = servers["FERRY_MARIADB_USER"]
    definer = {"keep": "keep", "strip": "strip", "account": "%s@127.0.0.1" % user,
               "missing-account": "ghost_ferry@localhost"}[policy]
    params = import_params(servers, src, target, tmp_path / "s", definer=definer)
    conn = mariadb_conn(autocommit=True)
    if policy in ("keep", "missing-account"):
        with pytest.raises(FerryError, match="DEFINER account.*do not exist on the server.*1449") as failure:
            sql_import.run(params, False)
        assert ("nobody_ferry_x" if policy == "keep" else "ghost_ferry") in str(failure.value)
        assert not exists(conn, target)
        return
    result = sql_import.run(params, False)
    assert result["tables"] == {"t": 2, "log": 0}  # rows of the dump; the trigger added 2 more to log
    assert result["rows_on_server"] == {"t": 2, "log": 2}
    assert result["definers"] == {"'nobody_ferry_x'@'localhost'": ["trigger t_log"]}
    assert query(conn, "SELECT DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA='%s'" % target)[0][0] \
        == "%s@127.0.0.1" % user
    execute(conn, "INSERT INTO `%s`.t VALUES (3, 'c')" % target)  # no error 1449
    assert query(conn, "SELECT COUNT(*) FROM `%s`.log" % target)[0][0] == 3


def test_a_statement_over_max_allowed_packet_fails_before_anything_is_sent(servers, mariadb_conn, databases, tmp_path):
    target = fresh("packet")
    databases.append(target)
    src = tmp_path / "big.sql"
    src.write_bytes(b"CREATE TABLE t (b LONGBLOB);\nINSERT INTO t VALUES ('" + b"x" * (2 << 20) + b"');\n")
    conn = mariadb_conn(autocommit=True)
    original = query(conn, "SELECT @@GLOBAL.max_allowed_packet")[0][0]
    try:  # the shared server's global, restored at once: new connections read it when they log in
        execute(conn, "SET GLOBAL max_allowed_packet = %d" % (1 << 20))
        with pytest.raises(FerryError) as failure:
            sql_import.run(import_params(servers, src, target, tmp_path / "s"), False)
    finally:
        execute(conn, "SET GLOBAL max_allowed_packet = %d" % original)
    message = str(failure.value)
    assert "statement 2 (byte 29) is 2097177 bytes, more than the server's max_allowed_packet (1048576)" in message
    assert "nothing was imported" in message and "INSERT INTO t VALUES ('xxx" in message
    assert not exists(conn, target)


def test_corrupt_gzip_fails_before_anything_is_sent(servers, mariadb_conn, databases, tmp_path):
    target = fresh("gzip")
    databases.append(target)
    data = gzip.compress(b"CREATE TABLE t (a int);\n" + b"INSERT INTO t VALUES (1);\n" * 20000)
    src = tmp_path / "x.sql.gz"
    src.write_bytes(data[:len(data) // 2] + bytes(64) + data[len(data) // 2 + 64:])
    with pytest.raises(FerryError, match="x.sql.gz: corrupt gzip data|x.sql.gz: gzip data is truncated"):
        sql_import.run(import_params(servers, src, target, tmp_path / "s"), False)
    src.write_bytes(data[:-20])
    with pytest.raises(FerryError, match="x.sql.gz: gzip data is truncated"):
        sql_import.run(import_params(servers, src, target, tmp_path / "s"), False)
    assert not exists(mariadb_conn(autocommit=True), target)


def test_non_utf8_bytes_in_a_utf8_dump_fail_naming_the_statement(servers, databases, tmp_path):
    target = fresh("utf8")
    databases.append(target)
    src = tmp_path / "bad.sql"
    src.write_bytes(b"SET NAMES utf8mb4;\nSET sql_mode='STRICT_ALL_TABLES';\n"
                    b"CREATE TABLE t (s VARCHAR(10) CHARACTER SET utf8mb4);\n"
                    b"INSERT INTO t VALUES ('ok'),('\xff\xfe');\n")
    with pytest.raises(FerryError) as failure:
        sql_import.run(import_params(servers, src, target, tmp_path / "s"), False)
    message = str(failure.value)
    assert "statement 4 (byte 107) failed: (1366) Incorrect string value" in message
    assert "The statement begins: INSERT INTO t VALUES ('ok'),('\\xff\\xfe')" in message


def test_wrong_password_and_dead_server_are_clear_errors(servers, tmp_path):
    src = tmp_path / "a.sql"
    src.write_bytes(b"SELECT 1;\n")
    params = import_params(servers, src, fresh("x"), tmp_path / "s", login_password="Wr0ng-p4ss")
    with pytest.raises(FerryError, match=r"cannot connect to MariaDB/MySQL as ferry@127.0.0.1:\d+: \(1045\) "
                                         r"Access denied for user 'ferry'"):
        sql_import.run(params, False)
    with pytest.raises(FerryError, match=r"\(1045\) Access denied"):
        sql_dump.run(connection_params(servers, database="mysql", dest=str(tmp_path / "m.sql.gz"), no_data=True,
                                       definer="strip", state_dir=str(tmp_path / "s"),
                                       login_password="Wr0ng-p4ss"), False)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    params = import_params(servers, src, fresh("x"), tmp_path / "s2", login_port=port)
    with pytest.raises(FerryError, match=r"cannot connect to MariaDB/MySQL as ferry@127.0.0.1:%d: \(2003\) Can't "
                                         r"connect" % port):
        sql_import.run(params, False)
    assert "Wr0ng-p4ss" not in json.dumps(Journal(str(tmp_path / "s")).records())


def test_check_mode_checks_everything_and_changes_nothing(servers, mariadb_conn, tmp_path):
    target = fresh("check")
    src = tmp_path / "d.sql"
    src.write_bytes(DEFINER_DUMP)
    result = sql_import.run(import_params(servers, src, target, tmp_path / "s"), True)
    assert result["changed"] is True and result["statements"] == 5 and result["tables"] == {"t": None, "log": None}
    assert not (tmp_path / "s").exists()
    assert not exists(mariadb_conn(autocommit=True), target)
    with pytest.raises(FerryError, match="do not exist on the server"):
        sql_import.run(import_params(servers, src, target, tmp_path / "s", definer="keep"), True)


def test_sql_dump_check_mode_predicts_a_missing_directory_and_the_run_creates_it(
        servers, mariadb_conn, databases, tmp_path):
    source = fresh("dir")
    databases.append(source)
    execute(mariadb_conn(autocommit=True), "CREATE DATABASE `%s`" % source,
            "CREATE TABLE `%s`.t (id INT PRIMARY KEY)" % source, "INSERT INTO `%s`.t VALUES (1), (2)" % source)
    dest = tmp_path / "export" / "zenbackup" / "zep.sql.gz"
    params = connection_params(servers, database=source, dest=str(dest), no_data=False, definer="strip",
                               state_dir=str(tmp_path / "s"))
    predicted = sql_dump.run(params, True)
    assert predicted["changed"] is True and predicted["decision"] == "run"
    assert not (tmp_path / "export").exists() and not (tmp_path / "s").exists()
    done = sql_dump.run(params, False)
    assert done["changed"] is True and done["tables"] == {"t": 2} and dest.is_file()
    assert sql_dump.run(params, True)["changed"] is False  # check mode after the run: nothing to do


def test_a_view_naming_the_dumps_database_is_made_to_name_the_target(servers, mariadb_conn, databases, tmp_path):
    target = fresh("view")
    databases.append(target)
    src = tmp_path / "v.sql"
    src.write_bytes(b"-- Host: localhost    Database: zenoss_zep\nCREATE TABLE `t` (`a` int);\n"
                    b"INSERT INTO `t` VALUES (1),(2);\n/*!50001 CREATE ALGORITHM=UNDEFINED */\n"
                    b"/*!50013 DEFINER=`root`@`localhost` SQL SECURITY DEFINER */\n"
                    b"/*!50001 VIEW `v` AS select `zenoss_zep`.`t`.`a` AS `a` from `zenoss_zep`.`t` */;\n")
    result = sql_import.run(import_params(servers, src, target, tmp_path / "s"), False)
    assert result["renamed_views"] == ["v"] and result["source_database"] == "zenoss_zep"
    assert query(mariadb_conn(autocommit=True), "SELECT COUNT(*) FROM `%s`.v" % target)[0][0] == 2


def _module_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(ROOT, ".run", "collections"), ROOT])
    return env


def test_kill_mid_import_then_rerun_gives_a_clean_imports_checksums(servers, mariadb_conn, databases, tmp_path):
    killed, clean = fresh("killed"), fresh("clean")
    databases += [killed, clean]
    src = str(tmp_path / "zep.sql.gz")
    bench_sql_import.write_dump(src, 24, seed=3)
    state = tmp_path / "state"
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": import_params(servers, src, killed, state)}))
    proc = subprocess.Popen([sys.executable, MODULE, str(args)], env=_module_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    conn = mariadb_conn(autocommit=True)
    deadline = time.time() + 300
    try:
        while time.time() < deadline:  # some rows in, far from all of them
            rows = query(conn, "SELECT COALESCE(SUM(TABLE_ROWS), 0) FROM information_schema.TABLES WHERE "
                               "TABLE_SCHEMA='%s'" % killed)[0][0]
            if rows and rows > 2000:
                break
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    record = Journal(str(state)).step("sql_import").record()
    assert record["status"] == "interrupted" and record["progress"]["done"] > 0
    resumed = sql_import.run(import_params(servers, src, killed, state), False)
    assert resumed["decision"] == "resume" and resumed["dropped"] >= 1
    fresh_run = sql_import.run(import_params(servers, src, clean, tmp_path / "state2"), False)
    assert resumed["tables"] == fresh_run["tables"]
    tables = ["event_summary", "event_archive", "config"]
    assert checksums(conn, killed, tables) == checksums(conn, clean, tables)
    assert sql_import.run(import_params(servers, src, killed, state), False)["changed"] is False
