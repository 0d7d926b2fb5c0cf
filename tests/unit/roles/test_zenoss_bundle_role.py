# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The zenoss_bundle role run by ansible-playbook on localhost (issue 12, defect 9): what its argument spec
promises is what the play output shows. The check's progress is printed at each poll while it runs, with no
"FAILED - RETRYING" line; the status table prints one line per list item; a failed check fails the role after
the table with the check's message; a rerun changes nothing."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

import ansible_collections.ferry.migrate as collection
from tools.gen_zenoss_bundle import build_bundle

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROLE = os.path.join(ROOT, "roles", "zenoss_bundle")
# The directory holding ansible_collections/ferry/migrate (the root conftest.py's link, or ansible-test's copy).
COLLECTIONS = os.path.dirname(os.path.dirname(os.path.dirname(list(collection.__path__)[0])))

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  roles:
    - role: ferry.migrate.zenoss_bundle
"""


def run_role(tmp_path, bundle, *extra):
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    extra_vars = dict(zenoss_bundle_path=bundle, zenoss_bundle_dest=str(tmp_path / "extracted"),
                      zenoss_bundle_state_dir=str(tmp_path / "state"), zenoss_bundle_poll_interval=1)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
               ANSIBLE_HOME=str(tmp_path / "ansible-home"), ANSIBLE_ASYNC_DIR=str(tmp_path / "async"),
               PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "ansible.cli.playbook", str(playbook), "-e", json.dumps(extra_vars)]
                          + list(extra), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=300, check=False)


def recap(output):
    counts = re.findall(r"\b(ok|changed|failed)=(\d+)", output.split("PLAY RECAP")[-1])
    return dict((key, int(value)) for key, value in counts)


def printed_table(output):
    """The lines of the 'Print the status table' task's msg, as printed."""
    section = output.split("Print the status table")[1].split("TASK [")[0]
    body = section[section.index("{"):section.rindex("}") + 1]
    return json.loads(body)["msg"]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles")
    good = build_bundle(str(out), devices=2, rrds_per_device=2, pad_bytes=32 << 20, name="4x-export-role.tar")
    bad = build_bundle(str(out), devices=1, rrds_per_device=1, variant="missing_md5", name="4x-export-nomd5.tar")
    return good["path"], bad["path"]


def test_the_role_prints_the_checks_progress_while_it_runs_then_the_table_as_lines(tmp_path, bundles):
    first = run_role(tmp_path, bundles[0])
    assert first.returncode == 0, first.stdout[-4000:]
    assert "FAILED - RETRYING" not in first.stdout
    # one line per poll while the check runs (pending before its journal record exists), the last one complete
    progress = re.findall(r"^\[localhost\] bundle_check (\w+)(.*)$", first.stdout, re.M)
    assert progress, first.stdout[-4000:]
    assert set(status for status, _rest in progress) <= {"pending", "running", "complete"}
    # (the line's exact layout is wait_steps' own: the whole bundle read, 100 %, the elapsed time)
    assert re.search(r"\b(\d+)/\1 bytes\b.*\b100\.0%.*\d+:\d\d:\d\d", progress[-1][1]), progress[-1]
    assert progress[-1][0] == "complete"
    table = printed_table(first.stdout)
    assert table[0].split()[:2] == ["STEP", "STATUS"] and table[1].split()[:2] == ["bundle_check", "complete"]
    assert recap(first.stdout)["changed"] == 1 and recap(first.stdout)["failed"] == 0

    again = run_role(tmp_path, bundles[0])
    assert again.returncode == 0, again.stdout[-4000:]
    assert recap(again.stdout)["changed"] == 0
    assert re.search(r"^\[localhost\] bundle_check complete ", again.stdout, re.M)


def test_check_mode_runs_the_check_synchronously_and_extracts_nothing(tmp_path, bundles):
    checked = run_role(tmp_path, bundles[0], "--check", "-e", "zenoss_bundle_poll_interval=0.5")  # fractions too
    assert checked.returncode == 0, checked.stdout[-4000:]
    assert not (tmp_path / "extracted").exists() or not os.listdir(str(tmp_path / "extracted"))
    assert "FAILED - RETRYING" not in checked.stdout


def test_a_failed_check_fails_the_role_after_the_table_with_its_message(tmp_path, bundles):
    failed = run_role(tmp_path, bundles[1])
    assert failed.returncode != 0
    table = printed_table(failed.stdout)
    assert table[1].split()[:2] == ["bundle_check", "failed"] and "backup.md5" in table[1]
    assert re.search(r"fatal: \[localhost\]: FAILED! => .*has no backup\.md5", failed.stdout)
    assert recap(failed.stdout)["failed"] == 1


def test_the_argument_spec_describes_what_the_role_does():
    with open(os.path.join(ROLE, "meta", "argument_specs.yml")) as handle:
        spec = yaml.safe_load(handle)["argument_specs"]["main"]
    with open(os.path.join(ROLE, "tasks", "main.yml")) as handle:
        tasks = yaml.safe_load(handle)[0]["block"]
    description = " ".join(spec["description"])
    waits = [task for task in tasks if "ferry.migrate.wait_steps" in task]
    assert "M(ferry.migrate.wait_steps)" in description and "progress" in description and len(waits) == 1
    assert not [task for task in tasks if "until" in task or "retries" in task]
    assert waits[0]["ferry.migrate.wait_steps"]["poll_interval"] == "{{ zenoss_bundle_poll_interval }}"
    assert spec["options"]["zenoss_bundle_poll_interval"]["description"].startswith("Seconds between two polls")
