# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Overlays: the file contents a scan found, as tar archives of objects named by their SHA-256.

An object is the content of a regular file of the report (added or modified; hard links share one). Members are
only regular files ``objects/<sha256>`` (a whole object) or ``objects/<sha256>.<offset>`` (the piece of an object
bigger than a part that starts at ``offset``), mode 0600, owner 0:0, mtime 0, so a part is the same bytes whenever
it is made from the same files.

- Parts (:func:`plan_parts`): what the store lacks, sorted by SHA-256, cut into parts of at most ``part_size``
  object bytes; an object bigger than that is cut into pieces of ``part_size`` bytes, each filling a part, the
  last piece starting the next part. The same report and store index give the same parts: a rerun skips those
  the store holds.
- Streaming (:class:`ObjectReader`): a part's bytes are made while they are sent, each file read from the
  source root and hashed on the way; a file whose content no longer matches its report line fails before the
  part's last bytes, so an upload of it is cut and the store keeps nothing of it.
- The local overlay archive (:func:`write_archive`): ``report.jsonl.gz`` then every object whole, staged.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import re
import stat
import tarfile

from ansible_collections.ferry.migrate.plugins.module_utils.core.archive import CHUNK
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError, readable
from ansible_collections.ferry.migrate.plugins.module_utils.core.staging import StagedFile
from ansible_collections.ferry.migrate.plugins.module_utils.scan.report import name_of
from ansible_collections.ferry.migrate.plugins.module_utils.core.tartree import (
    BLOCK,
    END,
    Meta,
    header,
    padded,
)

OBJECT_MEMBER = re.compile(r"\Aobjects/([0-9a-f]{64})(?:\.(0|[1-9][0-9]{0,19}))?\Z")
SHA256 = re.compile(r"\A[0-9a-f]{64}\Z")
REPORT_MEMBER = "report.jsonl.gz"
MEMBER_META = Meta(stat.S_IFREG | 0o600, 0, 0, 0)
PART_SIZE_RANGE = (1 << 20, 16 << 30)
DEFAULT_PART_SIZE = 256 << 20


def parse_member(name):
    """(sha256, offset) of an object member's name (offset None for a whole object), or None for any other."""
    match = OBJECT_MEMBER.match(name)
    if match is None:
        return None
    return match.group(1), None if match.group(2) is None else int(match.group(2))


class Obj:
    """An object: its SHA-256, size and the path (bytes, relative to the scanned root) it is read from."""

    __slots__ = ("sha256", "size", "path")

    def __init__(self, sha256, size, path):
        self.sha256 = sha256
        self.size = size
        self.path = path


class Member:
    """A member of a part: the object, and the piece of it (``offset`` None: the whole object)."""

    __slots__ = ("obj", "offset", "length")

    def __init__(self, obj, offset=None, length=None):
        self.obj = obj
        self.offset = offset
        self.length = obj.size if length is None else length

    @property
    def name(self):
        suffix = "" if self.offset is None else ".%d" % self.offset
        return "objects/" + self.obj.sha256 + suffix

    @property
    def tar_length(self):
        return BLOCK + padded(self.length)  # names are < 100 bytes: one header block


class Part:
    """Part number ``number``: its ``name``, ``members`` and ``length`` (its exact size in bytes, end blocks
    included: what HEAD answers for a complete upload)."""

    def __init__(self, number):
        self.number = number
        self.name = "part-%05d.tar" % number
        self.members = []
        self.bytes = 0  # object bytes

    def add(self, member):
        self.members.append(member)
        self.bytes += member.length

    @property
    def length(self):
        return sum(member.tar_length for member in self.members) + len(END)


def report_objects(report):
    """{sha256: Obj} of a report's objects: regular files with a ``sha256`` (added and modified ones), the first
    record of a content giving its path. A record with a malformed sha256 or size is an error."""
    objects = {}
    for record in report.files():
        sha = record.get("sha256")
        if record.get("type") != "file" or sha is None or record.get("change") == "deleted":
            continue
        size = record.get("size")
        if not isinstance(sha, str) or not SHA256.match(sha) or not isinstance(size, int) or size < 0:
            raise FerryError("%s: a file record has a bad sha256 or size: %s"
                             % (report.name, readable(os.fsdecode(name_of(record)))))
        if sha not in objects:
            objects[sha] = Obj(sha, size, _relative(report, name_of(record)))
    return objects


def _relative(report, path):
    """A report path, refused when it could lead out of the source root (absolute, ``..``, NUL, empty)."""
    if not path or path.startswith(b"/") or b"\0" in path or b".." in path.split(b"/"):
        raise FerryError("%s: a file record's path is not relative to the scanned root: %s"
                         % (report.name, readable(os.fsdecode(path))))
    return path


def plan_parts(objects, known, part_size):
    """The parts of the objects (``{sha256: Obj}``) whose SHA-256 is not in ``known``, in SHA-256 order."""
    parts = []
    current = None
    for sha in sorted(objects):
        if sha in known:
            continue
        obj = objects[sha]
        pieces = [(None, obj.size)] if obj.size <= part_size else [
            (offset, min(part_size, obj.size - offset)) for offset in range(0, obj.size, part_size)]
        for offset, length in pieces:
            if current is None or current.bytes + length > part_size:
                current = Part(len(parts) + 1)
                parts.append(current)
            current.add(Member(obj, offset, length))
    return parts


def index_lines(parts, scan=None):
    """The index line of each object of ``parts`` (``sha256``, ``size``, ``part``; ``pieces`` as
    ``[offset, length, part]`` for a split object; ``scan`` when given), in SHA-256 order."""
    line = None
    for part in parts:
        for member in part.members:
            if line is not None and line["sha256"] != member.obj.sha256:
                yield line
                line = None
            if line is None:
                line = {"sha256": member.obj.sha256, "size": member.obj.size, "part": part.name}
                if scan is not None:
                    line["scan"] = scan
            if member.offset is not None:
                line.setdefault("pieces", []).append([member.offset, member.length, part.name])
    if line is not None:
        yield line


class Changed(FerryError):
    """A file's content is no longer what the report says."""


class ObjectReader:
    """Makes the bytes of parts from the files under ``src_root``, checking each object's SHA-256 on the way.

    A split object is checked when its last piece has been read: with the digest carried from its earlier
    pieces when they were read by this reader, else after reading the part of the file before the piece.
    ``progress(n)``: told of every n object bytes read.
    """

    def __init__(self, src_root, chunk=CHUNK, progress=None):
        self.root = os.fsencode(src_root)
        self.chunk = chunk
        self.progress = progress
        self._carried = {}  # sha256 -> (offset reached, digest) of a split object under way

    def part_chunks(self, members):
        """The bytes of a tar of ``members``, in chunks: per member its header, content and padding; then the
        end-of-archive blocks."""
        for member in members:
            yield from self.member_chunks(member)
        yield END

    def member_chunks(self, member, name=None):
        yield header(name or member.name, tarfile.REGTYPE, MEMBER_META, member.length)
        yield from self.content(member)
        pad = padded(member.length) - member.length
        if pad:
            yield b"\0" * pad

    def content(self, member):
        obj = member.obj
        path = os.path.join(self.root, obj.path)
        offset = member.offset or 0
        end = offset + member.length
        fd = self._open(path, obj)
        try:
            digest = self._digest_before(fd, path, obj, offset)
            for data in self._read(fd, path, obj, offset, end):
                digest.update(data)
                yield data
                if self.progress is not None:
                    self.progress(len(data))
            if end < obj.size:
                self._carried[obj.sha256] = (end, digest)
                return
            self._carried.pop(obj.sha256, None)
            if os.pread(fd, 1, end) or digest.hexdigest() != obj.sha256:
                raise self._changed(path, "its SHA-256 differs")
        finally:
            os.close(fd)

    def _digest_before(self, fd, path, obj, offset):
        carried = self._carried.get(obj.sha256)
        if carried is not None and carried[0] == offset:
            return carried[1].copy()  # a retried part reads the piece again: the carried digest stays as it was
        digest = hashlib.sha256()
        for data in self._read(fd, path, obj, 0, offset):  # earlier pieces another run sent: hashed again
            digest.update(data)
        return digest

    def _read(self, fd, path, obj, position, end):
        while position < end:
            data = os.pread(fd, min(self.chunk, end - position), position)
            if not data:
                raise self._changed(path, "it is shorter than the %d bytes scanned" % obj.size)
            position += len(data)
            yield data

    def _open(self, path, obj):
        try:
            # O_NONBLOCK: a FIFO now at the path must not block the open; never through a final symlink
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise self._changed(path, "it cannot be opened as a file (%s)" % exc.strerror)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != obj.size:
            os.close(fd)
            raise self._changed(path, "it is no longer a regular file of %d bytes" % obj.size)
        return fd

    def _changed(self, path, why):
        return Changed("%s changed since the scan (%s): run host_scan again" % (readable(os.fsdecode(path)), why))


def archive_length(report_size, objects):
    """The exact size of the local overlay archive of a report of ``report_size`` bytes and ``objects``."""
    return (BLOCK + padded(report_size) + sum(BLOCK + padded(obj.size) for obj in objects.values())
            + len(END))


def archive_chunks(report_path, report_sha256, objects, reader, between=None):
    """The bytes of the local overlay archive: ``report.jsonl.gz`` (checked against ``report_sha256`` while it
    is read), then every object whole, in SHA-256 order. ``between(done)`` is called before each object."""
    report = Obj(report_sha256, os.stat(report_path).st_size, os.path.basename(os.fsencode(report_path)))
    report_reader = ObjectReader(os.path.dirname(os.path.abspath(report_path)), reader.chunk)
    yield from report_reader.member_chunks(Member(report), REPORT_MEMBER)
    for done, sha in enumerate(sorted(objects)):
        if between is not None:
            between(done)
        yield from reader.member_chunks(Member(objects[sha]))
    yield END


def write_archive(dest, chunks):
    """Write the archive ``chunks`` yields to ``dest``: under a temporary name beside it, synced, renamed. On
    any failure nothing is left but what ``dest`` was."""
    staged = StagedFile.open(dest)
    try:
        for chunk in chunks:
            staged.write(chunk)
        staged.set_mode(0o600)
        staged.commit()
    except BaseException:
        staged.abort()
        raise
