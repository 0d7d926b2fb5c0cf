# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Time-series points, time ranges and the on-disk point format shared by every point mover.

A point is ``(metric, tags, timestamp_ms, value)``: ``tags`` a tuple of sorted ``(key, value)``
pairs, the value an ``int`` (kept exact, int64 beyond 2^53 included) or a ``float``.

On disk, points travel in *batches*: ``<name>.jsonl.gz`` holds one OpenTSDB ``/api/put`` JSON object
per line (ms timestamps), gzip-compressed, possibly as several gzip members (one per dumped frame);
``<name>.json`` is its manifest (point count, first/last timestamp, per-metric counts, sha256 of the
data file). The manifest is written last, atomically: a batch without one is not finished. Because
the lines are already the put format, a restore builds request bodies by joining lines, without
parsing them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import gzip
import hashlib
import itertools
import json
import math
import os
import re
import time
import zlib
from datetime import datetime, timedelta, timezone

from ansible_collections.ferry.migrate.plugins.module_utils.core.archive import Gunzip
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import (
    FerryError,
    atomic_write_bytes,
    atomic_write_json,
    file_sha256,
    fsync_dir,
    has_infinity,
    read_json,
    sha256_of,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.staging import StagedFile, hidden_name

# Optional accelerators, same points either way: orjson writes the shortest text that reads back as the same
# double about 20x faster than repr, ISA-L's deflate (isal) writes standard gzip about 6x faster than zlib
# (docs/benchmarks.md).
try:
    import orjson
except ImportError:
    orjson = None
try:
    from isal import isal_zlib as deflate
except ImportError:
    deflate = zlib

DATA_SUFFIX = ".jsonl.gz"
MANIFEST_SUFFIX = ".json"
SERIES_SUFFIX = ".series.json.gz"  # per-series counts, beside the manifest (which stays small: read at every poll)
FORMAT_VERSION = 1

_RELATIVE = re.compile(r"^(\d+)(ms|s|m|h|d|w|n|y)-ago$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000, "w": 7 * 86400000,
            "n": 30 * 86400000, "y": 365 * 86400000}
_FORMATS = ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S")
BATCH_INTERVALS = {"hour": 3600000, "day": 86400000}
READ_LIMIT = 4 << 20  # most inflated bytes a batch reader holds at once (a frame's member is often larger)


# -- time --------------------------------------------------------------------------------------------
def parse_time(value, tz="UTC", now_ms=None):
    """A time as epoch milliseconds.

    Accepts epoch seconds (up to 10 digits) or milliseconds (11 to 13 digits), ``%Y-%m-%d``,
    ``%Y-%m-%dT%H:%M:%S``, ``%Y-%m-%d %H:%M:%S`` (in ``tz``: ``UTC``, ``+02:00`` or an IANA name)
    and OpenTSDB's relative ``<n><unit>-ago`` (units ms, s, m, h, d, w, n = 30 days, y = 365 days).
    """
    if isinstance(value, bool):
        raise FerryError("invalid time %r" % (value,))
    if isinstance(value, (int, float)):
        return _epoch_ms(int(value))
    text = str(value).strip()
    if text.isdigit():
        return _epoch_ms(int(text))
    match = _RELATIVE.match(text)
    if match:
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        return now_ms - int(match.group(1)) * _UNIT_MS[match.group(2)]
    for fmt in _FORMATS:
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return int(calendar.timegm(parsed.replace(tzinfo=None).timetuple()) * 1000) - _offset_ms(parsed, tz)
    raise FerryError("invalid time %r: use epoch seconds or ms, %s, or <n><unit>-ago (e.g. 7d-ago)"
                     % (value, ", ".join(_FORMATS)))


def _epoch_ms(number):
    return number * 1000 if len(str(abs(number))) <= 10 else number


def _offset_ms(local, tz):
    """Offset of ``tz`` at the local time ``local`` in ms (DST-aware for IANA names)."""
    offset = timezone_for(tz).utcoffset(local.replace(tzinfo=None))
    return int(offset.total_seconds() * 1000)


def timezone_for(name):
    if name in (None, "", "UTC", "utc", "Z"):
        return timezone.utc
    match = re.match(r"^([+-])(\d{2}):?(\d{2})$", name)
    if match:
        sign = 1 if match.group(1) == "+" else -1
        return timezone(sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3))))
    try:
        from zoneinfo import ZoneInfo  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise FerryError("time zone %r needs Python >= 3.9 (zoneinfo); use UTC or an offset like +02:00" % name)
    try:
        return _ZoneOffset(ZoneInfo(name))
    except Exception as exc:  # ZoneInfoNotFoundError and ValueError, by Python version
        raise FerryError("unknown time zone %r (%s)" % (name, exc))


class _ZoneOffset:
    """utcoffset() of a naive local time in an IANA zone."""

    def __init__(self, zone):
        self.zone = zone

    def utcoffset(self, local):
        return local.replace(tzinfo=self.zone).utcoffset()


def iso(ms):
    return datetime.fromtimestamp(ms / 1000.0, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# -- batches -----------------------------------------------------------------------------------------
def batch_interval_ms(value):
    """``hour``, ``day`` or a number of seconds, as milliseconds."""
    if str(value) in BATCH_INTERVALS:
        return BATCH_INTERVALS[str(value)]
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        raise FerryError("invalid batch interval %r: use hour, day or a number of seconds" % (value,))
    if seconds <= 0:
        raise FerryError("batch interval must be positive, got %r" % (value,))
    return seconds * 1000


def plan_batches(start_ms, stop_ms, interval_ms):
    """Half-open ranges ``[a, b)`` covering ``[start, stop)``, cut on multiples of the interval (UTC)."""
    if stop_ms <= start_ms:
        raise FerryError("stop (%s) must be after start (%s)" % (iso(stop_ms), iso(start_ms)))
    batches = []
    begin = start_ms
    while begin < stop_ms:
        end = min((begin // interval_ms + 1) * interval_ms, stop_ms)
        batches.append((begin, end))
        begin = end
    return batches


def batch_name(begin_ms, end_ms):
    """Sortable file name of a batch: both ends in ms, zero-padded."""
    return "%015d-%015d" % (begin_ms, end_ms)


# -- points --------------------------------------------------------------------------------------------
def normalize_tags(tags):
    return tuple(sorted((str(key), str(val)) for key, val in (tags or {}).items()))


def series_prefix(metric, tags):
    """The constant head of a series' point lines; built once per series, not once per point."""
    head = json.dumps({"metric": metric, "tags": dict(tags)}, separators=(",", ":"), ensure_ascii=False)
    return (head[:-1] + ',"timestamp":').encode("utf-8")


def point_line(metric, tags, timestamp_ms, value, prefix=None):
    """One point as a compact OpenTSDB put object, UTF-8 bytes without the newline."""
    head = prefix if prefix is not None else series_prefix(metric, tags)
    return b"%s%d,\"value\":%s}" % (head, timestamp_ms, _number(value))


def series_lines(prefix, segments):
    """The point lines of one series, each ending in a newline: the bytes :func:`point_line` makes, built
    in one pass (converters emit millions).

    ``prefix`` is the series' :func:`series_prefix`; ``segments`` are ``(times, values, known)``: times in
    seconds as a ``range``, float values, ``known`` None or a mask of the values to keep.
    """
    heads = []  # per point: its stamp and value, one piece; the glue ends a line and starts the next
    for times, values, known in segments:
        stamps = _stamp_texts(times)
        if known is not None:
            stamps, values = itertools.compress(stamps, known), itertools.compress(values, known)
        heads.append(map(b"".join, zip(stamps, value_texts(values))))
    body = (b"}\n" + prefix).join(itertools.chain.from_iterable(heads))
    return prefix + body + b"}\n" if body else b""


def value_texts(values):
    """Each float's shortest text that reads back as the same double (JSON), as bytes."""
    values = list(values)
    if not values:
        return []
    if orjson is not None:
        return orjson.dumps(values)[1:-1].split(b",")
    return " ".join(map(repr, values)).encode("ascii").split(b" ")


def accelerators():
    """Which optional accelerators this host has (reported by the modules: they change speed, not output)."""
    return {"orjson": orjson is not None, "isal": deflate is not zlib}


def finite_segments(segments):
    """``segments`` with infinite values left out like unknown ones, and how many: JSON has no infinity
    (an RRD GAUGE without a maximum stores one when fed ``inf``)."""
    out, dropped = [], 0
    for times, values, known in segments:
        if has_infinity(values):
            known = bytearray(b"\1") * len(values) if known is None else bytearray(known)
            for position, value in enumerate(values):
                if known[position] and math.isinf(value):
                    known[position] = 0
                    dropped += 1
        out.append((times, values, known))
    return out, dropped


def segments_span(segments):
    """(points, first, last) of :func:`series_lines` segments; first and last in seconds, None if no point."""
    count, first, last = 0, None, None
    for times, _values, known in segments:
        if known is None:
            begin, end, count = 0, len(times) - 1, count + len(times)
        else:
            begin, end, count = known.find(1), known.rfind(1), count + known.count(1)
        if end >= 0:  # a known point in this segment
            first = times[begin] if first is None else first
            last = times[end]
    return count, first, last


_STAMP_TEXTS = {}
_STAMP_CACHE_POINTS = 1 << 16  # about 5 MiB of stamp texts at most
_stamps_cached = [0]


def _stamp_texts(times):
    """``<ms>,"value":`` for each time (s) of a range. Kept for the next series: the data sources of a file,
    and files updated in the same step, share their time lines."""
    key = (times.start, times.stop, times.step)
    texts = _STAMP_TEXTS.get(key)
    if texts is None:
        if _stamps_cached[0] + len(times) > _STAMP_CACHE_POINTS:
            _STAMP_TEXTS.clear()
            _stamps_cached[0] = 0
        texts = _STAMP_TEXTS[key] = [b'%d000,"value":' % stamp for stamp in times]
        _stamps_cached[0] += len(texts)
    return texts


def _number(value):
    if isinstance(value, int):
        return b"%d" % value
    return repr(float(value)).encode("ascii")


def series_key(tags):
    """How a series is named in a manifest's per-series counts and matched on a target: its tags (sorted
    ``(key, value)`` pairs, or a dict) as compact JSON sorted by key, ``{}`` for none. The metric is the key one
    level up."""
    return json.dumps(dict(tags), separators=(",", ":"), ensure_ascii=False, sort_keys=True)


_STAMP_KEY = b',"timestamp":'


def _prefix_series(prefix):
    """``(metric, series_key)`` of a :func:`series_prefix` (``{"metric":..,"tags":{..},"timestamp":``)."""
    head = json.loads(prefix[:-len(_STAMP_KEY)].decode("utf-8") + "}")
    return head["metric"], series_key(normalize_tags(head.get("tags")))


def line_prefix(line):
    """The :func:`series_prefix` a point line starts with. Inside a JSON string a quote is escaped, so the first
    ``,"timestamp":`` is the key's."""
    return line[:line.index(_STAMP_KEY) + len(_STAMP_KEY)]


def parse_line(line):
    """The inverse of :func:`point_line` (for verification and tests)."""
    obj = json.loads(line)
    return obj["metric"], normalize_tags(obj.get("tags")), int(obj["timestamp"]), obj["value"]


def is_finite(value):
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


# -- batch files -----------------------------------------------------------------------------------------
class BatchWriter:
    """Writes one batch: points appended frame by frame, each frame a gzip member made durable.

    ``checkpoint()`` returns what a resumed writer needs (bytes durable, counts); ``resume`` reopens the
    partial file (``.<name>.jsonl.gz.partial``, a staged file), cuts what came after the checkpoint and goes
    on. ``finish()`` renames the data file into place and writes the manifest last; ``abort()`` keeps the
    partial file for a resume, unless told to remove it.

    The manifest counts points per metric; ``<name>.series.json.gz``, written before it and named in it
    (``series_file``, with its sha256), counts them per series of each metric (``{metric: {series_key: points}}``,
    :func:`series_key`, see :func:`read_series`): what verification compares with the target series by series.
    A resumed writer counts the series of the points it keeps from its partial file (the checkpoint stays
    small, whatever the number of series).
    """

    def __init__(self, directory, name, resume=None, level=1):
        self.directory = directory
        self.name = name
        self.level = min(level, getattr(deflate, "ISAL_BEST_COMPRESSION", level))  # isal has levels 0-3
        self.path = os.path.join(directory, name + DATA_SUFFIX)
        self.partial = hidden_name(self.path, ".partial")
        state = resume or {}
        self.offset = int(state.get("offset", 0))
        self.points = int(state.get("points", 0))
        self.first = state.get("first")
        self.last = state.get("last")
        self.metrics = dict(state.get("metrics") or {})
        self._lines = []  # single lines (add) not joined into a block yet
        self._blocks = []  # blocks of lines not written yet, each ending in a newline
        self._frame_points = 0  # points added since the last frame
        self.pending_bytes = 0  # bytes of add_lines blocks not written yet
        self._prefixes = {}
        self._series = {}  # series prefix (bytes) -> points
        self._unknown = set(state.get("unknown_series") or [])  # metrics with points whose series is not known (add_lines of several series)
        if self.offset and not os.path.exists(self.partial):  # zeros in its place would make a corrupt batch
            raise FerryError("%s is gone: batch %s cannot resume (run the step with force to write it again)"
                             % (self.partial, name))
        self._staged = StagedFile.open(self.path, self.partial, resume=bool(resume), perms=0o666)
        self._handle = self._staged.handle
        self._handle.truncate(self.offset)
        self._handle.seek(0)  # the digest of the data file as written, from what a resumed batch keeps:
        self._digest = sha256_of(self._handle)  # finish() need not read it again
        if self.offset:
            self._recount_series()

    def add(self, metric, tags, timestamp_ms, value):
        key = (metric, tags)
        prefix = self._prefixes.get(key)
        if prefix is None:
            prefix = self._prefixes[key] = series_prefix(metric, tags)
        self._lines.append(point_line(metric, tags, timestamp_ms, value, prefix))
        self._series[prefix] = self._series.get(prefix, 0) + 1
        self._frame_points += 1
        self.metrics[metric] = self.metrics.get(metric, 0) + 1
        self.first = timestamp_ms if self.first is None else min(self.first, timestamp_ms)
        self.last = timestamp_ms if self.last is None else max(self.last, timestamp_ms)

    def add_lines(self, metric, lines, count, first, last):
        """Append ``count`` ready-made lines (``series_lines`` output) of one metric, ``first``/``last`` in ms.

        Lines of one series (what :func:`series_lines` makes) are counted for that series; lines of several
        leave the metric without per-series counts (verified by its total then)."""
        self._join_lines()
        if lines:
            prefix = line_prefix(lines)
            if lines.count(b"\n" + prefix) == count - 1:
                self._series[prefix] = self._series.get(prefix, 0) + count
            else:
                self._unknown.add(metric)
        self._blocks.append(lines)
        self._frame_points += count
        self.pending_bytes += len(lines)
        self.metrics[metric] = self.metrics.get(metric, 0) + count
        self.first = first if self.first is None else min(self.first, first)
        self.last = last if self.last is None else max(self.last, last)

    def end_frame(self):
        """Make the points added so far durable; returns the checkpoint to record."""
        self._join_lines()
        if self._blocks:
            gzip_member = deflate.compressobj(self.level, deflate.DEFLATED, 31)  # wbits 31: a gzip member
            for block in self._blocks:
                self._write(gzip_member.compress(block))
            self._write(gzip_member.flush())
            self._staged.sync()
            self.points += self._frame_points
            self._blocks = []
            self._frame_points = 0
            self.pending_bytes = 0
            self.offset = self._handle.tell()
        return self.checkpoint()

    def _write(self, data):
        self._handle.write(data)
        self._digest.update(data)

    def _join_lines(self):
        """The single lines added since the last block, as one block: one compress call, not one a point."""
        if self._lines:
            self._blocks.append(b"\n".join(self._lines) + b"\n")
            self._lines = []

    def checkpoint(self):
        checkpoint = {"offset": self.offset, "points": self.points, "first": self.first, "last": self.last,
                      "metrics": dict(self.metrics)}
        if self._unknown:
            checkpoint["unknown_series"] = sorted(self._unknown)
        return checkpoint

    def _recount_series(self):
        """The series counts of the points a resumed batch keeps: its partial file's lines up to the offset."""
        gunzip = Gunzip(self.partial)
        rest = b""
        with open(self.partial, "rb") as raw:
            left = self.offset
            while left > 0:
                chunk = raw.read(min(left, 1 << 20))
                if not chunk:
                    break
                left -= len(chunk)
                for piece in gunzip.pieces(chunk, READ_LIMIT):
                    lines = (rest + piece).split(b"\n")
                    rest = lines.pop()
                    for line in lines:
                        if line:
                            prefix = line_prefix(line)
                            self._series[prefix] = self._series.get(prefix, 0) + 1
        if rest:
            prefix = line_prefix(rest)
            self._series[prefix] = self._series.get(prefix, 0) + 1

    def series_counts(self):
        """``{metric: {series_key: points}}`` of the points written so far, the metrics without known series left
        out."""
        counts = {}
        for prefix, points in self._series.items():
            metric, key = _prefix_series(prefix)
            if metric not in self._unknown:
                per_metric = counts.setdefault(metric, {})
                per_metric[key] = per_metric.get(key, 0) + points
        return counts

    def finish(self, extra=None):
        self.end_frame()
        digest = self._digest.hexdigest()
        self._staged.commit(sync=False, sync_dir=False)  # each frame was synced; the manifest syncs the directory
        series = gzip.compress(json.dumps(self.series_counts(), sort_keys=True, separators=(",", ":"),
                                          ensure_ascii=False).encode("utf-8"), 1)
        atomic_write_bytes(os.path.join(self.directory, self.name + SERIES_SUFFIX), series)
        manifest = {"format": FORMAT_VERSION, "name": self.name, "points": self.points, "first_ts": self.first,
                    "last_ts": self.last, "metrics": self.metrics, "bytes": os.path.getsize(self.path),
                    "sha256": digest, "series_file": {"name": self.name + SERIES_SUFFIX, "sha256": sha256_hex(series),
                                                      "unknown": sorted(self._unknown)}}
        manifest.update(extra or {})
        atomic_write_json(os.path.join(self.directory, self.name + MANIFEST_SUFFIX), manifest)
        fsync_dir(self.directory)
        return manifest

    def abort(self, remove=False):
        """Stop writing; the partial file stays for a resume, unless ``remove``."""
        self._staged.abort(keep=not remove)


def finished_batches(directory):
    """Manifests of the finished batches in ``directory``, oldest first."""
    return scan_batches(directory)[0]


def scan_batches(directory):
    """``(manifests, problems)`` of ``directory``: the finished batches oldest first, and what is there but cannot
    be read as a finished batch, ``{"name", "reason"}`` each (a data file without its manifest, a manifest of another
    format or without its data file). Hidden files are work in progress and are not looked at."""
    if not os.path.isdir(directory):
        raise FerryError("point directory %s does not exist" % directory)
    manifests, problems = [], []
    entries = set(entry for entry in os.listdir(directory) if not entry.startswith("."))
    for entry in sorted(entries):
        if entry.endswith(DATA_SUFFIX) and entry[:-len(DATA_SUFFIX)] + MANIFEST_SUFFIX not in entries:
            problems.append({"name": entry[:-len(DATA_SUFFIX)], "reason": "data file %s has no manifest" % entry})
        elif entry.endswith(MANIFEST_SUFFIX):
            manifest, reason = _read_manifest(directory, entry)
            if reason:
                problems.append({"name": entry[:-len(MANIFEST_SUFFIX)], "reason": reason})
            else:
                manifests.append(manifest)
    return manifests, problems


def _read_manifest(directory, entry):
    """A batch manifest and its data file's path, or the reason it cannot be used."""
    try:
        manifest = read_json(os.path.join(directory, entry))
    except FerryError as exc:
        return None, str(exc)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        return None, "manifest %s has format %r, this version reads format %d" % (entry, found, FORMAT_VERSION)
    if "%s%s" % (manifest.get("name"), MANIFEST_SUFFIX) != entry:
        return None, "manifest %s names another batch (%r)" % (entry, manifest.get("name"))
    manifest["path"] = os.path.join(directory, manifest["name"] + DATA_SUFFIX)
    try:
        size = os.path.getsize(manifest["path"])
    except OSError:
        return None, "manifest %s has no data file %s" % (entry, manifest["name"] + DATA_SUFFIX)
    if size != manifest.get("bytes", size):
        return None, "data file %s holds %d bytes, its manifest says %d" % (manifest["name"] + DATA_SUFFIX, size,
                                                                            manifest["bytes"])
    return manifest, None


def read_series(manifest):
    """``{metric: {series_key: points}}`` of a finished batch, for the metrics whose series were counted; None for a
    batch without them (an earlier format) or whose series file is gone or changed (then verified per metric)."""
    info = manifest.get("series_file")
    if not isinstance(info, dict):
        return None
    try:
        with open(os.path.join(os.path.dirname(manifest["path"]), info["name"]), "rb") as handle:
            data = handle.read()
    except (OSError, KeyError, TypeError):
        return None
    if sha256_hex(data) != info.get("sha256"):
        return None
    return json.loads(gzip.decompress(data).decode("utf-8"))


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def problems_text(problems, limit=5):
    """Batch problems for a message: the first few, and how many in all."""
    text = "; ".join("%s: %s" % (item["name"], item["reason"]) for item in problems[:limit])
    return text + ("; and %d more" % (len(problems) - limit) if len(problems) > limit else "")


def check_batch(manifest):
    """Fail before anything is sent when a batch file is not what its manifest describes."""
    try:
        digest = file_sha256(manifest["path"])
    except OSError as exc:
        raise FerryError("batch %s is unreadable (%s): dump it again" % (manifest["path"], exc.strerror))
    if digest != manifest["sha256"]:
        raise FerryError("batch %s does not match its manifest's sha256: the file was changed or damaged"
                         % manifest["path"])


def read_batch_lines(manifest, check=True):
    """Yield the raw point lines of a finished batch; the sha256 is checked as the file is read."""
    if not manifest["points"]:
        return  # an empty batch is an empty file, not an empty gzip stream
    digest = hashlib.sha256()
    gunzip = Gunzip(manifest["path"])
    rest = b""
    try:
        with open(manifest["path"], "rb") as raw:
            for chunk in iter(lambda: raw.read(1 << 20), b""):
                digest.update(chunk)
                for piece in gunzip.pieces(chunk, READ_LIMIT):
                    lines = (rest + piece).split(b"\n")
                    rest = lines.pop()
                    for line in lines:
                        if line:
                            yield line
        gunzip.close()
    except (OSError, FerryError) as exc:
        raise FerryError("batch %s is unreadable (%s): dump it again" % (manifest["path"], exc))
    if rest:
        yield rest
    if check and digest.hexdigest() != manifest["sha256"]:
        raise FerryError("batch %s does not match its manifest's sha256: the file was changed or damaged"
                         % manifest["path"])


def chunk_lines(lines, max_bytes, max_points):
    """Group raw lines into JSON-array request bodies of at most ``max_bytes`` and ``max_points``.

    Yields ``(body, count)``. A single line larger than ``max_bytes`` goes alone (the server will say
    whether it takes it). This is the one batching helper every writer uses.
    """
    parts = []
    size = 2
    for line in lines:
        if parts and (size + len(line) + 1 > max_bytes or len(parts) >= max_points):
            yield b"[" + b",".join(parts) + b"]", len(parts)
            parts = []
            size = 2
        parts.append(line)
        size += len(line) + 1
    if parts:
        yield b"[" + b",".join(parts) + b"]", len(parts)
