# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rrd_verify and the shard options of the Zenoss perf modules: sample points picked as the converter writes them,
each kind of difference named (a withheld point, a wrong value, a missing series), the journal (skip, check mode),
and the shards splitting a tree once, checked as tsdb_dump checks them."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import array
import json

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.rrd import verify
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.convert import pending_files
from ansible_collections.ferry.migrate.plugins.modules import rrd_to_tsdb, rrd_verify, tsdb_dump
from tests.support.otsdb_emulator import OpenTSDBEmulator
from tools.gen_rrd_tree import build_tree


def params(module, **values):
    base = dict((name, option.get("default")) for name, option in module.argument_spec().items())
    base.update(values)
    return base


@pytest.fixture(scope="module")
def zenoss(tmp_path_factory):
    root = tmp_path_factory.mktemp("zenoss-verify")
    return build_tree(str(root / "perf"), "zenoss", files=12, days=3, workers=2)


@pytest.fixture
def sent(zenoss, tmp_path):
    """An emulator holding what rrd_to_tsdb sent of the tree, and the arguments of rrd_verify against it."""
    with OpenTSDBEmulator() as emulator:
        converted = rrd_to_tsdb.run(params(rrd_to_tsdb, src=zenoss["root"], dest=str(tmp_path / "p"),
                                           state_dir=str(tmp_path / "conv"), url=emulator.url, kind="opentsdb",
                                           workers=1), False)
        assert converted["sent"]["points"] == converted["counts"]["points"] > 0
        args = params(rrd_verify, src=zenoss["root"], url=emulator.url, kind="opentsdb",
                      state_dir=str(tmp_path / "s"))
        yield emulator, args, converted


def series_of(emulator):
    return emulator._store.series  # pylint: disable=protected-access


# -- sample points ---------------------------------------------------------------------------------------------
def test_sample_points_are_first_221st_and_last_of_what_is_written():
    known = bytearray(b"\1" * 300)
    known[0] = known[5] = 0  # unknown values are not written: ranks skip them
    segments = [(range(1000, 1000 + 300 * 10, 10), array.array("d", range(300)), known),
                (range(5000, 5000 + 50 * 60, 60), array.array("d", [0.5] * 50), None)]
    count, first, last, picked = verify.sample_points(segments)
    assert (count, first, last) == (298 + 50, 1010, 5000 + 49 * 60)
    # rank 0 is index 1, rank 220 is index 222 (two unknown before it), the last is the second segment's
    assert picked == [(1010, 1.0), (1000 + 222 * 10, 222.0), (5000 + 49 * 60, 0.5)]


@pytest.mark.parametrize("size, expected", [(0, []), (1, [0]), (2, [0, 1]), (221, [0, 220]), (222, [0, 220, 221])])
def test_sample_points_of_short_series_each_once(size, expected):
    segments = [(range(0, size * 300, 300), array.array("d", range(size)), None)]
    count, _first, _last, picked = verify.sample_points(segments)
    assert count == size and [value for _s, value in picked] == [float(v) for v in expected]


def test_sample_is_stable_and_about_the_fraction():
    names = ["Devices/dev%d/os/interfaces/eth%d/ifInOctets.rrd" % (d, i) for d in range(50) for i in range(40)]
    picked = [name for name in names if verify.in_sample(name, 0.15)]
    assert picked == [name for name in names if verify.in_sample(name, 0.15)]
    assert 0.12 < len(picked) / float(len(names)) < 0.18
    assert all(verify.in_sample(name, 1.0) for name in names)
    assert not any(verify.in_sample(name, 0.0) for name in names)
    assert verify.in_sample(b"Devices/d\xff/x.rrd".decode("utf-8", "surrogateescape"), 1.0)


def test_same_value_is_relative():
    assert verify.same_value(1e9, 1e9 + 50, 1e-7) and not verify.same_value(1e9, 1e9 + 200, 1e-7)
    assert verify.same_value(0.0, 0.0, 0.0) and not verify.same_value(0.0, 1e-300, 1e-7)
    assert not verify.same_value(1.0, float("nan"), 1e-7) and not verify.same_value(1.0, "x", 1e-7)


# -- against a target ------------------------------------------------------------------------------------------
def test_verify_all_good_then_skip_and_check_mode_predicts(sent, tmp_path):
    emulator, args, converted = sent
    predicted = rrd_verify.run(args, True)
    assert predicted["decision"] == "run" and predicted["changed"] and not (tmp_path / "s").exists()
    result = rrd_verify.run(args, False)
    assert "msg" not in result and result["changed"], result.get("msg")
    counts = result["counts"]
    assert counts["differences"] == 0 and counts["missing_series"] == 0
    assert counts["expected_points"] == counts["found_points"] == converted["counts"]["points"]
    assert counts["series"] == len(series_of(emulator))
    assert counts["values_checked"] >= 2 * counts["series"]
    assert counts["skipped"] == converted["counts"]["skipped"]
    again = rrd_verify.run(args, False)
    assert again["decision"] == "skip" and not again["changed"]
    assert again["verified_then"]["found_points"] == counts["found_points"]
    assert rrd_verify.run(args, True)["changed"] is False


def _a_series(emulator, index=0):
    return sorted(series_of(emulator).values(), key=lambda s: (s.metric, sorted(s.tags.items())))[index]


def test_withheld_point_is_named(sent):
    emulator, args, _converted = sent
    series = _a_series(emulator)
    first = min(series.values)
    del series.values[first]
    series.cache = None
    result = rrd_verify.run(args, False)
    assert result["counts"]["differences"] == 2, result["differences"]
    text = " | ".join(result["differences"])
    assert series.metric in text and series.tags["key"] in text
    assert "%d of %d point(s)" % (len(series.values), len(series.values) + 1) in text
    assert "the target has no point" in text and "(%d)" % first in text
    assert result["msg"].startswith("verification failed: 2 difference(s)")
    with open(result["report"]) as handle:
        assert len([json.loads(line) for line in handle]) == 2
    # failed: the next run verifies again (not skip), and finds the point back once sent
    series.values[first] = 0.0
    series.cache = None
    rerun = rrd_verify.run(args, False)
    assert rerun["decision"] == "resume" and rerun["counts"]["differences"] >= 1


def test_wrong_value_is_named_and_tolerance_applies(sent):
    emulator, args, _converted = sent
    series = _a_series(emulator, 1)
    last = max(series.values)
    right = float(series.values[last])
    series.values[last] = right * (1 + 1e-9) if right else 1e-12
    series.cache = None
    assert rrd_verify.run(args, False)["counts"]["differences"] == (0 if right else 1)
    series.values[last] = right + max(abs(right), 1.0) * 1e-3
    series.cache = None
    result = rrd_verify.run(dict(args, force=True), False)
    assert result["counts"]["differences"] == 1
    assert "the file gives %r, the target has" % right in result["differences"][0]
    assert series.metric in result["differences"][0]


def test_missing_series_is_named(sent):
    emulator, args, _converted = sent
    series = _a_series(emulator, 2)
    series.values.clear()
    series.cache = None
    result = rrd_verify.run(args, False)
    assert result["counts"]["missing_series"] == 1
    missing = [text for text in result["differences"] if "missing on the target" in text]
    assert len(missing) == 1 and series.metric in missing[0] and series.tags["key"] in missing[0]


def test_sample_zero_counts_only(sent):
    _emulator, args, _converted = sent
    result = rrd_verify.run(dict(args, sample=0.0), False)
    assert result["counts"]["values_checked"] == 0 and result["counts"]["sampled"] == 0
    assert result["counts"]["series"] > 0 and result["counts"]["differences"] == 0


def test_unreadable_file_is_listed_not_failed(zenoss, tmp_path):
    tree = tmp_path / "perf"
    (tree / "Devices" / "dev9").mkdir(parents=True)
    (tree / "Devices" / "dev9" / "broken.rrd").write_bytes(b"not an rrd at all")
    with OpenTSDBEmulator() as emulator:
        result = rrd_verify.run(params(rrd_verify, src=str(tree), url=emulator.url, kind="opentsdb",
                                       tenant_id="t1", state_dir=str(tmp_path / "s")), False)
    assert "msg" not in result and result["counts"]["unreadable"] == 1
    assert "broken.rrd" in result["unreadable_files"][0]


@pytest.mark.parametrize("option, value, message", [
    ("sample", 1.5, "sample=1.5 is out of range: it must be from 0.0 to 1.0"),
    ("sample", -0.1, "sample=-0.1 is out of range"),
    ("tolerance", 0.5, "tolerance=0.5 is out of range: it must be from 0.0 to 0.01"),
    ("shard_count", 0, "shard_count=0 is out of range: it must be 1 or more"),
    ("shard_index", -1, "shard_index=-1 is out of range: it must be 0 or more"),
])
def test_options_are_checked(zenoss, tmp_path, option, value, message):
    args = params(rrd_verify, src=zenoss["root"], url="http://127.0.0.1:1", state_dir=str(tmp_path / "s"))
    with pytest.raises(FerryError, match=message.replace("(", r"\(").replace(")", r"\)")):
        rrd_verify.run(dict(args, **{option: value}), False)
    assert not (tmp_path / "s").exists()


# -- shards ----------------------------------------------------------------------------------------------------
def test_shard_index_checked_alike_in_every_module(zenoss, tmp_path):
    message = r"shard_index=2 is out of range: it must be from 0 to shard_count - 1 \(1\)"
    base = {"shard_index": 2, "shard_count": 2, "state_dir": str(tmp_path / "s")}
    with pytest.raises(FerryError, match=message):
        rrd_verify.run(params(rrd_verify, src=zenoss["root"], url="http://127.0.0.1:1", **base), False)
    with pytest.raises(FerryError, match=message):
        rrd_to_tsdb.run(params(rrd_to_tsdb, src=zenoss["root"], dest=str(tmp_path / "p"), **base), False)
    with pytest.raises(FerryError, match=message):
        tsdb_dump.run(params(tsdb_dump, url="http://127.0.0.1:1", start="1h-ago", dest=str(tmp_path / "d"), **base),
                      False)
    assert not (tmp_path / "s").exists()


def test_shards_convert_and_verify_each_file_once(zenoss, tmp_path):
    """Two workers' shards: disjoint, together the whole tree; each converts and verifies its own share."""
    with OpenTSDBEmulator() as emulator:
        files, verified = [], 0
        for index in range(2):
            converted = rrd_to_tsdb.run(params(rrd_to_tsdb, src=zenoss["root"], dest=str(tmp_path / ("p%d" % index)),
                                               state_dir=str(tmp_path / ("c%d" % index)), url=emulator.url,
                                               kind="opentsdb", workers=1, shard_index=index, shard_count=2), False)
            shard = list(pending_files(zenoss["root"], index, 2))
            assert converted["counts"]["files"] == len(shard) > 0
            files.extend(shard)
            result = rrd_verify.run(params(rrd_verify, src=zenoss["root"], url=emulator.url, kind="opentsdb",
                                           shard_index=index, shard_count=2,
                                           state_dir=str(tmp_path / ("v%d" % index))), False)
            assert result["files"] == len(shard) and result["counts"]["differences"] == 0, result.get("differences")
            verified += result["counts"]["found_points"]
        assert sorted(files) == sorted(pending_files(zenoss["root"], 0, 1)) and len(set(files)) == len(files)
        assert verified == emulator.count()
