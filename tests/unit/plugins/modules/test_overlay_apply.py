# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""overlay_apply as a module: its documentation matches its argument spec, secrets are no_log, and it runs as
Ansible runs it (a bad choice of url and src fails before anything happens; a local archive is applied)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys
from pathlib import Path

from ansible_collections.ferry.migrate.plugins.doc_fragments.endpoint import ModuleDocFragment as EndpointFragment
from ansible_collections.ferry.migrate.plugins.doc_fragments.state import ModuleDocFragment as StateFragment
from ansible_collections.ferry.migrate.plugins.modules import overlay_apply
from tests.support import module_docs
from tests.unit.plugins.module_utils.scan.test_apply import make_archive, regular

ROOT = Path(__file__).resolve().parents[4]


class StoreFragment:  # the endpoint fragment's STORE part, as Ansible reads ferry.migrate.endpoint.store
    DOCUMENTATION = EndpointFragment.STORE


def test_documentation_matches_the_spec():
    returned = module_docs.assert_documentation_matches_the_spec(
        overlay_apply, {"ferry.migrate.state": StateFragment, "ferry.migrate.endpoint": EndpointFragment,
                        "ferry.migrate.endpoint.store": StoreFragment},
        secrets=("url_password", "bearer_token"))
    assert {"decision", "applied", "changes", "packages", "users", "timezone", "network", "drift",
            "drift_count", "scan"} <= set(returned)


def run_module(tmp_path, args):
    """The module run as Ansible runs it: a subprocess reading ANSIBLE_MODULE_ARGS."""
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=str(ROOT / ".run" / "collections"))
    done = subprocess.run([sys.executable, str(ROOT / "plugins" / "modules" / "overlay_apply.py"), str(path)],
                          capture_output=True, text=True, env=env, check=False, cwd=str(tmp_path))
    return json.loads(done.stdout)


def test_url_and_src_together_are_refused(tmp_path):
    result = run_module(tmp_path, {"src": str(tmp_path / "x.tar"), "url": "http://127.0.0.1:1/", "instance": "a",
                                   "state_dir": str(tmp_path / "state"), "root": str(tmp_path / "root")})
    assert result["failed"] and "mutually exclusive" in result["msg"]
    assert not (tmp_path / "root").exists()


def test_url_without_instance_is_refused(tmp_path):
    result = run_module(tmp_path, {"url": "http://127.0.0.1:1/", "url_password": "s3cret",
                                   "state_dir": str(tmp_path / "state"), "root": str(tmp_path / "root")})
    assert result["failed"] and "instance" in result["msg"]


def test_a_local_archive_is_applied_then_nothing_changes(tmp_path):
    src = make_archive(tmp_path, [regular("etc/motd", b"hello\n", mode=0o4755)], [b"hello\n"])
    args = {"src": str(src), "root": str(tmp_path / "root"), "state_dir": str(tmp_path / "state"),
            "users": False, "timezone": False}
    first = run_module(tmp_path, args)
    assert first["changed"] is True and first["drift_count"] == 0, first
    assert (tmp_path / "root/etc/motd").read_bytes() == b"hello\n"
    assert os.stat(tmp_path / "root/etc/motd").st_mode & 0o7777 == 0o4755
    second = run_module(tmp_path, dict(args, force=True))
    assert second["changed"] is False and second["decision"] == "run"
