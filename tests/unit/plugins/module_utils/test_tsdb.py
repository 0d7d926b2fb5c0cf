# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import array
import gzip
import json
import os
import random
import struct
import zlib

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.tsdb import points as tsdb
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError, has_infinity
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.points import (
    BatchWriter,
    batch_interval_ms,
    batch_name,
    chunk_lines,
    finished_batches,
    finite_segments,
    parse_line,
    parse_time,
    plan_batches,
    point_line,
    read_batch_lines,
    segments_span,
    series_lines,
    series_prefix,
    value_texts,
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


@pytest.fixture(params=["plain", "accelerated"])
def encoders(request, monkeypatch):
    """Both ways of writing point files: Python alone, and with the optional orjson and isal."""
    if request.param == "plain":
        monkeypatch.setattr(tsdb, "orjson", None)
        monkeypatch.setattr(tsdb, "deflate", zlib)
    elif not all(tsdb.accelerators().values()):
        pytest.skip("orjson or isal is not installed")
    return request.param


def test_series_lines_are_point_lines_of_the_known_values(encoders):
    tags = (("device", "r\u00e9seau 1"), ("key", 'a"b'))
    prefix = series_prefix("dev/m", tags)
    segments = [(range(600, 1500, 300), [0.1, float("nan"), 2.5], bytearray(b"\1\0\1")),
                (range(1500, 1800, 300), [1e300], None), (range(1800, 2400, 300), [7.0, 8.0], bytearray(2))]
    expected = [("dev/m", tags, 600000, 0.1), ("dev/m", tags, 1200000, 2.5), ("dev/m", tags, 1500000, 1e300)]
    for _twice in range(2):  # the second time with the stamps kept from the first
        lines = series_lines(prefix, segments)
        assert lines.endswith(b"}\n") and [parse_line(line) for line in lines.splitlines()] == expected
    if encoders == "plain":  # Python alone writes what point_line writes, byte for byte
        assert lines == b"".join(point_line(*point) + b"\n" for point in expected)
    assert segments_span(segments) == (3, 600, 1500)
    assert series_lines(prefix, segments[2:]) == b"" and segments_span(segments[2:]) == (0, None, None)


def test_infinite_values_are_left_out_like_unknown_ones():
    inf = float("inf")
    segments = [(range(300, 1500, 300), [1.0, inf, float("nan"), -inf], bytearray(b"\1\1\0\1")),
                (range(1500, 2100, 300), [inf, 2.0], None), (range(2100, 2700, 300), [3.0, 4.0], None)]
    finite, dropped = finite_segments(segments)
    assert dropped == 3 and segments_span(finite) == (4, 300, 2400)
    assert [list(known) if known is not None else None for _t, _v, known in finite] == [[1, 0, 0, 0], [0, 1], None]
    lines = series_lines(series_prefix("m", ()), finite).splitlines()
    assert [parse_line(line)[3] for line in lines] == [1.0, 2.0, 3.0, 4.0]


def test_has_infinity_looks_closer_at_a_match_across_two_doubles():
    straddling = [struct.unpack("<d", b"\1\2\3\4\0\0\0\0")[0], struct.unpack("<d", b"\0\0\xf0\x7f\0\0\0\0")[0]]
    assert struct.pack("<d", float("inf")) in struct.pack("<2d", *straddling)
    assert not has_infinity(straddling) and not has_infinity([1.0, float("nan")])
    assert has_infinity([1.0, float("-inf")]) and has_infinity(array.array("d", [float("inf")]))


def bits(value):
    return struct.pack("<d", value)


def test_value_texts_read_back_as_the_same_doubles(encoders):
    rng = random.Random(7)
    values = [0.0, -0.0, 0.1, 1.0, -2.5, 1e16, 1e-7, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
              float(2 ** 53 + 2), 123456789012345680.0, 1 / 3.0]
    values += [rng.uniform(-1e6, 1e6) for _i in range(2000)]
    values += [struct.unpack("<d", struct.pack("<Q", rng.getrandbits(62)))[0] for _i in range(2000)]
    texts = value_texts(values)
    assert len(texts) == len(values) and value_texts([]) == []
    assert [bits(json.loads(text)) for text in texts] == [bits(value) for value in values]
    assert [digits(text.decode()) for text in texts] == [digits(repr(value)) for value in values]  # shortest


def digits(text):
    """The significant digits of a number's text (orjson writes 1e-05 as 0.00001, repr as 1e-05)."""
    return text.lower().split("e")[0].lstrip("-").replace(".", "").strip("0")


@pytest.mark.parametrize("level", [1, 9])  # isal stops at 3: a higher level is its highest
def test_point_files_are_plain_gzip_with_either_encoder(tmp_path, encoders, level):
    writer = BatchWriter(str(tmp_path), batch_name(0, 1000), level=level)
    lines = series_lines(series_prefix("m", (("k", "v"),)), [(range(1, 5001), [i / 7.0 for i in range(5000)], None)])
    writer.add_lines("m", lines, 5000, 1000, 5000000)
    manifest = writer.finish()
    with gzip.open(os.path.join(str(tmp_path), manifest["name"] + ".jsonl.gz")) as handle:
        assert handle.read() == lines


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
    assert sorted(os.listdir(str(tmp_path))) == [batch_name(0, 1000) + ".json", batch_name(0, 1000) + ".jsonl.gz",
                                                 batch_name(0, 1000) + ".series.json.gz"]


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


def test_a_batch_whose_partial_file_is_gone_does_not_resume(tmp_path):
    with pytest.raises(FerryError, match="is gone: batch .* cannot resume"):
        BatchWriter(str(tmp_path), batch_name(0, 1000), resume={"offset": 120, "points": 3})
    assert os.listdir(str(tmp_path)) == []


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


def test_what_is_not_a_sound_finished_batch_is_named(tmp_path):
    good = write_batch(tmp_path, [[("m", (), 1, 1)]]).finish()
    orphan = BatchWriter(str(tmp_path), batch_name(1000, 2000))
    orphan.add("m", (), 1500, 1)
    orphan.finish()
    os.unlink(str(tmp_path / (batch_name(1000, 2000) + ".json")))  # its manifest lost
    other = BatchWriter(str(tmp_path), batch_name(2000, 3000)).finish()
    with open(str(tmp_path / (batch_name(2000, 3000) + ".json")), "w") as handle:
        json.dump(dict(other, format=2), handle)
    gone = BatchWriter(str(tmp_path), batch_name(3000, 4000))
    gone.add("m", (), 3500, 1)
    gone.finish()
    os.unlink(str(tmp_path / (batch_name(3000, 4000) + ".jsonl.gz")))
    cut = BatchWriter(str(tmp_path), batch_name(4000, 5000))
    cut.add("m", (), 4500, 1)
    cut.finish()
    with open(str(tmp_path / (batch_name(4000, 5000) + ".jsonl.gz")), "ab") as handle:
        handle.write(b"\0")
    (tmp_path / "notes.txt").write_text("not a batch")
    manifests, problems = tsdb.scan_batches(str(tmp_path))
    assert [m["name"] for m in manifests] == [good["name"]]
    reasons = dict((p["name"], p["reason"]) for p in problems)
    assert reasons == {
        batch_name(1000, 2000): "data file %s.jsonl.gz has no manifest" % batch_name(1000, 2000),
        batch_name(2000, 3000): "manifest %s.json has format 2, this version reads format 1" % batch_name(2000, 3000),
        batch_name(3000, 4000): "manifest %s.json has no data file %s.jsonl.gz" % ((batch_name(3000, 4000),) * 2),
        batch_name(4000, 5000): "data file %s.jsonl.gz holds %d bytes, its manifest says %d" % (
            batch_name(4000, 5000), cut.checkpoint()["offset"] + 1, cut.checkpoint()["offset"]),
    }
    assert finished_batches(str(tmp_path)) == manifests
