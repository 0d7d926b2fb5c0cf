# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The root overlay_apply writes to, reached only through directory descriptors.

Report paths are checked (:func:`check_name`: relative, no ``..``, no NUL), every directory on a path is opened
with ``O_NOFOLLOW | O_DIRECTORY`` from the root down (:class:`Tree`: a symlink met on the way is refused, never
followed), and a file is written under a hidden name in its directory, synced and renamed over its path
(:class:`StagedEntry`; sparse files keep their holes). :class:`ObjectWriter` takes one object from a source to
every path holding it, its sha256 checked.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import hashlib
import os
import stat

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError, readable

CHUNK = 1 << 20
BLOCK = 4096  # sparse files: runs of zero blocks of this size become holes
TMP_SUFFIX = b".ferry-tmp"
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def show(path):
    """A relative path (bytes) fit for a message and a result."""
    return readable(os.fsdecode(path))


# -- names ---------------------------------------------------------------------------------------------------
def check_name(path, what="path"):
    """Refuse a report path that could leave the root: absolute, ``..``, NUL, empty or ``.`` components."""
    if not path:
        raise FerryError("the report has an empty %s: refused" % what)
    if b"\0" in path:
        raise FerryError("the report's %s %s holds a NUL byte: refused" % (what, show(path)))
    if path.startswith(b"/"):
        raise FerryError("the report's %s %s is absolute: refused (paths are relative to the root)"
                         % (what, show(path)))
    parts = path.split(b"/")
    if b".." in parts:
        raise FerryError("the report's %s %s goes up with '..': refused" % (what, show(path)))
    if b"" in parts or b"." in parts:
        raise FerryError("the report's %s %s is not a normalised relative path: refused" % (what, show(path)))
    return parts


def ancestors(path):
    """``a``, ``a/b`` for ``a/b/c``."""
    position = path.find(b"/")
    while position != -1:
        yield path[:position]
        position = path.find(b"/", position + 1)


# -- the tree under root, through directory descriptors ----------------------------------------------------
class Tree:
    """The target root, reached only through directory descriptors: a symlink on a path is never followed.

    ``dry``: nothing is created (check mode), a missing directory reads as empty.
    """

    def __init__(self, root, dry=False):
        self.root = root
        self.dry = dry
        self._cached = None  # (relative dir, fd): files come grouped by directory in walk order
        if not os.path.isdir(root):
            if dry:
                self.root_fd = None
                return
            os.makedirs(root, 0o755)
        self.root_fd = os.open(root, DIR_FLAGS)

    def close(self):
        self._drop_cache()
        if self.root_fd is not None:
            os.close(self.root_fd)
            self.root_fd = None

    def _drop_cache(self):
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None

    def parent(self, path, create=False):
        """``(dir fd, name)`` of ``path``'s parent, or ``(None, name)`` when a directory on the way is missing and
        not created. The fd belongs to the tree (do not close it)."""
        directory, _slash, name = path.rpartition(b"/")
        if self._cached is not None and self._cached[0] == directory:
            return self._cached[1], name
        fd = self._open_dir(directory, create)
        if fd is None:
            return None, name
        self._drop_cache()
        self._cached = (directory, fd)
        return fd, name

    def _open_dir(self, directory, create):
        if self.root_fd is None:
            return None
        fd = os.dup(self.root_fd)
        done = []
        for part in directory.split(b"/") if directory else ():
            done.append(part)
            try:
                try:
                    child = os.open(part, DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        os.close(fd)
                        return None
                    os.mkdir(part, 0o755, dir_fd=fd)
                    child = os.open(part, DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                os.close(fd)
                raise self._path_error(b"/".join(done), exc)
            os.close(fd)
            fd = child
        return fd

    def _path_error(self, where, exc):
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            kind = "a symlink" if self.is_link(where) else "not a directory"
            return FerryError("%s in %s is %s: refused (nothing is written through it)"
                              % (show(where), self.root, kind))
        return FerryError("cannot open %s in %s: %s" % (show(where), self.root, exc.strerror))

    def is_link(self, path):
        info = self.lstat(path)
        return info is not None and stat.S_ISLNK(info.st_mode)

    def lstat(self, path):
        """The path's own stat (never followed), None when it or a directory on the way is missing."""
        try:
            fd, name = self.parent(path)
        except FerryError:
            return None
        if fd is None:
            return None
        try:
            return os.stat(name, dir_fd=fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def check_parents(self, path, checked):
        """Refuse ``path`` when a directory on its way in the root is a symlink or not a directory. ``checked``:
        the directories proven already (a set of relative paths)."""
        for above in ancestors(path):
            if above in checked:
                continue
            info = self.lstat(above)
            if info is None:
                return  # missing: nothing below it exists, it will be created
            if not stat.S_ISDIR(info.st_mode):
                kind = "a symlink" if stat.S_ISLNK(info.st_mode) else "not a directory"
                raise FerryError("%s: %s in %s is %s: refused (nothing is written through it)"
                                 % (show(path), show(above), self.root, kind))
            checked.add(above)

    def open_dir(self, directory):
        """An fd of its own on ``directory`` (created with its parents unless dry), for a file written later."""
        fd = self._open_dir(directory, not self.dry)
        if fd is None:
            raise FerryError("%s is missing in %s" % (show(directory), self.root))
        return fd

    def open_file(self, path):
        """A descriptor on the regular file at ``path`` (never through a symlink), None when missing."""
        fd, name = self.parent(path)
        if fd is None:
            return None
        try:
            return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), dir_fd=fd)
        except (FileNotFoundError, NotADirectoryError):
            return None


def kind_of(info):
    if stat.S_ISREG(info.st_mode):
        return "file"
    if stat.S_ISDIR(info.st_mode):
        return "dir"
    if stat.S_ISLNK(info.st_mode):
        return "symlink"
    return "other"


def file_sha256(tree, path):
    fd = tree.open_file(path)
    if fd is None:
        return None
    digest = hashlib.sha256()
    try:
        for data in iter(lambda: os.read(fd, CHUNK), b""):
            digest.update(data)
    finally:
        os.close(fd)
    return digest.hexdigest()


def lstat_at(fd, name):
    try:
        return os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


# -- writing one file ---------------------------------------------------------------------------------------
def temp_name(name):
    """The hidden temporary name of ``name`` in its directory (a short fixed one when the name is long)."""
    if len(name) + len(TMP_SUFFIX) + 1 <= 255:
        return b"." + name + TMP_SUFFIX
    return b".ferry-" + hashlib.sha256(name).hexdigest()[:24].encode("ascii") + TMP_SUFFIX


def remove_entry(dir_fd, name, path, root, keep_full=False):
    """Remove whatever is at ``name`` (never followed); an empty directory too. A full one is refused, or with
    ``keep_full`` left there (False returned)."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        try:
            os.rmdir(name, dir_fd=dir_fd)
        except OSError as exc:
            if keep_full and exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                return False
            raise FerryError("%s in %s is a directory that is not empty, where the report has no directory: "
                             "refused (%s)" % (show(path), root, exc.strerror))
    return True


class StagedEntry:
    """One regular file of the root written under a hidden name in its directory, then renamed over ``path``.

    ``sparse``: runs of zero blocks are skipped (holes) and the size set at the end by truncation."""

    def __init__(self, tree, path, sparse=False):
        self.path = path
        self.root = tree.root
        directory, _slash, self.name = path.rpartition(b"/")
        self.dir_fd = tree.open_dir(directory)
        self.temp = temp_name(self.name)
        self.sparse = sparse
        try:
            remove_entry(self.dir_fd, self.temp, path, tree.root)  # left by a killed run
            self.fd = os.open(self.temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600,
                              dir_fd=self.dir_fd)
        except OSError as exc:
            os.close(self.dir_fd)
            raise write_error(exc, path, tree.root)

    def write_at(self, offset, data):
        try:
            if self.sparse:
                _write_holes(self.fd, offset, data)
            else:
                _write_all(self.fd, offset, data)
        except OSError as exc:
            raise write_error(exc, self.path, self.root)

    def copy_from(self, fd, size):
        """The content of the finished temporary file ``fd`` (``size`` bytes), for another path of one object."""
        offset = 0
        while offset < size:
            data = os.pread(fd, min(CHUNK, size - offset), offset)
            if not data:
                raise FerryError("%s: the copy source ended early" % show(self.path))
            self.write_at(offset, data)
            offset += len(data)

    def publish(self, size, owner, mode, mtime_ns):
        """Size, fsync, owner, mode (after chown: chown clears setuid), mtime, then the rename into place."""
        try:
            os.ftruncate(self.fd, size)
            os.fsync(self.fd)
            os.fchown(self.fd, *owner)
            os.fchmod(self.fd, mode)
            if mtime_ns is not None:
                os.utime(self.fd, ns=(mtime_ns, mtime_ns))
            make_room(self.dir_fd, self.name, self.path, self.root)
            os.rename(self.temp, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        except OSError as exc:
            self.abort()
            raise write_error(exc, self.path, self.root)
        self._close()

    def abort(self):
        if self.fd is not None:
            try:
                os.unlink(self.temp, dir_fd=self.dir_fd)
            except OSError:
                pass
        self._close()

    def _close(self):
        if self.fd is not None:
            os.close(self.fd)
            os.close(self.dir_fd)
            self.fd = None


def make_room(dir_fd, name, path, root):
    """A directory where a file or a link goes is removed when empty (a rename cannot replace it)."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        remove_entry(dir_fd, name, path, root)


def _write_all(fd, offset, data):
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _write_holes(fd, offset, data):
    """Write ``data`` at ``offset`` leaving a hole for every whole zero block (aligned on the file's blocks)."""
    start = 0
    position = 0
    size = len(data)
    while position < size:
        end = min(size, position + BLOCK - (offset + position) % BLOCK)
        if end - position == BLOCK and data.count(0, position, end) == BLOCK:
            if start < position:
                _write_all(fd, offset + start, data[start:position])
            start = end
        position = end
    if start < size:
        _write_all(fd, offset + start, data[start:])


def write_error(exc, path, root):
    if exc.errno == errno.ENOSPC:
        return FerryError("disk full while writing %s in %s" % (show(path), root))
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return FerryError("%s in %s: a symlink or a file is in the way (%s): refused"
                          % (show(path), root, exc.strerror))
    return FerryError("cannot write %s in %s: %s" % (show(path), root, exc.strerror))


class ObjectWriter:
    """One object from the source into the staged file of its first path, sha256 checked, then copied to the
    other paths of the same content."""

    def __init__(self, sha, size, targets):
        self.sha = sha
        self.size = size
        self.targets = targets  # entries; the first one receives the stream
        self.first = None
        self.received = 0
        self.hashed = 0
        self.digest = hashlib.sha256()

    def start(self, tree):
        self.first = StagedEntry(tree, self.targets[0].path, self.targets[0].sparse)
        return self

    def feed(self, offset, reader, length, progress):
        """``length`` bytes of the object at ``offset``; True once every byte came."""
        position, end = offset, offset + length
        if offset < 0 or end > self.size:  # a damaged or hostile source: never write past the report's size
            raise FerryError("object %s: the source has %d byte(s) at offset %d, past its %d byte(s) in the "
                             "report: refused" % (self.sha, length, offset, self.size))
        while position < end:
            data = reader.read(min(CHUNK, end - position))
            if not data:
                raise FerryError("object %s ends early in the source" % self.sha)
            self.first.write_at(position, data)
            if position == self.hashed:
                self.digest.update(data)
                self.hashed += len(data)
            position += len(data)
            progress(len(data))
        self.received += length
        return self.received >= self.size

    def finish(self, tree, owners):
        """Check the sha256 (pieces that came out of order are read back), then publish every path."""
        while self.hashed < self.size:
            data = os.pread(self.first.fd, min(CHUNK, self.size - self.hashed), self.hashed)
            if not data:
                break
            self.digest.update(data)
            self.hashed += len(data)
        if self.digest.hexdigest() != self.sha or self.hashed != self.size:
            self.first.abort()
            raise FerryError("object %s for %s does not match its sha256 (the source has %s): the source is "
                             "damaged; refused" % (self.sha, show(self.targets[0].path), self.digest.hexdigest()))
        for entry in self.targets[1:]:
            other = StagedEntry(tree, entry.path, entry.sparse)
            other.copy_from(self.first.fd, self.size)
            other.publish(self.size, owners.ids(entry), entry.mode, entry.mtime_ns)
        entry = self.targets[0]
        self.first.publish(self.size, owners.ids(entry), entry.mode, entry.mtime_ns)

    def abort(self):
        if self.first is not None:
            self.first.abort()
