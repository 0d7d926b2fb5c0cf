# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/gen_mvi_db.py, the MVI fixture: the same seed gives the same documents and files; the summary matches
what is in the database and on disk; both id kinds; the shape the mvi profile selects by (owner,
project_group_id, dataset_id, thumbnail_path)."""
import hashlib
import json
import os
import subprocess
import sys
import uuid

from bson.objectid import ObjectId

from ansible_collections.ferry.migrate.plugins.module_utils.mongo import extjson

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GEN = os.path.join(ROOT, "tools", "gen_mvi_db.py")


def generate(servers, database, root, *extra):
    env = dict(os.environ, FERRY_MONGO_URI=servers["FERRY_MONGO_URI"])
    out = subprocess.run([sys.executable, GEN, "--database", database, "--files-root", str(root), "--seed", "3",
                          "--users", "2", "--project-groups", "3", "--datasets", "2", "--files-per-dataset", "3"]
                         + list(extra), env=env, capture_output=True, text=True, check=True, timeout=300)
    assert servers["FERRY_MONGO_PASSWORD"] not in out.stdout + out.stderr
    return json.loads(out.stdout)


def tree(root):
    found = {}
    for directory, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, root)] = hashlib.sha256(handle.read()).hexdigest()
    return found


def raw_sets(client, database):
    db = client[database]
    return dict((name, set(doc.raw for doc in db.get_collection(name, codec_options=extjson.RAW_OPTIONS).find()))
                for name in db.list_collection_names())


def test_same_seed_same_database_and_files(servers, mongo_client, tmp_path):
    first, second = "ferry_gen_%s" % uuid.uuid4().hex[:10], "ferry_gen_%s" % uuid.uuid4().hex[:10]
    one = generate(servers, first, tmp_path / "a", "--all-types")
    two = generate(servers, second, tmp_path / "b", "--all-types")
    assert dict(one, database=None, files_root=None) == dict(two, database=None, files_root=None)
    assert raw_sets(mongo_client, first) == raw_sets(mongo_client, second)
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    assert len(tree(tmp_path / "a")) == one["files"]
    counts = dict((name, mongo_client[first][name].count_documents({})) for name in one["collections"])
    assert counts == one["collections"] and len(counts) == 24 and sum(counts.values()) == one["documents"]
    assert sorted(one["ids"]["ProjectGroups"]) == sorted(one["project_groups"])
    db = mongo_client[first]
    for model in db.TrainedModels.find():
        assert model["thumbnail_path"].startswith("uploads/%s/trained-models/thumbnails/" % model["owner"])
        assert os.path.isfile(tmp_path / "a" / model["owner"] / "trained-models" / ("%s.zip" % model["_id"]))
    for dataset in db.DataSets.find({"name": {"$ne": "typed data set"}}):
        assert db.DataSetFiles.count_documents({"dataset_id": dataset["_id"]}) == 3
        assert os.path.isdir(tmp_path / "a" / dataset["owner"] / "datasets" / dataset["_id"])
    assert "logs/migrations/old/status/complete" in tree(tmp_path / "a")


def test_objectid_ids(servers, mongo_client, tmp_path):
    database = "ferry_gen_%s" % uuid.uuid4().hex[:10]
    summary = generate(servers, database, tmp_path / "m", "--id-kind", "objectid", "--project-groups", "1")
    ids = [doc["_id"] for doc in mongo_client[database].DataSets.find()]
    assert ids and all(isinstance(value, ObjectId) for value in ids)
    assert summary["project_groups"] == [str(mongo_client[database].ProjectGroups.find_one()["_id"])]
