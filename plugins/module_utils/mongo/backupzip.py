# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ferry backup zip of a MongoDB selection (``ferry.mongo_backup``, format version 1).

Members, in the order written: ``collections/<Name>.jsonl`` (one :func:`extjson.encode` line per document, a
``\\n`` after each), ``files.jsonl`` (one JSON object per line: ``path`` relative to the data mount, ``kind``
dir/file/glob, ``item``, ``collection``, ``_id``; a glob expanded on the backup's host adds one ``file`` entry per
match with ``from_glob``), and last ``ferry-manifest.json`` (counts, sha256 of each member's uncompressed bytes,
order-free BSON digests, samples, indexes; see docs/design/mvi-issue14.md 2.4).

:class:`Writer` writes ``<dest>.partial`` (one member open at a time, lines joined ~1 MiB at a time, zip64 always,
a fixed date so the same documents give the same bytes), then syncs it and renames it to ``dest``: a killed
backup leaves no file that looks like a finished one. :func:`read_manifest` and :func:`iter_lines` read it back.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import io
import json
import zipfile

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError, remove_quietly
from ansible_collections.ferry.migrate.plugins.module_utils.core.staging import BackgroundWriter, StagedFile

FORMAT = "ferry.mongo_backup"
FORMAT_VERSION = 1
MANIFEST = "ferry-manifest.json"
FILES_MEMBER = "files.jsonl"
COLLECTIONS_DIR = "collections/"
PARTIAL_SUFFIX = ".partial"
CHUNK = 1 << 20  # bytes of lines joined before each write into the zip
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the zip format's earliest date: members do not vary with the clock


def member_name(collection):
    return "%s%s.jsonl" % (COLLECTIONS_DIR, collection)


def collection_of(member):
    """The collection a ``collections/<Name>.jsonl`` member holds, else None."""
    if member.startswith(COLLECTIONS_DIR) and member.endswith(".jsonl"):
        return member[len(COLLECTIONS_DIR):-len(".jsonl")] or None
    return None


class Member:
    """One member being written: ``add(line)`` (bytes, without its newline); count, bytes and sha256 of the
    uncompressed text kept as it goes."""

    def __init__(self, handle, name):
        self.handle = handle
        self.name = name
        self.count = 0
        self.bytes = 0
        self.digest = hashlib.sha256()
        self._pending = bytearray()
        self._deflater = None

    def add(self, line):
        # Copied into one buffer at once: a writer's line may hold far more memory than its length (orjson's do).
        pending = self._pending
        pending += line
        pending += b"\n"
        self.count += 1
        if len(pending) >= CHUNK:
            self.flush()

    def flush(self):
        if not self._pending:
            return
        data, self._pending = self._pending, bytearray()
        self.bytes += len(data)
        if self._deflater is None:  # the chunk is hashed and deflated while the next one is encoded
            self._deflater = BackgroundWriter(self._write, ahead=2, name="ferry-deflate")
        self._deflater.put(data)

    def _write(self, data):
        self.digest.update(data)
        if self.handle is not None:
            self.handle.write(data)

    def finish(self):
        """Flush what is pending and wait for the thread; then the digest and the member are complete."""
        self.flush()
        if self._deflater is not None:
            deflater, self._deflater = self._deflater, None
            deflater.close()

    def summary(self):
        return {"member": self.name, "count": self.count, "bytes": self.bytes, "member_sha256": self.digest.hexdigest()}


class Writer:
    """``<dest>.partial`` written member by member, then published at ``dest`` by :meth:`commit`.

    ``dry_run``: nothing is written anywhere; members still count and digest what they are given, so check mode
    reports what a run would write."""

    def __init__(self, dest, compress_level=6, dry_run=False):
        self.dest = dest
        self.compress_level = compress_level
        self.dry_run = dry_run
        self.staged = None
        self.zip = None
        self.open_member = None
        if not dry_run:
            self.staged = StagedFile.open(dest, temp=dest + PARTIAL_SUFFIX, perms=0o600)
            self.zip = zipfile.ZipFile(self.staged.handle, "w", zipfile.ZIP_DEFLATED, allowZip64=True)

    def member(self, name):
        """A :class:`Member` open for writing; :meth:`close_member` ends it (one at a time)."""
        if self.open_member is not None:
            raise FerryError("internal: member %s is still open" % self.open_member.name)
        handle = None
        if self.zip is not None:
            info = zipfile.ZipInfo(name, FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            try:
                info.compress_level = self.compress_level
            except AttributeError:  # Python < 3.13 names it _compresslevel
                info._compresslevel = self.compress_level
            # force_zip64: the member's size is not known in advance and may pass 4 GiB
            handle = self.zip.open(info, "w", force_zip64=True)
        self.open_member = Member(handle, name)
        return self.open_member

    def close_member(self):
        member, self.open_member = self.open_member, None
        member.finish()
        if member.handle is not None:
            member.handle.close()
        return member.summary()

    def write_bytes(self, name, data):
        member = self.member(name)
        member.handle and member.handle.write(data)
        member.bytes, member.count = len(data), 1
        member.digest.update(data)
        return self.close_member()

    def commit(self):
        """Finish the zip and publish it at ``dest`` (synced, renamed, directory synced); None in a dry run."""
        if self.zip is None:
            return None
        self.zip.close()
        self.zip = None
        self.staged.commit()
        return self.dest

    def abort(self):
        """Remove ``<dest>.partial``; ``dest`` is left as it was."""
        if self.open_member is not None:
            try:
                self.open_member.finish()
                if self.open_member.handle is not None:
                    self.open_member.handle.close()
            except Exception:  # giving up anyway: the .partial is removed below
                pass
        self.open_member = None
        if self.zip is not None:
            try:
                self.zip.close()
            except (OSError, ValueError, zipfile.BadZipFile):
                pass
            self.zip = None
        if self.staged is not None:
            self.staged.abort()
            remove_quietly(self.dest + PARTIAL_SUFFIX)


def manifest_bytes(manifest):
    return json.dumps(manifest, indent=1, sort_keys=False, ensure_ascii=False).encode("utf-8") + b"\n"


def read_manifest(path):
    """The manifest of the ferry backup zip at ``path``; a FerryError when it is not one (or not version 1)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return manifest_of(archive, path)
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise FerryError("%s is not a readable zip file: %s" % (path, exc))


def manifest_of(archive, path):
    """The manifest of an open ZipFile (``path`` names it in messages)."""
    try:
        data = archive.read(MANIFEST)
    except KeyError:
        raise FerryError("%s has no %s: it is not a ferry backup zip" % (path, MANIFEST))
    try:
        manifest = json.loads(data.decode("utf-8"))
    except ValueError as exc:
        raise FerryError("%s: %s is not valid JSON (%s)" % (path, MANIFEST, exc))
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise FerryError("%s: %s is not a %s manifest" % (path, MANIFEST, FORMAT))
    if manifest.get("format_version") != FORMAT_VERSION:
        raise FerryError("%s: format_version %r is not supported (this ferry reads version %d)"
                         % (path, manifest.get("format_version"), FORMAT_VERSION))
    return manifest


def iter_lines(archive, member):
    """Each line of ``member`` (bytes, without its newline) of an open ZipFile, read 1 MiB at a time. A last line
    without its newline is still given (the member's sha256 against the manifest tells a truncated member); an
    empty line is given as it is, for the reader to refuse with its number."""
    with archive.open(member) as raw:
        for line in io.BufferedReader(raw, CHUNK):
            yield line[:-1] if line.endswith(b"\n") else line
