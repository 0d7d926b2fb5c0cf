# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whisper layouts for RRD archives: which whisper archives a file gets (:func:`plan_layout`) and the values of
each (:func:`target_series`; :func:`existing_series` for backfilling a file that is there already)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

from ansible_collections.ferry.migrate.plugins.module_utils.rrd.rrdfile import STAMP_START
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.whisper import aggregate


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
        values.append(aggregate(method, known, factor) if known and len(known) >= xff * factor else None)
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
