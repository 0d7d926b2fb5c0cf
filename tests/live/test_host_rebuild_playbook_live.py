# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/host_scan_rebuild.yml across two hosts over SSH (issue 15): ``source1`` holds the prepared root
(tests/support/scan_tree.py), ``target1`` an empty one, each a separate inventory host reached through the test
sshd with a directory of its own; the store is the real nginx WebDAV with basic auth. As an operator runs it:
check mode on fresh hosts (nothing written on either host nor in the store), the run, the tree comparison, a
rerun that changes nothing, then two files changed on the source and a run that uploads exactly those two."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import subprocess
import sys
import uuid

from tests.live.test_tsdb_multihost_live import COLLECTIONS, recap
from tests.support.scan_tree import make_prepared_root
from tests.live.test_scan_rebuild_live import ACCOUNT_FILES
from tests.support.tree_compare import covered_differences


def playbook(inventory, extra_vars, check=False):
    """``ansible-playbook ferry.migrate.host_scan_rebuild``: (return code, output)."""
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(inventory),
               "-e", "@%s" % extra_vars, "ferry.migrate.host_scan_rebuild"] + (["--check"] if check else [])
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_CALLBACK_RESULT_FORMAT="yaml",
               ANSIBLE_LOCAL_TEMP=str(extra_vars.parent / "ansible-tmp"), ANSIBLE_HOST_KEY_CHECKING="True")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)
    return done.returncode, re.sub(r"\n\s+(?=\S)", " ", done.stdout + done.stderr)  # wrapped YAML lines joined


def inventory_for(servers, tmp_path):
    """source1 and target1 over the test sshd, each with its root and state directory under its own host dir."""
    ssh = {"ansible_connection": "ssh", "ansible_host": servers["FERRY_SSH_HOST"],
           "ansible_port": int(servers["FERRY_SSH_PORT"]), "ansible_user": servers["FERRY_SSH_USER"],
           "ansible_ssh_private_key_file": str(servers["FERRY_SSH_KEY"]),
           "ansible_ssh_common_args": "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
                                      % servers["FERRY_SSH_KNOWN_HOSTS"],
           "ansible_python_interpreter": sys.executable}

    def host(name):
        home = tmp_path / name
        return dict(ssh, host_rebuild_root=str(home / "root"), host_rebuild_state_dir=str(home / "state"))
    inventory = {"all": {"children": {"source": {"hosts": {"source1": host("source1")}},
                                      "target": {"hosts": {"target1": host("target1")}}}}}
    path = tmp_path / "inventory.yml"
    path.write_text(json.dumps(inventory))
    return path


def store_files(root, instance):
    top = os.path.join(str(root), instance)
    return sorted(os.path.relpath(os.path.join(d, f), top) for d, _s, fs in os.walk(top) for f in fs)


def test_scan_upload_rebuild_across_two_hosts(servers, tmp_path):
    source_root, target_root = tmp_path / "source1" / "root", tmp_path / "target1" / "root"
    facts = make_prepared_root(str(source_root))
    target_root.mkdir(parents=True)
    instance = "pb-%s" % uuid.uuid4().hex[:8]
    inventory = inventory_for(servers, tmp_path)
    extra_vars = tmp_path / "vars.json"
    extra_vars.write_text(json.dumps({
        "host_rebuild_store_url": servers["FERRY_WEBDAV_URL"], "host_rebuild_store_username": servers["FERRY_WEBDAV_USER"],
        "host_rebuild_store_password": servers["FERRY_WEBDAV_PASSWORD"], "host_rebuild_instance": instance,
        "host_rebuild_hash_workers": 2, "host_rebuild_poll_interval": 0.2}))
    store_root = servers["FERRY_WEBDAV_ROOT"]

    code, output = playbook(inventory, extra_vars, check=True)  # fresh hosts: predicts, writes nothing anywhere
    assert code == 0, output
    assert "pending" in output, output
    assert not (tmp_path / "source1" / "state").exists() and not (tmp_path / "target1" / "state").exists()
    assert os.listdir(str(target_root)) == [] and store_files(store_root, instance) == []
    assert servers["FERRY_WEBDAV_PASSWORD"] not in output

    code, output = playbook(inventory, extra_vars)
    assert code == 0, output
    assert recap(output)["source1"]["failed"] == 0 and recap(output)["target1"]["failed"] == 0, output
    assert re.search(r"target1 from %s: [^\n]*drift: 0" % instance, output), output
    assert covered_differences(str(source_root), str(target_root), facts, allow_extra=ACCOUNT_FILES) == []
    assert servers["FERRY_WEBDAV_PASSWORD"] not in output

    for check in (False, True):  # a rerun with nothing new changes nothing, and check mode says so
        code, output = playbook(inventory, extra_vars, check=check)
        assert code == 0, output
        assert recap(output) == {"source1": {"changed": 0, "failed": 0},
                                 "target1": {"changed": 0, "failed": 0}}, output

    (source_root / "etc" / "ferry-local.conf").write_bytes(b"local = false\n")
    (source_root / "opt" / "app" / "data" / "blob.bin").write_bytes(os.urandom(70000))
    code, output = playbook(inventory, extra_vars)
    assert code == 0, output
    assert re.search(r"source1: [^\n]*: 2 object\(s\)", output), output
    assert covered_differences(str(source_root), str(target_root), facts, allow_extra=ACCOUNT_FILES) == []
