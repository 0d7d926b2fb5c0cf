# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RRD trees converted file by file: to whisper files (NAV 3 -> 4) or to OpenTSDB points (Zenoss 4 -> 5).

Both conversions share the file walk, the shard split (a stable hash of the relative path, so a
group of hosts can split one tree), the worker pool and the per-file completion record that lets a
killed run resume (:func:`run`). What differs is the work on one file (:class:`WhisperJob`,
:class:`TsdbJob`).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv
import errno
import functools
import hashlib
import io
import json
import math
import multiprocessing
import os
import re
import shutil
import tempfile
import time
import zlib

from ansible_collections.ferry.migrate.plugins.module_utils.tsdb import points as tsdb
from ansible_collections.ferry.migrate.plugins.module_utils.rrd import whisper
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import (
    FerryError,
    free_bytes,
    human_bytes,
    open_private,
    remove_quietly,
    sync_filesystem,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import STOP_FILE, Stopped, stop_requested
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.rrdfile import (
    STAMP_END,
    STAMP_START,
    RrdFile,
    SourceSeries,
    source_files,
    strip_suffix,
)

_NAV_UNSAFE = re.compile(r"[./ (),]")
_ZENOSS_UNSAFE = re.compile(r"[^0-9a-zA-Z\-_./]")
SAMPLE_LIMIT = 50  # failures / warnings listed in a result; the step's report file has them all
FRAME_BYTES = 8 << 20  # point lines a worker holds before writing them as one gzip member
TSDB_LAST_TIME = 9999999999  # OpenTSDB's latest time: 13 digits of milliseconds (2286-11-20)
_UNPRINTABLE = dict((code, "\\x%02x" % code) for code in list(range(32)) + [127])


def nav_escape(part):
    """NAV's escaping of one metric path element."""
    return _NAV_UNSAFE.sub("_", part)


def zenoss_escape(text):
    """Zenoss's: characters outside [0-9a-zA-Z-_./] become '-'."""
    return _ZENOSS_UNSAFE.sub("-", text)


def in_shard(relative, shard_index, shard_count):
    """Whether a file is in this shard: a hash of its name's bytes (as they are, UTF-8 or not)."""
    return shard_count <= 1 or zlib.crc32(relative.encode("utf-8", "surrogateescape")) % shard_count == shard_index


def readable(text):
    """``text`` fit for a task result and a log: bytes of a file name that are not UTF-8 as ``\\xff``, control
    characters (a newline in a file name) as ``\\x0a``. Ansible refuses a result that is not valid UTF-8."""
    try:
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # surrogates that do not stand for bytes
        data = text.encode("utf-8", "backslashreplace")
    return data.decode("utf-8", "backslashreplace").translate(_UNPRINTABLE)


def file_error(relative, exc):
    """The reason one file failed, naming it: whatever the file holds fails that file, not its group."""
    if isinstance(exc, FerryError):
        text = str(exc)
    elif isinstance(exc, (OSError, ValueError)):
        text = "%s: %s" % (relative, exc)
    else:  # a case no check foresaw: still that file's failure, with what went wrong
        text = "%s: %s: %s" % (relative, type(exc).__name__, exc)
    return text if relative in text else "%s: %s" % (relative, text)


class NoSpace(FerryError):
    """The file system of the output is too full to go on: the run stops (files of other groups are fine)."""


def check_space(directory, needed, min_free, what):
    """Raise :class:`NoSpace` when writing ``needed`` bytes for ``what`` (a file name; None before anything is
    written) would leave less than ``min_free`` bytes free where ``directory`` is, or will be."""
    if not min_free and not needed:
        return
    existing = directory
    while not os.path.isdir(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)  # a directory not made yet: the file system it will be on
    free = free_bytes(existing)
    if free - needed < min_free:
        message = "not enough free space in %s: %s free, %s must stay free (min_free_mb)" % (
            directory, human_bytes(free), human_bytes(min_free))
        raise NoSpace(message + (", and %s needs %s" % (readable(what), human_bytes(needed)) if needed else ""))


# -- naming ---------------------------------------------------------------------------------------------------
class Mapping(dict):
    """{(relative rrd path, ds or ''): metric}, and in ``scales`` the factors some entries give."""

    def __init__(self):
        dict.__init__(self)
        self.scales = {}


def load_mapping(path, root):
    """A mapping file as a :class:`Mapping`.

    CSV rows ``rrd_path,metric``, ``rrd_path,ds,metric`` or ``rrd_path,ds,metric,scale`` (a header row
    naming ``metric`` is skipped); YAML ``{rrd_path: metric}``, ``{rrd_path: {ds: metric}}`` or
    ``{rrd_path: {ds: {metric: m, scale: f}}}``. Absolute paths under ``root`` are made relative to it.
    A metric given for a file without a DS is the file's prefix: its data sources are appended. A scale
    multiplies the values (NAV 4 stores sensors scaled by their precision, NAV 3 did not).
    """
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FerryError("cannot read mapping file %s: %s" % (path, getattr(exc, "strerror", None) or exc))
    entries = _yaml_mapping(path, text) if path.endswith((".yml", ".yaml")) else _csv_mapping(path, text)
    mapping = Mapping()
    root = os.path.abspath(root)
    for rrd_path, ds, metric, scale in entries:
        if os.path.isabs(rrd_path):
            rrd_path = os.path.relpath(rrd_path, root)
        key = (os.path.normpath(rrd_path), ds or "")
        if key in mapping and mapping[key] != metric:
            raise FerryError("mapping file %s maps %s%s twice (%s, %s)"
                             % (path, rrd_path, " ds " + ds if ds else "", mapping[key], metric))
        mapping[key] = metric
        if scale not in (None, ""):
            mapping.scales[key] = _scale(path, rrd_path, scale)
    return mapping


def _scale(path, rrd_path, text):
    try:
        factor = float(text)
    except (TypeError, ValueError):
        factor = float("nan")
    if math.isnan(factor) or math.isinf(factor) or factor == 0.0:
        raise FerryError("mapping file %s: %s has an invalid scale %r" % (path, rrd_path, text))
    return factor


def _csv_mapping(path, text):
    header_seen = False
    for number, row in enumerate(csv.reader(io.StringIO(text)), 1):
        row = [cell.strip() for cell in row]
        if not row or not any(row) or row[0].startswith("#"):
            continue
        first_row, header_seen = not header_seen, True
        if first_row and "metric" in [cell.lower() for cell in row]:
            continue
        if len(row) == 2:
            row = [row[0], "", row[1]]
        if len(row) == 3:
            row.append("")
        if len(row) != 4 or not row[0] or not row[2]:
            raise FerryError("mapping file %s line %d: expected rrd_path,metric or rrd_path,ds,metric[,scale]"
                             % (path, number))
        yield tuple(row)


def _yaml_mapping(path, text):
    try:
        import yaml  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise FerryError("reading the YAML mapping file %s needs PyYAML" % path)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise FerryError("mapping file %s is not valid YAML (%s)" % (path, exc))
    if not isinstance(data, dict):
        raise FerryError("mapping file %s: expected a mapping of RRD paths to metrics" % path)
    for rrd_path, value in data.items():
        if isinstance(value, dict):
            for ds, metric in value.items():
                if isinstance(metric, dict) and "metric" in metric:
                    yield str(rrd_path), str(ds), str(metric["metric"]), metric.get("scale")
                else:
                    yield str(rrd_path), str(ds), str(metric), None
        elif isinstance(value, str):
            yield str(rrd_path), "", value, None
        else:
            raise FerryError("mapping file %s: %s maps to %r, expected a metric or {ds: metric}" % (path, rrd_path, value))


class NavNames:
    """Metric names for whisper: a mapping file's, else ``<prefix>.<dir>...<rrd name>.<ds>`` escaped like NAV."""

    def __init__(self, prefix="", mapping=None, unmapped="default"):
        self.prefix = prefix.strip(".")
        problem = whisper.metric_problem(self.prefix) if self.prefix else None
        if problem:
            raise FerryError("invalid metric_prefix %s: %s" % (ascii(prefix), problem))
        self.mapping = mapping
        self.unmapped = unmapped

    def metric(self, relative, ds):
        """The metric of one data source, or None to skip it."""
        if self.mapping is not None:
            key = _mapping_key(relative)
            if (key, ds) in self.mapping:
                return self.mapping[(key, ds)]
            if (key, "") in self.mapping:
                return self.mapping[(key, "")] + "." + nav_escape(ds)
            if self.unmapped == "skip":
                return None
        parts = relative.split(os.sep)
        parts[-1] = strip_suffix(parts[-1])
        names = [nav_escape(part) for part in parts] + [nav_escape(ds)]
        return ".".join(([self.prefix] if self.prefix else []) + names)

    def scale(self, relative, ds):
        """The factor the mapping file gives a data source's values (1.0 without one)."""
        scales = getattr(self.mapping, "scales", None)
        if not scales:
            return 1.0
        key = _mapping_key(relative)
        return scales.get((key, ds), scales.get((key, ""), 1.0))


def _mapping_key(relative):
    """A file's key in a mapping: ``x.rrd`` also for its dump ``x.rrd.xml[.gz]`` (the mapping names the RRD)."""
    key = os.path.normpath(relative)
    for suffix in (".xml.gz", ".xml"):
        if key.endswith(".rrd" + suffix):
            return key[:-len(suffix)]
    return key


class ZenossNames:
    """Zenoss 5 naming of a perf file under ``Devices/``: metric ``<device>/<name>``, tags device / key / tenant."""

    def __init__(self, tenant, rrdpath_map=None, metric_template="{device}/{name}", tag_templates=None):
        self.tenant = tenant
        self.rrdpath_map = rrdpath_map or {}
        self.metric_template = metric_template
        self.tag_templates = tag_templates or {"device": "{device}", "key": "{key}", "zenoss_tenant_id": "{tenant}"}
        sample = dict.fromkeys(("device", "name", "dir", "path", "key", "tenant", "ds"), "x")
        for template in [metric_template] + list(self.tag_templates.values()):
            try:
                str(template).format(**sample)
            except (KeyError, IndexError, ValueError) as exc:
                raise FerryError("invalid naming template %r (%s): use the fields %s"
                                 % (template, exc, ", ".join("{%s}" % f for f in sorted(sample))))

    def fields(self, relative):
        """Template fields of a file, or None when Zenoss would skip it."""
        parts = relative.split(os.sep)
        if len(parts) < 3 or parts[0] != "Devices":
            return None
        name = strip_suffix(parts[-1])
        if name.endswith("_GAUGE"):
            name = name[:-len("_GAUGE")]
        directory = "/".join(parts[:-1])
        return {"device": parts[1], "name": name, "dir": directory, "path": "/".join(parts[:-1] + [name]),
                "key": self.rrdpath_map.get(directory, directory), "tenant": self.tenant}

    def series(self, fields, ds, several):
        values = dict(fields, ds=ds)
        metric = self.metric_template.format(**values)
        if several and "{ds}" not in self.metric_template:
            metric += "_" + ds
        tags = dict((key, zenoss_escape(template.format(**values))) for key, template in self.tag_templates.items())
        return zenoss_escape(metric), tags


def find_upwards(directory, name, levels=3):
    """``name`` in ``directory`` or up to ``levels`` directories above it, or None."""
    current = os.path.abspath(directory)
    for _level in range(levels + 1):
        candidate = os.path.join(current, name)
        if os.path.isfile(candidate):
            return candidate
        current = os.path.dirname(current)
    return None


def read_rrdpath_map(path):
    """``Devices/<dir>|<object path>`` lines as a dict; a missing file is an empty map."""
    mapping = {}
    if not path or not os.path.exists(path):
        return mapping
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            if "|" not in line:
                raise FerryError("%s line %d: expected Devices/<dir>|<object path>" % (path, number))
            directory, target = line.split("|", 1)
            mapping[directory.strip().rstrip("/")] = target.strip()
    return mapping


def read_tenant(path):
    """The dmd UUID of dmd_uuid.txt, without its newline (Zenoss's importer kept it)."""
    try:
        with open(path, "rb") as handle:
            tenant = handle.read(4096).decode("utf-8", "replace").strip()
    except OSError as exc:
        raise FerryError("cannot read the tenant id from %s: %s" % (path, exc.strerror))
    if not tenant:
        raise FerryError("%s is empty: it should hold the Zenoss instance UUID" % path)
    return tenant


# -- whisper layout --------------------------------------------------------------------------------------------
class Target:
    """One archive of a whisper file to build: resolution, points and where its values come from."""

    __slots__ = ("spp", "points", "sources", "how")

    def __init__(self, spp, points, sources, how):
        self.spp = spp
        self.points = points
        self.sources = sources  # RRD archives, preferred first
        self.how = how          # mirror | expand | pick

    def as_tuple(self):
        return (self.spp, self.points)


def plan_layout(archives, finer=None):
    """Whisper archives for RRD archives (finest first), plus schema archives finer than them.

    Whisper wants each resolution to divide the next and each archive to cover more than the finer
    one; RRDs do not always oblige. Archives that chain are mirrored; one that does not divide is
    folded into the next coarser archive (whose own rows come first) or, coarser than all, stored at
    the next multiple. Returns (targets, warnings); nothing fails.
    """
    warnings = []
    layout, leftovers = [], []
    for archive in archives:
        if not layout or archive.step % layout[-1].spp == 0:
            layout.append(Target(archive.step, archive.rows, [archive], "mirror"))
        else:
            leftovers.append(archive)
    for archive in leftovers:
        host = next((t for t in layout if t.spp >= archive.step), None)
        if host is None:
            spp = -(-archive.step // layout[-1].spp) * layout[-1].spp
            layout.append(Target(spp, -(-archive.step * archive.rows // spp), [archive], "pick"))
            warnings.append("archive of %d s does not divide into %d s: stored as %d s (each slot takes the row "
                            "holding its start)" % (archive.step, layout[-2].spp, spp))
            continue
        warnings.append("archive of %d s does not divide into the others: its rows fill the %d s archive where "
                        "that one has none" % (archive.step, host.spp))
        host.sources.append(archive)
        host.how = "pick"
        host.points = max(host.points, -(-archive.step * archive.rows // host.spp))
    layout = _finer_targets(layout[0], finer, warnings) + layout
    for finer_target, coarser in zip(layout, layout[1:]):
        # whisper: enough finer points to make one coarser point, and each archive covering more than the finer
        if finer_target.points * finer_target.spp < coarser.spp:
            finer_target.points = -(-coarser.spp // finer_target.spp)
        if coarser.spp * coarser.points <= finer_target.spp * finer_target.points:
            coarser.points = finer_target.spp * finer_target.points // coarser.spp + 1
    return layout, warnings


def _finer_targets(finest, schema, warnings):
    """Schema archives finer than the RRD's finest, each dividing the next (adjusted with a warning)."""
    extra = []
    for spp, points in sorted(schema or [], reverse=True):
        limit = extra[0].spp if extra else finest.spp
        if spp >= limit:
            continue
        adjusted = max(d for d in range(1, spp + 1) if limit % d == 0)
        if adjusted != spp:
            warnings.append("schema archive of %d s does not divide into %d s: stored as %d s" % (spp, limit, adjusted))
            points = -(-spp * points // adjusted)
        extra.insert(0, Target(adjusted, points, [finest.sources[0]], "expand"))
    return extra


def target_series(series, target):
    """(times, values) for one whisper archive: contiguous, ascending, stamped at interval starts."""
    points = target.points
    if target.how == "mirror":
        data = series.archive_series(target.sources[0], STAMP_START)
        return data.times, data.values
    if target.how == "expand":
        return _expand(series, target.sources[0], target.spp, points)
    return _pick(series, target.sources, target.spp, points)


def _expand(series, archive, spp, points):
    """A finer archive from a coarser one: values held, a rebuilt counter rising at the row's rate.

    Holding a counter would put the whole increment in the last sub-slot (spikes); rising linearly
    keeps the rate.
    """
    factor = archive.step // spp
    rows = min(archive.rows, -(-points // factor))
    data = series.archive_series(archive, STAMP_START)
    times = data.times[len(data.times) - rows:]
    values = data.values[len(data.values) - rows:]
    if series.rebuild:
        rates = series.rates(archive)[archive.rows - rows:]
        expanded = [None if math.isnan(v) else v - r * archive.step + r * spp * (j + 1)
                    for v, r in zip(values, rates) for j in range(factor)]
    else:
        expanded = [None if math.isnan(v) else v for v in values for _j in range(factor)]
    return range(times[0], times[0] + len(expanded) * spp, spp), expanded


def _pick(series, archives, spp, points):
    """Each slot takes the row holding its start, from the first source covering it (unknown stays unknown)."""
    sources = [series.archive_series(a, STAMP_START) for a in archives]
    end = max(s.times[-1] + s.step for s in sources)
    end -= end % spp
    start = end - points * spp
    values = []
    for slot in range(start, end, spp):
        value = None
        for source in sources:
            position = (slot - source.times[0]) // source.step
            if 0 <= position < len(source.values):
                value = source.values[position]
                break
        values.append(None if value is None or math.isnan(value) else value)
    return range(start, end, spp), values


def _aggregate(series, archive, spp, points, method, xff):
    """A coarser resolution from an archive whose step divides it, the way Carbon would aggregate."""
    factor = spp // archive.step
    data = series.archive_series(archive, STAMP_START)
    end = data.times[-1] + archive.step
    end -= end % spp
    start = max(end - points * spp, data.times[0] - data.times[0] % spp)
    values = []
    for slot in range(start, end, spp):
        first = (slot - data.times[0]) // archive.step
        known = [v for v in data.values[max(0, first):max(0, first + factor)] if not math.isnan(v)]
        values.append(whisper.aggregate(method, known, factor) if known and len(known) >= xff * factor else None)
    return range(start, end, spp), values


def existing_series(series):
    """For backfilling a file with its own archives: (spp, points, method, xff) -> (times, values) or None.

    Same resolution: the archive as is; finer than the RRD: expanded; coarser: aggregated from the
    finest archive dividing it, with the file's method and xFilesFactor; otherwise picked.
    """
    archives = series.archives

    def series_for(spp, points, method, xff):
        same = [a for a in archives if a.step == spp]
        if same:
            return target_series(series, Target(spp, points, same, "mirror"))
        finest = archives[0]
        if spp < finest.step and finest.step % spp == 0:
            return target_series(series, Target(spp, points, [finest], "expand"))
        dividing = [a for a in archives if a.step < spp and spp % a.step == 0]
        if dividing:
            return _aggregate(series, dividing[0], spp, points, method, xff)
        return target_series(series, Target(spp, points, [a for a in archives if a.step <= spp] or archives, "pick"))
    return series_for


# -- one file -----------------------------------------------------------------------------------------------
class WhisperJob:
    """Converts RRD files into whisper files (one per data source and consolidation function).

    Called with a group of files: new whisper files are written to a staging directory, made durable
    with one file-system sync, then renamed into place (and synced again) before the group's results
    are returned, so a file reported done survives a crash. Whatever goes wrong with one file (its data,
    its metric names, placing its whisper files) fails that file alone; only a lack of space
    (``min_free`` bytes must stay free in ``dest``) stops the run.
    """

    def __init__(self, src, dest, names, rules=None, consolidations=("AVERAGE",), counters="rebuild",
                 owner=None, mode=0o644, dir_mode=0o755, staging=None, min_free=0):
        self.src = os.path.abspath(src)
        self.dest = os.path.abspath(dest)
        self.names = names
        self.rules = rules or whisper.Rules()
        self.consolidations = consolidations
        self.counters = counters
        self.owner = owner  # (uid, gid) or None
        self.mode = mode
        self.dir_mode = dir_mode
        self.staging = staging or os.path.join(self.dest, ".ferry-staging")
        self.min_free = min_free
        self._proven = set()  # directories found inside dest by this group

    def __call__(self, files):
        converted, taken = [], set()  # (result, its staged files) per file; the whisper files staged so far
        self._proven = set()
        try:
            for relative in files:
                staged = []
                converted.append((self.convert(relative, staged, taken), staged))
                taken.update(path for _temp, path, _points in staged)
            self._commit(converted)
        except BaseException:  # out of space, or killed: nothing of the group stays staged
            for _result, staged in converted:
                _unstage(None, staged)
            raise
        return [result for result, _staged in converted]

    def convert(self, relative, staged, taken=frozenset()):
        """One RRD file: its result; its new whisper files are appended to ``staged`` as (temp, path, points).
        ``taken``: whisper files other files of the group stage (a metric comes from one data source only)."""
        result = {"file": relative, "created": 0, "backfilled": 0, "up_to_date": 0, "points": 0, "warnings": [],
                  "stamp": file_stamp(os.path.join(self.src, relative))}  # taken first: a later change shows
        try:
            rrd = RrdFile.open(os.path.join(self.src, relative))
            rrd.check_times(whisper.FIRST_TIME, whisper.LAST_TIME, "whisper")
            for cf in self.consolidations:
                if not rrd.archives_of(cf):
                    if cf != "AVERAGE":
                        result["warnings"].append("%s: no %s archive" % (relative, cf))
                    continue
                for source in rrd.sources:
                    self._one(rrd, relative, source, cf, result, staged, taken)
        except NoSpace:
            raise
        except Exception as exc:  # what one file holds fails that file only, whatever it is
            _unstage(result, staged)
            result["error"] = file_error(relative, exc)
        return result

    def _one(self, rrd, relative, source, cf, result, staged, taken):
        metric = self.names.metric(relative, source.name)
        if metric is None:
            result.setdefault("skipped", []).append("%s ds %s: not in the mapping file" % (relative, source.name))
            return
        if cf != "AVERAGE":
            metric += "_" + cf.lower()
        series = SourceSeries(rrd, source, cf, self.counters, self.names.scale(relative, source.name))
        path = whisper.whisper_path(self.dest, metric)
        whisper.check_inside(self.dest, path, self._proven)
        if path in taken or any(final == path for _temp, final, _points in staged):
            raise FerryError("%s: metric %s comes from two data sources (check the mapping)" % (relative, metric))
        if os.path.exists(path):
            written = whisper.backfill(path, existing_series(series))
            result["backfilled" if written else "up_to_date"] += 1
            result["points"] += written
            return
        default_method = "last" if series.rebuild else "average"
        method, xff = self.rules.aggregation_for(metric, default_method)
        targets, warnings = plan_layout(series.archives, self.rules.retentions(metric))
        result["warnings"].extend("%s: %s" % (metric, w) for w in warnings)
        layout = whisper.Layout([t.as_tuple() for t in targets], method, xff)
        data, points = whisper.build(layout, [target_series(series, t) for t in targets])
        staged.append((self._stage(data, path), path, points))
        result["created"] += 1
        result["points"] += points

    def _stage(self, data, path):
        check_space(self.dest, len(data), self.min_free, path)
        if not os.path.isdir(self.staging):
            os.makedirs(self.staging, exist_ok=True)
        fd, temp = tempfile.mkstemp(suffix=".wsp.tmp", dir=self.staging)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(temp, self.mode)
            if self.owner:
                os.chown(temp, *self.owner)
        except BaseException:
            remove_quietly(temp)
            raise
        return temp

    def _commit(self, converted):
        """Sync the staged files once, rename each file's into place, sync again. A file whose whisper files
        cannot be placed (a name too long for the file system, a symlink leading out of ``dest``) fails alone;
        the ones it placed already stay (a later run backfills them)."""
        if not any(staged for _result, staged in converted):
            return
        sync_filesystem(self.staging)
        directories = set()
        for result, staged in converted:
            try:
                while staged:
                    temp, path, _points = staged[0]
                    self._place(temp, path, directories)
                    del staged[0]
            except (FerryError, OSError) as exc:
                _unstage(result, staged)
                result["error"] = "%s: cannot place its whisper file %s (%s)" % (result["file"], path, _reason(exc))
        sync_filesystem(self.dest)

    def _place(self, temp, path, directories):
        directory = os.path.dirname(path)
        if directory not in directories:
            whisper.make_dirs(directory, self.dir_mode, self.owner)
            whisper.check_inside(self.dest, path)  # again, now that its directories exist
            directories.add(directory)
        os.rename(temp, path)  # replaces a symlink at ``path``, never follows it


def _reason(exc):
    """An OSError as its text and errno name (``File name too long (ENAMETOOLONG)``), anything else as is."""
    if isinstance(exc, OSError) and exc.strerror:
        return "%s (%s)" % (exc.strerror, errno.errorcode.get(exc.errno, exc.errno))
    return str(exc)


def _unstage(result, staged):
    """Remove a file's staged whisper files and, with its ``result``, stop counting them as created."""
    for temp, _path, points in staged:
        remove_quietly(temp)
        if result is not None:
            result["created"] -= 1
            result["points"] -= points
    del staged[:]


class TsdbJob:
    """Converts one RRD into OpenTSDB point lines (the time line of each data source, interval-end stamps)."""

    def __init__(self, src, names, consolidation="AVERAGE", counters="rebuild"):
        self.src = os.path.abspath(src)
        self.names = names
        self.consolidation = consolidation
        self.counters = counters

    def skip_reason(self, relative):
        if self.names.fields(relative) is None:
            return "not under Devices/<device>/"
        directory, name = os.path.split(relative)
        base = strip_suffix(name)
        gauge = base + "_GAUGE" + name[len(base):]
        if not base.endswith("_GAUGE") and os.path.exists(os.path.join(self.src, directory, gauge)):
            return "%s exists (Zenoss skips the file without the suffix)" % gauge
        return None

    def series(self, relative):
        """(metric, tags, segments) of each data source of the file (``tsdb.series_lines`` segments), and how
        many infinite values were left out."""
        rrd = RrdFile.open(os.path.join(self.src, relative))
        rrd.check_times(1, TSDB_LAST_TIME, "OpenTSDB")
        fields = self.names.fields(relative)
        several = len(rrd.sources) > 1
        out, infinite = [], 0
        for source in rrd.sources:
            metric, tags = self.names.series(fields, source.name, several)
            series = SourceSeries(rrd, source, self.consolidation, self.counters)
            segments, dropped = tsdb.finite_segments(series.segments(STAMP_END))
            out.append((metric, tags, segments))
            infinite += dropped
        return out, infinite


# -- the run ----------------------------------------------------------------------------------------------------
def file_stamp(path):
    """(size, mtime in ns) of a file: a file converted with another stamp has changed since."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


class DoneLog:
    """Files finished by earlier attempts of a step, with the stamp they had; made durable every second.

    ``done`` maps a relative path to its stamp (None: done whatever happens to it).
    """

    def __init__(self, path, resume):
        self.path = path
        self.done = DoneLog.read(path) if resume else {}
        self._handle = open_private(path, append=resume)
        if resume:  # cut a torn last line, or the next entry would be glued to it
            self._handle.truncate(self._complete_size(path))
        self._synced = time.time()

    @staticmethod
    def read(path, failed=False):
        """The files recorded as finished (or, with ``failed``, as failed) in ``path``, with their stamps.

        The last record of a file wins; a torn last line (a killed run) is a file to do again.
        """
        found = {}
        for relative, stamp, has_failed in DoneLog._entries(path):
            if has_failed == failed:
                found[relative] = stamp
            else:
                found.pop(relative, None)
        return found

    @staticmethod
    def _entries(path):
        if not os.path.exists(path):
            return
        with open(path, "rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    raise FerryError("%s line %r is damaged: remove the file to convert everything again"
                                     % (path, line[:80]))
                if not isinstance(entry, list):
                    entry = [entry]
                failed = entry[-1] == "failed"
                stamp = entry[1:3] if len(entry) >= 3 else None
                yield entry[0], stamp, failed

    @staticmethod
    def _complete_size(path):
        with open(path, "rb") as handle:
            data = handle.read()
        return data.rfind(b"\n") + 1

    def add(self, relative, stamp=None, failed=False):
        """Record a finished file (or a failed one: not retried while it stays as it is)."""
        if failed:
            self.done.pop(relative, None)
        else:
            self.done[relative] = stamp
        entry = [relative] + list(stamp or ()) + (["failed"] if failed else [])
        self._handle.write(json.dumps(entry).encode("utf-8") + b"\n")
        if time.time() - self._synced >= 1.0:
            self.sync()

    def sync(self):
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._synced = time.time()

    def close(self):
        self.sync()
        self._handle.close()


def pending_files(src, shard_index, shard_count, done=None, files=None, skip_failed=None):
    """Files of this shard not done yet, or changed since (size or mtime): ``files`` or every RRD under ``src``.

    ``skip_failed``: files that failed before, left out while they have not changed either.
    """
    done = done or {}
    for relative in (source_files(src) if files is None else files):
        if not in_shard(relative, shard_index, shard_count):
            continue
        record = done[relative] if relative in done else (skip_failed or {}).get(relative, False)
        if record is False or record is not None and record != file_stamp(os.path.join(src, relative)):
            yield relative


def relative_files(src, files):
    """A user's file list as sorted paths relative to ``src``; each must exist inside it."""
    root = os.path.abspath(src)
    out = set()
    for name in files:
        path = os.path.abspath(os.path.join(root, name))
        if not path.startswith(root + os.sep):
            raise FerryError("%s is not inside the source directory %s" % (name, root))
        if not os.path.isfile(path):
            raise FerryError("%s does not exist" % path)
        out.add(os.path.relpath(path, root))
    return sorted(out)


def default_workers():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, multiprocessing.cpu_count())


def resolve_owner(owner, group):
    """(uid, gid) from names or numbers; None when neither is given (-1 keeps that one)."""
    if owner is None and group is None:
        return None
    import grp  # pylint: disable=import-outside-toplevel
    import pwd  # pylint: disable=import-outside-toplevel
    return (_lookup(owner, pwd.getpwnam, "pw_uid", "user"), _lookup(group, grp.getgrnam, "gr_gid", "group"))


def _lookup(name, function, field, what):
    if name is None:
        return -1
    if str(name).isdigit():
        return int(name)
    try:
        return getattr(function(str(name)), field)
    except KeyError:
        raise FerryError("no %s named %s on this host" % (what, name))


def run_pool(function, items, workers, chunksize=8):
    """Results of ``function`` over ``items``, as they come, from ``workers`` forked processes.

    Fork, not spawn: the engine runs inside an Ansible module payload that a spawned interpreter could
    not import again.
    """
    if workers <= 1:
        for item in items:
            yield function(item)
        return
    context = multiprocessing.get_context("fork")
    pool = context.Pool(workers)
    try:
        yield from pool.imap_unordered(function, items, chunksize)
        pool.close()
    finally:
        pool.terminate()
        pool.join()


class Totals:
    """Counts of a run, a sample of problems for the task result, every problem in the report file."""

    KEYS = ("files", "failed", "skipped", "created", "backfilled", "up_to_date", "points", "warnings")

    def __init__(self, report_path, resume=False):
        self.counts = dict((key, 0) for key in self.KEYS)
        self.failures = []
        self.warnings = []
        self.skips = []
        self.report_path = report_path
        self._report = open_private(report_path, append=resume)

    def add(self, result):
        self.counts["files"] += 1
        for key in ("created", "backfilled", "up_to_date", "points"):
            self.counts[key] += result.get(key, 0)
        problems = [("warning", readable(text)) for text in result.get("warnings", ())]
        problems += [("skipped", readable(text)) for text in result.get("skipped", ())]
        if result.get("error"):
            error = readable(result["error"])
            problems.append(("failed", error))
            self.counts["failed"] += 1
            _sample(self.failures, error)
        for kind, text in problems:
            if kind == "warning":
                self.counts["warnings"] += 1
                _sample(self.warnings, text)
            elif kind == "skipped":
                self.counts["skipped"] += 1
                _sample(self.skips, text)
            self._report.write(json.dumps({"file": readable(result["file"]), kind: text}).encode("utf-8") + b"\n")

    def close(self):
        self._report.close()

    def result(self):
        return {"counts": dict(self.counts), "failed_files": list(self.failures), "file_warnings": list(self.warnings),
                "skipped_files": list(self.skips), "report": self.report_path}


def _run_groups(function, pending, group_size, workers, totals, log, log_done, step, stop_dir):
    """Every pending file, in groups, through the pool: results counted, failures (and with ``log_done``
    the finished files) recorded in ``log``, progress shown. ``pending()`` lists the files, walked twice:
    once to count them, once to convert them."""
    total = sum(1 for _f in pending())
    if step is not None:
        step.progress(0, total, "files", flush=True)
    group_size = balanced_group_size(total, group_size, workers)
    for results in run_pool(function, _chunks(pending(), group_size), workers, chunksize=1):
        for result in results:
            totals.add(result)
            failed = "error" in result
            if failed or log_done:
                log.add(result["file"], result.get("stamp"), failed=failed)
        if step is not None:
            step.progress(totals.counts["files"], total, "files")
        _check_stop(stop_dir, totals)


def balanced_group_size(total, most, workers):
    """Files a group: at most ``most``, and as many groups as a multiple of ``workers``, so that no worker
    waits for another's last group (7 groups of 64 on 2 workers leave one idle for a seventh of the run)."""
    if total <= 0:
        return most
    groups = -(-total // most)
    groups = -(-groups // workers) * workers
    return max(1, -(-total // groups))


def _check_stop(stop_dir, totals):
    if stop_requested(stop_dir):
        raise Stopped("stopped on request (%s) after %d file(s); remove the file and run again to go on"
                      % (os.path.join(stop_dir, STOP_FILE), totals.counts["files"]))


def _sample(bucket, text):
    if len(bucket) < SAMPLE_LIMIT:
        bucket.append(text)


def convert_whisper_tree(job, shard=(0, 1), workers=1, step=None, resume=False, state_path=None, files_per_group=16,
                         files=None, stop_dir=None, skip_failed=None):
    """Convert every pending RRD of ``job.src`` in this shard; returns :meth:`Totals.result`. The run stops
    (:class:`NoSpace`) before a whisper file would leave less than ``job.min_free`` bytes free in ``job.dest``."""
    state_path = state_path or os.path.join(job.dest, ".ferry-rrd_to_whisper")
    done = DoneLog(state_path + ".done", resume)
    totals = Totals(state_path + ".report.jsonl", resume)
    pending = functools.partial(pending_files, job.src, shard[0], shard[1], done.done, files, skip_failed)
    shutil.rmtree(job.staging, ignore_errors=True)  # what a killed run left
    try:
        check_space(job.dest, 0, job.min_free, None)
        _run_groups(job, pending, files_per_group, workers, totals, done, True, step, stop_dir)
    finally:
        done.close()
        totals.close()
        shutil.rmtree(job.staging, ignore_errors=True)
    out = totals.result()
    out["counts"]["already_done"] = len(done.done) - (totals.counts["files"] - totals.counts["failed"])
    return out


class PointBatchJob:
    """Converts a group of RRD files into one finished point batch (the time-series batch format).

    Whatever goes wrong with one file fails that file alone (none of its points are in the batch); only a
    lack of space (``min_free`` bytes must stay free in ``dest``) stops the run, leaving no partial batch.
    """

    def __init__(self, job, dest, min_free=0):
        self.job = job
        self.dest = os.path.abspath(dest)
        self.min_free = min_free

    def __call__(self, files):
        key = "\n".join([self.job.src] + files).encode("utf-8", "surrogateescape")
        writer = tsdb.BatchWriter(self.dest, "rrd-" + hashlib.sha1(key).hexdigest()[:16])
        results, finished = [], []
        try:
            for relative in files:
                result = self._file(writer, relative)
                if "error" not in result:
                    finished.append(relative)
                results.append(result)
                if writer.pending_bytes >= FRAME_BYTES:
                    self._end_frame(writer, relative)  # bounded memory: a gzip member of whole files
            if finished:
                self._end_frame(writer, finished[-1])
                writer.finish({"files": finished, "source": "rrd"})
            else:
                writer.abort()
                remove_quietly(writer.partial)
        except BaseException:
            writer.abort()
            remove_quietly(writer.partial)
            raise
        return results

    def _file(self, writer, relative):
        """Add one file's points to ``writer``; its result."""
        result = {"file": relative, "points": 0, "stamp": file_stamp(os.path.join(self.job.src, relative))}
        try:
            reason = self.job.skip_reason(relative)
            if reason:
                result["skipped"] = ["%s: %s" % (relative, reason)]
                return result
            blocks = []  # all of a file's series, or none of them if one fails
            series, infinite = self.job.series(relative)
            if infinite:
                result["warnings"] = ["%s: %d infinite value(s) left out (JSON and OpenTSDB have no "
                                      "infinity)" % (relative, infinite)]
            for metric, tags, segments in series:
                count, first, last = tsdb.segments_span(segments)
                if count:
                    prefix = tsdb.series_prefix(metric, tsdb.normalize_tags(tags))
                    blocks.append((metric, tsdb.series_lines(prefix, segments), count, first * 1000, last * 1000))
        except Exception as exc:  # what one file holds fails that file only, whatever it is
            return {"file": relative, "error": file_error(relative, exc), "stamp": result["stamp"]}
        for block in blocks:
            writer.add_lines(*block)
            result["points"] += block[2]
        return result

    def _end_frame(self, writer, relative):
        """Write the points held (compressed, at most ``pending_bytes``), keeping ``min_free`` bytes free."""
        check_space(self.dest, writer.pending_bytes, self.min_free, "the batch ending with %s" % relative)
        writer.end_frame()


def _chunks(items, size):
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def points_done(dest, clean=True):
    """Files already in a finished batch of ``dest`` (whatever happened to them since: converting a file
    again would send its points twice); partial batches of a killed run are removed."""
    done = {}
    if not os.path.isdir(dest):
        return done
    if clean:
        remove_partial_batches(dest)
    for manifest in tsdb.finished_batches(dest):
        if manifest.get("source") == "rrd":
            done.update(dict.fromkeys(manifest.get("files") or ()))
    return done


def remove_partial_batches(dest):
    """Remove the unfinished batches of a killed (or stopped) conversion."""
    for entry in os.listdir(dest):
        if entry.startswith(".rrd-") and entry.endswith(".partial"):
            remove_quietly(os.path.join(dest, entry))


def convert_points_tree(job, dest, shard=(0, 1), workers=1, step=None, files_per_batch=64, state_path=None,
                        files=None, resume=False, stop_dir=None, skip_failed=None, min_free=0):
    """Convert every RRD of ``job.src`` in this shard not yet in a finished batch of ``dest``.

    The batch manifests are the completion record: a file is done once the batch holding it is. Failed
    files are recorded in ``<state_path>.failed``. The run stops (:class:`NoSpace`) before a batch would
    leave less than ``min_free`` bytes free in ``dest``.
    """
    if not os.path.isdir(dest):
        os.makedirs(dest)
    check_space(dest, 0, min_free, None)
    done = points_done(dest)
    state_path = state_path or os.path.join(dest, ".ferry-rrd_to_tsdb")
    totals = Totals(state_path + ".report.jsonl", resume)
    failures = DoneLog(state_path + ".failed", resume)
    pending = functools.partial(pending_files, job.src, shard[0], shard[1], done, files, skip_failed)
    try:
        _run_groups(PointBatchJob(job, dest, min_free), pending, files_per_batch, workers, totals, failures, False,
                    step, stop_dir)
    except BaseException:
        remove_partial_batches(dest)  # those of the other workers, stopped in the middle of their batch
        raise
    finally:
        totals.close()
        failures.close()
    out = totals.result()
    for key in ("created", "backfilled", "up_to_date"):
        del out["counts"][key]
    out["counts"]["already_done"] = len(done)
    return out
