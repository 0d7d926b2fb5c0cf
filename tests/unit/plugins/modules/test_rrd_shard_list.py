# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rrd_shard_list: the shards' lists split the trees once (the converters' own split), a copy of one shard made
with rsync --from0 --files-from converts and verifies exactly as the whole tree does (the X_GAUGE.rrd deciders of
other shards carried along), any name listed as it is, check mode, the rerun, and bad options refused with the
old list intact."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import subprocess
import zlib

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.jobs import TsdbJob
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.naming import ZenossNames
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.verify import expected_series
from ansible_collections.ferry.migrate.plugins.modules import rrd_shard_list, rrd_to_tsdb
from tests.unit.plugins.modules.test_rrd_modules import batch_points, files_under, params, small_rrd
from tools.gen_rrd_tree import build_tree

needs_rsync = pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed")
INCLUDE = ["perf/rrdpath.map", "perf/dmd_uuid.txt"]


def shard_of(relative, count):
    """The test's own reading of the split: CRC-32 of the path relative to the tree."""
    return zlib.crc32(os.fsencode(relative)) % count


def cross_shard_name(device_dir, count, same=False):
    """``X`` such that ``X.rrd`` and ``X_GAUGE.rrd`` under ``device_dir`` fall in different shards (or, with
    ``same``, in one)."""
    for number in range(1000):
        name = "cross%d" % number
        plain, gauge = ("%s/%s%s.rrd" % (device_dir, name, suffix) for suffix in ("", "_GAUGE"))
        apart = shard_of(plain, count) != shard_of(gauge, count)
        if apart != same:
            return name
    raise AssertionError("no name found")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A bundle-like directory: perf/ (a Zenoss tree with superseded X.rrd files) and two crafted pairs,
    X.rrd with other data than its X_GAUGE.rrd, one pair split between the two shards, one not."""
    root = tmp_path_factory.mktemp("shard-list")
    info = build_tree(str(root / "perf"), "zenoss", files=24, days=2, workers=2)
    device = "Devices/%s" % info["devices"][0]["id"]
    pairs = []
    for same in (False, True):
        name = cross_shard_name(device, 2, same)
        small_rrd(root / "perf" / device / (name + "_GAUGE.rrd"), values=9)
        small_rrd(root / "perf" / device / (name + ".rrd"), values=5)
        pairs.append("%s/%s.rrd" % (device, name))
    return {"root": str(root), "info": info, "pairs": pairs}


def list_args(bundle, dest, **more):
    return params(rrd_shard_list, src=bundle["root"], trees=["perf"], include=INCLUDE, dest=str(dest), **more)


def read_list(path):
    data = open(str(path), "rb").read()
    assert data == b"" or data.endswith(b"\0")
    return [os.fsdecode(name) for name in data.split(b"\0")[:-1]]


def tree_files(root):
    return sorted(name for name in files_under(root) if ".rrd" in name)


def pull(bundle, list_path, dest):
    """What the role runs on a worker (without ssh): rsync of the listed files only."""
    subprocess.run(["rsync", "--archive", "--from0", "--files-from=" + str(list_path), bundle["root"] + "/",
                    str(dest) + "/"], check=True, capture_output=True)
    return files_under(dest)


def test_lists_split_the_trees_once_with_deciders(bundle, tmp_path):
    perf = os.path.join(bundle["root"], "perf")
    every = tree_files(perf)
    for count in (1, 2, 3):
        seen = []
        for index in range(count):
            out = rrd_shard_list.run(list_args(bundle, tmp_path / ("%d-%d" % (index, count)), shard_index=index,
                                               shard_count=count), False)
            names = read_list(out["dest"])
            assert names[:2] == INCLUDE  # the files naming the series, whatever the shard
            own = [n[len("perf/"):] for n in names[2:] if shard_of(n[len("perf/"):], count) == index]
            deciders = [n[len("perf/"):] for n in names[2:] if shard_of(n[len("perf/"):], count) != index]
            assert all(d.endswith("_GAUGE.rrd") and d.replace("_GAUGE.rrd", ".rrd") in own for d in deciders)
            assert (out["files"], out["deciders"]) == (len(names), len(deciders))
            assert out["bytes"] == sum(os.path.getsize(os.path.join(bundle["root"], n)) for n in names)
            seen += own
        assert sorted(seen) == every  # each file in exactly one shard
    for pair in bundle["pairs"]:  # split between the shards: X_GAUGE.rrd in both lists; in one shard: in its only
        gauge = "perf/" + pair.replace(".rrd", "_GAUGE.rrd")
        holder = shard_of(pair, 2)
        assert gauge in read_list(tmp_path / ("%d-2" % holder))
        assert (gauge in read_list(tmp_path / ("%d-2" % (1 - holder)))) == (pair == bundle["pairs"][0])


@needs_rsync
def test_a_copy_of_each_shard_converts_as_the_whole_tree(bundle, tmp_path):
    perf = os.path.join(bundle["root"], "perf")
    whole_points, copied_points = [], []
    for index in range(2):
        out = rrd_shard_list.run(list_args(bundle, tmp_path / "list", shard_index=index, shard_count=2), False)
        copy = tmp_path / ("copy%d" % index)
        assert pull(bundle, out["dest"], copy) == sorted(read_list(out["dest"]))  # nothing more, nothing less
        runs = []
        for src, name in ((perf, "whole"), (str(copy / "perf"), "copy")):
            runs.append(rrd_to_tsdb.run(params(rrd_to_tsdb, src=src, dest=str(tmp_path / ("pts-%s%d" % (name, index))),
                                               state_dir=str(tmp_path / ("s-%s%d" % (name, index))), workers=1,
                                               shard_index=index, shard_count=2), False))
        whole, copied = runs
        assert copied["counts"] == whole["counts"] and copied["counts"]["failed"] == 0
        assert sorted(copied["skipped_files"]) == sorted(whole["skipped_files"])
        assert copied["tenant_id"] == whole["tenant_id"] == bundle["info"]["dmd_uuid"]
        whole_points += batch_points(tmp_path / ("pts-whole%d" % index))[0]
        copied_points += batch_points(tmp_path / ("pts-copy%d" % index))[0]
        # rrd_verify decides with the same code on the copy: each file of the shard expected alike
        names = ZenossNames(whole["tenant_id"])
        for relative in tree_files(str(copy / "perf")):
            if shard_of(relative, 2) == index:
                here, there = (expected_series(TsdbJob(tree, names), relative, False)
                               for tree in (str(copy / "perf"), perf))
                assert here[1] == there[1] and [e.count for e in here[0]] == [e.count for e in there[0]]
    assert sorted(copied_points) == sorted(whole_points)
    every = rrd_to_tsdb.run(params(rrd_to_tsdb, src=perf, dest=str(tmp_path / "all"), state_dir=str(tmp_path / "sa"),
                                   workers=1), False)
    assert sorted(copied_points) == sorted(batch_points(tmp_path / "all")[0])
    assert len(copied_points) == every["counts"]["points"]
    skipped = [text.split(":")[0] for text in every["skipped_files"]]
    assert set(bundle["pairs"]) <= set(skipped)


@needs_rsync
def test_without_its_decider_a_copy_would_convert_the_superseded_file(bundle, tmp_path):
    """The reason deciders are listed: the split pair's X.rrd is converted by a copy that lacks X_GAUGE.rrd."""
    split = bundle["pairs"][0]
    index = shard_of(split, 2)
    out = rrd_shard_list.run(list_args(bundle, tmp_path / "list", shard_index=index, shard_count=2), False)
    assert out["deciders"] >= 1
    copy = tmp_path / "copy"
    pull(bundle, out["dest"], copy)
    args = params(rrd_to_tsdb, src=str(copy / "perf"), files=[split], shard_index=index, shard_count=2, workers=1)
    kept = rrd_to_tsdb.run(dict(args, dest=str(tmp_path / "p1"), state_dir=str(tmp_path / "s1")), False)
    assert kept["counts"]["skipped"] == 1 and kept["counts"]["points"] == 0
    os.unlink(str(copy / "perf" / split.replace(".rrd", "_GAUGE.rrd")))
    lost = rrd_to_tsdb.run(dict(args, dest=str(tmp_path / "p2"), state_dir=str(tmp_path / "s2")), False)
    assert lost["counts"]["skipped"] == 0 and lost["counts"]["points"] == 5


def test_check_mode_rerun_and_a_new_file(bundle, tmp_path):
    dest = tmp_path / "lists" / "w0.files"
    args = list_args(bundle, dest, shard_index=0, shard_count=2)
    checked = rrd_shard_list.run(args, True)
    assert checked["changed"] and not (tmp_path / "lists").exists()
    first = rrd_shard_list.run(args, False)
    assert first["changed"] and dict(checked, changed=True) == first
    assert os.stat(str(dest)).st_mode & 0o777 == 0o644
    before = os.stat(str(dest))
    assert not rrd_shard_list.run(args, True)["changed"]
    again = rrd_shard_list.run(args, False)
    assert not again["changed"] and os.stat(str(dest)).st_ino == before.st_ino  # not rewritten
    assert sorted(os.listdir(str(tmp_path / "lists"))) == ["w0.files"]  # no temporary file left
    # another shard count, another list
    assert rrd_shard_list.run(dict(args, shard_count=3), True)["changed"]


def test_any_name_is_listed_as_it_is_and_copied(tmp_path):
    src = tmp_path / "b"
    names = ["Devices/dev\n1/a.rrd", "Devices/d\xff\xfe/b.rrd", "Devices/dev 2/c d.rrd"]
    names = [os.fsdecode(n.encode("latin-1")) if "\xff" in n else n for n in names]
    made = small_rrd(tmp_path / "made.rrd")  # the rrdtool binding cannot take a name that is not UTF-8
    for name in names:
        path = os.path.join(str(src), name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        shutil.copy(made, path)
    out = rrd_shard_list.run(params(rrd_shard_list, src=str(src), dest=str(tmp_path / "l")), False)
    assert sorted(read_list(out["dest"])) == sorted(names) and out["files"] == 3
    if shutil.which("rsync"):
        subprocess.run(["rsync", "--archive", "--from0", "--files-from=" + out["dest"], str(src) + "/",
                        str(tmp_path / "c") + "/"], check=True, capture_output=True)
        assert files_under(tmp_path / "c") == sorted(names)


def test_empty_tree_gives_an_empty_list(tmp_path):
    (tmp_path / "b" / "perf").mkdir(parents=True)
    out = rrd_shard_list.run(params(rrd_shard_list, src=str(tmp_path / "b"), trees=["perf"], include=["x"],
                                    dest=str(tmp_path / "l")), False)
    assert out["files"] == out["bytes"] == 0 and open(out["dest"], "rb").read() == b""


@pytest.mark.parametrize("change, message", [
    ({"trees": ["../elsewhere"]}, "tree ../elsewhere is not inside"),
    ({"trees": ["missing"]}, "does not exist"),
    ({"include": ["../../etc/passwd"]}, "file ../../etc/passwd is not inside"),
    ({"shard_index": 2, "shard_count": 2}, "shard_index=2 is out of range"),
    ({"shard_count": 0}, "shard_count=0 is out of range"),
    ({"trees": [""]}, "trees[0] is an empty string"),
])
def test_bad_options_leave_the_old_list(bundle, tmp_path, change, message):
    dest = tmp_path / "l"
    rrd_shard_list.run(list_args(bundle, dest), False)
    old = dest.read_bytes()
    with pytest.raises(FerryError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        rrd_shard_list.run(dict(list_args(bundle, dest), **change), False)
    assert dest.read_bytes() == old and os.listdir(str(tmp_path)) == ["l"]


def test_dest_that_is_a_directory_or_src_missing(bundle, tmp_path):
    with pytest.raises(FerryError, match="is a directory"):
        rrd_shard_list.run(list_args(bundle, tmp_path), False)
    with pytest.raises(FerryError, match="source directory .* does not exist"):
        rrd_shard_list.run(dict(list_args(bundle, tmp_path / "l"), src=str(tmp_path / "none")), False)
