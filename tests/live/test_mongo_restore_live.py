# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""mongo_restore against SecantusDB (`mongo` is the source, `mongo-target` the target; a fresh database per test):
a backup restores to the same set of raw BSON (every BSON type byte for byte); two sources with overlapping _ids
under skip / replace / fail; a SIGKILL mid-restore then a rerun equals a clean restore; a rerun changes nothing;
an original-format zip restores; bad input (wrong password, a flipped byte, a foreign member, a truncated zip) is
a clear error with nothing written; an index SecantusDB refuses is a warning."""
import json
import os
import signal
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import bson
import pymongo
import pytest
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.raw_bson import RawBSONDocument

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.mongo import backupzip, extjson, profile, restore
from ansible_collections.ferry.migrate.plugins.modules import mongo_backup, mongo_restore

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
import mvi_original  # noqa: E402

MODULE = ROOT / "plugins" / "modules" / "mongo_restore.py"
RAW = CodecOptions(document_class=RawBSONDocument, datetime_conversion=DatetimeConversion.DATETIME_AUTO)
COLLECTIONS = profile.load("mvi").collections


def fresh(prefix):
    return "%s_%s" % (prefix, uuid.uuid4().hex[:10])


def defaults(spec):
    return {name: option.get("default") for name, option in spec.items()}


def connection(servers, prefix):
    return dict(login_host=servers["FERRY_%s_HOST" % prefix], login_port=int(servers["FERRY_%s_PORT" % prefix]),
                login_user=servers["FERRY_%s_USER" % prefix], login_password=servers["FERRY_%s_PASSWORD" % prefix],
                login_database=servers["FERRY_%s_AUTH_SOURCE" % prefix])


def restore_params(servers, src, database, state, **extra):
    params = defaults(mongo_restore.argument_spec())
    params.update(connection(servers, "MONGO_TARGET"), src=src if isinstance(src, list) else [src],
                  database=database, state_dir=str(state))
    params.update(extra)
    return params


def backup(servers, database, dest, state):
    params = defaults(mongo_backup.argument_spec())
    params.update(connection(servers, "MONGO"), database=database, dest=str(dest), state_dir=str(state))
    result = mongo_backup.run(params, False)
    assert Path(dest).exists(), result
    return str(dest)


def raw_sets(client, database, names=None):
    """{collection: set of raw BSON} of every collection that has documents."""
    db = client[database]
    found = {}
    for name in names or db.list_collection_names():
        docs = {doc.raw for doc in db.get_collection(name, codec_options=RAW).find()}
        if docs:
            found[name] = docs
    return found


@pytest.fixture
def target(servers):
    client = pymongo.MongoClient(servers["FERRY_MONGO_TARGET_URI"], serverSelectionTimeoutMS=10_000)
    yield client
    client.close()


@pytest.fixture
def source(mongo_client):
    return mongo_client


def generate(servers, database, *extra):
    subprocess.run([sys.executable, str(ROOT / "tools" / "gen_mvi_db.py"), "--uri", servers["FERRY_MONGO_URI"],
                    "--database", database, "--users", "2", "--project-groups", "2", "--datasets", "2",
                    "--files-per-dataset", "3", *extra], check=True, capture_output=True, timeout=600)


def test_a_backup_restores_to_the_same_raw_documents_of_every_type_and_a_rerun_changes_nothing(
        servers, source, target, tmp_path):
    name = fresh("src")
    generate(servers, name, "--all-types")
    zip_path = backup(servers, name, tmp_path / "db.zip", tmp_path / "bstate")
    database = fresh("rst")
    params = restore_params(servers, zip_path, database, tmp_path / "state", verify="full")
    result = mongo_restore.run(params, False)
    assert result["changed"] and result["verified"] and result["duplicates"] == 0
    expected = raw_sets(source, name, COLLECTIONS)
    assert raw_sets(target, database) == expected
    assert result["inserted"] == sum(len(docs) for docs in expected.values())
    again = mongo_restore.run(params, False)
    assert again["changed"] is False and again["decision"] == "skip"
    forced = mongo_restore.run(dict(params, force=True), False)
    assert forced["changed"] is False and forced["inserted"] == 0
    assert forced["duplicates"] == result["inserted"] and forced["conflicting"] == 0
    # every sample _id of the manifest could be read (mongo_backup writes extjson.raw_id of each sampled document)
    unreadable = {name: found["sample_unreadable"] for name, found in result["verification"].items()
                  if found["sample_unreadable"]}
    assert not unreadable, "manifest sample _ids mongo_backup wrote as unreadable: %s" % unreadable


def test_check_mode_predicts_and_writes_nothing(servers, source, target, tmp_path):
    name = fresh("src")
    generate(servers, name)
    zip_path = backup(servers, name, tmp_path / "db.zip", tmp_path / "bstate")
    database = fresh("rst")
    predicted = mongo_restore.run(restore_params(servers, zip_path, database, tmp_path / "state"), True)
    assert predicted["changed"] and predicted["inserted"] == predicted["documents"] > 0
    assert database not in target.list_database_names()


def overlapping_sources(servers, source, tmp_path):
    """Two backups of DataSets: b has one document identical to a's, one conflicting, one new."""
    first, second = fresh("srca"), fresh("srcb")
    source[first].DataSets.insert_many([{"_id": "same", "v": 1}, {"_id": "clash", "v": "a"}, {"_id": "a1", "v": 2}])
    source[second].DataSets.insert_many([{"_id": "same", "v": 1}, {"_id": "clash", "v": "b"}, {"_id": "b1", "v": 3}])
    return (backup(servers, first, tmp_path / "a.zip", tmp_path / "sa"),
            backup(servers, second, tmp_path / "b.zip", tmp_path / "sb"))


@pytest.mark.parametrize("policy", ["skip", "replace"])
def test_two_sources_with_overlapping_ids(servers, source, target, tmp_path, policy):
    zips = overlapping_sources(servers, source, tmp_path)
    database = fresh("rst")
    result = mongo_restore.run(restore_params(servers, list(zips), database, tmp_path / "state",
                                              on_duplicate=policy), False)
    counts = result["collections"]["DataSets"]
    assert (counts["inserted"], counts["identical"], counts["conflicting"]) == (4, 1, 1)
    assert counts["replaced"] == (1 if policy == "replace" else 0)
    assert result["verified"]
    docs = {doc["_id"]: doc["v"] for doc in target[database].DataSets.find()}
    assert docs == {"same": 1, "clash": "a" if policy == "skip" else "b", "a1": 2, "b1": 3}


def test_on_duplicate_fail(servers, source, target, tmp_path):
    first, second = overlapping_sources(servers, source, tmp_path)
    database = fresh("rst")
    # between the sources: found while writing, named
    with pytest.raises(FerryError, match=r"collection DataSets: 1 document\(s\) already exist.*\"clash\""):
        mongo_restore.run(restore_params(servers, [first, second], database, tmp_path / "s1", on_duplicate="fail"),
                          False)
    # against the target: found before anything is written
    database = fresh("rst")
    mongo_restore.run(restore_params(servers, first, database, tmp_path / "s2"), False)
    with pytest.raises(FerryError, match=r"fail and 1 document\(s\) already exist.*DataSets: 1 \(_id \"clash\"\)"):
        mongo_restore.run(restore_params(servers, second, database, tmp_path / "s3", on_duplicate="fail"), False)
    assert target[database].DataSets.find_one({"_id": "b1"}) is None
    # identical documents are no conflict: the same zip again passes
    result = mongo_restore.run(restore_params(servers, first, database, tmp_path / "s4", on_duplicate="fail"), False)
    assert result["changed"] is False and result["duplicates"] == 3


def big_zip(source, servers, tmp_path, count, name=None):
    name = name or fresh("big")
    docs = [{"_id": "%08d-%s" % (i, uuid.uuid4()), "dataset_id": "d%d" % (i % 7), "n": i, "pad": "x" * 300}
            for i in range(count)]
    for start in range(0, count, 5000):
        source[name].DataSetFiles.insert_many(docs[start:start + 5000], ordered=False)
    return backup(servers, name, tmp_path / "big.zip", tmp_path / "bstate")


def _module_env():
    env = dict(os.environ)
    env["ANSIBLE_COLLECTIONS_PATH"] = str(ROOT / ".run" / "collections")
    env["PYTHONPATH"] = str(ROOT / ".run" / "collections")
    return env


def test_sigkill_mid_restore_then_rerun_equals_a_clean_restore(servers, source, target, tmp_path):
    zip_path = big_zip(source, servers, tmp_path, 40000)
    killed, clean = fresh("killed"), fresh("clean")
    state = tmp_path / "state"
    params = restore_params(servers, zip_path, killed, state, batch_size=500)
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {k: v for k, v in params.items() if v is not None}}))
    proc = subprocess.Popen([sys.executable, str(MODULE), str(args)], env=_module_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    record = state / "steps" / "mongo_restore.json"
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            progress = (json.loads(record.read_text()) if record.exists() else {}).get("progress") or {}
            if progress.get("total") and progress.get("done", 0) >= 0.3 * progress["total"]:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the restore ended before it could be killed: %s" % proc.stdout.read()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    assert 0 < target[killed].DataSetFiles.estimated_document_count() < 40000
    resumed = mongo_restore.run(params, False)
    assert resumed["decision"] == "resume" and resumed["verified"]
    # counts go on from the killed run's checkpoint; what it sent after that comes back as identical
    counts = resumed["collections"]["DataSetFiles"]
    assert counts["read"] == counts["inserted"] + counts["identical"] == 40000 and counts["conflicting"] == 0
    mongo_restore.run(restore_params(servers, zip_path, clean, tmp_path / "cstate"), False)
    assert raw_sets(target, killed) == raw_sets(target, clean)
    assert mongo_restore.run(params, False)["changed"] is False


def test_stop_file_stops_between_batches_and_a_rerun_finishes(servers, source, target, tmp_path):
    zip_path = big_zip(source, servers, tmp_path, 3000)
    database = fresh("stop")
    state = tmp_path / "state"
    state.mkdir()
    (state / "STOP").touch()
    params = restore_params(servers, zip_path, database, state, batch_size=100)
    with pytest.raises(FerryError, match="stopped on request"):
        mongo_restore.run(params, False)
    assert target[database].DataSetFiles.estimated_document_count() < 3000
    (state / "STOP").unlink()
    result = mongo_restore.run(params, False)
    assert result["verified"] and target[database].DataSetFiles.estimated_document_count() == 3000


def test_an_original_format_zip_restores(servers, target, tmp_path):
    docs = {"DataSets": [{"_id": "d1", "owner": "u", "n": 1, "f": 1.5, "nan": float("nan")},
                         {"owner": "u", "_id": "d2", "list": [1, {"a": None}]}],
            "TrainedModels": [{"_id": "m1", "thumbnail_path": "uploads/u/x.png"}], "Tokens": []}
    zip_path = mvi_original.write_zip(tmp_path / "dbBkup.zip", docs)
    database = fresh("orig")
    result = mongo_restore.run(restore_params(servers, str(zip_path), database, tmp_path / "state",
                                              rewrites=["thumbnail_path"], verify="full"), False)
    assert result["formats"] == ["original"] and result["inserted"] == 3 and result["verified"]
    got = {doc["_id"]: doc for doc in target[database].DataSets.find()}
    assert list(got["d2"]) == ["_id", "owner", "list"] and got["d1"]["f"] == 1.5
    model = target[database].TrainedModels.find_one()
    assert model["thumbnail_path"] == "/opt/powerai-vision/data/u/x.png"
    users_zip = mvi_original.write_zip(tmp_path / "userDb.zip", docs, scope="users")
    again = mongo_restore.run(restore_params(servers, str(users_zip), database, tmp_path / "state2",
                                             rewrites=["thumbnail_path"]), False)
    assert again["changed"] is False and again["duplicates"] == 3 and again["conflicting"] == 0


def test_an_index_secantusdb_refuses_is_a_warning_and_the_others_are_created(servers, source, target, tmp_path):
    name = fresh("idx")
    source[name].DataSets.insert_one({"_id": "x", "owner": "u", "notes": "text"})
    source[name].DataSets.create_index([("owner", 1)], name="owner_1")
    zip_path = backup(servers, name, tmp_path / "db.zip", tmp_path / "bstate")
    with zipfile.ZipFile(zip_path) as zf:  # SecantusDB cannot make a text index to back up: add one to the manifest
        manifest = json.loads(zf.read(backupzip.MANIFEST))
        members = {member: zf.read(member) for member in zf.namelist()}
    manifest["collections"]["DataSets"]["indexes"].append({"key": {"notes": "text"}, "name": "notes_text"})
    members[backupzip.MANIFEST] = json.dumps(manifest).encode()
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    database = fresh("rst")
    result = mongo_restore.run(restore_params(servers, zip_path, database, tmp_path / "state"), False)
    assert result["indexes_created"] == 1 and "owner_1" in target[database].DataSets.index_information()
    assert len(result["index_warnings"]) == 1 and "DataSets, index notes_text" in result["index_warnings"][0]
    assert "code 67" in result["index_warnings"][0]


# -- bad input ---------------------------------------------------------------------------------------------------
@pytest.fixture
def small_zip(servers, source, tmp_path):
    name = fresh("small")
    source[name].DataSets.insert_many([{"_id": "d%d" % i, "pad": "p" * 2000} for i in range(50)])
    return backup(servers, name, tmp_path / "small.zip", tmp_path / "bstate")


def assert_nothing_written(target, database):
    assert database not in target.list_database_names()


def test_a_rerun_after_the_zips_were_cleaned_up_is_a_skip_but_a_zip_never_restored_must_exist(
        servers, target, small_zip, tmp_path):
    params = restore_params(servers, small_zip, fresh("rst"), tmp_path / "state")
    assert mongo_restore.run(dict(params), False)["inserted"] == 50
    assert mongo_restore.run(dict(params), False)["decision"] == "skip"
    os.utime(small_zip, ns=(1, 1))  # another zip at that path (by its size and time): restored again, all identical
    again = mongo_restore.run(dict(params), False)
    assert again["decision"] == "run" and again["identical"] == 50 and again["changed"] is False
    os.unlink(small_zip)  # the role's cleanup removes the work zips once the migration is done
    again = mongo_restore.run(dict(params), False)
    assert again["decision"] == "skip" and again["changed"] is False
    other = restore_params(servers, small_zip, fresh("rst"), tmp_path / "state2")
    with pytest.raises(FerryError, match="src .*small.zip does not exist"):
        mongo_restore.run(other, False)


def test_verification_fails_when_the_server_did_not_take_every_document(
        servers, target, small_zip, tmp_path, monkeypatch):
    def dropping(writer, batch):  # a server that loses a document without an error
        writer.coll.insert_many(batch.docs[:-1], ordered=False)
        writer.counts["inserted"] += len(batch.docs) - 1

    monkeypatch.setattr(restore.Writer, "write", dropping)
    params = restore_params(servers, small_zip, fresh("rst"), tmp_path / "state")
    with pytest.raises(FerryError, match=r"verification failed .*DataSets: 50 document\(s\) read, 49 acknowledged "
                                         r"by the server, 1 of 50 checked missing \(\"d49\"\)"):
        mongo_restore.run(params, False)


def test_a_batch_cut_by_a_network_error_is_sent_again_by_a_client_that_does_not_retry_writes(
        servers, source, target, tmp_path, monkeypatch):
    """The restore's client has the driver's retryable writes off; the first batch goes half in, then the
    connection "drops": the resend inserts the rest and meets the first half as identical duplicates."""
    name = fresh("big")
    zip_path = big_zip(source, servers, tmp_path, 3000, name)
    real = pymongo.collection.Collection.insert_many
    calls = []

    def cut_once(coll, docs, ordered=True, **kwargs):
        calls.append((len(docs), coll.database.client.options.retry_writes))
        if len(calls) == 1:
            real(coll, docs[:len(docs) // 2], ordered=ordered, **kwargs)
            raise pymongo.errors.AutoReconnect("connection closed (test)")
        return real(coll, docs, ordered=ordered, **kwargs)

    monkeypatch.setattr(pymongo.collection.Collection, "insert_many", cut_once)
    database = fresh("rst")
    result = mongo_restore.run(restore_params(servers, zip_path, database, tmp_path / "state", batch_size=1000,
                                              verify="full"), False)
    assert [retry for _size, retry in calls] == [False] * len(calls)
    assert calls[0][0] == calls[1][0] == 1000 and len(calls) == 4
    assert (result["inserted"], result["duplicates"], result["conflicting"]) == (2500, 500, 0)
    assert result["verified"]
    assert raw_sets(target, database) == raw_sets(source, name, ["DataSetFiles"])


def test_a_second_network_error_on_the_same_batch_fails_naming_the_collection(
        servers, source, target, tmp_path, monkeypatch):
    zip_path = big_zip(source, servers, tmp_path, 10)

    def cut(coll, docs, ordered=True, **kwargs):
        raise pymongo.errors.AutoReconnect("connection closed (test)")

    monkeypatch.setattr(pymongo.collection.Collection, "insert_many", cut)
    with pytest.raises(FerryError, match=r"collection DataSetFiles: the insert of 10 document\(s\) failed: "
                                         r"connection closed \(test\); so far read 0, inserted 0"):
        mongo_restore.run(restore_params(servers, zip_path, fresh("rst"), tmp_path / "state"), False)


def test_a_zip_of_no_collection_is_refused_not_restored_as_nothing(servers, target, tmp_path):
    empty = tmp_path / "empty.zip"
    zipfile.ZipFile(str(empty), "w").close()  # a valid zip with no member
    database = fresh("rst")
    with pytest.raises(FerryError, match="holds none of profile mvi's collections"):
        mongo_restore.run(restore_params(servers, str(empty), database, tmp_path / "state"), False)
    assert_nothing_written(target, database)


def test_wrong_password_is_a_clear_error(servers, small_zip, tmp_path):
    params = restore_params(servers, small_zip, fresh("rst"), tmp_path / "state", login_password="wrong-password")
    with pytest.raises(FerryError, match="authentication failed for ferry .*code 18") as exc:
        mongo_restore.run(params, False)
    assert "wrong-password" not in str(exc.value)


def test_one_flipped_byte_fails_with_nothing_written(servers, target, small_zip, tmp_path):
    data = bytearray(Path(small_zip).read_bytes())
    with zipfile.ZipFile(small_zip) as zf:
        info = zf.getinfo(backupzip.member_name("DataSets"))
    data[info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2] ^= 0x01
    bad = tmp_path / "flipped.zip"
    bad.write_bytes(bytes(data))
    database = fresh("rst")
    with pytest.raises(FerryError, match=r"member collections/DataSets.jsonl is corrupt.*nothing was written"):
        mongo_restore.run(restore_params(servers, str(bad), database, tmp_path / "state"), False)
    assert_nothing_written(target, database)


def test_a_truncated_zip_fails_with_nothing_written(servers, target, small_zip, tmp_path):
    bad = tmp_path / "truncated.zip"
    bad.write_bytes(Path(small_zip).read_bytes()[:-200])
    database = fresh("rst")
    with pytest.raises(FerryError, match="is not a readable zip"):
        mongo_restore.run(restore_params(servers, str(bad), database, tmp_path / "state"), False)
    assert_nothing_written(target, database)


@pytest.mark.parametrize("member", ["Foo", "collections/Foo.jsonl", "../evil"])
def test_a_foreign_member_fails_naming_it(servers, target, small_zip, tmp_path, member):
    with zipfile.ZipFile(small_zip, "a") as zf:
        zf.writestr(member, b"[]")
    database = fresh("rst")
    with pytest.raises(FerryError, match=r"1 member\(s\) that are not collections of profile mvi.*%r" % member):
        mongo_restore.run(restore_params(servers, small_zip, database, tmp_path / "state"), False)
    assert_nothing_written(target, database)


def test_a_foreign_member_of_an_original_zip_fails_naming_it(servers, target, tmp_path):
    zip_path = mvi_original.write_zip(tmp_path / "dbBkup.zip", {"DataSets": [{"_id": "a"}], "Foo": []})
    database = fresh("rst")
    with pytest.raises(FerryError, match=r"not collections of profile mvi.*'Foo'"):
        mongo_restore.run(restore_params(servers, str(zip_path), database, tmp_path / "state"), False)
    assert_nothing_written(target, database)


def test_a_member_that_does_not_match_its_manifest_fails(servers, target, small_zip, tmp_path):
    with zipfile.ZipFile(small_zip) as zf:
        members = {member: zf.read(member) for member in zf.namelist()}
    members[backupzip.member_name("DataSets")] += extjson.encode(bson.encode({"_id": "extra"})) + b"\n"
    bad = tmp_path / "edited.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    database = fresh("rst")
    with pytest.raises(FerryError, match="does not match the manifest"):
        mongo_restore.run(restore_params(servers, str(bad), database, tmp_path / "state"), False)
    assert_nothing_written(target, database)
