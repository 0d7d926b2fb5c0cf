# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bundle_check on bundles made by tools/gen_zenoss_bundle.py: good ones, every bad variant, check
mode, the second run, a kill in the middle, a full disk."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import Journal
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb import points
from ansible_collections.ferry.migrate.plugins.module_utils.zenoss import bundle as bundle_module
from ansible_collections.ferry.migrate.plugins.modules import bundle_check, rrd_to_tsdb

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
    assert inv["other_rrd_files"] == good["daemon_rrd_count"] > 0  # perf/Daemons, counted apart
    assert inv["optional"]["perf"] == "perf.tar.gz"
    assert inv["optional"]["zep.sql.gz"] and inv["optional"]["zep.tar"] and inv["optional"]["flexera"]
    assert {m["name"] for m in inv["members"]} >= {"zodb.sql.gz", "ZenPacks.tar", "zep.sql.gz"}
    assert inv["warnings"] == []
    # Every RRD reported is on disk, and nothing is left of the work directory.
    rrds = [p for p in listing(target) if p.endswith(".rrd")]
    assert len(rrds) == good["rrd_count"] + good["daemon_rrd_count"]
    assert len([p for p in rrds if "/Devices/" in p]) == good["rrd_count"]
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
    ("zodb_no_insert", r"zenbackup_4x\.tgz: zenbackup/zodb\.sql\.gz holds no line starting with INSERT INTO"),
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
        if work and os.path.exists(os.path.join(str(dest), work[0], "zenbackup", "backup.settings")):
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


# -- export4's layout: remote collectors' zenbackup archives, perf/Daemons, the model dump's INSERT INTO -------------
def append_members(bundle, members):
    """Append (name, bytes) members to an uncompressed bundle, as `tar -rf` would."""
    with tarfile.open(bundle, "a") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def zenbackup_tgz(members):
    """A gzip'd tar of (name, bytes or TarInfo-adjusting dict) members, like a collector's zenbackup archive."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def small_tar(members, mode="w"):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.fixture(scope="module")
def export4(tmp_path_factory):
    """The way export4 + zenbackup make it: zenbackup_4x.tgz, perf.tar with Daemons, two remote collectors."""
    out = tmp_path_factory.mktemp("export4")
    return build_bundle(str(out), devices=5, rrds_per_device=3, remote_collectors=2, seed=5)


def test_export4_bundle_counts_remote_collectors_and_daemons_apart(export4, tmp_path):
    inv = bundle_check.run(params(export4["path"], tmp_path / "x", tmp_path / "s"), False)["inventory"]
    target = tmp_path / "x" / os.path.basename(export4["path"])[:-len(".tar")]
    assert inv["tgz"]["name"] == "zenbackup_4x.tgz" and inv["tgz"]["md5_verified"] is True
    assert inv["warnings"] == [] and inv["unexpected_members"] == []
    # Devices RRDs of every collector in rrd_files; perf/Daemons apart
    assert inv["rrd_files"] == export4["rrd_count"] == 15
    assert inv["other_rrd_files"] == export4["daemon_rrd_count"] == 12
    assert inv["perf"]["archive"] == "perf.tar" and inv["perf"]["other_rrd_files"] == 4
    assert inv["perf"]["rrd_files"] == export4["rrd_count"] - export4["remote_rrd_count"]
    by_collector = {}
    for device in export4["devices"]:
        by_collector[device["collector"]] = by_collector.get(device["collector"], 0) + len(device["rrds"])
    assert [(c["name"], c["rrd_files"], c["other_rrd_files"], c["perf_archive"]) for c in inv["remote_collectors"]] \
        == [("localhost-collector%d" % n, by_collector["collector%d" % n], 4, "perf.tar") for n in (1, 2)]
    assert {m["name"] for m in inv["members"]} >= {"backup.settings", "etc.tar", "zodb_session.sql.gz", "bin.tar"}
    # collectors/<name>/perf/Devices/<device>/..., the rest of the zenbackup archive kept as it is
    for device in export4["devices"]:
        local = device["collector"] == "localhost"
        root = target if local else target / "collectors" / ("localhost-" + device["collector"])
        for rrd in device["rrds"]:
            assert (root / rrd).is_file(), rrd
    assert (target / "collectors" / "localhost-collector1" / "zenbackup" / "etc.tar").is_file()
    assert not any("perf.tar" in p for p in listing(target / "collectors"))  # unpacked, not kept
    on_disk = [p for p in listing(target) if p.endswith(".rrd")]
    assert len(on_disk) == inv["rrd_files"] + inv["other_rrd_files"]
    dry = bundle_check.run(params(export4["path"], tmp_path / "y", tmp_path / "s2"), True)["inventory"]
    assert (dry["rrd_files"], dry["other_rrd_files"]) == (inv["rrd_files"], inv["other_rrd_files"])


def test_generated_bundle_converts_with_zenoss5_keys(export4, tmp_path):
    """bundle_check then rrd_to_tsdb on the main and a remote collector's tree: key in Zenoss 5's form."""
    target = bundle_check.run(params(export4["path"], tmp_path / "x", tmp_path / "s"), False)["extracted_path"]
    expected, seen = {}, {}
    for device in export4["devices"]:
        for rrd in device["rrds"]:
            directory = os.path.dirname(rrd)[len("perf/"):]
            expected.setdefault(device["collector"], set()).add(directory)  # Devices/<id>/<component>
    for collector, tree in (("localhost", "perf"), ("collector2", "collectors/localhost-collector2/perf")):
        args = dict((name, option.get("default")) for name, option in rrd_to_tsdb.argument_spec().items())
        args.update(src=os.path.join(target, tree), dest=str(tmp_path / ("points-" + collector)),
                    state_dir=str(tmp_path / "s"), step="perf_" + collector, workers=1)
        result = rrd_to_tsdb.run(args, False)
        assert result["tenant_id"] == export4["dmd_uuid"]  # dmd_uuid.txt found above collectors/<name>/perf
        assert result["counts"]["failed"] == 0 and result["counts"]["skipped"] == 4  # perf/Daemons
        seen[collector] = set()
        for manifest in tsdb_batches(str(tmp_path / ("points-" + collector))):
            for line in tsdb_lines(manifest):
                _metric, tags, _stamp, _value = line
                tags = dict(tags)
                assert tags["zenoss_tenant_id"] == export4["dmd_uuid"]
                assert tags["key"].startswith("Devices/" + tags["device"]) and "zport" not in tags["key"]
                seen[collector].add(tags["key"])
    assert seen["localhost"] == expected["localhost"] and seen["collector2"] == expected["collector2"]


def tsdb_batches(dest):
    return points.finished_batches(dest)


def tsdb_lines(manifest):
    return [points.parse_line(line) for line in points.read_batch_lines(manifest)]


def test_older_bundle_forms_are_accepted(tmp_path):
    """zenbackup_YYYYMMDD.tgz (toolbox 0.8.x) and remote archives holding a bare perf/ tree."""
    old = build_bundle(str(tmp_path / "b"), devices=4, rrds_per_device=2, remote_collectors=1, tgz_name="dated",
                       remote_layout="bare", with_daemons=False, perf="tar.gz")
    inv = bundle_check.run(params(old["path"], tmp_path / "x", tmp_path / "s"), False)["inventory"]
    assert inv["tgz"]["name"] == "zenbackup_20180601.tgz" and inv["tgz"]["md5_verified"]
    assert inv["rrd_files"] == old["rrd_count"] == 8 and inv["other_rrd_files"] == 0
    assert inv["remote_collectors"][0]["rrd_files"] == old["remote_rrd_count"] == 4
    assert inv["remote_collectors"][0]["perf_archive"] is None


@pytest.mark.parametrize("case, members, message", [
    ("duplicate", [("localhost-collector1-perf-backup-20990101-000000.tgz",
                    [("zenbackup/perf.tar", [("perf/Devices/d/x.rrd", b"x")])])],
     r"two archives of remote collector localhost-collector1"),
    ("both_perf", [("localhost-c9-perf-backup-1.tgz", [("zenbackup/perf.tar", [("perf/Devices/d/x.rrd", b"x")]),
                                                       ("zenbackup/perf.tar.gz", [])])],
     r"localhost-c9-perf-backup-1\.tgz holds both perf\.tar and perf\.tar\.gz"),
    ("traversal", [("localhost-c9-perf-backup-1.tgz", [("zenbackup/perf.tar", [("../../evil.rrd", b"x")])])],
     r"perf\.tar in localhost-c9-perf-backup-1\.tgz: member '\.\./\.\./evil\.rrd' points outside"),
    ("dotdot", [("..-perf-backup-1.tgz", [("zenbackup/perf.tar", [("perf/Devices/d/x.rrd", b"x")])])],
     r"remote collector archive \.\.-perf-backup-1\.tgz has no collector name"),
])
def test_bad_remote_collector_archives(export4, tmp_path, case, members, message):
    bundle = str(tmp_path / "bundle.tar")
    shutil.copyfile(export4["path"], bundle)
    built = []
    for archive, inner in members:
        inner_members = [(name, small_tar(content, "w:gz" if name.endswith(".gz") else "w")) for name, content in inner]
        built.append((archive, zenbackup_tgz(inner_members)))
    append_members(bundle, built)
    with pytest.raises(FerryError, match=message):
        bundle_check.run(params(bundle, tmp_path / "x", tmp_path / "s"), False)
    assert os.listdir(str(tmp_path / "x")) == []
    assert not os.path.exists(str(tmp_path / "evil.rrd"))


def test_remote_archive_without_perf_data_is_a_warning(export4, tmp_path):
    bundle = str(tmp_path / "bundle.tar")
    shutil.copyfile(export4["path"], bundle)
    append_members(bundle, [("localhost-c9-perf-backup-1.tgz", zenbackup_tgz([("zenbackup/etc.tar", small_tar([]))]))])
    inv = bundle_check.run(params(bundle, tmp_path / "x", tmp_path / "s"), False)["inventory"]
    assert inv["warnings"] == ["remote collector archive localhost-c9-perf-backup-1.tgz holds no perf data"]
    empty = [c for c in inv["remote_collectors"] if c["name"] == "localhost-c9"]
    assert [(c["rrd_files"], c["files"], c["perf_archive"]) for c in empty] == [(0, 0, None)]


# The model dump must hold a line starting with INSERT INTO (Import4: egrep "^INSERT INTO"), wherever chunks cut it.
DUMP = b"-- MySQL dump\n/*!40101 SET NAMES utf8 */;\nCREATE TABLE `t` (a int);\nINSERT INTO `t` VALUES (1);\n"


def read_model_dump(data, chunk):
    reader = bundle_module._ModelDumpReader(io.BytesIO(data), "zodb.sql.gz")  # pylint: disable=protected-access
    while reader.read(chunk):
        pass
    return reader.has_insert


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 11, 12, 13, 64, 1 << 20])
def test_insert_into_found_across_read_chunks(chunk):
    stored = gzip.compress(DUMP, compresslevel=0)  # stored blocks: compressed chunks cut the text where they cut
    assert read_model_dump(stored, chunk) is True
    assert read_model_dump(gzip.compress(DUMP), chunk) is True


def test_insert_into_at_every_cut_of_two_pieces():
    watcher_class = bundle_module.InsertWatcher
    for text, expected in ((DUMP, True), (b"INSERT INTO `t` VALUES (1);\n", True),
                           (b"-- INSERT INTO in a comment\n  INSERT INTO indented\ninsert into lower\n", False),
                           (b"\r\nINSERT INTO", True), (b"", False), (b"INSERT INT", False),
                           (b"\xff\xfe\nINSERT INTO", True)):
        for cut in range(len(text) + 1):
            for pieces in ([text[:cut], text[cut:]], [text[:cut]] + [bytes([b]) for b in text[cut:]]):
                watcher = watcher_class("x")
                for piece in pieces:
                    if piece:
                        watcher._watch(piece)  # pylint: disable=protected-access
                assert watcher.found is expected, (text, cut)


@pytest.mark.parametrize("text", [b"", b"-- MySQL dump, schema only\nCREATE TABLE `t` (a int);\n",
                                  b"/* INSERT INTO */\n -- INSERT INTO\n"])
def test_model_dump_without_insert_is_refused(text):
    assert read_model_dump(gzip.compress(text), 7) is False


def test_no_insert_check_without_verify_dumps(tmp_path):
    bad = build_bundle(str(tmp_path / "b"), devices=1, rrds_per_device=1, variant="zodb_no_insert")
    result = bundle_check.run(params(bad["path"], tmp_path / "x", tmp_path / "s", verify_dumps=False), False)
    assert result["changed"] is True  # documented: the check needs the dumps inflated


def test_extraction_of_an_older_layout_is_redone(export4, tmp_path):
    """An extraction whose inventory has no layout 2 (remote collectors' perf.tar left packed) is not reused."""
    args = params(export4["path"], tmp_path / "x", tmp_path / "s")
    first = bundle_check.run(args, False)
    manifest = os.path.join(first["extracted_path"], ".ferry-bundle.json")
    with open(manifest) as handle:
        old = json.load(handle)
    del old["layout"]
    with open(manifest, "w") as handle:
        json.dump(old, handle)
    again = bundle_check.run(args, False)
    assert again["changed"] is True and again["inventory"]["layout"] == bundle_module.LAYOUT
    assert bundle_check.run(args, False)["changed"] is False
