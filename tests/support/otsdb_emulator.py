"""An emulator of the OpenTSDB 2.4 HTTP API for tests, standard library only.

No real OpenTSDB can run on the test machines, so this server answers ``/api/put``, ``/api/query``
(GET and POST), ``/api/suggest`` and ``/api/version`` the way a TSD 2.4 with its built-in defaults
does, errors included, and adds what a test needs: fast bulk loading, inspection and fault injection.

    with OpenTSDBEmulator() as tsdb:
        tsdb.add_points([("sys.cpu", {"host": "a"}, 1500000000000, 42)])
        requests.post(tsdb.url + "/api/query", json={...})
        tsdb.inject("/api/put", status=500, nth=2)

By hand: ``python tests/support/otsdb_emulator.py --port 4242`` (Ctrl-C or SIGTERM stops it). ``--load FILE``
loads points first (JSON lines in the put format, ``{"metric", "tags", "timestamp", "value"}``, as many files as
wanted), ``--url-file FILE`` writes the URL once it listens (with ``--port 0``, any free port),
``--exit-after SECONDS`` stops it on its own (a test that dies leaves no server behind), and ``--dump FILE``
writes what it holds at exit the same way.

Behaviours taken from the OpenTSDB sources that surprise clients, all on purpose:

* Bodies that netty hands over in chunks are refused with 400 "Chunked request not supported."
  (``tsd.http.request.enable_chunked`` is false by default): ``Transfer-Encoding: chunked``, a
  ``Content-Length`` above 8192 bytes (netty's maxChunkSize) and ``Expect: 100-continue``.
  ``enable_chunked=True`` accepts them up to ``max_chunk`` bytes (default 4096, as the TSD); past
  that the TSD drops the connection without an answer, and so does the emulator.
* Without msResolution the dps keys are seconds and every point keeps its own key, so one second
  with several points gives duplicate JSON keys (HttpJsonSerializer writes them as they come):
  a JSON parser keeps the last one.
* A series with data in the hour rows the query scans, but none inside [start, end], is answered
  with empty ``"dps": {}`` (OpenTSDB issue #672).
* Unknown names in a query are 400 "No such name for 'metrics'|'tagk'|'tagv': ..." (literal_or
  values are resolved, as with ``tsd.query.skip_unresolved_tagvs=false``).
* In GET ``m=`` the whole expression is split on ':', so a tag value holding ':' breaks the query.
* The ``none`` aggregator returns each series on its own; with a downsampler each series is
  downsampled (TsdbQuery), only ``none`` as the downsampling function (``1m-none``) is a 400.
* Downsampled values are doubles (Downsampler.isInteger is false): a ``count`` answers ``12.0``. The
  ``0all`` interval (2.3+) makes one bucket per series stamped at the query's start that holds the
  points in [start, end): the Downsampler drops stamps at or after ``end`` although the query's own
  range includes ``end``.
* Accepted sockets have TCP_NODELAY (``tsd.network.tcp_no_delay`` defaults to true) and an answer
  goes out in one write (netty encodes head and body into one buffer): a keep-alive client never
  waits for a delayed ACK.
* Responses are gzip-compressed when the client accepts gzip (netty's HttpContentCompressor).

Deviations (simplifications) from a real TSD:

* Aggregators other than ``none`` combine the values present at each timestamp without linear
  interpolation: exact for zimsum, mimmin and mimmax, approximate for sum, min, max, avg and count
  when series are not aligned. Percentiles, dev, diff, mult, ... are refused with a 400.
* Downsampling aligns buckets on the epoch (calendar ``c`` units too, in UTC); fill policies are
  accepted but behave as ``none``; rate ignores counter options. Rollups, histograms, expressions,
  ``/api/query/last``, tsuid queries, annotations and the UI (paths outside /api are 404) are not
  emulated.
* Absolute dates ``yyyy/MM/dd[-HH:mm[:ss]]`` are read in UTC unless ``timezone``/``tz`` names a zone
  (real TSDs use the JVM default zone); ``auto_create_metrics`` defaults to True (the TSD default is
  false, deployments that write over HTTP set it true); error bodies carry no Java ``trace``.
* ``<seconds>.<ms>`` timestamps are read as meant (the TSD's own parsing of 1-2 digit fractions is
  off); writing the same instant again, in s or ms, overwrites the value (a TSD keeps both cells).
"""

import argparse
import bisect
import gzip
import http
import json
import math
import os
import re
import signal
import socket
import sys
import threading
import time
import traceback
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from zoneinfo import ZoneInfo

VERSION = {
    "version": "2.4.1",
    "short_revision": "emulator",
    "full_revision": "emulator",
    "repo": "tests/support/otsdb_emulator.py",
    "repo_status": "MINT",
    "branch": "",
    "user": "emulator",
    "host": "localhost",
    "timestamp": "1630000000",
}
MAX_TAGS = 8  # tsd.storage.max_tags
NETTY_MAX_CHUNK = 8192  # netty 3 HttpRequestDecoder: larger bodies arrive as chunks
NETTY_MAX_LINE = 4096  # netty 3 HttpRequestDecoder: longer request lines close the connection
ROW_SECONDS = 3600  # one HBase row per series and hour
SECOND_MASK = 0xFFFFFFFF00000000  # a timestamp with these bits set is in milliseconds
MAX_MS_TIMESTAMP = 9999999999999
SUGGEST_DEFAULT = 25
JSON_TYPE = "application/json; charset=UTF-8"
UNIT_MS = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000,
           "w": 7 * 86400000, "n": 30 * 86400000, "y": 365 * 86400000}
UID_KINDS = {"metric": "metrics", "metrics": "metrics", "tagk": "tagk", "tagv": "tagv"}
FILTER_TYPES = ("literal_or", "iliteral_or", "not_literal_or", "not_iliteral_or", "wildcard", "iwildcard", "regexp")
FILL_POLICIES = ("none", "nan", "null", "zero", "scalar")
# Real aggregators this emulator does not compute: refused instead of answered wrongly.
UNEMULATED_AGGREGATORS = {"dev", "diff", "mult", "median", "squareSum", "p50", "p75", "p90", "p95", "p99", "p999",
                          "ep50r3", "ep50r7", "ep75r3", "ep75r7", "ep90r3", "ep90r7", "ep95r3", "ep95r7",
                          "ep99r3", "ep99r7", "ep999r3", "ep999r7"}
NOT_FOUND_PAGE = (b"<!DOCTYPE html><html><head><title>Page Not Found</title></head><body>"
                  b"<h1>Page Not Found</h1>The requested URL was not found on this server.</body></html>")
_LONG = re.compile(r"[+-]?[0-9]+\Z")
_DOUBLE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fFdD]?\Z")
_DATE_FORMATS = {10: ("%Y/%m/%d", "%Y/%m/%d"), 16: ("%Y/%m/%d-%H:%M", "%Y/%m/%d %H:%M"),
                 19: ("%Y/%m/%d-%H:%M:%S", "%Y/%m/%d %H:%M:%S")}


# ------------------------------------------------------------------------------------------------
# Errors: the one place that shapes an error body.

class ApiError(Exception):
    """An answer other than success: HTTP status, message and optional details."""

    def __init__(self, status, message, details=None, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
        self.headers = headers or {}


def error_body(status, message, details=None):
    """The TSD's error document, ``{"error": {"code", "message", "details"?}}``, as bytes."""
    error = {"code": status, "message": message}
    if details:
        error["details"] = details
    return dumps({"error": error})


def no_such_name(kind, name):
    return ApiError(400, "No such name for '%s': '%s'" % (kind, name), "No such name for '%s': '%s'" % (kind, name))


def dumps(obj):
    """Compact UTF-8 JSON, as Jackson writes it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class _Num(str):
    """A JSON number kept as its text: Jackson turns numbers into strings verbatim (big ints too)."""

    __slots__ = ()


def load_json(text):
    return json.loads(text, parse_int=_Num, parse_float=_Num, parse_constant=_Num)


def _mapping_error(message):
    return ApiError(400, "Unable to parse the given JSON", message)


def _as_str(value, name):
    """A Java String field: scalars become their text, containers fail the whole request."""
    if value is None or isinstance(value, str):
        return None if value is None else str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    raise _mapping_error("Cannot deserialize instance of `java.lang.String` out of %s token (field %s)"
                         % ("START_OBJECT" if isinstance(value, dict) else "START_ARRAY", name))


def _as_bool(value, name):
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, _Num):
        return value not in ("0", "0.0")
    if isinstance(value, str) and value.lower() in ("true", "false", ""):
        return value.lower() == "true"
    raise _mapping_error("Cannot deserialize value of type `boolean` from %r (field %s)" % (value, name))


def _as_long(value, name):
    """A Java long field: numbers (floats truncated) and integer strings, null is 0."""
    if value is None or value == "":
        return 0
    if isinstance(value, _Num):
        try:
            return int(value) if _LONG.match(value) else int(float(value))
        except (ValueError, OverflowError):
            pass
    elif isinstance(value, str) and _LONG.match(value):
        return int(value)
    raise _mapping_error("Cannot deserialize value of type `long` from %r: not a valid Long value (field %s)" % (value, name))


# ------------------------------------------------------------------------------------------------
# Time: the one parser for start/end (net.opentsdb.utils.DateTime).

def parse_duration(text):
    """``<n><unit>`` in ms, units ms s m h d w n(30d) y(365d)."""
    digits = len(text) - len(text.lstrip("0123456789"))
    if digits == len(text):
        raise ApiError(400, "Invalid duration, must have an integer and unit: " + text)
    if digits == 0:
        raise ApiError(400, "Invalid duration (number): " + text)
    count = int(text[:digits])
    if count <= 0:
        raise ApiError(400, "Zero or negative duration: " + text)
    unit = text[digits:].lower()
    if unit not in UNIT_MS:
        raise ApiError(400, "Invalid duration (suffix): " + text)
    return count * UNIT_MS[unit]


def parse_time(value, now_ms=None, tz=None):
    """A query time in ms: ``now``, ``<n><unit>-ago``, ``yyyy/MM/dd[-HH:mm[:ss]]``, seconds (up to
    10 digits), milliseconds (more digits) or ``<seconds>.<ms>``; numbers are read as their text."""
    text = str(value)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if text.lower() == "now":
        return now_ms
    if text.lower().endswith("-ago"):
        return now_ms - parse_duration(text[:-4])
    if "/" in text or ":" in text:
        return _parse_date(text, tz)
    if "." in text:
        match = re.fullmatch(r"([0-9]{10})\.([0-9]{1,3})", text)
        if not match:
            raise ApiError(400, "Invalid time: %s. Millisecond timestamps must be in the format <seconds>.<ms> "
                                "where the milliseconds are limited to 3 digits" % text)
        return int(match.group(1)) * 1000 + int(match.group(2).ljust(3, "0"))
    if not _LONG.match(text):
        raise ApiError(400, "Invalid time: %s. For input string: \"%s\"" % (text, text))
    stamp = int(text)
    if stamp < 0:
        raise ApiError(400, "Invalid time: %s. Negative timestamps are not supported." % text)
    # The TSD's own rule: up to 10 digits are seconds (good until the year 2286).
    return stamp * 1000 if len(text) <= 10 else stamp


def _parse_date(text, tz):
    formats = _DATE_FORMATS.get(len(text))
    if formats is None:
        raise ApiError(400, "Invalid absolute date: " + text)
    try:
        parsed = datetime.strptime(text, formats[0] if "-" in text else formats[1])
    except ValueError:
        raise ApiError(400, "Invalid date: %s. Unparseable date: \"%s\"" % (text, text))
    return int(parsed.replace(tzinfo=_zone(tz)).timestamp() * 1000)


def _zone(name):
    if name:
        try:
            return ZoneInfo(name)
        except (ValueError, KeyError, OSError):
            pass  # Java's TimeZone.getTimeZone falls back to GMT for unknown names
    return timezone.utc


# ------------------------------------------------------------------------------------------------
# Storage

class _Series:
    """One time series: ts_ms -> value, with the sorted view queries need built lazily."""

    __slots__ = ("metric", "tags", "key", "tsuid", "values", "cache")

    def __init__(self, metric, tags, key, tsuid):
        self.metric = metric
        self.tags = tags
        self.key = key
        self.tsuid = tsuid
        self.values = {}
        self.cache = None

    def sorted_points(self):
        if self.cache is None:
            stamps = sorted(self.values)
            self.cache = (stamps, [self.values[stamp] for stamp in stamps])
        return self.cache


class _Store:
    """Series and UID tables behind one lock."""

    def __init__(self):
        self.lock = threading.RLock()
        self.series = {}
        self.by_metric = {}
        self.uids = {kind: {} for kind in ("metrics", "tagk", "tagv")}

    def reset(self):
        with self.lock:
            self.series.clear()
            self.by_metric.clear()
            for table in self.uids.values():
                table.clear()

    def _uid(self, kind, name):
        table = self.uids[kind]
        uid = table.get(name)
        if uid is None:
            uid = table[name] = len(table) + 1
        return uid

    def _new_series(self, metric, tags, key):
        # A TSUID orders series as the TSD's row keys do: metric UID, then (tagk, tagv) UID pairs.
        pairs = tuple(sorted((self._uid("tagk", k), self._uid("tagv", v)) for k, v in tags.items()))
        tsuid = (self._uid("metrics", metric), pairs)
        series = self.series[key] = _Series(metric, dict(tags), key, tsuid)
        self.by_metric.setdefault(metric, []).append(series)
        return series

    def add(self, points):
        """Store (metric, tags, ts_ms, value) tuples; the same instant again overwrites."""
        added = 0
        find = self.series.get  # the loop runs a million times in some tests: keep it lean
        with self.lock:
            for metric, tags, stamp, value in points:
                key = (metric, frozenset(tags.items()))
                series = find(key) or self._new_series(metric, tags, key)
                series.values[stamp] = value if value.__class__ is not bool else int(value)
                series.cache = None
                added += 1
        return added

    def has_name(self, kind, name):
        return name in self.uids[kind]

    def suggest(self, kind, prefix, limit):
        with self.lock:
            names = sorted(name for name in self.uids[kind] if name.startswith(prefix))
        return names[:limit]

    def select(self, metric, window, rng, predicate):
        """Series of `metric` accepted by `predicate` that have a point in the scanned `window`
        (half-open, ms), each with its points inside the inclusive `rng`."""
        found = []
        with self.lock:
            for series in self.by_metric.get(metric, ()):
                if not predicate(series.tags):
                    continue
                stamps, values = series.sorted_points()
                low, high = bisect.bisect_left(stamps, window[0]), bisect.bisect_left(stamps, window[1])
                if low == high:
                    continue
                first, last = bisect.bisect_left(stamps, rng[0], low, high), bisect.bisect_right(stamps, rng[1], low, high)
                found.append((series, stamps[first:last], values[first:last]))
        return found

    def points(self):
        with self.lock:
            return {(s.metric, s.key[1], stamp, value) for s in self.series.values() for stamp, value in s.values.items()}

    def count(self):
        with self.lock:
            return sum(len(series.values) for series in self.series.values())

    def tsuid_hex(self, tsuid):
        metric, pairs = tsuid
        return "%06X" % metric + "".join("%06X%06X" % pair for pair in pairs)


# ------------------------------------------------------------------------------------------------
# /api/put

class _PointError(Exception):
    """One data point refused; the others of the request go on."""


def _java_map(tags):
    return "{" + ", ".join("%s=%s" % item for item in tags.items()) + "}"


def parse_put_body(body):
    """The list of incoming points (dicts of coerced fields); a bad document fails the request."""
    text = body.decode("utf-8", "replace").strip()
    if not text:
        raise ApiError(400, "Missing request content")
    if text[0] not in "{[":
        raise ApiError(400, "The JSON must start as an object or an array")
    try:
        document = load_json(text)
    except ValueError as exc:
        raise _mapping_error(str(exc))
    items = [document] if isinstance(document, dict) else document
    points = [_incoming_point(item) for item in items]
    if not points:
        raise ApiError(400, "No datapoints found in content")
    return points


def _incoming_point(item):
    """IncomingDataPoint as Jackson fills it (unknown fields ignored)."""
    if not isinstance(item, dict):
        raise _mapping_error("Cannot deserialize instance of `net.opentsdb.core.IncomingDataPoint` from %r" % (item,))
    tags = item.get("tags")
    if tags is not None and not isinstance(tags, dict):
        raise _mapping_error("Cannot deserialize instance of `java.util.HashMap` out of %s token"
                             % ("START_ARRAY" if isinstance(tags, list) else "VALUE_STRING"))
    return {
        "metric": _as_str(item.get("metric"), "metric"),
        "timestamp": _as_long(item.get("timestamp"), "timestamp"),
        "value": _as_str(item.get("value"), "value"),
        "tags": None if tags is None else {str(k): _as_str(v, "tags") for k, v in tags.items()},
    }


def _echo(point):
    """The data point as the details answer shows it (null fields left out)."""
    return {k: v for k, v in point.items() if v is not None}


def check_name(what, name):
    """Tags.validateString: a-z A-Z 0-9 - _ . / and Unicode letters (of the BMP, as Java chars)."""
    if name is None:
        raise _PointError("Invalid %s: null" % what)
    if not name:
        raise _PointError("Invalid %s: empty string" % what)
    for char in name:
        if not (char.isascii() and (char.isalnum() or char in "-_./") or char.isalpha() and ord(char) <= 0xFFFF):
            raise _PointError("Invalid %s (\"%s\"): illegal character: %s" % (what, name, char))


def parse_value(text):
    """The stored number: int64 unless the text has '.', 'e' or 'E' (Tags.looksLikeInteger)."""
    if not any(char in text for char in ".eE"):
        digits = text.lstrip("+-")
        if not _LONG.match(text) or len(digits) > 19 or not -2 ** 63 <= int(text) < 2 ** 63:
            raise _PointError("Unable to parse value to a number")
        return int(text)
    stripped = text.strip()
    if not _DOUBLE.match(stripped):
        raise _PointError("Unable to parse value to a number")
    # A float that fits in 4 bytes is stored so, but reads back as the same double.
    return float(stripped.rstrip("fFdD"))


def validate_point(point, tags_limit=MAX_TAGS):
    """(metric, tags, ts_ms, value) of a valid point, in the order the TSD checks; _PointError else."""
    metric, stamp, text, tags = point["metric"], point["timestamp"], point["value"], point["tags"]
    if not metric:
        raise _PointError("Metric name was empty")
    if stamp <= 0:
        raise _PointError("Invalid timestamp")
    if not text:
        raise _PointError("Empty value")
    if not tags:
        raise _PointError("Missing tags")
    value = parse_value(text)
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        raise _PointError("value is NaN or Infinite: %s for metric=%s timestamp=%d" % ("Infinity" if value > 0 else "-Infinity", metric, stamp))
    if stamp & SECOND_MASK and stamp > MAX_MS_TIMESTAMP:
        raise _PointError("bad timestamp=%d when trying to add value=%s to metric=%s, tags=%s" % (stamp, text, metric, _java_map(tags)))
    if len(tags) > tags_limit:
        raise _PointError("Too many tags: %d maximum allowed: %d, tags: %s" % (len(tags), tags_limit, _java_map(tags)))
    check_name("metric name", metric)
    for tagk, tagv in tags.items():
        check_name("tag name", tagk)
        check_name("tag value", tagv)
    return metric, tags, stamp if stamp & SECOND_MASK else stamp * 1000, value


# ------------------------------------------------------------------------------------------------
# /api/query: parsing

@dataclass
class _Filter:
    tagk: str
    kind: str
    expr: str
    group_by: bool

    def __post_init__(self):
        if self.kind not in FILTER_TYPES:
            raise ApiError(400, "Could not find a tag value filter of the type: " + self.kind)
        if not self.tagk:
            raise ApiError(400, "Tagk cannot be null or empty")
        if not self.expr:
            raise ApiError(400, "Filter cannot be null or empty")
        if self.kind == "regexp":
            try:
                re.compile(self.expr)
            except re.error as exc:
                raise ApiError(400, "Invalid regular expression %s: %s" % (self.expr, exc))

    @property
    def literals(self):
        return self.expr.split("|")

    def matches(self, value):
        kind = self.kind
        if kind.endswith("literal_or"):
            insensitive = "iliteral" in kind
            found = (value.lower() if insensitive else value) in {(v.lower() if insensitive else v) for v in self.literals}
            return found != kind.startswith("not_")
        if kind == "regexp":
            return re.search(self.expr, value) is not None
        pattern = ".*".join(re.escape(part) for part in self.expr.split("*"))
        return re.fullmatch(pattern, value, re.IGNORECASE if kind == "iwildcard" else 0) is not None


@dataclass
class _SubQuery:
    aggregator: str = None
    metric: str = None
    filters: list = field(default_factory=list)
    downsample: str = None
    rate: bool = False
    explicit_tags: bool = False


@dataclass
class _Query:
    start: str = None
    end: str = None
    tz: str = None
    ms_resolution: bool = False
    show_tsuids: bool = False
    subs: list = field(default_factory=list)

    def describe(self):
        return "TSQuery(start_time=%s, end_time=%s, subQueries[%s], show_tsuids=%s, ms_resolution=%s)" % (
            self.start, self.end, ", ".join(str(sub) for sub in self.subs), self.show_tsuids, self.ms_resolution)


def filter_from_spec(tagk, spec, group_by):
    """TagVFilter.getFilter: ``*``, ``type(expr)``, a glob with '*', else literal_or (``a|b``)."""
    if not spec:
        raise ApiError(400, "Filter cannot be null or empty")
    paren = spec.find("(")
    if paren >= 0:
        if not spec.endswith(")"):
            raise ApiError(400, "Filter must end with a ')': " + spec)
        return _Filter(tagk, spec[:paren].lower(), spec[paren + 1:-1], group_by)
    return _Filter(tagk, "wildcard" if "*" in spec else "literal_or", spec, group_by)


def _filter_from_pair(text, group_by, what):
    pair = text.split("=")
    if len(pair) != 2 or not pair[0] or not pair[1]:
        raise ApiError(400, "When parsing %s '%s': invalid tag: %s" % (what, text, text))
    return filter_from_spec(pair[0], pair[1], group_by)


def parse_metric_and_filters(text):
    """Tags.parseWithMetricAndFilters: ``metric{k=v,...}{k=filter,...}`` (first braces group by)."""
    curly = text.find("{")
    if curly < 0:
        if not text:
            raise ApiError(400, "Metric string was empty")
        return text, []
    if not text.endswith("}"):
        raise ApiError(400, "Missing '}' at the end of: " + text)
    if curly == len(text) - 2:
        if text.startswith("{"):
            raise ApiError(400, "Missing metric and tags: " + text)
        return text[:-2], []
    close = text.find("}")
    filters = []
    if close != len(text) - 1:
        for spec in text[text.rfind("{") + 1:-1].split(","):
            if not spec:
                break
            filters.append(_filter_from_pair(spec, False, "filter"))
    for spec in text[curly + 1:close].split(","):
        if not spec and close != len(text) - 1:
            break
        filters.append(_filter_from_pair(spec, True, "tag"))
    return (None if text.startswith("{") else text[:curly]), filters


def parse_m(spec):
    """One GET ``m=agg:[rate:][downsample:]metric{tags}``, split on ':' like QueryRpc does."""
    if not spec:
        raise ApiError(400, "The query string was empty")
    parts = spec.split(":")
    if not 2 <= len(parts) <= 5:
        raise ApiError(400, "Invalid parameter m=%s (%s :-separated parts)" % (spec, "not enough" if len(parts) < 2 else "too many"))
    sub = _SubQuery(aggregator=parts[0])
    for part in parts[1:-1]:
        if part.lower().startswith("rate"):
            sub.rate = True
        elif part[:1].isdigit():
            sub.downsample = part
        elif part.lower().startswith("explicit_tags"):
            sub.explicit_tags = True
    sub.metric, sub.filters = parse_metric_and_filters(parts[-1])
    return sub


def parse_get_query(params):
    start = _param(params, "start")
    if not start:
        raise ApiError(400, "Missing parameter <code>start</code>")
    if "tsuid" in params:
        raise ApiError(400, "tsuid queries are not emulated")
    query = _Query(start=start, end=_param(params, "end"), tz=_param(params, "tz"),
                   ms_resolution="ms" in params, show_tsuids="show_tsuids" in params)
    query.subs = [parse_m(spec) for spec in params.get("m", [])]
    if not query.subs:
        raise ApiError(400, "Missing sub queries")
    return query


def parse_post_query(body):
    text = body.decode("utf-8", "replace").strip()
    if not text:
        raise ApiError(400, "Missing message content", "Supply valid JSON formatted data in the body of your request")
    try:
        document = load_json(text)
    except ValueError as exc:
        raise _mapping_error(str(exc))
    if not isinstance(document, dict):
        raise _mapping_error("Cannot deserialize instance of `net.opentsdb.core.TSQuery` from %r" % (document,))
    query = _Query(start=_as_str(document.get("start"), "start"), end=_as_str(document.get("end"), "end"),
                   tz=_as_str(document.get("timezone"), "timezone"),
                   ms_resolution=_as_bool(document.get("msResolution"), "msResolution"),
                   show_tsuids=_as_bool(document.get("showTSUIDs"), "showTSUIDs"))
    for item in document.get("queries") or ():
        sub = _post_sub_query(item)
        if sub not in query.subs:  # the TSD drops duplicate sub queries
            query.subs.append(sub)
    return query


def _post_sub_query(item):
    if not isinstance(item, dict):
        raise _mapping_error("Cannot deserialize instance of `net.opentsdb.core.TSSubQuery` from %r" % (item,))
    if item.get("tsuids"):
        raise ApiError(400, "tsuid queries are not emulated")
    sub = _SubQuery(aggregator=_as_str(item.get("aggregator"), "aggregator"), metric=_as_str(item.get("metric"), "metric"),
                    downsample=_as_str(item.get("downsample"), "downsample"), rate=_as_bool(item.get("rate"), "rate"),
                    explicit_tags=_as_bool(item.get("explicitTags"), "explicitTags"))
    for spec in item.get("filters") or ():
        if not isinstance(spec, dict):
            raise _mapping_error("Cannot deserialize instance of `net.opentsdb.query.filter.TagVFilter` from %r" % (spec,))
        sub.filters.append(_Filter(_as_str(spec.get("tagk"), "tagk") or "", (_as_str(spec.get("type"), "type") or "").lower(),
                                   _as_str(spec.get("filter"), "filter") or "", _as_bool(spec.get("groupBy"), "groupBy")))
    tags = item.get("tags") or {}
    if not isinstance(tags, dict):
        raise _mapping_error("Cannot deserialize instance of `java.util.HashMap` (field tags)")
    for tagk, spec in tags.items():  # the legacy tags map: every tag groups
        sub.filters.append(filter_from_spec(str(tagk), _as_str(spec, "tags"), True))
    return sub


def _param(params, name):
    values = params.get(name)
    return values[0] if values else None


# ------------------------------------------------------------------------------------------------
# /api/query: aggregation and downsampling

def _agg_sum(values):
    return sum(values)


def _agg_avg(values):
    total = sum(values)
    if isinstance(total, int):  # all integers: Java long division, truncated toward zero
        quotient = abs(total) // len(values)
        return quotient if total >= 0 else -quotient
    return total / len(values)


def _agg_min(values):
    return min(values)


def _agg_max(values):
    return max(values)


def _agg_count(values):
    return len(values)


def _agg_first(values):
    return values[0]


def _agg_last(values):
    return values[-1]


AGGREGATORS = {"sum": _agg_sum, "zimsum": _agg_sum, "avg": _agg_avg, "min": _agg_min, "mimmin": _agg_min,
               "max": _agg_max, "mimmax": _agg_max, "count": _agg_count, "first": _agg_first, "last": _agg_last,
               "none": None}


def aggregate(function, values):
    result = function(values)
    if function is not _agg_count and not all(isinstance(value, int) for value in values):
        return float(result)  # a double among the values makes the result a double
    return result


def _aggregator(name):
    if name in UNEMULATED_AGGREGATORS:
        raise ApiError(400, "Aggregator '%s' is not emulated" % name)
    if name not in AGGREGATORS:
        raise ApiError(400, "No such aggregation function: " + name)
    return AGGREGATORS[name]


@dataclass
class _Downsample:
    interval: int  # ms, 0 for "all"
    function: object
    fill: str


def parse_downsample(spec):
    """DownsamplingSpecification: ``<interval>-<aggregator>[-<fill policy>]``, interval ``0all`` too."""
    parts = spec.split("-")
    if len(parts) < 2:
        raise ApiError(400, "Invalid downsampling specifier '%s': must provide at least interval and function" % spec)
    if len(parts) > 3:
        raise ApiError(400, "Invalid downsampling specifier '%s': must consist of interval, function, and optional fill policy" % spec)
    if "all" in parts[0]:
        interval = 0
    else:
        interval = parse_duration(parts[0][:-1] if parts[0].endswith("c") else parts[0])
    if parts[1] == "none":
        raise ApiError(400, "cannot use the NONE aggregator for downsampling")
    if parts[1] not in AGGREGATORS and parts[1] not in UNEMULATED_AGGREGATORS:
        raise ApiError(400, "No such downsampling function: " + parts[1])
    fill = parts[2] if len(parts) == 3 else "none"
    if fill not in FILL_POLICIES:
        raise ApiError(400, "No such fill policy: '%s': must be one of: %s" % (fill, " ".join(FILL_POLICIES)))
    return _Downsample(interval, _aggregator(parts[1]), fill)


def downsample(stamps, values, spec, start, end):
    """Buckets aligned on the epoch, or one ("all") holding [start, end); values as doubles."""
    buckets = {}
    for stamp, value in zip(stamps, values):
        if not spec.interval and stamp >= end:
            break
        base = stamp - stamp % spec.interval if spec.interval else start
        buckets.setdefault(base, []).append(value)
    keys = sorted(buckets)
    return keys, [float(aggregate(spec.function, buckets[key])) for key in keys]


def to_rate(stamps, values):
    """Per second change between consecutive points, the first point dropped."""
    rates = [(values[i] - values[i - 1]) / ((stamps[i] - stamps[i - 1]) / 1000.0) for i in range(1, len(stamps))]
    return stamps[1:], rates


def merge(function, series_points):
    """Values present at each timestamp, aggregated (no interpolation)."""
    by_stamp = {}
    for stamps, values in series_points:
        for stamp, value in zip(stamps, values):
            by_stamp.setdefault(stamp, []).append(value)
    keys = sorted(by_stamp)
    return keys, [aggregate(function, by_stamp[key]) for key in keys]


def scan_window(start, end, interval):
    """[first, last) ms of the hour rows the TSD scans (TsdbQuery.getScanStart/EndTimeSeconds)."""
    first, last = start // 1000, end // 1000
    if interval:
        first -= (first * 1000 % interval) // 1000
        last += (interval - last * 1000 % interval) // 1000
        last += (ROW_SECONDS - last % ROW_SECONDS) % ROW_SECONDS
    else:
        last += ROW_SECONDS - last % ROW_SECONDS
    return max(first - first % ROW_SECONDS, 0) * 1000, last * 1000


# ------------------------------------------------------------------------------------------------
# The API

@dataclass
class _Request:
    method: str
    route: str
    params: dict
    body: bytes
    subpath: str = ""


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: dict = field(default_factory=dict)


class _Api:
    """The endpoints, independent of the HTTP plumbing."""

    def __init__(self, store, auto_create_metrics=True, now=None):
        self.store = store
        self.auto_create_metrics = auto_create_metrics
        self.now = now or (lambda: int(time.time() * 1000))
        self.answer_points = []  # data points in each /api/query answer, in order
        self.routes = {
            "/api/put": (("POST",), self.put),
            "/api/query": (("GET", "POST"), self.query),
            "/api/suggest": (("GET", "POST"), self.suggest),
            "/api/version": (("GET", "POST"), self.version),
        }

    def handle(self, request):
        if request.route != "/api" and not request.route.startswith("/api/"):
            return _Response(404, NOT_FOUND_PAGE, "text/html; charset=UTF-8")
        try:
            if request.route not in self.routes:
                raise ApiError(404, "Endpoint not found")
            methods, handler = self.routes[request.route]
            if request.method not in methods:
                raise ApiError(405, "Method not allowed", "The HTTP method [%s] is not permitted for this endpoint" % request.method)
            return handler(request)
        except ApiError as err:
            return _Response(err.status, error_body(err.status, err.message, err.details), headers=err.headers)

    # --- /api/put
    def put(self, request):
        points = parse_put_body(request.body)
        valid, errors = [], []
        for point in points:
            try:
                valid.append(self._accept(point))
            except _PointError as err:
                errors.append({"datapoint": _echo(point), "error": str(err)})
        self.store.add(valid)  # the good points are kept even when others failed
        failed = len(errors)
        if "details" not in request.params and "summary" not in request.params:
            if failed:
                raise ApiError(400, "One or more data points had errors", "Please see the TSD logs or append \"details\" to the put request")
            return _Response(204)
        answer = {"success": len(valid), "failed": failed}
        if "details" in request.params:
            answer["errors"] = errors
        return _Response(400 if failed else 200, dumps(answer))

    def _accept(self, point):
        accepted = validate_point(point)
        if not self.auto_create_metrics and not self.store.has_name("metrics", accepted[0]):
            raise _PointError("Unknown metric")
        return accepted

    # --- /api/suggest
    def suggest(self, request):
        if request.method == "POST":
            document = self._json_object(request.body)
            kind = _as_str(document.get("type"), "type")
            if not kind:
                raise ApiError(400, "Missing 'type' parameter")
            prefix, limit = _as_str(document.get("q"), "q") or "", _as_str(document.get("max"), "max")
        else:
            kind = _param(request.params, "type")
            if not kind:
                raise ApiError(400, "Missing parameter <code>type</code>")
            prefix, limit = _param(request.params, "q") or "", _param(request.params, "max")
        count = 0
        if limit:
            if not _LONG.match(limit) or not -2 ** 31 <= int(limit) < 2 ** 31:
                raise ApiError(400, "Unable to parse 'max' as a number")
            count = int(limit)
        if kind.lower() not in UID_KINDS:
            raise ApiError(400, "Invalid 'type' parameter:" + kind)
        names = self.store.suggest(UID_KINDS[kind.lower()], prefix, count if count > 0 else SUGGEST_DEFAULT)
        return _Response(200, dumps(names))

    @staticmethod
    def _json_object(body):
        try:
            document = load_json(body.decode("utf-8", "replace"))
        except ValueError as exc:
            raise _mapping_error(str(exc))
        if not isinstance(document, dict):
            raise _mapping_error("Cannot deserialize instance of `java.util.HashMap` from %r" % (document,))
        return document

    # --- /api/version
    def version(self, request):
        return _Response(200, dumps(VERSION))

    # --- /api/query
    def query(self, request):
        if request.subpath in ("last", "exp", "gexp"):
            raise ApiError(400, "/api/query/%s is not emulated" % request.subpath)
        query = parse_post_query(request.body) if request.method == "POST" else parse_get_query(request.params)
        start, end, plans = self._validate(query)
        results = []
        for sub, plan in zip(query.subs, plans):
            results.extend(self._run(sub, plan, start, end))
        self.answer_points.append(sum(len(result["points"][0]) for result in results))
        return _Response(200, self._serialize(results, query))

    def _validate(self, query):
        """TSQuery.validateAndSetQuery: times, then each sub query's aggregator, metric, downsampler."""
        try:
            if not query.start:
                raise ApiError(400, "Missing start time")
            now = self.now()
            start = parse_time(query.start, now, query.tz)
            end = parse_time(query.end, now, query.tz) if query.end else now
            if end <= start:
                raise ApiError(400, "End time [%d] must be greater than the start time [%d]" % (end, start))
            if not query.subs:
                raise ApiError(400, "Missing queries")
            return start, end, [self._plan(sub) for sub in query.subs]
        except ApiError as err:
            raise ApiError(400, err.message, query.describe())

    @staticmethod
    def _plan(sub):
        if not sub.aggregator:
            raise ApiError(400, "Missing the aggregation function")
        function = _aggregator(sub.aggregator)
        if not sub.metric:
            raise ApiError(400, "Missing the metric or tsuids, provide at least one")
        return function, parse_downsample(sub.downsample) if sub.downsample else None

    def _resolve(self, sub):
        """UID look-ups the TSD makes before scanning: metric, filter tag keys, literal values."""
        if not self.store.has_name("metrics", sub.metric):
            raise no_such_name("metrics", sub.metric)
        for spec in sub.filters:
            if not self.store.has_name("tagk", spec.tagk):
                raise no_such_name("tagk", spec.tagk)
            if spec.kind == "literal_or":
                for literal in spec.literals:
                    if not self.store.has_name("tagv", literal):
                        raise no_such_name("tagv", literal)

    def _run(self, sub, plan, start, end):
        self._resolve(sub)
        function, sampling = plan
        filters, keys = sub.filters, {spec.tagk for spec in sub.filters}

        def accepts(tags):
            if sub.explicit_tags and set(tags) != keys:
                return False
            return all(spec.tagk in tags and spec.matches(tags[spec.tagk]) for spec in filters)

        window = scan_window(start, end, sampling.interval if sampling else 0)
        found = self.store.select(sub.metric, window, (start, end), accepts)
        found.sort(key=lambda item: item[0].tsuid)
        prepared = [(series, self._prepare(stamps, values, sub, sampling, start, end)) for series, stamps, values in found]
        if function is None:  # none: every series raw, no grouping
            return [self._result(sub.metric, [series], points) for series, points in prepared]
        return self._grouped(sub, function, prepared)

    @staticmethod
    def _prepare(stamps, values, sub, sampling, start, end):
        if sampling:
            stamps, values = downsample(stamps, values, sampling, start, end)
            # Buckets that begin before start (a partial first interval) are not answered.
            kept = [i for i, stamp in enumerate(stamps) if start <= stamp <= end]
            stamps, values = [stamps[i] for i in kept], [values[i] for i in kept]
        if sub.rate:
            stamps, values = to_rate(stamps, values)
        return stamps, values

    def _grouped(self, sub, function, prepared):
        group_keys = sorted({spec.tagk for spec in sub.filters if spec.group_by})
        groups = {}
        for series, points in prepared:
            key = tuple(self.store.uids["tagv"][series.tags[tagk]] for tagk in group_keys)
            groups.setdefault(key, []).append((series, points))
        results = []
        for key in sorted(groups):
            members = groups[key]
            points = merge(function, [points for series, points in members])
            results.append(self._result(sub.metric, [series for series, points in members], points))
        return results

    @staticmethod
    def _result(metric, members, points):
        common = dict(members[0].tags)
        for series in members[1:]:
            common = {k: v for k, v in common.items() if series.tags.get(k) == v}
        aggregated = sorted({k for series in members for k in series.tags} - set(common))
        return {"metric": metric, "tags": common, "aggregateTags": aggregated, "members": members, "points": points}

    def _serialize(self, results, query):
        """The query answer, written by hand: dps keep ints exact and may repeat a second."""
        chunks = []
        for result in results:
            head = {"metric": result["metric"], "tags": result["tags"], "aggregateTags": result["aggregateTags"]}
            if query.show_tsuids:
                head["tsuids"] = [self.store.tsuid_hex(series.tsuid) for series in result["members"]]
            stamps, values = result["points"]
            divisor = 1 if query.ms_resolution else 1000
            dps = ",".join('"%d":%s' % (stamp // divisor, _number(value)) for stamp, value in zip(stamps, values))
            chunks.append(dumps(head)[:-1] + b',"dps":{' + dps.encode("ascii") + b"}}")
        return b"[" + b",".join(chunks) + b"]"


def _number(value):
    if isinstance(value, float):
        # Jackson quotes non-finite doubles (QUOTE_NON_NUMERIC_NUMBERS); only add_points can store them.
        return repr(value) if math.isfinite(value) else '"%s"' % ("NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity")
    return str(int(value))


# ------------------------------------------------------------------------------------------------
# Fault injection

@dataclass
class _Fault:
    path: str
    skip: int
    remaining: int
    status: int = None
    delay: float = None
    drop: bool = False
    body: bytes = None
    headers: dict = field(default_factory=dict)
    process: bool = False

    def response(self):
        body = self.body
        if body is None:
            body = error_body(self.status, http.HTTPStatus(self.status).phrase, "Injected by the test (OpenTSDB emulator)")
        return _Response(self.status, body, headers=self.headers)


class _Faults:
    """Pending faults; every matching request advances their counters."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pending = []

    def add(self, fault):
        with self.lock:
            self.pending.append(fault)

    def clear(self):
        with self.lock:
            self.pending.clear()

    def take(self, route):
        """The fault for this request, if one is due: the earliest injected of those due fires,
        the others due wait for the next matching request."""
        chosen = None
        with self.lock:
            for fault in list(self.pending):
                if fault.path not in ("*", route):
                    continue
                if fault.skip:
                    fault.skip -= 1
                elif chosen is None:
                    chosen = fault
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self.pending.remove(fault)
        return chosen


def split_route(path):
    """The endpoint a path reaches, as the TSD routes it (``/api/[v1/]name[/sub]`` -> ``/api/name``),
    and the lower-cased ``sub`` part."""
    parts = [part for part in path.split("/") if part]
    if not parts or parts[0].lower() != "api":
        return path or "/", ""
    if len(parts) > 1 and re.fullmatch(r"[vV][0-9]+", parts[1]):
        del parts[1]
    if len(parts) < 2:
        return "/api", ""
    return "/api/" + parts[1].lower(), "/".join(parts[2:]).lower()


def route_of(path):
    return split_route(path)[0]


# ------------------------------------------------------------------------------------------------
# HTTP plumbing

class _Refused(Exception):
    """The connection is closed without an answer."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, every answer has a Content-Length
    server_version = "OpenTSDB-emulator"
    timeout = 120  # idle keep-alive connections end eventually

    def do_GET(self):
        self._serve()

    def do_POST(self):
        self._serve()

    def do_PUT(self):
        self._serve()

    def do_DELETE(self):
        self._serve()

    def log_message(self, format, *args):
        pass  # quiet: tests read answers, not logs

    def handle_expect_100(self):
        # netty answers "100 Continue" only through its chunk aggregator (enable_chunked=true).
        if self.server.emulator.enable_chunked:
            return super().handle_expect_100()
        return True

    def _serve(self):
        emulator = self.server.emulator
        url = urlsplit(self.path)
        route, subpath = split_route(url.path)
        emulator.count_request(route)
        try:
            if len(self.requestline) > NETTY_MAX_LINE:
                raise _Refused()  # netty: TooLongFrameException, the TSD closes the channel
            body = self._read_body(emulator)
        except ApiError as err:
            self._send(_Response(err.status, error_body(err.status, err.message, err.details)))
            return
        except _Refused:
            self._drop()
            return
        fault = emulator.faults.take(route)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and (fault.status or fault.drop) and not fault.process:
            self._fail(fault)
            return
        response = self._answer(emulator, _Request(self.command, route, parse_qs(url.query, keep_blank_values=True), body, subpath))
        if fault is not None and (fault.status or fault.drop):
            self._fail(fault)
            return
        self._send(response)

    @staticmethod
    def _answer(emulator, request):
        try:
            return emulator.api.handle(request)
        except Exception as exc:  # a bug of the emulator: answer as the TSD does (500) and say it loudly
            traceback.print_exc(file=sys.stderr)
            return _Response(500, error_body(500, str(exc) or type(exc).__name__))

    def _read_body(self, emulator):
        """The request body, decompressed; refusals of chunked bodies as the TSD's netty pipeline."""
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        length = self.headers.get("Content-Length") or "0"
        if not chunked and not length.isdigit():
            self.close_connection = True  # the body's end is unknown
            raise ApiError(400, "Invalid Content-Length: " + length)
        length = 0 if chunked else int(length)
        arrives_chunked = chunked or length > NETTY_MAX_CHUNK or self.headers.get("Expect", "").lower() == "100-continue"
        raw = self._read_chunked() if chunked else self.rfile.read(length)
        if arrives_chunked:
            if not emulator.enable_chunked:
                raise ApiError(400, "Chunked request not supported.")
            if len(raw) > emulator.max_chunk:
                raise _Refused()  # HttpChunkAggregator: "HTTP content length exceeded"
        return self._decode(raw)

    def _read_chunked(self):
        data = []
        while True:
            size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(1024).strip():
                    pass  # trailers
                return b"".join(data)
            data.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _decode(self, raw):
        encoding = self.headers.get("Content-Encoding", "").strip().lower()
        try:
            if encoding in ("gzip", "x-gzip"):
                return gzip.decompress(raw)
            if encoding in ("deflate", "x-deflate"):
                return zlib.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ApiError(400, "Unable to decompress the request content", str(exc))
        return raw

    def _fail(self, fault):
        if fault.drop:
            self._drop()
        else:
            self._send(fault.response())

    def _drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, response):
        body = response.body
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        if body and "gzip" in self.headers.get("Accept-Encoding", "").lower():
            body = gzip.compress(body, compresslevel=6)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        for name, value in response.headers.items():
            self.send_header(name, str(value))
        if self.close_connection:
            self.send_header("Connection", "close")
        # Head and body in one write, as netty sends them: two small writes would wait for a delayed ACK.
        self._headers_buffer.append(b"\r\n" + body)
        self.flush_headers()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, emulator):
        super().__init__(address, _Handler)
        self.emulator = emulator
        self.open = set()
        self.open_lock = threading.Lock()
        self.accepted = 0

    def get_request(self):
        conn, address = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as the TSD (tsd.network.tcp_no_delay)
        with self.open_lock:
            self.open.add(conn)
            self.accepted += 1
        return conn, address

    def close_request(self, request):
        with self.open_lock:
            self.open.discard(request)
        super().close_request(request)

    def close_connections(self):
        with self.open_lock:
            conns = list(self.open)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):
        # A client that went away (reset, timeout, closed socket) is no error of the emulator.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


# ------------------------------------------------------------------------------------------------
# The emulator

class OpenTSDBEmulator:
    """A threaded OpenTSDB 2.4 HTTP API on ``url``, with direct access to its data and faults.

    ``enable_chunked``/``max_chunk`` mirror tsd.http.request.enable_chunked/max_chunk, and
    ``auto_create_metrics`` tsd.core.auto_create_metrics (False: puts of unknown metrics fail).
    """

    def __init__(self, host="127.0.0.1", port=0, enable_chunked=False, max_chunk=4096, auto_create_metrics=True):
        self.host = host
        self.port = port
        self.enable_chunked = enable_chunked
        self.max_chunk = max_chunk
        self.requests = {}
        self.faults = _Faults()
        self._store = _Store()
        self.api = _Api(self._store, auto_create_metrics)
        self._count_lock = threading.Lock()
        self._server = None
        self._thread = None

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    @property
    def connections(self):
        """TCP connections accepted so far (keep-alive reuse shows as fewer connections)."""
        return self._server.accepted if self._server else 0

    def start(self):
        if self._server is None:
            self._server = _Server((self.host, self.port), self)
            self.port = self._server.server_address[1]
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="otsdb-emulator-%d" % self.port, daemon=True)
            self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def count_request(self, route):
        with self._count_lock:
            self.requests[route] = self.requests.get(route, 0) + 1

    def add_points(self, points):
        """Load (metric, tags dict, ts_ms, int|float value) tuples without HTTP nor checks."""
        return self._store.add(points)

    def points(self):
        """Every stored point as (metric, frozenset(tags.items()), ts_ms, value)."""
        return self._store.points()

    def count(self):
        return self._store.count()

    @property
    def answer_points(self):
        """How many data points each ``/api/query`` answer held, in order (a query's memory on the client)."""
        return self.api.answer_points

    def reset(self):
        """Forget data, names, request counts, answer sizes and faults."""
        self._store.reset()
        self.faults.clear()
        with self._count_lock:
            self.requests.clear()
            self.api.answer_points.clear()

    def inject(self, path, status=None, nth=1, times=1, delay=None, drop=False, body=None, headers=None, process=False):
        """Make the `nth` next request to `path` ('*' for any) and the `times` - 1 after it fail:
        answer `status` (with an OpenTSDB error body, or `body`, and `headers` such as Retry-After),
        and/or wait `delay` seconds first, or `drop` the connection without an answer. With
        `process` the request is carried out (points stored) before the failure is shown."""
        if status is None and delay is None and not drop:
            raise ValueError("inject needs status, delay or drop")
        if nth < 1 or times < 1:
            raise ValueError("nth and times count from 1")
        if isinstance(body, (dict, list)):
            body = dumps(body)
        elif isinstance(body, str):
            body = body.encode("utf-8")
        self.faults.add(_Fault(route_of(path) if path != "*" else "*", nth - 1, times, status, delay, drop, body, dict(headers or {}), process))

    def clear_faults(self):
        self.faults.clear()


def load_points(path):
    """Points ``(metric, tags, ms, value)`` of a file of put-format JSON lines (``timestamp`` in ms)."""
    points = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                item = json.loads(line)
                points.append((item["metric"], dict(item.get("tags") or {}), int(item["timestamp"]), item["value"]))
    return points


def write_points(path, points):
    """Write ``(metric, tags, ms, value)`` points (tags a dict or pairs) as put-format JSON lines."""
    with open(path, "w", encoding="utf-8") as handle:
        for metric, tags, stamp, value in points:
            handle.write(json.dumps({"metric": metric, "tags": dict(tags), "timestamp": stamp, "value": value},
                                    sort_keys=True) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description="OpenTSDB 2.4 HTTP API emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4242, help="0: any free port (see --url-file)")
    parser.add_argument("--enable-chunked", action="store_true", help="accept chunked bodies (tsd.http.request.enable_chunked)")
    parser.add_argument("--max-chunk", type=int, default=4096, help="tsd.http.request.max_chunk")
    parser.add_argument("--load", action="append", default=[], metavar="FILE",
                        help="load these points first: JSON lines in the put format, ms timestamps (repeatable)")
    parser.add_argument("--url-file", metavar="FILE", help="write the URL here once listening")
    parser.add_argument("--exit-after", type=float, metavar="SECONDS", help="stop after this many seconds")
    parser.add_argument("--dump", metavar="FILE", help="write every point held at exit, as --load reads them")
    args = parser.parse_args(argv)
    emulator = OpenTSDBEmulator(args.host, args.port, enable_chunked=args.enable_chunked, max_chunk=args.max_chunk)
    for path in args.load:
        emulator.add_points(load_points(path))
    signal.signal(signal.SIGTERM, lambda *_args: sys.exit(0))
    emulator.start()
    # Everything after the start inside the try: a Ctrl-C right after the URL is printed (a loaded machine may not
    # have reached the sleep yet) still stops it cleanly.
    try:
        if args.url_file:
            with open(args.url_file + ".tmp", "w", encoding="utf-8") as handle:
                handle.write(emulator.url + "\n")
            os.replace(args.url_file + ".tmp", args.url_file)
        print("OpenTSDB emulator on %s with %d points (Ctrl-C stops it)" % (emulator.url, emulator.count()),
              flush=True)
        time.sleep(args.exit_after if args.exit_after is not None else 10 ** 9)
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
        if args.dump:
            write_points(args.dump, emulator.points())
    return 0


if __name__ == "__main__":
    sys.exit(main())
