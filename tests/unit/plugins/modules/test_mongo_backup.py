# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""mongo_backup without a server: its documentation matches its argument spec (types, defaults, choices), secrets
are no_log, users and project_groups exclude each other, bad values are refused before anything is recorded."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.ferry.migrate.plugins.doc_fragments.mongodb import ModuleDocFragment as MongoFragment
from ansible_collections.ferry.migrate.plugins.doc_fragments.state import ModuleDocFragment as StateFragment
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.modules import mongo_backup
from tests.support import module_docs


def base(tmp_path, **extra):
    params = dict((name, spec.get("default")) for name, spec in mongo_backup.argument_spec().items())
    params.update(dest=str(tmp_path / "out" / "b.zip"), state_dir=str(tmp_path / "state"), login_user="u",
                  login_password="secret")
    params.update(extra)
    return params


def test_documentation_matches_the_spec():
    module_docs.assert_documentation_matches_the_spec(
        mongo_backup, {"ferry.migrate.mongodb": MongoFragment, "ferry.migrate.state": StateFragment},
        secrets=("login_password", "uri", "ssl_pem_passphrase"))


@pytest.mark.parametrize("extra, message", [
    ({"compress_level": -1}, "compress_level=-1 is out of range"),
    ({"compress_level": 10}, "compress_level=10 is out of range"),
    ({"login_port": 70000}, "login_port=70000 is out of range"),
    ({"dest": ""}, "dest is an empty string"),
    ({"files_root": ""}, "files_root is an empty string"),
    ({"database": " "}, "database is empty"),
    ({"uri": "mongodb://h/"}, "uri and login_user"),
])
def test_bad_options_are_refused_before_anything(tmp_path, extra, message):
    with pytest.raises(FerryError, match=message):
        mongo_backup.run(base(tmp_path, **extra), False)
    assert not os.path.exists(tmp_path / "state") and not os.path.exists(tmp_path / "out")


def test_dest_must_be_a_file_path(tmp_path):
    (tmp_path / "dir").mkdir()
    with pytest.raises(FerryError, match="is a directory"):
        mongo_backup.run(base(tmp_path, dest=str(tmp_path / "dir")), False)
    (tmp_path / "file").write_text("")
    with pytest.raises(FerryError, match="is not a directory"):
        mongo_backup.run(base(tmp_path, dest=str(tmp_path / "file" / "b.zip")), False)
    with pytest.raises(FerryError, match="files_root, .* is not a directory"):
        mongo_backup.run(base(tmp_path, files_root=str(tmp_path / "nope")), False)


def _module(args, tmp_path):
    module = os.path.join(os.path.dirname(mongo_backup.__file__), "mongo_backup.py")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path for path in sys.path if path))
    out = subprocess.run([sys.executable, module], input=json.dumps({"ANSIBLE_MODULE_ARGS": args}),
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    return json.loads(out.stdout), out.stdout


def test_users_and_project_groups_exclude_each_other(tmp_path):
    result, _output = _module({"dest": str(tmp_path / "b.zip"), "users": ["a"], "project_groups": ["p"],
                               "state_dir": str(tmp_path / "s")}, tmp_path)
    assert result["failed"] and "mutually exclusive" in result["msg"]


def test_a_dead_server_fails_clearly_and_the_password_is_never_shown(tmp_path, closed_port):
    result, text = _module({"dest": str(tmp_path / "b.zip"), "login_port": closed_port, "login_host": "127.0.0.1",
                            "login_user": "u", "login_password": "hunter2-secret", "connect_timeout": 1,
                            "state_dir": str(tmp_path / "s")}, tmp_path)
    assert result["failed"] and result["msg"].startswith("cannot reach 127.0.0.1:%d within 1s" % closed_port)
    assert "hunter2-secret" not in text
    assert not os.path.exists(tmp_path / "b.zip")
