# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""file_sync through its entry point: documentation and spec agree, bad options are refused before anything is
recorded, and a pass over a stand-in ssh (one that runs the remote command here) is journalled: check mode writes
nothing, a rerun is a skip, force runs again, a STOP file ends rsync. The real sshd is in tests/live."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat
import sys

import pytest
import yaml

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import Journal, Stopped
from ansible_collections.ferry.migrate.plugins.modules import file_sync

# ssh as rsync calls it: options, the host, then the remote command, which runs here.
FAKE_SSH = """#!%s
import os, sys
args = sys.argv[1:]
while args[0].startswith("-"):
    args = args[2:] if args[0] in ("-o", "-p", "-l", "-i") else args[1:]
with open(os.environ["FAKE_SSH_LOG"], "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
os.execvp("sh", ["sh", "-c", " ".join(args[1:])])
"""


@pytest.fixture
def fake_ssh(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(FAKE_SSH % sys.executable)
    os.chmod(str(bin_dir / "ssh"), 0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (bin_dir, os.environ["PATH"]))
    monkeypatch.setenv("FAKE_SSH_LOG", str(tmp_path / "ssh.log"))
    return tmp_path / "ssh.log"


def params(tmp_path, **extra):
    values = dict((name, spec.get("default")) for name, spec in file_sync.argument_spec().items())
    values.update(mode="push", src=str(tmp_path / "src"), dest=str(tmp_path / "dest"), host="target1",
                  state_dir=str(tmp_path / "state"))
    values.update(extra)
    return values


def test_the_documentation_matches_the_spec():
    doc = yaml.safe_load(file_sync.DOCUMENTATION)
    spec = file_sync.argument_spec()
    own = doc["options"]
    assert set(own) | {"state_dir", "step", "force"} == set(spec)
    for name, option in own.items():
        assert option["type"] == spec[name]["type"], name
        assert option.get("default") == spec[name].get("default"), name
        assert option.get("choices") == spec[name].get("choices"), name
        assert option.get("elements") == spec[name].get("elements"), name
        assert bool(option.get("required")) == bool(spec[name].get("required")), name
    for option in own.values():  # a ": " in a plain line would make a mapping of it
        assert all(isinstance(line, str) for line in option["description"])
    returned = yaml.safe_load(file_sync.RETURN)
    assert {"files", "bytes", "files_transferred", "bytes_transferred", "deleted", "verified", "differences",
            "missing", "rc"} <= set(returned)


@pytest.mark.parametrize("bad, message", [
    ({"ssh_port": 0}, "ssh_port=0 is out of range: it must be from 1 to 65535"),
    ({"ssh_port": 65536}, "ssh_port=65536 is out of range"),
    ({"bwlimit": -1}, "bwlimit=-1 is out of range: it must be from 0 to 10000000"),
    ({"bwlimit": 10000001}, "bwlimit=10000001 is out of range"),
    ({"src": "data"}, "src, 'data', must be an absolute path"),
    ({"dest": ""}, "dest is an empty string"),
    ({"host": "root@target1"}, "host 'root@target1' is not a host name"),
    ({"host": "-oProxyCommand=x"}, "is not a host name"),
    ({"host": "a b"}, "is not a host name"),
    ({"manifest": "/m.zip", "paths": ["a"]}, "mutually exclusive"),
    ({"paths": ["../etc"]}, r"paths\[0\]: path ../etc leads outside the root"),
    ({"paths": ["ok", "/etc/passwd"]}, r"paths\[1\]: path /etc/passwd is absolute"),
    ({"ssh_key": "/nonexistent/key"}, "ssh_key, /nonexistent/key, is not a file on this host"),
    ({"ssh_known_hosts": "/nonexistent/kh"}, "ssh_known_hosts, /nonexistent/kh, is not a file"),
])
def test_bad_options_are_refused_before_anything_is_recorded(tmp_path, bad, message):
    (tmp_path / "src").mkdir()
    with pytest.raises(FerryError, match=message):
        file_sync.run(params(tmp_path, **bad), False)
    assert not (tmp_path / "state").exists() and not (tmp_path / "dest").exists()


def test_a_missing_local_root_is_refused(tmp_path):
    with pytest.raises(FerryError, match="src, .*/src, is not a directory on this host"):
        file_sync.run(params(tmp_path), False)


def make_tree(tmp_path):
    src = tmp_path / "src"
    (src / "u" / "d").mkdir(parents=True)
    (src / "u" / "d" / "f1").write_bytes(b"one")
    (src / "u" / "big").write_bytes(b"x" * 300000)
    (src / "other").write_bytes(b"not listed")
    return src


def test_a_pass_is_journalled_skipped_and_forced(tmp_path, fake_ssh):
    make_tree(tmp_path)
    values = params(tmp_path, paths=["u", "gone"], ssh_port=2222, ssh_user="mig")
    planned = file_sync.run(dict(values), True)
    assert planned["changed"] is True and planned["files_transferred"] == 2 and planned["bytes_transferred"] == 300003
    assert planned["missing"] == ["gone"] and "verified" not in planned
    assert not (tmp_path / "dest").exists() and not (tmp_path / "state").exists()
    assert "-p 2222 -l mig" in fake_ssh.read_text() and "StrictHostKeyChecking=yes" in fake_ssh.read_text()

    done = file_sync.run(dict(values), False)
    assert done["decision"] == "run" and done["changed"] is True and done["verified"] is True
    assert done["files_transferred"] == 2 and done["missing"] == ["gone"] and done["listed"] == 1
    assert (tmp_path / "dest" / "u" / "d" / "f1").read_bytes() == b"one"
    assert not (tmp_path / "dest" / "other").exists()
    record = Journal(str(tmp_path / "state")).step("file_sync_bulk").record()
    assert record["status"] == "complete" and record["counts"]["bytes_transferred"] == 300003
    assert record["progress"] == {"done": 300003, "total": 300003, "unit": "bytes"}

    again = file_sync.run(dict(values), False)
    assert again["decision"] == "skip" and again["changed"] is False and again["files_transferred"] == 2
    forced = file_sync.run(dict(values, force=True), False)
    assert forced["decision"] == "run" and forced["changed"] is False and forced["files_transferred"] == 0
    final = file_sync.run(dict(values, sync_pass="final"), False)  # a step of its own
    assert final["decision"] == "run" and final["changed"] is False
    assert Journal(str(tmp_path / "state")).step("file_sync_final").record()["status"] == "complete"


def test_pull_creates_the_local_root_and_reports_missing_remote_paths(tmp_path, fake_ssh):
    make_tree(tmp_path)
    values = params(tmp_path, mode="pull", paths=["u/d", "u/none\nx"])
    done = file_sync.run(values, False)
    assert done["rc"] == 23 and done["missing"] == ["u/none\\x0ax"] and done["missing_count"] == 1
    assert done["verified"] is True and (tmp_path / "dest" / "u" / "d" / "f1").exists()


def test_a_stop_file_ends_rsync_and_the_step_resumes(tmp_path, fake_ssh):
    src = make_tree(tmp_path)
    (src / "u" / "big").write_bytes(os.urandom(4 << 20))
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "STOP").write_text("")
    values = params(tmp_path, bwlimit=512)  # 4 MiB at 512 KiB/s: the STOP file is seen first
    with pytest.raises(Stopped, match="stopped on request"):
        file_sync.run(dict(values), False)
    assert Journal(str(tmp_path / "state")).step("file_sync_bulk").record()["status"] == "failed"
    os.unlink(str(tmp_path / "state" / "STOP"))
    done = file_sync.run(dict(values, bwlimit=0), False)
    assert done["decision"] == "resume" and done["verified"] is True  # bwlimit is no input: only speed
    assert (tmp_path / "dest" / "u" / "big").read_bytes() == (src / "u" / "big").read_bytes()


def test_the_final_pass_fails_on_differences_left(tmp_path, fake_ssh, monkeypatch):
    make_tree(tmp_path)
    from ansible_collections.ferry.migrate.plugins.module_utils.sync import transfer
    real = transfer.Sync.argv

    def argv(self, dry_run=False, verify=False):  # the verification sees a file the pass did not copy
        words = real(self, dry_run, verify)
        return [w for w in words if w != "--exclude=other"] if verify else words

    monkeypatch.setattr(transfer.Sync, "argv", argv)
    values = params(tmp_path, exclude=["other"])
    bulk = file_sync.run(dict(values), False)
    assert bulk["verified"] is False and bulk["differences"] == ["<f+++++++++ other"]
    assert "1 difference(s) left after the bulk pass" in bulk["warnings_list"][0]
    with pytest.raises(FerryError, match="1 difference\\(s\\) left after the final pass: <f\\+{9} other") as caught:
        file_sync.run(dict(values, sync_pass="final"), False)
    assert caught.value.result["verified"] is False and caught.value.result["differences_count"] == 1


def test_modes_times_and_odd_names_are_kept(tmp_path, fake_ssh):
    src = make_tree(tmp_path)
    odd = os.path.join(str(src).encode(), b"u", b"#new\nline \xff;")
    with open(odd, "wb") as handle:
        handle.write(b"odd")
    os.chmod(odd, 0o640)
    os.utime(odd, ns=(1_000_000_000_123_456_789, 1_000_000_000_123_456_789))
    values = params(tmp_path, paths=[os.fsdecode(b"u/#new\nline \xff;")])
    assert file_sync.run(values, False)["files_transferred"] == 1
    copied = os.stat(os.path.join(str(tmp_path / "dest").encode(), b"u", b"#new\nline \xff;"))
    assert stat.S_IMODE(copied.st_mode) == 0o640 and copied.st_mtime_ns == 1_000_000_000_123_456_789
    assert json.dumps(file_sync.run(dict(values, force=True), False))  # a result Ansible can serialise
