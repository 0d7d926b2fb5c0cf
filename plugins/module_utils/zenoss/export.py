# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build a Zenoss 4 export bundle as Zenoss's export4 (toolbox 2.x) and zenbackup (4.2) make it, in one pass.

The bundle, an uncompressed tar, members in export4's order (``tar -C <dir> -rf <bundle> <name>`` per member)::

    componentList.txt  rrdpath.map  dmd_uuid.txt          files the model side produced (given)
    <hub>-<collector>-perf-backup-<ts>.tgz ...            remote collectors' zenbackup archives (given)
    flexera/ flexera/...                                  $ZENHOME/var/flexera, when it exists
    zenbackup_4x.tgz                                      ``tar czfC <tgz> <tmp> zenbackup``:
        zenbackup/                                        its directory entry, then in zenbackup's order:
        zenbackup/backup.settings                         [zenbackup] ini of the DB settings (global.conf)
        zenbackup/zep.sql.gz                              the events DB dump (given)
        zenbackup/zep.tar                                 $ZENHOME/var/zeneventserver as zeneventserver/...
        zenbackup/etc.tar                                 $ZENHOME/etc, symlinks followed
        zenbackup/zodb.sql.gz  zenbackup/zodb_session.sql.gz   the model dumps (given)
        zenbackup/ZenPacks.tar  zenbackup/bin.tar         $ZENHOME/ZenPacks and bin, symlinks followed
        zenbackup/zencatalogservice.tar                   $ZENHOME/var/zencatalogservice as zencatalogservice/...
        zenbackup/perf.tar                                ``tar chfC perf.tar $ZENHOME perf``: symlinks followed
    backup.md5                                            ``md5sum -b <absolute path of the tgz>``

Nothing is staged: each nested tar is measured by a walk of its tree, then streamed into the gzip stream as the
tree is walked again; the tgz goes straight into the bundle behind a placeholder header, rewritten once its size
is known, its md5 computed from the compressed bytes as they are written. (With ``tmp_dir`` the tgz is written
there first and copied in, as export4 does: it writes the tgz twice, which costs disk space and writes; with the
page cache holding it, bench/bench_bundle_create.py measured both ways within its noise.) The bundle is written
under a hidden temporary name beside it, synced and renamed into place whole.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import hashlib
import os
import stat
import struct
import tarfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import (
    SAMPLE_LIMIT,
    FerryError,
    free_bytes,
    human_bytes,
    readable,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.staging import StagedFile, check_space
from ansible_collections.ferry.migrate.plugins.module_utils.zenoss.bundle import COLLECTOR_NAME, UUID, InsertWatcher
from ansible_collections.ferry.migrate.plugins.module_utils.core.tartree import (
    BLOCK,
    CHUNK,
    END,
    Meta,
    TreeArchive,
    TreeWalk,
    archive_size,
    copy_exactly,
    header,
    header_size,
    padded,
)

TGZ_NAME = "zenbackup_4x.tgz"
BACKUP_DIR = "zenbackup"
GZIP_LEVEL = 6  # gzip's default, which tar czf uses
MODEL_DUMP = "zodb.sql.gz"
# backup.settings: ZenBackup.saveSettings() writes these keys of section [zenbackup] with the values
# ZenBackupBase reads from $ZENHOME/etc/global.conf (its defaults when a key is missing; zodb_socket only when set).
SETTINGS = (
    ("zodb_host", "zodb-host", "localhost"), ("zodb_port", "zodb-port", "3306"), ("zodb_db", "zodb-db", "zodb"),
    ("zodb_user", "zodb-user", "zenoss"), ("zodb_password", "zodb-password", "zenoss"),
    ("zodb_socket", "zodb-socket", None),
    ("zepdbhost", "zep-host", "localhost"), ("zepdbport", "zep-port", "3306"),
    ("zepdbname", "zep-db", "zenoss_zep"), ("zepdbuser", "zep-user", "zenoss"),
    ("zepdbpass", "zep-password", "zenoss"),
)
FILE_MODE = 0o644  # files zenbackup and export4 create (umask 022)
STAGING_DIR_MODE = 0o750  # zenbackup's os.mkdir(tempDir, 0750)


def read_global_conf(path):
    """``$ZENHOME/etc/global.conf``: ``key value`` lines (``#`` comments), as Zenoss's globalConfToDict reads it."""
    values = {}
    try:
        with open(path, "rb") as handle:
            for raw in handle:
                line = raw.decode("utf-8", "surrogateescape").strip()
                if line and not line.startswith("#"):
                    key, _sep, value = line.partition(" ")
                    values[key] = value.strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FerryError("cannot read %s: %s" % (readable(path), exc.strerror))
    return values


def backup_settings(conf):
    """backup.settings as Python 2's ConfigParser writes it: the section, ``key = value`` lines, a blank line."""
    lines = ["[zenbackup]"]
    for key, conf_key, default in SETTINGS:
        value = conf.get(conf_key, default)
        if value is not None:
            lines.append("%s = %s" % (key, value.replace("\n", "\n\t")))
    return ("\n".join(lines) + "\n\n").encode("utf-8", "surrogateescape")


def has_insert(path, name):
    """Whether the gzip'd dump at ``path`` holds a line starting with ``INSERT INTO`` (inflated until the first)."""
    watcher = InsertWatcher(name)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            for _piece in watcher.pieces(chunk):
                if watcher.found:
                    return True
    watcher.close()
    return False


def _file_stat(path, what):
    try:
        st = os.stat(path)
    except OSError as exc:
        raise FerryError("%s %s cannot be read: %s" % (what, readable(path), exc.strerror))
    if not stat.S_ISREG(st.st_mode):
        raise FerryError("%s %s is not a regular file" % (what, readable(path)))
    return st


def _gzip_file_stat(path, what):
    st = _file_stat(path, what)
    with open(path, "rb") as handle:
        if handle.read(2) != b"\x1f\x8b":
            raise FerryError("%s %s is not gzip data (a .sql.gz made by sql_dump, or a zenbackup .tgz, is)"
                             % (what, readable(path)))
    return st


# -- what goes into the bundle ---------------------------------------------------------------------------------
class Member:
    """A member of the bundle or of the tgz: name, kind, header metadata, size, and how to write its data
    (``write(out, progress)``; a tree writes its own headers)."""

    def __init__(self, name, kind, meta, size, write=None, source=None, entries=None):
        self.name = name
        self.kind = kind
        self.meta = meta
        self.size = size
        self.write = write
        self.source = source  # the file or tree it comes from, for messages and the dry run
        self.entries = entries  # a tree of members (flexera/): walk() yields Entry objects

    @classmethod
    def of_bytes(cls, name, data, meta):
        return cls(name, tarfile.REGTYPE, meta, len(data), lambda out, progress: out.write(data))

    @classmethod
    def of_file(cls, name, path, st):
        def write(out, progress):
            copy_exactly(path, st.st_size, out, progress, follow=True)
        return cls(name, tarfile.REGTYPE, st, st.st_size, write, source=path)

    @classmethod
    def of_tree(cls, name, archive, meta, root):
        return cls(name, tarfile.REGTYPE, meta, archive.measure(), archive.write, source=root)


class ExportPlan:
    """Everything the bundle will hold, checked and measured (trees walked once), before anything is written.

    ``options``: zenhome, dest, zodb_dump, zodb_session_dump, zep_dump, dmd_uuid, component_list, rrdpath_map,
    collector_archives, skip_perf, tmp_dir, outside_symlinks, compress_level, min_free (bytes).
    """

    def __init__(self, options, now=None):
        self.options = options
        self.now = int(time.time() if now is None else now)
        self.zenhome = os.path.abspath(options["zenhome"])
        self.dest = os.path.abspath(options["dest"])
        self.warnings = []
        self.skipped = 0
        self.outside_links = []
        self.outside_count = 0
        self._check_home()
        self.inner = self._inner_members()
        self.outer_before = self._outer_members()  # the members before the tgz

    # -- reports of the tree walks -------------------------------------------------------------------------
    def report(self, kind, text):
        if kind == "outside":
            self.outside_count += 1
            if len(self.outside_links) < SAMPLE_LIMIT:
                self.outside_links.append(text)
            return
        self.skipped += 1
        self.warn(text)

    def warn(self, text):
        if len(self.warnings) < SAMPLE_LIMIT:
            self.warnings.append(text)
        elif len(self.warnings) == SAMPLE_LIMIT:
            self.warnings.append("more warnings left out of this list")

    def meta(self, mode=FILE_MODE):
        return Meta(mode, self.now)

    # -- checks ---------------------------------------------------------------------------------------------
    def _check_home(self):
        if not os.path.isdir(os.path.join(self.zenhome, "etc")):
            raise FerryError("%s is not a Zenoss home: it has no etc/ directory" % readable(self.zenhome))
        if os.path.isdir(self.dest):
            raise FerryError("dest %s is a directory: give the path of the bundle file to write" % readable(self.dest))
        uuid = (self.options["dmd_uuid"] or "").strip()
        if not uuid or "\n" in uuid:
            raise FerryError("dmd_uuid must be one identifier on one line, not %r" % (self.options["dmd_uuid"],))
        if not UUID.match(uuid):
            self.warn("dmd_uuid %r is not a UUID" % uuid)
        tmp_dir = self.options.get("tmp_dir")
        if tmp_dir and not os.path.isdir(tmp_dir):
            raise FerryError("tmp_dir %s is not a directory" % readable(tmp_dir))
        self.dmd_uuid = uuid

    def _path(self, *parts):
        return os.path.join(self.zenhome, *parts)

    def _walk(self, root, arcname, follow):
        return _tree_walk(root, arcname, follow, (self.zenhome, root), self.options["outside_symlinks"], self.report)

    def _tree(self, name, root, arcname, follow):
        return Member.of_tree(name, TreeArchive(self._walk(root, arcname, follow)), self.meta(), root)

    # -- zenbackup_4x.tgz ---------------------------------------------------------------------------------------
    def _inner_members(self):
        """zenbackup's staged files, in the order zenbackup (4.2 makeBackup) creates them."""
        opts = self.options
        conf = read_global_conf(self._path("etc", "global.conf"))
        if conf is None:
            self.warn("%s has no etc/global.conf: backup.settings holds zenbackup's defaults" % self.zenhome)
        members = [Member.of_bytes("backup.settings", backup_settings(conf or {}), self.meta())]
        if opts.get("zep_dump"):
            zep = _gzip_file_stat(opts["zep_dump"], "zep_dump")
            members.append(Member.of_file("zep.sql.gz", opts["zep_dump"], zep))
            if os.path.isdir(self._path("var", "zeneventserver")):
                members.append(self._tree("zep.tar", self._path("var", "zeneventserver"), "zeneventserver", False))
        members.append(self._tree("etc.tar", self._path("etc"), "etc", True))
        members.append(self._model_dump(opts["zodb_dump"]))
        if opts.get("zodb_session_dump"):
            members.append(Member.of_file("zodb_session.sql.gz", opts["zodb_session_dump"],
                                          _gzip_file_stat(opts["zodb_session_dump"], "zodb_session_dump")))
        for name in ("ZenPacks", "bin"):
            if os.path.isdir(self._path(name)):
                members.append(self._tree(name + ".tar", self._path(name), name, True))
        if os.path.isdir(self._path("var", "zencatalogservice")):
            members.append(self._tree("zencatalogservice.tar", self._path("var", "zencatalogservice"),
                                      "zencatalogservice", False))
        if not opts.get("skip_perf"):
            if os.path.isdir(self._path("perf")):
                members.append(self._tree("perf.tar", self._path("perf"), "perf", True))
            else:
                self.warn("%s does not exist: the bundle has no perf.tar (zenbackup skips it too)"
                          % self._path("perf"))
        return members

    def _model_dump(self, path):
        st = _gzip_file_stat(path, "zodb_dump")
        if not has_insert(path, readable(path)):
            raise FerryError("zodb_dump %s holds no line starting with INSERT INTO: the model dump is empty or not a "
                             "mysqldump, and Import4 refuses such a bundle" % readable(path))
        return Member.of_file(MODEL_DUMP, path, st)

    # -- the bundle's own members -------------------------------------------------------------------------------
    def _outer_members(self):
        opts = self.options
        members = []
        for option, name in (("component_list", "componentList.txt"), ("rrdpath_map", "rrdpath.map")):
            if opts.get(option):
                members.append(Member.of_file(name, opts[option], _file_stat(opts[option], option)))
        members.append(Member.of_bytes("dmd_uuid.txt", (self.dmd_uuid + "\n").encode("utf-8"), self.meta()))
        members.extend(self._collector_members())
        flexera = self._path("var", "flexera")
        if os.path.isdir(flexera):
            walk = self._walk(flexera, "flexera", False)
            size = sum(entry.length() for entry in walk(True))  # the tree's bytes in the bundle, headers included
            members.append(Member("flexera", tarfile.DIRTYPE, None, size, source=flexera, entries=walk))
        return members

    def _collector_members(self):
        archives = self.options.get("collector_archives") or []
        if archives and self.options.get("skip_perf"):
            self.warn("skip_perf: the %d remote collector archive(s) are left out, as export4 --no-perfdata does"
                      % len(archives))
            return []
        members, seen = [], set()
        for path in archives:
            name = os.path.basename(path)
            if not COLLECTOR_NAME.match(name) or not name.endswith(".tgz"):
                raise FerryError("collector archive %s is not named <hub>-<collector>-perf-backup-<time>.tgz, as "
                                 "export4 names a remote collector's zenbackup" % readable(path))
            if name in seen:
                raise FerryError("two collector archives are named %s" % readable(name))
            seen.add(name)
            members.append(Member.of_file(name, path, _gzip_file_stat(path, "collector archive")))
        return members

    # -- sizes ------------------------------------------------------------------------------------------------
    @property
    def tgz_input_size(self):
        """The size of the tar inside the tgz (before compression)."""
        return zenbackup_size(self.inner)

    def outer_before_size(self):
        """Bytes of the members before the tgz (flexera walked for it)."""
        total = 0
        for member in self.outer_before:
            if member.entries is None:
                total += header_size(member.name, member.kind) + padded(member.size)
            else:
                total += member.size
        return total

    def bundle_bound(self):
        """The most the bundle can take: the tgz at worst a little larger than what it compresses (stored
        blocks), plus the other members, backup.md5 and the end of the archive."""
        raw = self.tgz_input_size
        tgz = raw + (raw >> 12) + (raw >> 14) + (raw >> 25) + 64
        md5 = header_size("backup.md5", tarfile.REGTYPE) + padded(len(self.md5_line("0" * 32)))
        body = self.outer_before_size() + header_size(TGZ_NAME, tarfile.REGTYPE) + padded(tgz) + md5
        return archive_size(body)

    def input_bytes(self):
        return sum(member.size for member in self.inner + self.outer_before)

    def tgz_record_path(self):
        """The path backup.md5 names: where export4's md5sum would have found the tgz (md5sum escapes names with a
        backslash or a newline, which Import4's check would not read: the bare name then)."""
        directory = self.options.get("tmp_dir") or os.path.dirname(self.dest)
        path = os.path.join(os.path.realpath(directory), TGZ_NAME)
        return TGZ_NAME if "\\" in path or "\n" in path else path

    def md5_line(self, digest):
        return ("%s *%s\n" % (digest, self.tgz_record_path())).encode("utf-8", "surrogateescape")

    def describe(self):
        """The dry run's report: what would be written, how large, and the room for it."""
        directory = os.path.dirname(self.dest)
        existing = directory
        while not os.path.isdir(existing) and os.path.dirname(existing) != existing:
            existing = os.path.dirname(existing)
        bound = self.bundle_bound()
        free = free_bytes(existing)
        members = [{"name": m.name, "size": m.size} for m in self.outer_before]
        members += [{"name": TGZ_NAME, "size": None}, {"name": "backup.md5", "size": len(self.md5_line("0" * 32))}]
        return {
            "dest": self.dest,
            "members": members,
            "zenbackup_members": [{"name": m.name, "size": m.size} for m in self.inner],
            "tgz_uncompressed_bytes": self.tgz_input_size,
            "bundle_max_bytes": bound,
            "free_bytes": free,
            "min_free_bytes": self.options["min_free"],
            "enough_space": free - bound >= self.options["min_free"],
        }

    def check_room(self):
        """Stop before writing when the bundle (and the staged tgz) might not fit."""
        bound = self.bundle_bound()
        tmp_dir = self.options.get("tmp_dir")
        if tmp_dir:
            staged = self.tgz_input_size + (self.tgz_input_size >> 12) + 64
            if os.stat(tmp_dir).st_dev == os.stat(os.path.dirname(self.dest)).st_dev:
                bound += staged
            else:
                check_space(tmp_dir, staged, self.options["min_free"], TGZ_NAME)
        check_space(os.path.dirname(self.dest), bound, self.options["min_free"], os.path.basename(self.dest))


# -- writing ------------------------------------------------------------------------------------------------
def compress_workers():
    """Threads deflating in parallel: one per processor this process may run on (zlib lets go of the GIL)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class GzipSink:
    """One gzip member (what ``gzip -c`` writes) of what is written to it, into ``out``, the compressed bytes'
    md5 and counts kept.

    With ``workers`` > 1 it deflates as pigz does: the input cut into blocks, each deflated by a thread with the
    32 KiB before it as its dictionary and ended on a byte boundary (a sync flush), the pieces written in order;
    one stream any gunzip reads, a few bytes a block larger than zlib's own, and up to ``workers`` times faster.
    """

    BLOCK = 512 << 10
    WINDOW = 32 << 10

    def __init__(self, out, level, workers=1):
        self._out = out
        self._level = level
        self._buffer = bytearray()
        self._dictionary = b""
        self._crc = 0
        self._pool = ThreadPoolExecutor(workers) if workers > 1 else None
        self._pending = collections.deque()
        self._window = 2 * workers
        self.md5 = hashlib.md5()
        self.size = 0
        self.raw = 0
        self._emit(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03")  # no name, no time, OS Unix: gzip -c of a pipe

    def write(self, data):
        self.raw += len(data)
        self._crc = zlib.crc32(data, self._crc)
        self._buffer += data
        while len(self._buffer) >= self.BLOCK:
            block = bytes(self._buffer[:self.BLOCK])
            del self._buffer[:self.BLOCK]
            self._submit(block, False)

    def close(self):
        try:
            self._submit(bytes(self._buffer), True)
            self._buffer = bytearray()
            while self._pending:
                self._emit(self._pending.popleft().result())
        finally:
            if self._pool is not None:
                self._pool.shutdown()
        self._emit(struct.pack("<II", self._crc, self.raw & 0xFFFFFFFF))

    def _submit(self, block, final):
        dictionary, self._dictionary = self._dictionary, block[-self.WINDOW:]
        if self._pool is None:
            self._emit(_deflate(block, dictionary, self._level, final))
            return
        self._pending.append(self._pool.submit(_deflate, block, dictionary, self._level, final))
        while len(self._pending) > self._window:
            self._emit(self._pending.popleft().result())

    def _emit(self, data):
        if data:
            self.md5.update(data)
            self._out.write(data)
            self.size += len(data)


def _deflate(block, dictionary, level, final):
    """A block as raw deflate data, primed with the bytes before it, ended on a byte boundary (or the stream's end)."""
    if dictionary:
        deflate = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, 8, zlib.Z_DEFAULT_STRATEGY, dictionary)
    else:
        deflate = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return deflate.compress(block) + deflate.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)


class OuterTar:
    """The bundle: members appended to ``handle`` (a file open for reading and writing), its sha256 kept.

    A member written in place (:meth:`begin_in_place`) gets a placeholder header rewritten by :meth:`end_in_place`;
    the digest then covers what came before it as it was written, and the rest is read back at :meth:`close`.
    """

    def __init__(self, handle):
        self.handle = handle
        self.offset = 0
        self.digest = hashlib.sha256()
        self.members = []
        self._reread_from = None

    def write(self, data):
        self.handle.write(data)
        self.offset += len(data)
        if self._reread_from is None:
            self.digest.update(data)

    def add(self, member, progress=None):
        if member.entries is not None:
            self._add_tree(member, progress)
            return
        self.write(header(member.name, member.kind, member.meta, member.size))
        member.write(self, progress)
        self.write(b"\0" * (padded(member.size) - member.size))
        self.members.append({"name": member.name, "size": member.size})

    def _add_tree(self, member, progress):
        walk = member.entries(False)
        for entry in walk:
            self.write(header(entry.name, entry.kind, entry.stat, entry.size, entry.linkname))
            if entry.kind == tarfile.REGTYPE:
                copy_exactly(entry.path, entry.size, self, progress, follow=walk.follow)
                self.write(b"\0" * (padded(entry.size) - entry.size))
            self.members.append({"name": entry.name + ("/" if entry.kind == tarfile.DIRTYPE else ""),
                                 "size": entry.size})

    def begin_in_place(self, name):
        if header_size(name, tarfile.REGTYPE) != BLOCK:
            raise FerryError("%s: a name this long needs more than one header block" % name)
        start = self.offset
        if self._reread_from is None:
            self._reread_from = start  # from here on the digest is taken from what the file holds at close
        self.write(b"\0" * BLOCK)
        return start

    def end_in_place(self, start, name, meta, size):
        end = self.handle.tell()
        self.handle.seek(start)
        self.handle.write(header(name, tarfile.REGTYPE, meta, size))
        self.handle.seek(end)
        self.write(b"\0" * (padded(size) - size))
        self.members.append({"name": name, "size": size})

    def close(self):
        self.write(END)
        self.write(b"\0" * (archive_size(self.offset - len(END)) - self.offset))
        self.handle.flush()
        if self._reread_from is not None:
            self.handle.seek(self._reread_from)
            for chunk in iter(lambda: self.handle.read(CHUNK), b""):
                self.digest.update(chunk)
        return self.digest.hexdigest()


class BundleWriter:
    """Writes the bundle of an :class:`ExportPlan`. ``progress(done_bytes)``, ``check_stop(done_text)``."""

    def __init__(self, plan, progress=None, check_stop=None):
        self.plan = plan
        self._progress = progress
        self._check_stop = check_stop or (lambda text: None)
        self.done = 0
        self.tgz = None

    def advance(self, count):
        self.done += count
        if self._progress is not None:
            self._progress(self.done)

    def write(self):
        plan = self.plan
        os.makedirs(os.path.dirname(plan.dest), exist_ok=True)
        plan.check_room()
        staged = StagedFile.open(plan.dest)  # .<name>.ferry-tmp beside it: a killed run's is replaced
        try:
            outer = OuterTar(staged.handle)
            for member in plan.outer_before:
                self._check_stop("%s of input" % human_bytes(self.done))
                outer.add(member, self.advance)
            md5 = self._add_tgz(outer)
            outer.add(Member.of_bytes("backup.md5", plan.md5_line(md5), plan.meta()))
            sha256 = outer.close()
            staged.set_mode(FILE_MODE)
            staged.commit()
        except BaseException:
            staged.abort()
            raise
        info = os.stat(plan.dest)
        return {"dest": plan.dest, "size": info.st_size, "mtime_ns": info.st_mtime_ns, "sha256": sha256, "md5": md5,
                "members": outer.members, "tgz": self.tgz,
                "zenbackup_members": [{"name": m.name, "size": m.size} for m in plan.inner]}

    def _add_tgz(self, outer):
        plan = self.plan
        level = plan.options["compress_level"]
        if not plan.options.get("tmp_dir"):
            start = outer.begin_in_place(TGZ_NAME)
            sink = GzipSink(outer, level, compress_workers())
            self._write_inner(sink)
            outer.end_in_place(start, TGZ_NAME, plan.meta(), sink.size)
        else:
            sink = self._staged_tgz(outer, level)
        self.tgz = {"name": TGZ_NAME, "size": sink.size, "uncompressed_size": sink.raw, "md5": sink.md5.hexdigest()}
        return self.tgz["md5"]

    def _staged_tgz(self, outer, level):
        """export4's way: the tgz written whole in tmp_dir, then appended to the bundle (read back once)."""
        temp = StagedFile.open(os.path.join(self.plan.options["tmp_dir"], TGZ_NAME))
        try:
            sink = GzipSink(temp.handle, level, compress_workers())
            self._write_inner(sink)
            temp.handle.flush()
            member = Member.of_file(TGZ_NAME, temp.temp, os.fstat(temp.handle.fileno()))
            member.meta = self.plan.meta()
            outer.add(member)
        finally:
            temp.abort()
        return sink

    def _write_inner(self, sink):
        write_zenbackup(sink, self.plan.inner, self.plan.meta(STAGING_DIR_MODE), self.advance, self._check_stop,
                        lambda: "%s of input" % human_bytes(self.done))


def zenbackup_size(members):
    """The size of the tar of zenbackup/ holding ``members`` (before compression)."""
    body = header_size(BACKUP_DIR, tarfile.DIRTYPE)
    for member in members:
        body += header_size(BACKUP_DIR + "/" + member.name, tarfile.REGTYPE) + padded(member.size)
    return archive_size(body)


def write_zenbackup(sink, members, dir_meta, advance=None, check_stop=None, done_text=None):
    """The tar of zenbackup/ (what ``tar czfC <tgz> <tmp> zenbackup`` puts in the gzip stream) into ``sink``: the
    directory's entry, then each member, the end blocks and the padding to a whole record."""
    sink.write(header(BACKUP_DIR, tarfile.DIRTYPE, dir_meta))
    for member in members:
        if check_stop is not None:
            check_stop(done_text())
        sink.write(header(BACKUP_DIR + "/" + member.name, tarfile.REGTYPE, member.meta, member.size))
        counted = _Counting(sink)
        member.write(counted, advance)
        if counted.count != member.size:
            raise FerryError("%s: %d bytes written where %d were measured"
                             % (member.name, counted.count, member.size))
        sink.write(b"\0" * (padded(member.size) - member.size))
    sink.write(b"\0" * (zenbackup_size(members) - sink.raw))  # the end blocks, then padding to a whole record
    sink.close()


def write_collector_archive(zenhome, path, level=GZIP_LEVEL, now=None):
    """A remote collector's archive as ``zenbackup --no-eventsdb --no-zodb`` makes it (export4 runs that on each
    collector): zenbackup/etc.tar and zenbackup/perf.tar, no settings, no dumps. Written to ``path`` whole
    (staged, then renamed); returns its md5."""
    now = int(time.time() if now is None else now)
    inside = (os.path.abspath(zenhome),)
    members = []
    for name in ("etc", "perf"):
        root = os.path.join(zenhome, name)
        if os.path.isdir(root):
            walk = _tree_walk(root, name, True, inside + (root,), "follow", None)
            members.append(Member.of_tree(name + ".tar", TreeArchive(walk), Meta(FILE_MODE, now), root))
    staged = StagedFile.open(path)
    try:
        sink = GzipSink(staged.handle, level, compress_workers())
        write_zenbackup(sink, members, Meta(STAGING_DIR_MODE, now))
        staged.set_mode(FILE_MODE)
        staged.commit()
    except BaseException:
        staged.abort()
        raise
    return sink.md5.hexdigest()


def _tree_walk(root, arcname, follow, inside, outside, report):
    def walk(first):
        return TreeWalk(root, arcname, follow, inside, outside, report if first else None)
    return walk


class _Counting:
    def __init__(self, out):
        self._out = out
        self.count = 0

    def write(self, data):
        self.count += len(data)
        self._out.write(data)
