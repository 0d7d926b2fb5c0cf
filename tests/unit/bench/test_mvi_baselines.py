"""The issue 14 baseline (bench/mvi_baselines.py) behaves as the original restore algorithm does
(docs/design/mvi-issue14.md §1.4), against an in-memory collection with the server's ordered-bulk semantics."""

import collections
import json
import os
import sys
import zipfile

import pytest
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))), "bench"))
import mvi_baselines  # noqa: E402  pylint: disable=wrong-import-position

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "support"))
import mvi_original  # noqa: E402  pylint: disable=wrong-import-position


class FakeCollection:
    """insert_many is ordered (stops at the first duplicate, what it inserted stays); insert_one raises
    DuplicateKeyError; ``fail`` is an _id whose insert_one fails with another server error."""

    def __init__(self, existing=(), fail=None):
        self.docs = {doc_id: {"_id": doc_id} for doc_id in existing}
        self.calls = []
        self.fail = fail

    def insert_many(self, docs):
        self.calls.append(("many", docs[0]["_id"], len(docs)))
        for index, doc in enumerate(docs):
            if doc["_id"] in self.docs:
                raise BulkWriteError({"nInserted": index, "writeErrors": [
                    {"index": index, "code": 11000, "errmsg": "E11000 duplicate key"}]})
            self.docs[doc["_id"]] = dict(doc)

    def insert_one(self, doc):
        self.calls.append(("one", doc["_id"]))
        if doc["_id"] == self.fail:
            raise OperationFailure("no space", code=14031)
        if doc["_id"] in self.docs:
            raise DuplicateKeyError("E11000 duplicate key", code=11000)
        self.docs[doc["_id"]] = dict(doc)

    def bulk_calls(self):
        return [call[1:] for call in self.calls if call[0] == "many"]

    def single_ids(self):
        return [call[1] for call in self.calls if call[0] == "one"]


def docs(count, prefix="d"):
    return [{"_id": "%s%05d" % (prefix, index), "v": index} for index in range(count)]


def restore(collection, documents, name="DataSetFiles"):
    counts = mvi_baselines.Counts()
    mvi_baselines.restore_documents(collection, name, documents, counts)
    return counts


def test_clean_target_goes_in_ordered_slices_of_1000():
    coll = FakeCollection()
    counts = restore(coll, docs(2500))
    assert coll.bulk_calls() == [("d00000", 1000), ("d01000", 1000), ("d02000", 500)]
    assert coll.single_ids() == []
    assert len(coll.docs) == 2500 and counts.inserted == 2500 and counts.bulk_slices == 3


def test_bulk_failure_redoes_the_whole_slice_singly():
    data = docs(2000)
    coll = FakeCollection(existing=["d00010"])
    counts = restore(coll, data)
    # the ordered bulk stopped at index 10; the whole slice is redone one by one, from its first document
    assert coll.single_ids() == [doc["_id"] for doc in data[:1000]]
    # the 10 the bulk had inserted come back as duplicates, with the one that was there
    assert counts.duplicates == 11 and counts.bulk_failed == 1
    # 989 consecutive successes at the end of the slice: the next slice is tried in bulk again
    assert coll.bulk_calls() == [("d00000", 1000), ("d01000", 1000)]
    assert len(coll.docs) == 2000


@pytest.mark.parametrize("position, next_in_bulk", [(949, True), (950, False), (999, False), (0, True)])
def test_consecutive_successes_at_the_end_of_a_slice_gate_the_next(position, next_in_bulk):
    data = docs(3000)
    coll = FakeCollection(existing=["d%05d" % position])
    restore(coll, data)
    # position 949 leaves exactly 50 consecutive successes (>= 50: bulk); 950 leaves 49
    assert (("d01000", 1000) in coll.bulk_calls()) is next_in_bulk
    if not next_in_bulk:
        assert coll.single_ids()[1000:2000] == [doc["_id"] for doc in data[1000:2000]]
    # a clean single slice ends with 1000 consecutive successes, so the slice after it goes in bulk
    assert ("d02000", 1000) in coll.bulk_calls()
    assert len(coll.docs) == 3000


def test_the_gate_starts_open_and_a_late_duplicate_in_every_slice_keeps_it_shut():
    data = docs(5000)
    coll = FakeCollection(existing=["d%05d" % (start + 990) for start in range(0, 5000, 1000)])
    counts = restore(coll, data)
    assert coll.bulk_calls() == [("d00000", 1000)]  # the first slice is tried in bulk (the count starts at 1000)
    assert len(coll.single_ids()) == 5000 and counts.single_slices == 5
    assert counts.duplicates == 990 + 1 + 4  # the bulk's own 990 come back with the first one there, then one per slice


def test_duplicates_are_skipped_other_errors_end_the_run():
    coll = FakeCollection(existing=["d00001"], fail="d00003")
    with pytest.raises(OperationFailure):
        restore(coll, docs(10))
    assert set(coll.docs) == {"d00000", "d00001", "d00002"}


def test_trained_models_always_go_singly_with_the_thumbnail_fix_up():
    data = [{"_id": "m%04d" % index, "thumbnail_path": "uploads/u/trained-models/thumbnails/m.jpg"}
            for index in range(1500)]
    data[1]["thumbnail_path"] = "elsewhere/uploads/x.jpg"
    del data[2]["thumbnail_path"]
    coll = FakeCollection()
    restore(coll, data, "TrainedModels")
    assert coll.bulk_calls() == [] and len(coll.single_ids()) == 1500
    assert coll.docs["m0000"]["thumbnail_path"] == "/opt/powerai-vision/data/u/trained-models/thumbnails/m.jpg"
    assert coll.docs["m0001"]["thumbnail_path"] == "elsewhere/uploads/x.jpg"
    assert "thumbnail_path" not in coll.docs["m0002"]


def test_zip_members_in_namelist_order_foreign_and_empty_skipped(tmp_path):
    path = str(tmp_path / "dbBkup.zip")
    data = [("DataSetFileLabels", docs(3, "l")), ("Foo", docs(2, "f")), ("DataSets", []),
            ("DataSetFiles", docs(1001, "d"))]
    mvi_original.write_zip(path, data)
    database = collections.defaultdict(FakeCollection)
    counts = mvi_baselines.restore_original(path, database)
    assert list(database) == ["DataSetFileLabels", "DataSetFiles"]  # Foo skipped, the empty DataSets never touched
    assert database["DataSetFiles"].bulk_calls() == [("d00000", 1000), ("d01000", 1)]
    assert counts.read == 1004 and counts.inserted == 1004


def test_original_zip_format(tmp_path):
    path = str(tmp_path / "dbBkup.zip")
    data = [("DataSetFiles", [{"_id": "a", "s": "caf\u00e9\n/\"", "n": None, "f": 1.5}, {"_id": "b"}]),
            ("DataSets", iter([]))]
    mvi_original.write_zip(path, data)
    assert not os.path.exists(path + ".partial") and sorted(os.listdir(str(tmp_path))) == ["dbBkup.zip"]
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["DataSetFiles", "DataSets"]
        assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in archive.infolist())
        assert archive.read("DataSets") == b"[]"
        text = archive.read("DataSetFiles").decode()
    assert text == "[" + ",".join(json.dumps(doc) for doc in data[0][1]) + "]"


def test_insert_one_baseline_never_bulks(tmp_path):
    path = str(tmp_path / "dbBkup.zip")
    mvi_original.write_zip(path, [("DataSetFiles", docs(1200))])
    database = collections.defaultdict(FakeCollection)
    database["DataSetFiles"] = FakeCollection(existing=["d00005"])
    counts = mvi_baselines.restore_insert_one(path, database)
    assert database["DataSetFiles"].bulk_calls() == []
    assert counts.inserted == 1199 and counts.duplicates == 1
