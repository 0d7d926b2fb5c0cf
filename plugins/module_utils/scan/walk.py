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

Listing: with ``hash_workers`` above 1, directories are listed on as many forked processes
(``core/tree.py`` :class:`ForkedWorkers`, a directory a job, the next ones of the walk listed ahead): a worker
lists, ``lstat`` s each entry relative to the directory's fd, and gives back the report lines it can make (dirs,
symlinks, files the cache answers) with the files the walk must finish; the parent merges the listings in walk
order. Memory: the listings ahead, each as big as its directory.

Content: a file whose (size, mtime_ns, ctime_ns, ino) under its name is in the stat cache of the previous scan
is not read again, and a file of one link whose owner names are the same takes its cached report line as it is.
The cache is blocks of rows by directory (:class:`CacheIndex` reads only the block headers: one entry a
directory; a directory's rows are read by whoever lists it). The others are hashed on ``hash_workers`` forked
processes (:func:`run_ordered`) in batches bounded by files and by bytes, so that big files spread over the
workers; a batch needing no hashing never goes to the pool. The new cache (:class:`CacheWriter`) is written as
the batches go (``<cache>.partial``, flushed per batch) and published only when the walk ends; a directory whose
rows are the old ones is copied as it is, and a rescan that changes no byte of it writes nothing. A stopped or
killed walk leaves the partial cache, and the next one reads its rows over the complete cache's
(:func:`partial_name`).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import collections
import hashlib
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
from ansible_collections.ferry.migrate.plugins.module_utils.core.tree import ForkedWorkers, run_ordered

BATCH_FILES = 1024  # files a batch at most
BATCH_BYTES = 64 << 20  # bytes to hash a batch at most (a bigger file is a batch alone)
BLOCK_ROWS = 1024  # cache rows a block at most
LIST_AHEAD = 8  # directories a worker lists ahead of the walk
SKIPPED = ("fifo", "socket", "char", "block", "unreadable")
_SKIP_KIND = {stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket", stat.S_IFCHR: "char", stat.S_IFBLK: "block"}
_ADDED = ',"package":null,"change":"added"}\n'
# what the walk keeps of the lstat of a file it finishes (an os.stat_result is pickled in ~250 bytes)
_Stat = collections.namedtuple("_Stat", ["st_mode", "st_uid", "st_gid", "st_size", "st_mtime_ns", "st_ctime_ns",
                                         "st_ino", "st_dev", "st_nlink", "st_blocks"])

_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def _stat_of(info):
    return _Stat(info.st_mode, info.st_uid, info.st_gid, info.st_size, info.st_mtime_ns, info.st_ctime_ns,
                 info.st_ino, info.st_dev, info.st_nlink, info.st_blocks)


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
# A cache is blocks of rows, a directory's rows together (in entry order; a directory whose rows were written over
# two batches has two blocks one after the other). Block: the scan root's number, the directory's length, the
# rows' length; then the directory and the rows. Row: size, mtime_ns, ctime_ns, ino, the name's length, the
# line's length; then the name, the digest (32 bytes) and the file's report line (files of one link: a rescan
# reuses it rather than build it again).
_CACHE_MAGIC = b"ferry-statcache 3\n"
_BLOCK = struct.Struct("<HII")
_ROW = struct.Struct("<QqqQHI")
_LINE_MOST = 1 << 16  # a report line of a file: its path (4 KiB, 5.4 KiB in base64) and ~300 bytes of fields


def cache_row(name, size, mtime_ns, ctime_ns, ino, sha, line=b""):
    return _ROW.pack(size, mtime_ns, ctime_ns, ino, len(name), len(line)) + name + bytes.fromhex(sha) + line


def cache_block(section, rel_dir, rows):
    body = b"".join(rows)
    return _BLOCK.pack(section, len(rel_dir), len(body)) + rel_dir + body


def row_sha256(row):
    start = _ROW.size + _ROW.unpack_from(row)[4]
    return row[start:start + 32].hex()


def parse_rows(body):
    """``{name: (stamp, row, line)}`` of a block's rows; a damaged row ends them (what is before it stays)."""
    rows = {}
    offset, end = 0, len(body)
    unpack, size = _ROW.unpack_from, _ROW.size
    while end - offset >= size:
        length, line = unpack(body, offset)[4:]
        stop = offset + size + length + 32 + line
        if stop > end or line > _LINE_MOST:
            break
        row = body[offset:stop]
        rows[row[size:size + length]] = (unpack(row)[:4], row, row[size + length + 32:])
        offset = stop
    return rows


class CacheIndex:
    """Where each directory's rows are in the previous caches (``paths``: the last complete scan's, then an
    interrupted one's, either None): ``{(scan root number, directory): [(file number, block offset, block
    length, rows' offset)]}``, read from the block headers only (whoever lists a directory reads its rows).

    A damaged or missing cache is an empty one (it only saves reading files again); a cut one keeps its whole
    blocks. Memory: one entry a directory.
    """

    def __init__(self, paths=()):
        self.paths = list(paths)
        self.blocks = {}
        self.sizes = []
        for number, path in enumerate(self.paths):
            self.sizes.append(self._index(number, path) if path else 0)

    def _index(self, number, path):
        try:
            handle = open(path, "rb")
        except OSError:
            return 0
        with handle:
            if handle.read(len(_CACHE_MAGIC)) != _CACHE_MAGIC:
                return 0
            total = os.fstat(handle.fileno()).st_size
            offset = len(_CACHE_MAGIC)
            while True:
                header = handle.read(_BLOCK.size)
                if not header:
                    return offset
                if len(header) < _BLOCK.size:
                    return -1  # cut: never the same bytes as a new cache (see Walk.batches)
                section, length, body = _BLOCK.unpack(header)
                rel_dir = handle.read(length)
                start = offset + _BLOCK.size + length
                if len(rel_dir) < length or start + body > total:
                    return -1  # cut here: the blocks before serve
                self.blocks.setdefault((section, rel_dir), []).append((number, offset, start + body - offset, start))
                offset = start + body
                handle.seek(offset)

    def pieces(self, section, rel_dir):
        return self.blocks.get((section, rel_dir))

    def rows(self, pieces):
        """``({name: (stamp, row, line)}, copy)`` of a directory's blocks (an interrupted scan's rows over the
        complete one's); ``copy``: ``(file number, offset, length)`` when its blocks are one run of one file (a
        directory whose new rows are the same can copy them), else None."""
        found = {}
        copy = None
        found_pieces = 0
        for number, offset, length, start in pieces or ():
            try:
                with open(self.paths[number], "rb") as handle:
                    handle.seek(start)
                    found.update(parse_rows(handle.read(offset + length - start)))
            except OSError:
                return {}, None
            if not found_pieces:
                copy = (number, offset, length)
            elif copy is not None and copy[0] == number and copy[1] + copy[2] == offset:
                copy = (number, copy[1], copy[2] + length)
            else:
                copy = None
            found_pieces += 1
        return found, copy


def copy_range(source, target, offset, length):
    """``length`` bytes of the file ``source`` (fd) from ``offset`` appended to ``target`` (fd at its end), by the
    kernel where it can."""
    while length > 0:
        try:
            done = os.copy_file_range(source, target, length, offset)
        except (AttributeError, OSError):
            done = os.write(target, os.pread(source, min(length, 1 << 20), offset))
        if done <= 0:
            raise FerryError("the stat cache could not be copied: it is shorter than its index says")
        offset += done
        length -= done


class CacheWriter:
    """The new cache, written as the batches go to ``partial_name(path)`` (flushed per batch: a killed scan's rows
    are there for the next one, but for the last < :data:`BLOCK_ROWS` of the directory it was in) and published
    by :meth:`publish`; :meth:`close` without it keeps the partial one, with all its rows.

    A directory's rows make blocks of :data:`BLOCK_ROWS` and one of the rest, whatever the batches (so the same
    rows are the same bytes), or a run of an old cache is copied as it is (a directory whose rows are the same).
    With ``same``
    (the old cache is ``path`` itself), nothing is written while every block is the old cache's next one, copied
    or the same bytes: a rescan of an unchanged tree leaves the cache there as it is (no copy, no write-back, no
    fsync); the old blocks are copied once something differs.
    """

    def __init__(self, path, index, same):
        self.index = index
        self.lazy = same and index.sizes[0] >= len(_CACHE_MAGIC)  # the old cache up to ``copied`` is the new one
        self.copied = len(_CACHE_MAGIC)
        self.sources = {}
        self.directory = None  # (scan root number, directory) of ``rows``: rows not yet in a block
        self.rows = []
        self.staged = StagedFile.open(path, partial_name(path))
        self.staged.write(_CACHE_MAGIC)

    def write(self, blocks):
        """A batch's blocks: ``[scan root number, directory, rows]`` (a row b"": a file that could not be read) or
        ``(file number, offset, length)`` of an old cache."""
        for block in blocks:
            if isinstance(block, list):
                if self.directory != (block[0], block[1]):
                    self._end_directory()
                    self.directory = (block[0], block[1])
                for row in block[2]:
                    if row:
                        self.rows.append(row)
                        if len(self.rows) == BLOCK_ROWS:
                            self._block()
            else:
                self._end_directory()
                if self.lazy and block[:2] == (0, self.copied):
                    self.copied += block[2]
                else:
                    self._differ()
                    self._copy(*block)
        self.staged.handle.flush()

    def _end_directory(self):
        if self.rows:
            self._block()
        self.directory = None

    def _block(self):
        data = cache_block(self.directory[0], self.directory[1], self.rows)
        self.rows = []
        if self.lazy and os.pread(self._source(0), len(data), self.copied) == data:
            self.copied += len(data)  # rows made again (hard links, say), and the same
            return
        self._differ()
        self.staged.write(data)

    def _differ(self):
        if self.lazy:
            self.lazy = False
            self._copy(0, len(_CACHE_MAGIC), self.copied - len(_CACHE_MAGIC))

    def _copy(self, number, offset, length):
        if length <= 0:
            return
        self.staged.handle.flush()
        copy_range(self._source(number), self.staged.handle.fileno(), offset, length)
        self.staged.handle.seek(0, os.SEEK_END)

    def _source(self, number):
        if number not in self.sources:
            self.sources[number] = os.open(self.index.paths[number], os.O_RDONLY)
        return self.sources[number]

    def publish(self):
        self._end_directory()
        if self.lazy and self.copied == self.index.sizes[0]:
            self.staged.abort()  # the same cache byte for byte: the one there stays
            return
        self._differ()
        self.staged.commit()

    def close(self):
        """After :meth:`publish`, or instead of it when the walk stopped: the partial cache is kept, with the rows
        of the directory it was in (a kill loses those)."""
        try:
            if not self.staged.published and self.staged.handle is not None:
                self._end_directory()
                self.staged.handle.flush()
        except OSError:
            pass  # a full disk, say: the rows written before serve
        finally:
            for fd in self.sources.values():
                os.close(fd)
            self.sources = {}
            if not self.staged.published:
                self.staged.abort(keep=True)


def partial_name(cache):
    """Where a scan writes its cache as it goes: published as ``cache`` when the walk ends; after a kill, a STOP or
    an error it stays, and the next scan reads it first (its files are not hashed again), from ``resume_name``."""
    return cache + ".partial"


def resume_name(cache):
    return cache + ".resume"


# -- the walk ------------------------------------------------------------------------------------------------
class Batch:
    """Lines of the report in walk order; a line waiting for a digest is ``[head, tail]`` (see ``holes``)."""

    __slots__ = ("lines", "paths", "bytes", "holes", "cache", "records")

    def __init__(self):
        self.lines = []
        self.paths = []  # files to hash, absolute bytes
        self.bytes = 0
        self.holes = []  # (line index, index in paths or a link group, (rows, row index, link group, size) or None)
        self.cache = []  # [scan root number, directory, rows] blocks; or (file number, offset, length) to copy
        self.records = 0

    def rows(self, section, rel_dir):
        """The rows of the block of ``rel_dir`` this batch writes (the last one, or a new one)."""
        last = self.cache[-1] if self.cache else None
        if isinstance(last, list) and last[0] == section and last[1] == rel_dir:
            return last[2]
        block = [section, rel_dir, []]
        self.cache.append(block)
        return block[2]


class Listing:
    """One directory listed (on a worker): ``items`` in entry order, each ``(text, records, rows)`` (report lines
    done, and the cache rows of their files) or ``(rel, path, info, hit)`` (a regular file the walk finishes:
    hashing, hard links); ``below``: the subdirectories to enter; ``copy``: where the old cache has this
    directory's rows when the new ones are the same bytes (then no rows are given)."""

    __slots__ = ("items", "below", "counts", "warnings", "copy", "texts", "rows")

    def __init__(self):
        self.texts = []  # report lines done since the last item (bytes), and their files' cache rows
        self.rows = []
        self.items = []
        self.below = []
        self.counts = {"files": 0, "dirs": 0, "symlinks": 0, "bytes": 0, "cached": 0,
                       "skipped": dict((kind, 0) for kind in SKIPPED)}
        self.warnings = []
        self.copy = None

    def unreadable(self, path, exc):
        self.counts["skipped"]["unreadable"] += 1
        self.warnings.append("%s: %s" % (readable(os.fsdecode(path)), getattr(exc, "strerror", None) or exc))

    def item(self, item):
        self._flush()
        self.items.append(item)

    def _flush(self, keep_rows=True):
        if self.texts:
            self.items.append((b"".join(self.texts), len(self.texts), list(self.rows) if keep_rows else None))
            del self.texts[:], self.rows[:]  # in place: the listing loop holds them

    def end(self, copy):
        """``copy``: where the old cache has these rows, when the new ones are those bytes (then none are sent)."""
        self._flush(keep_rows=copy is None)
        self.copy = copy
        self.texts = self.rows = None


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
        self.index = CacheIndex([cache_in, cache_resume])
        self._same_cache = bool(cache_in) and cache_in == cache_out and not cache_resume
        self.cache_out = cache_out
        self.hash_workers = max(1, hash_workers)
        self.batch_files = batch_files
        self.batch_bytes = batch_bytes
        self.counts = {"files": 0, "dirs": 0, "symlinks": 0, "bytes": 0, "hashed": 0, "cached": 0,
                       "skipped": dict((kind, 0) for kind in SKIPPED)}
        self.warnings = []
        self._ids = {}
        self._ids_ascii = {}
        self._links = {}
        self._batch = Batch()
        self._section = 0
        self._pool = None

    def warn(self, text):
        if len(self.warnings) < SAMPLE_LIMIT:
            self.warnings.append(text)

    def batches(self):
        """Finished :class:`Batch` es in walk order (``lines``: JSON text; ``records``: their number). The stat
        cache is published after the last one; a walk not run to its end leaves the old cache as it was."""
        cache = CacheWriter(self.cache_out, self.index, self._same_cache) if self.cache_out else None
        try:
            if self.hash_workers > 1:  # forked now: the workers know the walk's options, owners and cache index
                self._pool = ForkedWorkers(self.list_directory, self.hash_workers)
            work = ((batch, batch.paths or None) for batch in self._walk())
            for batch, results in run_ordered(hash_files, work, self.hash_workers):
                self._finish(batch, results)
                if cache is not None and batch.cache:
                    cache.write(batch.cache)
                yield batch
            self._close_pool()
            if cache is not None:
                cache.publish()
        finally:
            self._close_pool(terminate=True)
            if cache is not None:
                cache.close()

    def _close_pool(self, terminate=False):
        if self._pool is not None:
            self._pool.close(kill=terminate)  # an error or a stop: the listings are not wanted any more
            self._pool = None

    # -- walking ---------------------------------------------------------------------------------------------
    def _walk(self):
        for self._section, top in enumerate(self.roots):
            yield from self._walk_root(top)
        self._section = len(self.roots)
        if self._batch.lines or self._batch.cache:  # cache blocks alone: an unchanged directory's copy
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
            if self.excludes.matches(top):
                return
            parent, _sep, name = top.rpartition(b"/")
            listing = self.list_directory((self._section, parent, os.path.dirname(path), device,
                                           self.index.pieces(self._section, parent), name))
            yield from self._merge(listing, parent)
            if not listing.below:
                return
        stack = [(top, path)]
        waiting = {}
        while stack:
            self._list_ahead(stack, waiting, device)
            rel_dir, abs_dir = stack.pop()
            ticket = waiting.pop(rel_dir, None)
            listing = self._pool.result(ticket) if ticket is not None else \
                self.list_directory(self._job(rel_dir, abs_dir, device))
            yield from self._merge(listing, rel_dir)
            stack.extend(reversed(listing.below))

    def _job(self, rel_dir, abs_dir, device):
        return self._section, rel_dir, abs_dir, device, self.index.pieces(self._section, rel_dir), None

    def _list_ahead(self, stack, waiting, device):
        """Have the workers list the next directories of the walk (the top of the stack) while this one is merged."""
        if self._pool is None:
            return
        for rel_dir, abs_dir in stack[-LIST_AHEAD * self.hash_workers:]:
            if rel_dir not in waiting:
                waiting[rel_dir] = self._pool.submit(self._job(rel_dir, abs_dir, device))

    def _merge(self, listing, rel_dir):
        """A listing's lines and counts into the batches, in walk order; yields the batches it fills."""
        counts = self.counts
        for key, value in listing.counts.items():
            if key == "skipped":
                for kind, number in value.items():
                    counts["skipped"][kind] += number
            else:
                counts[key] += value
        for text in listing.warnings:
            self.warn(text)
        most_files, most_bytes = self.batch_files, self.batch_bytes
        for item in listing.items:
            batch = self._batch
            if len(item) == 3:
                batch.lines.append(item[0])
                batch.records += item[1]
                if item[2]:
                    batch.rows(self._section, rel_dir).extend(item[2])
            else:
                self._file(rel_dir, *item)
            if batch.records >= most_files or batch.bytes >= most_bytes:
                yield self._take()
        if listing.copy is not None:
            self._batch.cache.append(listing.copy)

    # -- listing a directory (on a worker) -------------------------------------------------------------------
    def list_directory(self, job):
        """The :class:`Listing` of one directory (``only``: just that entry of it)."""
        abs_dir, only = job[2], job[5]
        listing = Listing()
        try:
            fd = os.open(abs_dir, _DIR_FLAGS)
        except OSError as exc:
            if only is not None:
                raise FerryError("roots: %s cannot be scanned: %s" % (readable(os.fsdecode(abs_dir)), exc.strerror))
            listing.unreadable(abs_dir, exc)
            return listing
        try:
            self._list_entries(listing, fd, job)
        finally:
            os.close(fd)
        return listing

    def _list_entries(self, listing, fd, job):
        _section, rel_dir, abs_dir, device, pieces, only = job
        if only is not None:
            names = [only]
        else:
            try:
                names = os.listdir(abs_dir)
            except OSError as exc:
                listing.unreadable(abs_dir, exc)
                return
            names.sort()  # bytes: the walk's order
        old, copy = self.index.rows(pieces)
        prefix = rel_dir + b"/" if rel_dir else b""
        starts = self.excludes.prefixes.get(rel_dir) if only is None else None
        exact = self.excludes.exact if only is None else ()
        owned, ids = self.owned, self._ids_ascii
        texts, rows = listing.texts, listing.rows
        lstat = os.lstat
        taken = size = 0
        for name in names:
            rel = prefix + name
            if rel in exact or (starts is not None and name.startswith(starts)):
                continue
            try:  # relative to the directory's fd: no path resolution a file
                info = lstat(name, dir_fd=fd)
            except OSError as exc:
                if only is not None:
                    raise FerryError("roots: %s cannot be scanned: %s" % (
                        readable(os.fsdecode(os.path.join(abs_dir, name))), exc.strerror))
                continue  # gone since the listing
            # the hot path of a rescan: a file of one link the cache has with this stat, its line kept there, with
            # the same owner names (the scanned root's passwd may have changed since)
            hit = old.get(name) if info.st_nlink == 1 else None
            if hit is not None and hit[2] and hit[0] == (info.st_size, info.st_mtime_ns, info.st_ctime_ns,
                                                         info.st_ino) and stat.S_ISREG(info.st_mode):
                owner = ids.get((info.st_uid, info.st_gid)) or self._owner_ascii(info.st_uid, info.st_gid)
                if owner in hit[2] and rel not in owned:
                    texts.append(hit[2])
                    rows.append(hit[1])
                    taken += 1
                    size += info.st_size
                    continue
            if self._entry(listing, name, rel, abs_dir, info, device, old, fd):
                listing.below.append((rel, os.path.join(abs_dir, name)))
        counts = listing.counts
        counts["files"] += taken
        counts["cached"] += taken
        counts["bytes"] += size
        listing.end(copy if not listing.items and taken == len(old) and only is None else None)

    def _entry(self, listing, name, rel, abs_dir, info, device, old, fd):
        """One entry's record (or count) into the listing, but for a file the cache has as it is; True when it is a
        directory to enter."""
        mode = info.st_mode
        kind = stat.S_IFMT(mode)
        counts = listing.counts
        if kind == stat.S_IFREG:
            if rel not in self.owned:  # a file the walk finishes (``hit``: the cached digest, to make its line)
                hit = old.get(name)
                if hit is not None and hit[0] != (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino):
                    hit = None
                listing.item((rel, os.path.join(abs_dir, name), _stat_of(info),
                              None if hit is None else (hit[1], hit[2])))
            return False
        if kind in _SKIP_KIND:
            counts["skipped"][_SKIP_KIND[kind]] += 1
            return False
        if rel in self.owned:
            return kind == stat.S_IFDIR and (not self.one_file_system or info.st_dev == device)
        head = '{"kind":"file",%s,"type":"%s","mode":%d,%s,"size":%d,"mtime_ns":%d' % (
            _name_field("path", rel), "dir" if kind == stat.S_IFDIR else "symlink", mode & 0o7777,
            self._owner(info.st_uid, info.st_gid), info.st_size, info.st_mtime_ns)
        if kind == stat.S_IFLNK:
            try:
                target = os.readlink(name, dir_fd=fd)
            except OSError as exc:
                listing.unreadable(os.path.join(abs_dir, name), exc)
                return False
            counts["symlinks"] += 1
            listing.texts.append((head + "," + _name_field("target", target) + _ADDED).encode("ascii"))
            return False
        if kind != stat.S_IFDIR:  # a door, a whiteout: nothing a scan can carry
            counts["skipped"]["unreadable"] += 1
            listing.warnings.append("%s: not a file, directory or symlink" % readable(
                os.fsdecode(os.path.join(abs_dir, name))))
            return False
        counts["dirs"] += 1
        listing.texts.append((head + _ADDED).encode("ascii"))
        return not self.one_file_system or info.st_dev == device

    def _owner_ascii(self, uid, gid):
        text = self._ids_ascii[(uid, gid)] = self._owner(uid, gid).encode("ascii")
        return text

    def _owner(self, uid, gid):
        key = (uid, gid)
        text = self._ids.get(key)
        if text is None:
            user, group = self.users.get(uid), self.groups.get(gid)
            text = '"uid":%d,"gid":%d,"owner":%s,"group":%s' % (
                uid, gid, _quote(user) if user is not None else "null", _quote(group) if group is not None else "null")
            self._ids[key] = text
        return text

    # -- a file the walk finishes ----------------------------------------------------------------------------
    def _file(self, rel_dir, rel, path, info, hit):
        """A regular file whose cached line does not serve: a later path of a hard link, a line built from the
        cached digest (``hit``: ``(row, line)``), or a hole the hashing fills."""
        size = info.st_size
        lines = self._batch.lines
        counts = self.counts
        counts["files"] += 1
        self._batch.records += 1
        ids = self._ids.get((info.st_uid, info.st_gid)) or self._owner(info.st_uid, info.st_gid)
        if info.st_nlink == 1:
            counts["bytes"] += size
            self._content(rel_dir, rel, path, info, ids, None, hit, _after_sha(info) + _ADDED)
            return
        key = (info.st_dev, info.st_ino)
        group = self._links.get(key)
        if group is not None:  # a later path of a file seen: its first path carries the content
            head, tail = _head(rel, info, ids), _after_sha(info) + ',"link_group":%d%s' % (group[0], _ADDED)
            if group[1] is None:
                self._batch.holes.append((len(lines), group, None))
                lines.append([head, tail])
            else:
                lines.append((head + group[1] + tail).encode("ascii"))
            return
        counts["bytes"] += size
        group = self._links[key] = [len(self._links) + 1, None]
        self._content(rel_dir, rel, path, info, ids, group, hit,
                      _after_sha(info) + ',"link_group":%d%s' % (group[0], _ADDED))

    def _content(self, rel_dir, rel, path, info, ids, group, hit, tail):
        """The line of a file: its digest from the cache row ``hit``, or a hole the hashing fills. A file of one
        link (``group`` None) keeps its line in the new cache row."""
        head = _head(rel, info, ids)
        batch, lines = self._batch, self._batch.lines
        rows = batch.rows(self._section, rel_dir)
        name = rel.rpartition(b"/")[2]
        stamp = (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)
        if hit is not None:
            sha = row_sha256(hit[0])
            self.counts["cached"] += 1
            if group is not None:
                group[1] = sha
            line = (head + sha + tail).encode("ascii")
            lines.append(line)
            rows.append(cache_row(name, stamp[0], stamp[1], stamp[2], stamp[3], sha, b"" if group else line))
            return
        batch.holes.append((len(lines), len(batch.paths), (rows, len(rows), group, info.st_size)))
        rows.append([name, stamp])
        batch.paths.append(path)
        batch.bytes += info.st_size  # a file as big as a batch ends it: the next files go to another worker
        lines.append([head, tail])

    # -- finishing a batch -----------------------------------------------------------------------------------
    def _finish(self, batch, results):
        """Fill the digests in, in line order (a later hard link after its first path); drop unreadable files."""
        lines = batch.lines
        for index, source, row in batch.holes:
            head, tail = lines[index]
            if row is None:  # a later hard link
                sha = source[1]
                self.counts["skipped"]["unreadable"] += sha is None
            else:
                sha, error = results[source]
                rows, row_index, group, size = row
                line = None if sha is None else (head + sha + tail).encode("ascii")
                if sha is None:
                    self.counts["skipped"]["unreadable"] += 1
                    self.warn(error)  # names the file
                    self.counts["bytes"] -= size
                    rows[row_index] = b""
                else:
                    self.counts["hashed"] += 1
                    name, stamp = rows[row_index]  # one link: its line kept in the row
                    rows[row_index] = cache_row(name, stamp[0], stamp[1], stamp[2], stamp[3], sha,
                                                b"" if group else line)
                    if group is not None:
                        group[1] = sha
            if sha is None:
                lines[index] = b""
                batch.records -= 1
                self.counts["files"] -= 1
            else:
                lines[index] = line if row is not None else (head + sha + tail).encode("ascii")
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
