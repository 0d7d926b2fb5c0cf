# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tsdb_remote's readers against the OpenTSDB emulator: counting on a target without reading points
back, frames bounded by points_per_query, and the MetricsQL it writes for VictoriaMetrics."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import random
import re

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.httpclient import HttpClient
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.remote import (
    OpenTSDBSource,
    count_on_target,
    count_query,
    series_selector,
)
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.transfer import VerificationFailed, verify

from tests.support.otsdb_emulator import OpenTSDBEmulator

BASE = 1600000000000  # 2020-09-13T12:26:40Z, in ms
HOUR = 3600000


@pytest.fixture(name="tsdb")
def fixture_tsdb():
    with OpenTSDBEmulator() as emulator:
        yield emulator


def plan_of(counts, first, last):
    """A restore plan as verify() reads it: one batch holding ``counts`` ({metric: points}) in [first, last]."""
    return {"metrics": dict(counts), "batches": [{"metrics": dict(counts), "first_ts": first, "last_ts": last}]}


# ------------------------------------------------------------------------------------------------
# Counting on an OpenTSDB target

def test_opentsdb_target_counts_points_to_the_millisecond_without_sending_them(tsdb):
    first, last = BASE + 1, BASE + 2 * HOUR + 1
    points = [("edge.m", {"host": host}, stamp, 1) for host in ("a", "b", "c")
              for stamp in (first - 1, first, first + 500, last - 1, last, last + 1)]
    points += [("edge.m", {"host": "d"}, first + index * 1000, index) for index in range(5000)]
    points += [("other.m", {"host": "a"}, first, 1)]
    tsdb.add_points(points)
    found = count_on_target("opentsdb", HttpClient(tsdb.url), {"edge.m": (first, last), "never.written": (first, last)})
    assert found == {"edge.m": 3 * 4 + 5000, "never.written": 0}
    # One number per answer, whatever the number of points: nothing is read back but the count.
    assert tsdb.answer_points == [1]


def test_verify_catches_one_point_missing_in_one_series_by_counting(tsdb):
    stamps = [BASE + index * 10000 for index in range(2000)]
    tsdb.add_points([("miss.m", {"host": host}, stamp, 7) for host in ("a", "b", "c") for stamp in stamps
                     if (host, stamp) != ("b", stamps[1234])])
    client = HttpClient(tsdb.url)
    with pytest.raises(VerificationFailed) as failed:
        verify("opentsdb", client, plan_of({"miss.m": 6000}, stamps[0], stamps[-1]), timeout=0)
    assert failed.value.report["short"] == {"miss.m": (6000, 5999)}
    report = verify("opentsdb", client, plan_of({"miss.m": 5999}, stamps[0], stamps[-1]), timeout=0)
    assert report["found_points"] == 5999
    assert max(tsdb.answer_points) == 1


# ------------------------------------------------------------------------------------------------
# Frames bounded by points_per_query

def dump_frames(source, metric, begin, end):
    frames = list(source.frames(metric, begin, end))
    assert [frame[0] for frame in frames[1:]] == [frame[1] for frame in frames[:-1]]  # no gap, no overlap
    assert (frames[0][0], frames[-1][1]) == (begin, end)
    return frames


def test_no_query_answers_more_than_points_per_query(tsdb):
    """A metric with 10 times points_per_query in one batch: no answer, the first included, holds more
    than points_per_query (the first is sized from the TSD's count of the batch, the next ones from
    the density just seen), and every point is dumped once."""
    begin, end = BASE, BASE + HOUR
    dense = [("dense.m", {"host": "h%d" % series}, begin + index * 3600 + series, index)
             for series in range(10) for index in range(1000)]
    sparse = [("sparse.m", {"host": "a"}, begin + index * 600000, index) for index in range(6)]
    later = [("later.m", {"host": "a"}, end + 1000, 1)]
    tsdb.add_points(dense + sparse + later)
    source = OpenTSDBSource(HttpClient(tsdb.url), target_points=1000)
    got = [point for frame in dump_frames(source, "dense.m", begin, end) for point in frame[2]]
    assert sorted((dict(t)["host"], ts) for m, t, ts, v in got) == sorted((t["host"], ts) for m, t, ts, v in dense)
    assert max(tsdb.answer_points) <= 1000 and source.oversized == 0
    assert len(dump_frames(source, "sparse.m", begin, end)) == 1  # a sparse metric is one query, after its count
    queries = len(tsdb.answer_points)
    assert dump_frames(source, "later.m", begin, end) == [(begin, end, [])]  # none in this batch: counted, not read
    assert tsdb.answer_points[queries:] == [0]


def test_a_denser_batch_is_asked_again_in_pieces_not_kept_whole(tsdb):
    """The next batch starts from the density of the one before; ten times denser, its first answer
    exceeds points_per_query: it is dropped (read once) and its frame asked again in pieces."""
    hour1 = [("grow.m", {"host": "a"}, BASE + index * 36000, index) for index in range(100)]
    hour2 = [("grow.m", {"host": "h%d" % series}, BASE + HOUR + index * 3600 + series, index)
             for series in range(10) for index in range(1000)]
    tsdb.add_points(hour1 + hour2)
    source = OpenTSDBSource(HttpClient(tsdb.url), target_points=1000)
    assert len(dump_frames(source, "grow.m", BASE, BASE + HOUR)) == 1
    frames = dump_frames(source, "grow.m", BASE + HOUR, BASE + 2 * HOUR)
    assert source.oversized == 1 and max(len(frame[2]) for frame in frames) <= 1000
    assert sum(len(frame[2]) for frame in frames) == 10000
    assert sorted(tsdb.answer_points, reverse=True)[1] <= 1000  # only the dropped answer was above


# ------------------------------------------------------------------------------------------------
# MetricsQL for VictoriaMetrics

def go_unquote(literal):
    """What VictoriaMetrics (Go's strconv.Unquote) makes of a double-quoted literal, for the escapes
    it accepts; a raw newline is a syntax error there."""
    assert literal[0] == literal[-1] == '"' and "\n" not in literal
    simple = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
    out, index, body = [], 0, literal[1:-1]
    while index < len(body):
        char = body[index]
        if char == '"':
            raise AssertionError("unescaped quote in %r" % literal)
        if char != "\\":
            out.append(char)
            index += 1
        elif body[index + 1] == "x":
            out.append(chr(int(body[index + 2:index + 4], 16)))
            index += 4
        else:
            out.append(simple[body[index + 1]])
            index += 2
    return "".join(out)


@pytest.mark.parametrize("name", ["new\nline", "cr\rx", "tab\tx", 'quo"te', "back\\slash", "ünï€😀", "nul\x00x",
                                  "del\x7fx", "bell\x07x", 'end\\"', "c1\x85x"])
def test_series_selector_writes_every_name_as_metricsql_reads_it(name):
    selector = series_selector(name, {"host": "a\nb"})
    matched = re.fullmatch(r'\{__name__=("(?:[^"\\]|\\.)*"),host=("(?:[^"\\]|\\.)*")\}', selector, re.S)
    assert matched, selector
    assert (go_unquote(matched.group(1)), go_unquote(matched.group(2))) == (name, "a\nb")


def vm_duration_ms(text):
    """VictoriaMetrics 1.79's reading of a duration: each part multiplier * number * 1e3 in float64,
    summed, truncated (Python floats are the same IEEE doubles)."""
    total = 0.0
    for number, unit in re.findall(r"([0-9]+)(ms|s)", text):
        total += {"ms": 1e-3, "s": 1.0}[unit] * float(number) * 1e3
    return int(total)


def window_of(expression, at):
    """``(first, last)``: the samples a count_query selects, as VictoriaMetrics 1.79 reads it: the
    window (t - w, t] at t = time - offset."""
    window = re.search(r"\[([0-9a-z]+)\]", expression).group(1)
    offset = re.search(r" offset ([0-9a-z]+)\)", expression)
    stamp = int(float(str(at)) * 1e3) - (vm_duration_ms(offset.group(1)) if offset else 0)
    return stamp - vm_duration_ms(window) + 1, stamp


def test_count_query_covers_first_to_last_exactly_as_victoriametrics_reads_it():
    cases = [(BASE, BASE + 131500277), (BASE + 7, BASE + 7), (BASE, BASE + 999), (BASE + 1, BASE + 1000)]
    rng = random.Random(10)
    cases += [sorted(rng.randrange(10 ** 12, 2 * 10 ** 12) for _end in range(2)) for _case in range(20000)]
    for first, last in cases:
        expression, at = count_query("m", first, last)
        assert window_of(expression, at) == (first, last), (first, last, expression, at)
    assert count_query("m", BASE, BASE + 131500277) == (
        'sum(count_over_time({__name__="m"}[131500s278ms] offset 723ms))', 1600131501)
