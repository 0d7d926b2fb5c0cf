"""Load an MVI-shaped database (IBM Maximo Visual Inspection's ``DLAAS``) into a MongoDB server, and the data mount
files its documents point at: the fixture of the mongo_backup / mongo_restore / file_sync tests and benchmarks.

The 24 collections of the ``mvi`` profile (plugins/module_utils/mongo/profiles.py), made up but shaped as MVI's:
users own project groups (``ProjectGroups``, ``owner``), each project group has data sets (``DataSets``: ``owner``,
``project_group_id``) with their children by ``dataset_id`` (``DataSetFiles``, ``DataSetFileLabels``,
``DataSetFileObjectLabels``, ``DataSetCategories``, ``DataSetTags``, ``DataSetActiontags``,
``DataSetFileUserKeys``, ``DataSetFileActionLabels``), trained models (``TrainedModels`` with a
``thumbnail_path`` ``uploads/...``), ``DnnScripts``, ``DLTasks``, ``BGTasks``, ``UserDNNs``; the server-only
collections get a few documents each. A few indexes are made (``owner``, ``project_group_id``, ``dataset_id``, a
unique one).

Files under ``--files-root`` (when given), as MVI's tool finds them: ``<owner>/datasets/<dataset _id>/<file>``,
``<owner>/trained-models/<model _id>.zip`` and ``<_id>-meta.json``, ``<owner>/trained-models/thumbnails/<_id>.png``,
``<owner>/dnn-scripts/<script _id>.zip``, and ``logs/migrations/old/status`` (the tool's own files, which the profile
excludes).

``--id-kind uuid`` (MVI's: ``_id`` strings of UUIDs) or ``objectid``; ``--all-types`` adds documents and fields of
every BSON type a backup must carry unchanged (Int64 with small values, -0.0, NaN, Decimal128, Binary subtypes
0/3/4/5/0x80, dates before 1970 and at the ends of years 1..9999, Regex, Timestamp, Min/MaxKey, Code with scope,
nested arrays, _ids of other types). SecantusDB refuses dates outside years 1..9999 (its server decodes them with
Python's datetime); the unit tests of extjson cover those.
The same arguments give the same data (a PRNG seeded with ``--seed``; times derive from a fixed date).

Usage: python tools/gen_mvi_db.py [--uri URI] [--database DLAAS] [--files-root DIR] [--users 3]
       [--project-groups 4] [--datasets 2] [--files-per-dataset 5] [--id-kind uuid|objectid] [--all-types]
       [--seed 1] [--ids auto|all|none]
The URI defaults to $FERRY_MONGO_URI (so a password need not be on the command line). Prints a JSON summary:
users, project groups (with owners), documents per collection and, unless too many, the ids per collection.
"""

import argparse
import datetime
import hashlib
import json
import os
import random
import sys
import uuid

import bson
import bson.json_util
import pymongo
from bson.binary import Binary
from bson.code import Code
from bson.datetime_ms import DatetimeMS
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp

COLLECTIONS = ["DataSets", "DLTasks", "TrainedModels", "ProjectGroups", "BGTasks", "DataSetCategories",
               "DataSetFiles", "DataSetFileLabels", "DataSetFileUserKeys", "DataSetTags", "DataSetActiontags",
               "DataSetFileActionLabels", "DataSetFileObjectLabels", "InferenceOps", "InferenceDetails", "WebAPIs",
               "UserDNNs", "DnnScripts", "DeployableBinaries", "DockerHostPorts", "SysUsers", "UploadOperations",
               "Tokens", "RegisteredApps"]
START = datetime.datetime(2021, 6, 1, 8, 0, 0)
BATCH = 1000
IDS_AUTO_LIMIT = 20000


class Generator:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.docs = dict((name, []) for name in COLLECTIONS)
        self.files = {}  # relative path -> bytes
        self.clock = 0

    # -- values ------------------------------------------------------------------------------------------------
    def new_id(self):
        if self.args.id_kind == "objectid":
            return ObjectId(bytes(self.rng.getrandbits(8) for _unused in range(12)))
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def when(self):
        self.clock += self.rng.randint(1, 600)
        return START + datetime.timedelta(seconds=self.clock)

    def text(self, words=3):
        vocabulary = ["cat", "dog", "bolt", "crack", "rust", "weld", "scratch", "dent", "line", "panel", "é", "日本"]
        return " ".join(self.rng.choice(vocabulary) for _unused in range(words))

    def blob(self, size):
        return bytes(self.rng.getrandbits(8) for _unused in range(size))

    # -- the documents -----------------------------------------------------------------------------------------
    def make(self):
        args = self.args
        users = ["user%d" % index for index in range(1, args.users + 1)]
        pgs = []
        for index in range(args.project_groups):
            owner = users[index % len(users)]
            pg_id = self.new_id()
            pgs.append((pg_id, owner))
            self.add("ProjectGroups", {"_id": pg_id, "name": "project group %d" % index, "owner": owner,
                                       "description": self.text(6), "created_at": self.when(),
                                       "usage": Int64(index), "enabled": True})
            for dataset_index in range(args.datasets):
                self.dataset(pg_id, owner, dataset_index)
            script_id = self.new_id()
            self.add("DnnScripts", {"_id": script_id, "owner": owner, "project_group_id": pg_id,
                                    "name": "script%d.zip" % index, "created_at": self.when()})
            self.files["%s/dnn-scripts/%s.zip" % (owner, script_id)] = self.blob(300)
        for index, user in enumerate(users):
            self.add("UserDNNs", {"_id": self.new_id(), "owner": user, "name": "dnn of %s" % user,
                                  "project_group_id": pgs[index % len(pgs)][0] if pgs else None})
            self.add("SysUsers", {"_id": self.new_id(), "user_name": user, "role": "admin" if index == 0 else "user",
                                  "last_login": self.when()})
            self.add("Tokens", {"_id": self.new_id(), "user_name": user, "expires": self.when()})
        for name in ("InferenceOps", "InferenceDetails", "WebAPIs", "DeployableBinaries", "DockerHostPorts",
                     "UploadOperations", "RegisteredApps"):
            for index in range(2):
                self.add(name, {"_id": self.new_id(), "name": "%s %d" % (name, index), "created_at": self.when(),
                                "port": 9000 + index, "owner": users[index % len(users)] if users else None})
        if args.all_types:
            self.all_types(users, pgs)
        self.files["logs/migrations/old/status/complete"] = b""
        return users, pgs

    def dataset(self, pg_id, owner, index):
        dataset_id = self.new_id()
        self.add("DataSets", {"_id": dataset_id, "name": "data set %d" % index, "owner": owner,
                              "project_group_id": pg_id, "created_at": self.when(), "total_file_count": 0,
                              "type": self.rng.choice(["image", "video"])})
        for category in ("good", "bad"):
            self.add("DataSetCategories", {"_id": self.new_id(), "dataset_id": dataset_id, "name": category,
                                           "owner": owner})
        self.add("DataSetTags", {"_id": self.new_id(), "dataset_id": dataset_id, "name": "tag%d" % index})
        self.add("DataSetActiontags", {"_id": self.new_id(), "dataset_id": dataset_id, "name": "action%d" % index})
        self.add("DataSetFileUserKeys", {"_id": self.new_id(), "dataset_id": dataset_id, "key": "k%d" % index,
                                         "value": self.text(1)})
        for file_index in range(self.args.files_per_dataset):
            file_id = self.new_id()
            file_name = "%s.jpg" % file_id
            self.add("DataSetFiles", {"_id": file_id, "dataset_id": dataset_id, "file_name": file_name,
                                      "original_file_name": "IMG_%04d.JPG" % file_index, "owner": owner,
                                      "created_at": self.when(), "size": Int64(400 + file_index),
                                      "width": 640, "height": 480, "upload_type": "file_upload",
                                      "category_name": "good" if file_index % 2 else "bad"})
            self.add("DataSetFileLabels", {"_id": self.new_id(), "dataset_id": dataset_id, "file_id": file_id,
                                           "name": "defect", "generate_type": "manual"})
            self.add("DataSetFileObjectLabels", {
                "_id": self.new_id(), "dataset_id": dataset_id, "file_id": file_id, "name": "crack",
                "bndbox": {"xmin": self.rng.randint(0, 300), "ymin": self.rng.randint(0, 200),
                           "xmax": self.rng.randint(301, 640), "ymax": self.rng.randint(201, 480)},
                "confidence": round(self.rng.random(), 4)})
            self.files["%s/datasets/%s/%s" % (owner, dataset_id, file_name)] = self.blob(self.rng.randint(64, 512))
        self.add("DataSetFileActionLabels", {"_id": self.new_id(), "dataset_id": dataset_id, "name": "walk",
                                             "start_time": 1.5, "end_time": 3.25})
        self.add("BGTasks", {"_id": self.new_id(), "owner": owner, "project_group_id": pg_id,
                             "dataset_id": dataset_id, "type": "augment", "status": "completed"})
        model_id = self.new_id()
        self.add("TrainedModels", {"_id": model_id, "owner": owner, "project_group_id": pg_id,
                                   "dataset_id": dataset_id, "name": "model %d" % index, "accuracy": 0.9,
                                   "thumbnail_path": "uploads/%s/trained-models/thumbnails/%s.png" % (owner, model_id),
                                   "created_at": self.when()})
        self.add("DLTasks", {"_id": self.new_id(), "owner": owner, "project_group_id": pg_id,
                             "model_id": model_id, "status": "trained", "epochs": 20})
        self.files["%s/trained-models/%s.zip" % (owner, model_id)] = self.blob(700)
        self.files["%s/trained-models/%s-meta.json" % (owner, model_id)] = b'{"model": 1}\n'
        self.files["%s/trained-models/thumbnails/%s.png" % (owner, model_id)] = self.blob(100)

    def all_types(self, users, pgs):
        owner = users[0] if users else "nobody"
        pg_id = pgs[0][0] if pgs else None
        every = {
            "int64_small": Int64(3), "int64_big": Int64(2 ** 40), "int32": -7, "neg_zero": -0.0,
            "nan": float("nan"), "inf": float("inf"), "decimal": Decimal128("12345.678901234567890"),
            "bin0": b"\x00\xff raw", "bin3": Binary(uuid.UUID(int=3).bytes, 3),
            "bin4": Binary(uuid.UUID(int=4).bytes, 4),
            "bin5": Binary(hashlib.md5(b"x").digest(), 5), "bin128": Binary(b"user", 0x80),
            "before_1970": datetime.datetime(1969, 7, 20, 20, 17, 40), "year_1": DatetimeMS(-62135596800000),
            "year_9999": DatetimeMS(253402300799999),
            "regex": Regex("^defect.*$", "im"), "timestamp": Timestamp(1622534400, 7), "min": MinKey(),
            "max": MaxKey(), "code": Code("function () { return x; }", {"x": 1}), "oid": ObjectId(b"\x01" * 12),
            "nested": [[1, [2, [3.5]]], {"a": {"b": {"c": []}}}], "text": "line1\nline2 \u2028 \U0001f600",
            "null": None, "bool": False,
        }
        self.add("InferenceDetails", dict({"_id": self.new_id(), "name": "every type"}, **every))
        self.add("DataSets", dict({"_id": self.new_id(), "name": "typed data set", "owner": owner,
                                   "project_group_id": pg_id}, **every))
        # ids of other types
        for doc_id in (Int64(42), 7, {"composite": 1, "part": "a"}, Binary(uuid.UUID(int=9).bytes, 4), 2.5):
            self.add("InferenceOps", {"_id": doc_id, "name": "odd id", "owner": owner})

    def add(self, name, doc):
        self.docs[name].append(doc)


def load(client, database, docs):
    db = client[database]
    for name in COLLECTIONS:
        coll = db[name]
        if name not in db.list_collection_names():
            db.create_collection(name)
        batch = docs[name]
        for start in range(0, len(batch), BATCH):
            coll.insert_many(batch[start:start + BATCH], ordered=False)
    db.DataSets.create_index([("owner", 1)])
    db.DataSets.create_index([("project_group_id", 1)])
    db.TrainedModels.create_index([("owner", 1), ("created_at", -1)], name="owner_created")
    for name in ("DataSetFiles", "DataSetFileLabels", "DataSetFileObjectLabels"):
        db[name].create_index([("dataset_id", 1)])
    db.SysUsers.create_index([("user_name", 1)], unique=True)


def write_files(root, files):
    for relative, data in sorted(files.items()):
        path = os.path.join(root, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)


def plain_id(value):
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return value
    return json.loads(bson.json_util.dumps(value)) if not isinstance(value, ObjectId) else str(value)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Load a generated MVI-shaped database and its data mount files.")
    parser.add_argument("--uri", default=os.environ.get("FERRY_MONGO_URI"),
                        help="MongoDB URI (default: $FERRY_MONGO_URI)")
    parser.add_argument("--database", default="DLAAS")
    parser.add_argument("--files-root", help="the data mount to fill (nothing written when not given)")
    parser.add_argument("--users", type=int, default=3)
    parser.add_argument("--project-groups", type=int, default=4)
    parser.add_argument("--datasets", type=int, default=2, help="data sets per project group")
    parser.add_argument("--files-per-dataset", type=int, default=5)
    parser.add_argument("--id-kind", choices=["uuid", "objectid"], default="uuid")
    parser.add_argument("--all-types", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ids", choices=["auto", "all", "none"], default="auto",
                        help="ids per collection in the summary (auto: when %d documents or fewer)" % IDS_AUTO_LIMIT)
    args = parser.parse_args(argv)
    if not args.uri:
        parser.error("--uri or $FERRY_MONGO_URI is needed")
    if args.users < 1 or args.project_groups < 0 or args.datasets < 0 or args.files_per_dataset < 0:
        parser.error("--users must be 1 or more, the other counts 0 or more")
    generator = Generator(args)
    users, pgs = generator.make()
    client = pymongo.MongoClient(args.uri, serverSelectionTimeoutMS=10000)
    try:
        load(client, args.database, generator.docs)
    finally:
        client.close()
    if args.files_root:
        write_files(args.files_root, generator.files)
    total = sum(len(docs) for docs in generator.docs.values())
    summary = {
        "database": args.database,
        "users": users,
        "project_groups": [plain_id(pg_id) for pg_id, _owner in pgs],
        "project_group_owners": dict((str(plain_id(pg_id)), owner) for pg_id, owner in pgs),
        "collections": dict((name, len(docs)) for name, docs in generator.docs.items()),
        "documents": total,
        "files": len(generator.files),
        "files_root": os.path.abspath(args.files_root) if args.files_root else None,
    }
    if args.ids == "all" or (args.ids == "auto" and total <= IDS_AUTO_LIMIT):
        summary["ids"] = dict((name, [plain_id(doc["_id"]) for doc in docs]) for name, docs in generator.docs.items())
    json.dump(summary, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
