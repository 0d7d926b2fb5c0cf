# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tsdb_dump and tsdb_restore end to end: the OpenTSDB emulator and real VictoriaMetrics servers."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.httpclient import HttpClient
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import Journal
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.points import normalize_tags
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.remote import OpenTSDBSource, PrometheusSource
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.transfer import restore_plan, verify_values
from ansible_collections.ferry.migrate.plugins.modules import tsdb_dump, tsdb_restore

from tests.support.otsdb_emulator import OpenTSDBEmulator

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOUR = 3600000
DAY = 24 * HOUR


def recent_day():
    """Midnight UTC two days ago: inside a default 1-month retention, and a whole past day."""
    return (int(time.time() * 1000) // DAY - 2) * DAY


def sample_points(base, count=120000):
    """Points that stress the edges: colons in tag values, '-', '/', '.' in names, ms timestamps on
    hour edges, integers above 2^53, floats; ``count`` points over one day from ``base``."""
    series = [
        ("switch.port-rx/bytes", {"switchid": "00:00:aa:bb:cc:dd:ee:01", "port": "7"}),
        ("switch.port-rx/bytes", {"switchid": "00:00:aa:bb:cc:dd:ee:02", "port": "7"}),
        ("flow.latency.ms", {"flowid": "f-1", "direction": "forward"}),
        ("big.counter", {"host": "h1"}),
    ]
    points = []
    step = DAY // (count // len(series))
    for index in range(count // len(series)):
        stamp = base + index * step + (index % 7)
        for number, (metric, tags) in enumerate(series):
            if metric == "big.counter":
                value = 2 ** 60 + index * 4096  # above 2^53, exact as float64 too
            elif number == 2:
                value = index * 0.25 + 0.125
            else:
                value = index * 1000 + number
            points.append((metric, tags, stamp, value))
    for edge in (base + HOUR - 1, base + HOUR, base + 2 * HOUR - 1):  # ms points on batch edges
        points.append(("flow.latency.ms", {"flowid": "edge", "direction": "reverse"}, edge, edge % 1000))
    return points


def as_set(points):
    return set((m, normalize_tags(t), ts, float(v)) for m, t, ts, v in points)


def assert_same_points(found, expected):
    """Exact, except integers above 2^53 in VictoriaMetrics: its storage keeps a decimal mantissa
    and rounds them (documented in docs/opentsdb.md); those must still agree to 1e-12."""
    assert len(found) == len(expected)

    def is_big(value):
        return isinstance(value, int) and abs(value) > 2 ** 53

    exact = [p for p in expected if not is_big(p[3])]
    big = dict(((m, normalize_tags(t), ts), v) for m, t, ts, v in expected if is_big(v))
    found_exact = [p for p in found if (p[0], normalize_tags(p[1]), p[2]) not in big]
    assert as_set(found_exact) == as_set(exact)
    for metric, tags, stamp, value in found:
        key = (metric, normalize_tags(tags), stamp)
        if key in big:
            assert abs(value - big[key]) <= 1e-12 * abs(big[key])


def params(**extra):
    base = dict(state_dir=None, step=None, force=False, url_username=None, url_password=None,
                validate_certs=True, timeout=60.0)
    base.update(extra)
    return base


def dump_args(url, start, stop, dest, state, **extra):
    return params(url=url, kind="opentsdb", start=str(start), stop=str(stop), timezone="UTC", metric_prefix="",
                  metrics=[], metric_regex=None, tags={}, batch_interval="hour", dest=str(dest),
                  points_per_query=20000, state_dir=str(state), min_free_mb=1, min_free_inodes=10,
                  space_wait_timeout=5.0, shard_index=0, shard_count=1, **extra)


def restore_args(src, url, state, **extra):
    base = dict(src=str(src), url=url, kind="victoriametrics", verify_url=None, request_size_limit=None,
                points_per_request=2000, connections=4, compress=False, throttle=0, verify=True,
                verify_timeout=30.0, verify_values=False, state_dir=str(state), wait_for_step=None, poll_interval=0.2,
                wait_timeout=30.0, batch_attempts=3)
    base.update(extra)
    return params(**base)


def vm_points(url, metrics, start, stop):
    source = PrometheusSource(HttpClient(url))
    found = []
    for metric in metrics:
        for begin, end, points in source.frames(metric, start, stop):
            found.extend((m, dict(t), ts, v) for m, t, ts, v in points)
    return found


@pytest.fixture
def emulator():
    with OpenTSDBEmulator() as emu:
        yield emu


def test_emulator_to_victoriametrics_exact_set(emulator, servers, tmp_path):
    base = recent_day()
    points = sample_points(base)
    emulator.add_points(points)
    start, stop = base + 1234, base + DAY - 17  # unaligned
    dumped = tsdb_dump.run(dump_args(emulator.url, start, stop, tmp_path / "d", tmp_path / "s"), False)
    assert dumped["changed"] and dumped["counts"]["batches_written"] == 24
    expected = [p for p in points if start <= p[2] < stop]
    assert dumped["counts"]["points"] == len(expected) > 100000
    restored = tsdb_restore.run(restore_args(tmp_path / "d", servers["FERRY_VM_OPENTSDB_URL"], tmp_path / "s",
                                             verify_url=servers["FERRY_VM_URL"], verify_values=True), False)
    assert restored["verification"]["values_checked"] == len([p for p in points if start <= p[2] < stop])
    assert restored["verification"]["short"] == {} and restored["verification"]["found_points"] == len(expected)
    found = vm_points(servers["FERRY_VM_URL"], sorted(set(p[0] for p in points)), start, stop)
    assert_same_points(found, expected)
    again = tsdb_restore.run(restore_args(tmp_path / "d", servers["FERRY_VM_OPENTSDB_URL"], tmp_path / "s",
                                          verify_url=servers["FERRY_VM_URL"]), False)
    assert again["changed"] is False and again["decision"] == "skip"


def test_emulator_to_emulator_keeps_integers_exact(emulator, tmp_path):
    base = recent_day()
    points = [("int.exact", {"host": "a-b"}, base + i, 2 ** 53 + 1 + i) for i in range(2000)]
    emulator.add_points(points)
    with OpenTSDBEmulator() as target:
        tsdb_dump.run(dump_args(emulator.url, base, base + DAY, tmp_path / "d", tmp_path / "s"), False)
        result = tsdb_restore.run(restore_args(tmp_path / "d", target.url, tmp_path / "s", kind="opentsdb",
                                               verify_values=True), False)
        assert target.points() == emulator.points()
        assert result["verification"]["values_checked"] == 2000
        target.add_points([("int.exact", {"host": "a-b"}, base + 7, 12345)])  # the target now differs
        with pytest.raises(FerryError, match=r"verification of values failed: int.exact\{'host': 'a-b'\} at .*"
                                             r"sent 9007199254741000, target has 12345"):
            verify_values("opentsdb", HttpClient(target.url), restore_plan(str(tmp_path / "d")))


def test_victoriametrics_to_victoriametrics(servers, tmp_path):
    base = recent_day() - DAY
    run = "switch%s." % uuid.uuid4().hex[:8]  # the target keeps duplicates: count only this run's points
    points = [(m.replace("switch.", run), t, ts, v) for m, t, ts, v in sample_points(base, count=20000)]
    source_url = servers["FERRY_VM_URL"]
    dest = tmp_path / "seed"
    with OpenTSDBEmulator() as emu:  # seed the source VictoriaMetrics through the same dump/restore path
        emu.add_points(points)
        tsdb_dump.run(dump_args(emu.url, base, base + DAY, dest, tmp_path / "s1"), False)
    tsdb_restore.run(restore_args(dest, servers["FERRY_VM_OPENTSDB_URL"], tmp_path / "s1",
                                  verify_url=source_url), False)
    dumped = tsdb_dump.run(dict(dump_args(source_url, base, base + DAY, tmp_path / "d", tmp_path / "s2"),
                                kind="prometheus", metric_prefix=run), False)
    assert dumped["metrics"] == [run + "port-rx/bytes"]
    restored = tsdb_restore.run(restore_args(tmp_path / "d", servers["FERRY_VM_DEFAULT_OPENTSDB_URL"],
                                             tmp_path / "s2", verify_url=servers["FERRY_VM_DEFAULT_URL"]), False)
    expected = [p for p in points if p[0] == run + "port-rx/bytes"]
    assert restored["verification"]["found_points"] == len(expected)
    found = vm_points(servers["FERRY_VM_DEFAULT_URL"], [run + "port-rx/bytes"], base, base + DAY)
    assert len(found) == len(expected) and as_set(found) == as_set(expected)


def test_default_retention_drops_are_caught(emulator, servers, tmp_path):
    old = recent_day() - 400 * DAY
    emulator.add_points([("old.metric-a", {"h": "x"}, old + i * 1000, i) for i in range(500)])
    emulator.add_points([("old.metric-b", {"h": "y"}, old + i * 1000, i) for i in range(500)])
    tsdb_dump.run(dump_args(emulator.url, old, old + DAY, tmp_path / "d", tmp_path / "s"), False)
    with pytest.raises(FerryError, match=r"fewer points than were sent for 2 metric\(s\): old.metric-a \(0 of 500, .*\), "
                                         r"old.metric-b \(0 of 500, .*it keeps 1 month\(s\) \(-retentionPeriod\), "
                                         r"so it drops points before .*raise -retentionPeriod"):
        tsdb_restore.run(restore_args(tmp_path / "d", servers["FERRY_VM_DEFAULT_OPENTSDB_URL"], tmp_path / "s",
                                      verify_url=servers["FERRY_VM_DEFAULT_URL"], verify_timeout=3.0), False)
    assert Journal(str(tmp_path / "s")).step("tsdb_restore").record()["status"] == "failed"


def test_faults_are_retried(emulator, tmp_path):
    base = recent_day()
    emulator.add_points([("fault.m", {"h": "x"}, base + i, i) for i in range(5000)])
    tsdb_dump.run(dump_args(emulator.url, base, base + HOUR, tmp_path / "d", tmp_path / "s"), False)
    with OpenTSDBEmulator() as target:
        target.inject("/api/put", status=500, nth=2)
        target.inject("/api/put", status=429, nth=4)
        target.inject("/api/put", drop=True, nth=6)
        result = tsdb_restore.run(restore_args(tmp_path / "d", target.url, tmp_path / "s", kind="opentsdb",
                                               points_per_request=500, connections=1), False)
        # The dropped connection is sent again at once on a new connection; 500 and 429 back off.
        assert result["counts"]["retries"] >= 2
        assert target.points() == emulator.points()


def test_permanent_400_stops_with_the_servers_message(tmp_path):
    directory = tmp_path / "d"
    from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.points import BatchWriter, batch_name
    directory.mkdir()
    writer = BatchWriter(str(directory), batch_name(0, HOUR))
    writer.add("no.tags", (), 1000, 1)  # OpenTSDB wants at least one tag
    writer.finish()
    with OpenTSDBEmulator() as target:
        with pytest.raises(FerryError, match=r"the target rejected points: 1 of 1 points failed, first: .*no.tags.*: Missing tags"):
            tsdb_restore.run(restore_args(directory, target.url, tmp_path / "s", kind="opentsdb"), False)


def test_check_mode_plans_without_writing(emulator, tmp_path):
    base = recent_day()
    emulator.add_points([("plan.a", {"h": "x"}, base, 1), ("plan.b", {"h": "x"}, base, 1)])
    result = tsdb_dump.run(dict(dump_args(emulator.url, base, base + DAY, tmp_path / "d", tmp_path / "s"),
                                batch_interval="day"), True)
    assert result["metrics"] == ["plan.a", "plan.b"] and len(result["batches"]) == 1 and result["frames_min"] == 2
    assert not (tmp_path / "d").exists() and not (tmp_path / "s").exists()


def _run_module_and_kill(module, args, tmp_path, ready):
    args_file = tmp_path / ("%s.json" % module)
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    path = os.path.join(ROOT, "plugins", "modules", module + ".py")
    proc = subprocess.Popen([sys.executable, path, str(args_file)], env=env, stdout=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.02)
    assert proc.poll() is None, "finished before it could be killed: %s" % proc.communicate()[0]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rerun = subprocess.run([sys.executable, path, str(args_file)], env=env, stdout=subprocess.PIPE, check=False)
    return json.loads(rerun.stdout.decode())


def test_killed_dump_and_restore_rerun_give_each_point_once(emulator, servers, tmp_path):
    base = recent_day() - 3 * DAY
    points = sample_points(base, count=40000)
    emulator.add_points(points)
    emulator.inject("/api/query", delay=0.05, times=10 ** 6)  # slow enough to be killed in the middle
    state = tmp_path / "s"
    args = dump_args(emulator.url, base, base + DAY, tmp_path / "d", state)

    def some_batches_done():
        return len([e for e in os.listdir(str(tmp_path / "d"))
                    if e.endswith(".json")]) >= 3 if (tmp_path / "d").exists() else False

    result = _run_module_and_kill("tsdb_dump", args, tmp_path, some_batches_done)
    assert result["decision"] == "resume" and not result.get("failed"), result
    emulator.clear_faults()
    url = servers["FERRY_VM_OPENTSDB_URL"]
    rargs = restore_args(tmp_path / "d", url, state, verify_url=servers["FERRY_VM_URL"], throttle=5000,
                         points_per_request=200, connections=1)

    def restore_half_done():
        record = Journal(str(state)).step("tsdb_restore").record()
        return bool(record and (record.get("progress") or {}).get("done", 0) >= 8)

    result = _run_module_and_kill("tsdb_restore", rargs, tmp_path, restore_half_done)
    assert result["decision"] == "resume" and not result.get("failed"), result
    found = vm_points(servers["FERRY_VM_URL"], sorted(set(p[0] for p in points)), base, base + DAY)
    expected = [p for p in points if base <= p[2] < base + DAY]
    assert_same_points(found, expected)


def test_pipelined_restore_follows_the_dump(emulator, servers, tmp_path):
    base = recent_day() - 4 * DAY
    points = sample_points(base, count=24000)
    emulator.add_points(points)
    emulator.inject("/api/query", delay=0.03, times=10 ** 6)
    state = tmp_path / "s"
    args_file = tmp_path / "dump.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": dump_args(emulator.url, base, base + DAY, tmp_path / "d",
                                                                      state)}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    dumper = subprocess.Popen([sys.executable, os.path.join(ROOT, "plugins", "modules", "tsdb_dump.py"),
                               str(args_file)], env=env, stdout=subprocess.PIPE)
    (tmp_path / "d").mkdir(exist_ok=True)
    result = tsdb_restore.run(restore_args(tmp_path / "d", servers["FERRY_VM_OPENTSDB_URL"], state,
                                           verify_url=servers["FERRY_VM_URL"], wait_for_step="tsdb_dump"),
                              False)
    dumper.communicate()
    assert dumper.returncode == 0
    journal = Journal(str(state))
    dump_record, restore_record = journal.step("tsdb_dump").record(), journal.step("tsdb_restore").record()
    assert restore_record["started_epoch"] < dump_record["ended_epoch"]  # they overlapped
    assert result["batches"] == 24
    assert result["verification"]["found_points"] == len([p for p in points if base <= p[2] < base + DAY])


def test_stop_file_and_space_gate(emulator, tmp_path):
    base = recent_day()
    emulator.add_points([("stop.m", {"h": "x"}, base + i * 1000, i) for i in range(100)])
    state = tmp_path / "s"
    state.mkdir()
    (state / "STOP").write_text("")
    with pytest.raises(FerryError, match=r"stopped on request \(.*STOP\) after 0 batch\(es\) dumped, 24 to go; "
                                         r"remove the file and run again to go on"):
        tsdb_dump.run(dump_args(emulator.url, base, base + DAY, tmp_path / "d", state), False)
    (state / "STOP").unlink()
    with pytest.raises(FerryError, match=r"not enough room in .* after waiting 0 s"):
        tsdb_dump.run(dict(dump_args(emulator.url, base, base + DAY, tmp_path / "d", state),
                           min_free_mb=1 << 30, space_wait_timeout=0.0), False)
    done = tsdb_dump.run(dump_args(emulator.url, base, base + DAY, tmp_path / "d", state), False)
    assert done["decision"] == "resume" and done["counts"]["points"] == 100


def test_every_metric_is_listed_whatever_its_characters(emulator):
    names = ["m.%05d" % i for i in range(12000)] + [u"m.caf\u00e9", "m.~tilde", "m.z:colon", "other.metric"]
    emulator.add_points((name, {"h": "x"}, 1000, 1) for name in names)
    source = OpenTSDBSource(HttpClient(emulator.url))
    assert source.list_metrics("m.") == sorted(n for n in names if n.startswith("m."))
    assert source.list_metrics(regex=r"caf|tilde") == [u"m.caf\u00e9", "m.~tilde"]
    with pytest.raises(FerryError, match="metric\\(s\\) not found on the source: nope"):
        source.list_metrics(metrics=["nope", "other.metric"])
