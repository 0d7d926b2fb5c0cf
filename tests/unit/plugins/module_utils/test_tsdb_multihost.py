# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The transfer across hosts (issue 12): workers split the metrics (1), verification counts the series sent with
the dump's tag filter (2), check mode predicts the real run and never fails for a directory the run creates (3),
a skipped restore says what was verified then (9). Against the OpenTSDB emulator, no other server."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.httpclient import HttpClient
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb import points as tsdb
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.points import (
    BatchWriter,
    batch_name,
    finished_batches,
    series_lines,
    series_prefix,
)
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.transfer import (
    VerificationFailed,
    dump_plan,
    plan_series,
    restore_plan,
    verify,
)
from ansible_collections.ferry.migrate.plugins.modules import tsdb_dump, tsdb_restore

from tests.support.otsdb_emulator import OpenTSDBEmulator

HOUR = 3600000
BASE = 1700000000000 // HOUR * HOUR


def spec_defaults(module, **values):
    params = dict((name, option.get("default")) for name, option in module.argument_spec().items())
    params.update(values)
    return params


def dump_params(url, dest, state, **values):
    params = dict(start=str(BASE), stop=str(BASE + 4 * HOUR), batch_interval="3600", min_free_mb=0, min_free_inodes=0)
    params.update(values)
    return spec_defaults(tsdb_dump, url=url, dest=str(dest), state_dir=str(state), **params)


def restore_params(src, url, state, **values):
    params = dict(kind="opentsdb", poll_interval=0.1, wait_timeout=5.0, verify_timeout=0.0)
    params.update(values)
    return spec_defaults(tsdb_restore, src=str(src), url=url, state_dir=str(state), **params)


def points_of(metrics, hosts, per_hour=6, hours=4):
    return [(metric, {"host": host}, BASE + index * HOUR // per_hour + serial, index * 10 + serial)
            for metric in metrics for serial, host in enumerate(hosts) for index in range(per_hour * hours)]


@pytest.fixture
def source():
    with OpenTSDBEmulator() as emulator:
        yield emulator


@pytest.fixture
def target():
    with OpenTSDBEmulator() as emulator:
        yield emulator


class _Recorder(BaseHTTPRequestHandler):
    """A put target that keeps every point it is sent, duplicates included."""
    protocol_version = "HTTP/1.1"
    points = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.points.extend((p["metric"], tuple(sorted(p["tags"].items())), p["timestamp"]) for p in body)
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    _Recorder.points = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d" % server.server_address[1], _Recorder.points
    server.shutdown()
    server.server_close()


class _Names:
    """A source that only lists names."""

    def __init__(self, names):
        self.names = names

    def list_metrics(self, prefix="", metrics=None, regex=None):
        return sorted(self.names)


# -- 1: the workers split the metrics ----------------------------------------------------------------------
def test_shards_split_the_metric_list_once_by_the_crc32_of_the_name():
    names = ["sys.cpu.%d" % n for n in range(150)] + ["switch.rx/bytes:%02x" % n for n in range(50)] + ["näme\tx"]
    for count in (1, 2, 3, 5):
        shards = [dump_plan(_Names(names), BASE, BASE + HOUR, HOUR, shard=(index, count))["metrics"]
                  for index in range(count)]
        assert sorted(sum(shards, [])) == sorted(names)  # every metric, each in one shard
        for index, shard in enumerate(shards):
            assert all(zlib.crc32(name.encode("utf-8")) % count == index for name in shard)
            assert count == 1 or 0 < len(shard) < len(names)


def test_two_workers_send_each_point_once(source, recorder, tmp_path):
    points = points_of(["m.%d" % n for n in range(8)], ["a", "b"])
    source.add_points(points)
    url, received = recorder
    results = []
    for index in range(2):
        host = tmp_path / ("worker%d" % index)
        dumped = tsdb_dump.run(dump_params(source.url, host / "batches", host / "state", shard_index=index,
                                           shard_count=2), False)
        restored = tsdb_restore.run(restore_params(host / "batches", url, host / "state", kind="victoriametrics",
                                                   verify=False), False)
        results.append((dumped["metrics"], restored["counts"]["points"]))
    assert sorted(results[0][0] + results[1][0]) == ["m.%d" % n for n in range(8)]
    assert set(results[0][0]).isdisjoint(results[1][0]) and results[0][0] and results[1][0]
    assert len(received) == len(points) == results[0][1] + results[1][1]
    assert len(set(received)) == len(points)  # none twice


@pytest.mark.parametrize("index, count", [(2, 2), (-1, 2), (0, 0), (5, 3)])
def test_a_shard_out_of_range_is_refused(index, count, tmp_path):
    with pytest.raises(FerryError, match="shard_(index|count)=.*out of range"):
        tsdb_dump.run(dump_params("http://127.0.0.1:1", tmp_path / "d", tmp_path / "s", shard_index=index,
                                  shard_count=count), False)
    assert not os.path.exists(str(tmp_path / "s"))


def test_a_dest_of_another_shard_or_tag_filter_is_refused(source, tmp_path):
    source.add_points(points_of(["m.%d" % n for n in range(4)], ["a"]))
    dest, state = tmp_path / "d", tmp_path / "s"
    tsdb_dump.run(dump_params(source.url, dest, state, shard_index=0, shard_count=2), False)
    for other in (dict(shard_index=0, shard_count=1), dict(shard_index=1, shard_count=2),
                  dict(shard_index=0, shard_count=2, tags={"host": "a"})):
        with pytest.raises(FerryError, match="another selection"):
            tsdb_dump.run(dump_params(source.url, dest, state, **other), other.get("shard_count") == 1)


def test_a_rerun_with_a_later_stop_dumps_only_the_time_after_the_last_one(source, recorder, tmp_path):
    """With ``stop`` now (the role's default) each run ends in a partial batch; the next run planned the whole
    batch again under another name and the restore sent its first part a second time."""
    points = points_of(["m.a", "m.b"], ["x"], per_hour=60, hours=3)
    source.add_points(points)
    url, received = recorder
    dest, state = tmp_path / "d", tmp_path / "s"
    rargs = restore_params(dest, url, state, kind="victoriametrics", verify=False)
    for stop in (BASE + HOUR + HOUR // 3, BASE + 2 * HOUR + HOUR // 2, BASE + 3 * HOUR):
        dumped = tsdb_dump.run(dump_params(source.url, dest, state, stop=str(stop)), False)
        tsdb_restore.run(rargs, False)
    assert len(received) == len(points) and len(set(received)) == len(points)
    assert dumped["batches_to_write"] == [batch_name(BASE + 2 * HOUR + HOUR // 2, BASE + 3 * HOUR)]
    assert len(finished_batches(str(dest))) == 5  # 0-1 h, 1 h-1 h 20, 1 h 20-2 h, 2 h-2 h 30, 2 h 30-3 h


# -- 2: verification counts the series sent ----------------------------------------------------------------
def _batches(tmp_path, points, tags=None):
    """A point directory of one batch holding ``points``, dumped with the tag filter ``tags``."""
    dest = tmp_path / "batches"
    dest.mkdir()
    writer = BatchWriter(str(dest), batch_name(BASE, BASE + 4 * HOUR))
    for metric, point_tags, stamp, value in points:
        writer.add(metric, tuple(sorted(point_tags.items())), stamp, value)
    writer.finish({"selection": {"tags": tags or {}, "shard": [0, 1]}})
    return str(dest)


def test_points_of_another_host_on_the_target_do_not_hide_a_shortfall(target, tmp_path):
    """A transfer limited to host=db01 whose last point is missing, with db02's points already there: counted
    per metric, 47 of db01 + 48 of db02 passed for the 48 sent."""
    sent = points_of(["sys.cpu.user"], ["db01"], per_hour=12)
    target.add_points(sent[:-1] + points_of(["sys.cpu.user"], ["db02"], per_hour=12))
    plan = restore_plan(_batches(tmp_path, sent, tags={"host": "db01"}))
    with pytest.raises(VerificationFailed) as failed:
        verify("opentsdb", HttpClient(target.url), plan, timeout=0)
    assert failed.value.report["short"] == {"sys.cpu.user": (48, 47)}
    assert failed.value.report["short_series"] == {"sys.cpu.user": {'{"host":"db01"}': (48, 47)}}
    assert 'sys.cpu.user (47 of 48' in str(failed.value) and '{"host":"db01"} 47 of 48' in str(failed.value)

    target.add_points(sent[-1:])
    report = verify("opentsdb", HttpClient(target.url), plan, timeout=0)
    assert report["found_points"] == 48 and report["series"] == 1 and not report["short"]


def test_series_written_before_do_not_hide_a_shortfall_without_a_tag_filter(target, tmp_path):
    sent = points_of(["if.rx", "if.tx"], ["sw1", "sw2"])
    older = points_of(["if.rx"], ["old-switch"])  # another series of the same metric, there before
    target.add_points([p for p in sent if not (p[1]["host"] == "sw2" and p[0] == "if.rx" and p[2] % 7 == 0)] + older)
    plan = restore_plan(_batches(tmp_path, sent))
    assert plan_series(plan)["if.rx"] == {'{"host":"sw1"}': 24, '{"host":"sw2"}': 24} and plan["filters"] == {}
    with pytest.raises(VerificationFailed) as failed:
        verify("opentsdb", HttpClient(target.url), plan, timeout=0)
    assert list(failed.value.report["short"]) == ["if.rx"]
    assert list(failed.value.report["short_series"]["if.rx"]) == ['{"host":"sw2"}']


def test_verification_is_counted_by_the_target(target, tmp_path):
    """One count query per metric, whatever the series and points: nothing read back."""
    sent = points_of(["a", "b", "c"], ["h%d" % n for n in range(10)], per_hour=60)
    target.add_points(sent)
    plan = restore_plan(_batches(tmp_path, sent))
    before = target.requests.get("/api/query", 0)
    assert verify("opentsdb", HttpClient(target.url), plan, timeout=0)["found_points"] == len(sent)
    assert target.requests["/api/query"] - before == 3


def test_manifests_count_each_series_also_when_resumed_and_from_ready_lines(tmp_path):
    writer = BatchWriter(str(tmp_path), "b")
    writer.add("m", (("h", "a"),), 1, 1)
    writer.add("m", (("h", "b"),), 2, 2)
    checkpoint = writer.end_frame()
    writer.add("m", (("h", "a"),), 3, 3)  # not durable: a kill loses it
    writer.abort()
    resumed = BatchWriter(str(tmp_path), "b", resume=checkpoint)
    resumed.add("m", (("h", "a"),), 4, 4)
    prefix = series_prefix("n", (("port", "p1"),))
    resumed.add_lines("n", series_lines(prefix, [(range(10, 13), [1.0, 2.0, 3.0], None)]), 3, 10000, 12000)
    resumed.add_lines("o", series_lines(series_prefix("o", (("port", "p1"),)), [(range(10, 12), [1.0, 2.0], None)])
                      + series_lines(series_prefix("o", (("port", "p2"),)), [(range(10, 11), [1.0], None)]),
                      3, 10000, 11000)
    manifest = dict(resumed.finish(), path=str(tmp_path / "b.jsonl.gz"))
    # "o": lines of several series in one block, its series not known (verified per metric)
    assert tsdb.read_series(manifest) == {"m": {'{"h":"a"}': 2, '{"h":"b"}': 1}, "n": {'{"port":"p1"}': 3}}
    assert manifest["metrics"] == {"m": 3, "n": 3, "o": 3} and manifest["series_file"]["unknown"] == ["o"]
    assert sorted(os.listdir(str(tmp_path))) == ["b.json", "b.jsonl.gz", "b.series.json.gz"]
    assert tsdb.series_key((("b", "2"), ("a", "1"))) == '{"a":"1","b":"2"}'


def test_a_metric_without_series_counts_in_some_batch_is_verified_whole(tmp_path):
    dest = tmp_path / "d"
    dest.mkdir()
    for number, name in enumerate(("x", "y", "z")):
        writer = BatchWriter(str(dest), name)
        writer.add("m%d" % min(number, 1), (("h", "a"),), number, 1)
        writer.finish()
    path = os.path.join(str(dest), "y.json")
    with open(path) as handle:
        old = json.load(handle)
    del old["series_file"]  # a manifest of an earlier version
    with open(path, "w") as handle:
        json.dump(old, handle)
    plan = restore_plan(str(dest))
    assert plan["metrics"] == {"m0": 1, "m1": 2} and plan_series(plan) == {"m0": {'{"h":"a"}': 1}}
    os.unlink(os.path.join(str(dest), "x.series.json.gz"))  # gone: verified per metric, no error
    assert plan_series(restore_plan(str(dest))) == {} and not restore_plan(str(dest))["problems"]


# -- 3: check mode predicts the real run --------------------------------------------------------------------
def test_check_mode_on_fresh_directories_predicts_the_run_and_fails_on_nothing(source, target, tmp_path):
    source.add_points(points_of(["m.%d" % n for n in range(3)], ["a"]))
    dest, state = tmp_path / "fresh" / "batches", tmp_path / "fresh" / "state"
    dargs = dump_params(source.url, dest, state)
    rargs = restore_params(dest, target.url, state, wait_for_step="tsdb_dump")
    dumped, restored = tsdb_dump.run(dargs, True), tsdb_restore.run(rargs, True)
    assert (dumped["changed"], dumped["decision"], len(dumped["batches_to_write"])) == (True, "run", 4)
    assert (restored["changed"], restored["decision"]) == (True, "run")
    assert not os.path.exists(str(tmp_path / "fresh"))

    real_dump, real_restore = tsdb_dump.run(dargs, False), tsdb_restore.run(rargs, False)
    assert (real_dump["changed"], real_dump["decision"]) == (True, "run")
    assert (real_restore["changed"], real_restore["decision"]) == (True, "run")

    # after the run: check mode says what the next run does, nothing
    dumped, restored = tsdb_dump.run(dargs, True), tsdb_restore.run(rargs, True)
    assert (dumped["changed"], dumped["decision"], restored["changed"], restored["decision"]) == (False, "skip",
                                                                                                  False, "skip")
    again_dump, again_restore = tsdb_dump.run(dargs, False), tsdb_restore.run(rargs, False)
    assert (again_dump["changed"], again_dump["decision"]) == (False, "skip")
    assert (again_restore["changed"], again_restore["decision"]) == (False, "skip")


def test_check_mode_predicts_a_lost_batch_and_new_batches(source, target, tmp_path):
    source.add_points(points_of(["m"], ["a"]))
    dest, state = tmp_path / "d", tmp_path / "s"
    dargs = dump_params(source.url, dest, state)
    rargs = restore_params(dest, target.url, state, wait_for_step="tsdb_dump")
    tsdb_dump.run(dargs, False)
    tsdb_restore.run(rargs, False)
    lost = finished_batches(str(dest))[1]
    os.unlink(lost["path"][:-len(".jsonl.gz")] + ".json")
    predicted = tsdb_dump.run(dargs, True)
    assert predicted["changed"] and predicted["batches_to_write"] == [lost["name"]]
    assert tsdb_dump.run(dargs, False)["counts"]["batches_written"] == 1
    # the batch dumped again holds the same points: the restore's ledger sends nothing, and says so in check mode
    assert not tsdb_restore.run(rargs, True)["changed"]
    assert not tsdb_restore.run(rargs, False)["changed"]

    longer = dict(dargs, stop=str(BASE + 5 * HOUR))
    source.add_points([("m", {"host": "a"}, BASE + 4 * HOUR + 1, 1)])
    assert tsdb_dump.run(longer, True)["batches_to_write"] == [batch_name(BASE + 4 * HOUR, BASE + 5 * HOUR)]
    tsdb_dump.run(longer, False)
    pending = tsdb_restore.run(rargs, True)
    assert pending["changed"] and pending["pending_batches"] == 1 and pending["pending_points"] == 1
    assert tsdb_restore.run(rargs, False)["counts"]["points"] == 1


def test_a_restore_started_with_a_dump_that_will_run_again_waits_for_it(source, target, tmp_path):
    """The role starts the dump and the restore together; the dump records its start only after listing the metrics.
    A restore that looked first found the earlier run's complete record and skipped: the new batches stayed for the
    next run. Told the attempt the dump's plan saw, it waits for this run of the dump and sends them."""
    source.add_points(points_of(["m"], ["a"]) + [("m", {"host": "a"}, BASE + 4 * HOUR + 1, 1)])
    dest, state = tmp_path / "d", tmp_path / "s"
    dargs = dump_params(source.url, dest, state)
    rargs = restore_params(dest, target.url, state, wait_for_step="tsdb_dump")
    tsdb_dump.run(dargs, False)
    tsdb_restore.run(rargs, False)
    longer = dict(dargs, stop=str(BASE + 5 * HOUR))
    plan = tsdb_dump.run(longer, True)
    assert plan["batches_to_write"] and plan["previous_attempt"] == 1
    outcome = {}
    follower = threading.Thread(target=lambda: outcome.update(
        tsdb_restore.run(dict(rargs, wait_after_attempt=plan["previous_attempt"]), False)))
    follower.start()
    source.inject("/api/suggest", delay=0.5)  # the dump lists the metrics while the restore looks at the journal
    tsdb_dump.run(longer, False)
    follower.join(30)
    assert outcome["decision"] == "resume" and outcome["changed"] and outcome["counts"]["points"] == 1


# -- 9: a rerun says what was verified then ------------------------------------------------------------------
def test_a_skipped_restore_reports_what_was_verified_then(source, target, tmp_path):
    source.add_points(points_of(["m.%d" % n for n in range(2)], ["a", "b"]))
    dest, state = tmp_path / "d", tmp_path / "s"
    tsdb_dump.run(dump_params(source.url, dest, state), False)
    rargs = restore_params(dest, target.url, state)
    first = tsdb_restore.run(rargs, False)
    assert first["verification"]["found_points"] == 96 and first["verification"]["series"] == 4
    for check_mode in (True, False):
        rerun = tsdb_restore.run(rargs, check_mode)
        assert rerun["decision"] == "skip" and not rerun["changed"]
        assert rerun["complete_earlier"].endswith("Z")
        assert "verification" not in rerun  # this run verified nothing
        assert rerun["verified_then"] == {"metrics": 2, "series": 4, "expected_points": 96, "found_points": 96}
