# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Nothing lost, nothing doubled: transfers into a VictoriaMetrics without deduplication (``vm-default``,
where a point sent twice is stored twice), read back point by point.

Its retention is the packaged month, so the points are recent; metric names carry a run id, so points of
an earlier run on the same server are never counted.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import http.client
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.httpclient import HttpClient
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import Journal
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.points import finished_batches, normalize_tags
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.remote import PrometheusSource
from ansible_collections.ferry.migrate.plugins.modules import tsdb_dump, tsdb_restore

from tests.live.test_tsdb_transfer import DAY, ROOT, dump_args, recent_day, restore_args
from tests.support.otsdb_emulator import OpenTSDBEmulator


@pytest.fixture
def emulator():
    with OpenTSDBEmulator() as emu:
        yield emu


@pytest.fixture
def target(servers):
    """vm-default: (put URL, read URL); flushed before each read."""
    return servers["FERRY_VM_DEFAULT_OPENTSDB_URL"], servers["FERRY_VM_DEFAULT_URL"]


def run_points(prefix, base, days, metrics, per_metric_day, series=2):
    """``per_metric_day`` points per metric and day, spread over ``series`` series; ms stamps, int and float."""
    points = []
    step = DAY * series // per_metric_day
    for day in range(days):
        for number in range(metrics):
            metric = "%s.m%d" % (prefix, number)
            for index in range(per_metric_day // series):
                stamp = base + day * DAY + index * step + (index % 997)
                for serial in range(series):
                    value = index * 3 + serial if number % 2 else index * 0.5 + serial
                    points.append((metric, {"host": "h%d" % serial, "switchid": "00:00:aa:%02d" % number},
                                   stamp + serial, value))
    return points


def read_back(read_url, metrics, begin, end):
    """Every point the target holds for ``metrics`` in [begin, end), duplicates included."""
    client = HttpClient(read_url)
    client.request("POST", "/internal/force_flush")
    found = []
    for metric in metrics:
        for _begin, _end, points in PrometheusSource(client).frames(metric, begin, end):
            found.extend((m, tags, ts, float(v)) for m, tags, ts, v in points)
    return found


def assert_each_point_once(found, points):
    expected = [(m, normalize_tags(t), ts, float(v)) for m, t, ts, v in points]
    assert len(found) == len(expected), "target holds %d points for %d sent" % (len(found), len(expected))
    assert sorted(found) == sorted(expected)


def test_day_batches_past_the_read_limit_arrive_once(emulator, target, tmp_path):
    """1.5M points in day batches, each metric-day inflating to about 20 MiB and each dumped frame (one gzip member)
    to more than the reader's 4 MiB: the batches once read as corrupt or with doubled lines."""
    prefix = "integrity%s" % uuid.uuid4().hex[:8]
    base = recent_day() - 3 * DAY
    points = run_points(prefix, base, days=3, metrics=5, per_metric_day=100000)
    assert len(points) >= 1500000
    emulator.add_points(points)
    dest, state = tmp_path / "d", tmp_path / "s"
    dumped = tsdb_dump.run(dict(dump_args(emulator.url, base, base + 3 * DAY, dest, state),
                                batch_interval="day", points_per_query=50000, metric_prefix=prefix), False)
    assert dumped["counts"]["points"] == len(points)
    manifests = finished_batches(str(dest))
    assert len(manifests) == 3 and all(m["points"] == 500000 for m in manifests)
    restored = tsdb_restore.run(restore_args(dest, target[0], state, verify_url=target[1]), False)
    assert restored["counts"]["points"] == len(points)
    assert restored["verification"]["found_points"] == len(points)
    assert_each_point_once(read_back(target[1], ["%s.m%d" % (prefix, n) for n in range(5)], base, base + 3 * DAY),
                           points)


def _module(module, args, tmp_path, tag):
    args_file = tmp_path / ("%s-%s.json" % (module, tag))
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "plugins", "modules", module + ".py"), str(args_file)],
                            env=env, stdout=subprocess.PIPE)


def _answer(proc):
    return json.loads(proc.communicate(timeout=300)[0].decode())


def test_pipelined_transfer_killed_and_rerun_sends_each_point_once(emulator, target, tmp_path):
    """The restore starts first (as the role starts both), the dump half a second later; the dump is killed;
    both run again the same way: every point exactly once on a target that keeps duplicates."""
    prefix = "pipeline%s" % uuid.uuid4().hex[:8]
    base = recent_day() - 2 * DAY
    points = run_points(prefix, base, days=1, metrics=3, per_metric_day=14400)
    emulator.add_points(points)
    emulator.inject("/api/query", delay=0.04, times=10 ** 6)  # slow enough to be killed in the middle
    dest, state = tmp_path / "d", tmp_path / "s"
    dargs = dict(dump_args(emulator.url, base, base + DAY, dest, state), metric_prefix=prefix)
    rargs = restore_args(dest, target[0], state, verify_url=target[1], wait_for_step="tsdb_dump", poll_interval=0.2)
    dest.mkdir()

    restorer = _module("tsdb_restore", rargs, tmp_path, "first")
    time.sleep(0.5)
    dumper = _module("tsdb_dump", dargs, tmp_path, "first")
    deadline = time.time() + 60
    while time.time() < deadline and len([e for e in os.listdir(str(dest)) if e.endswith(".json")]) < 6:
        time.sleep(0.02)
    dumper.send_signal(signal.SIGKILL)
    dumper.wait()
    first = _answer(restorer)
    assert first.get("failed") and "interrupted" in first["msg"], first

    restorer = _module("tsdb_restore", rargs, tmp_path, "second")
    time.sleep(0.5)  # the dump's record still says interrupted: the restore must wait for it, not end
    dumper = _module("tsdb_dump", dargs, tmp_path, "second")
    dumped, restored = _answer(dumper), _answer(restorer)
    assert dumped["decision"] == "resume" and not dumped.get("failed"), dumped
    assert restored["decision"] == "resume" and not restored.get("failed"), restored
    assert restored["verification"]["found_points"] == len(points)
    assert_each_point_once(read_back(target[1], ["%s.m%d" % (prefix, n) for n in range(3)], base, base + DAY), points)


class _LossyPut:
    """A put endpoint in front of a real one that acknowledges every ``every``-th request without passing it
    on, as a target that dies before flushing loses what it acknowledged. ``every = 0`` passes everything."""

    def __init__(self, upstream, every):
        self.upstream = upstream.split("//", 1)[1]
        self.every = every
        self.seen = 0
        self.lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with owner.lock:
                    owner.seen += 1
                    drop = owner.every and owner.seen % owner.every == 0
                status = 204
                if not drop:
                    conn = http.client.HTTPConnection(owner.upstream, timeout=30)
                    conn.request("POST", self.path, body, {"Content-Type": "application/json"})
                    status = conn.getresponse().status
                    conn.close()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_points_the_target_lost_are_named_and_a_rerun_resends_only_them(emulator, target, tmp_path):
    prefix = "lossy%s" % uuid.uuid4().hex[:8]
    base = recent_day() - DAY
    points = run_points(prefix, base, days=1, metrics=3, per_metric_day=6000)
    emulator.add_points(points)
    dest, state = tmp_path / "d", tmp_path / "s"
    tsdb_dump.run(dict(dump_args(emulator.url, base, base + DAY, dest, state), metric_prefix=prefix), False)
    proxy = _LossyPut(target[0], every=7)
    try:
        args = restore_args(dest, proxy.url, state, verify_url=target[1], points_per_request=500, connections=2,
                            verify_timeout=3.0)
        with pytest.raises(FerryError) as failure:
            tsdb_restore.run(args, False)
        message = str(failure.value)
        assert "fewer points than were sent" in message and prefix in message
        assert "within its retention period" in message and "Run the restore again" in message
        record = Journal(str(state)).step("tsdb_restore").record()
        assert record["status"] == "failed" and record["checkpoint"]["short"]

        proxy.every = 0  # the target is sound again
        rerun = tsdb_restore.run(args, False)
        assert rerun["decision"] == "resume" and rerun["counts"]["points"] == 0
        assert 0 < rerun["resent"]["points"] < len(points) // 5
        assert rerun["verification"]["found_points"] == len(points)
        assert_each_point_once(read_back(target[1], ["%s.m%d" % (prefix, n) for n in range(3)], base, base + DAY),
                               points)
        assert tsdb_restore.run(args, False)["decision"] == "skip"
    finally:
        proxy.close()


def test_a_dump_rerun_notices_a_lost_batch_and_the_restore_sends_only_new_batches(emulator, target, tmp_path):
    prefix = "ledger%s" % uuid.uuid4().hex[:8]
    base = recent_day() - 2 * DAY
    points = run_points(prefix, base, days=2, metrics=2, per_metric_day=2400)
    emulator.add_points(points)
    dest, state = tmp_path / "d", tmp_path / "s"
    first_day = dict(dump_args(emulator.url, base, base + DAY, dest, state), metric_prefix=prefix)
    assert tsdb_dump.run(first_day, False)["counts"]["batches_written"] == 24
    rargs = restore_args(dest, target[0], state, verify_url=target[1])
    assert tsdb_restore.run(rargs, False)["counts"]["points"] == len(points) // 2

    lost = sorted(e for e in os.listdir(str(dest)) if e.endswith(".json"))[5]
    os.unlink(str(dest / lost))
    with pytest.raises(FerryError, match="cannot be restored as they are: .*data file %s.jsonl.gz has no manifest" % lost[:-5]):
        tsdb_restore.run(rargs, False)
    again = tsdb_dump.run(first_day, False)
    assert again["decision"] == "run" and again["missing_batches"] == [lost[:-5]]
    assert again["counts"]["batches_written"] == 1 and again["counts"]["batches_skipped"] == 23

    second_day = dict(first_day, start=str(base + DAY), stop=str(base + 2 * DAY), step="tsdb_dump_2")
    tsdb_dump.run(second_day, False)
    restored = tsdb_restore.run(rargs, False)  # the re-dumped batch is the same file: not sent again
    assert restored["counts"]["points"] == len(points) // 2 and restored["counts"]["batches"] == 48
    assert_each_point_once(read_back(target[1], ["%s.m%d" % (prefix, n) for n in range(2)], base, base + 2 * DAY),
                           points)
    assert tsdb_restore.run(rargs, False)["decision"] == "skip"
