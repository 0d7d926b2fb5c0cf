# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The transfer across hosts on real VictoriaMetrics (issue 12): verification per series with the dump's tag
filter, and playbook ``opentsdb_to_victoriametrics`` with two workers run as an operator runs it (check mode on
fresh hosts, the run, the rerun, check mode again), into ``vm-default`` where a point sent twice is stored
twice. The multi-host scenario over SSH is molecule's ``tsdb_multihost``."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import subprocess
import sys
import uuid

import pytest
import requests

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.httpclient import HttpClient
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.transfer import restore_plan, verify
from ansible_collections.ferry.migrate.plugins.modules import tsdb_dump, tsdb_restore

from tests.live.test_tsdb_integrity import _LossyPut, assert_each_point_once, read_back
from tests.live.test_tsdb_transfer import DAY, ROOT, dump_args, recent_day, restore_args
from tests.support.otsdb_emulator import OpenTSDBEmulator

COLLECTIONS = os.path.join(os.environ.get("FERRY_RUN_DIR") or os.path.join(ROOT, ".run"), "collections")


@pytest.fixture
def emulator():
    with OpenTSDBEmulator() as emu:
        yield emu


def host_points(metric, host, base, count, step=60000):
    return [(metric, {"host": host, "cpu": str(cpu)}, base + index * step + cpu, index * 2 + cpu)
            for cpu in range(2) for index in range(count)]


def test_a_tag_filtered_transfer_is_verified_by_its_own_series(emulator, servers, tmp_path):
    """host=db01 sent through a target that loses some requests, db02's points of the same metric already there:
    counted per metric name the shortfall was hidden ("verified"); counted per series with the dump's filter it
    fails naming db01's series, and the rerun resends only what is missing."""
    put_url, read_url = servers["FERRY_VM_DEFAULT_OPENTSDB_URL"], servers["FERRY_VM_DEFAULT_URL"]
    metric = "multihost%s.sys.cpu.user" % uuid.uuid4().hex[:8]
    base = recent_day() - DAY
    db01, db02 = host_points(metric, "db01", base, 1440), host_points(metric, "db02", base, 1440)
    emulator.add_points(db01 + db02)
    body = [{"metric": m, "tags": t, "timestamp": ts, "value": v} for m, t, ts, v in db02]
    requests.post(put_url + "/api/put", json=body, timeout=60).raise_for_status()  # there before the transfer
    dest, state = tmp_path / "d", tmp_path / "s"
    dumped = tsdb_dump.run(dict(dump_args(emulator.url, base, base + DAY, dest, state), metric_prefix=metric,
                                tags={"host": "db01"}), False)
    assert dumped["counts"]["points"] == len(db01)
    proxy = _LossyPut(put_url, every=3)
    try:
        args = restore_args(dest, proxy.url, state, verify_url=read_url, points_per_request=200, connections=2,
                            verify_timeout=2.0)
        with pytest.raises(FerryError) as failure:
            tsdb_restore.run(args, False)
        message = str(failure.value)
        assert "fewer points than were sent" in message and metric in message and '"host":"db01"' in message
        assert '"host":"db02"' not in message

        proxy.every = 0
        rerun = tsdb_restore.run(args, False)
        assert 0 < rerun["resent"]["points"] < len(db01)
        assert rerun["verification"]["found_points"] == len(db01) and rerun["verification"]["series"] == 2
        assert_each_point_once(read_back(read_url, [metric], base, base + DAY), db01 + db02)
    finally:
        proxy.close()

    plan = restore_plan(str(dest))
    assert plan["filters"] == {metric: {"host": "db01"}}
    assert verify("victoriametrics", HttpClient(read_url), plan, timeout=0)["found_points"] == len(db01)


# -- the playbook with two workers ----------------------------------------------------------------------------
def playbook(inventory, extra_vars, check=False):
    """``ansible-playbook ferry.migrate.opentsdb_to_victoriametrics``: (return code, output)."""
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(inventory),
               "-e", "@%s" % extra_vars, "ferry.migrate.opentsdb_to_victoriametrics"] + (["--check"] if check else [])
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_CALLBACK_RESULT_FORMAT="yaml",
               ANSIBLE_LOCAL_TEMP=str(extra_vars.parent / "ansible-tmp"), ANSIBLE_DISPLAY_SKIPPED_HOSTS="1")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    return done.returncode, done.stdout + done.stderr


def recap(output):
    """``{host: {"changed": n, "failed": n}}`` from the play recap."""
    return dict((host, {"changed": int(changed), "failed": int(failed)})
                for host, changed, failed in re.findall(r"^(\w+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+"
                                                        r"failed=(\d+)", output, re.M))


def test_two_workers_run_twice_and_in_check_mode_send_each_point_once(emulator, servers, tmp_path):
    prefix = "multihost%s." % uuid.uuid4().hex[:8]
    base = recent_day() - 2 * DAY
    points = [p for n in range(6) for p in host_points("%sm%d" % (prefix, n), "h%d" % n, base, 720, step=120000)]
    emulator.add_points(points)
    emulator.inject("/api/query", delay=0.3, times=10 ** 6)  # slow enough for the wait to see them run
    inventory = tmp_path / "inventory.yml"
    hosts = dict((name, {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                         "host_dir": str(tmp_path / name)}) for name in ("worker1", "worker2"))
    inventory.write_text(json.dumps({"workers": {"hosts": hosts}}))
    extra_vars = tmp_path / "vars.json"
    extra_vars.write_text(json.dumps({
        "tsdb_transfer_source_url": emulator.url, "tsdb_transfer_target_url": servers["FERRY_VM_DEFAULT_OPENTSDB_URL"],
        "tsdb_transfer_verify_url": servers["FERRY_VM_DEFAULT_URL"], "tsdb_transfer_start": str(base),
        "tsdb_transfer_stop": str(base + DAY), "tsdb_transfer_metric_prefix": prefix,
        "tsdb_transfer_batch_interval": "10800", "tsdb_transfer_work_dir": "{{ host_dir }}/batches",
        "tsdb_transfer_state_dir": "{{ host_dir }}/state", "tsdb_transfer_min_free_mb": 1,
        "tsdb_transfer_poll_interval": 1}))

    code, output = playbook(inventory, extra_vars, check=True)  # fresh hosts: predicts the run, fails on nothing
    assert code == 0, output
    assert recap(output) == {"worker1": {"changed": 2, "failed": 0}, "worker2": {"changed": 2, "failed": 0}}, output
    assert "would write 8 of 8 batches" in output and not os.path.exists(str(tmp_path / "worker1"))

    code, output = playbook(inventory, extra_vars)
    assert code == 0, output
    assert recap(output) == {"worker1": {"changed": 1, "failed": 0}, "worker2": {"changed": 1, "failed": 0}}, output
    assert "RETRYING" not in output and "retries left" not in output
    assert re.search(r"^\[worker[12]\] tsdb_dump running \d+/8 batches", output, re.M), output  # progress each poll
    assert re.search(r"all shards: 6 metrics, %d points verified on the target" % len(points), output), output
    assert_each_point_once(read_back(servers["FERRY_VM_DEFAULT_URL"], ["%sm%d" % (prefix, n) for n in range(6)],
                                     base, base + DAY), points)

    for check in (False, True):  # the rerun changes nothing, and check mode says so
        code, output = playbook(inventory, extra_vars, check=check)
        assert code == 0, output
        assert recap(output) == {"worker1": {"changed": 0, "failed": 0},
                                 "worker2": {"changed": 0, "failed": 0}}, output
        verified = re.findall(r"complete earlier \([0-9TZ:-]+\), verified then: (\d+)\s+points", output)
        assert len(verified) == 2 and sum(int(n) for n in verified) == len(points), output
        assert "not verified" not in output and "n/a" not in output
    assert_each_point_once(read_back(servers["FERRY_VM_DEFAULT_URL"], ["%sm%d" % (prefix, n) for n in range(6)],
                                     base, base + DAY), points)
