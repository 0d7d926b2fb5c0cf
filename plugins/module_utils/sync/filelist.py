# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The list of paths rsync copies (``--files-from``), from a ferry backup's ``files.jsonl`` or from a list.

Every path is proven relative and inside its root before anything runs: no NUL, no leading ``/``, no ``..``
component. Entries are written as ``./<path>`` separated by NUL (``--from0``): rsync takes a line starting with
``#`` or ``;`` as a comment, with ``--from0`` too, and a NUL cannot be part of a name. Names are ``str`` holding
undecodable bytes as surrogates (``os.fsdecode``); they are written back as the same bytes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import io
import json
import os
import tempfile
import zipfile

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import (
    SAMPLE_LIMIT,
    FerryError,
    prefix_matches,
    readable,
    remove_quietly,
)

MEMBER = "files.jsonl"
KINDS = ("dir", "file", "glob")


def relative_path(path, where):
    """``path`` normalised (``a//./b`` is ``a/b``, the root itself is ``.``); refused when it could leave the root.
    ``where`` names it in the message."""
    if not isinstance(path, str) or not path:
        raise FerryError("%s: the path must be a non-empty string, not %r" % (where, path))
    if "\0" in path:
        raise FerryError("%s: path %s holds a NUL byte" % (where, readable(path)))
    if path.startswith("/"):
        raise FerryError("%s: path %s is absolute; paths are relative to the root" % (where, readable(path)))
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise FerryError("%s: path %s leads outside the root (..)" % (where, readable(path)))
    return "/".join(parts) or "."


def manifest_entries(path):
    """``(entry, where)`` for each line of the file list: the ``files.jsonl`` member of a ferry backup zip, or
    such a file itself. Read as a stream, one line at a time."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            try:
                info = archive.getinfo(MEMBER)
            except KeyError:
                raise FerryError("%s has no member %s: it is not a ferry backup with a file list" % (path, MEMBER))
            with archive.open(info) as raw:
                yield from _entries(io.BufferedReader(raw, 1 << 20), "%s:%s" % (path, MEMBER))
        return
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise FerryError("cannot read the file list %s: %s" % (path, exc.strerror))
    with handle:
        yield from _entries(handle, path)


MANIFEST_MEMBER = "ferry-manifest.json"


def manifest_excludes(path):
    """The paths a ferry backup's profile never sends (``files.exclude`` of its manifest, MVI's
    ``logs/migrations/``: the migration's own journals and zips), as rsync patterns anchored at the root."""
    if not zipfile.is_zipfile(path):
        return []
    with zipfile.ZipFile(path) as archive:
        try:
            manifest = json.loads(archive.read(MANIFEST_MEMBER).decode("utf-8"))
        except KeyError:
            return []
        except ValueError as exc:
            raise FerryError("%s:%s is not JSON: %s" % (path, MANIFEST_MEMBER, exc))
    patterns = ((manifest.get("files") or {}).get("exclude")) or []
    return ["/" + relative_path(pattern, "%s:%s files.exclude" % (path, MANIFEST_MEMBER)) + (
        "/" if pattern.endswith("/") else "") for pattern in patterns]


def _entries(handle, name):
    for number, line in enumerate(handle, 1):
        where = "%s line %d" % (name, number)
        if not line.strip():
            continue
        try:
            entry = json.loads(line.decode("utf-8"))
        except ValueError as exc:
            raise FerryError("%s is not a JSON object: %s" % (where, exc))
        if not isinstance(entry, dict) or entry.get("kind", "file") not in KINDS:
            raise FerryError("%s: expected {\"path\": ..., \"kind\": dir|file|glob}, got %s"
                             % (where, readable(line.decode("utf-8", "replace").strip()[:200])))
        yield entry, where


def path_entries(paths):
    """The ``paths`` option as file list entries (a path is a file or a directory, never a pattern)."""
    for index, path in enumerate(paths):
        yield {"path": path, "kind": "file"}, "paths[%d]" % index


class FileList:
    """The NUL-separated list written to a private temporary file; ``missing`` (listed paths absent on the
    sending side, first ``SAMPLE_LIMIT`` of ``missing_count``), ``count`` (entries written), ``sha256`` (of the
    list, for the journal's fingerprint). ``local_root``: the sending root when it is on this host (push), where
    globs are expanded and every path is looked at; None (pull): globs must come expanded."""

    def __init__(self, local_root=None):
        self.local_root = local_root
        self.count = 0
        self.missing = []
        self.missing_count = 0
        self.path = None
        self._digest = hashlib.sha256()
        self._real_root = os.path.realpath(local_root) if local_root else None
        self._parents = {}

    @property
    def sha256(self):
        return self._digest.hexdigest()

    def write(self, entries):
        """Write the list from ``(entry, where)`` pairs; every path is checked before rsync ever runs."""
        handle, self.path = tempfile.mkstemp(prefix="ferry-files-", suffix=".list")
        globs, expanded = set(), set()
        try:
            with os.fdopen(handle, "wb") as out:
                for entry, where in entries:
                    path = relative_path(entry.get("path"), where)
                    if entry.get("kind") == "glob":
                        globs.add(path)
                        if self.local_root:
                            self._expand(out, path, where)
                        continue
                    if entry.get("from_glob") is not None:
                        expanded.add(relative_path(entry["from_glob"], where))
                        if self.local_root:
                            continue  # the glob is expanded again here, as the tree is now
                    self._add(out, path, where)
            if not self.local_root and globs - expanded:
                raise FerryError("the file list holds pattern(s) that only the sending host can expand: %s; pull "
                                 "with a list whose patterns are expanded (mongo_backup with files_root) or push "
                                 "from the host holding the files" % ", ".join(readable(g) for g in sorted(globs)[:5]))
        except BaseException:
            self.remove()
            raise
        return self

    def remove(self):
        if self.path:
            remove_quietly(self.path)
            self.path = None

    def _expand(self, out, pattern, where):
        found = prefix_matches(self.local_root, pattern)
        if not found:
            self._missing(pattern)
        for path in found:
            self._add(out, relative_path(path, where), where)

    def _add(self, out, path, where):
        if self.local_root:
            if not os.path.lexists(os.path.join(self.local_root, path)):
                self._missing(path)
                return
            self._check_inside(path, where)
        data = b"./" + os.fsencode(path) if path != "." else b"."
        out.write(data + b"\0")
        self._digest.update(data + b"\0")
        self.count += 1

    def _check_inside(self, path, where):
        """The path's directory, symlinks resolved, must be the root or below it: rsync follows links in the
        directories of a listed path."""
        parent = os.path.dirname(path)
        inside = self._parents.get(parent)
        if inside is None:
            real = os.path.realpath(os.path.join(self.local_root, parent))
            inside = real == self._real_root or real.startswith(self._real_root.rstrip("/") + "/")
            if len(self._parents) < 100000:
                self._parents[parent] = inside
        if not inside:
            raise FerryError("%s: path %s goes through a symbolic link leading outside %s"
                             % (where, readable(path), self.local_root))

    def _missing(self, path):
        self.missing_count += 1
        if len(self.missing) < SAMPLE_LIMIT:
            self.missing.append(readable(path))
