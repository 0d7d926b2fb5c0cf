# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""mongo_restore without a server: its documentation matches its argument spec (types, defaults, choices), secrets
are no_log, bad values are refused before anything is recorded or connected, and the module runs as Ansible runs
it (a missing zip is a failed result naming it)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.ferry.migrate.plugins.doc_fragments.mongodb import ModuleDocFragment as MongoFragment
from ansible_collections.ferry.migrate.plugins.doc_fragments.state import ModuleDocFragment as StateFragment
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.modules import mongo_restore
from tests.support import module_docs

ROOT = Path(__file__).resolve().parents[4]


def base(tmp_path, **extra):
    params = dict((name, spec.get("default")) for name, spec in mongo_restore.argument_spec().items())
    params.update(src=[str(tmp_path / "db.zip")], state_dir=str(tmp_path / "state"), login_user="u",
                  login_password="secret")
    params.update(extra)
    return params


def test_documentation_matches_the_spec():
    returned = module_docs.assert_documentation_matches_the_spec(
        mongo_restore, {"ferry.migrate.mongodb": MongoFragment, "ferry.migrate.state": StateFragment},
        secrets=("login_password", "uri", "ssl_pem_passphrase"))
    assert {"database", "sources", "collections", "inserted", "replaced", "duplicates", "indexes_created",
            "index_warnings", "verified", "docs_per_s"} <= set(returned)


@pytest.mark.parametrize("extra, message", [
    ({"batch_size": 0}, "batch_size=0 is out of range"),
    ({"batch_size": 100001}, "batch_size=100001 is out of range"),
    ({"login_port": 0}, "login_port=0 is out of range"),
    ({"src": []}, "src is empty"),
    ({"src": [""]}, r"src\[0\] is an empty string"),
    ({"uri": "mongodb://h/"}, "uri and login_user"),
    ({"rewrites": ["nope"]}, "rewrites nope are not rewrites of profile mvi"),
    ({"profile": "/no/such/profile.yml"}, "is neither a builtin"),
])
def test_bad_values_are_refused_before_anything_happens(tmp_path, extra, message):
    with pytest.raises(FerryError, match=message):
        mongo_restore.run(base(tmp_path, **extra), False)
    assert not (tmp_path / "state").exists()


def test_a_missing_zip_is_named(tmp_path):
    with pytest.raises(FerryError, match="src .*db.zip does not exist"):
        mongo_restore.run(base(tmp_path), False)


def test_the_module_runs_as_ansible_runs_it_and_never_shows_the_password(tmp_path):
    params = {k: v for k, v in base(tmp_path, login_password="s3cr3t-pw").items() if v is not None}
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": params}))
    env = dict(os.environ, PYTHONPATH=str(ROOT / ".run" / "collections"))
    done = subprocess.run([sys.executable, str(ROOT / "plugins" / "modules" / "mongo_restore.py"), str(args)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    result = json.loads(done.stdout)
    assert result["failed"] and "db.zip does not exist" in result["msg"]
    assert "s3cr3t-pw" not in done.stdout
