# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""mongo_restore: ferry backup zips (and the original MVI tool's zips) into a MongoDB database.

Order of work, each part bounded in memory:

1. Preflight, before any write: every zip opened, every member read to its end (its CRC checked), every member
   a profile collection (or the manifest / files.jsonl); a ferry member's sha256, size and line count against the
   manifest; an original member parsed whole (its JSON checked, its documents counted). With
   ``on_duplicate: fail``, a read pass finds the documents that already exist with other content.
2. Indexes from the manifest, before the data; what the server refuses (SecantusDB: text and hashed indexes,
   code 67) is a warning naming the collection and the index.
3. Data: lines streamed, decoded, rewritten when asked, encoded once into raw BSON, sent in unordered
   ``insert_many`` batches (bounded by count and bytes) while the next batch is being prepared. A duplicate
   ``_id`` is compared with what the target holds: identical (same sha256: an earlier run, another source with
   the same document) or conflicting (skipped, replaced or an error, as ``on_duplicate`` says). Any other write
   error fails naming the collection, the ``_id``, the code and the server's reason. A batch cut by a network
   error is sent once more (the client's retryable writes are off: see ``Writer._send``). After acknowledged
   batches the journal's checkpoint records ``{source, member, line}`` and the counts: a killed run resumes
   there, and the documents of the batch in flight come back as identical duplicates.
4. Verify: every document read acknowledged by the server, then the manifest's sample of ``(_id, sha256)``
   (``sample``) or every document (``full``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import time
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import (
    FerryError,
    check_paths,
    check_ranges,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import COMPLETE, SKIP, Journal, attempt_step
from ansible_collections.ferry.migrate.plugins.module_utils.mongo import backupzip, connection, extjson, original

try:
    import bson
    from bson import json_util
    from bson.codec_options import CodecOptions, DatetimeConversion
    from bson.raw_bson import RawBSONDocument
    from pymongo import ReplaceOne
    from pymongo.errors import BulkWriteError, ConnectionFailure, OperationFailure, PyMongoError
except ImportError:  # connection.check_pymongo reports it
    bson = None
    RAW_READ = None

    class PyMongoError(Exception):
        pass

    class BulkWriteError(PyMongoError):
        pass

    class OperationFailure(PyMongoError):
        pass

    class ConnectionFailure(PyMongoError):
        pass
else:
    # Documents as the server holds them (bytes to hash), dates outside years 1..9999 kept.
    RAW_READ = CodecOptions(document_class=RawBSONDocument, datetime_conversion=DatetimeConversion.DATETIME_AUTO)

MANIFEST, FILES = backupzip.MANIFEST, backupzip.FILES_MEMBER
READ_CHUNK = 1 << 20
MAX_BATCH_BYTES = 8 << 20          # below the server's 48 MB message limit, a few round trips per second
# _id lookups: SecantusDB's $in costs grow faster than its length (1000 ids looked up: one $in 0.92 s, $in of 100
# 0.155 s, of 25 0.085 s, one find_one each 0.45 s); on MongoDB a $in of 25 is one index probe each as well.
LOOKUP_CHUNK = 25
CHECKPOINT_INTERVAL = 1.0          # seconds: a kill replays at most this much, as identical duplicates
DUPLICATE_KEY = 11000
# Index errors that mean "this server cannot have this index": a warning, the data still goes in.
INDEX_WARNING_CODES = {2, 9, 67, 85, 86, 115, 197}
SHOWN = 20
SAMPLE_SIZE = 1000                 # documents an original zip's collection is verified by (a ferry zip has its own)
RANGES = {"batch_size": (1, 100000)}
COUNT_NAMES = ("read", "inserted", "identical", "conflicting", "replaced")


def restore_argument_spec():
    """mongo_restore's own options (the connection and state fragments are added by the module)."""
    return dict(
        src=dict(type="list", elements="path", required=True),
        database=dict(type="str"),
        profile=dict(type="str", default="mvi"),
        on_duplicate=dict(type="str", default="skip", choices=["skip", "replace", "fail"]),
        rewrites=dict(type="list", elements="str", default=[]),
        data_mount=dict(type="str", default="/opt/powerai-vision/data"),
        batch_size=dict(type="int", default=1000),
        indexes=dict(type="bool", default=True),
        verify=dict(type="str", default="sample", choices=["sample", "full", "none"]),
    )


def check_options(params):
    check_paths(params, ("src", "state_dir"))
    check_ranges(params, RANGES)
    if not params["src"]:
        raise FerryError("src is empty: give one backup zip or a list of them")
    connection.check_connection_options(params)


# -- sources ---------------------------------------------------------------------------------------------------
class Source:
    """One zip: a ferry backup (with its manifest) or an original MVI zip (bare collection names)."""

    def __init__(self, index, path):
        self.index = index
        self.path = path
        self.zf = None
        self.manifest = None
        self.members = {}        # collection -> member name
        self.counts = {}         # collection -> documents
        self.samples = {}        # collection -> [(_id value, sha256 hex)] (ferry: the manifest's)
        self.unreadable = {}     # collection -> sample entries whose _id is not Extended JSON

    @property
    def kind(self):
        return "ferry" if self.manifest is not None else "original"

    def open(self):
        try:
            self.zf = zipfile.ZipFile(self.path)
        except FileNotFoundError:
            raise FerryError("src %s does not exist" % self.path)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise FerryError("src %s is not a readable zip (truncated or corrupt?): %s" % (self.path, exc))
        return self

    def close(self):
        if self.zf is not None:
            self.zf.close()
            self.zf = None

    def documents(self, collection, start=0):
        """``(line, document)`` from line ``start`` on (earlier ones are read and dropped)."""
        member = self.members[collection]
        if self.manifest is None:
            for index, doc in original.iter_documents(self.zf, member):
                if index >= start:
                    yield index, doc
            return
        for number, line in enumerate(backupzip.iter_lines(self.zf, member)):
            if number < start:
                continue
            try:
                yield number, extjson.decode(line)
            except ValueError as exc:
                raise FerryError("%s: member %s line %d is not an Extended JSON document: %s"
                                 % (self.path, member, number + 1, exc))


def open_sources(paths, profile):
    """Every zip checked whole before anything is written (see the module docstring's preflight)."""
    sources = []
    try:
        for index, path in enumerate(paths):
            source = Source(index, path).open()
            sources.append(source)
            check_source(source, profile)
    except BaseException:
        for source in sources:
            source.close()
        raise
    return sources


def check_source(source, profile):
    names = source.zf.namelist()
    twice = sorted(name for name in set(names) if names.count(name) > 1)
    if twice:  # a reader would see only one of them
        raise FerryError("src %s has member(s) stored twice under one name: %s; nothing was written"
                         % (source.path, ", ".join(repr(name) for name in twice[:SHOWN])))
    if MANIFEST in names:
        source.manifest = _read_manifest(source)
        _check_ferry_members(source, names, profile)
    else:
        _check_original_members(source, names, profile)
    if not source.members:  # a zip of no collection at all restores nothing: never a success
        raise FerryError("src %s holds none of profile %s's collections: it is no backup of this application; "
                         "nothing was written" % (source.path, profile.name))


def _read_manifest(source):
    try:
        manifest = backupzip.manifest_of(source.zf, "src " + source.path)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise FerryError("src %s: member %s is corrupt: %s; nothing was written" % (source.path, MANIFEST, exc))
    if not isinstance(manifest.get("collections"), dict):
        raise FerryError("src %s: the manifest has no collections" % source.path)
    return manifest


def _foreign(source, foreign, what):
    shown = ", ".join(repr(name) for name in foreign[:SHOWN])
    raise FerryError("src %s has %d member(s) that are not %s: %s%s; nothing was written"
                     % (source.path, len(foreign), what, shown, " ..." if len(foreign) > SHOWN else ""))


def _check_ferry_members(source, names, profile):
    wanted = {backupzip.member_name(name): name for name in profile.collections}
    foreign = [name for name in names if name not in wanted and name not in (MANIFEST, FILES)]
    if foreign:
        _foreign(source, foreign, "collections of profile %s, %s or %s" % (profile.name, FILES, MANIFEST))
    for collection, entry in sorted(source.manifest["collections"].items()):
        member = backupzip.member_name(collection)
        if collection not in profile.collections:
            raise FerryError("src %s: the manifest lists collection %s, which profile %s does not have"
                             % (source.path, collection, profile.name))
        if not isinstance(entry, dict) or entry.get("member", member) != member or member not in names:
            raise FerryError("src %s: member %s of collection %s is missing" % (source.path, member, collection))
        sha, size, lines = _scan_member(source, member)
        expected = (entry.get("member_sha256"), entry.get("bytes", size), entry.get("count"))
        if (sha, size, lines) != expected:
            raise FerryError("src %s: member %s does not match the manifest (sha256 %s, %d bytes, %d lines; the "
                             "manifest says sha256 %s, %s bytes, %s documents); nothing was written"
                             % ((source.path, member, sha, size, lines) + expected))
        source.members[collection] = member
        source.counts[collection] = lines
        _read_sample(source, collection, entry.get("sample") or ())
    for name in names:
        if name in wanted and wanted[name] not in source.members:
            raise FerryError("src %s: member %s is not in the manifest" % (source.path, name))
    if FILES in names:
        _scan_member(source, FILES)  # its CRC


def _scan_member(source, member):
    """(sha256 hex, bytes, newlines) of a member read to its end, which checks its CRC."""
    digest, size, lines = hashlib.sha256(), 0, 0
    try:
        with source.zf.open(member) as stream:
            for chunk in iter(lambda: stream.read(READ_CHUNK), b""):
                digest.update(chunk)
                size += len(chunk)
                lines += chunk.count(b"\n")
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise FerryError("src %s: member %s is corrupt: %s; nothing was written" % (source.path, member, exc))
    return digest.hexdigest(), size, lines


def _read_sample(source, collection, pairs):
    """The manifest's ``[_id, sha256]`` pairs. One whose ``_id`` cannot be read is left out and counted: the sample
    is a check, the data is what the member holds (checked against the manifest's sha256)."""
    sample, unreadable = [], 0
    for pair in pairs:
        try:
            text, sha = pair
            sample.append((json_util.loads('{"_id": %s}' % text, json_options=extjson.JSON_OPTIONS)["_id"],
                           bytes.fromhex(sha).hex()))
        except (ValueError, TypeError):
            unreadable += 1
    source.samples[collection] = sample
    if unreadable:
        source.unreadable[collection] = unreadable


def _check_original_members(source, names, profile):
    foreign = [name for name in names if name not in profile.collections]
    if foreign:
        _foreign(source, foreign, "collections of profile %s (an original MVI zip holds one member per "
                 "collection, named after it; a ferry zip has %s)" % (profile.name, MANIFEST))
    for member in names:
        count = 0
        try:
            for count, _doc in original.iter_documents(source.zf, member):
                count += 1
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise FerryError("src %s: member %s is corrupt: %s; nothing was written" % (source.path, member, exc))
        source.members[member] = member
        source.counts[member] = count


def database_of(params, sources, profile):
    if params.get("database"):
        return params["database"]
    named = {((source.manifest or {}).get("source") or {}).get("database") or profile.database
             for source in sources}
    if len(named) > 1:
        raise FerryError("the sources come from databases %s: give database" % ", ".join(sorted(named)))
    return named.pop()


# -- documents into raw batches ----------------------------------------------------------------------------------
class Batch:
    __slots__ = ("docs", "ids", "size", "end")

    def __init__(self):
        self.docs, self.ids, self.size, self.end = [], [], 0, 0

    def sha(self, index):
        """The sha256 of a document's BSON, taken only where it is compared (a duplicate, a verification)."""
        return hashlib.sha256(self.docs[index].raw).digest()


class Preparer:
    """Decoded documents into what the writer sends: raw BSON, its ``_id`` and sha256.

    ``rewrite`` (a profile rewrite or None) changes a document; the raw bytes are then the rewritten document's,
    and ``renamed`` maps the sha256 before the rewrite to the one after, for the sample check.
    """

    def __init__(self, where, rewrite=None, sample_shas=(), sample_every=0):
        self.where = where
        self.rewrite = rewrite
        self.sample_shas = set(sample_shas)
        self.renamed = {}
        self.sample_every = sample_every   # an original zip has no sample: take every n-th document's
        self.sampled = []

    def prepare(self, number, doc):
        if "_id" not in doc:
            raise FerryError("%s, document %d has no _id: ferry restores documents by _id" % (self.where, number + 1))
        if next(iter(doc)) != "_id":     # the server keeps _id first; so do the bytes hashed here
            doc = dict([("_id", doc["_id"])] + [item for item in doc.items() if item[0] != "_id"])
        if self.rewrite is not None:
            before = hashlib.sha256(bson.encode(doc)).hexdigest() if self.sample_shas else None
            doc = self.rewrite(doc) or doc
        raw = bson.encode(doc)
        if self.rewrite is not None and before in self.sample_shas:
            self.renamed[before] = hashlib.sha256(raw).hexdigest()
        if self.sample_every and number % self.sample_every == 0:
            self.sampled.append((doc["_id"], hashlib.sha256(raw).hexdigest()))
        return doc["_id"], raw


def batches(documents, preparer, batch_size, max_bytes=MAX_BATCH_BYTES):
    """Batches of at most ``batch_size`` documents and about ``max_bytes`` bytes; ``end`` is the line after the
    batch's last document."""
    batch = Batch()
    for number, doc in documents:
        _id, raw = preparer.prepare(number, doc)
        batch.docs.append(RawBSONDocument(raw))
        batch.ids.append(_id)
        batch.size += len(raw)
        batch.end = number + 1
        if len(batch.docs) >= batch_size or batch.size >= max_bytes:
            yield batch
            batch = Batch()
    if batch.docs:
        yield batch


def id_text(value):
    try:
        return extjson.id_json(value)
    except Exception:  # a message must not fail on an odd _id
        return repr(value)


def id_key(value):
    """A hashable form of an ``_id`` (str, ObjectId, a document...): its BSON."""
    return bson.encode({"_id": value})


# -- writing ---------------------------------------------------------------------------------------------------
class Writer:
    """Sends one collection's batches; knows what to do with duplicates."""

    def __init__(self, collection, on_duplicate, counts):
        self.coll = collection.with_options(codec_options=RAW_READ)
        self.name = collection.name
        self.on_duplicate = on_duplicate
        self.counts = counts

    def write(self, batch):
        try:
            self._send(self.coll.insert_many, batch.docs, ordered=False)
        except BulkWriteError as exc:
            self._bulk_error(batch, exc.details)
        except PyMongoError as exc:
            raise self._error("the insert of %d document(s) failed: %s" % (len(batch.docs), exc))
        else:
            self.counts["inserted"] += len(batch.docs)

    def _bulk_error(self, batch, details):
        self.counts["inserted"] += details.get("nInserted", 0)
        duplicates, others = [], []
        for error in details.get("writeErrors", ()):
            (duplicates if error.get("code") == DUPLICATE_KEY else others).append(error)
        if others:
            raise self._write_error(batch, others[0], len(others))
        if details.get("writeConcernErrors"):
            raise self._error("write concern error: %s" % details["writeConcernErrors"][0])
        self._duplicates(batch, duplicates)

    def _duplicates(self, batch, errors):
        existing = self.existing([batch.ids[error["index"]] for error in errors])
        conflicting = []
        for error in errors:
            index = error["index"]
            held = existing.get(id_key(batch.ids[index]))
            if held is None:  # no document with this _id: another unique index refused it
                raise self._write_error(batch, error, 1)
            if held == batch.sha(index):
                self.counts["identical"] += 1
            else:
                self.counts["conflicting"] += 1
                conflicting.append(index)
        if not conflicting:
            return
        if self.on_duplicate == "fail":
            shown = ", ".join(id_text(batch.ids[index]) for index in conflicting[:SHOWN])
            raise self._error("%d document(s) already exist with other content (on_duplicate: fail): _id %s"
                              % (len(conflicting), shown))
        if self.on_duplicate == "replace":
            requests = [ReplaceOne({"_id": batch.ids[index]}, batch.docs[index], upsert=True)
                        for index in conflicting]
            try:
                self._send(self.coll.bulk_write, requests, ordered=False)
            except BulkWriteError as exc:
                error = exc.details["writeErrors"][0]
                error = dict(error, index=conflicting[error["index"]])
                raise self._write_error(batch, error, len(exc.details["writeErrors"]))
            self.counts["replaced"] += len(requests)

    @staticmethod
    def _send(method, *args, **kwargs):
        """``method(*args, **kwargs)``, sent once more after a network error. The client does not retry writes
        (``connect(retry_writes=False)``: SecantusDB's retryable-write digest of each batch cost ~9 % of its insert
        time); a batch sent twice is safe, what the first attempt inserted comes back as identical duplicates."""
        try:
            return method(*args, **kwargs)
        except ConnectionFailure:
            return method(*args, **kwargs)

    def existing(self, ids):
        """``{id_key: sha256 digest}`` of the target's documents with these ``_id`` values."""
        found = {}
        for start in range(0, len(ids), LOOKUP_CHUNK):
            for doc in self.coll.find({"_id": {"$in": ids[start:start + LOOKUP_CHUNK]}}):
                found[id_key(doc["_id"])] = hashlib.sha256(doc.raw).digest()
        return found

    def _write_error(self, batch, error, how_many):
        return self._error("_id %s: code %s %s%s" % (
            id_text(batch.ids[error["index"]]), error.get("code"), error.get("errmsg", ""),
            " (and %d more error(s) in the batch)" % (how_many - 1) if how_many > 1 else ""))

    def _error(self, text):
        return FerryError("collection %s: %s; %s" % (self.name, text, counts_text(self.counts)))


def counts_text(counts):
    return "so far %s" % ", ".join("%s %d" % (name, counts.get(name, 0)) for name in COUNT_NAMES)


# -- the whole restore -----------------------------------------------------------------------------------------
def fingerprint_inputs(params, profile, paths, restored=None):
    """What the step's fingerprint covers: the zips (path, size, modification time: a rerun that skips must not
    read gigabytes to find out; the preflight checks their content), the target and what is done to the documents.
    ``restored``: {path: identity} of the zips a complete earlier run restored (see :func:`restored_zips`)."""
    return {
        "zips": [_zip_identity(path, restored or {}) for path in paths],
        "target": connection.server_identity(params),
        "database": params.get("database"),
        "profile": profile.sha256,
        "on_duplicate": params["on_duplicate"],
        "rewrites": sorted(params["rewrites"]),
        "data_mount": params["data_mount"] if params["rewrites"] else None,
        "indexes": params["indexes"],
    }


def _zip_identity(path, restored):
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if path in restored:  # restored completely, then cleaned up: the rerun is a skip, not an error
            return restored[path]
        raise FerryError("src %s does not exist" % path)
    except OSError as exc:
        raise FerryError("src %s cannot be read: %s" % (path, exc))
    return {"path": os.path.abspath(path), "size": info.st_size, "mtime_ns": info.st_mtime_ns}


def check_rewrites(params, profile):
    unknown = [name for name in params["rewrites"] if name not in profile.rewrites]
    if unknown:
        raise FerryError("rewrites %s are not rewrites of profile %s (it has: %s)" % (
            ", ".join(unknown), profile.name, ", ".join(sorted(profile.rewrites)) or "none"))


def run(params, check_mode, profile):
    """mongo_restore's body; ``profile`` is the loaded profile."""
    check_options(params)
    check_rewrites(params, profile)
    paths = list(params["src"])
    inputs = fingerprint_inputs(params, profile, paths, restored_zips(params))
    attempt = attempt_step(params, "mongo_restore", inputs, check_mode)
    if attempt.decision == SKIP:
        return skipped(attempt, paths)
    sources = open_sources(paths, profile)
    try:
        database = database_of(params, sources, profile)
        client = connection.connect(params, database, retry_writes=False)
        try:
            job = Restore(params, profile, sources, client[database])
            if check_mode:
                return job.predict(attempt.decision)
            with attempt.running(total=job.total, unit="documents") as step:
                result = job.run(step, attempt.checkpoint)
                # kept in the record only: what restored_zips reads back
                step.complete(counts=job.totals(), result=dict(result, zips=dict(zip(paths, inputs["zips"]))))
            return dict(result, decision=attempt.decision)
        finally:
            client.close()
    finally:
        for source in sources:
            source.close()


def restored_zips(params):
    """{path: identity} of the zips the step's last run restored, when it completed: a rerun after the work zips
    were cleaned up finds its step complete rather than failing on the missing files."""
    step = Journal(params["state_dir"], create=False).step(params.get("step") or "mongo_restore")
    record = step.record() or {}
    if record.get("status") != COMPLETE:
        return {}
    return (record.get("result") or {}).get("zips") or {}


def skipped(attempt, paths):
    earlier = (attempt.record or {}).get("result") or {}
    return dict(changed=False, decision=SKIP, sources=paths, database=earlier.get("database"), inserted=0,
                replaced=0, duplicates=0, indexes_created=0, index_warnings=[], collections={},
                verified=earlier.get("verified"), docs_per_s=0.0, complete_earlier=attempt.record.get("ended"),
                earlier=earlier)


class Restore:
    """One run over the sources, in list order, collections children first (the profile's restore order)."""

    def __init__(self, params, profile, sources, db):
        self.params = params
        self.profile = profile
        self.sources = sources
        self.db = db
        self.plan = [(source, name) for source in sources for name in profile.restore_order(list(source.members))]
        self.total = sum(sum(source.counts.values()) for source in sources)
        self.counts = {}
        for _source, name in self.plan:
            self.counts.setdefault(name, dict.fromkeys(COUNT_NAMES, 0))
        self.indexes_created = 0
        self.index_warnings = []
        self.preparers = {}
        self.verification = {}
        self._saved = 0.0

    # -- parts -------------------------------------------------------------------------------------------------
    def preparer(self, source, name):
        key = (source.index, name)
        if key not in self.preparers:
            rewrite = self.profile.rewrite_for(name, self.params["rewrites"], self.params["data_mount"])
            samples = [sha for _id, sha in source.samples.get(name, ())]
            every = 0 if source.manifest is not None else max(1, source.counts[name] // SAMPLE_SIZE)
            self.preparers[key] = Preparer("%s: collection %s" % (source.path, name), rewrite, samples, every)
        return self.preparers[key]

    def writer(self, name):
        return Writer(self.db[name], self.params["on_duplicate"], self.counts[name])

    def totals(self):
        totals = {name: sum(counts[name] for counts in self.counts.values()) for name in COUNT_NAMES}
        totals["indexes_created"] = self.indexes_created
        return totals

    # -- run ---------------------------------------------------------------------------------------------------
    def run(self, step, checkpoint):
        start_at, start_line = self._resume(checkpoint)
        try:
            if self.params["on_duplicate"] == "fail":
                self.precheck()
            if self.params["indexes"]:
                self.create_indexes()
            began = time.monotonic()
            read_before = self.totals()["read"]
            self.load(step, start_at, start_line)
            seconds = time.monotonic() - began
            verified = self.verify()
        except FerryError as exc:
            exc.result = self.result(None, 0.0)
            raise
        rate = (self.totals()["read"] - read_before) / seconds if seconds > 0 else 0.0
        return self.result(verified, rate)

    def _resume(self, checkpoint):
        if not checkpoint:
            return 0, 0
        for name, counts in (checkpoint.get("counts") or {}).items():
            if name in self.counts:
                self.counts[name].update(counts)
        self.indexes_created = checkpoint.get("indexes_created", 0)
        position = checkpoint.get("position", 0)
        if position < len(self.plan) and self.plan[position][1] != checkpoint.get("member"):
            raise FerryError("the journal's checkpoint (collection %s of source %s) does not fit these sources: run "
                             "with force" % (checkpoint.get("member"), checkpoint.get("source")))
        return position, checkpoint.get("line", 0)

    def load(self, step, start_at, start_line):
        with ThreadPoolExecutor(1, thread_name_prefix="ferry-insert") as pool:
            for position in range(start_at, len(self.plan)):
                source, name = self.plan[position]
                first = start_line if position == start_at else 0
                writer = self.writer(name)
                pending = None
                for batch in batches(source.documents(name, first), self.preparer(source, name),
                                     self.params["batch_size"]):
                    # the next batch was prepared while this one was in flight
                    if pending is not None:
                        self._acknowledged(step, position, *pending)
                    pending = (pool.submit(writer.write, batch), batch)
                if pending is not None:
                    self._acknowledged(step, position, *pending)
                self._checkpoint(step, position + 1, 0, force=True)

    def _acknowledged(self, step, position, future, batch):
        future.result()
        name = self.plan[position][1]
        self.counts[name]["read"] += len(batch.docs)
        self._checkpoint(step, position, batch.end)
        step.check_stop("%d document(s)" % self.totals()["read"])

    def _checkpoint(self, step, position, line, force=False):
        done = self.totals()["read"]
        now = time.monotonic()
        if force or now - self._saved >= CHECKPOINT_INTERVAL:
            source, name = self.plan[position] if position < len(self.plan) else (None, None)
            step.save_checkpoint({"position": position, "source": source.path if source else None,
                                  "member": name, "line": line, "counts": self.counts,
                                  "indexes_created": self.indexes_created})
            self._saved = now
        step.progress(done)

    def result(self, verified, rate):
        totals = self.totals()
        collections = {}
        for name, counts in self.counts.items():
            collections[name] = dict(counts, verified=(self.verification.get(name) or {}).get("verified"))
        return dict(
            changed=totals["inserted"] + totals["replaced"] + self.indexes_created > 0,
            database=self.db.name, sources=[source.path for source in self.sources],
            formats=[source.kind for source in self.sources], collections=collections,
            inserted=totals["inserted"], replaced=totals["replaced"],
            duplicates=totals["identical"] + totals["conflicting"], identical=totals["identical"],
            conflicting=totals["conflicting"], indexes_created=self.indexes_created,
            index_warnings=self.index_warnings, verified=verified, verification=self.verification,
            docs_per_s=round(rate, 1), documents=self.total)

    # -- what already exists: on_duplicate fail's precheck, check mode -----------------------------------------
    def scan(self):
        """``{collection: {new, identical, conflicting, conflicting_ids}}`` against the target as it is now.
        Duplicates between the sources themselves are not seen here (the real run finds them)."""
        found = {name: dict(new=0, identical=0, conflicting=0, conflicting_ids=[]) for name in self.counts}
        for source, name in self.plan:
            counts = found[name]
            if self.db[name].find_one({}, projection={"_id": 1}) is None:
                counts["new"] += source.counts[name]
                continue
            writer = self.writer(name)
            for batch in batches(source.documents(name), self.preparer(source, name), LOOKUP_CHUNK):
                existing = writer.existing(batch.ids)
                for index, _id in enumerate(batch.ids):
                    held = existing.get(id_key(_id))
                    if held is None:
                        counts["new"] += 1
                    elif held == batch.sha(index):
                        counts["identical"] += 1
                    else:
                        counts["conflicting"] += 1
                        if len(counts["conflicting_ids"]) < SHOWN:
                            counts["conflicting_ids"].append(id_text(_id))
        return found

    def precheck(self):
        conflicts = {name: counts for name, counts in self.scan().items() if counts["conflicting"]}
        if conflicts:
            listed = "; ".join("%s: %d (_id %s)" % (name, counts["conflicting"], ", ".join(counts["conflicting_ids"]))
                               for name, counts in sorted(conflicts.items()))
            raise FerryError("on_duplicate is fail and %d document(s) already exist in database %s with other "
                             "content: %s; nothing was written"
                             % (sum(counts["conflicting"] for counts in conflicts.values()), self.db.name, listed))

    def predict(self, decision):
        """Check mode: what a real run would do, from the zips and the target; nothing is written."""
        found = self.scan()
        replace = self.params["on_duplicate"] == "replace"
        indexes = self.create_indexes(dry_run=True) if self.params["indexes"] else 0
        if self.params["on_duplicate"] == "fail" and any(counts["conflicting"] for counts in found.values()):
            self.precheck()
        inserted = sum(counts["new"] for counts in found.values())
        replaced = sum(counts["conflicting"] for counts in found.values()) if replace else 0
        return dict(changed=inserted + replaced + indexes > 0, decision=decision, database=self.db.name,
                    sources=[source.path for source in self.sources],
                    formats=[source.kind for source in self.sources], documents=self.total,
                    collections={name: dict(read=sum(source.counts.get(name, 0) for source in self.sources),
                                            inserted=counts["new"], identical=counts["identical"],
                                            conflicting=counts["conflicting"],
                                            replaced=counts["conflicting"] if replace else 0)
                                 for name, counts in found.items()},
                    inserted=inserted, replaced=replaced,
                    duplicates=sum(counts["identical"] + counts["conflicting"] for counts in found.values()),
                    indexes_created=indexes, index_warnings=self.index_warnings, verified=None, docs_per_s=0.0)

    # -- indexes -----------------------------------------------------------------------------------------------
    def create_indexes(self, dry_run=False):
        """The manifests' indexes (not ``_id_``), before the data; the number created (or missing)."""
        created = 0
        present = {}
        for source in self.sources:
            for name, entry in sorted(((source.manifest or {}).get("collections") or {}).items()):
                for spec in (entry or {}).get("indexes") or ():
                    keys, options = index_model_args(spec)
                    index = options.get("name")
                    if index == "_id_" or keys == [("_id", 1)]:
                        continue
                    if name not in present:
                        present[name] = self.db[name].index_information() if name in self._names() else {}
                    held = present[name].get(index)
                    if held is not None:
                        if [tuple(pair) for pair in held.get("key", ())] != keys:
                            self._index_warning(name, index, "an index of this name exists with other keys %s"
                                                % (held.get("key"),))
                        continue
                    present[name][index] = {"key": keys}
                    if dry_run or self._create_index(name, keys, options):
                        created += 1
        if not dry_run:
            self.indexes_created += created
        return created

    def _names(self):
        if not hasattr(self, "_collection_names"):
            self._collection_names = set(self.db.list_collection_names())
        return self._collection_names

    def _create_index(self, name, keys, options):
        try:
            self.db[name].create_index(keys, **options)
        except OperationFailure as exc:
            if exc.code in INDEX_WARNING_CODES:
                self._index_warning(name, options.get("name"), "the server refused it (code %s): %s"
                                    % (exc.code, (exc.details or {}).get("errmsg") or exc))
                return False
            raise FerryError("collection %s: creating index %s failed (code %s): %s"
                             % (name, options.get("name"), exc.code, exc))
        return True

    def _index_warning(self, name, index, reason):
        self.index_warnings.append("collection %s, index %s: %s" % (name, index, reason))

    # -- verify ------------------------------------------------------------------------------------------------
    def verify(self):
        """Counts, then the sample (or every document) by sha256; what differs because of conflicting duplicates
        (kept under skip, replaced by a later source) is reported, not an error."""
        mode = self.params["verify"]
        if mode == "none":
            return None
        for name, counts in self.counts.items():
            # Every document read was acknowledged by the server as inserted or reported as a duplicate of one it
            # holds (w:1): an exact count of this restore's documents, where the collection's own count would also
            # hold other sources' and older documents (and costs a scan on some servers).
            acknowledged = counts["inserted"] + counts["identical"] + counts["conflicting"]
            self.verification[name] = dict(read=counts["read"], acknowledged=acknowledged,
                                           checked=0, missing=0, different=0, missing_ids=[],
                                           sample_unreadable=sum(source.unreadable.get(name, 0)
                                                                 for source in self.sources))
        for source, name in self.plan:
            writer = self.writer(name)
            for ids, shas in self._expected(source, name, mode):
                existing = writer.existing(ids)
                self._compare(name, ids, shas, existing)
        problems = []
        for name, found in sorted(self.verification.items()):
            found["verified"] = (found["missing"] == 0 and found["acknowledged"] == found["read"]
                                 and found["different"] <= self.counts[name]["conflicting"])
            if not found["verified"]:
                problems.append("%s: %d document(s) read, %d acknowledged by the server, %d of %d checked missing "
                                "(%s), %d different" % (name, found["read"], found["acknowledged"], found["missing"],
                                                        found["checked"], ", ".join(found["missing_ids"]) or "-",
                                                        found["different"]))
        if problems:
            raise FerryError("verification failed in database %s: %s" % (self.db.name, "; ".join(problems)))
        return True

    def _expected(self, source, name, mode):
        """``(ids, sha256 digests)`` in lookup-sized chunks: every document (full) or the sample."""
        preparer = self.preparer(source, name)
        if mode == "full":
            for batch in batches(source.documents(name), preparer, LOOKUP_CHUNK):
                yield batch.ids, [batch.sha(index) for index in range(len(batch.ids))]
            return
        sample = source.samples.get(name) or preparer.sampled
        if source.manifest is not None and preparer.rewrite is not None:
            if any(sha not in preparer.renamed for _id, sha in sample):
                for number, doc in source.documents(name):  # resumed: lines skipped were not seen
                    preparer.prepare(number, doc)
            sample = [(_id, preparer.renamed.get(sha, sha)) for _id, sha in sample]
        for start in range(0, len(sample), LOOKUP_CHUNK):
            chunk = sample[start:start + LOOKUP_CHUNK]
            yield [_id for _id, _sha in chunk], [bytes.fromhex(sha) for _id, sha in chunk]

    def _compare(self, name, ids, shas, existing):
        found = self.verification[name]
        for _id, sha in zip(ids, shas):
            found["checked"] += 1
            held = existing.get(id_key(_id))
            if held is None:
                found["missing"] += 1
                if len(found["missing_ids"]) < SHOWN:
                    found["missing_ids"].append(id_text(_id))
            elif held != sha:
                found["different"] += 1


def index_model_args(spec):
    """``(keys, options)`` for ``create_index`` from a manifest's index entry (canonical Extended JSON, as
    ``index_information()`` gives it, with ``key`` a list of pairs or a document)."""
    spec = json_util.loads(json.dumps(spec), json_options=extjson.JSON_OPTIONS)
    key = spec.pop("key", None)
    pairs = list(key.items()) if isinstance(key, dict) else [tuple(pair) for pair in key or ()]
    options = {name: value for name, value in spec.items() if name not in ("v", "ns", "background")}
    return pairs, options
