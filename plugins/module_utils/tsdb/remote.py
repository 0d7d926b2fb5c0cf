# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading points from OpenTSDB or Prometheus/VictoriaMetrics, writing them with ``/api/put``,
and counting them back on a target.

Readers yield frames of points for one metric over a half-open time range ``[begin, end)``; frame
ends never overlap and never drop a millisecond (OpenTSDB's own query ends are both inclusive, so a
frame ``[a, b)`` is asked as ``start=a, end=b-1`` in ms). OpenTSDB frames are sized by point density
so that no answer kept holds more than ``target_points`` points (see :class:`OpenTSDBSource`); a
failing query is split in two.

Counting on a target (:func:`count_on_target`, :func:`count_series_on_target`) is done by the target itself,
one number per metric or per series: no point is read back.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import json
import queue
import re
import threading
import time

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.httpclient import (
    RETRY_STATUSES,
    ConnectionFailed,
    Contact,
    HttpClient,
    HttpError,
    redact_url,
    with_retries,
)
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.points import is_finite, normalize_tags, series_key

MIN_FRAME_MS = 1000
SUGGEST_START = 10000
FILL = 0.75  # frames aim at this share of target_points, so density wobble stays under the bound
GROWTH = 16  # a frame is at most this many times longer than the one before


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
    """An OpenTSDB 2.3+ server read through ``/api/suggest`` and ``POST /api/query``.

    No answer of more than ``target_points`` points is kept: one that has more is dropped and its frame
    asked again in pieces sized from it. Frames aim at 3/4 of ``target_points`` at the density last seen:
    a metric's first frame in a batch from its density in the previous batch, else from the TSD's own
    count of the metric's points in the batch (one small answer; a metric without points there is not
    read at all); each next frame from the frame before, at most 16 times longer. So one answer held in
    memory stays under ``target_points`` while the density changes by less than a third from one frame
    to the next; data that gets denser faster costs one oversized answer, read and dropped.
    """

    kind = "opentsdb"

    def __init__(self, client, target_points=50000, retries=5, backoff=0.5):
        self.client = client
        self.target_points = target_points
        self.retries = retries
        self.backoff = backoff
        self.queries = 0
        self.oversized = 0  # answers above target_points, dropped and asked again in pieces
        self.density = {}  # metric -> points per ms in its last frame with points

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
        """Yield ``(frame_begin, frame_end, points)`` covering ``[begin_ms, end_ms)`` in order, none with
        more than ``target_points`` points unless more than that share one millisecond."""
        filters = tag_filters(tags)
        length = self._first_length(metric, begin_ms, end_ms, filters)
        if length is None:
            yield begin_ms, end_ms, []
            return
        cursor = begin_ms
        while cursor < end_ms:
            frame_end = min(cursor + length, end_ms)
            try:
                points = self._query(metric, cursor, frame_end, filters)
            except HttpError as exc:
                if exc.status == 400 or frame_end - cursor <= MIN_FRAME_MS:
                    raise
                length = (frame_end - cursor) // 2  # too big for the server: split the frame
                continue
            length = self._next_length(frame_end - cursor, len(points))
            if len(points) > self.target_points and frame_end - cursor > 1:
                self.oversized += 1  # correct, but over the bound: ask again in smaller pieces
                continue
            if points:
                self.density[metric] = len(points) / float(frame_end - cursor)
            yield cursor, frame_end, points
            cursor = frame_end

    def count_points(self, metric, first_ms, last_ms, filters=None):
        """Points of ``metric`` stamped in ``[first_ms, last_ms]``, counted by the TSD (OpenTSDB 2.3+): each
        series downsampled to its count over the whole range (``0all-count``), the counts summed
        (``zimsum``: they all sit at the query's start, nothing is interpolated). A ``0all`` bucket stops
        before ``end`` (the Downsampler drops stamps >= end), so ``end`` is ``last + 1``."""
        body = {"start": first_ms, "end": last_ms + 1, "msResolution": True,
                "queries": [{"aggregator": "zimsum", "metric": metric, "downsample": "0all-count",
                             "filters": [dict(item, groupBy=False) for item in filters or []]}]}
        series = self._call(lambda: self.client.json("POST", "/api/query", body))
        self.queries += 1
        return sum(int(round(float(value))) for item in series or [] for value in (item.get("dps") or {}).values())

    def count_series(self, metric, first_ms, last_ms, tags=None):
        """``{series_key: points}`` of ``metric`` stamped in ``[first_ms, last_ms]`` in the series ``tags`` selects
        (``*`` wildcards, ``a|b``), counted by the TSD: the ``none`` aggregator keeps each series apart, each
        downsampled to its count over the range (``0all-count``, ``end`` is ``last + 1`` as in
        :meth:`count_points`)."""
        body = {"start": first_ms, "end": last_ms + 1, "msResolution": True,
                "queries": [{"aggregator": "none", "metric": metric, "downsample": "0all-count",
                             "filters": tag_filters(tags)}]}
        series = self._call(lambda: self.client.json("POST", "/api/query", body))
        self.queries += 1
        counts = {}
        for item in series or []:
            key = series_key(normalize_tags(item.get("tags")))
            counts[key] = counts.get(key, 0) + sum(int(round(float(value)))
                                                   for value in (item.get("dps") or {}).values())
        return counts

    def _first_length(self, metric, begin_ms, end_ms, filters):
        """The first frame's length: from the metric's density in an earlier batch, else from its count in
        this range; None when it has no point there."""
        density = self.density.get(metric)
        if density is None:
            count = self.count_points(metric, begin_ms, end_ms - 1, filters)
            if not count:
                return None
            density = count / float(end_ms - begin_ms)
        return max(1, int(self.target_points * FILL / density))

    def _next_length(self, length, count):
        """The length of the frame after one of ``length`` ms that held ``count`` points."""
        if not count:
            return length * GROWTH
        return max(1, min(length * GROWTH, int(length * self.target_points * FILL / count)))

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
    """Prometheus-compatible storage (VictoriaMetrics) read through ``/api/v1/export``, its points counted
    through ``/api/v1/query``."""

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

    def flush(self):
        """Ask VictoriaMetrics to make every point it acknowledged searchable now (``/internal/force_flush``)
        rather than within a second or two. Once, best effort: a server without it (a cluster's vmselect, a
        proxy) answers an error, and counting then waits as usual."""
        try:
            self.client.request("POST", "/internal/force_flush")
        except FerryError:
            pass

    def count_points(self, metric, first_ms, last_ms):
        """Points of ``metric`` stamped in ``[first_ms, last_ms]``, counted by VictoriaMetrics itself.

        A range with more samples than one query may touch (``-search.maxSamplesPerSeries``,
        ``-search.maxSamplesPerQuery``) is counted in halves; a metric with more series than one query may
        select (``-search.maxUniqueTimeseries``) is counted from its export instead.
        """
        try:
            return self._query_count(metric, first_ms, last_ms)
        except HttpError as exc:
            if exc.status != 422:
                raise
            if "samples" not in exc.server_message:
                return self.export_count(metric, first_ms, last_ms)
            if first_ms == last_ms:
                raise
        middle = (first_ms + last_ms) // 2
        return self.count_points(metric, first_ms, middle) + self.count_points(metric, middle + 1, last_ms)

    def count_series(self, metric, first_ms, last_ms, tags=None):
        """``{series_key: points}`` of ``metric`` stamped in ``[first_ms, last_ms]`` in the series ``tags`` selects,
        counted by VictoriaMetrics itself (``count_over_time`` per series, one number each); limits as in
        :meth:`count_points`: a range with too many samples in halves, too many series from the export. A filter
        on a tag name that is no label name MetricsQL can write (``host.name``) is left out: every series of the
        metric is counted, and only those sent are compared."""
        if tags and not all(_LABEL_NAME.match(key) for key in tags):
            tags = None
        try:
            return self._query_series(metric, first_ms, last_ms, tags)
        except HttpError as exc:
            if exc.status != 422:
                raise
            if "samples" not in exc.server_message:
                return self.export_series(metric, first_ms, last_ms, tags)
            if first_ms == last_ms:
                raise
        middle = (first_ms + last_ms) // 2
        counts = self.count_series(metric, first_ms, middle, tags)
        for key, points in self.count_series(metric, middle + 1, last_ms, tags).items():
            counts[key] = counts.get(key, 0) + points
        return counts

    def export_series(self, metric, first_ms, last_ms, tags=None):
        """:meth:`export_count` per series: each JSON line's ``"metric"`` object (the first key VictoriaMetrics
        writes; a quote inside a string is escaped, so the first ``,"values":`` ends it) is decoded, not its
        values."""
        counts = {}
        for raw in self._export_body(metric, first_ms, last_ms, tags).splitlines():
            start = raw.rfind(b'"timestamps":[')
            if start < 0:
                continue
            stamps = raw[start + 14:raw.index(b"]", start)]
            labels = json.loads(raw[:raw.index(b',"values":')].decode("utf-8") + "}").get("metric") or {}
            labels.pop("__name__", None)
            key = series_key(normalize_tags(labels))
            counts[key] = counts.get(key, 0) + (stamps.count(b",") + 1 if stamps.strip() else 0)
        return counts

    def _query_series(self, metric, first_ms, last_ms, tags):
        expression, at = count_query(metric, first_ms, last_ms, tags, per_series=True)
        answer = self._post("/api/v1/query", "query=%s&time=%d&nocache=1" % (_quote(expression), at))
        counts = {}
        for item in json.loads(answer.decode("utf-8"))["data"]["result"]:
            labels = dict(item["metric"])
            labels.pop("__name__", None)
            key = series_key(normalize_tags(labels))
            counts[key] = counts.get(key, 0) + int(float(item["value"][1]))
        return counts

    def export_count(self, metric, first_ms, last_ms):
        """Points in ``[first_ms, last_ms]`` counted in the export without decoding it: per JSON line, the
        commas of its ``"timestamps"`` array (the last key VictoriaMetrics writes) plus one."""
        total = 0
        for raw in self._export_body(metric, first_ms, last_ms).splitlines():
            start = raw.rfind(b'"timestamps":[')
            if start >= 0:
                stamps = raw[start + 14:raw.index(b"]", start)]
                total += stamps.count(b",") + 1 if stamps.strip() else 0
        return total

    def _query_count(self, metric, first_ms, last_ms):
        expression, at = count_query(metric, first_ms, last_ms)
        # nocache=1: no cached result, and no -search.latencyOffset (30 s by default) moving the time back
        answer = self._post("/api/v1/query", "query=%s&time=%d&nocache=1" % (_quote(expression), at))
        result = json.loads(answer.decode("utf-8"))["data"]["result"]
        return sum(int(float(item["value"][1])) for item in result)

    def _export(self, metric, first_ms, last_ms, tags):
        for raw in self._export_body(metric, first_ms, last_ms, tags).splitlines():
            if raw.strip():
                yield json.loads(raw.decode("utf-8"))

    def _export_body(self, metric, first_ms, last_ms, tags=None):
        form = "match[]=%s&start=%s&end=%s" % (_quote(series_selector(metric, tags)), _seconds(first_ms),
                                               _seconds(last_ms))
        return self._post("/api/v1/export", form)

    def _post(self, path, form):
        status_body = with_retries(
            lambda: self.client.request("POST", path, body=form.encode("utf-8"),
                                        headers={"Content-Type": "application/x-www-form-urlencoded"}),
            attempts=self.retries, backoff=self.backoff)
        self.queries += 1
        return status_body[1]


def count_query(metric, first_ms, last_ms, tags=None, per_series=False):
    """``(expression, time)``: the MetricsQL that counts ``metric``'s points stamped in ``[first, last]`` (in the
    series ``tags`` selects; summed, or one number per series with ``per_series``), and the time (whole seconds)
    to evaluate it at.

    A rollup window ``[w]`` at time ``t`` holds the samples in ``(t - w, t]``: ``w = last - first + 1`` and
    ``t = last`` make it exactly ``[first, last]``. VictoriaMetrics 1.79 reads a duration as float
    ``multiplier * number * 1e3`` truncated to ms ("131500278ms" is 131500277 ms) and a time as float
    seconds truncated, so both are written in forms it reads exactly: whole seconds, then the rest in ms
    (under 1000, exact); ``t`` as whole seconds with an ``offset`` under one second.
    """
    at = -(-last_ms // 1000)
    offset = at * 1000 - last_ms
    window = "%s[%s]%s" % (series_selector(metric, tags), _duration(last_ms - first_ms + 1),
                           " offset " + _duration(offset) if offset else "")
    return ("count_over_time(%s)" if per_series else "sum(count_over_time(%s))") % window, at


def _duration(ms):
    seconds, rest = divmod(ms, 1000)
    return ("%ds" % seconds if seconds else "") + ("%dms" % rest if rest else "")


def _seconds(ms):
    """A time for VictoriaMetrics' start/end: seconds with a quarter ms added, read as exactly ``ms``
    whether it truncates (1.79: "1090216309.682" is read as ...681) or rounds."""
    return "%d.%03d25" % divmod(ms, 1000)


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


_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(text):
    """``text`` inside a MetricsQL double-quoted string, which VictoriaMetrics reads with Go's
    ``strconv.Unquote``: backslash and quote escaped, control characters as escapes (a raw newline is a
    syntax error there), everything else (any Unicode) as it is."""
    return "".join(_ESCAPES.get(char) or ("\\x%02x" % ord(char) if char < " " or char == "\x7f" else char)
                   for char in text)


def _quote(text):
    from urllib.parse import quote  # pylint: disable=import-outside-toplevel
    return quote(text, safe="")


class Rejected(FerryError):
    """The target refused points (a 4xx other than 429): sending them again cannot help."""


class Unreachable(Rejected):
    """The target never answered (down, wrong URL or port, TLS refused) or its certificate is not trusted:
    trying the batch again cannot help either."""


class PutWriter:
    """Sends put bodies to ``/api/put`` over several keep-alive connections.

    Connection errors, 5xx and 429 are tried ``attempts`` times in all, with backoff, once the target has
    answered; before its first answer a connection error fails at once (:class:`Unreachable`). Any other
    4xx stops the write with the server's message and, with OpenTSDB's ``?details``, the first rejected
    points. Any failure of a worker thread ends the write with its message.
    """

    def __init__(self, url, username=None, password=None, connections=4, use_gzip=False, attempts=6,
                 backoff=0.5, timeout=120.0, throttle=0, validate_certs=True, details=True):
        if connections < 1 or attempts < 1:
            raise FerryError("a put writer needs at least 1 connection and 1 attempt: got %r and %r"
                             % (connections, attempts))
        self.url = url
        self.credentials = (username, password)
        self.connections = int(connections)
        self.use_gzip = use_gzip
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self.throttle = throttle
        self.validate_certs = validate_certs
        self.query = {"details": ""} if details else None
        self.stats = {"requests": 0, "points": 0, "bytes": 0, "retries": 0}
        self.contact = Contact()  # shared by every worker of every write: one answer is enough
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
        stopped = False
        try:
            for job in bodies:
                pace.wait(job[1])
                if not _offer(jobs, job, errors, workers):
                    stopped = True
                    break
        finally:
            for worker in workers:
                _offer(jobs, None, None, workers)
            for worker in workers:
                worker.join()
        if errors:
            raise self._error(errors[0])
        if stopped:  # never without an error; were it so, requests were left unsent: not a success
            raise FerryError("sending to %s stopped early: no worker thread was left" % redact_url(self.url))
        return dict(self.stats)

    def _worker(self, jobs, errors, on_done):
        client = None
        try:
            client = self._client()
            while True:
                job = jobs.get()
                if job is None:
                    return
                if errors:
                    continue  # take the rest off the queue unsent, so the producer never waits on it
                self._send(client, job[0], job[1])
                if on_done is not None:
                    on_done(job[2], job[1])
        except BaseException as exc:  # a thread that dies silently would lose its job and stall the write
            errors.append(exc)
        finally:
            if client is not None:
                client.close()

    def _client(self):
        return HttpClient(self.url, self.credentials[0], self.credentials[1], self.timeout, self.validate_certs,
                          contact=self.contact)

    def _error(self, exc):
        """The worker's failure as a FerryError, its message kept (a bug's too, with its type)."""
        if isinstance(exc, FerryError):
            return exc
        return FerryError("sending to %s failed: %s: %s" % (redact_url(self.url), exc.__class__.__name__, exc))

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
                         attempts=self.attempts, backoff=self.backoff, on_retry=on_retry)
        except HttpError as exc:
            if exc.status in RETRY_STATUSES:
                raise  # still busy after every attempt: a later try of the batch may get through
            raise Rejected("the target rejected points: %s" % exc.server_message)
        except ConnectionFailed as exc:
            if not exc.retryable:
                raise Unreachable(str(exc))
            raise
        with self._lock:
            self.stats["requests"] += 1
            self.stats["points"] += count
            self.stats["bytes"] += len(payload)


def _offer(jobs, job, errors, workers):
    """Queue ``job``; False, without waiting, once the write is failing (``errors``) or no worker is left
    to take it: the producer must never block on a full queue nobody empties."""
    while not errors:
        try:
            jobs.put(job, timeout=0.1)
            return True
        except queue.Full:
            if not any(worker.is_alive() for worker in workers):
                return False
    return False


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


def target_source(kind, client, retries=5):
    """The reader of a target (``kind`` victoriametrics or opentsdb), retrying as the sources do."""
    if kind == "victoriametrics":
        return PrometheusSource(client, retries=retries)
    return OpenTSDBSource(client, retries=retries, target_points=10 ** 9)


def target_frames(kind, client, metric, begin_ms, end_ms, retries=5):
    """A target's points of one metric in ``[begin, end)``, read back with its own API."""
    try:
        for frame in target_source(kind, client, retries).frames(metric, begin_ms, end_ms):
            yield frame[2]
    except HttpError as exc:
        if not _no_such_name(exc):
            raise


def count_on_target(kind, client, metric_ranges, retries=5):
    """Points per metric found on the target: ``{metric: count}`` for ``{metric: (first, last)}`` ranges,
    counted by the target (one number per metric read back, whatever the number of points). VictoriaMetrics
    is asked first to make the points it acknowledged searchable, so a count right after a transfer is whole."""
    source = target_source(kind, client, retries)
    if kind == "victoriametrics":
        source.flush()
    return dict((metric, _count(source, metric, first, last))
                for metric, (first, last) in sorted(metric_ranges.items()))


def count_series_on_target(kind, client, metric_specs, retries=5):
    """Points per series found on the target: ``{metric: {series_key: count}}`` for ``{metric: (first, last,
    tags)}`` (``tags``: the filter the series were dumped with, or None), counted by the target, one number per
    series. VictoriaMetrics is asked first to make what it acknowledged searchable, as in :func:`count_on_target`."""
    source = target_source(kind, client, retries)
    if kind == "victoriametrics":
        source.flush()
    counts = {}
    for metric, (first, last, tags) in sorted(metric_specs.items()):
        try:
            counts[metric] = source.count_series(metric, first, last, tags)
        except HttpError as exc:
            if not _no_such_name(exc):  # OpenTSDB: a metric, tag or value never written has no name yet
                raise FerryError("counting %s on the target failed: %s" % (metric, exc))
            counts[metric] = {}
    return counts


def _count(source, metric, first_ms, last_ms):
    try:
        return source.count_points(metric, first_ms, last_ms)
    except HttpError as exc:
        if _no_such_name(exc):
            return 0  # OpenTSDB: a metric never written has no name yet
        raise FerryError("counting %s on the target failed: %s" % (metric, exc))


def _no_such_name(exc):
    return exc.status == 400 and "No such name" in exc.server_message
