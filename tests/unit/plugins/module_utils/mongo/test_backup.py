# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pieces of a backup that need no server: the scope options, the evenly spaced sample, the prefetching
reader, the view path expressions get."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading
import uuid

import bson
import pytest
from bson.binary import Binary
from bson.objectid import ObjectId

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.mongo import backup


def test_scope_of():
    assert backup.scope_of({}) == ("server", [])
    assert backup.scope_of({"users": ["a", "b", "a"]}) == ("users", ["a", "b"])
    assert backup.scope_of({"project_groups": ["p"]}) == ("project_groups", ["p"])
    with pytest.raises(FerryError, match="users is an empty list"):
        backup.scope_of({"users": []})
    with pytest.raises(FerryError, match="empty project group name"):
        backup.scope_of({"project_groups": [" "]})


@pytest.mark.parametrize("count", [0, 1, 999, 1000, 1001, 2500, 10000])
def test_sample_is_bounded_and_evenly_spaced(count):
    stats = backup.Stats()
    for index in range(count):
        raw = bson.encode({"_id": index})
        stats.add(raw, bytes(32), "i")
    assert len(stats.sample) <= backup.SAMPLE_MAX
    assert len(stats.sample) >= min(count, backup.SAMPLE_MAX // 2)
    ids = [bson.decode(raw)["_id"] for raw, _sha in stats.sample]
    gaps = set(b - a for a, b in zip(ids, ids[1:]))
    assert len(gaps) <= 1  # one stride
    assert stats.per_item == ({"i": count} if count else {})


def test_prefetch_keeps_order_and_raises_the_producers_error():
    assert list(backup.prefetch(iter(range(100)), depth=2)) == list(range(100))

    def failing():
        yield 1
        raise ValueError("boom")
    got = []
    with pytest.raises(ValueError, match="boom"):
        for item in backup.prefetch(failing()):
            got.append(item)
    assert got == [1]


def test_prefetch_stops_its_thread_when_the_consumer_leaves():
    before = threading.active_count()
    for item in backup.prefetch(iter(range(10 ** 6)), depth=2):
        if item == 3:
            break
    assert threading.active_count() == before


def test_documents_cut_batches_into_raw_documents():
    docs = [{"_id": index, "pad": "x" * index} for index in range(50)]

    class Coll:
        def find_raw_batches(self, query, batch_size):
            raws = [bson.encode(doc) for doc in docs]
            return iter([b"".join(raws[start:start + 7]) for start in range(0, len(raws), 7)])
    assert [bson.decode(raw) for raw in backup.documents(Coll(), {})] == docs


def test_plain_view_for_path_expressions():
    oid = ObjectId("5f1d7a2b9c8e4b3a2d1c0b0a")
    value = {"_id": oid, "u": Binary(uuid.UUID(int=1).bytes, 4), "n": [1, {"d": 2.5}], "s": "x"}
    assert backup._plain(value) == {"_id": str(oid), "u": str(uuid.UUID(int=1)), "n": [1, {"d": 2.5}], "s": "x"}
