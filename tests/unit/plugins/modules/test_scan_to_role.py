# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""scan_to_role as a module: its documentation matches its argument spec, secrets are no_log, and it runs as
Ansible runs it (bad option combinations fail before anything is written; a role is made, then left alone)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys
from pathlib import Path

from ansible_collections.ferry.migrate.plugins.doc_fragments.endpoint import ModuleDocFragment as EndpointFragment
from ansible_collections.ferry.migrate.plugins.doc_fragments.state import ModuleDocFragment as StateFragment
from ansible_collections.ferry.migrate.plugins.module_utils.scan import role
from ansible_collections.ferry.migrate.plugins.modules import scan_to_role
from tests.support import module_docs
from tests.unit.plugins.module_utils.scan.test_role import write_overlay, write_report

ROOT = Path(__file__).resolve().parents[4]


class StoreFragment:  # the endpoint fragment's STORE part, as Ansible reads ferry.migrate.endpoint.store
    DOCUMENTATION = EndpointFragment.STORE


def test_documentation_matches_the_spec():
    returned = module_docs.assert_documentation_matches_the_spec(
        scan_to_role, {"ferry.migrate.state": StateFragment, "ferry.migrate.endpoint": EndpointFragment,
                       "ferry.migrate.endpoint.store": StoreFragment},
        secrets=("url_password", "bearer_token"))
    assert {"role", "role_name", "decision", "counts", "skipped", "skipped_count"} == set(returned)
    assert scan_to_role.argument_spec()["include"]["default"] == role.DEFAULT_INCLUDE
    assert scan_to_role.argument_spec()["max_file_size"]["default"] == 1 << 20


def run_module(tmp_path, args, check=False):
    """The module run as Ansible runs it: a subprocess reading ANSIBLE_MODULE_ARGS."""
    path = tmp_path / "args.json"
    if check:
        args = dict(args, _ansible_check_mode=True)
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=str(ROOT / ".run" / "collections"))
    done = subprocess.run([sys.executable, str(ROOT / "plugins" / "modules" / "scan_to_role.py"), str(path)],
                          capture_output=True, text=True, env=env, check=False, cwd=str(tmp_path))
    return json.loads(done.stdout)


def test_url_and_src_together_are_refused(tmp_path):
    result = run_module(tmp_path, {"report": str(tmp_path / "r.gz"), "src": str(tmp_path / "x.tar"),
                                   "url": "http://127.0.0.1:1/", "instance": "a", "dest": str(tmp_path / "roles/x"),
                                   "state_dir": str(tmp_path / "state")})
    assert result["failed"] and "mutually exclusive" in result["msg"]
    assert not (tmp_path / "roles").exists()


def test_token_is_never_shown(tmp_path):
    result = run_module(tmp_path, {"report": str(tmp_path / "r.gz"), "url": "http://127.0.0.1:1/",
                                   "bearer_token": "t0ken-s3cret", "dest": str(tmp_path / "roles/x"),
                                   "state_dir": str(tmp_path / "state")})
    assert result["failed"] and "instance" in result["msg"]
    assert "t0ken-s3cret" not in json.dumps(result)


def test_a_role_is_made_then_nothing_changes(tmp_path):
    report = write_report(tmp_path / "report.jsonl.gz")
    src = write_overlay(tmp_path / "overlay.tar", report)
    args = {"report": str(report), "src": str(src), "dest": str(tmp_path / "roles" / "web01"),
            "state_dir": str(tmp_path / "state")}
    predicted = run_module(tmp_path, args, check=True)
    assert predicted["changed"] is True and not (tmp_path / "roles").exists(), predicted
    first = run_module(tmp_path, args)
    assert first["changed"] is True and first["counts"] == predicted["counts"], first
    assert first["skipped_count"] == 2 and "2 name(s) cannot be carried" in json.dumps(first["warnings"])
    assert (tmp_path / "roles/web01/tasks/main.yml").is_file()
    second = run_module(tmp_path, args)
    assert second["changed"] is False and second["decision"] == "skip"


def test_bad_max_file_size_is_refused(tmp_path):
    report = write_report(tmp_path / "report.jsonl.gz")
    result = run_module(tmp_path, {"report": str(report), "dest": str(tmp_path / "roles/x"),
                                   "max_file_size": (1 << 30) + 1, "state_dir": str(tmp_path / "state")})
    assert result["failed"] and "max_file_size" in result["msg"] and "out of range" in result["msg"]
