"""verify.yml's and converge.yml's helper. Three commands:

    compare.py compare SERVERS_JSON SEED_JSON HOSTS_DIR TARGET ITEMS_JSON
    compare.py observe SERVERS_JSON SEED_JSON HOSTS_DIR
    compare.py change SERVERS_JSON SEED_JSON HOSTS_DIR HOST PROJECT_GROUP

compare: the target database seed[TARGET] and target1's data mount hold exactly what the sources' selections hold.
ITEMS_JSON is {"scope": "project_groups"|"users", "items": {source host: [ids or user names]}}. The selection is
computed here, independently of mongo_backup, from MVI's rules (the original's cmds/migmgr.py): project groups -
ProjectGroups by _id, the other top-level collections by project_group_id; users - the seven top-level collections
by owner; in both the eight DataSet* collections by dataset_id of the selected DataSets; files of a project group:
each selected DataSet's directory, each TrainedModel's files and thumbnails (<_id>*), each DnnScript's zip; of a
user: the user's directory. Documents are compared as sets of raw BSON per collection (the bytes, so every type,
value and key order), files by sha256 (several migrations may share the target's data mount: only the selected
files must be there and equal, and nothing else unless --only). Prints a JSON report; exits 1 when something
differs.

observe: what the hosts and servers hold now, to tell whether a run (check mode) wrote anything: every file under
HOSTS_DIR with its size and mtime, every directory, and each database of SEED_JSON (collection -> count and an
order-free digest of the raw documents). Prints one JSON object.

change: what happens on a source between the files run and the cut-over: a new DataSetFiles document in the
first DataSet of PROJECT_GROUP, a new file in that DataSet's directory and bytes appended to one it had. Prints
what it changed as JSON.
"""
import glob
import hashlib
import json
import os
import sys

from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient

RAW = CodecOptions(document_class=RawBSONDocument)
TOP = ["DataSets", "DLTasks", "TrainedModels", "DnnScripts", "BGTasks", "UserDNNs"]
CHILDREN = ["DataSetCategories", "DataSetFiles", "DataSetFileLabels", "DataSetFileUserKeys", "DataSetTags",
            "DataSetActiontags", "DataSetFileActionLabels", "DataSetFileObjectLabels"]


def client(servers, prefix):
    return MongoClient(host=servers[prefix + "_HOST"], port=int(servers[prefix + "_PORT"]),
                       username=servers[prefix + "_USER"], password=servers[prefix + "_PASSWORD"],
                       authSource=servers[prefix + "_AUTH_SOURCE"], directConnection=True)


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree(root, relative):
    """relative path -> sha256 of every file at or under root/relative."""
    found = {}
    start = os.path.join(root, relative)
    if os.path.isfile(start):
        return {relative: sha256(start)}
    for top, dirs, files in os.walk(start):
        dirs[:] = [d for d in dirs if os.path.relpath(os.path.join(top, d), root) != os.path.join("logs", "migrations")]
        for name in files:
            path = os.path.join(top, name)
            found[os.path.relpath(path, root)] = sha256(path)
    return found


def selection(db, root, scope, items):
    docs, files = {}, {}
    items = set(items)

    def take(name, keep):
        chosen = []
        for doc in db.get_collection(name, codec_options=RAW).find():
            if keep(doc):
                docs.setdefault(name, set()).add(doc.raw)
                chosen.append(doc)
        return chosen

    if scope == "users":
        chosen = dict((name, take(name, lambda doc: str(doc.get("owner")) in items))
                      for name in TOP + ["ProjectGroups"])
    else:
        take("ProjectGroups", lambda doc: str(doc["_id"]) in items)
        chosen = dict((name, take(name, lambda doc: str(doc.get("project_group_id")) in items)) for name in TOP)
    datasets = set(str(doc["_id"]) for doc in chosen["DataSets"])
    for name in CHILDREN:
        take(name, lambda doc: str(doc.get("dataset_id")) in datasets)
    if scope == "users":
        for user in items:
            if os.path.isdir(os.path.join(root, user)):
                files.update(tree(root, user))
        return docs, files
    for doc in chosen["DataSets"]:
        files.update(tree(root, os.path.join(str(doc["owner"]), "datasets", str(doc["_id"]))))
    for doc in chosen["TrainedModels"]:
        for pattern in ("trained-models/%s*", "trained-models/thumbnails/%s*"):
            for path in glob.glob(os.path.join(root, str(doc["owner"]), pattern % doc["_id"])):
                files.update(tree(root, os.path.relpath(path, root)))
    for doc in chosen["DnnScripts"]:
        path = os.path.join(str(doc["owner"]), "dnn-scripts", "%s.zip" % doc["_id"])
        if os.path.exists(os.path.join(root, path)):
            files.update(tree(root, path))
    return docs, files


def compare(servers_json, seed_json, hosts_dir, target, items_json, only=""):
    servers, seed, wanted = json.load(open(servers_json)), json.load(open(seed_json)), json.loads(items_json)
    expected_docs, expected_files, clashes = {}, {}, []
    with client(servers, "FERRY_MONGO") as source:
        for host, items in sorted(wanted["items"].items()):
            docs, files = selection(source[seed[host]], os.path.join(hosts_dir, host, "data"), wanted["scope"], items)
            for name, raws in docs.items():
                expected_docs.setdefault(name, set()).update(raws)
            for path, digest in files.items():
                if expected_files.setdefault(path, digest) != digest:
                    clashes.append(path)
    with client(servers, "FERRY_MONGO_TARGET") as server:
        db = server[seed[target]]
        actual_docs = dict((name, set(doc.raw for doc in db.get_collection(name, codec_options=RAW).find()))
                           for name in db.list_collection_names())
    actual_files = tree(os.path.join(hosts_dir, "target1", "data"), "")
    names = sorted(set(expected_docs) | set(actual_docs))
    report = {
        "collections": dict((name, {"expected": len(expected_docs.get(name, ())),
                                    "actual": len(actual_docs.get(name, ())),
                                    "missing": len(expected_docs.get(name, set()) - actual_docs.get(name, set())),
                                    "extra": len(actual_docs.get(name, set()) - expected_docs.get(name, set()))})
                            for name in names),
        "documents": sum(len(raws) for raws in expected_docs.values()),
        "files": len(expected_files),
        "files_missing": sorted(set(expected_files) - set(actual_files))[:20],
        "files_extra": sorted(set(actual_files) - set(expected_files))[:20] if only == "--only" else [],
        "files_differing": sorted(path for path in set(expected_files) & set(actual_files)
                                  if expected_files[path] != actual_files[path])[:20],
        "clashes": clashes[:20],
    }
    same = (all(not row["missing"] and not row["extra"] for row in report["collections"].values())
            and not (report["files_missing"] or report["files_extra"] or report["files_differing"] or clashes)
            and report["documents"] > 0 and report["files"] > 0)
    report["same"] = same
    print(json.dumps(report, sort_keys=True))
    return 0 if same else 1


def observe(servers_json, seed_json, hosts_dir):
    servers, seed = json.load(open(servers_json)), json.load(open(seed_json))
    found, dirs = {}, []
    for top, names, leaves in os.walk(hosts_dir):
        dirs += [os.path.relpath(os.path.join(top, name), hosts_dir) for name in names]
        for name in leaves:
            stat = os.lstat(os.path.join(top, name))
            found[os.path.relpath(os.path.join(top, name), hosts_dir)] = [stat.st_size, stat.st_mtime_ns]
    databases = {}
    for host, name in sorted(seed.items()):
        if host == "run":
            continue
        with client(servers, "FERRY_MONGO_TARGET" if host.startswith("target") else "FERRY_MONGO") as server:
            db = server[name]
            for collection in sorted(db.list_collection_names()):
                total = 0
                raws = [doc.raw for doc in db.get_collection(collection, codec_options=RAW).find()]
                for raw in raws:
                    total = (total + int(hashlib.sha256(raw).hexdigest(), 16)) % (1 << 256)
                databases.setdefault(host, {})[collection] = [len(raws), "%064x" % total]
    print(json.dumps({"files": found, "dirs": sorted(dirs), "databases": databases}, sort_keys=True))
    return 0


def change(servers_json, seed_json, hosts_dir, host, project_group):
    servers, seed = json.load(open(servers_json)), json.load(open(seed_json))
    root = os.path.join(hosts_dir, host, "data")
    with client(servers, "FERRY_MONGO") as server:
        db = server[seed[host]]
        dataset = sorted(db.DataSets.find({"project_group_id": project_group}), key=lambda doc: str(doc["_id"]))[0]
        directory = os.path.join(root, str(dataset["owner"]), "datasets", str(dataset["_id"]))
        old = sorted(os.listdir(directory))[0]
        with open(os.path.join(directory, old), "ab") as handle:
            handle.write(b"changed after the bulk pass\n")
        with open(os.path.join(directory, "cutover.jpg"), "wb") as handle:
            handle.write(b"a file made after the bulk pass\n")
        new_id = "cutover-%s" % dataset["_id"]
        db.DataSetFiles.insert_one({"_id": new_id, "dataset_id": dataset["_id"], "owner": dataset["owner"],
                                    "file_name": "cutover.jpg"})
    print(json.dumps({"dataset": str(dataset["_id"]), "appended": old, "file": "cutover.jpg", "document": new_id}))
    return 0


if __name__ == "__main__":
    sys.exit({"compare": compare, "observe": observe, "change": change}[sys.argv[1]](*sys.argv[2:]))
