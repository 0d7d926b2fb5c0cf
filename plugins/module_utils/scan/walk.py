# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The file walk of a host scan: the file records of the report, in walk order, in bounded memory.

:class:`Walk` walks ``roots`` under ``root`` (names as bytes, ``lstat`` of every entry; the walk order: the
roots one after another, in each a directory's entries together in byte order of their names, directories depth
first, so a directory's record comes before its content) and gives the report's file lines in batches
(:meth:`Walk.batches`), each line already JSON (the report's file record, section 2 of the contract):

* devices, FIFOs and sockets are never records, only counted (``counts["skipped"]``); a file or directory that
  cannot be read is counted as ``unreadable`` and named in ``warnings`` (a sample), not fatal;
* ``excludes``: a path excludes its subtree (the directory itself too); a final ``*`` makes it a prefix of the
  last name (``/var/log/journal*``); ``one_file_system``: a directory of another file system is recorded (a mount
  point) but not entered;
* ``owned``: package-owned paths (relative bytes, ``scan/packages.py``'s ``package_paths``, which lists them
  as the walk meets them, merged /usr resolved): not recorded (the packages bring them back; a modified one is
  ``package_file_changes``' record); an owned directory is still entered;
* hard links: a regular file with ``st_nlink > 1`` gets a ``link_group`` number at its first path (the walk
  cannot know then whether another path of it will be seen, so a group may have one path); later paths of the
  inode share the number and the first path's sha256, and are never read;
* ``sparse`` when ``st_blocks * 512 < size``; owner and group names from the maps given (the SCANNED root's
  etc/passwd and etc/group, ``scan/system.py``).

Content: a file whose (path, size, mtime_ns, ctime_ns, ino) is in the stat cache of the previous scan is not
read again (:class:`StatCache`: written in walk order, read as a merge-join: no table of every path in memory);
the others are hashed on ``hash_workers`` forked processes (``core/tree.py`` :func:`run_ordered`) in batches
bounded by files and by bytes, so that big files spread over the workers. A batch needing no hashing never
goes to the pool. The new cache is written as the batches go (``<cache>.partial``, flushed per batch) and published
only when the walk ends; a stopped or killed walk leaves it, and the next one reads its rows first (they are a
prefix of the walk), then the complete cache's rows after them (:func:`partial_name`).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import operator
import os
import stat
import struct
from json.encoder import encode_basestring_ascii as _quote

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import (
    SAMPLE_LIMIT,
    FerryError,
    readable,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.staging import StagedFile
from ansible_collections.ferry.migrate.plugins.module_utils.core.tree import run_ordered

BATCH_FILES = 1024  # files a batch at most
BATCH_BYTES = 64 << 20  # bytes to hash a batch at most (a bigger file is a batch alone)
SKIPPED = ("fifo", "socket", "char", "block", "unreadable")
_SKIP_KIND = {stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket", stat.S_IFCHR: "char", stat.S_IFBLK: "block"}
_ADDED = ',"package":null,"change":"added"}\n'
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def relative_name(path, option="roots"):
    """``/var/cache/`` as ``b"var/cache"`` (``/`` as ``b""``): a path inside the scanned root, never with ``..``."""
    raw = os.fsencode(path)
    parts = [part for part in raw.split(b"/") if part and part != b"."]
    if b".." in parts or b"\0" in raw:
        raise FerryError("%s: %s must be a path inside root, without '..'" % (option, readable(os.fsdecode(raw))))
    return b"/".join(parts)


def scan_roots(roots):
    """The relative roots to walk, in walk order, those inside another one left out."""
    names = sorted(set(relative_name(root) for root in roots or ["/"]), key=lambda name: name.split(b"/"))
    kept = []
    for name in names:
        if not any(top == b"" or name.startswith(top + b"/") for top in kept):
            kept.append(name)
    return kept


class Excludes:
    """Excluded paths: exact relative names (a subtree each) and, for a final ``*``, name prefixes by parent."""

    def __init__(self, patterns):
        self.patterns = list(patterns or ())
        self.exact = set()
        self.prefixes = {}
        for pattern in patterns or ():
            wildcard = str(pattern).endswith("*")
            name = relative_name(str(pattern)[:-1] if wildcard else pattern, "excludes")
            if wildcard:
                parent, _sep, start = name.rpartition(b"/") if not str(pattern).endswith("/*") else (name, b"", b"")
                self.prefixes.setdefault(parent, []).append(start)
            elif not name:
                raise FerryError("excludes: %s would exclude the whole root" % pattern)
            else:
                self.exact.add(name)
        self.prefixes = dict((key, tuple(value)) for key, value in self.prefixes.items())

    def matches(self, rel):
        if rel in self.exact:
            return True
        parent, _sep, name = rel.rpartition(b"/")
        starts = self.prefixes.get(parent)
        return starts is not None and name.startswith(starts)

    def covers(self, rel):
        """Whether ``rel`` or one of its parents is excluded."""
        parts = rel.split(b"/")
        return any(self.matches(b"/".join(parts[:end])) for end in range(1, len(parts) + 1))


def hash_files(paths):
    """``[(sha256 hex, None) or (None, reason)]`` of each path (bytes), read without following a symlink, never
    blocking on a FIFO put there since the walk, atimes left alone where the system lets."""
    results = []
    for path in paths:
        try:
            results.append((_sha256(path), None))
        except OSError as exc:
            results.append((None, "%s: %s" % (readable(os.fsdecode(path)), exc.strerror or exc)))
    return results


def _sha256(path):
    try:
        fd = os.open(path, _READ_FLAGS | getattr(os, "O_NOATIME", 0))
    except PermissionError:  # O_NOATIME needs to own the file (or CAP_FOWNER)
        fd = os.open(path, _READ_FLAGS)
    with os.fdopen(fd, "rb", buffering=0) as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, "no longer a regular file")
        return hashlib.file_digest(handle, "sha256").hexdigest()


# -- the stat cache ------------------------------------------------------------------------------------------
_CACHE_MAGIC = b"ferry-statcache 2\n"
# size, mtime_ns, ctime_ns, ino, the scan root's number, the path's length, the line's length; then the path, the
# digest and the file's report line (files with one link: a rescan reuses it rather than build it again)
_ROW = struct.Struct("<QqqQHHI")


def cache_row(section, rel, size, mtime_ns, ctime_ns, ino, sha, line=b""):
    return _ROW.pack(size, mtime_ns, ctime_ns, ino, section, len(rel), len(line)) + rel + bytes.fromhex(sha) + line


_NAME = operator.attrgetter("name")  # a directory's entries in byte order of names (attrgetter: no Python call)
_LINE_MOST = 1 << 16  # a report line of a file: its path (4 KiB, 5.4 KiB in base64) and ~300 bytes of fields
_ROW_MOST = _ROW.size + 65536 + 32 + _LINE_MOST


def row_sha256(row):
    start = _ROW.size + _ROW.unpack_from(row)[5]
    return row[start:start + 32].hex()


class StatCache:
    """The previous scan's cache, read forward once as the walk goes (both in walk order: a merge-join).

    A damaged or missing cache is an empty one: it only saves reading files again.
    """

    def __init__(self, path, resume=None):
        self.passed = self.differed = 0  # rows passed over (files gone), rows of changed files
        self.resumed = bool(resume)
        if not path:
            self.rows = iter(())
        else:  # no generator in between without a resume: one row a file on the rescan's hot path
            self.rows = self._chained(resume, path) if resume else self._rows(path)
        self.current = next(self.rows, None)
        self.current_key = None

    @classmethod
    def _chained(cls, resume, path):
        """The rows of an interrupted scan's cache (``resume``: a prefix of the walk, fresher), then those of the
        last complete scan's that come after it."""
        last = None
        for row in cls._rows(resume) if resume else ():
            last = (row[0],) + walk_key(row[1])
            yield row
        rows = cls._rows(path)
        for row in rows:
            if last is None or (row[0],) + walk_key(row[1]) > last:
                yield row
                break
        yield from rows

    @staticmethod
    def _rows(path):
        try:
            handle = open(path, "rb")
        except OSError:
            return
        with handle:
            if handle.read(len(_CACHE_MAGIC)) != _CACHE_MAGIC:
                return
            data, offset = b"", 0
            while True:
                if len(data) - offset < _ROW_MOST:
                    data = data[offset:] + handle.read(1 << 20)
                    offset = 0
                if len(data) - offset < _ROW.size:
                    return
                size, mtime, ctime, ino, section, length, line = _ROW.unpack_from(data, offset)
                end = offset + _ROW.size + length
                stop = end + 32 + line
                if len(data) < stop or line > _LINE_MOST:
                    return  # cut, or damaged: the rest is no cache
                yield (section, data[offset + _ROW.size:end], (size, mtime, ctime, ino), data[offset:stop],
                       data[end + 32:stop])
                offset = stop

    def lookup(self, section, rel, key):
        """``(row, line)``: the cache row (bytes, :func:`cache_row`) of ``rel`` (walked from the scan root number
        ``section``) when the cache has it with the same (size, mtime_ns, ctime_ns, ino) ``key``, and the report line
        it keeps (bytes, may be empty); its sha256 is ``row_sha256(row)``.
        """
        wanted = None
        while self.current is not None:
            number, path, stamp, row, line = self.current
            if path == rel and number == section:
                self._advance()
                if stamp == key:
                    return row, line
                self.differed += 1
                return None
            if self.current_key is None:
                self.current_key = (number,) + walk_key(path)
            if wanted is None:
                wanted = (section,) + walk_key(rel)
            if self.current_key > wanted:
                return None
            self._advance()
            self.passed += 1
        return None

    def _advance(self):
        self.current = next(self.rows, None)
        self.current_key = None

    def unchanged(self):
        """Whether every row was looked up, in order, with the same stamp and nothing else (after a walk whose
        rows were all taken verbatim, the new cache would be this one byte for byte)."""
        return self.passed == 0 and self.differed == 0 and self.resumed is False and \
            next(self.rows, None) is None and self.current is None


def partial_name(cache):
    """Where a scan writes its cache as it goes: published as ``cache`` when the walk ends; after a kill, a STOP or
    an error it stays, and the next scan reads it first (its files are not hashed again), from ``resume_name``."""
    return cache + ".partial"


def resume_name(cache):
    return cache + ".resume"


# -- the walk ------------------------------------------------------------------------------------------------
def walk_key(rel):
    """What orders the walk of one scan root: a directory's entries together, by name, directories depth first
    (a directory's record comes before its content, in the listing of its parent)."""
    parent, _sep, name = rel.rpartition(b"/")
    return parent.split(b"/"), name


class Batch:
    """Lines of the report in walk order; a line waiting for a digest is ``[head, tail, hole]``."""

    __slots__ = ("lines", "paths", "bytes", "holes", "cache", "records")

    def __init__(self):
        self.lines = []
        self.paths = []  # files to hash, absolute bytes
        self.bytes = 0
        self.holes = []  # (line index, index in paths or a link group, cache row index or None)
        self.cache = []  # cache rows: bytes, or [rel, stamp] waiting for the digest
        self.records = 0


class Walk:
    """The walk of ``roots`` under ``root`` (see the module documentation); :meth:`batches` runs it once."""

    def __init__(self, root, roots=("/",), excludes=(), one_file_system=True, owned=None, users=None, groups=None,
                 cache_in=None, cache_out=None, hash_workers=1, batch_files=BATCH_FILES, batch_bytes=BATCH_BYTES,
                 cache_resume=None):
        self.root = os.fsencode(os.path.abspath(root))
        self.roots = scan_roots(roots)
        self.excludes = excludes if isinstance(excludes, Excludes) else Excludes(excludes)
        self.one_file_system = one_file_system
        self.owned = owned or frozenset()
        self.users = users or {}
        self.groups = groups or {}
        self.cache = StatCache(cache_in, cache_resume)
        self._cache_in = cache_in
        self._reused = self._written = 0  # cache rows taken verbatim, and all rows written
        self.cache_out = cache_out
        self.hash_workers = max(1, hash_workers)
        self.batch_files = batch_files
        self.batch_bytes = batch_bytes
        self.counts = {"files": 0, "dirs": 0, "symlinks": 0, "bytes": 0, "hashed": 0, "cached": 0,
                       "skipped": dict((kind, 0) for kind in SKIPPED)}
        self.warnings = []
        self._ids = {}
        self._links = {}
        self._batch = Batch()
        self._section = 0

    def warn(self, text):
        if len(self.warnings) < SAMPLE_LIMIT:
            self.warnings.append(text)

    def batches(self):
        """Finished :class:`Batch` es in walk order (``lines``: JSON text; ``records``: their number). The stat
        cache is published after the last one; a walk not run to its end leaves the old cache as it was."""
        staged = StagedFile.open(self.cache_out, partial_name(self.cache_out)) if self.cache_out else None
        try:
            if staged is not None:
                staged.write(_CACHE_MAGIC)
            work = ((batch, batch.paths or None) for batch in self._walk())
            for batch, results in run_ordered(hash_files, work, self.hash_workers):
                self._finish(batch, results)
                if staged is not None and batch.cache:
                    self._written += len(batch.cache)
                    staged.write(b"".join(batch.cache))
                    staged.handle.flush()  # a killed scan's rows are there for the next one (see partial_name)
                yield batch
            if staged is None:
                return
            if self._cache_in == self.cache_out and self._reused == self._written and self.cache.unchanged():
                staged.abort()  # the same cache byte for byte: the one there stays (no write-back, no fsync)
            else:
                staged.commit()
        finally:
            if staged is not None and not staged.published:
                staged.abort(keep=True)

    # -- walking ---------------------------------------------------------------------------------------------
    def _walk(self):
        for self._section, top in enumerate(self.roots):
            yield from self._walk_root(top)
        self._section = len(self.roots)
        if self._batch.lines:
            yield self._take()

    def _take(self):
        batch, self._batch = self._batch, Batch()
        return batch

    def _walk_root(self, top):
        path = os.path.join(self.root, top) if top else self.root
        try:
            info = os.lstat(path)
        except OSError as exc:
            raise FerryError("roots: %s cannot be scanned: %s" % (readable(os.fsdecode(path)), exc.strerror))
        device = info.st_dev
        if top:
            parent, _sep, name = top.rpartition(b"/")
            if self.excludes.matches(top) or not self._entry(parent, name, path, info, device):
                return
        stack = [(top, path)]
        while stack:
            rel_dir, abs_dir = stack.pop()
            below = []
            yield from self._directory(rel_dir, abs_dir, device, below)
            stack.extend(reversed(below))

    def _directory(self, rel_dir, abs_dir, device, below):
        """Record the entries of one directory, adding its subdirectories to enter to ``below``, in order; yields
        the batches it fills."""
        try:
            with os.scandir(abs_dir) as listing:
                entries = sorted(listing, key=_NAME)
        except OSError as exc:
            self.counts["skipped"]["unreadable"] += 1
            self.warn("%s: %s" % (readable(os.fsdecode(abs_dir)), exc.strerror))
            return
        prefix = rel_dir + b"/" if rel_dir else b""
        starts = self.excludes.prefixes.get(rel_dir)
        exact = self.excludes.exact
        most_files, most_bytes = self.batch_files, self.batch_bytes
        for entry in entries:
            name = entry.name
            rel = prefix + name
            if rel in exact or (starts is not None and name.startswith(starts)):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:  # gone since the listing
                continue
            if self._entry(rel_dir, name, entry.path, info, device, rel):
                below.append((rel, entry.path))
            if len(self._batch.lines) >= most_files or self._batch.bytes >= most_bytes:
                yield self._take()

    def _entry(self, rel_dir, name, path, info, device, rel=None):
        """One entry's record (or count); True when it is a directory to enter."""
        rel = rel if rel is not None else (rel_dir + b"/" + name if rel_dir else name)
        mode = info.st_mode
        kind = stat.S_IFMT(mode)
        if kind in _SKIP_KIND:
            self.counts["skipped"][_SKIP_KIND[kind]] += 1
            return False
        if rel in self.owned:
            return kind == stat.S_IFDIR and (not self.one_file_system or info.st_dev == device)
        if kind == stat.S_IFREG:
            self._file(rel, path, info)
            return False
        head = '{"kind":"file",%s,"type":"%s","mode":%d,%s,"size":%d,"mtime_ns":%d' % (
            _name_field("path", rel), "dir" if kind == stat.S_IFDIR else "symlink", mode & 0o7777,
            self._owner(info.st_uid, info.st_gid), info.st_size, info.st_mtime_ns)
        if kind == stat.S_IFLNK:
            try:
                target = os.readlink(path)
            except OSError as exc:
                self._unreadable(path, exc)
                return False
            self.counts["symlinks"] += 1
            self._batch.lines.append(head + "," + _name_field("target", target) + _ADDED)
            return False
        if kind != stat.S_IFDIR:  # a door, a whiteout: nothing a scan can carry
            self.counts["skipped"]["unreadable"] += 1
            self.warn("%s: not a file, directory or symlink" % readable(os.fsdecode(path)))
            return False
        self.counts["dirs"] += 1
        self._batch.lines.append(head + _ADDED)
        return not self.one_file_system or info.st_dev == device

    def _owner(self, uid, gid):
        key = (uid, gid)
        text = self._ids.get(key)
        if text is None:
            user, group = self.users.get(uid), self.groups.get(gid)
            text = '"uid":%d,"gid":%d,"owner":%s,"group":%s' % (
                uid, gid, _quote(user) if user is not None else "null", _quote(group) if group is not None else "null")
            self._ids[key] = text
        return text

    def _file(self, rel, path, info):
        """A regular file's line (the hot path of a rescan: one cache lookup, and the cached line when it holds)."""
        size = info.st_size
        lines = self._batch.lines
        counts = self.counts
        counts["files"] += 1
        ids = self._ids.get((info.st_uid, info.st_gid)) or self._owner(info.st_uid, info.st_gid)
        if info.st_nlink == 1:
            counts["bytes"] += size
            hit = self.cache.lookup(self._section, rel, (size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino))
            if hit is not None and hit[1]:
                line = hit[1].decode("ascii")
                if ids in line:  # the same owner names (the scanned root's passwd may have changed since)
                    counts["cached"] += 1
                    lines.append(line)
                    self._batch.cache.append(hit[0])
                    self._reused += 1
                    return
            self._content(rel, path, info, ids, None, hit, _after_sha(info) + _ADDED)
            return
        key = (info.st_dev, info.st_ino)
        group = self._links.get(key)
        if group is not None:  # a later path of a file seen: its first path carries the content
            head, tail = _head(rel, info, ids), _after_sha(info) + ',"link_group":%d%s' % (group[0], _ADDED)
            if group[1] is None:
                self._batch.holes.append((len(lines), group, None))
                lines.append([head, tail])
            else:
                lines.append(head + group[1] + tail)
            return
        counts["bytes"] += size
        group = self._links[key] = [len(self._links) + 1, None]
        hit = self.cache.lookup(self._section, rel, (size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino))
        self._content(rel, path, info, ids, group, hit, _after_sha(info) + ',"link_group":%d%s' % (group[0], _ADDED))

    def _content(self, rel, path, info, ids, group, hit, tail):
        """The line of a file whose cached line does not serve: its digest from the cache row ``hit``, or a hole
        the hashing fills. A file of one link (``group`` None) keeps its line in the new cache row."""
        head = _head(rel, info, ids)
        batch, lines = self._batch, self._batch.lines
        stamp = (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)
        if hit is not None:
            sha = row_sha256(hit[0])
            self.counts["cached"] += 1
            if group is not None:
                group[1] = sha
            lines.append(head + sha + tail)
            batch.cache.append(self._row(rel, stamp, sha, None if group is not None else head + sha + tail))
            return
        batch.holes.append((len(lines), len(batch.paths), (len(batch.cache), group, info.st_size)))
        batch.cache.append([self._section, rel, stamp])
        batch.paths.append(path)
        batch.bytes += info.st_size  # a file as big as a batch ends it: the next files go to another worker
        lines.append([head, tail])

    def _row(self, rel, stamp, sha, line):
        return cache_row(self._section, rel, stamp[0], stamp[1], stamp[2], stamp[3], sha,
                         line.encode("ascii") if line else b"")

    def _unreadable(self, path, exc):
        self.counts["skipped"]["unreadable"] += 1
        self.warn("%s: %s" % (readable(os.fsdecode(path)), getattr(exc, "strerror", None) or exc))

    # -- finishing a batch -----------------------------------------------------------------------------------
    def _finish(self, batch, results):
        """Fill the digests in, in line order (a later hard link after its first path); drop unreadable files."""
        lines = batch.lines
        batch.records = len(lines)
        for index, source, row in batch.holes:
            head, tail = lines[index]
            if row is None:  # a later hard link
                sha = source[1]
                self.counts["skipped"]["unreadable"] += sha is None
            else:
                sha, error = results[source]
                cache_index, group, size = row
                if sha is None:
                    self.counts["skipped"]["unreadable"] += 1
                    self.warn(error)  # names the file
                    self.counts["bytes"] -= size
                    batch.cache[cache_index] = b""
                else:
                    self.counts["hashed"] += 1
                    section, rel, stamp = batch.cache[cache_index]
                    line = b"" if group is not None else (head + sha + tail).encode("ascii")  # one link: kept
                    batch.cache[cache_index] = cache_row(section, rel, stamp[0], stamp[1], stamp[2], stamp[3], sha,
                                                         line)
                    if group is not None:
                        group[1] = sha
            if sha is None:
                lines[index] = ""
                batch.records -= 1
                self.counts["files"] -= 1
            else:
                lines[index] = head + sha + tail
        batch.paths = batch.holes = None


def _head(rel, info, ids):
    """A regular file's line up to its digest."""
    return '{"kind":"file",%s,"type":"file","mode":%d,%s,"size":%d,"mtime_ns":%d,"sha256":"' % (
        _name_field("path", rel), info.st_mode & 0o7777, ids, info.st_size, info.st_mtime_ns)


def _after_sha(info):
    return '","sparse":true' if info.st_blocks * 512 < info.st_size else '"'


def _name_field(key, raw):
    try:
        return '"%s":%s' % (key, _quote(raw.decode("utf-8")))
    except UnicodeDecodeError:
        return '"%s_b64":"%s"' % (key, base64.b64encode(raw).decode("ascii"))
