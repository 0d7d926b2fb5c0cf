# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Counting and reading back on real VictoriaMetrics: verification counts on the server without reading
points back, exactly to the millisecond, under its default query flags and tight limits; metric names
with any characters and edge milliseconds read back."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import socket
import subprocess
import time

import pytest
import requests

from ansible_collections.ferry.migrate.plugins.module_utils.core.httpclient import HttpClient
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.remote import (
    PrometheusSource,
    count_on_target,
    count_series_on_target,
    target_frames,
)
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.transfer import VerificationFailed, verify

BASE = 1600000000000  # 2020-09-13T12:26:40Z, in ms


def unique(prefix):
    return "%s.%d" % (prefix, time.time_ns())


def put(url, points):
    """Points ``(metric, tags, ms, value)`` through VictoriaMetrics' OpenTSDB /api/put listener."""
    for index in range(0, len(points), 5000):
        body = [{"metric": m, "tags": t, "timestamp": ts, "value": v} for m, t, ts, v in points[index:index + 5000]]
        requests.post(url + "/api/put", json=body, timeout=60).raise_for_status()


def flush(url):
    requests.post(url + "/internal/force_flush", timeout=30).raise_for_status()


def plan_of(counts, first, last):
    return {"metrics": dict(counts), "batches": [{"metrics": dict(counts), "first_ts": first, "last_ts": last}]}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def strict_vm(tmp_path_factory):
    """A VictoriaMetrics of this module's own, with the packaged query defaults (-search.latencyOffset 30 s,
    response cache on) and tight limits (20,000 samples per series, 20 series per query). The samples limit
    counts what a query unpacks: whole blocks (up to 8192 samples) from 5 minutes before the window (the
    staleness look-back), so halves meet it only while that is under the limit, as with 1-s data here."""
    binary = os.environ.get("FERRY_VM_BIN", "/usr/bin/victoria-metrics")
    directory = tmp_path_factory.mktemp("strict-vm")
    http_port, put_port = free_port(), free_port()
    urls = {"url": "http://127.0.0.1:%d" % http_port, "put": "http://127.0.0.1:%d" % put_port}
    with open(directory / "server.log", "wb") as log:
        server = subprocess.Popen([binary, "-storageDataPath=%s" % (directory / "data"), "-retentionPeriod=100y",
                                   "-httpListenAddr=127.0.0.1:%d" % http_port,
                                   "-opentsdbHTTPListenAddr=127.0.0.1:%d" % put_port,
                                   "-search.maxSamplesPerSeries=20000", "-search.maxUniqueTimeseries=20"],
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_healthy(urls["url"], server, directory / "server.log")
            yield urls
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def wait_until_healthy(url, server, log):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail("victoria-metrics exited (%s): %s" % (server.returncode, log.read_text()[-2000:]))
        try:
            if requests.get(url + "/health", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    pytest.fail("victoria-metrics did not answer /health within 60 s: %s" % log.read_text()[-2000:])


def test_verify_counts_on_the_server_and_catches_one_point_missing_in_one_series(servers):
    url, metric = servers["FERRY_VM_URL"], unique("verify.count")
    stamps = [BASE + index * 1000 for index in range(20000)]
    points = [(metric, {"port": str(port)}, stamp, port) for port in range(3) for stamp in stamps]
    del points[25000]  # one point of the second series never reaches the target
    put(servers["FERRY_VM_OPENTSDB_URL"], points)
    flush(url)
    client = _PathsSeen(url)
    assert verify("victoriametrics", client, plan_of({metric: 59999}, stamps[0], stamps[-1]))["found_points"] == 59999
    with pytest.raises(VerificationFailed) as failed:
        verify("victoriametrics", client, plan_of({metric: 60000}, stamps[0], stamps[-1]), timeout=1)
    assert failed.value.report["short"] == {metric: (60000, 59999)}
    assert "/api/v1/export" not in client.paths  # counted by the server: no point was read back
    assert "/api/v1/query" in client.paths


class _PathsSeen(HttpClient):
    """An HttpClient that remembers the paths it requested (the server's own counters are shared by parallel
    tests)."""

    def __init__(self, *args, **kwargs):
        HttpClient.__init__(self, *args, **kwargs)
        self.paths = []

    def request(self, method, path, *args, **kwargs):
        self.paths.append(path)
        return HttpClient.request(self, method, path, *args, **kwargs)


def test_verify_right_after_the_transfer_finds_every_point_at_once(servers):
    """VictoriaMetrics makes acknowledged points searchable within a second or two; counting asks it to
    do so at once, so verify() needs no second count and no wait."""
    url, metric = servers["FERRY_VM_URL"], unique("verify.at.once")
    stamps = [BASE + index * 1000 for index in range(30000)]
    put(servers["FERRY_VM_OPENTSDB_URL"], [(metric, {"port": str(p)}, stamp, 1) for p in range(2) for stamp in stamps])
    assert verify("victoriametrics", HttpClient(url), plan_of({metric: 60000}, stamps[0], stamps[-1]),
                  timeout=0)["found_points"] == 60000


def test_counts_are_exact_under_default_query_flags_and_tight_limits(strict_vm):
    """Windows VictoriaMetrics 1.79 would misread in plain ms, points newer than -search.latencyOffset, a
    series over -search.maxSamplesPerSeries (counted in halves), a metric over -search.maxUniqueTimeseries
    (counted from its export), counted again after more points arrived (no cached answer)."""
    first, last = BASE + 1, BASE + 131500278  # "131500278ms" reads as 131500277 ms in VictoriaMetrics 1.79
    now = int(time.time() * 1000)
    names = dict((kind, unique("strict." + kind)) for kind in ("edges", "recent", "dense", "wide"))
    points = [(names["edges"], {"h": host}, stamp, 1) for host in "abc"
              for stamp in (first - 1, first, first + 500, last - 1, last, last + 1)]
    points += [(names["recent"], {"h": "a"}, now - 20000 + index * 1000, index) for index in range(20)]
    points += [(names["dense"], {"h": "a"}, BASE + index * 1000, index) for index in range(50000)]
    points += [(names["wide"], {"h": "h%d" % index}, BASE, index) for index in range(30)]
    put(strict_vm["put"], points)
    flush(strict_vm["url"])
    ranges = {names["edges"]: (first, last), names["recent"]: (now - 20000, now - 1000),
              names["dense"]: (BASE, BASE + 49999000), names["wide"]: (BASE, BASE)}
    client = HttpClient(strict_vm["url"])
    expected = {names["edges"]: 12, names["recent"]: 20, names["dense"]: 50000, names["wide"]: 30}
    assert count_on_target("victoriametrics", client, ranges) == expected
    put(strict_vm["put"], [(names["recent"], {"h": "b"}, now - 19500, 1)])
    flush(strict_vm["url"])
    recent = {names["recent"]: ranges[names["recent"]]}
    assert count_on_target("victoriametrics", client, recent) == {names["recent"]: 21}


def test_series_counts_are_exact_under_tight_limits_and_with_tag_filters(strict_vm):
    """Per series (the verification of issue 12): a series over -search.maxSamplesPerSeries counted in halves, a
    metric over -search.maxUniqueTimeseries counted per series from its export, tag filters as the dump's (a value,
    a wildcard, alternatives), tag values with quotes and colons."""
    names = dict((kind, unique("strict.series." + kind)) for kind in ("dense", "wide"))
    points = [(names["dense"], {"h": host}, BASE + index * 1000, index) for host in "ab" for index in range(25000)]
    points += [(names["wide"], {"h": "h%02d" % index, "sw": '00:0%d "x"' % (index % 3)}, BASE + index, index)
               for index in range(30)]
    put(strict_vm["put"], points)
    flush(strict_vm["url"])
    client = HttpClient(strict_vm["url"])
    dense = (BASE, BASE + 24999000, None)
    wide = (BASE, BASE + 29, None)
    counts = count_series_on_target("victoriametrics", client, {names["dense"]: dense, names["wide"]: wide})
    assert counts[names["dense"]] == {'{"h":"a"}': 25000, '{"h":"b"}': 25000}
    assert len(counts[names["wide"]]) == 30 and set(counts[names["wide"]].values()) == {1}
    assert counts[names["wide"]]['{"h":"h04","sw":"00:01 \\"x\\""}'] == 1
    for tags, found in (({"h": "b"}, 0), ({"h": "h1*"}, 10), ({"h": "h01|h02|h29"}, 3), ({"sw": '00:02 "x"'}, 10)):
        spec = {names["wide"]: (BASE, BASE + 29, tags), names["dense"]: dense[:2] + ({"h": "b"},)}
        counts = count_series_on_target("victoriametrics", client, spec)
        assert len(counts[names["wide"]]) == found, tags
        assert counts[names["dense"]] == {'{"h":"b"}': 25000}


ODD_NAMES = ["new\nline", "cr\rx", "tab\tx", 'quo"te', "back\\slash", "ünï€😀", "nul\x00x", "bell\x07x", "del\x7fx",
             'end\\"', "sp ace{}=,"]


def test_metric_names_with_any_character_read_back(servers):
    """VictoriaMetrics' /api/put stores these names as they are (none refused, none altered); each reads
    back, point by point and counted."""
    url, prefix = servers["FERRY_VM_URL"], unique("odd")
    names = [prefix + "." + odd for odd in ODD_NAMES]
    put(servers["FERRY_VM_OPENTSDB_URL"], [(name, {"h": "a"}, BASE + i, i) for name in names for i in range(3)])
    flush(url)
    client = HttpClient(url)
    assert PrometheusSource(client).list_metrics(prefix=prefix + ".") == sorted(names)
    for name in names:
        [points] = target_frames("victoriametrics", client, name, BASE, BASE + 3)
        assert [(m, ts, v) for m, t, ts, v in points] == [(name, BASE + index, index) for index in range(3)]
    assert count_on_target("victoriametrics", client, dict((name, (BASE, BASE + 2)) for name in names)) == \
        dict((name, 3) for name in names)


def test_edge_milliseconds_read_back_whatever_the_float_rounding(servers):
    """1090216309682 ms (2004) sent as "1090216309.682" s is read by VictoriaMetrics 1.79 as ...681 ms:
    an export to that end missed its last point."""
    url, metric, stamp = servers["FERRY_VM_URL"], unique("edge.2004"), 1090216309682
    put(servers["FERRY_VM_OPENTSDB_URL"], [(metric, {"h": "a"}, stamp + offset, offset) for offset in (-1, 0, 1)])
    flush(url)
    client = HttpClient(url)
    assert [ts for points in target_frames("victoriametrics", client, metric, stamp, stamp + 1)
            for m, t, ts, v in points] == [stamp]
    assert PrometheusSource(client).export_count(metric, stamp, stamp) == 1
