"""Fixtures for tests against real servers, which scripts/test-servers starts (see docs/testing.md).

The servers are started once per session and left running afterwards, so the next run only checks
them (about a second). FERRY_SERVERS_STOP=1 stops them when the session ends.
"""
import json
import os
import subprocess
import sys
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

import pymongo
import pymysql
import pytest

# the one closed_port fixture, shared with the unit tests
from tests.unit.conftest import closed_port  # noqa: F401  pylint: disable=unused-import

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "test-servers"
RUN_DIR = Path(os.environ.get("FERRY_RUN_DIR") or ROOT / ".run") / "servers"


def run_script(command):
    return subprocess.run([sys.executable, str(SCRIPT), "--run-dir", str(RUN_DIR), command],
                          capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="session")
def servers():
    """The values of servers.env (FERRY_MARIADB_PORT, FERRY_VM_URL, ...), read-only."""
    result = run_script("up")
    if result.returncode != 0:
        pytest.fail(f"scripts/test-servers up failed (exit {result.returncode}):\n"
                    f"{result.stdout}{result.stderr}", pytrace=False)
    yield MappingProxyType(json.loads((RUN_DIR / "servers.json").read_text()))
    if os.environ.get("FERRY_SERVERS_STOP") == "1":
        run_script("down")


@pytest.fixture
def mariadb_conn(servers):
    """Factory: mariadb_conn(database=None, **pymysql_kwargs) -> a PyMySQL connection over TCP."""
    connections = []

    def connect(database=None, **kwargs):
        params = dict(host=servers["FERRY_MARIADB_HOST"], port=int(servers["FERRY_MARIADB_PORT"]),
                      user=servers["FERRY_MARIADB_USER"], password=servers["FERRY_MARIADB_PASSWORD"],
                      database=database, charset="utf8mb4", connect_timeout=10)
        connection = pymysql.connect(**{**params, **kwargs})
        connections.append(connection)
        return connection

    yield connect
    for connection in connections:
        if connection.open:
            connection.close()


@pytest.fixture
def mongo_client(servers):
    client = pymongo.MongoClient(servers["FERRY_MONGO_URI"], serverSelectionTimeoutMS=10_000)
    yield client
    client.close()


@pytest.fixture
def vm_url(servers):
    return servers["FERRY_VM_URL"]


class WebDAV(NamedTuple):
    url: str     # ends with "/"
    auth: tuple  # (user, password), as requests' auth= takes it


@pytest.fixture
def webdav(servers):
    return WebDAV(servers["FERRY_WEBDAV_URL"],
                  (servers["FERRY_WEBDAV_USER"], servers["FERRY_WEBDAV_PASSWORD"]))


@pytest.fixture
def ssh(servers):
    """host/port/user/key/known_hosts, and `command`: the ssh command line for rsync -e."""
    return {"host": servers["FERRY_SSH_HOST"], "port": int(servers["FERRY_SSH_PORT"]),
            "user": servers["FERRY_SSH_USER"], "key": servers["FERRY_SSH_KEY"],
            "known_hosts": servers["FERRY_SSH_KNOWN_HOSTS"], "command": servers["FERRY_SSH_COMMAND"]}
