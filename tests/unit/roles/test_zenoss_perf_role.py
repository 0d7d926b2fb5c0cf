# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The zenoss_perf role run by ansible-playbook on localhost (one worker, the bundle local, an OpenTSDB emulator as
the target): both trees (perf/ and the remote collector's) converted, sent and verified; the rerun changes nothing;
a directory without perf trees and a host with no shard fail with a message naming the cause."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import shutil
import subprocess
import sys
import zlib

import pytest

import ansible_collections.ferry.migrate as collection
from ansible_collections.ferry.migrate.plugins.modules import bundle_check, rrd_to_tsdb
from tests.support.otsdb_emulator import OpenTSDBEmulator
from tools.gen_zenoss_bundle import build_bundle

COLLECTIONS = os.path.dirname(os.path.dirname(os.path.dirname(list(collection.__path__)[0])))

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  roles:
    - role: ferry.migrate.zenoss_perf
  post_tasks:
    - name: Show the result
      ansible.builtin.debug:
        msg: "RESULT {{ zenoss_perf_result | to_json }}"
"""


def run_role(tmp_path, check=False, **extra_vars):
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
               ANSIBLE_HOME=str(tmp_path / "ansible-home"), ANSIBLE_ASYNC_DIR=str(tmp_path / "async"),
               PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "ansible.cli.playbook", str(playbook), "-e", json.dumps(extra_vars),
                           "-e", "ansible_python_interpreter=" + sys.executable] + (["--check"] if check else []),
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          timeout=600, check=False)


def result_of(output):
    return json.loads(re.search(r'"RESULT (\{.*\})"', output).group(1).replace('\\"', '"'))


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    root = tmp_path_factory.mktemp("zenoss-perf-role")
    info = build_bundle(str(root), devices=3, rrds_per_device=2, remote_collectors=1, days=1, seed=5)
    args = dict((name, option.get("default")) for name, option in bundle_check.argument_spec().items())
    args.update(path=info["path"], dest=str(root / "extracted"), state_dir=str(root / "state"), min_free_mb=0)
    return bundle_check.run(args, False)["extracted_path"]


def role_vars(tmp_path, extracted, url, **more):
    values = dict(zenoss_perf_bundle_dir=extracted, zenoss_perf_target_host="localhost", zenoss_perf_rsync_source="",
                  zenoss_perf_url=url, zenoss_perf_kind="opentsdb", zenoss_perf_work_dir=str(tmp_path / "work"),
                  zenoss_perf_state_dir=str(tmp_path / "state"), zenoss_perf_accelerators=[], zenoss_perf_workers=1,
                  zenoss_perf_min_free_mb=0, zenoss_perf_poll_interval=0.5)
    values.update(more)
    return values


def test_role_imports_both_trees_then_changes_nothing(tmp_path, extracted):
    with OpenTSDBEmulator() as emulator:
        first = run_role(tmp_path, **role_vars(tmp_path, extracted, emulator.url))
        assert first.returncode == 0, first.stdout[-4000:]
        result = result_of(first.stdout)
        assert result["trees"] == ["collector-localhost-collector1", "main"]
        assert result["verified"]["differences"] == 0 and result["verified"]["series"] > 0
        assert result["verified"]["found_points"] == result["sent_points"] == emulator.count() > 0
        assert "all shards:" in first.stdout
        second = run_role(tmp_path, **role_vars(tmp_path, extracted, emulator.url))
        assert second.returncode == 0, second.stdout[-4000:]
        assert re.search(r"localhost\s*:\s*ok=\d+\s+changed=0\s", second.stdout), second.stdout[-3000:]
        wanted = {"collector-localhost-collector1": "skip", "main": "skip"}
    assert result_of(second.stdout)["decisions"]["verify"] == wanted


def test_role_refuses_a_directory_without_perf_trees(tmp_path):
    (tmp_path / "empty").mkdir()
    failed = run_role(tmp_path, **role_vars(tmp_path, str(tmp_path / "empty"), "http://127.0.0.1:1"))
    assert failed.returncode != 0 and "holds neither perf/ nor collectors/<name>/perf/" in failed.stdout


def test_role_refuses_a_host_without_a_shard(tmp_path, extracted):
    failed = run_role(tmp_path, **role_vars(tmp_path, extracted, "http://127.0.0.1:1", zenoss_perf_shard_index=2,
                                            zenoss_perf_shard_count=2))
    assert failed.returncode != 0 and "shard 2 is not below zenoss_perf_shard_count (2)" in failed.stdout


def tree_files(root):
    return sorted(os.path.relpath(os.path.join(top, name), root)
                  for top, _dirs, names in os.walk(root) for name in names)


def test_each_worker_pulls_only_its_shard(tmp_path, extracted):
    """Two workers (shards 0 and 1 of 2, run in turn): each pulls its shard's files and nothing more, plus the
    X_GAUGE.rrd of the other shard that decides the skip of an X.rrd of its own; check mode predicted the pull; the
    two together send what a conversion of the whole bundle gives, the X.rrd not among it."""
    bundle = str(tmp_path / "bundle")
    shutil.copytree(extracted, bundle)
    perf = os.path.join(bundle, "perf")
    rrds = [name for name in tree_files(perf) if name.startswith("Devices/") and name.endswith(".rrd")]
    for number in range(100):  # X_GAUGE.rrd and X.rrd (other data) in different shards
        twin = os.path.join(os.path.dirname(rrds[0]), "t%d_GAUGE.rrd" % number)
        if zlib.crc32(twin.encode()) % 2 != zlib.crc32(twin.replace("_GAUGE", "").encode()) % 2:
            break
    shutil.copy(os.path.join(perf, rrds[0]), os.path.join(perf, twin))
    shutil.copy(os.path.join(perf, rrds[1]), os.path.join(perf, twin.replace("_GAUGE", "")))
    trees = {"perf": perf}
    trees.update(("collectors/%s/perf" % name, os.path.join(bundle, "collectors", name, "perf"))
                 for name in os.listdir(os.path.join(bundle, "collectors")))
    with OpenTSDBEmulator() as emulator:
        for index in (0, 1):
            values = role_vars(tmp_path, bundle, emulator.url, zenoss_perf_shard_index=index, zenoss_perf_shard_count=2,
                               zenoss_perf_work_dir=str(tmp_path / ("work%d" % index)),
                               zenoss_perf_state_dir=str(tmp_path / ("state%d" % index)))
            checked = run_role(tmp_path, check=True, **values)
            assert checked.returncode == 0, checked.stdout[-4000:]
            assert not os.path.exists(values["zenoss_perf_work_dir"] + "/bundle/perf")
            done = run_role(tmp_path, **values)
            assert done.returncode == 0, done.stdout[-4000:]
            predicted, result = result_of(checked.stdout), result_of(done.stdout)
            assert predicted["changed"]
            assert predicted["pulled_files"] == result["pulled_files"] == result["listed"]["files"]
            received = values["zenoss_perf_work_dir"] + "/bundle"
            expected = ["dmd_uuid.txt", "rrdpath.map"]
            for prefix, root in trees.items():
                for name in tree_files(root):
                    decider = (name == twin and zlib.crc32(twin.replace("_GAUGE", "").encode()) % 2 == index)
                    if zlib.crc32(name.encode()) % 2 == index or decider:
                        expected.append(prefix + "/" + name)
            assert tree_files(received) == sorted(expected)
            assert result["listed"]["deciders"] == (zlib.crc32(twin.encode()) % 2 != index)
            again = run_role(tmp_path, check=True, **values)
            assert re.search(r"localhost\s*:\s*ok=\d+\s+changed=0\s", again.stdout), again.stdout[-3000:]
        whole = sum(rrd_to_tsdb.run(dict(((name, option.get("default")) for name, option
                                          in rrd_to_tsdb.argument_spec().items()), src=root,
                                         dest=str(tmp_path / "whole" / prefix), state_dir=str(tmp_path / "ws"),
                                         step="whole." + prefix.replace("/", "_"), workers=1),
                                    False)["counts"]["points"] for prefix, root in trees.items())
        assert emulator.count() == whole > 0


def test_check_mode_before_the_bundle_is_extracted_predicts_a_whole_import(tmp_path):
    """Check mode of the whole migration on fresh hosts: the import has not extracted the bundle yet, so there is
    nothing to plan from; the role says a run would import the share and writes nothing. A real run fails there."""
    missing = str(tmp_path / "extracted" / "4x-export")
    checked = run_role(tmp_path, check=True, **role_vars(tmp_path, missing, "http://127.0.0.1:1"))
    assert checked.returncode == 0, checked.stdout[-4000:]
    result = result_of(checked.stdout)
    assert result["changed"] is True and result["check_mode"] is True and result["trees"] == []
    assert "is not there yet" in result["pending"] and result["shard"] == [0, 1]
    assert re.search(r"localhost\s*:\s*ok=\d+\s+changed=[1-9]", checked.stdout), checked.stdout[-2000:]
    assert sorted(os.listdir(tmp_path)) == ["ansible-home", "play.yml"]  # no work, state nor async directory
    failed = run_role(tmp_path, **role_vars(tmp_path, missing, "http://127.0.0.1:1"))
    assert failed.returncode != 0 and "holds neither perf/ nor collectors/<name>/perf/" in failed.stdout
