# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whisper files written directly, and Carbon's storage rules.

The format (graphite's whisper 1.x), all big-endian::

    header    aggregation type (uint32), max retention (uint32), xFilesFactor (float32), archive count (uint32)
    archives  offset, seconds per point, points (3 x uint32) each, finest first
    data      per archive, ``points`` slots of (timestamp uint32, value float64)

A slot's position is ``(timestamp - base) / seconds_per_point`` modulo ``points``, ``base`` being
the timestamp in the archive's first slot; a slot whose timestamp is not the one expected there
reads as missing. Building the bytes in one go is what makes conversion fast: the ``whisper``
package's ``update_many`` (the usual way) costs 10-27 ms a file, this a fraction of a millisecond.

Carbon's ``storage-schemas.conf`` and ``storage-aggregation.conf`` are read with the same rules as
Carbon: sections in file order, the first whose ``pattern`` matches (``re.search``) wins.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import array
import configparser
import errno
import fcntl
import functools
import math
import os
import re
import shutil
import struct
import sys

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import (
    FerryError,
    nan_runs,
    remove_quietly,
    run_length,
    runs_of,
    tree_files,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.staging import StagedFile, hidden_name, open_new, publish

HEADER = struct.Struct("!2LfL")
ARCHIVE_INFO = struct.Struct("!3L")
POINT = struct.Struct("!Ld")
POINT_SIZE = POINT.size
AGGREGATIONS = {"average": 1, "sum": 2, "last": 3, "max": 4, "min": 5, "avg_zero": 6, "absmax": 7, "absmin": 8}
AGGREGATION_NAMES = dict((number, name) for name, number in AGGREGATIONS.items())
_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400, "weeks": 604800, "years": 31536000}
_SWAP = sys.byteorder == "little"
_NAN = float("nan")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
FIRST_TIME, LAST_TIME = 1, (1 << 32) - 1  # a point's time is a uint32, 0 marking an empty slot
_UINT32 = 1 << 32


# -- bytes ---------------------------------------------------------------------------------------------------
def unknown_runs(values):
    """Where a series has no value, as runs ``[(start, stop), ...]``: NaN in an ``array('d')``, None in a list."""
    if isinstance(values, array.array):
        return nan_runs(values)
    try:
        array.array("d", values)
        return []
    except TypeError:  # None among them
        return runs_of(position for position, value in enumerate(values) if value is None)


def pack_points(times, values, unknown=None):
    """Whisper point records for parallel sequences; an unknown value (NaN or None) gives an empty slot.

    Returns (records, known points). ``values`` an ``array('d')`` and ``times`` a range, the usual case,
    take a handful of C loops: converters write millions of points. ``unknown``: runs, if known already.
    """
    count = len(values)
    if unknown is None:
        unknown = unknown_runs(values)
    if isinstance(values, array.array):
        numbers = array.array("d", values)
    else:
        numbers = array.array("d", [_NAN if v is None else v for v in values] if unknown else values)
    stamp_bytes = _stamp_bytes(times)
    if unknown:
        stamp_bytes = bytearray(stamp_bytes)
        for start, stop in unknown:
            stamp_bytes[4 * start:4 * stop] = bytes(4 * (stop - start))
    if _SWAP:
        numbers.byteswap()
    number_bytes = numbers.tobytes()
    out = bytearray(count * POINT_SIZE)
    # interleave byte lanes: 4 timestamp bytes then 8 value bytes per record, each lane in one C loop
    for lane in range(4):
        out[lane::POINT_SIZE] = stamp_bytes[lane::4]
    for lane in range(8):
        out[4 + lane::POINT_SIZE] = number_bytes[lane::8]
    return out, count - run_length(unknown)


_RAMPS = {}


def _stamp_bytes(times):
    """Big-endian uint32 timestamps. A range is one big-integer expression: its n values are the base-2^32
    digits of ``first * (1, 1, ...) + step * (0, 1, 2, ...)``, no digit overflowing."""
    if not isinstance(times, range) or not times or times[-1] >= 1 << 32 or times.start < 0:
        return struct.pack("!%dL" % len(times), *times)
    count = len(times)
    ones, ramp = _RAMPS.get(count) or _ramp(count)
    return (times.start * ones + times.step * ramp).to_bytes(4 * count, "big")


def _ramp(count):
    ones = ((1 << (32 * count)) - 1) // ((1 << 32) - 1)
    ramp = 0
    for index in range(count):
        ramp = (ramp << 32) | index
    if len(_RAMPS) < 256:
        _RAMPS[count] = (ones, ramp)
    return ones, ramp


def unpack_points(data):
    """(timestamps, values) arrays of raw point records."""
    stamps = array.array("I")
    numbers = array.array("d")
    stamps.frombytes(bytes(_lanes(data, 0, 4)))
    numbers.frombytes(bytes(_lanes(data, 4, 8)))
    if _SWAP:
        stamps.byteswap()
        numbers.byteswap()
    return stamps, numbers


def _lanes(data, first, width):
    """Bytes of one field of every record, field bytes kept together (record-major)."""
    out = bytearray(len(data) // POINT_SIZE * width)
    for lane in range(width):
        out[lane::width] = data[first + lane::POINT_SIZE]
    return out


class Layout:
    """Archives of a whisper file: (seconds_per_point, points), finest first, with their offsets."""

    def __init__(self, archives, aggregation="average", xff=0.5):
        self.archives = [(int(spp), int(points)) for spp, points in archives]
        self.aggregation = aggregation
        self.xff = float(xff)
        offset = HEADER.size + ARCHIVE_INFO.size * len(self.archives)
        self.offsets = []
        for _spp, points in self.archives:
            self.offsets.append(offset)
            offset += points * POINT_SIZE
        self.size = offset
        if offset >= _UINT32 or any(spp * points >= _UINT32 for spp, points in self.archives):
            raise ValueError("whisper cannot hold these archives (%s): offsets and retentions are 32-bit"
                             % ", ".join("%d s x %d" % archive for archive in self.archives))

    def header(self):
        retention = max(spp * points for spp, points in self.archives)
        head = [HEADER.pack(AGGREGATIONS[self.aggregation], retention, self.xff, len(self.archives))]
        for offset, (spp, points) in zip(self.offsets, self.archives):
            head.append(ARCHIVE_INFO.pack(offset, spp, points))
        return b"".join(head)


def ring(spp, points, times, values):
    """One archive's bytes from a contiguous, ascending series (``times`` a range stepping by ``spp``).

    The first known point goes in slot 0 (it is the archive's base); only the newest ``points`` slots
    of a longer series fit.
    """
    if len(values) > points:
        times, values = times[len(times) - points:], values[len(values) - points:]
    unknown = unknown_runs(values)
    first = unknown[0][1] if unknown and unknown[0][0] == 0 else 0  # leading unknown rows
    if first == len(values):
        return bytes(points * POINT_SIZE), 0
    later = unknown[1:] if first else unknown
    records, known = pack_points(times[first:], values[first:], [(a - first, b - first) for a, b in later])
    return bytes(records) + bytes((points - (len(values) - first)) * POINT_SIZE), known


def build(layout, series):
    """The whole file from ``series``, per archive (times, values) for :func:`ring`; and the points in it."""
    parts = [layout.header()]
    known = 0
    for (spp, points), (times, values) in zip(layout.archives, series):
        data, count = ring(spp, points, times, values)
        parts.append(data)
        known += count
    return b"".join(parts), known


def read_layout(handle, path):
    """The layout of an existing whisper file (raises naming the file when it is not one)."""
    head = handle.read(HEADER.size)
    try:
        aggregation, _retention, xff, count = HEADER.unpack(head)
        if not 0 < count < 64:
            raise ValueError("%d archives" % count)
        archives = []
        for index in range(count):
            offset, spp, points = ARCHIVE_INFO.unpack(handle.read(ARCHIVE_INFO.size))
            if spp <= 0 or points <= 0:
                raise ValueError("archive %d has %d s per point and %d points" % (index, spp, points))
            archives.append((spp, points))
    except (struct.error, ValueError) as exc:
        raise FerryError("%s is not a whisper file (%s)" % (path, exc))
    layout = Layout(archives, AGGREGATION_NAMES.get(aggregation, "average"), xff)
    if os.fstat(handle.fileno()).st_size < layout.size:
        raise FerryError("%s is a truncated whisper file (%d bytes, its header says %d)"
                         % (path, os.fstat(handle.fileno()).st_size, layout.size))
    return layout


def backfill(path, series_for, dry_run=False):
    """Fill the empty slots of an existing whisper file, in place, under Carbon's flock.

    ``series_for(spp, points, aggregation, xff)`` gives (times, values) for one of the file's archives, or None.
    Only slots that are empty or hold a point older than that archive's window are written: newer
    data is never overwritten, and a point already there wins. Returns the number of points written
    (with ``dry_run``, that would be written; the file is then only read).
    """
    written = 0
    with open(path, "rb" if dry_run else "r+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH if dry_run else fcntl.LOCK_EX)
        layout = read_layout(handle, path)
        for offset, (spp, points) in zip(layout.offsets, layout.archives):
            series = series_for(spp, points, layout.aggregation, layout.xff)
            if series is not None:
                written += _backfill_archive(handle, offset, spp, points, series, dry_run)
        if written and not dry_run:
            handle.flush()
            os.fsync(handle.fileno())
    return written


def _backfill_archive(handle, offset, spp, points, series, dry_run=False):
    handle.seek(offset)
    stamps, _numbers = unpack_points(handle.read(points * POINT_SIZE))
    base = stamps[0]
    newest = max(stamps) if base else 0
    times, values = series
    ours = [(t, v) for t, v in zip(times, values) if v is not None and not math.isnan(v)]
    if not ours:
        return 0
    window_end = max(newest, ours[-1][0])
    oldest_kept = window_end - (points - 1) * spp
    if not base:
        base = ours[0][0] if ours[0][0] >= oldest_kept else None
    writes = []
    for stamp, value in ours:
        if stamp < oldest_kept:
            continue
        if base is None:
            base = stamp
        slot = ((stamp - base) // spp) % points
        held = stamps[slot]
        if held == stamp or held >= oldest_kept:
            continue  # a point of the window is there already: it wins
        stamps[slot] = stamp
        writes.append((slot, stamp, value))
    for slot, stamp, value in writes if not dry_run else ():
        handle.seek(offset + slot * POINT_SIZE)
        handle.write(POINT.pack(stamp, value))
    return len(writes)


# -- whisper to whisper --------------------------------------------------------------------------------------
def read_points(path):
    """(layout, per archive its points as (times, values) in time order) of a whisper file.

    A slot counts when its stamp is on the archive's grid and within the archive's window of its newest
    point, as whisper's own fetch reads it; older points left in the ring are not data any more.
    """
    with open(path, "rb") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
        layout = read_layout(handle, path)
        archives = []
        for offset, (spp, points) in zip(layout.offsets, layout.archives):
            handle.seek(offset)
            stamps, numbers = unpack_points(handle.read(points * POINT_SIZE))
            oldest = max(stamps) - (points - 1) * spp
            pairs = sorted((t, v) for t, v in zip(stamps, numbers) if t and t >= oldest and t % spp == 0)
            archives.append(([t for t, _v in pairs], [v for _t, v in pairs]))
    return layout, archives


def resample(times, values, spp, method, xff, step):
    """Points of ``step`` seconds aggregated into slots of ``spp`` (a multiple of it), as Carbon would:
    a slot gets a value when at least ``xff`` of its ``spp / step`` points are known."""
    factor = spp // step
    slots, known = [], []
    for stamp, value in zip(times, values):
        if math.isnan(value):
            continue
        slot = stamp - stamp % spp
        if slots and slots[-1] == slot:
            known[-1].append(value)
        else:
            slots.append(slot)
            known.append([value])
    keep = [(slot, group) for slot, group in zip(slots, known) if len(group) >= xff * factor]
    return [slot for slot, _g in keep], [aggregate(method, group, factor) for _s, group in keep]


def merge(src, dest, dry_run=False):
    """Fill the empty slots of the whisper file ``dest`` from the whisper file ``src``; returns the points
    written (that would be, with ``dry_run``).

    Exact, unlike ``whisper-fill`` and ``update_many``: an archive takes the points of ``src``'s archive of
    the same resolution as they are, and only where its own slots are empty (see :func:`backfill`); an
    archive with no such twin takes, as Carbon aggregates, the next finer ``src`` archive dividing it,
    with ``dest``'s own method and xFilesFactor. Nothing already in ``dest`` is changed, nor aggregated again.
    """
    layout, archives = read_points(src)
    by_spp = dict(zip((spp for spp, _points in layout.archives), archives))

    def series_for(spp, _points, method, xff):
        if spp in by_spp:
            return by_spp[spp]
        finer = [step for step, _points in layout.archives if step < spp and spp % step == 0]
        return resample(*by_spp[finer[-1]], spp, method, xff, finer[-1]) if finer else None
    return backfill(dest, series_for, dry_run)


INSTALL_COUNTS = ("files", "created", "merged", "up_to_date", "already_installed", "points", "failed")
INSTALLED_MARK = ".ferry-installed"  # in ``src``: made when an install started that then ended without failure


def install_tree(src, dest, owner=None, mode=0o644, dir_mode=0o755, dry_run=False, everything=False, progress=None,
                 group_size=64):
    """Place the whisper files under ``src`` (converted elsewhere) into Carbon's storage ``dest``.

    A file missing in ``dest`` is copied under a temporary name, made durable with the rest of its group
    (one file-system sync) and linked into place; one there already (Carbon writes it, or an earlier
    install) is only filled by :func:`merge`. Every step is safe to repeat, so a killed install is run
    again as it is. A file that arrived in ``src`` before the last install without failure, and is in
    ``dest``, was merged then and is not read again, unless ``everything``. A path resolving outside
    ``src`` or ``dest`` (through a symlink) fails that file. ``progress(files done)`` is called after each
    group. Returns (counts, failures).
    """
    counts = dict.fromkeys(INSTALL_COUNTS, 0)
    failures, staged = [], []
    mark = os.path.join(src, INSTALLED_MARK)
    since = None if everything else _mtime_ns(mark)
    if not dry_run:
        os.close(open_new(mark + ".new"))  # its time, the file system's clock, is when this install started
    for relative in tree_files(src, (".wsp",)):
        if any(part.startswith(".ferry-") for part in relative.split(os.sep)):
            continue  # a converter's staging directory that travelled along
        counts["files"] += 1
        try:
            _install_file(src, dest, relative, owner, (mode, dir_mode), dry_run, since, counts, staged)
        except (FerryError, OSError) as exc:
            _failed(counts, failures, relative, exc)
        if len(staged) >= group_size or counts["files"] % group_size == 0:
            _commit_staged(dest, staged, counts, failures)
            if progress:
                progress(counts["files"])
    _commit_staged(dest, staged, counts, failures)
    if progress:
        progress(counts["files"])
    if not dry_run and not counts["failed"]:
        os.rename(mark + ".new", mark)
    return counts, failures


def _failed(counts, failures, relative, exc):
    counts["failed"] += 1
    failures.append(str(exc) if isinstance(exc, FerryError) else "%s: %s" % (relative, exc))


def _mtime_ns(path):
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None


def _install_file(src, dest, relative, owner, modes, dry_run, since, counts, staged):
    source, target = os.path.join(src, relative), os.path.join(dest, relative)
    check_inside(src, source)  # a symlink in src is not followed out of it
    check_inside(dest, target)  # nor one in dest written through
    temp = hidden_name(target)  # .<name>.ferry-tmp
    if os.path.exists(target):
        if since is not None and os.stat(source).st_ctime_ns < since:
            counts["already_installed"] += 1
            return
        if not dry_run:
            remove_quietly(temp)  # a run killed between linking the file and removing its temporary name
        written = merge(source, target, dry_run)
        counts["merged" if written else "up_to_date"] += 1
        counts["points"] += written
        return
    read_layout_of(source)  # a damaged file fails here, by name, instead of being installed
    if not dry_run:
        make_dirs(os.path.dirname(target), modes[1], owner)
        check_inside(dest, target)  # again, now that its directories exist
        copy = StagedFile.open(target, temp)  # a symlink planted at ``temp`` is replaced, not followed
        try:
            with open(source, "rb") as reader:
                shutil.copyfileobj(reader, copy.handle, 1 << 20)
            copy.close()
            copy.set_mode(modes[0], owner)
        except BaseException:
            copy.abort()
            raise
        staged.append((relative, temp, target))
    counts["created"] += 1


def _commit_staged(dest, staged, counts, failures):
    """Sync the staged copies ``(relative, temp, target)``, link them into place, sync the links; a file that cannot
    be placed fails alone."""
    def failed(relative, exc, _aborted):
        counts["created"] -= 1
        _failed(counts, failures, relative, exc)
    publish(dest, [(relative, [StagedFile(target, temp)]) for relative, temp, target in staged],
            functools.partial(_place, dest), failed)
    del staged[:]


def _place(dest, staged):
    try:
        staged.place(link=True)  # unlike a rename, never replaces a file Carbon created meanwhile
    except FileExistsError:
        check_inside(dest, staged.path)
        merge(staged.temp, staged.path)
        staged.abort()
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        staged.place()  # a file system without hard links


def read_layout_of(path):
    with open(path, "rb") as handle:
        return read_layout(handle, path)


def make_dirs(directory, mode=0o755, owner=None):
    """``directory`` and its missing parents, each with ``mode`` and (uid, gid) ``owner``."""
    if os.path.isdir(directory):
        return
    parent = os.path.dirname(directory)
    if parent != directory:
        make_dirs(parent, mode, owner)
    try:
        os.mkdir(directory, mode)
    except FileExistsError:
        return
    if owner:
        os.chown(directory, *owner)


# -- resampling ----------------------------------------------------------------------------------------------
def aggregate(method, values, slots=None):
    """Carbon's aggregation of the known values of one coarser slot (of ``slots`` finer ones, for avg_zero)."""
    if method == "average":
        return math.fsum(values) / len(values)
    if method == "sum":
        return math.fsum(values)
    if method == "last":
        return values[-1]
    if method == "max":
        return max(values)
    if method == "min":
        return min(values)
    if method == "avg_zero":  # unknown values count as zeros
        return math.fsum(values) / (slots or len(values))
    if method == "absmax":
        return max(values, key=abs)
    if method == "absmin":
        return min(values, key=abs)
    raise FerryError("unknown aggregation method %r" % method)


# -- Carbon's rules ------------------------------------------------------------------------------------------
def parse_seconds(text):
    """``60``, ``60s``, ``5min``, ``1d`` ... as seconds (Carbon's units: s, m[in], h, d, w, y)."""
    match = re.match(r"^\s*(\d+)\s*([a-zA-Z]*)\s*$", str(text))
    if not match:
        raise FerryError("invalid duration %r" % (text,))
    unit = match.group(2).lower() or "seconds"
    # Carbon takes any prefix of a unit's name (s, sec, m, min, h, d, w, y ...) and nothing else
    names = [name for name in _UNITS if name.startswith(unit)]
    if not names:
        raise FerryError("invalid unit in %r: use s, min, h, d, w or y" % (text,))
    return int(match.group(1)) * _UNITS[names[0]]


def parse_retentions(text):
    """``60s:1d,5m:30d`` as [(seconds_per_point, points)], finest first."""
    archives = []
    for part in str(text).split(","):
        if not part.strip():
            continue
        try:
            precision, count = part.strip().split(":")
        except ValueError:
            raise FerryError("invalid retention %r: use precision:points or precision:duration" % part.strip())
        spp = parse_seconds(precision)
        points = int(count) if count.strip().isdigit() else parse_seconds(count) // spp
        if spp <= 0 or points <= 0:
            raise FerryError("invalid retention %r" % part.strip())
        archives.append((spp, points))
    return sorted(archives)


class Rules:
    """Storage schemas and aggregation rules, in Carbon's order; empty when no file is given."""

    def __init__(self, schemas=None, aggregation=None):
        self.schemas = [(name, rx, parse_retentions(sec["retentions"]))
                        for name, rx, sec in _sections(schemas, "retentions")]
        self.aggregation = [(name, rx, sec.get("aggregationmethod"), sec.get("xfilesfactor"))
                            for name, rx, sec in _sections(aggregation, None)]

    def retentions(self, metric):
        for _name, regex, archives in self.schemas:
            if regex.search(metric):
                return archives
        return None

    def aggregation_for(self, metric, default_method, default_xff=0.5):
        for name, regex, method, xff in self.aggregation:
            if regex.search(metric):
                method = (method or default_method).strip().lower()
                if method not in AGGREGATIONS:
                    raise FerryError("storage-aggregation section [%s]: unknown aggregationMethod %r" % (name, method))
                try:
                    factor = float(xff) if xff is not None else default_xff
                except ValueError:
                    factor = None
                if factor is None or not 0.0 <= factor <= 1.0:  # whisper cannot read a file with another one
                    raise FerryError("storage-aggregation section [%s]: invalid xFilesFactor %r (0 to 1)" % (name, xff))
                return method, factor
        return default_method, default_xff


def _sections(path, required):
    if not path:
        return []
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        with open(path) as handle:
            parser.read_file(handle)
    except (OSError, configparser.Error) as exc:
        raise FerryError("cannot read %s: %s" % (path, getattr(exc, "strerror", None) or exc))
    sections = []
    for name in parser.sections():
        section = parser[name]
        if "pattern" not in section or (required and required not in section):
            continue  # Carbon skips these too (e.g. a section without a pattern)
        try:
            sections.append((name, re.compile(section["pattern"]), section))
        except re.error as exc:
            raise FerryError("%s section [%s]: invalid pattern %r (%s)" % (path, name, section["pattern"], exc))
    return sections


def metric_problem(metric):
    """Why ``metric`` cannot name a whisper file, or None.

    Carbon makes each dot a directory and escapes nothing (``getFilesystemPath``), so a name that is not
    plain text elements between dots could leave the storage directory or break Carbon's line protocol:
    it is refused, not escaped.
    """
    if "/" in metric or "\0" in metric:
        return "it holds '/' or NUL"
    if any(element == "" for element in metric.split(".")):
        return "it has an empty element (a leading, trailing or double dot)"
    if _CONTROL.search(metric):
        return "it holds a control character (a newline, say)"
    try:
        metric.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not valid UTF-8 (the file name it comes from has other bytes)"
    return None


def whisper_path(root, metric):
    """Carbon's file for a metric: dots are directories. Refuses a metric :func:`metric_problem` finds fault with."""
    problem = metric_problem(metric)
    if problem:
        raise FerryError("invalid metric name %s: %s" % (ascii(metric), problem))
    return os.path.join(root, *metric.split(".")) + ".wsp"


def check_inside(root, path, proven=None):
    """Refuse ``path`` unless it resolves inside ``root``: a symlink in the tree could lead elsewhere.

    ``proven``: a set of directories already found inside ``root``, kept by a caller checking many files in
    few directories (resolving a path costs a system call per element).
    """
    directory = os.path.dirname(path)
    if proven is None or directory not in proven:
        _refuse_outside(root, path, os.path.join(os.path.realpath(directory), os.path.basename(path)))
        if proven is not None:
            proven.add(directory)
    if os.path.islink(path):
        _refuse_outside(root, path, os.path.realpath(path))


def _refuse_outside(root, path, real):
    if not real.startswith(os.path.realpath(root).rstrip(os.sep) + os.sep):
        raise FerryError("%s leads outside %s (to %s): refusing to follow it" % (path, root, real))
