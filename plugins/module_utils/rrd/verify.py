# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Zenoss perf tree checked against the target it was sent to: every series of every RRD file, named and computed
by the converter's own code (``TsdbJob``), looked up on the target.

Per series: it must be there, with exactly as many points as the file gives in its time range (fewer: points lost
or a file never sent; more: points stored twice, or data that is not the file's), counted by the target itself
(``tsdb.remote.count_series_on_target``, one number per series); and, for a stable sample of the files, the
first, 221st and last point (Import4's verifier's choice) read back with the target's own API
(``tsdb.remote.target_frames``) must be there once with the value the file gives, to a relative error.

``tsdb_restore``'s verification is the batches against the target (at least what was sent is there); this is the
RRD files against the target: it also sees a file that never reached a batch and a point stored twice.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import math
import os
import zlib

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import SAMPLE_LIMIT, open_private, readable
from ansible_collections.ferry.migrate.plugins.module_utils.core.tree import file_error, file_stamp
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.points import (
    iso,
    normalize_tags,
    segments_span,
    series_key,
)
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.remote import count_series_on_target, target_frames

# First, 221st and last point of a series (negative: from the end), as Import4's perf verifier samples them.
SAMPLE_POSITIONS = (0, 220, -1)
FILES_PER_GROUP = 64  # files whose series are counted with one flush and one query per metric


class Expected:
    """What the target must hold of one series: its point count over ``[first_ms, last_ms]`` and the sampled
    points ``[(stamp_ms, value)]`` (empty when the file is not in the sample)."""

    def __init__(self, relative, metric, tags, count, first_ms, last_ms, samples):
        self.relative = relative
        self.metric = metric
        self.tags = normalize_tags(tags)
        self.key = series_key(self.tags)
        self.count = count
        self.first_ms = first_ms
        self.last_ms = last_ms
        self.samples = samples

    def name(self):
        return "%s: %s %s" % (readable(self.relative), readable(self.metric), self.key)


def in_sample(relative, fraction):
    """Whether a file's values are checked: a stable hash of its path, apart from the shard's (the same files
    every run, spread evenly whatever the shard)."""
    if fraction >= 1:
        return True
    digest = zlib.crc32(b"rrd_verify\0" + relative.encode("utf-8", "surrogateescape"))
    return digest < fraction * 4294967296.0


def sample_points(segments, positions=SAMPLE_POSITIONS):
    """``(count, first_s, last_s, [(stamp_s, value)])`` of one series as the converter writes it (its
    ``series_lines`` segments: ``(times, values, known)``), the points at ``positions`` in order, each once."""
    count, first, last = segments_span(segments)
    wanted = sorted(set(p + count if p < 0 else p for p in positions if -count <= p < count))
    picked, seen = [], 0
    for times, values, known in segments:
        if not wanted:
            break
        size = len(times) if known is None else known.count(1)
        if wanted[0] < seen + size:
            for index in _known_indexes(known, len(times), [w - seen for w in wanted if w < seen + size]):
                picked.append((times[index], values[index]))
            wanted = [w for w in wanted if w >= seen + size]
        seen += size
    return count, first, last, picked


def _known_indexes(known, length, ranks):
    """Indexes of the known values of ranks ``ranks`` (sorted) in a segment of ``length`` values."""
    if known is None:
        return list(ranks)
    out, rank, want = [], 0, iter(ranks)
    target = next(want, None)
    index = known.find(1)
    while target is not None and 0 <= index < length:
        if rank == target:
            out.append(index)
            target = next(want, None)
        rank += 1
        index = known.find(1, index + 1)
    return out


def expected_series(job, relative, sample):
    """``(expected, skip_reason)`` for one file: the :class:`Expected` of each series the converter ``job`` writes
    of it (none for a skipped file, with the converter's reason); raises what reading the file raises."""
    reason = job.skip_reason(relative)
    if reason:
        return [], reason
    out = []
    series, _infinite = job.series(relative)
    for metric, tags, segments in series:
        count, first, last, picked = sample_points(segments)
        if count:
            samples = [(stamp * 1000, value) for stamp, value in picked] if sample else []
            out.append(Expected(relative, metric, tags, count, first * 1000, last * 1000, samples))
    return out, None


def same_value(want, found, tolerance):
    """Whether the target's value is the file's, to a relative error of ``tolerance``."""
    try:
        found = float(found)
    except (TypeError, ValueError):
        return False
    if not math.isfinite(found):
        return False
    return found == want or abs(found - want) <= tolerance * max(abs(want), abs(found))


class Verifier:
    """Checks groups of :class:`Expected` series on a target (``kind`` victoriametrics or opentsdb, ``client`` an
    ``HttpClient`` of its query API); differences are kept as texts naming the file and the series."""

    def __init__(self, kind, client, tolerance=1e-7, retries=5):
        self.kind = kind
        self.client = client
        self.tolerance = tolerance
        self.retries = retries
        self.counts = {"series": 0, "expected_points": 0, "found_points": 0, "values_checked": 0,
                       "missing_series": 0, "differences": 0}

    def check(self, expected):
        """Differences of one group of series (texts); the counts add up across groups."""
        differences = self._check_counts(expected) + self._check_values(expected)
        self.counts["series"] += len(expected)
        self.counts["differences"] += len(differences)
        return differences

    def _check_counts(self, expected):
        ranges = {}
        for item in expected:
            first, last = ranges.get(item.metric, (item.first_ms, item.last_ms))
            ranges[item.metric] = (min(first, item.first_ms), max(last, item.last_ms))
        found = count_series_on_target(self.kind, self.client, dict(
            (metric, (first, last, None)) for metric, (first, last) in ranges.items()), self.retries)
        out = []
        for item in expected:
            there = (found.get(item.metric) or {}).get(item.key, 0)
            self.counts["expected_points"] += item.count
            self.counts["found_points"] += there
            if there == 0:
                self.counts["missing_series"] += 1
                out.append("%s: missing on the target (the file gives %d point(s), %s to %s)"
                           % (item.name(), item.count, iso(item.first_ms), iso(item.last_ms)))
            elif there < item.count:
                out.append("%s: %d of %d point(s) on the target" % (item.name(), there, item.count))
            elif there > item.count:
                out.append("%s: %d point(s) on the target, the file gives %d (stored twice, or points that are not "
                           "the file's)" % (item.name(), there, item.count))
        return out

    def _check_values(self, expected):
        wanted = {}  # (metric, stamp) -> series to check there: one query serves all the metric's series
        for item in expected:
            for stamp, value in item.samples:
                wanted.setdefault((item.metric, stamp), []).append((item, value))
        out = []
        for (metric, stamp), items in sorted(wanted.items()):
            held = {}
            # two ms: OpenTSDB refuses a query whose end is its start
            for frame in target_frames(self.kind, self.client, metric, stamp, stamp + 2, self.retries):
                for _name, tags, at, value in frame:
                    if at == stamp:
                        held.setdefault(series_key(tags), []).append(value)
            for item, value in items:
                self.counts["values_checked"] += 1
                out.extend(self._compare(item, stamp, value, held.get(item.key) or []))
        return out

    def _compare(self, item, stamp, value, found):
        where = "%s at %s (%d)" % (item.name(), iso(stamp), stamp)
        if not found:
            return ["%s: the file gives %r, the target has no point" % (where, value)]
        if len(found) > 1:
            return ["%s: the target holds %d points (%s), the file one (%r)"
                    % (where, len(found), ", ".join(repr(v) for v in found), value)]
        if not same_value(value, found[0], self.tolerance):
            return ["%s: the file gives %r, the target has %r" % (where, value, found[0])]
        return []


def verify_files(job, files, verifier, sample=1.0, report_path=None, step=None, group_size=FILES_PER_GROUP):
    """Check every file of ``files`` (relative to ``job.src``, this shard's) on the target; returns the counts,
    the first differences, skipped and unreadable files. Every difference and unreadable file is also written to
    ``report_path`` (JSON lines). ``step``: the journal step (progress, STOP between groups)."""
    result = {"differences": [], "unreadable_files": [], "skipped_files": []}
    counts = {"files": 0, "sampled": 0, "skipped": 0, "unreadable": 0}
    report = open_private(report_path) if report_path else None
    try:
        for start in range(0, len(files), group_size):
            if step is not None:
                step.check_stop("%d file(s)" % start)
            expected = []
            for relative in files[start:start + group_size]:
                counts["files"] += 1
                picked = in_sample(relative, sample)
                try:
                    series, reason = expected_series(job, relative, picked)
                except Exception as exc:  # pylint: disable=broad-except  # what a file holds fails that file
                    _note(result["unreadable_files"], report, "unreadable", readable(file_error(relative, exc)))
                    counts["unreadable"] += 1
                    continue
                if reason:
                    counts["skipped"] += 1
                    _keep(result["skipped_files"], "%s: %s" % (readable(relative), reason))
                    continue
                counts["sampled"] += 1 if picked else 0
                expected.extend(series)
            for text in verifier.check(expected) if expected else ():
                _note(result["differences"], report, "difference", text)
            if step is not None:
                step.progress(min(start + group_size, len(files)))
    finally:
        if report is not None:
            report.close()
    counts.update(verifier.counts)
    result["counts"] = counts
    return result


def _keep(sample, text):
    if len(sample) < SAMPLE_LIMIT:
        sample.append(text)


def _note(sample, report, kind, text):
    _keep(sample, text)
    if report is not None:
        report.write((json.dumps({kind: text}) + "\n").encode("ascii"))


def files_digest(src, files):
    """A digest of the files' names and stamps (size, mtime): a verification is done again once they change."""
    digest = hashlib.sha256()
    for relative in files:
        entry = json.dumps([relative, file_stamp(os.path.join(src, relative))])
        digest.update(entry.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()
