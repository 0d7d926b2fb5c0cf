"""The servers of scripts/test-servers work as the migration tests need them to."""
import json
import shlex
import subprocess
import time
import uuid

import pymongo
import pymysql
import pytest
import requests


def unique(prefix):
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def run(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)


def test_mariadb_tcp_with_password(mariadb_conn):
    database = unique("ferry_live")
    with mariadb_conn() as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {database}")
        try:
            cursor.execute(f"CREATE TABLE {database}.items (id INT PRIMARY KEY, name VARCHAR(64))")
            cursor.executemany(f"INSERT INTO {database}.items VALUES (%s, %s)", [(1, "a"), (2, "ü✓")])
            conn.commit()
            cursor.execute(f"SELECT id, name FROM {database}.items ORDER BY id")
            assert cursor.fetchall() == ((1, "a"), (2, "ü✓"))
            cursor.execute("SELECT @@port, @@character_set_server")
            assert cursor.fetchone()[1] == "utf8mb4"
        finally:
            cursor.execute(f"DROP DATABASE {database}")


def test_mariadb_wrong_password_is_refused(mariadb_conn):
    with pytest.raises(pymysql.err.OperationalError) as excinfo:
        mariadb_conn(password="wrong")
    assert excinfo.value.args[0] == 1045  # ER_ACCESS_DENIED_ERROR


def test_vm_keeps_points_from_years_ago(servers, vm_url):
    metric = unique("ferry.live")
    timestamp = int(time.time()) - 5 * 365 * 86400
    response = requests.post(f"{servers['FERRY_VM_OPENTSDB_URL']}/api/put", timeout=10,
                             json={"metric": metric, "timestamp": timestamp, "value": 42.5,
                                   "tags": {"host": "web1"}})
    assert response.status_code == 204, response.text
    requests.post(f"{vm_url}/internal/force_flush", timeout=10).raise_for_status()
    response = requests.get(f"{vm_url}/api/v1/export", timeout=10,
                            params={"match[]": f'{{__name__="{metric}"}}', "start": timestamp - 60})
    response.raise_for_status()
    series = [json.loads(line) for line in response.text.splitlines()]
    assert series == [{"metric": {"__name__": metric, "host": "web1"},
                       "values": [42.5], "timestamps": [timestamp * 1000]}]


def test_secantus_documents_with_explicit_ids(mongo_client):
    database = mongo_client[unique("ferry_live")]
    try:
        documents = [{"_id": "host-a", "n": 1}, {"_id": 7, "n": 2}]
        database.items.insert_many(documents)
        assert list(database.items.find({}, sort=[("n", 1)])) == documents
    finally:
        mongo_client.drop_database(database.name)


def test_secantus_wrong_password_is_refused(servers):
    client = pymongo.MongoClient(host=servers["FERRY_MONGO_HOST"], port=int(servers["FERRY_MONGO_PORT"]),
                                 username=servers["FERRY_MONGO_USER"], password="wrong",
                                 authSource="admin", authMechanism="SCRAM-SHA-256",
                                 directConnection=True, serverSelectionTimeoutMS=10_000)
    try:
        with pytest.raises(pymongo.errors.OperationFailure) as excinfo:
            client.admin.command("listDatabases")
        assert excinfo.value.code == 18  # AuthenticationFailed
    finally:
        client.close()


def test_webdav_put_get_delete(webdav):
    url = f"{webdav.url}{unique('live')}/nested/file.bin"  # create_full_put_path makes the dirs
    body = bytes(range(256)) * 64
    assert requests.put(url, data=body, auth=webdav.auth, timeout=10).status_code in (201, 204)
    response = requests.get(url, auth=webdav.auth, timeout=10)
    assert (response.status_code, response.content) == (200, body)
    assert requests.delete(url, auth=webdav.auth, timeout=10).status_code == 204
    assert requests.get(url, auth=webdav.auth, timeout=10).status_code == 404


def test_webdav_needs_auth(webdav):
    assert requests.get(webdav.url, timeout=10).status_code == 401
    assert requests.put(f"{webdav.url}anon.txt", data=b"x", timeout=10).status_code == 401
    assert requests.get(webdav.url, auth=(webdav.auth[0], "wrong"), timeout=10).status_code == 401


def test_ssh_runs_a_command(ssh):
    result = run([*shlex.split(ssh["command"]), f"{ssh['user']}@{ssh['host']}", "echo ok"])
    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr


def test_rsync_over_ssh(ssh, tmp_path):
    source, target = tmp_path / "src", tmp_path / "dst"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("alpha\n")
    (source / "sub" / "b.bin").write_bytes(b"\0\1\2" * 1000)
    result = run(["rsync", "-a", "-e", ssh["command"], f"{source}/", f"{ssh['user']}@{ssh['host']}:{target}/"])
    assert result.returncode == 0, result.stderr
    assert (target / "a.txt").read_text() == "alpha\n"
    assert (target / "sub" / "b.bin").read_bytes() == b"\0\1\2" * 1000


def test_servers_env_is_a_shell_file(servers):
    """Scripts source it under `set -e`: every name must be a shell name (vm-default's log once was not)."""
    env_file = f"{servers['FERRY_SERVERS_DIR']}/servers.env"
    result = run(["bash", "-c", 'set -eu; source "$1"; echo "$FERRY_VM_DEFAULT_LOG"', "-", env_file])
    assert result.returncode == 0 and not result.stderr, result.stderr
    assert result.stdout.strip() == servers["FERRY_VM_DEFAULT_LOG"]


def connect_target(servers, **kwargs):
    """PyMySQL over TCP to the second MariaDB, mariadb-target (the migration's target database server)."""
    params = dict(host=servers["FERRY_MARIADB_TARGET_HOST"], port=int(servers["FERRY_MARIADB_TARGET_PORT"]),
                  user=servers["FERRY_MARIADB_TARGET_USER"], password=servers["FERRY_MARIADB_TARGET_PASSWORD"],
                  charset="utf8mb4", connect_timeout=10)
    return pymysql.connect(**{**params, **kwargs})


def test_mariadb_target_is_a_separate_server(servers, mariadb_conn):
    """Source and target are two servers: own port, data directory, socket and password; a database made on one
    is not on the other."""
    assert servers["FERRY_MARIADB_TARGET_PORT"] != servers["FERRY_MARIADB_PORT"]
    assert servers["FERRY_MARIADB_TARGET_SOCKET"] != servers["FERRY_MARIADB_SOCKET"]
    assert servers["FERRY_MARIADB_TARGET_PASSWORD"] != servers["FERRY_MARIADB_PASSWORD"]
    database = unique("ferry_live_target")
    with connect_target(servers) as target, target.cursor() as on_target, \
            mariadb_conn() as source, source.cursor() as on_source:
        on_target.execute("SELECT @@port, @@datadir, @@character_set_server, @@max_allowed_packet")
        port, datadir, charset, packet = on_target.fetchone()
        on_source.execute("SELECT @@datadir")
        assert (port, charset, packet) == (int(servers["FERRY_MARIADB_TARGET_PORT"]), "utf8mb4", 256 << 20)
        assert datadir != on_source.fetchone()[0]
        on_target.execute(f"CREATE DATABASE {database}")
        try:
            on_source.execute("SHOW DATABASES LIKE %s", (database,))
            assert on_source.fetchall() == ()
            on_target.execute("SHOW DATABASES LIKE %s", (database,))
            assert on_target.fetchall() == ((database,),)
        finally:
            on_target.execute(f"DROP DATABASE {database}")


def test_mariadb_target_socket_and_defaults_file(servers):
    """The socket serves user ferry, the defaults file root (what a role's login_unix_socket / config_file take)."""
    with connect_target(servers, host=None, unix_socket=servers["FERRY_MARIADB_TARGET_SOCKET"]) as conn, \
            conn.cursor() as cursor:
        cursor.execute("SELECT CURRENT_USER()")
        assert cursor.fetchone()[0] == "ferry@localhost"
    result = run(["mariadb", f"--defaults-file={servers['FERRY_MARIADB_TARGET_DEFAULTS_FILE']}", "-N", "-e",
                  "SELECT CURRENT_USER(), @@port"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["root@localhost", servers["FERRY_MARIADB_TARGET_PORT"]]


def test_mariadb_target_wrong_password_is_refused(servers):
    with pytest.raises(pymysql.err.OperationalError) as excinfo:
        connect_target(servers, password=servers["FERRY_MARIADB_PASSWORD"])  # the source's: another server
    assert excinfo.value.args[0] == 1045
