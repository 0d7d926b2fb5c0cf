# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Streaming archive readers and a safe tar extractor.

Everything reads forward once: a digest is computed while the bytes go by, gzip is inflated with
its CRC and length checked, and tar members are written as they arrive, so an archive of any size
is processed in bounded memory and a single pass.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import hashlib
import os
import posixpath
import stat
import tarfile
import zlib

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import (
    FerryError,
    free_bytes,
    human_bytes,
)

CHUNK = 1 << 20
NUL_BLOCK = b"\0" * tarfile.BLOCKSIZE
# Free space is re-read from the file system after this many bytes written (statvfs per file is slow).
SPACE_RECHECK_BYTES = 64 << 20


class HashingReader:
    """A read-only file object that digests every byte read through it."""

    def __init__(self, raw, algorithm="md5"):
        self.raw = raw
        self.digest = hashlib.new(algorithm)
        self.bytes_read = 0

    def read(self, size=-1):
        data = self.raw.read(size)
        self.digest.update(data)
        self.bytes_read += len(data)
        return data

    def drain(self):
        """Read to the end so the digest covers the whole stream."""
        while self.read(CHUNK):
            pass

    def hexdigest(self):
        return self.digest.hexdigest()


class Gunzip:
    """Push-style gzip inflater that checks every member's CRC and length (concatenated members too).

    ``tarfile``'s own ``r|gz`` does not check the trailer CRC and ``gzip.GzipFile`` wants a seekable
    file for some calls: this works on any forward stream.
    """

    def __init__(self, name):
        self.name = name
        self._inflater = zlib.decompressobj(31)
        self._member_ended = False
        self.bytes_out = 0

    def pieces(self, data, limit=CHUNK):
        """Inflate ``data``, yielding at most ``limit`` bytes at a time (bounded even for a gzip bomb)."""
        pending = data
        while pending:
            if self._member_ended:
                pending = pending.lstrip(b"\0")  # zero padding between or after members, as gzip skips it
                if not pending:
                    return
                self._inflater = zlib.decompressobj(31)
                self._member_ended = False
            try:
                out = self._inflater.decompress(pending, limit)
            except zlib.error as exc:
                raise FerryError("%s: corrupt gzip data (%s)" % (self.name, exc))
            if self._inflater.eof:
                # What follows the member is all in unused_data; when the output limit cut this call,
                # unconsumed_tail may hold the same bytes again: feeding both would inflate them twice.
                pending = self._inflater.unused_data
                self._member_ended = True
            else:
                pending = self._inflater.unconsumed_tail
            if out:
                self.bytes_out += len(out)
                yield out

    def close(self):
        if not self._member_ended:
            raise FerryError("%s: gzip data is truncated (the stream ends before its trailer)" % self.name)


class GzipReader:
    """A read-only file object inflating the gzip stream read forward from ``raw``."""

    def __init__(self, raw, name):
        self.raw = raw
        self._gunzip = Gunzip(name)
        self._pieces = self._generate()
        self._buffer = b""

    @property
    def bytes_out(self):
        return self._gunzip.bytes_out

    def read(self, size=-1):
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(CHUNK), b""))
        parts, have = [self._buffer], len(self._buffer)
        while have < size:
            piece = next(self._pieces, b"")
            if not piece:
                break
            parts.append(piece)
            have += len(piece)
        data = b"".join(parts)
        self._buffer = data[size:]
        return data[:size]

    def drain(self):
        while self.read(CHUNK):
            pass

    def _generate(self):
        while True:
            chunk = self.raw.read(CHUNK)
            if not chunk:
                self._gunzip.close()
                return
            yield from self._gunzip.pieces(chunk)


class GzipCheckingReader:
    """Passes compressed bytes through unchanged while inflating them, so corruption shows now."""

    def __init__(self, raw, name):
        self.raw = raw
        self._gunzip = Gunzip(name)

    def read(self, size=-1):
        data = self.raw.read(size)
        if data:
            for _piece in self._gunzip.pieces(data):
                pass
        else:
            self._gunzip.close()
        return data


class MemberReader:
    """A member's data; a short read becomes an error naming the archive that is cut short."""

    def __init__(self, tar, member, archive):
        self._raw = tar.extractfile(member)
        self._what = "%s is truncated or corrupt: member %s ends early" % (archive, member.name)

    def read(self, size=-1):
        try:
            return self._raw.read(size)
        except (tarfile.TarError, EOFError) as exc:
            raise FerryError("%s (%s)" % (self._what, exc))


def open_member(tar, member, archive):
    return MemberReader(tar, member, archive)


def open_tar_stream(fileobj, name):
    """A forward-only tar reader over ``fileobj`` (any object with ``read``)."""
    try:
        return tarfile.open(fileobj=fileobj, mode="r|", bufsize=CHUNK)
    except tarfile.TarError as exc:
        raise FerryError("%s is not a readable tar archive (%s)" % (name, exc))


def iter_members(tar, name):
    """Iterate a tar's members, turning format errors into a message naming the archive.

    The archive must end with its end-of-archive block: tarfile ends a listing without a word on a zero block, on
    a cut (at or inside a header) and on a corrupt header alike, which would pass a truncated archive for a
    complete one with members missing (GNU tar lists an archive cut at a member boundary without an error too).
    """
    headers = _watch_headers(tar)
    while True:
        try:
            member = tar.next()
        except tarfile.TarError as exc:
            raise FerryError("%s: the tar archive is truncated or corrupt (%s)" % (name, exc))
        except EOFError:
            raise FerryError("%s: the tar archive is truncated (unexpected end of data)" % name)
        if member is None:
            _check_end(tar, name, headers[-1] if headers else None)
            return
        yield member


def _watch_headers(tar):
    """Keep the last header block ``tar`` reads (in a list returned), through a TarInfo subclass of its own."""
    seen = []

    class Watched(tar.tarinfo):  # pylint: disable=too-few-public-methods
        __slots__ = ()

        @classmethod
        def frombuf(cls, buf, encoding, errors):
            seen[:] = [buf]
            return super().frombuf(buf, encoding, errors)

    tar.tarinfo = Watched
    return seen


def _check_end(tar, name, block):
    """Accept the end only on a zero block followed by zeros or nothing (a lone zero block, as GNU tar accepts: no
    member can be missing after it). ``block``: the header block the listing ended on; None for the first one,
    read when the tar was opened (tarfile raises there on anything but a zero block)."""
    where = tar.offset
    if block is None:
        block = NUL_BLOCK
    if not block:
        raise FerryError("%s is truncated: it ends at byte %d after a member, without the tar end-of-archive "
                         "block (members may be missing)" % (name, where))
    if len(block) < tarfile.BLOCKSIZE:
        raise FerryError("%s is truncated: it ends inside the header block at byte %d" % (name, where))
    if block != NUL_BLOCK:
        raise FerryError("%s is corrupt: the block at byte %d is neither a member header (bad checksum or field) "
                         "nor the end of the archive" % (name, where))
    try:
        after = tar.fileobj.read(tarfile.BLOCKSIZE)
    except (tarfile.TarError, EOFError) as exc:
        raise FerryError("%s: the tar archive is truncated or corrupt after its end block (%s)" % (name, exc))
    if after.strip(b"\0"):
        raise FerryError("%s is corrupt: a lone zero block at byte %d is followed by data, not by the second "
                         "end-of-archive block (members after it would be lost)" % (name, where))


def member_path(member, archive):
    """The member's normalised relative path; absolute paths and ``..`` are refused."""
    name = member.name
    if name.startswith("/") or posixpath.isabs(name):
        raise FerryError("%s: member %r has an absolute path; refusing to extract it" % (archive, name))
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise FerryError("%s: member %r points outside the destination (..); refusing to extract it"
                         % (archive, name))
    return "/".join(parts)


class SafeExtractor:
    """Writes tar members under ``root``, refusing anything that could escape it.

    Refused: absolute paths, ``..``, symlinks and hard links leading outside ``root``, paths going
    through a symlink from the archive, device files and FIFOs. setuid/setgid/sticky bits are
    dropped and owners are not restored. With ``dry_run`` every check runs and nothing is written.
    """

    def __init__(self, root, dry_run=False, min_free=0):
        self.root = root
        self.dry_run = dry_run
        self.min_free = min_free
        self._symlinks = set()
        self._files = set()
        self._free = None
        self._since_check = 0
        self.bytes_written = 0
        self.files_written = 0

    def extract_member(self, tar, member, archive, under="", progress=None):
        """Check and write one member; returns its path relative to ``root``."""
        relative = member_path(member, archive)
        if not relative:
            return relative
        if under:
            relative = under + "/" + relative
        self._refuse_through_symlink(relative, archive, member.name)
        if member.isdir():
            self._make_dir(relative, member)
        elif member.isreg():
            source = open_member(tar, member, archive)
            self.write_file(relative, source, member.size, _safe_mode(member.mode), member.mtime, progress)
        elif member.issym():
            self._make_symlink(relative, member, archive)
        elif member.islnk():
            self._make_hardlink(relative, member, archive, under)
        elif member.ischr() or member.isblk():
            raise FerryError("%s: member %r is a device file; refusing to extract it" % (archive, member.name))
        elif member.isfifo():
            raise FerryError("%s: member %r is a FIFO; refusing to extract it" % (archive, member.name))
        else:
            raise FerryError("%s: member %r has an unsupported type %r" % (archive, member.name, member.type))
        return relative

    def write_file(self, relative, source, size, mode=0o644, mtime=None, progress=None):
        """Copy ``size`` bytes of ``source`` to ``root/relative`` (or only read them in dry run)."""
        self._files.add(relative)
        if self.dry_run:
            _copy(source, None, progress)
            return
        self._reserve(size, relative)
        target = os.path.join(self.root, relative)
        self._ensure_parent(target)
        _unlink_if_exists(target)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with os.fdopen(fd, "wb") as handle:
                written = _copy(source, handle, progress)
        except OSError as exc:
            raise _write_error(exc, target)
        os.chmod(target, mode)
        if mtime is not None:
            os.utime(target, (mtime, mtime))
        self.bytes_written += written
        self.files_written += 1

    def make_dir(self, relative, mode=0o755):
        if not self.dry_run:
            path = os.path.join(self.root, relative)
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as exc:
                raise _write_error(exc, path)
            os.chmod(path, mode)

    # -- member kinds ---------------------------------------------------------------------------
    def _make_dir(self, relative, member):
        self.make_dir(relative, _safe_mode(member.mode) | stat.S_IRWXU)

    def _make_symlink(self, relative, member, archive):
        target = member.linkname
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(relative), target))
        if posixpath.isabs(target) or resolved == ".." or resolved.startswith("../"):
            raise FerryError("%s: symlink %r -> %r points outside the destination; refusing to extract it"
                             % (archive, member.name, target))
        self._symlinks.add(relative)
        if not self.dry_run:
            path = os.path.join(self.root, relative)
            self._ensure_parent(path)
            _unlink_if_exists(path)
            os.symlink(target, path)

    def _make_hardlink(self, relative, member, archive, under):
        try:
            source = member_path(tarfile.TarInfo(member.linkname), archive)
        except FerryError:
            raise FerryError("%s: hard link %r -> %r points outside the destination; refusing to extract it"
                             % (archive, member.name, member.linkname))
        if under:
            source = under + "/" + source
        if source not in self._files:
            raise FerryError("%s: hard link %r -> %r does not point to a file extracted before it; refusing"
                             % (archive, member.name, member.linkname))
        self._files.add(relative)
        if not self.dry_run:
            path = os.path.join(self.root, relative)
            self._ensure_parent(path)
            _unlink_if_exists(path)
            os.link(os.path.join(self.root, source), path)

    # -- guards ---------------------------------------------------------------------------------
    def _refuse_through_symlink(self, relative, archive, name):
        parts = relative.split("/")
        for end in range(1, len(parts)):
            if "/".join(parts[:end]) in self._symlinks:
                raise FerryError("%s: member %r goes through a symlink from the archive; refusing to extract it"
                                 % (archive, name))

    def _reserve(self, size, relative):
        """Fail before writing a file that cannot fit, keeping ``min_free`` bytes free."""
        if self._free is None or self._since_check >= SPACE_RECHECK_BYTES or size > self._free - self.min_free:
            self._free = free_bytes(self.root)
            self._since_check = 0
        if size > self._free - self.min_free:
            raise FerryError("not enough free space in %s for %s: it needs %s, %s are free and %s must stay free"
                             % (self.root, relative, human_bytes(size), human_bytes(self._free),
                                human_bytes(self.min_free)))
        self._free -= size
        self._since_check += size

    def _ensure_parent(self, path):
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            try:
                os.makedirs(parent)
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise _write_error(exc, parent)


def _copy(source, handle, progress):
    written = 0
    while True:
        data = source.read(CHUNK)
        if not data:
            return written
        if handle is not None:
            handle.write(data)
        written += len(data)
        if progress is not None:
            progress(len(data))


def _safe_mode(mode):
    """Drop setuid/setgid/sticky and keep the owner able to read (and write) what it extracted."""
    return (mode & 0o777) | stat.S_IRUSR | stat.S_IWUSR


def _unlink_if_exists(path):
    try:
        if os.path.islink(path) or os.path.isfile(path):
            os.unlink(path)
    except OSError as exc:
        raise _write_error(exc, path)


def _write_error(exc, path):
    if exc.errno == errno.ENOSPC:
        return FerryError("disk full while writing %s" % path)
    if exc.errno == errno.EDQUOT:
        return FerryError("disk quota exceeded while writing %s" % path)
    return FerryError("cannot write %s: %s" % (path, exc.strerror or exc))
