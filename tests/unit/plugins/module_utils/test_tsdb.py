# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb import (
    BatchWriter,
    batch_interval_ms,
    batch_name,
    chunk_lines,
    finished_batches,
    parse_line,
    parse_time,
    plan_batches,
    point_line,
    read_batch_lines,
    segments_span,
    series_lines,
    series_prefix,
)

DAY = 86400000
JAN1 = 1735689600000  # 2025-01-01T00:00:00Z


@pytest.mark.parametrize("text, expected", [
    (1735689600, JAN1),
    ("1735689600", JAN1),
    ("1735689600123", JAN1 + 123),
    (1735689600123, JAN1 + 123),
    ("2025-01-01", JAN1),
    ("2025-01-01T01:02:03", JAN1 + 3723000),
    ("2025-01-01 01:02:03", JAN1 + 3723000),
])
def test_parse_time_formats_in_utc(text, expected):
    assert parse_time(text) == expected


def test_parse_time_zones_and_relative():
    assert parse_time("2025-01-01", "+02:00") == JAN1 - 2 * 3600000
    assert parse_time("2025-07-01", "Europe/Paris") == parse_time("2025-07-01") - 2 * 3600000  # summer time
    assert parse_time("2025-01-01", "Europe/Paris") == JAN1 - 3600000
    assert parse_time("7d-ago", now_ms=JAN1) == JAN1 - 7 * DAY
    assert parse_time("90s-ago", now_ms=JAN1) == JAN1 - 90000
    assert parse_time("1n-ago", now_ms=JAN1) == JAN1 - 30 * DAY


@pytest.mark.parametrize("bad", ["yesterday", "2025-13-01", "7x-ago", True])
def test_parse_time_rejects_with_the_accepted_formats(bad):
    with pytest.raises(FerryError, match="invalid time"):
        parse_time(bad)


def test_unknown_zone_is_named():
    with pytest.raises(FerryError, match="unknown time zone 'Mars/Base'"):
        parse_time("2025-01-01", "Mars/Base")


def test_batches_cover_unaligned_ranges_without_gap_or_overlap():
    start, stop = JAN1 + 5 * 3600000 + 1, JAN1 + 2 * DAY + 7
    batches = plan_batches(start, stop, batch_interval_ms("day"))
    assert batches[0] == (start, JAN1 + DAY)
    assert batches[-1] == (JAN1 + 2 * DAY, stop)
    assert all(batches[i][1] == batches[i + 1][0] for i in range(len(batches) - 1))
    assert batch_interval_ms("hour") == 3600000 and batch_interval_ms("600") == 600000
    with pytest.raises(FerryError, match="must be after"):
        plan_batches(stop, start, DAY)
    with pytest.raises(FerryError, match="invalid batch interval"):
        batch_interval_ms("weekly")


def test_point_lines_keep_integers_exact():
    big = 2 ** 63 - 1
    line = point_line("a.b-c/d", (("sw", "00:00:01"),), JAN1 + 1, big)
    assert parse_line(line) == ("a.b-c/d", (("sw", "00:00:01"),), JAN1 + 1, big)
    assert json.loads(line)["value"] == big
    assert parse_line(point_line("m", (), 1, 0.1))[3] == 0.1


def test_series_lines_are_point_lines_of_the_known_values():
    tags = (("device", "r\u00e9seau 1"), ("key", 'a"b'))
    prefix = series_prefix("dev/m", tags)
    segments = [(range(600, 1500, 300), [0.1, float("nan"), 2.5], bytearray(b"\1\0\1")),
                (range(1500, 1800, 300), [1e300], None), (range(1800, 2400, 300), [7.0, 8.0], bytearray(2))]
    expected = [point_line("dev/m", tags, 600000, 0.1), point_line("dev/m", tags, 1200000, 2.5),
                point_line("dev/m", tags, 1500000, 1e300)]
    for _twice in range(2):  # the second time with the stamps kept from the first
        assert series_lines(prefix, segments) == b"".join(line + b"\n" for line in expected)
    assert segments_span(segments) == (3, 600, 1500)
    assert series_lines(prefix, segments[2:]) == b"" and segments_span(segments[2:]) == (0, None, None)


def test_single_points_and_series_blocks_keep_their_order(tmp_path):
    writer = BatchWriter(str(tmp_path), batch_name(0, 1000))
    writer.add("a", (), 1000, 1.0)
    writer.add_lines("b", series_lines(series_prefix("b", ()), [(range(2, 4), [2.0, 3.0], None)]), 2, 2000, 3000)
    writer.add("a", (), 4000, 4.0)
    writer.end_frame()
    writer.add("a", (), 5000, 5.0)
    manifest = writer.finish()
    lines = [parse_line(line) for line in read_batch_lines(finished_batches(str(tmp_path))[0])]
    assert [(m, t, v) for m, _tags, t, v in lines] == [("a", 1000, 1.0), ("b", 2000, 2.0), ("b", 3000, 3.0),
                                                       ("a", 4000, 4.0), ("a", 5000, 5.0)]
    assert manifest["points"] == 5 and manifest["metrics"] == {"a": 3, "b": 2}


def write_batch(directory, frames):
    writer = BatchWriter(str(directory), batch_name(0, 1000))
    for frame in frames:
        for point in frame:
            writer.add(*point)
        writer.end_frame()
    return writer


def test_batch_roundtrip_and_manifest(tmp_path):
    points = [("m1", (("h", "x"),), t, t) for t in range(100)] + [("m2", (), 5, 1.5)]
    manifest = write_batch(tmp_path, [points[:50], points[50:]]).finish()
    assert manifest["points"] == 101 and manifest["metrics"] == {"m1": 100, "m2": 1}
    assert manifest["first_ts"] == 0 and manifest["last_ts"] == 99
    found = finished_batches(str(tmp_path))
    assert [parse_line(line) for line in read_batch_lines(found[0])] == points
    assert sorted(os.listdir(str(tmp_path))) == [batch_name(0, 1000) + ".json", batch_name(0, 1000) + ".jsonl.gz"]


def test_resumed_batch_cuts_what_came_after_the_checkpoint(tmp_path):
    writer = write_batch(tmp_path, [[("m", (), 1, 1)]])
    checkpoint = writer.checkpoint()
    writer.add("m", (), 2, 2)  # a frame made durable but never recorded: a kill came in between
    writer.end_frame()
    writer.abort()
    resumed = BatchWriter(str(tmp_path), batch_name(0, 1000), resume=checkpoint)
    resumed.add("m", (), 2, 2)
    manifest = resumed.finish()
    lines = [parse_line(line) for line in read_batch_lines(finished_batches(str(tmp_path))[0])]
    assert lines == [("m", (), 1, 1), ("m", (), 2, 2)]
    assert manifest["points"] == 2


def test_unfinished_batch_is_not_listed_and_a_changed_file_is_refused(tmp_path):
    writer = write_batch(tmp_path, [[("m", (), 1, 1)]])
    assert finished_batches(str(tmp_path)) == []
    writer.finish()
    manifest = finished_batches(str(tmp_path))[0]
    with open(manifest["path"], "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(FerryError, match="sha256|unreadable"):
        list(read_batch_lines(manifest))


def test_chunks_respect_bytes_and_points():
    lines = [b"x" * 10] * 25
    chunks = list(chunk_lines(iter(lines), max_bytes=60, max_points=100))
    assert all(len(body) <= 60 for body, count in chunks)
    assert sum(count for body, count in chunks) == 25
    chunks = list(chunk_lines(iter(lines), max_bytes=10 ** 6, max_points=10))
    assert [count for body, count in chunks] == [10, 10, 5]
    assert json.loads(list(chunk_lines(iter([b'{"a":1}', b'{"a":2}']), 100, 100))[0][0]) == [{"a": 1}, {"a": 2}]


def test_an_empty_batch_reads_as_no_lines(tmp_path):
    manifest = write_batch(tmp_path, [[]]).finish()
    assert manifest["points"] == 0 and manifest["first_ts"] is None
    assert list(read_batch_lines(finished_batches(str(tmp_path))[0])) == []
