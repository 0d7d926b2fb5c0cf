# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bundle_check on bundles cut exactly at a member boundary (the outer tar, the tar inside zenbackup_4x.tgz,
perf.tar, a remote collector's perf.tar): tarfile reads such a cut as a normal end, so without the end-of-archive
check these bundles passed with members, or RRD files, missing. The same bundle rebuilt whole, with Python's
tarfile or the way export4 does it with GNU tar (tar czf, then tar -rf of backup.md5), passes."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import gzip
import hashlib
import io
import os
import re
import subprocess
import tarfile

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.modules import bundle_check

from tools.gen_zenoss_bundle import build_bundle

TGZ = "zenbackup_4x.tgz"
NAME = "4x-export-cut.tar"


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return build_bundle(str(tmp_path_factory.mktemp("cut")), devices=3, rrds_per_device=2, remote_collectors=1,
                        seed=7, name=NAME)


def params(path, tmp_path, **extra):
    base = dict(path=str(path), dest=str(tmp_path / "x"), state_dir=str(tmp_path / "s"), step=None, force=False,
                allow_missing_checksum=False, verify_dumps=True, min_free_mb=0)
    base.update(extra)
    return base


def read_tar(data):
    """[(TarInfo, bytes or None)] of a whole (uncut) tar."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return [(info, tar.extractfile(info).read() if info.isreg() else None) for info in tar.getmembers()]


def write_tar(members):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            info = copy.copy(info)
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def content(members, name):
    return dict((info.name, data) for info, data in members)[name]


def replaced(members, name, data):
    return [(info, data if info.name == name else old) for info, old in members]


def cut_before(data, name):
    """``data`` (a tar) cut exactly where member ``name`` starts; ``None``: where the end-of-archive blocks start."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        tar.getmembers()
        return data[:tar.getmember(name).offset if name else tar.offset]


def rebuild(good, path, tgz=None, collector=None):
    """The good bundle written again with tarfile, with another tgz (backup.md5 giving its md5) or another remote
    collector archive."""
    with open(good["path"], "rb") as handle:
        outer = read_tar(handle.read())
    if tgz is not None:
        line = content(outer, "backup.md5").decode()
        outer = replaced(outer, TGZ, tgz)
        outer = replaced(outer, "backup.md5", (hashlib.md5(tgz).hexdigest() + line[32:]).encode())
    if collector is not None:
        outer = replaced(outer, good["remote_archives"][0], collector)
    path.write_bytes(write_tar(outer))
    return path


def inner_of(good):
    with open(good["path"], "rb") as handle:
        return read_tar(gzip.decompress(content(read_tar(handle.read()), TGZ)))


def test_the_bundle_rebuilt_whole_passes(good, tmp_path):
    """The helpers below change only what each test cuts."""
    inner = inner_of(good)
    tgz = gzip.compress(write_tar(replaced(inner, "zenbackup/perf.tar", content(inner, "zenbackup/perf.tar"))))
    path = rebuild(good, tmp_path / NAME, tgz=tgz)
    inventory = bundle_check.run(params(path, tmp_path), False)["inventory"]
    assert inventory["rrd_files"] == good["rrd_count"] and inventory["tgz"]["md5_verified"] is True


def test_an_outer_bundle_cut_at_each_member_boundary_is_refused(good, tmp_path):
    with open(good["path"], "rb") as handle:
        data = handle.read()
    for name in good["members"][1:] + [None]:
        path = tmp_path / NAME
        path.write_bytes(cut_before(data, name))
        with pytest.raises(FerryError, match=re.escape(NAME) + r" is truncated: it ends at byte \d+ after a member"):
            bundle_check.run(params(path, tmp_path, allow_missing_checksum=True), True)


def test_a_bundle_cut_before_backup_md5_leaves_nothing(good, tmp_path):
    """Cut before backup.md5: with allow_missing_checksum this bundle passed as one without a checksum."""
    with open(good["path"], "rb") as handle:
        (tmp_path / NAME).write_bytes(cut_before(handle.read(), "backup.md5"))
    with pytest.raises(FerryError, match=re.escape(NAME) + " is truncated"):
        bundle_check.run(params(tmp_path / NAME, tmp_path, allow_missing_checksum=True), False)
    assert os.listdir(str(tmp_path / "x")) == []


@pytest.mark.parametrize("cut", ["zenbackup/perf.tar", "zenbackup/zencatalogservice.tar", None])
def test_the_tar_inside_the_tgz_cut_at_a_member_boundary_is_refused(good, tmp_path, cut):
    """The tgz is a whole gzip stream and backup.md5 matches it: only the tar inside is cut."""
    tgz = gzip.compress(cut_before(write_tar(inner_of(good)), cut))
    path = rebuild(good, tmp_path / NAME, tgz=tgz)
    with pytest.raises(FerryError, match=re.escape(TGZ) + " is truncated: it ends at byte"):
        bundle_check.run(params(path, tmp_path), False)
    assert os.listdir(str(tmp_path / "x")) == []


def test_perf_tar_cut_at_a_member_boundary_is_refused(good, tmp_path):
    """perf.tar cut before its last RRD file, the tgz and backup.md5 whole around it: one RRD fewer without a word."""
    inner = inner_of(good)
    perf = content(inner, "zenbackup/perf.tar")
    last_rrd = [info.name for info, _data in read_tar(perf) if info.name.endswith(".rrd")][-1]
    tgz = gzip.compress(write_tar(replaced(inner, "zenbackup/perf.tar", cut_before(perf, last_rrd))))
    path = rebuild(good, tmp_path / NAME, tgz=tgz)
    with pytest.raises(FerryError, match=r"^perf\.tar is truncated: it ends at byte \d+ after a member"):
        bundle_check.run(params(path, tmp_path), False)


def test_a_remote_collectors_perf_tar_cut_at_a_member_boundary_is_refused(good, tmp_path):
    archive = good["remote_archives"][0]
    with open(good["path"], "rb") as handle:
        members = read_tar(gzip.decompress(content(read_tar(handle.read()), archive)))
    perf = content(members, "zenbackup/perf.tar")
    first_rrd = [info.name for info, _data in read_tar(perf) if info.name.endswith(".rrd")][0]
    collector = gzip.compress(write_tar(replaced(members, "zenbackup/perf.tar", cut_before(perf, first_rrd))))
    path = rebuild(good, tmp_path / NAME, collector=collector)
    with pytest.raises(FerryError, match=r"^perf\.tar in %s is truncated" % re.escape(archive)):
        bundle_check.run(params(path, tmp_path), False)


def test_a_bundle_made_with_gnu_tar_the_export4_way_passes(good, tmp_path):
    """Every level written by GNU tar: perf.tar (tar cf), the tgz (tar czf), the bundle (tar cf, then tar -rf of
    backup.md5, as export4 appends it)."""
    work = tmp_path / "work"
    (work / "inner").mkdir(parents=True)
    (work / "perf").mkdir()

    def run(*command):
        subprocess.run(command, cwd=str(work), check=True)

    run("tar", "xf", good["path"])
    run("tar", "xzf", TGZ, "-C", "inner")
    run("tar", "xf", "inner/zenbackup/perf.tar", "-C", "perf")
    os.unlink(str(work / "inner" / "zenbackup" / "perf.tar"))
    run("tar", "cf", "inner/zenbackup/perf.tar", "-C", "perf", "perf")
    os.unlink(str(work / TGZ))
    run("tar", "czf", TGZ, "-C", "inner", "zenbackup")
    line = (work / "backup.md5").read_text()
    (work / "backup.md5").write_text(hashlib.md5((work / TGZ).read_bytes()).hexdigest() + line[32:])
    bundle = str(tmp_path / NAME)
    run("tar", "cf", bundle, *[name for name in good["members"][:-1] if "/" not in name])
    run("tar", "-rf", bundle, "backup.md5")
    inventory = bundle_check.run(params(bundle, tmp_path), False)["inventory"]
    assert inventory["rrd_files"] == good["rrd_count"] and inventory["other_rrd_files"] == good["daemon_rrd_count"]
    assert inventory["tgz"]["md5_verified"] is True and inventory["warnings"] == []
