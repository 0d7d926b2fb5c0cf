# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where overlay_apply (and scan_to_role) read a scan: a local overlay archive or the store.

A source gives ``name``, ``identity()`` (for the step's fingerprint), ``report()`` (a fresh
:class:`~.report.Report` each call; the store's is fetched once), ``size_of(sha256)`` (None when it does not
hold the object), ``pieces(wanted)`` (``(sha256, offset, reader, length)`` of the wanted objects in the order it
reads them, and ``(None, (scan, part), None, 0)`` after each store part) and ``close()``. Every archive member is
checked: only ``report.jsonl.gz`` (a local archive's first) and regular files ``objects/<sha256>``
(``.<offset>`` pieces in store parts).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import tarfile
import tempfile

from ansible_collections.ferry.migrate.plugins.module_utils.core.archive import iter_members, member_path
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.httpclient import redact_url
from ansible_collections.ferry.migrate.plugins.module_utils.scan.overlay import OBJECT_MEMBER, REPORT_MEMBER
from ansible_collections.ferry.migrate.plugins.module_utils.scan.report import read_report
from ansible_collections.ferry.migrate.plugins.module_utils.scan.store import Store

CHUNK = 1 << 20


class Slice:
    """``size`` bytes at ``offset`` of a file descriptor, read forward."""

    def __init__(self, fd, offset, size):
        self.fd = fd
        self.offset = offset
        self.left = size

    def read(self, size=-1):
        size = self.left if size is None or size < 0 else min(size, self.left)
        if size <= 0:
            return b""
        data = os.pread(self.fd, size, self.offset)
        if not data:
            raise FerryError("the overlay archive ends inside a member")
        self.offset += len(data)
        self.left -= len(data)
        return data


def check_member(member, archive, index, pieces=False):
    """A member of an overlay archive or part: ``report.jsonl.gz`` (first, local archives only) or a regular file
    ``objects/<sha256>[.<offset>]``. Returns ``(sha256, offset)``, or ``(None, None)`` for the report."""
    member_path(member, archive)  # absolute names and '..' refused, with the archive named
    kinds = ((member.issym(), "a symlink"), (member.islnk(), "a hard link"),
             (member.ischr() or member.isblk(), "a device file"), (member.isfifo(), "a FIFO"),
             (member.isdir(), "a directory"))
    for found, kind in kinds:
        if found:
            raise FerryError("%s: member %r is %s: an overlay holds only regular files; refused"
                             % (archive, member.name, kind))
    if not member.isreg():
        raise FerryError("%s: member %r has the unsupported type %r; refused" % (archive, member.name, member.type))
    if member.name == REPORT_MEMBER and index == 0 and not pieces:
        return None, None
    match = OBJECT_MEMBER.match(member.name)
    if not match or (match.group(2) is not None and not pieces):
        raise FerryError("%s: member %r is neither %s (first) nor objects/<sha256>%s; refused"
                         % (archive, member.name, REPORT_MEMBER, "[.<offset>]" if pieces else ""))
    return match.group(1), int(match.group(2) or 0)


class LocalArchive:
    """The overlay archive ``scan_upload dest:`` writes: ``report.jsonl.gz`` then ``objects/<sha256>``.

    Its headers are read once (seeking over the data) and every member checked, end-of-archive block included,
    before anything is written; objects are then read at their offsets."""

    def __init__(self, path):
        self.path = path
        self.name = path
        try:
            self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise FerryError("cannot open the overlay archive %s: %s" % (path, exc.strerror))
        self.report_at = None
        self.objects = {}  # sha256 -> (data offset, size)
        try:
            self._index()
        except BaseException:
            self.close()
            raise

    def identity(self):
        info = os.fstat(self.fd)
        return {"src": os.path.abspath(self.path), "size": info.st_size, "mtime_ns": info.st_mtime_ns}

    def _index(self):
        handle = os.fdopen(os.dup(self.fd), "rb")
        with handle:
            try:
                tar = tarfile.open(fileobj=handle, mode="r:")
            except tarfile.TarError as exc:
                raise FerryError("%s is not a readable tar archive (%s)" % (self.path, exc))
            for index, member in enumerate(iter_members(tar, self.path)):
                sha, _offset = check_member(member, self.path, index)
                if sha is None:
                    self.report_at = (member.offset_data, member.size)
                elif sha in self.objects:
                    raise FerryError("%s: object %s is there twice; refused" % (self.path, sha))
                else:
                    self.objects[sha] = (member.offset_data, member.size)
                del tar.members[:]  # headers only matter here: memory stays bounded by the objects index
        if self.report_at is None:
            raise FerryError("%s has no %s as its first member: not an overlay archive" % (self.path, REPORT_MEMBER))

    def report(self):
        return read_report(Slice(self.fd, *self.report_at), "%s:%s" % (self.path, REPORT_MEMBER))

    def size_of(self, sha):
        found = self.objects.get(sha)
        return None if found is None else found[1]

    def pieces(self, wanted):
        """``(sha256, offset, reader, length)`` of the wanted objects, in archive order."""
        for sha, (where, size) in sorted(((sha, self.objects[sha]) for sha in wanted), key=lambda item: item[1]):
            yield sha, 0, Slice(self.fd, where, size), size

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class NoScan(FerryError):
    """The store holds no complete scan of the instance yet: in check mode, the upload a run would make first."""


class StoreSource:
    """A scan in the store (scan_upload ``url``): the report, the content index and the overlay parts."""

    def __init__(self, params):
        self.store = Store(params["url"], params["instance"], params)
        self.name = "%s/%s" % (redact_url(params["url"]).rstrip("/"), params["instance"])
        latest = self.store.latest()
        self.scan = params.get("scan") or (latest or {}).get("scan")
        if not self.scan:
            raise NoScan("%s holds no complete scan (no latest.json): run scan_upload first" % self.name)
        complete = latest if latest and latest.get("scan") == self.scan else self.store.complete(self.scan)
        if not complete:
            raise FerryError("scan %s is not complete in %s (no complete.json): run scan_upload again"
                             % (self.scan, self.name))
        self.report_sha256 = complete.get("report_sha256")
        self.kept = None  # the report, once read
        self.objects = {}  # sha256 -> index line (size, scan, part, pieces)
        for line in self.store.content_index():
            self.objects[line["sha256"]] = line

    def identity(self):
        return {"url": self.name, "scan": self.scan, "report_sha256": self.report_sha256}

    def report(self):
        """The report from one GET: the first call keeps it (compressed, its sha256 checked) in an unlinked
        temporary file that the later calls read again (overlay_apply reads it three or four times)."""
        name = "%s scan %s report" % (self.name, self.scan)
        if self.kept is None:
            self.kept = self._keep_report(name)
        return read_report(Slice(self.kept.fileno(), 0, os.fstat(self.kept.fileno()).st_size), name)

    def _keep_report(self, name):
        try:
            kept = tempfile.TemporaryFile(prefix="ferry-report-")
        except OSError as exc:
            raise FerryError("cannot keep a copy of %s in %s: %s" % (name, tempfile.gettempdir(), exc)) from exc
        try:
            with self.store.open_report(self.scan) as stream:
                checked = _Checked(stream, self.report_sha256, name)
                for data in iter(lambda: checked.read(CHUNK), b""):
                    kept.write(data)
            kept.flush()
        except OSError as exc:
            kept.close()
            raise FerryError("cannot keep a copy of %s in %s: %s" % (name, tempfile.gettempdir(), exc)) from exc
        except BaseException:
            kept.close()
            raise
        return kept

    def size_of(self, sha):
        line = self.objects.get(sha)
        return None if line is None else line.get("size")

    def pieces(self, wanted):
        parts = {}
        for sha in wanted:
            line = self.objects[sha]
            # a split object: ``pieces`` [offset, length, part], the pieces in consecutive parts of one scan
            for part in set(piece[2] for piece in line.get("pieces") or ()) or (line["part"],):
                parts.setdefault((line.get("scan") or self.scan, part), set()).add(sha)
        for (scan, part) in sorted(parts):
            needed = parts[(scan, part)]
            name = "%s scan %s %s" % (self.name, scan, part)
            stream = self.store.open_part(scan, part)
            try:
                tar = _open_stream(stream, name)
                for index, member in enumerate(iter_members(tar, name)):
                    sha, offset = check_member(member, name, index + 1, pieces=True)
                    if sha in needed:
                        yield sha, offset, tar.extractfile(member), member.size
                    del tar.members[:]
            finally:
                stream.close()
            yield None, (scan, part), None, 0  # a part done: the checkpoint records it

    def close(self):
        if self.kept is not None:
            self.kept.close()
            self.kept = None
        self.store.close()


def _open_stream(stream, name):
    try:
        return tarfile.open(fileobj=stream, mode="r|", bufsize=CHUNK)
    except tarfile.TarError as exc:
        raise FerryError("%s is not a readable tar archive (%s)" % (name, exc))


class _Checked:
    """A report stream whose sha256 must be the one latest.json / complete.json names, checked at its end."""

    def __init__(self, raw, expected, name):
        self.raw = raw
        self.expected = expected
        self.name = name
        self.digest = hashlib.sha256()

    def read(self, size=-1):
        data = self.raw.read(size)
        self.digest.update(data)
        if not data and self.expected and self.digest.hexdigest() != self.expected:
            raise FerryError("%s: its sha256 is %s, the store's record says %s: refused"
                             % (self.name, self.digest.hexdigest(), self.expected))
        return data


def open_source(params):
    if params.get("src"):
        return LocalArchive(params["src"])
    return StoreSource(params)
