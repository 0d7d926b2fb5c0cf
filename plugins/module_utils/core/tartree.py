# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tar archives written as streams: headers as GNU tar writes them, directory trees walked lazily.

What ``tar cf`` (and Python's ``tarfile``, which zenbackup uses for its nested archives) would write, member by
member, into any forward-only stream: a tar nested in a gzip stream must announce its size before its data, so
:class:`TreeArchive` walks its tree once to size it and again to write it, holding one directory's names at a
time, never the listing of the whole tree.

Names are file system names as they are (a newline, bytes that are no UTF-8: written back as the same bytes); a
name over 100 bytes gets GNU tar's ``././@LongLink`` header. Sockets, FIFOs and devices are left out (reading a
FIFO would block; zenbackup's ``tarfile`` skips sockets too) and reported.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import grp
import os
import pwd
import stat
import tarfile

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError, readable

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE  # tar pads an archive to whole records of 20 blocks
CHUNK = 1 << 20
END = b"\0" * (2 * BLOCK)
OUTSIDE_POLICIES = ("follow", "skip", "fail")
_LONG = 100  # GNU tar: longer names (and link targets) go into a ././@LongLink header before the member's


def padded(size):
    """``size`` rounded up to whole 512-byte blocks."""
    return -(-size // BLOCK) * BLOCK


def archive_size(body):
    """The size of a tar whose members take ``body`` bytes: the two end blocks, then padding to a record."""
    return -(-(body + len(END)) // RECORD) * RECORD


class Meta:
    """What a header says of a member that is no file on disk (a file made for the archive)."""

    def __init__(self, mode, mtime, uid=None, gid=None):
        self.st_mode = mode
        self.st_mtime = mtime
        self.st_uid = os.getuid() if uid is None else uid
        self.st_gid = os.getgid() if gid is None else gid


_NAMES = {}


def _owner_name(kind, number):
    """User or group name of an id (cached; empty when the id has none, as tar writes it)."""
    key = (kind, number)
    if key not in _NAMES:
        try:
            _NAMES[key] = pwd.getpwuid(number).pw_name if kind == "u" else grp.getgrgid(number).gr_name
        except KeyError:
            _NAMES[key] = ""
    return _NAMES[key]


def header(name, kind, meta, size=0, linkname=""):
    """The header bytes of a member: ``kind`` is ``tarfile.DIRTYPE``, ``REGTYPE`` or ``SYMTYPE``; ``meta`` a stat
    result (or :class:`Meta`) giving mode, owner and mtime."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = stat.S_IMODE(meta.st_mode)
    info.uid, info.gid = meta.st_uid, meta.st_gid
    info.uname, info.gname = _owner_name("u", meta.st_uid), _owner_name("g", meta.st_gid)
    info.mtime = int(meta.st_mtime)
    info.size = size if kind == tarfile.REGTYPE else 0
    info.linkname = linkname
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


def header_size(name, kind, linkname=""):
    """len(header(...)) without building it: 512, plus a long-name header and its blocks for a name (a directory's
    with its trailing ``/``) or link target over 100 bytes."""
    if kind == tarfile.DIRTYPE and not name.endswith("/"):
        name += "/"
    size = BLOCK
    for text in (name, linkname):
        length = len(text.encode("utf-8", "surrogateescape"))
        if length > _LONG:
            size += BLOCK + padded(length + 1)
    return size


class Entry:
    """One member of a tree: its name in the archive, its path, kind, stat result and link target."""

    __slots__ = ("name", "path", "kind", "stat", "linkname")

    def __init__(self, name, path, kind, st, linkname=""):
        self.name = name
        self.path = path
        self.kind = kind
        self.stat = st
        self.linkname = linkname

    @property
    def size(self):
        return self.stat.st_size if self.kind == tarfile.REGTYPE else 0

    def length(self):
        """Bytes the member takes in the archive: header, data, padding."""
        return header_size(self.name, self.kind, self.linkname) + padded(self.size)


class TreeWalk:
    """The members of the tree at ``root``, named ``arcname/...``: a directory before what it holds, names sorted.

    ``follow``: follow symlinks as ``tar -h`` does (and zenbackup's ``dereference``): a link is archived as what it
    points to. A link to a directory already being walked (a loop) is left out; so is a dangling one. A link whose
    target lies outside every directory of ``inside`` (real paths: ``$ZENHOME``, the tree's own root) is followed,
    left out, or refused, as ``outside`` says (:data:`OUTSIDE_POLICIES`). Without ``follow`` a link is archived as
    a link. ``report(kind, text)``: told of what is left out (``skipped``) and of links followed outside
    (``outside``); None on a second walk of the same tree.
    """

    def __init__(self, root, arcname, follow=False, inside=(), outside="follow", report=None):
        self.root = root
        self.arcname = arcname
        self.follow = follow
        self.inside = tuple(os.path.join(os.path.realpath(path), "") for path in inside)
        self.outside = outside
        self.report = report or (lambda kind, text: None)

    def __iter__(self):
        try:
            top = os.stat(self.root)
        except OSError as exc:
            raise FerryError("cannot read %s: %s" % (readable(self.root), exc.strerror))
        if not stat.S_ISDIR(top.st_mode):
            raise FerryError("%s is not a directory" % readable(self.root))
        yield Entry(self.arcname, self.root, tarfile.DIRTYPE, top)
        key = (top.st_dev, top.st_ino)
        ancestors = {key}
        stack = [(self.root, self.arcname, self._names(self.root), key)]
        while stack:
            path, arcname, names, key = stack[-1]
            name = next(names, None)
            if name is None:
                stack.pop()
                ancestors.discard(key)
                continue
            entry = self._entry(os.path.join(path, name), arcname + "/" + name, ancestors)
            if entry is None:
                continue
            yield entry
            if entry.kind == tarfile.DIRTYPE:
                key = (entry.stat.st_dev, entry.stat.st_ino)
                ancestors.add(key)
                stack.append((entry.path, entry.name, self._names(entry.path), key))

    def _names(self, directory):
        try:
            return iter(sorted(os.listdir(directory)))
        except OSError as exc:
            raise FerryError("cannot list %s: %s" % (readable(directory), exc.strerror))

    def _entry(self, path, name, ancestors):
        try:
            st = os.lstat(path)
        except FileNotFoundError:  # removed since its directory was listed
            self.report("skipped", "%s vanished while it was archived" % readable(path))
            return None
        linkname = ""
        if stat.S_ISLNK(st.st_mode):
            if not self.follow:
                return Entry(name, path, tarfile.SYMTYPE, st, os.readlink(path))
            st = self._followed(path)
            if st is None:
                return None
        if stat.S_ISDIR(st.st_mode):
            if (st.st_dev, st.st_ino) in ancestors:
                self.report("skipped", "%s: file system loop (a link to a directory that holds it), left out"
                            % readable(path))
                return None
            return Entry(name, path, tarfile.DIRTYPE, st)
        if stat.S_ISREG(st.st_mode):
            return Entry(name, path, tarfile.REGTYPE, st, linkname)
        self.report("skipped", "%s is a socket, FIFO or device: left out" % readable(path))
        return None

    def _followed(self, path):
        """The stat of what the link ``path`` points to, or None when it is left out."""
        try:
            st = os.stat(path)
        except OSError:
            self.report("skipped", "%s is a dangling symlink: left out" % readable(path))
            return None
        real = os.path.realpath(path)
        if self.inside and not any((real + "/").startswith(root) for root in self.inside):
            if self.outside == "fail":
                raise FerryError("%s is a symlink to %s, outside %s: refusing to archive it (outside_symlinks: "
                                 "follow takes it as tar -h does, skip leaves it out)"
                                 % (readable(path), readable(real), readable(self.inside[0].rstrip("/"))))
            if self.outside == "skip":
                self.report("skipped", "%s is a symlink to %s, outside the Zenoss home: left out"
                            % (readable(path), readable(real)))
                return None
            self.report("outside", "%s -> %s" % (readable(path), readable(real)))
        return st


class TreeArchive:
    """A tar of a tree (a :class:`TreeWalk`, made anew for each walk by ``walk()``), written into a stream.

    :meth:`measure` walks the tree for the archive's exact size; :meth:`write` walks it again and writes exactly
    that many bytes, or raises when the tree changed in between (a file of another size, a new member).
    """

    def __init__(self, walk):
        self._walk = walk  # walk(first): a new TreeWalk; only the first reports what it leaves out
        self.size = None
        self.files = 0

    def measure(self):
        body = 0
        files = 0
        for entry in self._walk(True):
            body += entry.length()
            files += entry.kind == tarfile.REGTYPE
        self.size = archive_size(body)
        self.files = files
        return self.size

    def write(self, out, progress=None):
        """Write the archive into ``out`` (``write(bytes)``); ``progress(n)`` after each piece of file data."""
        if self.size is None:
            self.measure()
        written = 0
        walk = self._walk(False)
        for entry in walk:
            written += entry.length()
            if written + len(END) > self.size:
                raise _changed(entry.path)
            out.write(header(entry.name, entry.kind, entry.stat, entry.size, entry.linkname))
            if entry.kind == tarfile.REGTYPE:
                copy_exactly(entry.path, entry.stat.st_size, out, progress, follow=walk.follow)
                out.write(b"\0" * (padded(entry.size) - entry.size))
        if archive_size(written) != self.size:
            raise _changed(walk.root)
        out.write(b"\0" * (self.size - written))


def _changed(path):
    return FerryError("%s changed while it was archived (files added, removed or resized): stop Zenoss "
                      "(zenoss stop) before the export, as export4 does, and run it again" % readable(path))


def copy_exactly(path, size, out, progress=None, follow=False):
    """Copy the file at ``path``, which must hold ``size`` bytes, into ``out``; a file of another size (it changed
    since it was measured) is an error."""
    flags = os.O_RDONLY | (0 if follow else getattr(os, "O_NOFOLLOW", 0))
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _changed(path)
        raise FerryError("cannot read %s: %s" % (readable(path), exc.strerror))
    with os.fdopen(fd, "rb", buffering=0) as handle:
        if os.fstat(fd).st_size != size:
            raise _changed(path)
        left = size
        while left:
            data = handle.read(min(CHUNK, left))
            if not data:
                raise _changed(path)
            out.write(data)
            left -= len(data)
            if progress is not None:
                progress(len(data))
