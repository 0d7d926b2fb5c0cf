# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""index_restore: a tar member's subtree or a directory swapped in whole, idempotent, hostile members refused."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import io
import os
import tarfile

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core import staging
from ansible_collections.ferry.migrate.plugins.modules import index_restore


def params(src, dest, state, **extra):
    base = dict(src=str(src), member="zeneventserver/index", dest=str(dest), owner=None, group=None, mode=None,
                min_free_mb=0, state_dir=str(state), step=None, force=False)
    base.update(extra)
    return base


def make_tar(path, members, gz=False):
    """members: (name, data) for files, (name, None) for directories, (name, ("sym"|"lnk", target)) for links."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(data, tuple):
                info.type = tarfile.SYMTYPE if data[0] == "sym" else tarfile.LNKTYPE
                info.linkname = data[1]
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(raw.getvalue()) if gz else raw.getvalue())
    return path


def tree(path):
    found = {}
    for top, dirs, files in os.walk(str(path)):
        for name in dirs + files:
            full = os.path.join(top, name)
            found[os.path.relpath(full, str(path))] = None if os.path.isdir(full) else open(full, "rb").read()
    return found


ZEP = [("zeneventserver", None), ("zeneventserver/index", None), ("zeneventserver/index/summary", None),
       ("zeneventserver/index/summary/_0.cfs", b"summary" * 100), ("zeneventserver/index/archive/_1.cfs", b"arch"),
       ("zeneventserver/index/archive/segments.gen", b"\0\1"), ("zeneventserver/other.log", b"not taken")]


@pytest.fixture
def old(tmp_path):
    dest = tmp_path / "var" / "zeneventserver" / "index"
    dest.mkdir(parents=True)
    (dest / "stale.cfs").write_bytes(b"old")
    return dest


@pytest.mark.parametrize("gz", [False, True])
def test_member_subtree_replaces_the_directory(tmp_path, old, gz):
    src = make_tar(tmp_path / "zep.tar", ZEP, gz)
    result = index_restore.run(params(src, old, tmp_path / "s"), False)
    assert result["changed"] and result["files"] == 3 and result["bytes"] == 700 + 4 + 2
    assert tree(old) == {"summary": None, "summary/_0.cfs": b"summary" * 100, "archive": None,
                         "archive/_1.cfs": b"arch", "archive/segments.gen": b"\0\1"}
    assert os.listdir(str(old.parent)) == ["index"]  # no temporary or moved-aside directory left


def test_rerun_is_a_no_op_until_the_directory_is_replaced(tmp_path, old):
    src = make_tar(tmp_path / "zep.tar", ZEP)
    args = params(src, old, tmp_path / "s")
    index_restore.run(args, False)
    again = index_restore.run(args, False)
    assert again["changed"] is False and again["decision"] == "skip"
    assert index_restore.run(args, True)["changed"] is False
    (old / "summary" / "_0.cfs").write_bytes(b"changed inside: same directory, still a skip")
    assert index_restore.run(args, False)["changed"] is False
    os.rename(str(old), str(tmp_path / "elsewhere"))
    old.mkdir()
    assert index_restore.run(args, False)["changed"] is True and (old / "archive" / "_1.cfs").exists()


def test_check_mode_writes_nothing(tmp_path, old):
    src = make_tar(tmp_path / "zep.tar", ZEP)
    result = index_restore.run(params(src, old, tmp_path / "s"), True)
    assert result["changed"] and result["files"] == 3
    assert tree(old) == {"stale.cfs": b"old"} and not (tmp_path / "s").exists()


@pytest.mark.parametrize("hostile, message", [
    (("zeneventserver/index/../../../evil", b"x"), r"outside the destination \(\.\.\)"),
    (("zeneventserver/index/passwd", ("sym", "../../../etc/passwd")), "points outside the destination"),
    (("zeneventserver/index/shadow", ("lnk", "zeneventserver/other.log")), "points outside zeneventserver/index"),
    (("/zeneventserver/index/abs", b"x"), "absolute path"),
])
def test_hostile_members_are_refused_and_the_old_directory_stays(tmp_path, old, hostile, message):
    src = make_tar(tmp_path / "zep.tar", ZEP[:4] + [hostile] + ZEP[4:])
    with pytest.raises(FerryError, match=message):
        index_restore.run(params(src, old, tmp_path / "s"), False)
    assert tree(old) == {"stale.cfs": b"old"} and os.listdir(str(old.parent)) == ["index"]


@pytest.mark.parametrize("cut", [1700, 1536, 2300, -(10240 - 1024 * 5)])
@pytest.mark.parametrize("gz", [False, True, "whole"])
def test_a_truncated_archive_leaves_the_old_directory(tmp_path, old, cut, gz):
    """Cut inside a header, on a header's boundary, inside data, before the end blocks: each is an error. gz: the
    cut tar gzip'd, its gzip stream cut too (True) or whole ("whole": only the tar's end tells)."""
    src = make_tar(tmp_path / "zep.tar", ZEP)
    data = src.read_bytes()[:cut]
    src.write_bytes(gzip.compress(data)[:-9 if gz is True else None] if gz else data)
    with pytest.raises(FerryError, match="truncated|ends early"):
        index_restore.run(params(src, old, tmp_path / "s"), False)
    assert tree(old) == {"stale.cfs": b"old"} and os.listdir(str(old.parent)) == ["index"]


def test_a_missing_member_is_an_error(tmp_path, old):
    src = make_tar(tmp_path / "zep.tar", ZEP)
    with pytest.raises(FerryError, match="holds no zencatalogservice"):
        index_restore.run(params(src, old, tmp_path / "s", member="zencatalogservice/global_catalog/index"), False)


def test_directory_source_with_mode_owner_and_a_symlinked_dest(tmp_path):
    src = tmp_path / "bundle" / "flexera"
    src.mkdir(parents=True)
    (src / "zenoss_rm.lic").write_bytes(b"INCREMENT zenoss\n")
    (src / "name\nwith newline \xe9").write_bytes(b"odd")
    real = tmp_path / "real-flexera"
    real.mkdir()
    (real / "expired.lic").write_bytes(b"old")
    link = tmp_path / "var" / "flexera"
    link.parent.mkdir()
    os.symlink(str(real), str(link))
    uid, gid = os.getuid(), os.getgid()
    result = index_restore.run(params(src, link, tmp_path / "s", member="", mode="0750", owner=str(uid),
                                      group=str(gid)), False)
    assert result["dest"] == str(real) and os.path.islink(str(link))
    assert tree(real) == {"zenoss_rm.lic": b"INCREMENT zenoss\n", "name\nwith newline \xe9": b"odd"}
    assert os.stat(str(real)).st_mode & 0o7777 == 0o750


def test_the_swap_is_staging_s_atomic_exchange(tmp_path, old, monkeypatch):
    calls = []
    real = staging.exchange
    monkeypatch.setattr(staging, "exchange", lambda first, second: calls.append(second) or real(first, second))
    index_restore.run(params(make_tar(tmp_path / "zep.tar", ZEP), old, tmp_path / "s"), False)
    assert calls == [str(old)] and sorted(tree(old)) == ["archive", "archive/_1.cfs", "archive/segments.gen",
                                                         "summary", "summary/_0.cfs"]


def test_a_run_killed_between_the_fallback_renames_is_finished_by_the_next(tmp_path, old):
    """What a kill between the two renames leaves (no exchange on that file system): dest gone, the old directory
    moved aside, the new one complete under its temporary name. The rerun starts from the new one, never from
    nothing, and ends with the restored directory alone."""
    src = make_tar(tmp_path / "zep.tar", ZEP)
    args = params(src, old, tmp_path / "s")
    index_restore.run(args, False)
    restored = tree(old)
    os.rename(str(old), str(old.parent / ".index.ferry-tmp-999999999"))
    (old.parent / ".index.ferry-old-999999999").mkdir()
    (old.parent / ".index.ferry-old-999999999" / "stale.cfs").write_bytes(b"old")
    result = index_restore.run(args, False)
    assert result["changed"] is True and tree(old) == restored and os.listdir(str(old.parent)) == ["index"]
