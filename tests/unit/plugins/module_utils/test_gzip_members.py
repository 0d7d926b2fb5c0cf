# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Gzip streams of many members whose inflated sizes straddle the readers' output limit.

A member that ends in a call cut by the output limit once made the next member inflate twice (lines
doubled) or fail as corrupt: every reader must give exactly what gzip gives.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import io
import os
import random

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.ferry.migrate.plugins.module_utils.tsdb import points as tsdb
from ansible_collections.ferry.migrate.plugins.module_utils.core.archive import Gunzip, GzipReader
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.points import (
    BatchWriter,
    batch_name,
    finished_batches,
    read_batch_lines,
)

LIMIT = 1 << 12  # a small output limit, so that members of a few limits are cheap to make


def member_sizes(limit):
    """Inflated member sizes around the limit: at it, one below, one above, multiples, empty, any."""
    edges = [0, 1, limit - 1, limit, limit + 1, 2 * limit - 1, 2 * limit, 2 * limit + 1, 3 * limit]
    return st.one_of(st.sampled_from(edges), st.integers(0, 3 * limit + 7))


def content(rng, size, kind):
    """Bytes that compress well (the stream end lands early in a call) or not at all (late)."""
    if kind == "random":
        return rng.randbytes(size)
    if kind == "lines":
        text = b"".join(b'{"metric":"m","timestamp":%d,"value":%d}\n' % (i, rng.randrange(10 ** 6))
                        for i in range(size // 20 + 1))
        return text[:size]
    return bytes(size)


def gzip_stream(members, padding_between, padding_after, rng, kind):
    parts, plain = [], []
    for position, size in enumerate(members):
        data = content(rng, size, kind)
        plain.append(data)
        parts.append(gzip.compress(data, compresslevel=rng.choice((1, 6, 9))))
        if position in padding_between:
            parts.append(b"\0" * padding_between[position])
    parts.append(b"\0" * padding_after)
    return b"".join(parts), b"".join(plain)


def inflate_pieces(stream, feed, limit):
    gunzip = Gunzip("test.gz")
    out = []
    for offset in range(0, len(stream), feed):
        for piece in gunzip.pieces(stream[offset:offset + feed], limit):
            assert len(piece) <= limit
            out.append(piece)
    gunzip.close()
    return b"".join(out)


streams = st.fixed_dictionaries({
    "members": st.lists(member_sizes(LIMIT), min_size=1, max_size=6),
    "between": st.dictionaries(st.integers(0, 5), st.integers(1, 600), max_size=2),
    "after": st.sampled_from([0, 0, 1, 512, 10240]),
    "seed": st.integers(0, 2 ** 32),
    "kind": st.sampled_from(["random", "lines", "zeros"]),
    "feed": st.one_of(st.sampled_from([1, 7, LIMIT - 1, LIMIT, LIMIT + 1, 1 << 20]), st.integers(1, 5 * LIMIT)),
})


@settings(max_examples=400, deadline=None)
@given(streams)
def test_gunzip_gives_exactly_what_gzip_gives(case):
    stream, plain = gzip_stream(case["members"], case["between"], case["after"], random.Random(case["seed"]),
                                case["kind"])
    assert gzip.GzipFile(fileobj=io.BytesIO(stream)).read() == plain  # the reference agrees on the input
    assert inflate_pieces(stream, case["feed"], LIMIT) == plain


@pytest.mark.parametrize("sizes", [
    [4 << 20, 100], [(4 << 20) - 1, 100], [(4 << 20) + 1, 100], [8 << 20, 1, 0, 5 << 20], [0, 1 << 20, 0]])
def test_gunzip_at_the_batch_readers_limit(sizes):
    """The sizes that broke a restore: a member inflating to about the 4 MiB read limit, then another."""
    stream, plain = gzip_stream(sizes, {}, 0, random.Random(len(sizes)), "lines")
    assert inflate_pieces(stream, 1 << 20, tsdb.READ_LIMIT) == plain
    assert gzip.decompress(stream) == plain


@settings(max_examples=100, deadline=None)
@given(streams, st.sampled_from([1, 100, 1 << 20]))
def test_gzip_reader_gives_exactly_what_gzip_gives(case, read_size):
    stream, plain = gzip_stream(case["members"], case["between"], case["after"], random.Random(case["seed"]),
                                case["kind"])
    reader = GzipReader(io.BytesIO(stream), "test.gz")
    reader._pieces = _small_pieces(reader, stream, case["feed"])
    out = b"".join(iter(lambda: reader.read(read_size), b""))
    assert out == plain


def _small_pieces(reader, stream, feed):
    """GzipReader's own generator, with the test's limit and feed size."""
    for offset in range(0, len(stream), feed):
        yield from reader._gunzip.pieces(stream[offset:offset + feed], LIMIT)
    reader._gunzip.close()


def write_lines_batch(directory, frames):
    """A batch whose frames (gzip members) hold exactly the given lines."""
    writer = BatchWriter(str(directory), batch_name(0, 1000))
    for lines in frames:
        if lines:
            writer.add_lines("m", b"".join(line + b"\n" for line in lines), len(lines), 0, 1)
        writer.end_frame()
    return writer.finish()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3 * LIMIT // 40), min_size=1, max_size=5), st.integers(0, 2 ** 32))
def test_batch_reader_gives_every_line_once(tmp_path_factory, line_counts, seed):
    rng = random.Random(seed)
    directory = tmp_path_factory.mktemp("batch")
    frames = [[b'{"metric":"m","timestamp":%d,"value":%d}' % (n, rng.randrange(10 ** 9)) for n in range(count)]
              for count in line_counts]
    write_lines_batch(directory, frames)
    manifest = finished_batches(str(directory))[0]
    original, tsdb.READ_LIMIT = tsdb.READ_LIMIT, LIMIT
    try:
        lines = list(read_batch_lines(manifest))
    finally:
        tsdb.READ_LIMIT = original
    assert lines == [line for frame in frames for line in frame]


def test_batch_reader_reads_a_day_of_one_metric_past_its_limit(tmp_path):
    """Two frames of about 6.4 MiB and 1 MiB: once read as 102,000 lines for 101,000 points."""
    line = b'{"metric":"switch.rx","tags":{"switchid":"00:00:aa:bb:cc:dd:ee:01"},"timestamp":%d,"value":%d}'
    frames = [[line % (n, n * 7) for n in range(start, stop)] for start, stop in ((0, 70000), (70000, 81000))]
    manifest = write_lines_batch(tmp_path, frames)
    assert os.path.getsize(manifest and finished_batches(str(tmp_path))[0]["path"]) > 0
    assert sum(1 for _line in read_batch_lines(finished_batches(str(tmp_path))[0])) == 81000
