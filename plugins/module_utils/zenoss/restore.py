# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replace a directory with a subtree of a tar or of another directory, swapped in whole.

What Import4's ``events-index``, ``model-catalog`` and the licence copy do (``rm -rf`` the old directory, then
extract or copy into it), without their window where the directory is gone or half written: the new content is
extracted beside the directory (``.<name>.ferry-tmp-<pid>``) through :class:`SafeExtractor`, then swapped in by
:class:`StagedDir` (one atomic ``renameat2(RENAME_EXCHANGE)`` where the system can; a kill at any point leaves the
old directory or the new one to the next run): a reader sees the old directory or the new one, never a mix.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat
import tarfile

from ansible_collections.ferry.migrate.plugins.module_utils.core.archive import (
    GzipReader,
    SafeExtractor,
    iter_members,
    member_path,
    open_tar_stream,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import (
    FerryError,
    free_bytes,
    human_bytes,
    readable,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.staging import StagedDir
from ansible_collections.ferry.migrate.plugins.module_utils.core.tartree import TreeWalk


class _FileShim:
    """What SafeExtractor asks of a tar (``extractfile``) for members made of a directory's files."""

    @staticmethod
    def extractfile(member):
        return _ClosingReader(member.ferry_path)


class _ClosingReader:
    def __init__(self, path):
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        self._handle = os.fdopen(fd, "rb")

    def read(self, size=-1):
        data = self._handle.read(size)
        if not data or size < 0:
            self._handle.close()
        return data


class IndexRestore:
    """One replacement of ``dest`` by ``src`` (a tar, gzip'd or not, or a directory), or by its subtree ``member``.

    ``owner``: (uid, gid) given to every file (-1 keeps one), or None. ``mode``: the new directory's permissions
    (by default the old one's, else 0755). With ``dry_run`` every member is read and checked, nothing written.
    """

    def __init__(self, src, member, dest, dry_run=False, min_free=0, owner=None, mode=None, progress=None):
        self.src = src
        self.member = "/".join(part for part in (member or "").split("/") if part not in ("", "."))
        self.dest = dest
        self.dry_run = dry_run
        self.min_free = min_free
        self.owner = owner
        self.mode = mode
        self._progress = progress
        self.bytes = 0
        self.warnings = []
        self._matched = False

    def run(self):
        if os.path.isdir(self.src):
            source = self._directory_members()
        else:
            source = self._tar_members()
        if self.dry_run:
            extractor = SafeExtractor(self.dest, dry_run=True)
            self._extract(extractor, source)
            return self._result(extractor)
        return self._replace(source)

    def _result(self, _extractor):
        return {"dest": self.dest, "files": self._files, "bytes": self.bytes, "warnings": self.warnings}

    # -- writing --------------------------------------------------------------------------------------------
    def _replace(self, source):
        parent = os.path.dirname(self.dest)
        os.makedirs(parent, exist_ok=True)
        staged = StagedDir(self.dest)
        staged.clean()  # what a killed run left; a dest it left without a directory gets one back first
        mode = self.mode if self.mode is not None else _current_mode(self.dest)
        try:
            extractor = SafeExtractor(staged.create(0o700), min_free=self.min_free)
            self._extract(extractor, source)
            if self.owner:
                _chown_tree(staged.temp, self.owner)
            os.chmod(staged.temp, mode)
            staged.commit()
        finally:
            staged.abort()
        return self._result(extractor)

    def _extract(self, extractor, source):
        self._files = 0
        tar, members, archive = source
        for member in members:
            extractor.extract_member(tar, member, archive, progress=self._advance)
            self._files += int(member.isreg())
        if not self._matched:
            raise FerryError("%s holds no %s: nothing to restore (is member right?)"
                             % (readable(self.src), readable(self.member) if self.member else "member"))

    def _advance(self, count):
        self.bytes += count
        if self._progress is not None:
            self._progress(self.bytes)

    # -- sources --------------------------------------------------------------------------------------------
    def _tar_members(self):
        try:
            raw = open(self.src, "rb")  # pylint: disable=consider-using-with  # closed by _members
        except OSError as exc:
            raise FerryError("cannot read %s: %s" % (readable(self.src), exc.strerror))
        stream = GzipReader(raw, self.src) if raw.peek(2)[:2] == b"\x1f\x8b" else raw
        tar = open_tar_stream(stream, self.src)
        return tar, self._members(tar, raw, stream), self.src

    def _members(self, tar, raw, stream):
        """The selected members (iter_members refuses an archive cut short), then the gzip trailer's check."""
        with raw:
            yield from self._selected(tar)
            if stream is not raw:
                stream.drain()  # the CRC and length of the whole stream: a corrupt or cut gzip fails here

    def _selected(self, tar):
        """The members under ``member``, renamed to their path below it."""
        for item in iter_members(tar, self.src):
            relative = member_path(item, self.src)
            below = self._below(relative)
            if below is None:
                continue
            self._matched = True
            if item.islnk():
                target = self._below(member_path(tarfile.TarInfo(item.linkname), self.src))
                if target is None:
                    raise FerryError("%s: hard link %r -> %r points outside %s; refusing to extract it"
                                     % (self.src, item.name, item.linkname, self.member))
                item.linkname = target
            item.name = below
            if below:  # the member's own entry is the destination itself
                yield item

    def _below(self, relative):
        if not self.member:
            return relative
        if relative == self.member:
            return ""
        if relative.startswith(self.member + "/"):
            return relative[len(self.member) + 1:]
        return None

    def _directory_members(self):
        root = os.path.join(self.src, self.member) if self.member else self.src
        if not os.path.isdir(root):
            raise FerryError("%s holds no directory %s" % (readable(self.src), readable(self.member)))
        self._matched = True
        walk = TreeWalk(root, ".", follow=False, report=lambda kind, text: self.warnings.append(text))
        return _FileShim(), (_tarinfo(entry) for entry in walk if entry.name != "."), self.src


class _DirMember(tarfile.TarInfo):
    """A member made of a directory's entry, which knows the file it stands for."""

    __slots__ = ("ferry_path",)


def _tarinfo(entry):
    info = _DirMember(entry.name)
    info.type = entry.kind
    info.mode = stat.S_IMODE(entry.stat.st_mode)
    info.mtime = int(entry.stat.st_mtime)
    info.size = entry.size
    info.linkname = entry.linkname
    info.ferry_path = entry.path
    return info


def _current_mode(path):
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o755


def _chown_tree(root, owner):
    uid, gid = owner
    for top, dirs, files in os.walk(root):
        os.lchown(top, uid, gid)
        for name in dirs + files:
            os.lchown(os.path.join(top, name), uid, gid)


def source_identity(src):
    """What identifies ``src`` for the journal: a file's real path, size and mtime; a directory's real path and
    the count, total size and latest mtime of what it holds."""
    try:
        info = os.stat(src)
    except OSError as exc:
        raise FerryError("cannot read %s: %s" % (readable(src), exc.strerror))
    identity = {"path": os.path.realpath(src), "size": info.st_size, "mtime_ns": info.st_mtime_ns}
    if stat.S_ISDIR(info.st_mode):
        files = size = latest = 0
        for top, _dirs, names in os.walk(src):
            for name in names:
                st = os.lstat(os.path.join(top, name))
                files, size, latest = files + 1, size + st.st_size, max(latest, st.st_mtime_ns)
        identity.update(files=files, size=size, mtime_ns=latest)
    return identity


def check_room(src, dest, min_free):
    """An early gate: the restored content takes about the source's size."""
    parent = os.path.dirname(os.path.abspath(dest))
    while not os.path.isdir(parent):
        parent = os.path.dirname(parent)
    need = 0 if os.path.isdir(src) else os.path.getsize(src)
    free = free_bytes(parent)
    if free - min_free < need:
        raise FerryError("not enough free space in %s for %s: it is %s and %s are free (min_free_mb keeps %s)"
                         % (parent, readable(src), human_bytes(need), human_bytes(free), human_bytes(min_free)))
