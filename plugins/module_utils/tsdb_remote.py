# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading points from OpenTSDB or Prometheus/VictoriaMetrics, writing them with ``/api/put``,
and counting them back on a target.

Readers yield frames of points for one metric over a half-open time range ``[begin, end)``; frame
ends never overlap and never drop a millisecond (OpenTSDB's own query ends are both inclusive, so a
frame ``[a, b)`` is asked as ``start=a, end=b-1`` in ms). Frames are sized by point density: each
query aims at ``target_points`` points and a failing query is split in two.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import json
import queue
import re
import threading
import time

from ansible_collections.ferry.migrate.plugins.module_utils.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.httpclient import (
    HttpClient,
    HttpError,
    with_retries,
)
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb import is_finite, normalize_tags

MIN_FRAME_MS = 1000
SUGGEST_START = 10000


def tag_filters(tags):
    """OpenTSDB filters from ``{tagk: value}``: ``*`` makes a wildcard, ``a|b`` a literal_or."""
    filters = []
    for key, value in sorted((tags or {}).items()):
        kind = "wildcard" if "*" in value else "literal_or"
        filters.append({"type": kind, "tagk": key, "filter": value, "groupBy": True})
    return filters


def select_metrics(names, prefix="", metrics=None, regex=None):
    """Names kept by the prefix, the explicit list and the regex (all optional), sorted."""
    pattern = re.compile(regex) if regex else None
    wanted = set(metrics) if metrics else None
    return sorted(name for name in set(names)
                  if name.startswith(prefix or "")
                  and (wanted is None or name in wanted)
                  and (pattern is None or pattern.search(name)))


class OpenTSDBSource:
    """An OpenTSDB 2.3+ server read through ``/api/suggest`` and ``POST /api/query``."""

    kind = "opentsdb"

    def __init__(self, client, target_points=50000, retries=5, backoff=0.5):
        self.client = client
        self.target_points = target_points
        self.retries = retries
        self.backoff = backoff
        self.queries = 0

    def list_metrics(self, prefix="", metrics=None, regex=None):
        """Every metric, complete: ``max`` has no upper cap, so ask again with more until one answer
        is not full (a fixed ``max`` of 25 is how kilda's tool misses metrics)."""
        limit = SUGGEST_START
        while True:
            names = self._call(lambda: self.client.json("GET", "/api/suggest",
                                                        query={"type": "metrics", "q": prefix or "", "max": limit}))
            if len(names or []) < limit:
                break
            limit *= 4
        if metrics:
            missing = sorted(set(metrics) - set(names))
            if missing:
                raise FerryError("metric(s) not found on the source: %s" % ", ".join(missing[:20]))
        return select_metrics(names or [], prefix, metrics, regex)

    def frames(self, metric, begin_ms, end_ms, tags=None):
        """Yield ``(frame_begin, frame_end, points)`` covering ``[begin_ms, end_ms)`` in order."""
        filters = tag_filters(tags)
        length = end_ms - begin_ms
        cursor = begin_ms
        while cursor < end_ms:
            frame_end = min(cursor + max(length, MIN_FRAME_MS), end_ms)
            try:
                points = self._query(metric, cursor, frame_end, filters)
            except HttpError as exc:
                if exc.status == 400 or frame_end - cursor <= MIN_FRAME_MS:
                    raise
                length = (frame_end - cursor) // 2  # too big for the server: split the frame
                continue
            yield cursor, frame_end, points
            if points:
                length = max(MIN_FRAME_MS, int((frame_end - cursor) * self.target_points / len(points)))
            else:
                length = max(length, (frame_end - cursor) * 2)
            cursor = frame_end

    def _query(self, metric, begin_ms, end_ms, filters):
        body = {"start": begin_ms, "end": end_ms - 1, "msResolution": True,
                "queries": [{"aggregator": "none", "metric": metric, "filters": filters}]}
        series = self._call(lambda: self.client.json("POST", "/api/query", body))
        self.queries += 1
        points = []
        for item in series or []:
            tags = normalize_tags(item.get("tags"))
            for stamp, value in (item.get("dps") or {}).items():
                stamp = int(stamp)
                if begin_ms <= stamp < end_ms and is_finite(value):
                    points.append((item.get("metric", metric), tags, stamp, value))
        points.sort(key=lambda point: (point[1], point[2]))
        return points

    def _call(self, call):
        return with_retries(call, attempts=self.retries, backoff=self.backoff)


class PrometheusSource:
    """Prometheus-compatible storage (VictoriaMetrics) read through ``/api/v1/export``."""

    kind = "prometheus"

    def __init__(self, client, retries=5, backoff=0.5):
        self.client = client
        self.retries = retries
        self.backoff = backoff
        self.queries = 0

    def list_metrics(self, prefix="", metrics=None, regex=None):
        answer = with_retries(lambda: self.client.json("GET", "/api/v1/label/__name__/values"),
                              attempts=self.retries, backoff=self.backoff)
        return select_metrics((answer or {}).get("data") or [], prefix, metrics, regex)

    def frames(self, metric, begin_ms, end_ms, tags=None):
        points = []
        for line in self._export(metric, begin_ms, end_ms - 1, tags):
            labels = dict(line["metric"])
            name = labels.pop("__name__", metric)
            tag_pairs = normalize_tags(labels)
            for stamp, value in zip(line["timestamps"], line["values"]):
                if begin_ms <= stamp < end_ms and is_finite(value):
                    points.append((name, tag_pairs, stamp, value))
        points.sort(key=lambda point: (point[1], point[2]))
        yield begin_ms, end_ms, points

    def _export(self, metric, first_ms, last_ms, tags):
        selector = series_selector(metric, tags)
        form = "match[]=%s&start=%.3f&end=%.3f" % (_quote(selector), first_ms / 1000.0, last_ms / 1000.0)
        status_body = with_retries(
            lambda: self.client.request("POST", "/api/v1/export", body=form.encode("utf-8"),
                                        headers={"Content-Type": "application/x-www-form-urlencoded"}),
            attempts=self.retries, backoff=self.backoff)
        self.queries += 1
        for raw in status_body[1].splitlines():
            if raw.strip():
                yield json.loads(raw.decode("utf-8"))


def series_selector(metric, tags=None):
    """A Prometheus series selector for a metric name with any characters, plus tag matchers."""
    matchers = ['__name__="%s"' % _escape(metric)]
    for key, value in sorted((tags or {}).items()):
        if "*" in value or "|" in value:
            regex = "|".join(re.escape(part).replace("\\*", ".*") for part in value.split("|"))
            matchers.append('%s=~"%s"' % (key, _escape(regex)))
        else:
            matchers.append('%s="%s"' % (key, _escape(value)))
    return "{%s}" % ",".join(matchers)


def _escape(text):
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _quote(text):
    from urllib.parse import quote  # pylint: disable=import-outside-toplevel
    return quote(text, safe="")


class Rejected(FerryError):
    """The target refused points (a 4xx other than 429): sending them again cannot help."""


class PutWriter:
    """Sends put bodies to ``/api/put`` over several keep-alive connections.

    Connection errors, 5xx and 429 are retried with backoff; any other 4xx stops the write with the
    server's message and, with OpenTSDB's ``?details``, the first rejected points.
    """

    def __init__(self, url, username=None, password=None, connections=4, use_gzip=False, retries=8,
                 backoff=0.5, timeout=120.0, throttle=0, validate_certs=True, details=True):
        self.url = url
        self.credentials = (username, password)
        self.connections = max(1, int(connections))
        self.use_gzip = use_gzip
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.throttle = throttle
        self.validate_certs = validate_certs
        self.query = {"details": ""} if details else None
        self.stats = {"requests": 0, "points": 0, "bytes": 0, "retries": 0}
        self._lock = threading.Lock()

    def write(self, bodies, on_done=None):
        """Send every ``(body, count, tag)``; ``on_done(tag, count)`` runs once each is acknowledged."""
        jobs = queue.Queue(maxsize=self.connections * 2)
        errors = []
        workers = [threading.Thread(target=self._worker, args=(jobs, errors, on_done)) for index in
                   range(self.connections)]
        for worker in workers:
            worker.daemon = True
            worker.start()
        pace = _Pace(self.throttle)
        try:
            for job in bodies:
                if errors:
                    break
                pace.wait(job[1])
                jobs.put(job)
        finally:
            for worker in workers:
                jobs.put(None)
            for worker in workers:
                worker.join()
        if errors:
            raise errors[0]
        return dict(self.stats)

    def _worker(self, jobs, errors, on_done):
        client = HttpClient(self.url, self.credentials[0], self.credentials[1], self.timeout, self.validate_certs)
        try:
            while True:
                job = jobs.get()
                if job is None:
                    return
                if errors:
                    continue
                try:
                    self._send(client, job[0], job[1])
                except FerryError as exc:
                    errors.append(exc)
                    continue
                if on_done is not None:
                    on_done(job[2], job[1])
        finally:
            client.close()

    def _send(self, client, body, count):
        headers = {"Content-Type": "application/json"}
        payload = body
        if self.use_gzip:
            payload = gzip.compress(body, 1)
            headers["Content-Encoding"] = "gzip"

        def on_retry(attempt, error):
            with self._lock:
                self.stats["retries"] += 1

        try:
            with_retries(lambda: client.request("POST", "/api/put", body=payload, query=self.query, headers=headers,
                                                ok=(200, 204)),
                         attempts=self.retries, backoff=self.backoff, on_retry=on_retry)
        except HttpError as exc:
            raise Rejected("the target rejected points: %s" % exc.server_message)
        with self._lock:
            self.stats["requests"] += 1
            self.stats["points"] += count
            self.stats["bytes"] += len(payload)


class _Pace:
    """At most ``rate`` points per second (0 = no limit), to spare a fragile target."""

    def __init__(self, rate):
        self.rate = rate
        self.started = time.monotonic()
        self.sent = 0

    def wait(self, count):
        if self.rate:
            self.sent += count
            ahead = self.sent / float(self.rate) - (time.monotonic() - self.started)
            if ahead > 0:
                time.sleep(ahead)


def target_frames(kind, client, metric, begin_ms, end_ms, retries=5):
    """A target's points of one metric in ``[begin, end)``, read back with its own API."""
    if kind == "victoriametrics":
        source = PrometheusSource(client, retries=retries)
    else:
        source = OpenTSDBSource(client, retries=retries, target_points=10 ** 9)
    try:
        for frame in source.frames(metric, begin_ms, end_ms):
            yield frame[2]
    except HttpError as exc:
        if not (exc.status == 400 and "No such name" in exc.server_message):
            raise


def count_on_target(kind, client, metric_ranges, retries=5):
    """Points per metric found on the target: ``{metric: count}`` for ``{metric: (first, last)}`` ranges."""
    return dict((metric, sum(len(points) for points in target_frames(kind, client, metric, first, last + 1, retries)))
                for metric, (first, last) in sorted(metric_ranges.items()))
