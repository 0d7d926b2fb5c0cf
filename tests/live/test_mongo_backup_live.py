# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""mongo_backup against the SecantusDB of scripts/test-servers, on an MVI-shaped database (tools/gen_mvi_db.py):
server, user and two-project-group backups compared, as sets of raw BSON per collection, with the selection made
independently here (one query per data set, as IBM's tool did); two project groups in one call == the union of
single calls; wrong password (code 18); a closed port; check mode writes nothing; a rerun is a skip and a removed
zip is made again; a lossy document fails naming its _id; a missing project group fails unless warned. Fresh
database names (SecantusDB drops are slow)."""
import json
import os
import subprocess
import sys
import time
import uuid
import zipfile

import bson
import pytest
from bson.int64 import Int64
from bson.raw_bson import RawBSONDocument

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.mongo import backupzip, extjson
from ansible_collections.ferry.migrate.plugins.modules import mongo_backup

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GEN = os.path.join(ROOT, "tools", "gen_mvi_db.py")
TOP = ["ProjectGroups", "DataSets", "TrainedModels", "DnnScripts", "DLTasks", "BGTasks", "UserDNNs"]
CHILDREN = ["DataSetCategories", "DataSetFiles", "DataSetFileLabels", "DataSetFileUserKeys", "DataSetTags",
            "DataSetActiontags", "DataSetFileActionLabels", "DataSetFileObjectLabels"]


def fresh(prefix):
    return "ferry_%s_%s" % (prefix, uuid.uuid4().hex[:10])


def params_for(servers, database, dest, state, **extra):
    spec = mongo_backup.argument_spec()
    params = dict((name, option.get("default")) for name, option in spec.items())
    params.update(login_host=servers["FERRY_MONGO_HOST"], login_port=int(servers["FERRY_MONGO_PORT"]),
                  login_user=servers["FERRY_MONGO_USER"], login_password=servers["FERRY_MONGO_PASSWORD"],
                  login_database=servers["FERRY_MONGO_AUTH_SOURCE"], database=database, dest=str(dest),
                  state_dir=str(state))
    params.update(extra)
    return params


@pytest.fixture(scope="module")
def mvi(servers, tmp_path_factory):
    """A generated MVI database (every type, uuid ids) and its data mount; the generator's summary."""
    root = tmp_path_factory.mktemp("mount")
    database = fresh("mvi")
    env = dict(os.environ, FERRY_MONGO_URI=servers["FERRY_MONGO_URI"])
    out = subprocess.run([sys.executable, GEN, "--database", database, "--files-root", str(root), "--users", "3",
                          "--project-groups", "4", "--datasets", "2", "--files-per-dataset", "4", "--all-types",
                          "--seed", "7"], env=env, capture_output=True, text=True, check=True, timeout=300)
    summary = json.loads(out.stdout)
    summary["root"] = str(root)
    return summary


def raw_set(client, database, name, query=None):
    coll = client[database].get_collection(name, codec_options=extjson.RAW_OPTIONS)
    return set(doc.raw for doc in coll.find(query or {}))


def zip_sets(path):
    """Per collection, the set of raw BSON the zip's lines decode to (re-encoded); checks the manifest too."""
    sets = {}
    with zipfile.ZipFile(path) as archive:
        manifest = backupzip.manifest_of(archive, path)
        for name, info in manifest["collections"].items():
            lines = list(backupzip.iter_lines(archive, info["member"]))
            raws = [bson.encode(extjson.decode(line)) for line in lines]
            assert len(raws) == info["count"] == len(set(raws)), name
            digest = 0
            for raw in raws:
                digest = extjson.digest_add(digest, raw)
            assert extjson.digest_hex(digest) == info["bson_digest"], name
            sets[name] = set(raws)
    return manifest, sets


def expected_selection(client, database, field, items):
    """What IBM's tool selects, done its way (a query per data set), as raw sets per collection."""
    db = client[database]
    expected = {}
    for name in TOP:
        query = {field: {"$in": items}}
        if name == "ProjectGroups" and field == "project_group_id":
            query = {"_id": {"$in": items}}
        expected[name] = raw_set(client, database, name, query)
    dataset_ids = [doc["_id"] for doc in db.DataSets.find({field: {"$in": items}}, {"_id": 1})]
    for name in CHILDREN:
        expected[name] = set()
        for dataset_id in dataset_ids:
            expected[name] |= raw_set(client, database, name, {"dataset_id": dataset_id})
    return expected


def test_server_backup_holds_every_document_unchanged(servers, mongo_client, mvi, tmp_path):
    dest = tmp_path / "out" / "server.zip"
    result = mongo_backup.run(params_for(servers, mvi["database"], dest, tmp_path / "state",
                                         files_root=mvi["root"]), False)
    assert result["decision"] == "run" and result["changed"]
    manifest, sets = zip_sets(str(dest))
    names = set(mongo_client[mvi["database"]].list_collection_names())
    assert set(sets) == names and len(names) == 24
    for name in names:
        assert sets[name] == raw_set(mongo_client, mvi["database"], name), name
    assert result["documents"] == mvi["documents"]
    assert result["collections"] == mvi["collections"]
    assert manifest["scope"] == {"kind": "server", "items": []}
    assert manifest["source"]["database"] == mvi["database"] and "password" not in json.dumps(manifest)
    with zipfile.ZipFile(str(dest)) as archive:
        files = [json.loads(line) for line in backupzip.iter_lines(archive, "files.jsonl")]
        assert archive.namelist()[-1] == backupzip.MANIFEST
        assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in archive.infolist())
        assert archive.testzip() is None
    assert files == [{"path": ".", "kind": "dir", "item": "server", "collection": None, "_id": None}]
    assert manifest["files"]["exclude"] == ["logs/migrations/"]
    indexes = manifest["collections"]["SysUsers"]["indexes"]
    assert [index["key"] for index in indexes] == [[["user_name", {"$numberInt": "1"}]]] and indexes[0]["unique"]
    assert not os.path.exists(str(dest) + ".partial")
    assert oct(os.stat(dest).st_mode & 0o777) == "0o600"


def test_user_backup_is_the_users_documents_and_their_children(servers, mongo_client, mvi, tmp_path):
    dest = tmp_path / "user.zip"
    result = mongo_backup.run(params_for(servers, mvi["database"], dest, tmp_path / "state", users=["user2"],
                                         files_root=mvi["root"]), False)
    _manifest, sets = zip_sets(str(dest))
    expected = expected_selection(mongo_client, mvi["database"], "owner", ["user2"])
    assert sets == expected
    assert sum(len(raws) for raws in expected.values()) == result["documents"] > 0
    assert list(result["per_item"]) == ["user2"]
    with zipfile.ZipFile(str(dest)) as archive:
        files = [json.loads(line) for line in backupzip.iter_lines(archive, "files.jsonl")]
    assert {"path": "user2", "kind": "dir", "item": "user2", "collection": None, "_id": None} in files
    assert all(entry["path"].startswith("user2/") or entry["path"] == "user2" for entry in files)


def test_two_project_groups_equal_the_union_of_single_calls(servers, mongo_client, mvi, tmp_path):
    first, second = mvi["project_groups"][0], mvi["project_groups"][1]
    sets = {}
    for label, items in (("one", [first]), ("two", [second]), ("both", [first, second])):
        dest = tmp_path / ("%s.zip" % label)
        result = mongo_backup.run(params_for(servers, mvi["database"], dest, tmp_path / "state",
                                             project_groups=items, step="pg-" + label,
                                             files_root=mvi["root"]), False)
        sets[label] = zip_sets(str(dest))[1]
        if label == "both":
            both = result
    for name in sets["both"]:
        assert sets["both"][name] == sets["one"][name] | sets["two"][name], name
    assert sets["both"] == expected_selection(mongo_client, mvi["database"], "project_group_id", [first, second])
    assert sorted(both["per_item"]) == sorted([first, second])
    assert both["per_item"][first]["ProjectGroups"] == 1
    # every data set's files: its directory, its models' globs expanded to the files on disk, its script zip
    with zipfile.ZipFile(str(tmp_path / "both.zip")) as archive:
        files = [json.loads(line) for line in backupzip.iter_lines(archive, "files.jsonl")]
    kinds = set(entry["kind"] for entry in files)
    assert kinds == {"dir", "glob", "file"}
    expanded = [entry for entry in files if entry.get("from_glob")]
    assert expanded and all(os.path.isfile(os.path.join(mvi["root"], entry["path"])) for entry in expanded)
    assert all(os.path.exists(os.path.join(mvi["root"], entry["path"]))
               for entry in files if entry["kind"] in ("dir", "file") and entry["path"] not in both["missing_files"])


def test_missing_project_group_fails_unless_warned(servers, mvi, tmp_path):
    params = params_for(servers, mvi["database"], tmp_path / "pg.zip", tmp_path / "state",
                        project_groups=[mvi["project_groups"][0], "no-such-pg"])
    with pytest.raises(FerryError, match="project group no-such-pg not found"):
        mongo_backup.run(params, False)
    assert not os.path.exists(tmp_path / "pg.zip") and not os.path.exists(str(tmp_path / "pg.zip") + ".partial")
    result = mongo_backup.run(dict(params, missing_items="warn"), False)
    assert result["warnings"] and "no-such-pg" in result["warnings"][0]
    assert list(result["per_item"]) == [mvi["project_groups"][0]]


def test_a_database_without_the_profile_s_collections_is_refused_not_backed_up_empty(servers, mongo_client, tmp_path):
    name = "ferry_bk_typo_%s" % uuid.uuid4().hex[:8]
    mongo_client[name].Other.insert_one({"_id": 1})  # exists, but is no MVI database (a mistyped name reads empty)
    for database in (name, name + "_missing"):
        params = params_for(servers, database, tmp_path / "x.zip", tmp_path / "state")
        with pytest.raises(FerryError, match="database %s on .* holds none of profile mvi's collections" % database):
            mongo_backup.run(params, False)
        assert not os.path.exists(str(tmp_path / "x.zip"))
    mongo_client.drop_database(name)


def test_wrong_password_is_a_clear_error(servers, mvi, tmp_path):
    params = params_for(servers, mvi["database"], tmp_path / "x.zip", tmp_path / "state",
                        login_password="wrong-" + uuid.uuid4().hex)
    with pytest.raises(FerryError) as caught:
        mongo_backup.run(params, False)
    assert "authentication failed for %s" % servers["FERRY_MONGO_USER"] in str(caught.value)
    assert "(code 18)" in str(caught.value) and params["login_password"] not in str(caught.value)
    assert not os.path.exists(tmp_path / "x.zip")


def test_closed_port_fails_within_the_timeout(servers, mvi, tmp_path, closed_port):
    params = params_for(servers, mvi["database"], tmp_path / "x.zip", tmp_path / "state", login_port=closed_port,
                        connect_timeout=2)
    started = time.monotonic()
    with pytest.raises(FerryError, match=r"cannot reach 127\.0\.0\.1:%d within 2s" % closed_port):
        mongo_backup.run(params, False)
    assert time.monotonic() - started < 10


def test_check_mode_writes_nothing_and_predicts_the_counts(servers, mvi, tmp_path):
    dest = tmp_path / "out" / "pg.zip"
    state = tmp_path / "state"
    params = params_for(servers, mvi["database"], dest, state, project_groups=mvi["project_groups"][:2])
    predicted = mongo_backup.run(dict(params), True)
    assert predicted["changed"] and "sha256" not in predicted
    assert not os.path.exists(tmp_path / "out") and not os.path.exists(state)
    real = mongo_backup.run(dict(params), False)
    for key in ("documents", "collections", "per_item", "files", "scope"):
        assert predicted[key] == real[key], key


def test_rerun_is_a_skip_and_a_removed_zip_is_made_again(servers, mvi, tmp_path):
    dest = tmp_path / "u.zip"
    params = params_for(servers, mvi["database"], dest, tmp_path / "state", users=["user1"])
    first = mongo_backup.run(dict(params), False)
    again = mongo_backup.run(dict(params), False)
    assert again["decision"] == "skip" and not again["changed"] and again["sha256"] == first["sha256"]
    os.unlink(dest)
    third = mongo_backup.run(dict(params), False)
    assert third["decision"] == "run" and third["changed"] and os.path.exists(dest)
    members = [(info["member"], info["member_sha256"]) for info in
               backupzip.read_manifest(str(dest))["collections"].values()]
    assert first["collections"] == third["collections"] and members  # the same documents again


def _lossy_docs(doc_id):
    """Raw documents canonical Extended JSON cannot carry (pymongo cannot make them): a Symbol, Undefined, a NaN
    with a payload; (raw, reason)."""
    def element(kind, key, payload):
        return bytes([kind]) + key.encode() + b"\x00" + payload

    def string(text):
        data = text.encode() + b"\x00"
        return len(data).to_bytes(4, "little") + data

    def doc(*elements):
        body = element(0x02, "_id", string(doc_id)) + element(0x02, "owner", string("u")) + b"".join(elements) + b"\x00"
        return (len(body) + 4).to_bytes(4, "little") + body
    yield doc(element(0x0E, "odd", string("s"))), "field odd holds the deprecated type Symbol"
    yield doc(element(0x06, "odd", b"")), "field odd holds the deprecated type Undefined"
    yield doc(element(0x01, "odd", (0x7FF8000000000001).to_bytes(8, "little"))), "field odd holds a NaN with a payload"


def test_lossy_document_fails_naming_its_id(servers, mongo_client, tmp_path):
    database = fresh("lossy")
    coll = mongo_client[database].get_collection("DataSets", codec_options=extjson.RAW_OPTIONS)
    coll.insert_one({"_id": "plain", "owner": "u", "n": Int64(1)})
    for raw, reason in _lossy_docs("doc-lossy"):  # the first the server keeps as sent
        coll.insert_one(RawBSONDocument(raw))
        if coll.find_one({"_id": "doc-lossy"}).raw == raw:
            break
        coll.delete_one({"_id": "doc-lossy"})
    else:
        pytest.skip("the server keeps none of the lossy encodings as sent")
    params = params_for(servers, database, tmp_path / "l.zip", tmp_path / "state")
    with pytest.raises(extjson.Lossy, match=r'collection DataSets, _id "doc-lossy": ' + reason):
        mongo_backup.run(dict(params), False)
    assert not os.path.exists(tmp_path / "l.zip") and not os.path.exists(str(tmp_path / "l.zip") + ".partial")
    result = mongo_backup.run(dict(params, lossy="warn", step="warned"), False)
    assert result["documents"] == 2 and "doc-lossy" in result["lossy"][0]


def test_unsafe_path_from_data_fails_naming_id_and_expression(servers, mongo_client, tmp_path):
    database = fresh("paths")
    mongo_client[database].DataSets.insert_one({"_id": "evil", "owner": "..", "project_group_id": "pg"})
    mongo_client[database].ProjectGroups.insert_one({"_id": "pg", "owner": ".."})
    params = params_for(servers, database, tmp_path / "p.zip", tmp_path / "state", project_groups=["pg"])
    with pytest.raises(FerryError, match=r'collection DataSets, _id "evil": profile expression '
                                         r'top_level\[1\]\.files\[0\]\.dir .*\'\.\.\' component'):
        mongo_backup.run(params, False)
    assert not os.path.exists(tmp_path / "p.zip")


def test_module_runs_as_ansible_runs_it(servers, mvi, tmp_path):
    """The module file with its arguments on stdin, as Ansible runs it: the JSON result, no password in it."""
    args = {"ANSIBLE_MODULE_ARGS": {
        "login_host": servers["FERRY_MONGO_HOST"], "login_port": int(servers["FERRY_MONGO_PORT"]),
        "login_user": servers["FERRY_MONGO_USER"], "login_password": servers["FERRY_MONGO_PASSWORD"],
        "database": mvi["database"], "users": ["user3"], "dest": str(tmp_path / "m.zip"),
        "state_dir": str(tmp_path / "state")}}
    module = os.path.join(ROOT, "plugins", "modules", "mongo_backup.py")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, module], input=json.dumps(args), capture_output=True, text=True,
                         env=env, timeout=300, check=False)
    result = json.loads(out.stdout)
    assert not result.get("failed"), result
    assert result["changed"] and result["documents"] > 0
    assert servers["FERRY_MONGO_PASSWORD"] not in out.stdout


def test_stop_file_leaves_no_zip_and_the_next_run_resumes(servers, mvi, tmp_path):
    from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import Stopped
    state = tmp_path / "state"
    state.mkdir()
    (state / "STOP").write_text("")
    dest = tmp_path / "s.zip"
    params = params_for(servers, mvi["database"], dest, state)
    with pytest.raises(Stopped):
        mongo_backup.run(dict(params), False)
    assert not os.path.exists(dest) and not os.path.exists(str(dest) + ".partial")
    (state / "STOP").unlink()
    result = mongo_backup.run(dict(params), False)
    assert result["decision"] == "resume" and os.path.exists(dest)


def test_objectid_project_groups_are_matched_by_their_hex(servers, mongo_client, tmp_path):
    database = fresh("oid")
    env = dict(os.environ, FERRY_MONGO_URI=servers["FERRY_MONGO_URI"])
    out = subprocess.run([sys.executable, GEN, "--database", database, "--id-kind", "objectid", "--users", "2",
                          "--project-groups", "3", "--datasets", "1", "--files-per-dataset", "2"],
                         env=env, capture_output=True, text=True, check=True, timeout=300)
    pg = json.loads(out.stdout)["project_groups"][1]
    dest = tmp_path / "oid.zip"
    result = mongo_backup.run(params_for(servers, database, dest, tmp_path / "state", project_groups=[pg]), False)
    from bson.objectid import ObjectId
    expected = expected_selection(mongo_client, database, "project_group_id", [ObjectId(pg)])
    assert zip_sets(str(dest))[1] == expected
    assert list(result["per_item"]) == [pg] and result["per_item"][pg]["ProjectGroups"] == 1


@pytest.mark.slow
def test_memory_stays_bounded_on_many_documents(servers, tmp_path):
    import tracemalloc
    database = fresh("big")
    env = dict(os.environ, FERRY_MONGO_URI=servers["FERRY_MONGO_URI"])
    out = subprocess.run([sys.executable, GEN, "--database", database, "--users", "2", "--project-groups", "4",
                          "--datasets", "5", "--files-per-dataset", "1000", "--ids", "none"],
                         env=env, capture_output=True, text=True, check=True, timeout=600)
    documents = json.loads(out.stdout)["documents"]
    assert documents > 60000
    params = params_for(servers, database, tmp_path / "big.zip", tmp_path / "state")
    tracemalloc.start()
    try:
        result = mongo_backup.run(params, False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result["documents"] == documents
    uncompressed = sum(info["bytes"] for info in backupzip.read_manifest(str(tmp_path / "big.zip"))
                       ["collections"].values())
    assert uncompressed > 16 << 20
    assert peak < 12 << 20, (peak, uncompressed)  # batches ahead (3 x 2000 docs) and 1 MiB chunks, not the data
