"""`make demo` as a user runs it: the whole Zenoss 4 -> 5 migration (playbooks/zenoss4_to_zenoss5.yml over four
hosts through the test sshd, MariaDB to MariaDB, perf data into VictoriaMetrics), then the verification."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools.zenoss_compare import DATABASES, connect

ROOT = Path(__file__).resolve().parents[2]
DEMO_TOOL = ROOT / "tools" / "zenoss_demo.py"


def run_demo(demo_dir):
    env = dict(os.environ, FERRY_DEMO_DIR=str(demo_dir))
    return subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh")], env=env, capture_output=True, text=True,
                          timeout=900, check=False)


def recap(output):
    """The recap's counts summed over the hosts: {ok: n, changed: n, failed: n}."""
    totals = {}
    for key, value in re.findall(r"\b(ok|changed|failed)=(\d+)", output.split("PLAY RECAP")[-1]):
        totals[key] = totals.get(key, 0) + int(value)
    return totals


def table_rows(output, database):
    """{table: (source rows, target rows, source checksum, target checksum, verdict)} of one database's table."""
    start = re.search(r"\n  %s(  \(.*\))?\n" % re.escape(database), output).end()
    found = {}
    for line in output[start:].split("\n\n", 1)[0].splitlines()[1:]:  # after the header
        parts = line.split()
        if len(parts) >= 6 and parts[1].isdigit() and parts[2].isdigit():
            found[parts[0]] = (int(parts[1]), int(parts[2]), parts[3], parts[4], " ".join(parts[5:]))
    return found


def drop_databases(servers, prefix, which=("FERRY_MARIADB", "FERRY_MARIADB_TARGET")):
    for server in which:
        with connect(servers, server, autocommit=True) as conn, conn.cursor() as cursor:
            for name in DATABASES:
                cursor.execute("DROP DATABASE IF EXISTS `%s%s`" % (prefix, name))


@pytest.fixture
def demo_dir(servers, tmp_path):
    """A demo directory of its own; its databases (named after its seed) dropped afterwards."""
    path = tmp_path / "demo"
    yield path
    seed = path / "seed.json"
    if seed.exists():
        drop_databases(servers, json.loads(seed.read_text())["prefix"])


def test_demo_migrates_verifies_equal_then_changes_nothing(servers, demo_dir):
    first = run_demo(demo_dir)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-3000:]
    out = first.stdout
    assert "demo: generating Zenoss 4's databases" in out
    assert recap(out)["changed"] > 0 and recap(out)["failed"] == 0
    prefix = json.loads((demo_dir / "seed.json").read_text())["prefix"]
    # every table of the events and model databases: same rows and CHECKSUM TABLE on both servers
    for name in ("zenoss_zep", "zodb"):
        rows = table_rows(out, prefix + name)
        assert len(rows) >= 8 and all(row[4] == "equal" for row in rows.values()), rows
        assert all(row[0] == row[1] and row[2] == row[3] for row in rows.values())
    assert table_rows(out, prefix + "zenoss_zep")["event_archive"][:2] == (1000, 1000)
    assert "triggers 4 / 4 equal, routines 3 / 3 equal, views 3 / 3 equal" in out
    session = table_rows(out, prefix + "zodb_session")
    assert session and all(row[1] == 0 and row[4] == "no rows, as dumped" for row in session.values())
    sent, read = map(int, re.search(r"points sent by the workers (\d+), read back (\d+)  equal", out).groups())
    assert sent == read > 1000
    assert re.search(r"GAUGE values of the RRD files compared with the points: [1-9]\d*, differences 0  equal", out)
    keys = re.findall(r"key (\S+) \(\d+ points\)", out)
    assert "Devices/rtr01/os/interfaces/eth0" in keys and all(key.startswith("Devices/") for key in keys)
    assert "zport" not in out.split("Perf data")[1].split("Journal")[0]
    assert "zenoss_import_zenmigrate" in out and "zenoss_perf_send.main" in out  # the journals' tables
    assert "verification: everything equal, every step complete" in out

    again = run_demo(demo_dir)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-3000:]
    assert "generating" not in again.stdout  # the Zenoss 4 side is kept
    assert recap(again.stdout)["changed"] == 0 and recap(again.stdout)["ok"] > 50
    assert "demo: nothing changed (changed=0 on every host)" in again.stdout
    assert "points sent by the workers %d, read back %d  equal" % (sent, read) in again.stdout  # nothing doubled
    assert "verification: everything equal, every step complete" in again.stdout

    # the verification is no formality: a row changed on the target shows, and fails it
    with connect(servers, "FERRY_MARIADB_TARGET", autocommit=True) as conn, conn.cursor() as cursor:
        cursor.execute("UPDATE `%szodb`.object_state SET state = CONCAT(state, 'x') LIMIT 1" % prefix)
    changed = subprocess.run([sys.executable, str(DEMO_TOOL), "report", str(demo_dir),
                              os.path.join(servers["FERRY_SERVERS_DIR"], "servers.json")],
                             capture_output=True, text=True, timeout=300, check=False)
    assert changed.returncode == 1, changed.stdout[-3000:] + changed.stderr
    assert table_rows(changed.stdout, prefix + "zodb")["object_state"][4] == "DIFFERENT"
    assert "verification: DIFFERENCES" in changed.stdout


def test_demo_prepare_keeps_secrets_out_and_starts_over_when_the_servers_lost_its_databases(servers, demo_dir):
    servers_json = os.path.join(servers["FERRY_SERVERS_DIR"], "servers.json")

    def prepare():
        return subprocess.run([sys.executable, str(DEMO_TOOL), "prepare", str(demo_dir), servers_json],
                              capture_output=True, text=True, timeout=300, check=True).stdout

    assert "generating Zenoss 4's databases" in prepare()
    inventory = (demo_dir / "inventory.yml").read_text()
    assert servers["FERRY_MARIADB_PASSWORD"] not in inventory
    assert servers["FERRY_MARIADB_TARGET_PASSWORD"] not in inventory
    assert "generating" not in prepare()  # kept
    (demo_dir / "hosts" / "zenoss5" / "state").mkdir(parents=True)  # as if a migration had run
    prefix = json.loads((demo_dir / "seed.json").read_text())["prefix"]
    drop_databases(servers, prefix, which=("FERRY_MARIADB",))
    out = prepare()
    assert "starting this demo over" in out and "generating Zenoss 4's databases" in out
    assert not (demo_dir / "hosts" / "zenoss5" / "state").exists()
    with connect(servers, "FERRY_MARIADB") as conn, conn.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM `%szenoss_zep`.event_archive" % prefix)
        assert cursor.fetchone()[0] == 1000
