"""Data shared by the issue 14 benches (bench_mongo_backup, bench_mongo_restore): MVI-like documents in the
source test server, the ferry zip (mongo_backup) and the original-format zip, made once per bench run.

Documents: DataSetFiles and DataSetFileLabels shaped as MVI's (dataset/file/label ids, owner, times in ms,
image sizes, bounding boxes, polygon points), 0.5-1 KB each, string UUID ``_id``s and JSON-typed values only,
so the original's plain-JSON format holds them and both zips restore to the same BSON.
"""

import atexit
import hashlib
import json
import os
import random
import subprocess
import sys
import uuid

from common import BENCH_DIR, ROOT, collection_env, timed
import mvi_baselines

sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
# the one writer of the original tool's zips
import mvi_original  # noqa: E402  pylint: disable=wrong-import-position

DOCUMENTS = int(os.environ.get("FERRY_BENCH_MVI_DOCS", "100000"))
MODULES = os.path.join(ROOT, "plugins", "modules")
SERVERS = os.path.join(os.environ.get("FERRY_RUN_DIR", os.path.join(ROOT, ".run")), "servers", "servers.json")
SHAPES = ("DataSetFiles", "DataSetFileLabels")
WORDS = ("crack", "scratch", "dent", "ok", "weld", "bolt", "rust", "chip", "label", "part", "line", "station")
_CACHE = {}


def servers():
    """The test servers' environment, with ``mongo`` (the source) started if needed (`up` keeps a running one).
    The restore bench's target is a server of its own (bench_mongo_restore.Target)."""
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "test-servers"), "up", "mongo"],
                   check=True, stdout=subprocess.DEVNULL)
    with open(SERVERS) as handle:
        return json.load(handle)


def connection(env, prefix):
    """The modules' connection options for the server FERRY_<prefix>_*."""
    return {"login_host": env[prefix + "_HOST"], "login_port": int(env[prefix + "_PORT"]),
            "login_user": env[prefix + "_USER"], "login_password": env[prefix + "_PASSWORD"],
            "login_database": env[prefix + "_AUTH_SOURCE"]}


def _uuid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _file(rng, dataset, owner, stamp):
    file_id = _uuid(rng)
    width, height = rng.choice(((640, 480), (1280, 720), (1920, 1080), (2448, 2048)))
    return {
        "_id": file_id, "dataset_id": dataset, "owner": owner, "file_name": file_id + ".jpg",
        "original_file_name": "IMG_%06d.jpg" % rng.randrange(10 ** 6), "file_type": "image",
        "upload_type": rng.choice(("file_upload", "zip_upload", "video_capture")),
        "created_at": stamp, "updated_at": stamp + rng.randrange(10 ** 7), "width": width, "height": height,
        "size": rng.randrange(20000, 4000000), "category_id": None if rng.random() < 0.3 else _uuid(rng),
        "category_name": rng.choice(WORDS), "tag_list": [rng.choice(WORDS) for _i in range(rng.randrange(4))],
        "parent_id": None, "frame_time": None if rng.random() < 0.8 else rng.random() * 600,
        "url": "/%s/datasets/%s/files/%s.jpg" % (owner, dataset, file_id),
        "thumbnail_path": "uploads/%s/datasets/%s/thumbnails/%s.jpg" % (owner, dataset, file_id),
        "augment_method": None, "labels": rng.randrange(8), "generate_type": "manual",
        "comment": " ".join(rng.choice(WORDS) for _i in range(rng.randrange(1, 36))),
    }


def _label(rng, dataset, owner, stamp):
    xmin, ymin = rng.randrange(1000), rng.randrange(1000)
    points = [[xmin + rng.randrange(300), ymin + rng.randrange(300)] for _i in range(rng.randrange(8, 28))]
    return {
        "_id": _uuid(rng), "dataset_id": dataset, "file_id": _uuid(rng), "owner": owner, "name": rng.choice(WORDS),
        "created_at": stamp, "generate_type": rng.choice(("manual", "auto")), "confidence": round(rng.random(), 6),
        "bndbox": {"xmin": xmin, "ymin": ymin, "xmax": xmin + rng.randrange(1, 300),
                   "ymax": ymin + rng.randrange(1, 300)},
        "segment_polygons": [points], "action_id": None, "hidden": False,
    }


def documents(count=DOCUMENTS, seed=14):
    """(collection, [documents]) pairs: half DataSetFiles, half DataSetFileLabels, over 100 datasets."""
    rng = random.Random(seed)
    datasets = [(_uuid(rng), "user%d" % (index % 3)) for index in range(100)]
    shaped = {name: [] for name in SHAPES}
    for index in range(count):
        dataset, owner = datasets[index % len(datasets)]
        make = _file if index % 2 == 0 else _label
        shaped[SHAPES[index % 2]].append(make(rng, dataset, owner, 1600000000000 + index * 1000))
    return [(name, shaped[name]) for name in SHAPES]


def present_share(data, share=0.1, seed=41):
    """A random ``share`` of every collection's documents (the same ones each call)."""
    rng = random.Random(seed)
    return [(name, rng.sample(docs, int(len(docs) * share))) for name, docs in data]


def load(client, database, data, batch=1000):
    """Insert ``data`` into ``database`` (copies: insert_many would add nothing, but keep the caller's lists)."""
    for name, docs in data:
        for start in range(0, len(docs), batch):
            client[database][name].insert_many([dict(doc) for doc in docs[start:start + batch]], ordered=False)


def load_present(source, source_db, target, target_db, present, batch=1000):
    """Copy the documents whose ``_id`` is in ``present`` ({name: [ids]}) from the source, byte for byte."""
    from bson.codec_options import CodecOptions  # pylint: disable=import-outside-toplevel
    from bson.raw_bson import RawBSONDocument  # pylint: disable=import-outside-toplevel
    raw = CodecOptions(document_class=RawBSONDocument)
    for name, ids in present.items():
        for start in range(0, len(ids), batch):
            found = list(source[source_db].get_collection(name, codec_options=raw).find(
                {"_id": {"$in": ids[start:start + batch]}}))
            target[target_db][name].insert_many(found, ordered=False)


def make_source(uri, database):
    """Generate and load the documents (in a child process, so the bench process stays small: a timed
    child's peak RSS includes its parent's at the fork). Returns counts, the present ids and the JSON size."""
    import pymongo  # pylint: disable=import-outside-toplevel
    data = documents()
    client = pymongo.MongoClient(uri)
    try:
        load(client, database, data)
    finally:
        client.close()
    return {"counts": {name: len(docs) for name, docs in data},
            "present": {name: [doc["_id"] for doc in docs] for name, docs in present_share(data)},
            "doc_bytes": sum(len(json.dumps(doc)) for _n, docs in data for doc in docs)}


def digest(client, database):
    """Order-free digest of every collection: {name: [count, sum of sha256(raw BSON) mod 2**256 as hex]}."""
    from bson.codec_options import CodecOptions  # pylint: disable=import-outside-toplevel
    from bson.raw_bson import RawBSONDocument  # pylint: disable=import-outside-toplevel
    raw = CodecOptions(document_class=RawBSONDocument)
    result = {}
    for name in sorted(client[database].list_collection_names()):
        total = count = 0
        for doc in client[database].get_collection(name, codec_options=raw).find(batch_size=1000):
            total += int(hashlib.sha256(doc.raw).hexdigest(), 16)
            count += 1
        result[name] = [count, "%064x" % (total % (1 << 256))]
    return result


def module_path(name):
    return os.path.join(MODULES, name + ".py")


def run_module(name, args, label, profile=None):
    """A module run as Ansible runs it (python module.py ARGS.json), timed; returns (seconds, rss, result).
    With ``profile`` (a path), the run is under cProfile and its stats go there."""
    path = os.path.join(BENCH_DIR, "%s_args.json" % label)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the password
    with os.fdopen(fd, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    argv = [sys.executable] + (["-m", "cProfile", "-o", profile] if profile else []) + [module_path(name), path]
    seconds, rss, out = timed(argv, env=collection_env())
    result = json.loads(out)
    if result.get("failed"):
        raise RuntimeError("%s failed: %s" % (name, out[-2000:]))
    return seconds, rss, result


def run_baseline(mode, uri, database, src=None, label="baseline"):
    """A baseline of mvi_baselines.py in its own process; returns (seconds, rss, summary)."""
    path = os.path.join(BENCH_DIR, "%s_args.json" % label)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"mode": mode, "uri": uri, "database": database, "src": src}, handle)
    seconds, rss, out = timed([sys.executable, mvi_baselines.__file__, path])
    return seconds, rss, json.loads(out)


def prepared():
    """Once per bench run: the source database, the original-format zip and (when mongo_backup exists) the
    ferry zip. Returns a dict; the source database is dropped when the process ends."""
    if _CACHE:
        return _CACHE
    import pymongo  # pylint: disable=import-outside-toplevel
    env = servers()
    os.makedirs(BENCH_DIR, exist_ok=True)
    source = pymongo.MongoClient(env["FERRY_MONGO_URI"])
    database = "bench_mvi_src_%s" % uuid.uuid4().hex[:8]
    print("loading %d MVI-like documents into %s (once)..." % (DOCUMENTS, database), file=sys.stderr)
    atexit.register(source.drop_database, database)
    path = os.path.join(BENCH_DIR, "mvi_source_args.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"uri": env["FERRY_MONGO_URI"], "database": database}, handle)
    made = json.loads(subprocess.run([sys.executable, os.path.abspath(__file__), path], check=True,
                                     stdout=subprocess.PIPE).stdout)
    # batches of 1000: the bench process stays small (a timed child's peak RSS counts its parent's at the fork)
    original = mvi_original.write_zip(
        os.path.join(BENCH_DIR, "mvi-original.zip"),
        [(name, source[database][name].find(batch_size=1000)) for name in SHAPES])
    _CACHE.update(env=env, source=source, source_db=database, counts=made["counts"], present=made["present"],
                  original_zip=original, documents=DOCUMENTS, doc_bytes=made["doc_bytes"], ferry_zip=None)
    if os.path.exists(module_path("mongo_backup")):
        dest = os.path.join(BENCH_DIR, "mvi-ferry.zip")
        _CACHE["ferry_zip_backup"] = run_module("mongo_backup", backup_args(env, database, dest, "prepare"),
                                                "mongo_backup_prepare")[2]
        _CACHE["ferry_zip"] = dest
    return _CACHE


def backup_args(env, database, dest, label):
    args = connection(env, "FERRY_MONGO")
    args.update(database=database, dest=dest, profile="mvi", force=True,
                state_dir=os.path.join(BENCH_DIR, "mvi_state_" + label), step="bench_" + label)
    return args


def restore_args(env, database, src, label):
    args = connection(env, "FERRY_MONGO_TARGET")
    args.update(database=database, src=src, profile="mvi", on_duplicate="skip", force=True,
                state_dir=os.path.join(BENCH_DIR, "mvi_state_" + label), step="bench_" + label)
    return args


if __name__ == "__main__":
    with open(sys.argv[1]) as args_file:
        ARGS = json.load(args_file)
    print(json.dumps(make_source(ARGS["uri"], ARGS["database"])))
