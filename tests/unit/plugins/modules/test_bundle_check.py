# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bundle_check on bundles made by tools/gen_zenoss_bundle.py: good ones, every bad variant, check
mode, the second run, a kill in the middle, a full disk."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import Journal
from ansible_collections.ferry.migrate.plugins.modules import bundle_check

from tools.gen_zenoss_bundle import build_bundle

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
MODULE = os.path.join(ROOT, "plugins", "modules", "bundle_check.py")


def params(bundle, dest, state, **extra):
    base = dict(path=bundle, dest=str(dest), state_dir=str(state), step=None, force=False,
                allow_missing_checksum=False, verify_dumps=True, min_free_mb=0)
    base.update(extra)
    return base


def listing(path):
    """Every path under ``path`` (relative), to compare trees."""
    found = []
    for top, dirs, files in os.walk(str(path)):
        for name in dirs + files:
            found.append(os.path.relpath(os.path.join(top, name), str(path)))
    return sorted(found)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles")
    return build_bundle(str(out), devices=3, rrds_per_device=3, perf="tar.gz", remote_collectors=1, seed=3,
                        name="4x-export-good.tar")


def test_good_bundle_is_verified_extracted_and_inventoried(good, tmp_path):
    result = bundle_check.run(params(good["path"], tmp_path / "x", tmp_path / "s"), False)
    inv = result["inventory"]
    assert result["changed"] is True and result["decision"] == "run"
    target = tmp_path / "x" / "4x-export-good"
    assert result["extracted_path"] == str(target)
    assert inv["tgz"]["md5"] == good["md5"] and inv["tgz"]["md5_verified"] is True
    assert inv["dmd_uuid"] == good["dmd_uuid"]
    assert inv["rrd_files"] == good["rrd_count"]
    assert sum(c["rrd_files"] for c in inv["remote_collectors"]) == good["remote_rrd_count"] > 0
    assert inv["optional"]["perf"] == "perf.tar.gz"
    assert inv["optional"]["zep.sql.gz"] and inv["optional"]["zep.tar"] and inv["optional"]["flexera"]
    assert {m["name"] for m in inv["members"]} >= {"zodb.sql.gz", "ZenPacks.tar", "zep.sql.gz"}
    assert inv["warnings"] == []
    # Every RRD reported is on disk, and nothing is left of the work directory.
    rrds = [p for p in listing(target) if p.endswith(".rrd")]
    assert len(rrds) == good["rrd_count"]
    assert sorted(os.listdir(str(tmp_path / "x"))) == ["4x-export-good"]
    assert (target / "dmd_uuid.txt").read_text().strip() == good["dmd_uuid"]
    assert json.loads((target / ".ferry-bundle.json").read_text())["tgz"]["md5"] == good["md5"]
    record = Journal(str(tmp_path / "s")).step("bundle_check").record()
    assert record["status"] == "complete" and record["counts"]["rrd_files"] == good["rrd_count"]


def test_second_run_changes_nothing(good, tmp_path):
    args = params(good["path"], tmp_path / "x", tmp_path / "s")
    first = bundle_check.run(args, False)
    stamp = os.stat(first["extracted_path"]).st_mtime_ns
    second = bundle_check.run(args, False)
    assert second["changed"] is False and second["decision"] == "skip"
    assert second["inventory"]["tgz"]["md5"] == good["md5"]
    assert os.stat(second["extracted_path"]).st_mtime_ns == stamp
    forced = bundle_check.run(dict(args, force=True), False)
    assert forced["changed"] is True and forced["decision"] == "run"


def test_removed_extraction_is_redone(good, tmp_path):
    args = params(good["path"], tmp_path / "x", tmp_path / "s")
    first = bundle_check.run(args, False)
    subprocess.check_call(["rm", "-rf", first["extracted_path"]])
    again = bundle_check.run(args, False)
    assert again["changed"] is True
    assert os.path.isfile(os.path.join(again["extracted_path"], "dmd_uuid.txt"))


def test_check_mode_verifies_without_writing(good, tmp_path):
    result = bundle_check.run(params(good["path"], tmp_path / "x", tmp_path / "s"), True)
    assert result["changed"] is True
    assert result["inventory"]["tgz"]["md5_verified"] is True
    assert result["inventory"]["rrd_files"] == good["rrd_count"]
    assert not (tmp_path / "x").exists() and not (tmp_path / "s").exists()


def test_check_mode_reports_a_bad_bundle(tmp_path):
    bad = build_bundle(str(tmp_path / "b"), devices=1, rrds_per_device=1, variant="md5_mismatch")
    with pytest.raises(FerryError, match="md5 mismatch"):
        bundle_check.run(params(bad["path"], tmp_path / "x", tmp_path / "s"), True)


BAD = [
    ("md5_mismatch", r"md5 mismatch for zenbackup_.*\.tgz: backup\.md5 says"),
    ("missing_md5", r"has no backup\.md5.*allow_missing_checksum"),
    ("missing_zenpacks", r"missing required member\(s\): ZenPacks\.tar"),
    ("missing_zodb", r"missing required member\(s\): zodb\.sql\.gz"),
    ("both_perf", r"both perf\.tar and perf\.tar\.gz"),
    ("truncated", r"truncated"),
    ("corrupt_gzip", r"(md5 mismatch|corrupt gzip data)"),
    ("corrupt_gzip_md5_ok", r"zenbackup_.*\.tgz: corrupt gzip data"),
    ("traversal", r"points outside the destination \(\.\.\)"),
    ("absolute_path", r"has an absolute path"),
    ("symlink_outside", r"symlink 'passwd' -> '\.\./\.\./etc/passwd' points outside"),
    ("hardlink_outside", r"hard link 'shadow' -> '\.\./\.\./etc/passwd' points outside"),
    ("device_file", r"'mem' is a device file"),
    ("fifo", r"'zenhub\.fifo' is a FIFO"),
    ("tgz_traversal", r"zenbackup_.*\.tgz: member .* points outside the destination"),
    ("tgz_symlink_outside", r"zenbackup_.*\.tgz: symlink .* points outside"),
    ("tgz_device_file", r"zenbackup_.*\.tgz: member .* is a device file"),
]


@pytest.mark.parametrize("variant, message", BAD, ids=[variant for variant, message in BAD])
def test_bad_bundle_fails_naming_the_cause_and_leaves_nothing(tmp_path, variant, message):
    bad = build_bundle(str(tmp_path / "b"), devices=1, rrds_per_device=1, variant=variant)
    dest = tmp_path / "x"
    with pytest.raises(FerryError, match=message):
        bundle_check.run(params(bad["path"], dest, tmp_path / "s"), False)
    assert os.listdir(str(dest)) == []  # no half-extracted tree, no work directory
    assert not os.path.exists("/tmp/ferry-evil.txt")
    record = Journal(str(tmp_path / "s")).step("bundle_check").record()
    assert record["status"] == "failed" and record["error"]


def test_missing_checksum_can_be_allowed_with_a_warning(tmp_path):
    bad = build_bundle(str(tmp_path / "b"), devices=1, rrds_per_device=1, variant="missing_md5")
    result = bundle_check.run(params(bad["path"], tmp_path / "x", tmp_path / "s",
                                     allow_missing_checksum=True), False)
    assert result["inventory"]["tgz"]["md5_verified"] is False
    assert any("backup.md5 is missing" in w for w in result["inventory"]["warnings"])


def test_setuid_bits_are_dropped(tmp_path):
    bad = build_bundle(str(tmp_path / "b"), devices=1, rrds_per_device=1, variant="setuid")
    result = bundle_check.run(params(bad["path"], tmp_path / "x", tmp_path / "s"), False)
    mode = os.stat(os.path.join(result["extracted_path"], "zensocket")).st_mode
    assert mode & 0o7000 == 0
    assert any("unexpected member zensocket" in w for w in result["inventory"]["warnings"])


def test_not_a_bundle_and_missing_file(tmp_path):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar file" * 100)
    with pytest.raises(FerryError, match="junk.tar"):
        bundle_check.run(params(str(junk), tmp_path / "x", tmp_path / "s"), False)
    with pytest.raises(FerryError, match="cannot read bundle .*nothing.tar: No such file"):
        bundle_check.run(params(str(tmp_path / "nothing.tar"), tmp_path / "x", tmp_path / "s"), False)


def test_new_bundle_replaces_the_old_extraction(tmp_path):
    out = tmp_path / "b"
    first = build_bundle(str(out), devices=1, rrds_per_device=1, seed=1, name="export.tar")
    args = params(first["path"], tmp_path / "x", tmp_path / "s")
    bundle_check.run(args, False)
    second = build_bundle(str(out), devices=2, rrds_per_device=1, seed=2, name="export.tar")
    result = bundle_check.run(args, False)
    assert result["changed"] is True and result["inventory"]["dmd_uuid"] == second["dmd_uuid"]
    assert sorted(os.listdir(str(tmp_path / "x"))) == ["export"]


def _mount_tmpfs(path, size):
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", str(path)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        pytest.skip("needs root to mount a small tmpfs: %s" % proc.stdout.decode().strip())


def test_disk_full_fails_cleanly(good, tmp_path):
    small = tmp_path / "small"
    # Room for the bundle's own size but not for what it expands to.
    _mount_tmpfs(small, "%dk" % (good["size"] // 1024 + 64))
    try:
        with pytest.raises(FerryError, match="(not enough free space|disk full)"):
            bundle_check.run(params(good["path"], small, tmp_path / "s"), False)
        assert os.listdir(str(small)) == []
    finally:
        subprocess.call(["umount", str(small)])


def test_killed_run_leaves_no_tree_and_the_rerun_finishes(tmp_path):
    big = build_bundle(str(tmp_path / "b"), devices=2, rrds_per_device=2, pad_bytes=160 << 20, name="big.tar")
    dest, state = tmp_path / "x", tmp_path / "s"
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": params(big["path"], dest, state)}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.Popen([sys.executable, MODULE, str(args_file)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    work = None
    while time.time() < deadline and proc.poll() is None:
        entries = os.listdir(str(dest)) if dest.exists() else []
        work = [e for e in entries if ".ferry-tmp-" in e]
        if work and os.path.exists(os.path.join(str(dest), work[0], "zenbackup", "zodb.sql.gz")):
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the module finished before it could be killed: %s" % proc.communicate()[0]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert work and os.listdir(str(dest)) == work  # only the hidden work directory, no visible tree
    assert Journal(str(state)).step("bundle_check").record()["status"] == "interrupted"

    rerun = subprocess.run([sys.executable, MODULE, str(args_file)], env=env, stdout=subprocess.PIPE, check=True)
    result = json.loads(rerun.stdout.decode())
    assert result["changed"] is True and result["decision"] == "resume", result
    assert result["inventory"]["tgz"]["md5"] == big["md5"]
    assert os.listdir(str(dest)) == ["big"]
    record = Journal(str(state)).step("bundle_check").record()
    assert record["status"] == "complete" and record["attempt"] == 2


def test_module_entry_point_fails_with_the_message(tmp_path):
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": params(str(tmp_path / "none.tar"), tmp_path / "x",
                                                                   tmp_path / "s")}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, MODULE, str(args_file)], env=env, stdout=subprocess.PIPE, check=False)
    result = json.loads(proc.stdout.decode())
    assert result["failed"] is True and "No such file" in result["msg"]
