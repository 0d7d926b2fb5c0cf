# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""file_sync over the real sshd of scripts/test-servers (key authentication, strict host keys). Each "host" is a
directory of its own under a temporary directory (the sshd runs on this machine): push and pull; only the listed
files move (a ferry backup zip's files.jsonl, globs expanded when pushing); a second pass moves only what changed;
an extra target file is kept unless delete; check mode counts and writes nothing; names with newlines, spaces,
'#' and non-UTF-8 bytes, modes and times arrive intact; a key not in authorized_keys and a wrong known_hosts entry
fail with a clear message; through the module's entry point as Ansible runs it."""
import hashlib
import json
import os
import stat
import subprocess
import sys
import zipfile

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import Journal
from ansible_collections.ferry.migrate.plugins.modules import file_sync

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "test-servers")
RUN_DIR = os.path.join(os.environ.get("FERRY_RUN_DIR") or os.path.join(ROOT, ".run"), "servers")
MODULE = os.path.join(ROOT, "plugins", "modules", "file_sync.py")
ODD = os.fsdecode(b"u1/#odd name\nwith newline \xff\xfe;")


@pytest.fixture(scope="module")
def sshd():
    """Only the sshd (the other servers are not needed here)."""
    done = subprocess.run([sys.executable, SCRIPT, "--run-dir", RUN_DIR, "up", "ssh"], capture_output=True,
                          text=True, timeout=600, check=False)
    if done.returncode != 0:
        pytest.fail("scripts/test-servers up ssh failed:\n%s%s" % (done.stdout, done.stderr), pytrace=False)
    with open(os.path.join(RUN_DIR, "servers.json")) as handle:
        env = json.load(handle)
    return {"host": env["FERRY_SSH_HOST"], "port": int(env["FERRY_SSH_PORT"]), "user": env["FERRY_SSH_USER"],
            "key": env["FERRY_SSH_KEY"], "known_hosts": env["FERRY_SSH_KNOWN_HOSTS"]}


def params(sshd, tmp_path, mode="push", **extra):
    values = dict((name, spec.get("default")) for name, spec in file_sync.argument_spec().items())
    here, there = str(tmp_path / "source-host" / "data"), str(tmp_path / "target-host" / "data")
    os.makedirs(os.path.dirname(there), exist_ok=True)  # rsync makes the root, not its parents
    values.update(mode=mode, src=here, dest=there, host=sshd["host"], ssh_port=sshd["port"], ssh_user=sshd["user"],
                  ssh_key=sshd["key"], ssh_known_hosts=sshd["known_hosts"], state_dir=str(tmp_path / "state"))
    values.update(extra)
    return values


def write(root, relative, data, mode=0o644, mtime_ns=None):
    path = os.path.join(os.fsencode(root), os.fsencode(relative))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def make_source(root):
    """An MVI-like data mount: two users' datasets, trained models with thumbnails, a DNN script."""
    write(root, "u1/datasets/d1/img1.jpg", b"a" * 5000, 0o640, 1_600_000_000_123_456_789)
    write(root, "u1/datasets/d1/img2.jpg", b"b" * 7000)
    write(root, "u1/datasets/d2/img3.jpg", b"c" * 100)
    write(root, "u1/trained-models/m1.zip", b"m" * 20000, 0o600)
    write(root, "u1/trained-models/m1-extra.json", b"{}")
    write(root, "u1/trained-models/thumbnails/m1.png", b"p" * 300)
    write(root, "u1/trained-models/m2.zip", b"n" * 10)
    write(root, "u1/dnn-scripts/s1.zip", b"s" * 400, 0o755)
    write(root, "u2/datasets/d9/img.jpg", b"z" * 900)
    write(root, ODD, b"odd", 0o604, 1_500_000_000_000_000_001)
    write(root, "u1/datasets/d1/with space.jpg", b"space")


def backup_zip(path, entries, exclude=None):
    with zipfile.ZipFile(str(path), "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("collections/DataSets.jsonl", b"")
        out.writestr("files.jsonl", "".join(json.dumps(entry) + "\n" for entry in entries))
        if exclude is not None:
            out.writestr("ferry-manifest.json", json.dumps({"format": "ferry.mongo_backup", "format_version": 1,
                                                            "files": {"exclude": exclude}}))
    return str(path)


ENTRIES = [
    {"path": "u1/datasets/d1", "kind": "dir", "item": "pg1", "collection": "DataSets", "_id": "d1"},
    {"path": "u1/trained-models/m1*", "kind": "glob", "item": "pg1", "collection": "TrainedModels", "_id": "m1"},
    {"path": "u1/trained-models/thumbnails/m1*", "kind": "glob", "item": "pg1", "collection": "TrainedModels",
     "_id": "m1"},
    {"path": "u1/dnn-scripts/s1.zip", "kind": "file", "item": "pg1", "collection": "DnnScripts", "_id": "s1"},
    {"path": "u1/dnn-scripts/gone.zip", "kind": "file", "item": "pg1", "collection": "DnnScripts", "_id": "gone"},
    {"path": ODD, "kind": "file"},
]
SELECTED = ["u1/datasets/d1/img1.jpg", "u1/datasets/d1/img2.jpg", "u1/datasets/d1/with space.jpg",
            "u1/trained-models/m1.zip", "u1/trained-models/m1-extra.json", "u1/trained-models/thumbnails/m1.png",
            "u1/dnn-scripts/s1.zip", ODD]


def files_of(root):
    """{relative path: (sha256, mode, mtime_ns)} of the regular files under root (names as str, surrogates kept)."""
    found = {}
    for top, _dirs, names in os.walk(os.fsencode(root)):
        for name in names:
            path = os.path.join(top, name)
            info = os.lstat(path)
            with open(path, "rb") as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
            relative = os.fsdecode(os.path.relpath(path, os.fsencode(root)))
            found[relative] = (digest, stat.S_IMODE(info.st_mode), info.st_mtime_ns)
    return found


def test_push_of_a_backup_s_file_list_then_a_second_pass(sshd, tmp_path):
    values = params(sshd, tmp_path, manifest=backup_zip(tmp_path / "pg1.zip", ENTRIES))
    make_source(values["src"])
    plan = file_sync.run(dict(values), True)
    assert plan["files_transferred"] == len(SELECTED) and plan["changed"] is True
    assert plan["bytes_transferred"] == 5000 + 7000 + 5 + 20000 + 2 + 300 + 400 + 3
    assert not os.path.exists(values["dest"]) and not os.path.exists(values["state_dir"])

    done = file_sync.run(dict(values), False)
    assert done["verified"] is True and done["differences"] == [] and done["rc"] == 0
    assert done["files_transferred"] == len(SELECTED) and done["bytes_transferred"] == plan["bytes_transferred"]
    assert done["missing"] == ["u1/dnn-scripts/gone.zip"] and done["listed"] == 6  # the two globs: 3 files
    source, target = files_of(values["src"]), files_of(values["dest"])
    assert target == dict((name, source[name]) for name in SELECTED)  # contents, modes, mtimes (ns)
    assert target[ODD][1:] == (0o604, 1_500_000_000_000_000_001)

    assert file_sync.run(dict(values), False)["decision"] == "skip"
    write(values["src"], "u1/datasets/d1/img2.jpg", b"B" * 7000)  # changed, same size
    write(values["src"], "u1/datasets/d1/new.jpg", b"new")
    write(values["src"], "u1/trained-models/m1.v2", b"v2")  # a new match of the glob
    write(values["src"], "u2/datasets/d9/more.jpg", b"not listed")
    final = file_sync.run(dict(values, sync_pass="final"), False)
    assert final["files_transferred"] == 3 and final["bytes_transferred"] == 7000 + 3 + 2
    assert final["verified"] is True and final["listed"] == 7
    assert files_of(values["dest"]) == dict((name, files_of(values["src"])[name]) for name in
                                            SELECTED + ["u1/datasets/d1/new.jpg", "u1/trained-models/m1.v2"])
    again = file_sync.run(dict(values, sync_pass="final"), False)
    assert again["decision"] == "skip" and again["changed"] is False
    rerun = file_sync.run(dict(values, sync_pass="final", force=True), False)  # a final pass is re-runnable
    assert rerun["decision"] == "run" and rerun["changes"] == 0 and rerun["changed"] is False
    record = Journal(values["state_dir"]).step("file_sync_final").record()
    assert record["status"] == "complete" and record["attempt"] == 2


def test_pull_of_listed_paths_keeps_extra_files_unless_delete(sshd, tmp_path):
    # pulling: the source host is the remote one (src), this host receives (dest)
    values = params(sshd, tmp_path, mode="pull", paths=["u1/datasets", "u2", ODD, "nowhere/x"])
    make_source(values["src"])
    write(values["dest"], "u2/datasets/d9/extra.jpg", b"only on the target")
    write(values["dest"], "u1/trained-models/kept.zip", b"outside the list")
    done = file_sync.run(dict(values), False)
    assert done["rc"] == 23 and done["missing"] == ["nowhere/x"] and done["verified"] is True
    assert done["files_transferred"] == 6 and done["deleted"] == 0
    target = files_of(values["dest"])
    assert "u2/datasets/d9/extra.jpg" in target and "u1/trained-models/m1.zip" not in target
    assert target[ODD] == files_of(values["src"])[ODD]

    plan = file_sync.run(dict(values, delete=True), True)
    assert plan["deleted"] == 1 and os.path.exists(os.path.join(values["dest"], "u2/datasets/d9/extra.jpg"))
    deleted = file_sync.run(dict(values, delete=True), False)
    assert deleted["deleted"] == 1 and deleted["verified"] is True
    target = files_of(values["dest"])
    assert "u2/datasets/d9/extra.jpg" not in target
    assert "u1/trained-models/kept.zip" in target  # outside the listed directories: never deleted


def test_a_server_scope_list_never_sends_nor_deletes_the_profile_s_excluded_paths(sshd, tmp_path):
    # MVI's server scope lists the whole mount ("."), where the migration keeps its own journal and zips
    zipped = backup_zip(tmp_path / "server.zip", [{"path": ".", "kind": "dir", "item": "server"}],
                        exclude=["logs/migrations/"])
    values = params(sshd, tmp_path, manifest=zipped, delete=True)
    make_source(values["src"])
    write(values["src"], "logs/migrations/m1/work/server.zip", b"the source's own work file")
    write(values["src"], "logs/other.log", b"an application log: sent")
    write(values["dest"], "logs/migrations/m1/state/steps/x.json", b"the target's journal")
    write(values["dest"], "stale.jpg", b"not on the source: deleted")
    done = file_sync.run(dict(values), False)
    target = files_of(values["dest"])
    assert "logs/migrations/m1/state/steps/x.json" in target  # not deleted
    assert "logs/migrations/m1/work/server.zip" not in target  # not sent
    assert "logs/other.log" in target and "stale.jpg" not in target
    assert done["verified"] is True and done["deleted"] == 1


def test_whole_root_push_check_mode_counts_and_writes_nothing(sshd, tmp_path):
    values = params(sshd, tmp_path, bwlimit=100000, exclude=["*.png"])
    make_source(values["src"])
    os.makedirs(values["dest"])
    write(values["dest"], "stale", b"x")
    plan = file_sync.run(dict(values, delete=True), True)
    source = files_of(values["src"])
    assert plan["files_transferred"] == len(source) - 1 and plan["deleted"] == 1 and plan["listed"] is None
    assert files_of(values["dest"]) == {"stale": files_of(values["dest"])["stale"]}
    done = file_sync.run(dict(values), False)
    assert done["files_transferred"] == len(source) - 1 and "stale" in files_of(values["dest"])
    assert files_of(values["dest"]) == dict(((k, v) for k, v in source.items() if not k.endswith(".png")),
                                            stale=files_of(values["dest"])["stale"])


def test_a_key_not_in_authorized_keys_is_refused_clearly(sshd, tmp_path):
    key = tmp_path / "stranger key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    values = params(sshd, tmp_path, ssh_key=str(key))
    make_source(values["src"])
    with pytest.raises(FerryError, match=r"key .*/stranger key refused by %s@%s \(port %d\)"
                                         % (sshd["user"], sshd["host"], sshd["port"])):
        file_sync.run(dict(values), False)
    assert Journal(values["state_dir"]).step("file_sync_bulk").record()["status"] == "failed"
    with pytest.raises(FerryError, match="refused by"):  # check mode says so too
        file_sync.run(dict(values), True)


def test_a_wrong_known_hosts_entry_is_refused_clearly(sshd, tmp_path):
    other = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    known = tmp_path / "known hosts"
    known.write_text("[%s]:%d %s\n" % (sshd["host"], sshd["port"], " ".join(
        (tmp_path / "other_host_key.pub").read_text().split()[:2])))
    values = params(sshd, tmp_path, ssh_known_hosts=str(known))
    make_source(values["src"])
    with pytest.raises(FerryError, match=r"host key verification failed for %s:%d \(known_hosts %s\): the host's "
                                         r"key differs" % (sshd["host"], sshd["port"], known)):
        file_sync.run(dict(values), False)
    (tmp_path / "empty").write_text("")
    with pytest.raises(FerryError, match=r"host key verification failed .*: no key of the host is recorded"):
        file_sync.run(dict(values, ssh_known_hosts=str(tmp_path / "empty")), False)
    assert not os.path.exists(values["dest"])


def test_a_list_none_of_whose_paths_exists_is_a_wrong_src_not_a_pass_with_nothing_to_do(sshd, tmp_path):
    values = params(sshd, tmp_path, manifest=backup_zip(tmp_path / "pg1.zip", ENTRIES))
    os.makedirs(values["src"])  # the wrong directory: nothing the list names is there
    for check_mode in (True, False):
        with pytest.raises(FerryError, match=r"none of the \d+ listed path\(s\) exists under src .*source-host/data"):
            file_sync.run(dict(values), check_mode)
    assert not os.path.exists(values["dest"])


def test_a_closed_port_cannot_be_reached(sshd, tmp_path, closed_port):  # the sshd listens on 127.0.0.1 too
    values = params(sshd, tmp_path, ssh_port=closed_port)
    make_source(values["src"])
    with pytest.raises(FerryError, match="cannot reach %s:%d over ssh: Connection refused"
                                         % (sshd["host"], closed_port)):
        file_sync.run(dict(values), True)


def test_through_the_module_entry_point(sshd, tmp_path):
    values = params(sshd, tmp_path, paths=["u1/dnn-scripts"])
    make_source(values["src"])
    args = tmp_path / "args.json"
    given = dict((name, value) for name, value in values.items() if value is not None)  # as a task gives them
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": given}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, ".run", "collections"), ROOT]))
    done = subprocess.run([sys.executable, MODULE, str(args)], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    result = json.loads(done.stdout)
    assert not result.get("failed"), result
    assert result["changed"] is True and result["files_transferred"] == 1 and result["verified"] is True
    assert "warnings_list" not in result
    assert os.path.isfile(os.path.join(values["dest"], "u1/dnn-scripts/s1.zip"))
