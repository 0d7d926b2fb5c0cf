# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backing up a MongoDB application's documents (a whole server, some users, some project groups) into a ferry
backup zip (backupzip.py), as its profile (profile.py) selects them.

The selection is data-driven and keeps no state between items: each top-level collection is read with ONE query,
``{field: {"$in": items}}``, so two project groups in one call select exactly the union of two single calls (IBM's
tool removed "ProjectGroups" from a shared list and crashed on the second project group). The children of the
selected parents (DataSets -> DataSetFiles, ...) are read by ``{foreign_key: {"$in": <1000 parent ids>}}``. Per-item
counts come from the selecting field of each document as it streams by.

Documents stay raw BSON from the server to the zip: each is hashed (sha256 of its bytes: the manifest's order-free
digest and samples) and written as one canonical Extended JSON line (extjson.encode, checked lossless). Memory is
bounded: one document, one ~1 MiB buffer, the parent ids of the selected items and a sample of <= 1000 ids per
collection are all that is kept.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import posixpath
import tempfile
import threading
import time

import queue

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError, file_sha256, prefix_matches
from ansible_collections.ferry.migrate.plugins.module_utils.mongo import backupzip, connection, extjson, profile

try:
    import bson
    from bson import json_util
    from bson.binary import Binary
    from bson.objectid import ObjectId
    from bson.raw_bson import RawBSONDocument
except ImportError:  # connection.check_pymongo reports it
    bson = None

CHILD_CHUNK = 1000  # parent ids per child query
BATCH_SIZE = 2000  # documents per batch the server sends
PREFETCH = 3  # batches fetched ahead of the encoder
SAMPLE_MAX = 1000  # (_id, sha256) pairs kept per collection, evenly spaced
PROGRESS_EVERY = 1000  # documents between progress calls (the journal writes at most once a second anyway)
STOP_EVERY = 20000  # documents between looks for the STOP file
LOSSY_LISTED = 50  # lossy documents named in the result (warn mode); the manifest counts them all
SCOPE_NOUNS = {"users": "user", "project_groups": "project group"}
SERVER_ITEM = "server"


class Stats:
    """What one collection's member holds: count, digest, an evenly spaced sample, counts per item."""

    def __init__(self):
        self.digest = 0
        self.sample = []
        self.stride = 1
        self.seen = 0
        self.per_item = {}
        self.lossy = 0

    def add(self, raw, sha, item):
        self.digest = extjson.digest_add_sha(self.digest, sha)
        if self.seen % self.stride == 0:
            if len(self.sample) >= SAMPLE_MAX:  # keep every other one and take half as many from now on
                self.sample = self.sample[::2]
                self.stride *= 2
            if self.seen % self.stride == 0:
                self.sample.append((raw, sha))
        self.seen += 1
        if item is not None:
            self.per_item[item] = self.per_item.get(item, 0) + 1

    def summary(self, member_summary):
        summary = dict(member_summary)
        summary.update(bson_digest=extjson.digest_hex(self.digest),
                       sample=[[extjson.raw_id(raw), sha.hex()] for raw, sha in self.sample],
                       per_item=dict(sorted(self.per_item.items())))
        if self.lossy:
            summary["lossy"] = self.lossy
        return summary


class Backup:
    """One backup run: ``Backup(params, step, dry_run).run()`` -> the module's result."""

    def __init__(self, params, step=None, dry_run=False, client=None):
        self.params = params
        self.step = step
        self.dry_run = dry_run
        self.profile = profile.load(params.get("profile") or "mvi")
        self.database = params.get("database") or self.profile.database
        self.kind, self.items = scope_of(params)
        self.dest = os.path.abspath(params["dest"])
        self.files_root = params.get("files_root")
        self.warnings = []
        self.lossy = []
        self.done = 0
        self.total = 0
        self.client = client
        self.db = None
        self.collections = {}
        self.files = None
        self.files_count = 0
        self.missing_files = []
        self.unexpanded_globs = 0

    # -- the run -------------------------------------------------------------------------------------------------
    def run(self):
        if self.client is None:
            self.client = connection.connect(self.params, self.database)
        try:
            self.db = self.client[self.database]
            existing = set(self.db.list_collection_names())
            if not existing & set(self.profile.collections):
                # a mistyped database name reads as an empty one: an empty backup must not pass for a success
                raise FerryError("database %s on %s holds none of profile %s's collections (%s, ...); it has %s" % (
                    self.database, connection.describe(self.params), self.profile.name,
                    ", ".join(self.profile.collections[:3]), ", ".join(sorted(existing)[:10]) or "none"))
            self._check_items(existing)
            plan = self._plan(existing)
            self.total = self._estimate(plan)
            if self.step is not None:
                self.step.progress(0, total=self.total, unit="documents", flush=True)
            writer = backupzip.Writer(self.dest, self.params.get("compress_level", 6), dry_run=self.dry_run)
            try:
                self._write(writer, plan)
                published = writer.commit()
            except BaseException:
                writer.abort()
                raise
        finally:
            self.client.close()
        return self._result(published)

    def _write(self, writer, plan):
        self.files = tempfile.SpooledTemporaryFile(max_size=8 << 20)
        try:
            parents = {}
            for name, queries, files, keeps in plan:
                self._collection(writer, name, queries(parents), files, keeps, parents)
            self._scope_files()
            files_summary = self._files_member(writer)
        finally:
            self.files.close()
        manifest = self._manifest(files_summary)
        writer.write_bytes(backupzip.MANIFEST, backupzip.manifest_bytes(manifest))

    # -- what is selected ----------------------------------------------------------------------------------------
    def _values(self):
        """The items as the query matches them: each string, and its ObjectId when it is one's hex form."""
        values = []
        for item in self.items:
            values.append(item)
            if ObjectId.is_valid(item) and len(item) == 24:
                values.append(ObjectId(item))
        return values

    def _check_items(self, existing):
        """Items with nothing to back up: an error naming them (missing_items=fail), else warnings."""
        if self.kind == "server":
            return
        values = {"$in": self._values()}
        found = set()
        for entry in self.profile.top_level:
            if entry.collection not in existing:
                continue
            field = self.profile.select_field(entry, self.kind)
            if self.kind == "project_groups" and entry.select.get(self.kind) is None:
                continue  # a project group exists when its own document does
            found.update(_item_text(value) for value in self.db[entry.collection].distinct(field, {field: values}))
        missing = [item for item in self.items if item not in found]
        if not missing:
            return
        noun = SCOPE_NOUNS[self.kind]
        where = "no document of %s selects it" % self.database if self.kind == "users" else \
            "%s.ProjectGroups has no such _id" % self.database
        text = "%s %s not found (%s)" % (noun if len(missing) == 1 else noun + "s", ", ".join(missing), where)
        if self.params.get("missing_items", "fail") == "fail":
            raise FerryError(text + "; set missing_items=warn to back up the others")
        self.warnings.append(text)

    def _plan(self, existing):
        """[(collection, queries(parents) -> [filter], file expressions, parent link to keep)] in writing order."""
        plan = []
        if self.kind == "server":
            for name in self.profile.collections:
                if name in existing:
                    plan.append((name, lambda _parents: [{}], [], None))
            return plan
        values = self._values()
        links = dict((entry.parent, entry) for entry in self.profile.children)
        for entry in self.profile.top_level:
            if entry.collection not in existing:
                continue
            field = self.profile.select_field(entry, self.kind)
            query = {field: {"$in": values}}
            plan.append((entry.collection, lambda _parents, query=query: [query], entry.files,
                         (links.get(entry.collection), field)))
        for link in self.profile.children:
            for name in link.collections:
                if name in existing:
                    plan.append((name, lambda parents, link=link: [
                        {link.foreign_key: {"$in": [value for value, _item in chunk]}}
                        for chunk in _chunks(list(parents.get(link.parent, {}).values()))], [], (link, None)))
        return plan

    def _estimate(self, plan):
        if self.kind == "server":
            return sum(self.db[name].estimated_document_count() for name, _q, _f, _k in plan)
        return sum(self.db[name].count_documents(queries({})[0]) for name, queries, _f, keeps in plan
                   if keeps[1] is not None)  # children are added when their parents are known

    # -- one collection ------------------------------------------------------------------------------------------
    def _collection(self, writer, name, queries, files, keeps, parents):
        coll = self.db.get_collection(name, codec_options=extjson.RAW_OPTIONS)
        link, field = keeps if keeps else (None, None)
        if field is None and link is not None:  # a child collection: its parents are known now
            self.total += sum(coll.count_documents(query) for query in queries)
            self._progress()
        keep_parents = parents.setdefault(name, {}) if link is not None and field is not None and \
            link.parent == name else None
        parent_items = parents.get(link.parent, {}) if link is not None and field is None else None
        member = writer.member(backupzip.member_name(name))
        stats = Stats()
        lossy_mode = self.params.get("lossy", "fail")
        fields = self.kind != "server"
        for query in queries:
            for raw in documents(coll, query):
                doc = RawBSONDocument(raw, extjson.RAW_OPTIONS) if fields else None
                try:
                    line = extjson.encode(raw)
                except extjson.Lossy as exc:
                    line = self._lossy(name, raw, exc, lossy_mode, stats)
                member.add(line)
                sha = hashlib.sha256(raw).digest()
                item = self._item(doc, field, link, parent_items)
                stats.add(raw, sha, item)
                if keep_parents is not None:  # keyed by canonical JSON: an _id may be a document
                    value = doc.get(link.parent_key)
                    keep_parents[extjson.id_json(value)] = (value, item)
                if files:
                    self._doc_files(name, files, raw, item)
                self.done += 1
                if self.done % PROGRESS_EVERY == 0:
                    self._progress()
                    if self.done % STOP_EVERY == 0 and self.step is not None:
                        self.step.check_stop("%d document(s)" % self.done)
        summary = stats.summary(writer.close_member())
        summary["indexes"] = self._indexes(coll)
        summary["options"] = self._options(name)
        self.collections[name] = summary
        self._progress()
        if self.step is not None:
            self.step.check_stop("%d document(s), up to collection %s" % (self.done, name))

    def _item(self, doc, field, link, parent_items):
        if self.kind == "server":
            return SERVER_ITEM
        if field is not None:
            value = doc.get(field)
            if isinstance(value, list):  # an array field matches when one element does
                value = next((element for element in value if _item_text(element) in self.items), None)
            return _item_text(value)
        found = parent_items.get(extjson.id_json(doc.get(link.foreign_key)))
        return found[1] if found else None

    def _lossy(self, name, raw, exc, mode, stats):
        where = "collection %s, _id %s: %s" % (name, extjson.raw_id(raw), exc)
        if mode == "fail":
            raise extjson.Lossy("%s (set lossy=warn to write it anyway, as it reads back)" % where)
        stats.lossy += 1
        if len(self.lossy) < LOSSY_LISTED:
            self.lossy.append(where)
        try:
            return extjson.encode_lossy(raw)
        except Exception as error:  # not even decodable: nothing can be written for it
            raise extjson.Lossy("collection %s, _id %s cannot be written at all: %s"
                                % (name, extjson.raw_id(raw), error))

    def _progress(self):
        if self.step is not None:
            self.step.progress(self.done, total=max(self.total, self.done))

    # -- indexes and options -------------------------------------------------------------------------------------
    def _indexes(self, coll):
        specs = []
        for index in coll.list_indexes():
            index = dict(index)
            if index.get("name") == "_id_":
                continue
            for key in ("v", "ns"):
                index.pop(key, None)
            spec = json.loads(extjson.encode(bson.encode(index)))
            spec["key"] = [[field, value] for field, value in spec["key"].items()]
            specs.append(spec)
        return specs

    def _options(self, name):
        for info in self.db.list_collections(filter={"name": name}):
            options = info.get("options") or {}
            return json.loads(extjson.encode(bson.encode(options))) if options else {}
        return {}

    # -- files ---------------------------------------------------------------------------------------------------
    def _doc_files(self, name, expressions, raw, item):
        doc = bson.decode(raw, extjson.DECODE_OPTIONS)
        view = _plain(doc)
        doc_id = extjson.id_json(doc.get("_id"))
        for expression in expressions:
            try:
                value = expression.search(view)
            except Exception as exc:  # a JMESPath function given the wrong type, say
                raise FerryError("collection %s, _id %s: profile expression %s (%s) failed: %s"
                                 % (name, doc_id, expression.where, expression.text, exc))
            path = safe_path(value, "collection %s, _id %s: profile expression %s (%s)"
                             % (name, doc_id, expression.where, expression.text))
            self._file_entry({"path": path, "kind": expression.kind, "item": item, "collection": name,
                              "_id": json.loads(doc_id)})

    def _scope_files(self):
        for expression in self.profile.scope_files.get(self.kind, []):
            for item in (self.items if self.kind != "server" else [SERVER_ITEM]):
                value = expression.search({"item": item})
                path = safe_path(value, "scope %s, item %s: profile expression %s (%s)" % (
                    self.kind, item, expression.where, expression.text), allow_root=True)
                self._file_entry({"path": path, "kind": expression.kind, "item": item, "collection": None,
                                  "_id": None})

    def _file_entry(self, entry):
        self._write_file_line(entry)
        if not self.files_root:
            if entry["kind"] == "glob":
                self.unexpanded_globs += 1
            return
        root = os.path.abspath(self.files_root)
        full = os.path.join(root, entry["path"])
        if entry["kind"] == "glob":
            for relative in prefix_matches(root, entry["path"]):
                kind = "dir" if os.path.isdir(os.path.join(root, relative)) else "file"
                self._write_file_line(dict(entry, path=relative, kind=kind, from_glob=entry["path"]))
        elif not os.path.lexists(full):
            self.missing_files.append(entry["path"])

    def _write_file_line(self, entry):
        self.files.write(json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n")
        self.files_count += 1

    def _files_member(self, writer):
        member = writer.member(backupzip.FILES_MEMBER)
        self.files.seek(0)
        for line in self.files:
            member.add(line[:-1])
        summary = writer.close_member()
        summary.update(root=os.path.abspath(self.files_root) if self.files_root else None,
                       missing=self.missing_files, unexpanded_globs=self.unexpanded_globs,
                       exclude=self.profile.exclude)
        return summary

    # -- manifest and result -------------------------------------------------------------------------------------
    def _manifest(self, files_summary):
        identity = connection.server_identity(self.params)
        source = dict(identity, database=self.database, server_version=self.client.server_info().get("version"))
        return {
            "format": backupzip.FORMAT,
            "format_version": backupzip.FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": source,
            "profile": {"name": self.profile.name, "version": self.profile.version, "sha256": self.profile.sha256},
            "scope": {"kind": self.kind, "items": list(self.items)},
            "collections": self.collections,
            "files": files_summary,
        }

    def _result(self, published):
        per_item = {}
        for name, summary in self.collections.items():
            for item, count in summary["per_item"].items():
                per_item.setdefault(item, {})[name] = count
        result = {
            "dest": self.dest,
            "documents": sum(summary["count"] for summary in self.collections.values()),
            "collections": dict((name, summary["count"]) for name, summary in self.collections.items()),
            "per_item": per_item,
            "files": self.files_count,
            "missing_files": self.missing_files,
            "scope": {"kind": self.kind, "items": list(self.items)},
            "database": self.database,
            "lossy": self.lossy,
            "warnings": self.warnings,
        }
        if published:
            result.update(sha256=file_sha256(published), size=os.path.getsize(published))
        return result


def backup(params, step=None, dry_run=False, client=None):
    """Back up what ``params`` (the mongo_backup options) select into ``params['dest']``; ``step``: the running
    journal step (progress, STOP), None in check mode, where ``dry_run`` reads and encodes everything and writes
    nothing. ``client``: a connection made already (connection.connect), closed at the end."""
    return Backup(params, step, dry_run, client).run()


def scope_of(params):
    """("server", []) or ("users"|"project_groups", [items, each once, in the order given])."""
    for kind in ("users", "project_groups"):
        items = params.get(kind)
        if items is not None:
            cleaned = []
            for item in items:
                text = item if isinstance(item, str) else str(item)
                if not text.strip() or "\x00" in text:
                    raise FerryError("%s has an empty %s name" % (kind, SCOPE_NOUNS[kind]))
                if text not in cleaned:
                    cleaned.append(text)
            if not cleaned:
                raise FerryError("%s is an empty list: give at least one %s, or neither users nor project_groups "
                                 "for the whole server" % (kind, SCOPE_NOUNS[kind]))
            return kind, cleaned
    return "server", []


def safe_path(value, what, allow_root=False):
    """``value`` as a path relative to the data mount, proven inside it: a non-empty string, not absolute, no
    ``..`` component, no NUL; ``.`` (the whole mount) only with ``allow_root``."""
    if not isinstance(value, str) or not value:
        raise FerryError("%s gave %s, not a path" % (what, json.dumps(value, default=str)))
    if "\x00" in value:
        raise FerryError("%s gave a path with a NUL byte: %r" % (what, value))
    if value.startswith("/"):
        raise FerryError("%s gave an absolute path, %r: paths are relative to the data mount" % (what, value))
    if ".." in value.split("/"):
        raise FerryError("%s gave a path with a '..' component, %r: it could leave the data mount" % (what, value))
    normal = posixpath.normpath(value)
    if normal == "." and not allow_root:
        raise FerryError("%s gave %r, the whole data mount, for one document" % (what, value))
    return normal


def documents(coll, query, batch_size=BATCH_SIZE):
    """The raw BSON of each document ``query`` selects, in the server's order. The batches are fetched by a thread
    while this one encodes the last (the server and the encoder work at once; at most PREFETCH batches wait), and
    are cut into documents here, without a Python object per document."""
    for batch in prefetch(coll.find_raw_batches(query, batch_size=batch_size)):
        pos, end = 0, len(batch)
        while pos < end:
            size = int.from_bytes(batch[pos:pos + 4], "little")
            yield batch[pos:pos + size]
            pos += size


def prefetch(iterable, depth=None):
    """Iterate ``iterable`` in a thread, ``depth`` items ahead (bounded memory); its error is raised here; leaving
    the loop early stops the thread."""
    depth = depth or PREFETCH
    items = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def fetch():
        try:
            for item in iterable:
                while not stop.is_set():
                    try:
                        items.put((item, None), timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put((done, None))
        except BaseException as exc:  # handed to the consumer
            items.put((done, exc))

    thread = threading.Thread(target=fetch, name="ferry-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = items.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)
        close = getattr(iterable, "close", None)
        if close is not None:
            close()


def _chunks(values, size=CHILD_CHUNK):
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _item_text(value):
    if value is None:
        return None
    return str(value)


def _plain(value):
    """A decoded document as path expressions see it: JSON values, ObjectId and UUID as their strings, other BSON
    values as relaxed Extended JSON."""
    kind = type(value)
    if kind in (str, int, float, bool) or value is None:
        return value
    if isinstance(value, dict):
        return dict((key, _plain(item)) for key, item in value.items())
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, Binary) and value.subtype in (3, 4) and len(value) == 16:
        import uuid
        return str(uuid.UUID(bytes=bytes(value)))
    return json.loads(json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS))
