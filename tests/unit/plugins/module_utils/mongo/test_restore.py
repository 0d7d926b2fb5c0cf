# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""mongo_restore's machinery without a server: batches bounded by count and bytes, documents prepared as raw BSON
(_id first, rewrites, sha256), duplicates split into identical and conflicting and handled per on_duplicate, other
write errors named; and the preflight of ferry and original zips (foreign members, CRC, manifest counts)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import sys
import tracemalloc
import zipfile
from pathlib import Path

import bson
import pytest
from bson.raw_bson import RawBSONDocument
from pymongo.errors import AutoReconnect, BulkWriteError

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.mongo import backupzip, extjson, profile, restore

sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "support"))
import mvi_original  # noqa: E402  (tests/support)

MVI = profile.load("mvi")


class FakeCollection:
    """insert_many(ordered=False) / find($in) / bulk_write(ReplaceOne) over a dict, as the server answers them:
    a duplicate _id is a write error 11000 with its index; ``unique`` adds a unique field; ``refuse`` a field
    whose documents fail with code 121."""

    def __init__(self, name="DataSets", unique=None, refuse=None):
        self.name = name
        self.docs = {}
        self.unique = unique
        self.refuse = refuse
        self.finds = []

    def with_options(self, **_kwargs):
        return self

    def insert_many(self, docs, ordered=True):
        assert ordered is False
        errors, inserted = [], 0
        for index, doc in enumerate(docs):
            key = restore.id_key(doc["_id"])
            taken = self.unique and any(RawBSONDocument(raw).get(self.unique) == doc.get(self.unique)
                                        for raw in self.docs.values())
            if self.refuse and self.refuse in doc:
                errors.append({"index": index, "code": 121, "errmsg": "Document failed validation"})
            elif key in self.docs or taken:
                errors.append({"index": index, "code": 11000, "errmsg": "E11000 duplicate key"})
            else:
                self.docs[key] = doc.raw
                inserted += 1
        if errors:
            raise BulkWriteError({"writeErrors": errors, "nInserted": inserted, "writeConcernErrors": []})

    def find(self, query):
        ids = query["_id"]["$in"]
        assert len(ids) <= restore.LOOKUP_CHUNK
        self.finds.append(len(ids))
        return [RawBSONDocument(self.docs[restore.id_key(i)]) for i in ids if restore.id_key(i) in self.docs]

    def bulk_write(self, requests, ordered=True):
        for request in requests:
            doc = request._doc
            self.docs[restore.id_key(request._filter["_id"])] = doc.raw

    def values(self):
        return {restore.id_key(RawBSONDocument(raw)["_id"]): bson.decode(raw) for raw in self.docs.values()}


def counts():
    return dict.fromkeys(restore.COUNT_NAMES, 0)


def batch_of(docs):
    return next(restore.batches(enumerate(docs), restore.Preparer("test"), 10 ** 6))


def writer(coll, policy="skip"):
    return restore.Writer(coll, policy, counts())


# -- batches and preparing -----------------------------------------------------------------------------------------
def test_batches_end_at_the_count_or_the_byte_bound():
    docs = [{"_id": i, "pad": "x" * 100} for i in range(25)]
    sized = list(restore.batches(enumerate(docs), restore.Preparer("t"), 10))
    assert [len(b.docs) for b in sized] == [10, 10, 5] and [b.end for b in sized] == [10, 20, 25]
    size = len(bson.encode(docs[0]))
    by_bytes = list(restore.batches(enumerate(docs), restore.Preparer("t"), 1000, max_bytes=3 * size))
    assert [len(b.docs) for b in by_bytes] == [3] * 8 + [1]
    assert list(restore.batches(iter(()), restore.Preparer("t"), 10)) == []


def test_a_batch_carries_raw_bson_ids_and_sha256():
    batch = batch_of([{"a": 1, "_id": "x"}])
    raw = batch.docs[0].raw
    assert raw == bson.encode({"_id": "x", "a": 1})  # _id first, as the server stores it
    assert batch.ids == ["x"] and batch.sha(0) == hashlib.sha256(raw).digest()


def test_a_document_without_id_is_an_error_naming_it():
    with pytest.raises(FerryError, match="src.zip: collection C, document 2 has no _id"):
        list(restore.batches(enumerate([{"_id": 1}, {"a": 1}]), restore.Preparer("src.zip: collection C"), 10))


def test_a_rewrite_changes_the_bytes_and_maps_the_sample_hash():
    rewrite = MVI.rewrite_for("TrainedModels", ["thumbnail_path"], "/data")
    doc = {"_id": "m", "thumbnail_path": "uploads/u/t.png"}
    before = hashlib.sha256(bson.encode(doc)).hexdigest()
    preparer = restore.Preparer("t", rewrite, [before])
    _id, raw = preparer.prepare(0, dict(doc))
    assert bson.decode(raw)["thumbnail_path"] == "/data/u/t.png"
    assert preparer.renamed == {before: hashlib.sha256(raw).hexdigest()}


def test_an_original_zip_is_sampled_every_nth_document():
    preparer = restore.Preparer("t", sample_every=3)
    list(restore.batches(enumerate({"_id": i} for i in range(10)), preparer, 4))
    assert [i for i, _sha in preparer.sampled] == [0, 3, 6, 9]


# -- writing and duplicates ----------------------------------------------------------------------------------------
def test_new_documents_are_inserted():
    coll = FakeCollection()
    w = writer(coll)
    w.write(batch_of([{"_id": i} for i in range(5)]))
    assert w.counts["inserted"] == 5 and len(coll.docs) == 5 and coll.finds == []


@pytest.mark.parametrize("policy", ["skip", "replace"])
def test_duplicates_are_split_into_identical_and_conflicting(policy):
    coll = FakeCollection()
    writer(coll).write(batch_of([{"_id": "same", "v": 1}, {"_id": "clash", "v": "old"}]))
    w = writer(coll, policy)
    w.write(batch_of([{"_id": "same", "v": 1}, {"_id": "clash", "v": "new"}, {"_id": "fresh"}]))
    assert (w.counts["inserted"], w.counts["identical"], w.counts["conflicting"]) == (1, 1, 1)
    assert w.counts["replaced"] == (1 if policy == "replace" else 0)
    held = coll.values()
    assert held[restore.id_key("clash")]["v"] == ("old" if policy == "skip" else "new")


def test_fail_refuses_conflicting_documents_only():
    coll = FakeCollection()
    writer(coll).write(batch_of([{"_id": "same"}, {"_id": "clash", "v": 1}]))
    w = writer(coll, "fail")
    w.write(batch_of([{"_id": "same"}]))  # a resumed run meets its own inserts
    assert w.counts["identical"] == 1
    with pytest.raises(FerryError, match=r'collection DataSets: 1 document\(s\) already exist .*_id "clash"; so far'):
        w.write(batch_of([{"_id": "clash", "v": 2}, {"_id": "new"}]))


class CutCollection(FakeCollection):
    """Takes the first ``half`` documents of the next ``cuts`` sends, then loses the connection."""

    def __init__(self, cuts, half):
        super().__init__()
        self.cuts, self.half = cuts, half

    def insert_many(self, docs, ordered=True):
        if self.cuts:
            self.cuts -= 1
            super().insert_many(docs[:self.half], ordered)
            raise AutoReconnect("connection closed")
        return super().insert_many(docs, ordered)


def test_a_batch_is_sent_once_more_after_a_network_error():
    coll = CutCollection(cuts=1, half=3)
    w = writer(coll)
    w.write(batch_of([{"_id": i} for i in range(8)]))
    assert (w.counts["inserted"], w.counts["identical"]) == (5, 3) and len(coll.docs) == 8


def test_a_second_network_error_fails_with_the_counts():
    w = writer(CutCollection(cuts=2, half=0))
    with pytest.raises(FerryError, match=r"collection DataSets: the insert of 2 document\(s\) failed: connection "
                                         r"closed; so far read 0, inserted 0"):
        w.write(batch_of([{"_id": 1}, {"_id": 2}]))


def test_lookups_go_in_chunks():
    coll = FakeCollection()
    docs = [{"_id": i} for i in range(restore.LOOKUP_CHUNK * 2 + 10)]
    writer(coll).write(batch_of(docs))
    w = writer(coll)
    w.write(batch_of(docs))
    chunk = restore.LOOKUP_CHUNK
    assert w.counts["identical"] == len(docs) and coll.finds == [chunk, chunk, 10]


def test_another_write_error_names_collection_id_code_and_reason_with_counts():
    coll = FakeCollection(refuse="bad")
    w = writer(coll)
    with pytest.raises(FerryError) as exc:
        w.write(batch_of([{"_id": "ok"}, {"_id": "no", "bad": 1}]))
    assert str(exc.value) == ('collection DataSets: _id "no": code 121 Document failed validation; so far read 0, '
                              'inserted 1, identical 0, conflicting 0, replaced 0')


def test_a_duplicate_on_another_unique_index_is_an_error():
    coll = FakeCollection(unique="email")
    writer(coll).write(batch_of([{"_id": 1, "email": "a"}]))
    with pytest.raises(FerryError, match=r'collection DataSets: _id \{"\$numberInt":"2"\}: code 11000'):
        writer(coll).write(batch_of([{"_id": 2, "email": "a"}]))


def test_index_entries_of_a_manifest_become_create_index_arguments():
    spec = json.loads(extjson.encode(bson.encode({"v": 2, "key": {"owner": 1, "n": -1}, "name": "o", "unique": True,
                                                  "expireAfterSeconds": 10})))
    keys, options = restore.index_model_args(spec)
    assert keys == [("owner", 1), ("n", -1)] and options == {"name": "o", "unique": True, "expireAfterSeconds": 10}
    assert restore.index_model_args({"key": [["t", "text"]], "name": "t_text"}) == ([("t", "text")], {"name": "t_text"})


# -- preflight -----------------------------------------------------------------------------------------------------
def ferry_zip(path, collections, extra=None):
    """A ferry zip written with backupzip's writer and a minimal manifest."""
    writer = backupzip.Writer(str(path))
    entries = {}
    for name, docs in collections.items():
        member = writer.member(backupzip.member_name(name))
        docs = list(docs)
        raws = [bson.encode(doc) for doc in docs]
        for raw in raws:
            member.add(extjson.encode(raw))
        writer.close_member()
        entries[name] = dict(member.summary(), indexes=[],
                             sample=[[extjson.id_json(doc["_id"]), hashlib.sha256(raw).hexdigest()]
                                     for doc, raw in zip(docs, raws)])
    for name, data in (extra or {}).items():
        writer.write_bytes(name, data)
    manifest = {"format": backupzip.FORMAT, "format_version": backupzip.FORMAT_VERSION,
                "source": {"database": "SRC"}, "collections": entries}
    writer.write_bytes(backupzip.MANIFEST, backupzip.manifest_bytes(manifest))
    writer.commit()
    return str(path)


def test_a_ferry_zip_passes_preflight(tmp_path):
    path = ferry_zip(tmp_path / "a.zip", {"DataSets": [{"_id": "a"}, {"_id": {"k": 1}}], "Tokens": []},
                     extra={backupzip.FILES_MEMBER: b""})
    (source,) = restore.open_sources([path], MVI)
    assert source.kind == "ferry" and source.counts == {"DataSets": 2, "Tokens": 0}
    assert [i for i, _sha in source.samples["DataSets"]] == ["a", {"k": 1}]
    assert [doc for _number, doc in source.documents("DataSets", 1)] == [{"_id": {"k": 1}}]
    assert restore.database_of({"database": None}, [source], MVI) == "SRC"


@pytest.mark.parametrize("member", ["Foo", "collections/Foo.jsonl", "collections/DataSets.json", "x/../DataSets"])
def test_a_foreign_member_of_a_ferry_zip_is_named(tmp_path, member):
    path = ferry_zip(tmp_path / "a.zip", {"DataSets": [{"_id": "a"}]}, extra={member: b"[]"})
    with pytest.raises(FerryError, match=r"1 member\(s\) that are not collections of profile mvi.*%r" % member):
        restore.open_sources([path], MVI)


def test_a_sample_entry_that_cannot_be_read_is_left_out_and_counted(tmp_path):
    path = ferry_zip(tmp_path / "a.zip", {"DataSets": [{"_id": "a"}, {"_id": "b"}]})
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    manifest = json.loads(members[backupzip.MANIFEST])
    manifest["collections"]["DataSets"]["sample"][0][0] = "(undecodable)"
    members[backupzip.MANIFEST] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    (source,) = restore.open_sources([path], MVI)
    assert [i for i, _sha in source.samples["DataSets"]] == ["b"] and source.unreadable == {"DataSets": 1}


def test_a_member_not_matching_the_manifest_fails(tmp_path):
    path = ferry_zip(tmp_path / "a.zip", {"DataSets": [{"_id": "a"}]})
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    members["collections/DataSets.jsonl"] += b'{"_id":"b"}\n'
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    with pytest.raises(FerryError, match="does not match the manifest.*2 lines.*1 documents"):
        restore.open_sources([path], MVI)


def test_a_flipped_byte_is_caught_by_the_crc(tmp_path):
    path = Path(ferry_zip(tmp_path / "a.zip", {"DataSets": [{"_id": "a", "pad": "p" * 5000}]}))
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("collections/DataSets.jsonl")
    data = bytearray(path.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(FerryError, match="member collections/DataSets.jsonl is corrupt"):
        restore.open_sources([str(path)], MVI)


def test_a_truncated_or_missing_zip_is_an_error(tmp_path):
    path = Path(ferry_zip(tmp_path / "a.zip", {"DataSets": [{"_id": "a"}]}))
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(FerryError, match="is not a readable zip"):
        restore.open_sources([str(path)], MVI)
    with pytest.raises(FerryError, match="does not exist"):
        restore.open_sources([str(tmp_path / "none.zip")], MVI)


def test_a_member_stored_twice_is_refused(tmp_path):
    path = mvi_original.write_zip(tmp_path / "o.zip", {"DataSets": [{"_id": "a"}]})
    with zipfile.ZipFile(path, "a") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("DataSets", "[]")
    with pytest.raises(FerryError, match="stored twice under one name: 'DataSets'"):
        restore.open_sources([str(path)], MVI)


def test_an_original_zip_is_counted_and_its_database_is_the_profiles(tmp_path):
    path = mvi_original.write_zip(tmp_path / "o.zip", {"DataSets": [{"_id": "a"}, {"_id": "b"}], "Tokens": []})
    (source,) = restore.open_sources([str(path)], MVI)
    assert source.kind == "original" and source.counts == {"DataSets": 2, "Tokens": 0}
    assert restore.database_of({"database": None}, [source], MVI) == "DLAAS"


def test_an_original_zip_with_a_foreign_member_or_bad_json_fails(tmp_path):
    path = mvi_original.write_zip(tmp_path / "o.zip", {"DataSets": [{"_id": "a"}], "Foo": []})
    with pytest.raises(FerryError, match=r"'Foo'"):
        restore.open_sources([str(path)], MVI)
    with zipfile.ZipFile(tmp_path / "b.zip", "w") as zf:
        zf.writestr("DataSets", '[{"_id": "a"}, {"_id": ')
    with pytest.raises(FerryError, match="member DataSets.*element 1 is not valid JSON"):
        restore.open_sources([str(tmp_path / "b.zip")], MVI)


def test_sources_from_two_databases_need_database(tmp_path):
    one = ferry_zip(tmp_path / "a.zip", {"DataSets": []})
    other = mvi_original.write_zip(tmp_path / "o.zip", {"DataSets": []})
    sources = restore.open_sources([one, str(other)], MVI)
    with pytest.raises(FerryError, match="databases DLAAS, SRC: give database"):
        restore.database_of({"database": None}, sources, MVI)
    assert restore.database_of({"database": "T"}, sources, MVI) == "T"


def test_options_are_checked():
    params = dict((name, spec.get("default")) for name, spec in restore.restore_argument_spec().items())
    params.update(src=["/x.zip"], state_dir="/tmp/s", login_host="h", login_port=27017)
    with pytest.raises(FerryError, match="batch_size=0 is out of range"):
        restore.check_options(dict(params, batch_size=0))
    with pytest.raises(FerryError, match=r"src\[0\] is an empty string"):
        restore.check_options(dict(params, src=[""]))
    with pytest.raises(FerryError, match="rewrites nope are not rewrites of profile mvi"):
        restore.check_rewrites(dict(params, rewrites=["nope"]), MVI)


def test_reading_a_ferry_member_in_batches_keeps_memory_bounded(tmp_path):
    docs = ({"_id": "%08d" % i, "pad": "x" * 1000} for i in range(40000))
    path = ferry_zip(tmp_path / "big.zip", {"DataSetFiles": docs})
    (source,) = restore.open_sources([path], MVI)
    tracemalloc.start()
    try:
        sizes = [len(batch.docs) for batch in
                 restore.batches(source.documents("DataSetFiles"), restore.Preparer("t"), 1000)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sum(sizes) == 40000 and max(sizes) == 1000
    assert peak < 12 << 20  # the member is ~41 MB
