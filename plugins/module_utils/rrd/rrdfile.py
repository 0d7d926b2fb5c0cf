# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RRD files, read archive by archive, and the time lines made from them.

An :class:`RrdFile` comes from a ``.rrd`` file (through the ``rrdtool`` binding, same CPU architecture
only) or from ``rrdtool dump`` XML (any architecture; values then carry the 11 significant digits
the dump prints). It gives the data sources, the archives and, per archive, its rows exactly as
``rrdtool fetch`` returns them for that archive.

Times. An archive of step ``s`` whose last row ends at ``E`` (``last_update`` rounded down to ``s``)
has rows for the intervals ``(E - rows*s, E]``; a row is *stamped* either with its interval start
(``STAMP_START``, graphite's convention) or its interval end (``STAMP_END``, Zenoss's and rrdtool's).

The time line of one data source and consolidation function takes, for every time range, the
finest archive covering it, so each timestamp comes once. Counters (DERIVE, COUNTER, ABSOLUTE hold
rates in an RRD) are rebuilt as one continuous counter in time order: each known interval adds
``rate x that archive's step``, an unknown interval adds nothing. An archive's own series is the
same counter, anchored where the archive starts, so each of its increments is its own
``rate x step`` (see :func:`archive_series`).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import array
import bisect
import gzip
import itertools
import math
import operator
import os
import time
from xml.etree import ElementTree

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError, nan_runs, tree_files

try:
    import rrdtool
except ImportError as exc:  # the module wrappers report it with missing_required_lib
    rrdtool = None
    RRDTOOL_IMPORT_ERROR = exc
else:
    RRDTOOL_IMPORT_ERROR = None

COUNTER_TYPES = frozenset(("DERIVE", "COUNTER", "ABSOLUTE"))
STAMP_START = "start"
STAMP_END = "end"
XML_SUFFIXES = (".xml", ".xml.gz")
_NAN = float("nan")


class DataSource:
    __slots__ = ("index", "name", "type", "heartbeat", "minimum", "maximum")

    def __init__(self, index, name, dstype, heartbeat, minimum=None, maximum=None):
        self.index = index
        self.name = name
        self.type = dstype
        self.heartbeat = heartbeat
        self.minimum = minimum
        self.maximum = maximum

    @property
    def is_counter(self):
        return self.type in COUNTER_TYPES

    def as_dict(self):
        return {"name": self.name, "type": self.type, "heartbeat": self.heartbeat,
                "min": self.minimum, "max": self.maximum}


class Archive:
    __slots__ = ("index", "cf", "pdp_per_row", "rows", "xff", "step", "end")

    def __init__(self, index, cf, pdp_per_row, rows, xff, base_step, last_update):
        self.index = index
        self.cf = cf
        self.pdp_per_row = pdp_per_row
        self.rows = rows
        self.xff = xff
        self.step = pdp_per_row * base_step
        self.end = last_update - last_update % self.step

    @property
    def start(self):
        """Start of the oldest row's interval: the archive covers ``(start, end]``."""
        return self.end - self.rows * self.step

    def as_dict(self):
        return {"index": self.index, "cf": self.cf, "pdp_per_row": self.pdp_per_row, "rows": self.rows,
                "xff": self.xff, "step": self.step}


def _utc(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _binding_error(path, exc):
    return FerryError("%s is not a readable RRD file (%s)" % (path, str(exc).strip() or type(exc).__name__))


class RrdFile:
    """Header and rows of one RRD, from a ``.rrd`` or from ``rrdtool dump`` XML."""

    def __init__(self, path, step, last_update, sources, archives, columns=None, raw=None):
        self.path = path
        self.step = step
        self.last_update = last_update
        self.sources = sources
        self.archives = archives
        self._columns = columns or {}  # archive index -> one array('d') per data source, NaN = unknown
        self._raw = raw                # (path, archive index -> (offset, cur_row)) for .rrd files
        self._unknown = {}

    @classmethod
    def open(cls, path):
        if path.endswith(XML_SUFFIXES):
            return _read_xml(path)
        return _read_binary(path)

    def column(self, archive, source_index):
        """One data source's values in an archive, oldest row first: an ``array('d')``, NaN when unknown."""
        columns = self._columns.get(archive.index)
        if columns is None:
            if self._raw is not None:
                columns = _raw_columns(self._raw, archive, len(self.sources))
            else:
                columns = _rows_to_columns(_fetch_rows(self.path, archive), len(self.sources))
            self._columns[archive.index] = columns
        return columns[source_index]

    def unknown(self, archive, source_index):
        """The unknown rows of a column, as runs ``[(start, stop), ...]``."""
        key = (archive.index, source_index)
        if key not in self._unknown:
            self._unknown[key] = nan_runs(self.column(archive, source_index))
        return self._unknown[key]

    def archives_of(self, cf):
        """Archives of one consolidation function, finest first; of equal steps the longest is kept."""
        best = {}
        for archive in self.archives:
            if archive.cf == cf and (archive.step not in best or archive.rows > best[archive.step].rows):
                best[archive.step] = archive
        return [best[step] for step in sorted(best)]

    def check_times(self, first, last, target):
        """Refuse a file whose data would be stamped outside ``[first, last]`` (seconds since 1970), the times
        ``target`` can store: its last update, or a known value of a row whose interval begins before ``first``
        (rows before it that are unknown are left out anyway)."""
        if not first <= self.last_update <= last:
            raise FerryError("%s: last update %s is outside the times %s can store (%s to %s)"
                             % (self.path, self.last_update, target, _utc(first), _utc(last)))
        for archive in self.archives:
            early = min(archive.rows, -(-(first - archive.start) // archive.step))
            for source in self.sources if early > 0 else ():
                runs = self.unknown(archive, source.index)
                if not runs or runs[0][0] > 0 or runs[0][1] < early:
                    raise FerryError("%s: archive %d holds values of %s for intervals beginning before %s, which "
                                     "%s cannot store" % (self.path, archive.index, source.name, _utc(first), target))

    def describe(self):
        return {"step": self.step, "last_update": self.last_update,
                "sources": [ds.as_dict() for ds in self.sources],
                "archives": [archive.as_dict() for archive in self.archives]}


# -- .rrd through the binding ---------------------------------------------------------------------------
def _read_binary(path):
    if rrdtool is None:
        raise FerryError("reading %s needs the rrdtool Python binding (pip install rrdtool)" % path)
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # the binding would pass NULL to librrd (fetch then crashes the process)
        raise FerryError("%s: the rrdtool binding cannot open a file whose name is not UTF-8: rename it, or convert "
                         "its rrdtool dump XML" % path)
    try:
        info = rrdtool.info(path)
    except Exception as exc:  # rrdtool.OperationalError, or a TypeError on odd paths
        raise _binding_error(path, exc)
    step = int(info["step"])
    last_update = int(info["last_update"])
    sources = []
    names = sorted((int(info[key]), key[3:-7]) for key in info if key.startswith("ds[") and key.endswith("].index"))
    for position, name in names:
        prefix = "ds[%s]." % name
        sources.append(DataSource(position, name, info[prefix + "type"], int(info[prefix + "minimal_heartbeat"]),
                                  info.get(prefix + "min"), info.get(prefix + "max")))
    specs = []
    index = 0
    while "rra[%d].cf" % index in info:
        prefix = "rra[%d]." % index
        specs.append((info[prefix + "cf"], int(info[prefix + "pdp_per_row"]), int(info[prefix + "rows"]),
                      float(info[prefix + "xff"])))
        index += 1
    archives = _archives(path, step, last_update, sources, specs)
    return RrdFile(path, step, last_update, sources, archives, raw=_raw_layout(path, info, sources, archives))


def _raw_layout(path, info, sources, archives):
    """Where each archive's ring starts, when the file is laid out as rrdtool writes it.

    rrdtool has just read the header on this machine, so the values are native doubles: after
    ``header_size`` bytes come the archives in order, each ``rows`` rows of one double per data source,
    row ``cur_row`` the newest. Reading them straight is what ``rrdtool fetch`` does, without a Python
    object per value; a file that does not look like that is read through ``fetch`` instead.
    """
    header = info.get("header_size")
    row_size = 8 * len(sources)
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise FerryError("cannot read %s: %s" % (path, exc.strerror))
    if header is None or size != header + sum(a.rows for a in archives) * row_size:
        return None
    places = {}
    offset = header
    for archive in archives:
        places[archive.index] = (offset, int(info["rra[%d].cur_row" % archive.index]))
        offset += archive.rows * row_size
    return path, places


def _raw_columns(raw, archive, sources):
    """One archive's rows, read from the file (only the archives used are read)."""
    path, places = raw
    offset, cur_row = places[archive.index]
    row_size = 8 * sources
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            ring = handle.read(archive.rows * row_size)
    except OSError as exc:
        raise FerryError("cannot read %s: %s" % (path, exc.strerror))
    if len(ring) != archive.rows * row_size:
        raise FerryError("%s is truncated: archive %d ends early" % (path, archive.index))
    split = (cur_row + 1) % archive.rows * row_size  # the oldest row follows the newest
    ordered = ring[split:] + ring[:split]
    if sources == 1:
        return [array.array("d", ordered)]
    values = memoryview(ordered).cast("d")
    return [array.array("d", values[index::sources].tobytes()) for index in range(sources)]


def _rows_to_columns(rows, sources):
    """Rows of values or None (fetch, XML) as one array per data source, NaN for None."""
    if not rows:
        return [array.array("d") for _index in range(sources)]
    return [array.array("d", [_NAN if v is None else v for v in column]) for column in zip(*rows)]


def _fetch_rows(path, archive):
    """Exactly the archive's rows; refuses an answer from another archive."""
    try:
        (start, _end, step), _names, rows = rrdtool.fetch(
            path, archive.cf, "-r", str(archive.step), "-s", str(archive.start), "-e", str(archive.end))
    except Exception as exc:
        raise _binding_error(path, exc)
    if step != archive.step:
        raise FerryError("%s: rrdtool fetch answered with step %d for archive %d (%s, step %d)"
                         % (path, step, archive.index, archive.cf, archive.step))
    # row i covers (start + i*step, start + (i+1)*step]
    first = (archive.start - start) // step
    rows = rows[first:first + archive.rows]
    if len(rows) != archive.rows:
        raise FerryError("%s: rrdtool fetch returned %d rows for archive %d, expected %d"
                         % (path, len(rows), archive.index, archive.rows))
    return rows


def _archives(path, step, last_update, sources, specs):
    """The archives of a header checked first: ``specs`` are (cf, pdp_per_row, rows, xff) in file order."""
    if step <= 0 or not sources or not specs:
        raise FerryError("%s is not a usable RRD file (step %s, %d data sources, %d archives)"
                         % (path, step, len(sources), len(specs)))
    archives = []
    for index, (cf, pdp_per_row, rows, xff) in enumerate(specs):
        if pdp_per_row <= 0 or rows <= 0:
            raise FerryError("%s is not a usable RRD file (archive %d has pdp_per_row %s and %s rows)"
                             % (path, index, pdp_per_row, rows))
        archives.append(Archive(index, cf, pdp_per_row, rows, xff, step, last_update))
    return archives


# -- rrdtool dump XML ----------------------------------------------------------------------------------------
def _number(text):
    value = float(text)
    return None if math.isnan(value) else value


def _limit(text):
    return _number(text.strip()) if text else None


def _open_maybe_gzip(path):
    """The file, inflated on the fly when it is gzip (whatever its name says)."""
    with open(path, "rb") as handle:
        magic = handle.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _read_xml(path):
    """Parse a dump incrementally: rows of each archive are kept, elements are freed as they end."""
    step = last_update = None
    sources, specs, all_rows = [], [], []
    pending = {}
    try:
        with _open_maybe_gzip(path) as handle:
            for event, elem in ElementTree.iterparse(handle, events=("start", "end")):
                tag = elem.tag
                if event == "start":
                    if tag == "rra":
                        pending = {"rows": []}
                    continue
                if tag == "step" and step is None:
                    step = int(elem.text)
                elif tag == "lastupdate":
                    last_update = int(elem.text)
                elif tag == "ds" and "rows" not in pending:
                    name = elem.findtext("name")
                    if name is not None:  # the <ds> of the header, not cdp_prep's
                        sources.append(DataSource(len(sources), name.strip(), elem.findtext("type").strip(),
                                                  int(elem.findtext("minimal_heartbeat")),
                                                  _limit(elem.findtext("min")), _limit(elem.findtext("max"))))
                    elem.clear()
                elif tag == "cf":
                    pending["cf"] = elem.text.strip()
                elif tag == "pdp_per_row":
                    pending["pdp"] = int(elem.text)
                elif tag == "xff":
                    pending["xff"] = float(elem.text)
                elif tag == "row":
                    row = tuple(_number(v.text) for v in elem)
                    if len(row) != len(sources):  # a short row would shift the data sources' columns
                        raise FerryError("%s is not a readable rrdtool dump (archive %d row %d has %d values for "
                                         "%d data sources)" % (path, len(specs), len(pending["rows"]), len(row),
                                                               len(sources)))
                    pending["rows"].append(row)
                    elem.clear()
                elif tag == "rra":
                    specs.append((pending["cf"], pending["pdp"], len(pending["rows"]), pending.get("xff", 0.5)))
                    all_rows.append(pending["rows"])
                    pending = {}
                    elem.clear()
    except (ElementTree.ParseError, OSError, EOFError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FerryError("%s is not a readable rrdtool dump (%s)" % (path, exc))
    if step is None or last_update is None:
        raise FerryError("%s is not a readable rrdtool dump (no step or lastupdate)" % path)
    archives = _archives(path, step, last_update, sources, specs)
    columns = dict((archive.index, _rows_to_columns(rows, len(sources))) for archive, rows in zip(archives, all_rows))
    return RrdFile(path, step, last_update, sources, archives, columns=columns)


# -- series ------------------------------------------------------------------------------------------------
class Series:
    """The rows of one archive: ``times`` a range (stamped as asked), ``values`` an ``array('d')``, NaN unknown."""

    __slots__ = ("times", "values", "step")

    def __init__(self, times, values, step):
        self.times = times
        self.values = values
        self.step = step


def _row_times(archive, stamp, count=None):
    first_end = archive.start + archive.step
    first = first_end - archive.step if stamp == STAMP_START else first_end
    return range(first, first + (archive.rows if count is None else count) * archive.step, archive.step)


def _rebuild(rates, unknown, step, anchor):
    """A counter from rates: each known row adds rate x step, an unknown one nothing (and stays unknown).

    One chain of C iterators, no Python code per value; ``unknown`` are runs of rows.
    """
    if unknown:
        rates = array.array("d", rates)
        for start, stop in unknown:
            rates[start:stop] = array.array("d", bytes(8 * (stop - start)))  # zeros
    totals = array.array("d", itertools.accumulate(map(operator.mul, rates, itertools.repeat(float(step))),
                                                   initial=anchor))
    del totals[0]
    for start, stop in unknown:
        totals[start:stop] = array.array("d", [_NAN]) * (stop - start)
    return totals


def timeline_parts(archives):
    """For each archive (finest first), how many of its oldest rows the time line uses.

    The finest archive is used whole; a coarser one only for rows that end before every finer
    archive starts, so no timestamp comes twice.
    """
    parts = []
    cutoff = None
    for archive in archives:
        if cutoff is None:
            count = archive.rows
        else:
            count = max(0, min(archive.rows, (cutoff - archive.start) // archive.step))
        parts.append((archive, count))
        cutoff = archive.start if cutoff is None else min(cutoff, archive.start)
    return parts


class SourceSeries:
    """The series of one data source and consolidation function of an :class:`RrdFile`.

    Values are ``array('d')`` columns, NaN for unknown, with the unknown positions kept aside.
    """

    def __init__(self, rrd, source, cf, counters="rebuild", scale=1.0):
        self.rrd = rrd
        self.source = source
        self.cf = cf
        self.scale = scale
        self.archives = rrd.archives_of(cf)
        # MIN/MAX/LAST of a rate are no counter; only AVERAGE rates add up to one.
        self.rebuild = source.is_counter and counters == "rebuild" and cf == "AVERAGE"
        self._used = [(a, n) for a, n in timeline_parts(self.archives) if n]
        self._values = {}

    def rates(self, archive):
        """The archive's stored values (rates for counters), oldest first, NaN when unknown; scaled if asked."""
        column = self.rrd.column(archive, self.source.index)
        if self.scale != 1.0:
            column = array.array("d", map(operator.mul, column, itertools.repeat(self.scale)))
        return column

    def unknown(self, archive):
        return self.rrd.unknown(archive, self.source.index)

    def values(self, archive):
        """The archive's values; for a rebuilt counter, the counter (see the module docstring)."""
        if archive.index not in self._values:
            if self.rebuild:
                self._rebuild_all()
            else:
                self._values[archive.index] = self.rates(archive)
        return self._values[archive.index]

    def _rebuild_all(self):
        """Coarsest first: each archive's counter starts at the level the time line has where it starts."""
        level = 0.0
        for position in range(len(self._used) - 1, -1, -1):
            archive, count = self._used[position]
            rates, unknown = self.rates(archive), self.unknown(archive)
            values = self._values[archive.index] = _rebuild(rates, unknown, archive.step, level)
            last = _last_known(count, unknown)
            level = level if last is None else values[last]
            if position:  # the row straddling the finer archive's start adds its part up to that start
                level += _straddle(rates, unknown, archive, count, self._used[position - 1][0].start)
        if len(self._values) < len(self.archives):
            ends, totals = self.timeline(STAMP_END)
            for archive in self.archives:
                if archive.index not in self._values:
                    position = bisect.bisect_right(ends, archive.start)
                    anchor = totals[position - 1] if position else 0.0
                    self._values[archive.index] = _rebuild(self.rates(archive), self.unknown(archive), archive.step,
                                                           anchor)

    def segments(self, stamp=STAMP_END):
        """The time line by archive, oldest first: (times, values, known), ``times`` a range of the rows'
        stamps, ``known`` None when every row is known, else a mask (1 known, 0 unknown)."""
        out = []
        for archive, count in reversed(self._used):
            known = None
            unknown = [(a, min(b, count)) for a, b in self.unknown(archive) if a < count]
            if unknown:
                known = bytearray(b"\1") * count
                for start, stop in unknown:
                    known[start:stop] = bytes(stop - start)
            out.append((_row_times(archive, stamp, count), self.values(archive)[:count], known))
        return out

    def timeline(self, stamp=STAMP_END):
        """Known points of the time line, oldest first, as (times, values) lists."""
        times, values = [], []
        for stamps, column, known in self.segments(stamp):
            times.extend(stamps if known is None else itertools.compress(stamps, known))
            values.extend(column if known is None else itertools.compress(column, known))
        return times, values

    def archive_series(self, archive, stamp=STAMP_START):
        """All rows of one archive: an ``array('d')``, NaN when unknown."""
        return Series(_row_times(archive, stamp), self.values(archive), archive.step)


def _last_known(count, unknown):
    """The last row before ``count`` that is known (``unknown`` ascending runs), or None."""
    position = count - 1
    for start, stop in reversed(unknown):
        if start <= position < stop:
            position = start - 1
    return position if position >= 0 else None


def _straddle(rates, unknown, archive, count, finer_start):
    """rate x the part of row ``count`` (the first unused one) before ``finer_start``; 0 when unknown."""
    if count >= len(rates) or any(start <= count < stop for start, stop in unknown):
        return 0.0
    used_end = archive.start + count * archive.step
    return rates[count] * max(0, finer_start - used_end)


def source_files(root, suffixes=(".rrd",) + tuple(".rrd" + s for s in XML_SUFFIXES)):
    """Relative paths of the RRD files (and dumps) under ``root``, sorted, walked lazily per directory."""
    return tree_files(root, suffixes)


def strip_suffix(name):
    """``x.rrd``, ``x.rrd.xml`` and ``x.rrd.xml.gz`` are all ``x``."""
    for suffix in XML_SUFFIXES:
        if name.endswith(suffix):
            name = name[:-len(suffix)]
    return name[:-4] if name.endswith(".rrd") else name
