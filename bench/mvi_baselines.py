"""The issue 14 baselines, re-implemented from the facts in docs/design/mvi-issue14.md (§1.2, §1.4), not copied.

- ``original``: how the original tool (IBM vision-tools, misc/migrationAides, restoreMviDb.py) restores a zip:
  members in ``namelist()`` order, a member whose name is not an MVI collection skipped with an info log, the whole
  member read and ``json.loads``-ed at once, an empty array skipped, slices of 1000 documents. The count of
  consecutive successes starts at 1000; while it is >= 50 a slice goes in with one ordered ``insert_many`` (the
  pymongo default, so the server stops at the first duplicate), and on ``BulkWriteError`` the WHOLE slice is redone
  one document at a time (the documents the bulk had already inserted come back as duplicates). Below 50 the slice
  goes singly straight away. The single path skips ``DuplicateKeyError`` with a warning (resetting the count) and
  lets any other error end the run; it returns the count of consecutive successes at the end of the slice, which
  gates the next one. TrainedModels always goes singly, with its thumbnail_path fix-up. ``insert_one`` stands in
  for the original's ``insert``, which pymongo 4 removed.
- ``insert_one``: every document of the same zip with ``insert_one``, duplicates skipped.
- ``find``: ``for d in coll.find(): pass`` over every collection of the database, writing nothing.
The original-format zip the restores read is written by tests/support/mvi_original.py (the one writer of it).

Run as a process, as the original runs: ``python mvi_baselines.py ARGS.json`` where ARGS.json holds
``{"mode": "original"|"insert_one"|"find", "uri": ..., "database": ..., "src": <zip>}``; prints a JSON summary.
The URI (with its password) comes in a file, never on the command line.
"""

import json
import logging
import sys
import time
import zipfile

# The original's collection list (MongoAccessor.collections): the only members it restores.
COLLECTIONS = (
    "DataSets", "DLTasks", "TrainedModels", "ProjectGroups", "BGTasks", "DataSetCategories", "DataSetFiles",
    "DataSetFileLabels", "DataSetFileUserKeys", "DataSetTags", "DataSetActiontags", "DataSetFileActionLabels",
    "DataSetFileObjectLabels", "InferenceOps", "InferenceDetails", "WebAPIs", "UserDNNs", "DnnScripts",
    "DeployableBinaries", "DockerHostPorts", "SysUsers", "UploadOperations", "Tokens", "RegisteredApps",
)
SLICE = 1000     # documents per slice
GATE = 50        # consecutive single successes needed before a slice is tried in bulk again
DATA_MOUNT = "/opt/powerai-vision/data"

log = logging.getLogger("restoreMviDb")


class Counts:
    """What a baseline did (the original reports nothing; counting costs a few additions per document)."""

    def __init__(self):
        self.read = self.inserted = self.duplicates = 0
        self.bulk_slices = self.bulk_failed = self.single_slices = 0
        self.insert_s = 0.0  # the time spent sending slices (the data phase, beside ferry's docs_per_s)

    def as_dict(self):
        return dict(vars(self))


def fix_up_trained_model(doc):
    """TrainedModels: a thumbnail_path under uploads/ moves under the data mount (first occurrence only)."""
    try:
        if doc["thumbnail_path"].startswith("uploads/"):
            doc["thumbnail_path"] = doc["thumbnail_path"].replace("uploads/", DATA_MOUNT + "/", 1)
    except KeyError:
        log.info("fixUpTrainedModel: no 'thumbnail_path' in trained model '%s'.", doc["_id"])


FIX_UPS = {"TrainedModels": fix_up_trained_model}


def insert_singly(collection, name, documents, counts):
    """Each document with insert_one; a duplicate is logged and skipped. Returns the consecutive successes at
    the end (a duplicate resets the count); any other error propagates, as in the original."""
    from pymongo.errors import DuplicateKeyError  # pylint: disable=import-outside-toplevel
    fix_up = FIX_UPS.get(name)
    consecutive = 0
    counts.single_slices += 1
    log.info("Restoring individual documents, which will handle duplicate keys and document fix ups.")
    for doc in documents:
        try:
            if fix_up:
                fix_up(doc)
            collection.insert_one(doc)
            consecutive += 1
            counts.inserted += 1
        except DuplicateKeyError:
            log.warning("%s: duplicate Key f%s", name, doc["_id"])  # the original's typo: a literal "f"
            consecutive = 0
            counts.duplicates += 1
    return consecutive


def restore_documents(collection, name, documents, counts):
    """The slice loop: ordered bulk while the gate is open, the whole slice singly when the bulk fails."""
    from pymongo.errors import BulkWriteError  # pylint: disable=import-outside-toplevel
    consecutive = SLICE
    for start in range(0, len(documents), SLICE):
        chunk = documents[start:start + SLICE]
        log.info("working with slice %d-%d.", start, start + SLICE)
        if name in FIX_UPS or consecutive < GATE:
            consecutive = insert_singly(collection, name, chunk, counts)
            continue
        try:
            collection.insert_many(chunk)
            counts.bulk_slices += 1
            counts.inserted += len(chunk)
            consecutive = SLICE
        except BulkWriteError:
            counts.bulk_failed += 1
            consecutive = insert_singly(collection, name, chunk, counts)


def restore_original(archive_path, database, counts=None):
    """The original's restore of one zip into ``database`` (a pymongo Database or a mapping name -> collection)."""
    counts = counts or Counts()
    with zipfile.ZipFile(archive_path) as archive:
        names = archive.namelist()
        log.info("Looking to restore up to %d collections.", len(names))
        for name in names:
            if name not in COLLECTIONS:
                log.info("Skipping archive file '%s'.", name)
                continue
            log.info("Restoring collection '%s' from %s.", name, name)
            with archive.open(name) as member:
                documents = json.loads(member.read())
            counts.read += len(documents)
            if documents:
                began = time.monotonic()
                restore_documents(database[name], name, documents, counts)
                counts.insert_s += time.monotonic() - began
    log.info("Finished restore.")
    return counts


def restore_insert_one(archive_path, database, counts=None):
    """Every document of every MVI member with insert_one, duplicates skipped: the per-document baseline."""
    counts = counts or Counts()
    with zipfile.ZipFile(archive_path) as archive:
        for name in archive.namelist():
            if name in COLLECTIONS:
                with archive.open(name) as member:
                    documents = json.loads(member.read())
                counts.read += len(documents)
                insert_singly(database[name], name, documents, counts)
    return counts


def find_all(database):
    """``for d in coll.find(): pass`` over every collection; returns the documents seen."""
    seen = 0
    for name in sorted(database.list_collection_names()):
        for _doc in database[name].find():
            seen += 1
    return seen


def main(args_path):
    with open(args_path) as handle:
        args = json.load(handle)
    logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s: %(message)s", level=logging.INFO,
                        stream=sys.stderr)
    import pymongo  # pylint: disable=import-outside-toplevel
    client = pymongo.MongoClient(args["uri"])
    try:
        database = client[args["database"]]
        if args["mode"] == "find":
            return {"documents": find_all(database)}
        restore = restore_original if args["mode"] == "original" else restore_insert_one
        return restore(args["src"], database).as_dict()
    finally:
        client.close()


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
