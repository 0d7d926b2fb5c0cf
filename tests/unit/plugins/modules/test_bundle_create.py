# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bundle_create on Zenoss homes made by tools/gen_zenoss_home.py: export4's layout exactly, bundle_check and the
Import4 check oracle pass, the dry run, the rerun, a kill, hostile names and links, bad inputs."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import hashlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import time

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import Journal, Stopped
from ansible_collections.ferry.migrate.plugins.module_utils.core import tartree
from ansible_collections.ferry.migrate.plugins.module_utils.zenoss import export
from ansible_collections.ferry.migrate.plugins.modules import bundle_check, bundle_create

from tests.support.import4_check import Import4CheckFailed, import4_check
from tools.gen_zenoss_home import build_home

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
INNER = ["zenbackup/", "zenbackup/backup.settings", "zenbackup/zep.sql.gz", "zenbackup/zep.tar", "zenbackup/etc.tar",
         "zenbackup/zodb.sql.gz", "zenbackup/zodb_session.sql.gz", "zenbackup/ZenPacks.tar", "zenbackup/bin.tar",
         "zenbackup/zencatalogservice.tar", "zenbackup/perf.tar"]


def params(info, dest, state, **extra):
    base = dict(zenhome=info["zenhome"], dest=str(dest), zodb_dump=info["zodb_dump"],
                zodb_session_dump=info["zodb_session_dump"], zep_dump=info.get("zep_dump"),
                dmd_uuid=info["dmd_uuid"], component_list=info["component_list"], rrdpath_map=info["rrdpath_map"],
                collector_archives=list(info["collector_archives"]), skip_perf=False, tmp_dir=None,
                outside_symlinks="follow", compress_level=6, min_free_mb=0, state_dir=str(state), step=None,
                force=False)
    base.update(extra)
    return base


def check_params(bundle, dest, state):
    return dict(path=str(bundle), dest=str(dest), state_dir=str(state), step=None, force=False,
                allow_missing_checksum=False, verify_dumps=True, min_free_mb=0)


def names(path, mode="r:"):
    with tarfile.open(str(path), mode) as tar:
        return [m.name + ("/" if m.isdir() else "") for m in tar.getmembers()]


def gnu_names(path):
    """Member names as GNU tar lists them (plain names: no quoting needed)."""
    out = subprocess.run(["tar", "-tf", str(path)], capture_output=True, check=True,
                         env=dict(os.environ, LC_ALL="C")).stdout
    return out.splitlines()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return build_home(str(tmp_path_factory.mktemp("home")), devices=3, rrds_per_device=3, remote_collectors=1, seed=3)


@pytest.fixture(scope="module")
def built(home, tmp_path_factory):
    work = tmp_path_factory.mktemp("built")
    result = bundle_create.run(params(home, work / "4x-export-test.tar", work / "state"), False)
    return result


def test_bundle_has_export4s_members_in_order(home, built):
    archive = os.path.basename(home["collector_archives"][0])
    assert names(built["dest"]) == ["componentList.txt", "rrdpath.map", "dmd_uuid.txt", archive, "flexera/",
                                    "flexera/tsf_zenoss.data", "flexera/zenoss_rm.lic", "zenbackup_4x.tgz",
                                    "backup.md5"]
    assert [m["name"] for m in built["members"]] == names(built["dest"])
    assert os.path.getsize(built["dest"]) % tarfile.RECORDSIZE == 0 == built["size"] % tarfile.RECORDSIZE
    with tarfile.open(built["dest"]) as outer:
        tgz = outer.extractfile("zenbackup_4x.tgz").read()
        md5_line = outer.extractfile("backup.md5").read().decode()
        assert outer.extractfile("dmd_uuid.txt").read() == (home["dmd_uuid"] + "\n").encode()
    assert hashlib.md5(tgz).hexdigest() == built["md5"] == built["tgz"]["md5"]
    assert re.match(r"^%s \*/.+/zenbackup_4x\.tgz\n$" % built["md5"], md5_line)
    with open(built["dest"], "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == built["sha256"]
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as inner:
        assert [m.name + ("/" if m.isdir() else "") for m in inner.getmembers()] == INNER
        assert inner.getmember("zenbackup").mode == 0o750
        settings = inner.extractfile("zenbackup/backup.settings").read().decode()
        perf = tarfile.open(fileobj=inner.extractfile("zenbackup/perf.tar"))
        zep = tarfile.open(fileobj=inner.extractfile("zenbackup/zep.tar"))
        assert perf.getnames()[0] == "perf" and zep.getnames()[0] == "zeneventserver"
        assert sum(n.endswith(".rrd") and n.startswith("perf/Devices/") for n in perf.getnames()) == home["rrd_count"]
        etc = tarfile.open(fileobj=inner.extractfile("zenbackup/etc.tar"))
        assert etc.getmember("etc/zenperfsnmp.conf").isreg()  # a symlink, followed as zenbackup does
    assert settings.startswith("[zenbackup]\nzodb_host = localhost\nzodb_port = 3306\n") and settings.endswith("\n\n")
    assert "zepdbpass = zenoss" in settings
    # GNU tar reads the same names (what export4's own tar would list).
    assert [n.decode() for n in gnu_names(built["dest"])] == names(built["dest"])


def test_bundle_passes_bundle_check_and_the_import4_check(home, built, tmp_path):
    inventory = bundle_check.run(check_params(built["dest"], tmp_path / "x", tmp_path / "s"), False)["inventory"]
    assert inventory["tgz"]["md5_verified"] and inventory["tgz"]["md5"] == built["md5"]
    assert inventory["dmd_uuid"] == home["dmd_uuid"]
    assert inventory["rrd_files"] == home["rrd_count"] + home["remote_rrd_count"]
    assert inventory["warnings"] == []
    found = import4_check(built["dest"], str(tmp_path / "import4"))
    assert found["md5_checked"] and found["dmd_uuid"] == home["dmd_uuid"] and found["model_inserts"] > 0
    assert found["perf"] == "perf.tar" and found["rrd_files"] == home["rrd_count"]
    assert found["event_index"] and found["catalog"] and found["events"]


def test_import4_oracle_refuses_what_import4_refuses(built, tmp_path):
    """The oracle is worth something: a wrong backup.md5 and a model dump without INSERT INTO fail it."""
    bad = tmp_path / "bad.tar"
    with tarfile.open(built["dest"]) as source, tarfile.open(str(bad), "w") as out:
        for member in source.getmembers():
            data = source.extractfile(member).read() if member.isreg() else None
            if member.name == "backup.md5":
                data = b"0" * 32 + data[32:]
            out.addfile(member, io.BytesIO(data) if data is not None else None)
    with pytest.raises(Import4CheckFailed, match="md5sum failed"):
        import4_check(str(bad), str(tmp_path / "w"))


def test_dry_run_reports_sizes_and_writes_nothing(home, built, tmp_path):
    dest = tmp_path / "out" / "b.tar"
    result = bundle_create.run(params(home, dest, tmp_path / "state"), True)
    plan = result["plan"]
    assert result["changed"] is True and not (tmp_path / "out").exists() and not (tmp_path / "state").exists()
    assert plan["zenbackup_members"] == built["zenbackup_members"]
    assert plan["tgz_uncompressed_bytes"] == built["tgz"]["uncompressed_size"]
    assert plan["bundle_max_bytes"] >= built["size"] and plan["enough_space"] is True and plan["free_bytes"] > 0
    assert [m["name"] for m in plan["members"]][-2:] == ["zenbackup_4x.tgz", "backup.md5"]
    with pytest.raises(FerryError, match="not enough free space") as caught:
        bundle_create.run(params(home, dest, tmp_path / "state", min_free_mb=1 << 40), True)
    assert caught.value.result["plan"]["enough_space"] is False
    with pytest.raises(FerryError, match="not enough free space"):
        bundle_create.run(params(home, dest, tmp_path / "state", min_free_mb=1 << 40), False)
    assert not dest.exists()


def test_rerun_is_a_no_op_and_a_removed_bundle_is_written_again(home, tmp_path):
    args = params(home, tmp_path / "b.tar", tmp_path / "state")
    first = bundle_create.run(args, False)
    stamp = os.stat(first["dest"]).st_mtime_ns
    second = bundle_create.run(args, False)
    assert second["changed"] is False and second["decision"] == "skip" and second["sha256"] == first["sha256"]
    assert os.stat(first["dest"]).st_mtime_ns == stamp
    assert bundle_create.run(args, True)["changed"] is False  # check mode predicts the skip
    os.unlink(first["dest"])
    third = bundle_create.run(args, False)
    assert third["changed"] is True and os.path.exists(first["dest"])
    assert sorted(os.listdir(str(tmp_path))) == ["b.tar", "state"]


def test_staged_tgz_in_tmp_dir_gives_the_same_archive(home, built, tmp_path):
    (tmp_path / "tmp").mkdir()
    result = bundle_create.run(params(home, tmp_path / "b.tar", tmp_path / "s", tmp_dir=str(tmp_path / "tmp")), False)
    assert result["zenbackup_members"] == built["zenbackup_members"]
    assert result["tgz"]["uncompressed_size"] == built["tgz"]["uncompressed_size"]
    assert os.listdir(str(tmp_path / "tmp")) == []
    import4_check(result["dest"], str(tmp_path / "w"))


def test_skip_perf_leaves_out_perf_and_the_collectors(home, tmp_path):
    result = bundle_create.run(params(home, tmp_path / "b.tar", tmp_path / "s", skip_perf=True), False)
    assert "perf.tar" not in [m["name"] for m in result["zenbackup_members"]]
    assert not any("perf-backup" in m["name"] for m in result["members"])
    assert any("left out" in w for w in result["warnings"])


def test_stop_file_stops_without_a_bundle(home, tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "STOP").write_text("")
    with pytest.raises(Stopped):
        bundle_create.run(params(home, tmp_path / "b.tar", tmp_path / "state"), False)
    assert os.listdir(str(tmp_path)) == ["state"]


def test_kill_mid_way_leaves_no_bundle_and_the_rerun_completes(tmp_path):
    info = build_home(str(tmp_path / "big"), devices=2, rrds_per_device=2, pad_bytes=96 << 20, seed=4)
    dest = tmp_path / "out" / "b.tar"
    args = params(info, dest, tmp_path / "state", compress_level=9)
    script = ("import json, sys; sys.path.insert(0, %r); import conftest; "
              "from ansible_collections.ferry.migrate.plugins.modules import bundle_create; "
              "bundle_create.run(json.loads(sys.argv[1]), False)" % ROOT)
    import json
    proc = subprocess.Popen([sys.executable, "-c", script, json.dumps(args)], cwd=ROOT)
    partial = tmp_path / "out" / ".b.tar.ferry-tmp"
    deadline = time.time() + 60
    while time.time() < deadline and not (partial.exists() and partial.stat().st_size > (1 << 20)):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert partial.exists() and not dest.exists()
    assert Journal(str(tmp_path / "state")).step("bundle_create").record()["status"] == "interrupted"
    result = bundle_create.run(dict(args, compress_level=9), False)
    assert result["decision"] == "resume" and dest.exists() and not partial.exists()
    import4_check(str(dest), str(tmp_path / "w"))


# -- hostile trees ------------------------------------------------------------------------------------------
@pytest.fixture
def hostile(home, tmp_path):
    """A copy of the home whose perf tree holds names with a newline, non-UTF-8 bytes and 150 bytes, a loop, a
    dangling link, a FIFO, a socket and a link to a directory outside the home."""
    zenhome = tmp_path / "zenhome"
    subprocess.run(["cp", "-a", home["zenhome"], str(zenhome)], check=True)
    devices = os.fsencode(str(zenhome / "perf" / "Devices"))
    odd = [b"dev\nline", b"caf\xe9-\xff", b"x" * 150]
    for name in odd:
        os.makedirs(os.path.join(devices, name, b"os"))
        with open(os.path.join(devices, name, b"os", b"ds0.rrd"), "wb") as out:
            out.write(name * 10)
    os.symlink("..", os.fsdecode(os.path.join(devices, b"loop")))
    os.symlink("missing", os.fsdecode(os.path.join(devices, b"dangling.rrd")))
    os.mkfifo(os.fsdecode(os.path.join(devices, b"fifo.rrd")))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(os.fsdecode(os.path.join(devices, b"sock")))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.rrd").write_bytes(b"outside")
    os.symlink(str(outside), os.fsdecode(os.path.join(devices, b"outside")))
    yield dict(home, zenhome=str(zenhome)), odd
    sock.close()


def test_hostile_names_and_links(hostile, tmp_path):
    info, odd = hostile
    result = bundle_create.run(params(info, tmp_path / "b.tar", tmp_path / "s"), False)
    assert result["skipped"] == 4 and result["outside_link_count"] == 1
    assert any("loop" in w for w in result["warnings"]) and any("dangling" in w for w in result["warnings"])
    assert any("\\x0a" in w or "socket" in w for w in result["warnings"])
    found = import4_check(result["dest"], str(tmp_path / "w"))  # GNU tar extracts it
    devices = os.path.join(os.fsencode(found["perf_root"]), b"Devices")
    for name in odd:
        with open(os.path.join(devices, name, b"os", b"ds0.rrd"), "rb") as handle:
            assert handle.read() == name * 10
    with open(os.path.join(devices, b"outside", b"secret.rrd"), "rb") as handle:
        assert handle.read() == b"outside"
    listed = set(os.listdir(devices))
    assert not listed & {b"fifo.rrd", b"sock", b"loop", b"dangling.rrd"}
    inventory = bundle_check.run(check_params(result["dest"], tmp_path / "x", tmp_path / "s2"), False)["inventory"]
    assert inventory["tgz"]["md5_verified"]


def test_outside_symlinks_skip_and_fail(hostile, tmp_path):
    info, _odd = hostile
    skipped = bundle_create.run(params(info, tmp_path / "b.tar", tmp_path / "s", outside_symlinks="skip"), False)
    assert skipped["outside_link_count"] == 0 and any("outside the Zenoss home" in w for w in skipped["warnings"])
    with pytest.raises(FerryError, match="outside .*refusing to archive it"):
        bundle_create.run(params(info, tmp_path / "c.tar", tmp_path / "s", outside_symlinks="fail"), False)
    assert not (tmp_path / "c.tar").exists() and not (tmp_path / ".c.tar.ferry-tmp").exists()


# -- bad inputs ---------------------------------------------------------------------------------------------
def _gz(path, text):
    with gzip.open(str(path), "wb") as out:
        out.write(text)
    return str(path)


@pytest.mark.parametrize("change, message", [
    (lambda info, tmp: {"zodb_dump": str(tmp)}, "not a regular file"),
    (lambda info, tmp: {"zodb_dump": info["component_list"]}, "not gzip data"),
    (lambda info, tmp: {"zodb_dump": _gz(tmp / "e.sql.gz", b"CREATE TABLE t (a int);\n")}, "INSERT INTO"),
    (lambda info, tmp: {"zep_dump": str(tmp / "missing.sql.gz")}, "cannot be read"),
    (lambda info, tmp: {"dmd_uuid": "a\nb"}, "one line"),
    (lambda info, tmp: {"zenhome": str(tmp)}, "not a Zenoss home"),
    (lambda info, tmp: {"dest": str(tmp)}, "is a directory"),
    (lambda info, tmp: {"collector_archives": [info["zodb_dump"]]}, "perf-backup"),
    (lambda info, tmp: {"compress_level": 10}, "compress_level=10 is out of range"),
    (lambda info, tmp: {"dest": ""}, "dest is an empty string"),
])
def test_bad_inputs_fail_before_anything_is_written(home, tmp_path, change, message):
    args = params(home, tmp_path / "out" / "b.tar", tmp_path / "state")
    args.update(change(home, tmp_path))
    with pytest.raises(FerryError, match=message):
        bundle_create.run(args, False)
    assert not (tmp_path / "out").exists()


# -- the engine's pieces ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a", "x" * 99, "x" * 100, "x" * 101, "d" * 99 + "\xe9", "caf\udce9", "a\nb" * 60])
@pytest.mark.parametrize("kind", [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE])
def test_header_size_is_the_header_length(name, kind):
    meta = tartree.Meta(0o644, 0)
    link = name[::-1] if kind == tarfile.SYMTYPE else ""
    assert tartree.header_size(name, kind, link) == len(tartree.header(name, kind, meta, 0, link))


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("size", [0, 1, export.GzipSink.BLOCK - 1, export.GzipSink.BLOCK,
                                  3 * export.GzipSink.BLOCK + 7])
def test_gzip_sink_writes_one_gzip_stream(workers, size):
    data = (os.urandom(size // 2) + b"abc" * size)[:size]
    out = io.BytesIO()
    sink = export.GzipSink(out, 6, workers)
    for start in range(0, size, 100000):
        sink.write(data[start:start + 100000])
    sink.close()
    assert gzip.decompress(out.getvalue()) == data
    assert sink.md5.hexdigest() == hashlib.md5(out.getvalue()).hexdigest() and sink.size == len(out.getvalue())
    subprocess.run(["gzip", "-t"], input=out.getvalue(), check=True)


def test_a_tree_growing_between_its_walks_fails(tmp_path):
    """The announced size is the contract: a tree that outgrows it fails; one still fitting it (the record's
    padding) is archived as it is at the second walk, header and data agreeing."""
    (tmp_path / "perf").mkdir()
    (tmp_path / "perf" / "a.rrd").write_bytes(b"a" * 1000)
    archive = tartree.TreeArchive(lambda first: tartree.TreeWalk(str(tmp_path / "perf"), "perf", True))
    size = archive.measure()
    (tmp_path / "perf" / "a.rrd").write_bytes(b"b" * 2000)
    out = io.BytesIO()
    archive.write(out)
    assert len(out.getvalue()) == size
    assert tarfile.open(fileobj=io.BytesIO(out.getvalue())).extractfile("perf/a.rrd").read() == b"b" * 2000
    (tmp_path / "perf" / "b.rrd").write_bytes(b"c" * tarfile.RECORDSIZE)
    with pytest.raises(FerryError, match="changed while it was archived"):
        archive.write(io.BytesIO())


def test_collector_archive_is_zenbackups(home, tmp_path):
    with tarfile.open(home["collector_archives"][0], "r:gz") as tar:
        assert tar.getnames() == ["zenbackup", "zenbackup/etc.tar", "zenbackup/perf.tar"]
