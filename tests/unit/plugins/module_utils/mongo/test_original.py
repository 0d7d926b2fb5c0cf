# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The original MVI tool's member format read incrementally: the same documents as json.loads of the whole member,
whatever the chunk size (documents and tokens split across chunk boundaries), compact and indent=2 arrays, [],
NaN/Infinity, errors naming the element, and memory bounded by a chunk and a document."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import json
import math
import sys
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.mongo import original

sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "support"))
import mvi_original  # noqa: E402  (tests/support)


def read(text, chunk=original.CHUNK):
    data = text.encode("utf-8") if isinstance(text, str) else text
    return [doc for _number, doc in original.ArrayReader(io.BytesIO(data), "z: member M", chunk)]


def same(a, b):
    """Equal as JSON text (NaN != NaN as floats)."""
    return json.dumps(a, sort_keys=False) == json.dumps(b, sort_keys=False)


scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                      max_leaves=12)
documents = st.lists(st.dictionaries(st.text(max_size=8), values, max_size=6), max_size=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents, st.sampled_from([None, 2]), st.integers(1, 64))
def test_any_chunk_size_gives_what_json_loads_of_the_whole_member_gives(docs, indent, chunk):
    text = mvi_original.array_text(docs, indent)
    assert same(read(text, chunk), json.loads(text))


@pytest.mark.parametrize("chunk", range(1, 30))
def test_tokens_and_numbers_split_at_every_boundary(chunk):
    docs = [{"a": 12345678901234567890, "b": float("nan"), "c": float("inf"), "d": -float("inf"), "e": -0.0,
             "f": 1.5e300, "g": True, "h": None, "i": "é✓\U0001F600"}, {}, {"x": [1, [2, {"y": "]},["}]]}]
    text = mvi_original.array_text(docs, indent=2)
    got = read(text, chunk)
    assert same(got, docs)
    assert math.isnan(got[0]["b"]) and got[0]["c"] == float("inf") and math.copysign(1, got[0]["e"]) == -1
    assert got[0]["a"] == 12345678901234567890


@pytest.mark.parametrize("text", ["[]", " [ ] \n", "[\n]"])
def test_empty_arrays(text):
    assert read(text, 1) == []


def test_indices_count_documents():
    text = mvi_original.array_text([{"n": i} for i in range(5)], indent=2)
    assert [i for i, _doc in original.ArrayReader(io.BytesIO(text.encode()), "m", 3)] == list(range(5))


@pytest.mark.parametrize("text, words", [
    ("", "not a JSON array"),
    ("{}", "not a JSON array"),
    ("[{\"a\": 1}", "ends early"),
    ("[{\"a\": 1},", "ends early"),
    ("[{\"a\": 1", "element 0 is not valid JSON"),
    ("[{\"a\": 1} {\"b\": 2}]", "expected ',' or ']' after element 0"),
    ("[{\"a\": 1}, 5]", "element 1 is a int"),
    ("[{\"a\": 1}] x", "data after the end"),
    ("[{\"a\": 1},]", "element 1 is not valid JSON"),
])
@pytest.mark.parametrize("chunk", [1, 4, 1 << 20])
def test_malformed_members_are_errors_naming_the_place(text, words, chunk):
    with pytest.raises(FerryError) as exc:
        read(text, chunk)
    assert words in str(exc.value) and "z: member M" in str(exc.value)


def test_non_utf8_bytes_are_an_error():
    with pytest.raises(FerryError, match="not UTF-8"):
        read(b'[{"a": "\xff"}]', 2)


def test_iter_documents_reads_a_zip_member(tmp_path):
    path = mvi_original.write_zip(tmp_path / "dbBkup.zip", {"DataSets": [{"_id": "a"}, {"_id": "b"}], "Tokens": []})
    with zipfile.ZipFile(path) as zf:
        assert [d["_id"] for _number, d in original.iter_documents(zf, "DataSets")] == ["a", "b"]
        assert list(original.iter_documents(zf, "Tokens")) == []


def test_user_scope_writes_only_collections_with_documents_indented(tmp_path):
    path = mvi_original.write_zip(tmp_path / "uDb.zip", {"DataSets": [{"_id": "a"}], "Tokens": []}, scope="users")
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["DataSets"]
        assert zf.read("DataSets").startswith(b'[{\n  "_id"')


class Generated(io.RawIOBase):
    """A compact array of ``count`` ~1 KB documents, produced as it is read (never whole in memory)."""

    def __init__(self, count):
        self.parts = self._parts(count)
        self.pending = b""

    @staticmethod
    def _parts(count):
        yield b"["
        for i in range(count):
            yield (b"," if i else b"") + json.dumps({"_id": "%032d" % i, "pad": "x" * 1000, "n": i}).encode()
        yield b"]"

    def readable(self):
        return True

    def readinto(self, buffer):
        while len(self.pending) < len(buffer):
            part = next(self.parts, None)
            if part is None:
                break
            self.pending += part
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size


def test_memory_stays_bounded_for_a_200k_document_member():
    tracemalloc.start()
    try:
        count = 0
        for index, doc in original.ArrayReader(io.BufferedReader(Generated(200000), 1 << 16), "big", 1 << 16):
            assert doc["n"] == index
            count += 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 200000
    assert peak < 8 << 20  # the member is ~200 MB


def test_a_document_larger_than_the_chunk_is_read_whole():
    docs = [{"big": "y" * 100000, "i": i} for i in range(3)]
    assert same(read(mvi_original.array_text(docs), 1000), docs)
