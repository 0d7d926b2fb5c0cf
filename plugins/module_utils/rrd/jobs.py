# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The work on a group of RRD files, the jobs ``core/tree.py`` runs: whisper files (:class:`WhisperJob`, NAV 3 -> 4)
or a point batch (:class:`PointBatchJob` over a :class:`TsdbJob`, Zenoss 4 -> 5)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import hashlib
import os

from ansible_collections.ferry.migrate.plugins.module_utils.tsdb import points as tsdb
from ansible_collections.ferry.migrate.plugins.module_utils.rrd import whisper
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.staging import NoSpace, StagedFile, check_space, publish
from ansible_collections.ferry.migrate.plugins.module_utils.core.tree import file_error, file_stamp
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.layout import existing_series, plan_layout, target_series
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.rrdfile import (
    STAMP_END,
    RrdFile,
    SourceSeries,
    strip_suffix,
)

FRAME_BYTES = 8 << 20  # point lines a worker holds before writing them as one gzip member
TSDB_LAST_TIME = 9999999999  # OpenTSDB's latest time: 13 digits of milliseconds (2286-11-20)


class WhisperJob:
    """Converts RRD files into whisper files (one per data source and consolidation function).

    Called with a group of files: new whisper files are written to a staging directory, made durable
    with one file-system sync, then renamed into place (and synced again) before the group's results
    are returned (``core.staging.publish``), so a file reported done survives a crash. Whatever goes wrong with one file (its data,
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
                taken.update(item.path for item in staged)
            self._commit(converted)
        except BaseException:  # out of space, or killed: nothing of the group stays staged
            for _result, staged in converted:
                _unstage(None, staged)
            raise
        return [result for result, _staged in converted]

    def convert(self, relative, staged, taken=frozenset()):
        """One RRD file: its result; its new whisper files are appended to ``staged`` (:class:`StagedFile`, with
        the points it holds as ``info``).
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
        if path in taken or any(item.path == path for item in staged):
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
        staged.append(self._stage(data, path, points))
        result["created"] += 1
        result["points"] += points

    def _stage(self, data, path, points):
        check_space(self.dest, len(data), self.min_free, path)
        if not os.path.isdir(self.staging):
            os.makedirs(self.staging, exist_ok=True)
        staged = StagedFile.create(path, self.staging, prefix="tmp", suffix=".wsp.tmp")
        try:
            staged.write(data)
            staged.close()
            staged.set_mode(self.mode, self.owner)
        except BaseException:
            staged.abort()
            raise
        staged.info = points
        return staged

    def _commit(self, converted):
        """Sync the staged files once, rename each file's into place, sync again. A file whose whisper files
        cannot be placed (a name too long for the file system, a symlink leading out of ``dest``) fails alone;
        the ones it placed already stay (a later run backfills them)."""
        directories = set()

        def place(staged):
            directory = os.path.dirname(staged.path)
            if directory not in directories:
                whisper.make_dirs(directory, self.dir_mode, self.owner)
                whisper.check_inside(self.dest, staged.path)  # again, now that its directories exist
                directories.add(directory)
            staged.place()  # a rename: replaces a symlink at its path, never follows it

        def failed(result, exc, aborted):
            result["error"] = "%s: cannot place its whisper file %s (%s)" % (
                result["file"], aborted[0].path, _reason(exc))
            _unstage(result, aborted)
        publish(self.dest, converted, place, failed)


def _reason(exc):
    """An OSError as its text and errno name (``File name too long (ENAMETOOLONG)``), anything else as is."""
    if isinstance(exc, OSError) and exc.strerror:
        return "%s (%s)" % (exc.strerror, errno.errorcode.get(exc.errno, exc.errno))
    return str(exc)


def _unstage(result, staged):
    """Remove a file's staged whisper files and, with its ``result``, stop counting them as created."""
    for item in staged:
        item.abort()
        if result is not None:
            result["created"] -= 1
            result["points"] -= item.info
    del staged[:]


def gauge_sibling(relative):
    """The ``X_GAUGE.rrd`` beside a file ``X.rrd`` (same directory, same suffix: ``X_GAUGE.rrd.xml`` for
    ``X.rrd.xml``), whose presence makes the converter skip ``X.rrd``; None for a file that is itself ``_GAUGE``."""
    directory, name = os.path.split(relative)
    base = strip_suffix(name)
    if base.endswith("_GAUGE"):
        return None
    return os.path.join(directory, base + "_GAUGE" + name[len(base):])


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
        gauge = gauge_sibling(relative)
        if gauge and os.path.exists(os.path.join(self.src, gauge)):
            return "%s exists (Zenoss skips the file without the suffix)" % os.path.basename(gauge)
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
                writer.abort(remove=True)
        except BaseException:
            writer.abort(remove=True)
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
