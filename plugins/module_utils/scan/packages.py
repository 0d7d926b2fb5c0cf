# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The native packages of a scanned root and the state of their files: the report's package lines and its
``modified`` / ``deleted`` file lines.

dpkg is read from its database files (var/lib/dpkg/status, info/<pkg>[:<arch>].list, .md5sums), so a foreign
root scans without dpkg; rpm is asked through ``rpm --root`` (its database is not a text format).

A package file is ``modified`` when its md5 differs from the one the package recorded (info/<pkg>.md5sums; for
a conffile, status's Conffiles), ``deleted`` when it is missing. dpkg records no owner, mode or md5 for
directories and symlinks, so only regular files are checked (as ``dpkg --verify`` does). There is no stat-only
shortcut from dpkg's data: the md5 of every package file is read (:func:`package_file_changes`, on several
processes), except that a file whose size, mtime, ctime and inode are those of the last complete check keeps the
md5 read then (a cache beside the scan's journal record).

Paths listed by a package go through the symlinks of their parent directories as the root has them (merged
/usr: dpkg lists ``lib/x``, the file is ``usr/lib/x``), so they are also reported canonically
(:class:`Canonical`), which is how the walk meets them. Diversions (var/lib/dpkg/diversions) move a package's
file to the diverted-to path: that is where it is checked, and what :func:`package_paths` lists.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import hashlib
import os
import re
import shutil
import stat
import struct
import subprocess

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError, sha256_of
from ansible_collections.ferry.migrate.plugins.module_utils.core.staging import StagedFile
from ansible_collections.ferry.migrate.plugins.module_utils.core.tree import _chunks, default_workers, run_pool
from ansible_collections.ferry.migrate.plugins.module_utils.scan.report import name_fields
from ansible_collections.ferry.migrate.plugins.module_utils.scan.system import (
    read_group,
    read_passwd,
    resolve_in_root,
    root_path,
)

DPKG_DIR = "var/lib/dpkg"
STATUS_FIELDS = frozenset((b"Package", b"Status", b"Version", b"Architecture", b"Multi-Arch", b"Origin",
                           b"Conffiles", b"Essential"))
CONFFILE_FLAGS = frozenset((b"obsolete", b"remove-on-upgrade"))
GROUP_FILES = 256  # package files one worker checks at a time
_MD5_LINE = re.compile(rb"^([0-9a-fA-F]{32}) [ *](.+)$")


# --- files of the dpkg database ---------------------------------------------------------------------


def _open_regular(path, what):
    """A database file opened for reading, refused when it is not a regular file (never followed out)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise FerryError("cannot read %s %s: %s" % (what, os.fsdecode(path), exc.strerror))
    handle = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        handle.close()
        raise FerryError("%s %s is not a regular file" % (what, os.fsdecode(path)))
    return handle


def dpkg_dir(root):
    """The real var/lib/dpkg of ``root`` (inside it) when it has a status file, else None."""
    directory = root_path(root, DPKG_DIR)
    if directory is None or not os.path.isfile(os.path.join(directory, b"status")):
        return None
    return directory


def status_stanzas(root):
    """The stanzas of var/lib/dpkg/status, streamed: dicts of the fields this scan uses (bytes -> bytes; a
    multi-line field keeps its continuation lines, each starting with a newline)."""
    directory = dpkg_dir(root)
    if directory is None:
        return
    with _open_regular(os.path.join(directory, b"status"), "dpkg status file") as handle:
        stanza, field = {}, None
        for line in handle:
            line = line.rstrip(b"\n")
            if not line.strip():
                if stanza:
                    yield stanza
                stanza, field = {}, None
            elif line[:1] in (b" ", b"\t"):
                if field in stanza:
                    stanza[field] += b"\n" + line[1:]
            else:
                name, _colon, value = line.partition(b":")
                field = name if name in STATUS_FIELDS else None
                if field is not None:
                    stanza[field] = value.strip()
        if stanza:
            yield stanza


def installed(stanza):
    """True for a package whose files are on the disk: Status ``<want> <flag> installed`` (held too)."""
    words = stanza.get(b"Status", b"").split()
    return len(words) == 3 and words[2] == b"installed"


def split_version(version):
    """(epoch int|None, upstream, revision|None) of a Debian version: the epoch ends at the first colon, the
    revision starts after the last hyphen (policy 5.6.12), so an upstream keeps its own hyphens."""
    epoch = None
    if ":" in version:
        head, _colon, version = version.partition(":")
        if not head.isdigit():
            raise FerryError("version %r: the epoch %r is not a number" % (head + ":" + version, head))
        epoch = int(head)
    revision = None
    if "-" in version:
        version, _hyphen, revision = version.rpartition("-")
    return epoch, version, revision


def _text(value):
    return value.decode("utf-8", "replace") if value is not None else None


def dpkg_packages(root):
    """The installed dpkg packages of ``root``, as report package dicts, in status order."""
    for stanza in status_stanzas(root):
        if not installed(stanza) or b"Package" not in stanza:
            continue
        version = _text(stanza.get(b"Version", b""))
        epoch, upstream, revision = split_version(version)
        yield {"manager": "dpkg", "name": _text(stanza[b"Package"]), "version": version, "epoch": epoch,
               "upstream": upstream, "release": revision, "arch": _text(stanza.get(b"Architecture")),
               "origin": _text(stanza.get(b"Origin")), "status": "installed"}


def dpkg_native_arch(root):
    """The architecture of the ``dpkg`` package itself (always the native one); None without a dpkg database."""
    for stanza in status_stanzas(root):
        if stanza.get(b"Package") == b"dpkg" and installed(stanza):
            return _text(stanza.get(b"Architecture"))
    return None


def _info_stem(info, stanza):
    """The name of a package's files in info/: ``<pkg>:<arch>`` for a Multi-Arch: same package (dpkg >= 1.16.2),
    else ``<pkg>``; the other name when only that one exists (a database written by another dpkg)."""
    name = stanza[b"Package"]
    qualified = name + b":" + stanza.get(b"Architecture", b"")
    names = [qualified, name] if stanza.get(b"Multi-Arch") == b"same" else [name, qualified]
    for stem in names:
        if os.path.exists(os.path.join(info, stem + b".list")):
            return stem
    return names[0]


def _info_lines(info, stem, suffix):
    """Lines (bytes, newline removed) of info/<stem><suffix>; none when the file does not exist."""
    path = os.path.join(info, stem + suffix)
    if not os.path.lexists(path):
        return
    with _open_regular(path, "dpkg info file") as handle:
        for line in handle:
            line = line.rstrip(b"\n")
            if line:
                yield line


def _relative(listed):
    """A listed absolute path (``/usr/bin/x``, ``./usr/bin/x`` in old md5sums) as the report names it."""
    while listed.startswith(b"./"):
        listed = listed[2:]
    listed = listed.lstrip(b"/")
    return b"" if listed == b"." else listed  # "/." in every .list: the root itself


def diversions(root):
    """``{path: (diverted_to, by)}`` from var/lib/dpkg/diversions (triples of lines: from, to, package or ``:``
    for a local diversion), paths relative."""
    directory = dpkg_dir(root)
    path = os.path.join(directory, b"diversions") if directory else None
    if path is None or not os.path.lexists(path):
        return {}
    found = {}
    with _open_regular(path, "dpkg diversions file") as handle:
        lines = (line.rstrip(b"\n") for line in handle)
        for diverted, to, by in zip(lines, lines, lines):  # a short last triple is dropped, as dpkg does
            found[_relative(diverted)] = (_relative(to), by)
    return found


def _where(relative, package, diverted):
    """Where package ``package``'s file ``relative`` is: diverted away unless ``package`` made the diversion."""
    diversion = diverted.get(relative)
    if diversion is not None and diversion[1] != package:
        return diversion[0]
    return relative


class Canonical:
    """Relative paths with their parent directories' symlinks resolved inside the root (``lib/x`` ->
    ``usr/lib/x`` on merged /usr), one resolution per directory. A parent that does not exist stays as far as
    it does (the rest cannot hold a symlink), so the path is never looked up through a link the kernel would
    follow out of the root; a parent whose links lead out of the root gives None."""

    def __init__(self, root):
        self.root = os.path.abspath(os.fsencode(root))
        self.cache = {}

    def __call__(self, relative):
        parent, slash, name = relative.rpartition(b"/")
        if not slash:
            return relative
        if parent not in self.cache:
            self.cache[parent] = self._resolve(parent)
        real = self.cache[parent]
        if real is None:
            return None
        return real + b"/" + name if real else name

    def _resolve(self, parent):
        above, slash, name = parent.rpartition(b"/")
        if slash and name not in (b"", b".", b".."):
            # one lstat from the resolved directory above; a link (or anything odd) takes the full resolution
            if above not in self.cache:
                self.cache[above] = self._resolve(above)
            real = self.cache[above]
            if real is None:
                return None
            joined = real + b"/" + name if real else name
            try:
                if not stat.S_ISLNK(os.lstat(os.path.join(self.root, joined)).st_mode):
                    return joined
            except (FileNotFoundError, NotADirectoryError):
                return joined  # missing: what is below it cannot hold a link either
            except OSError:
                pass
        try:
            found, missing = resolve_in_root(self.root, parent)
        except FerryError:
            return None
        real = os.path.relpath(found, self.root)
        real = b"" if real == b"." else real
        return b"/".join([real] + missing) if real else b"/".join(missing)

    def directory(self, relative):
        """Where a listed path leads when the root has a symlink to a directory there (dpkg lists ``/lib``, a
        directory, which merged /usr made a link to ``usr/lib``); None otherwise."""
        path = os.path.join(self.root, relative)
        if not os.path.islink(path):
            return None
        try:
            found = root_path(self.root, relative)
        except FerryError:
            return None
        if found is None or not os.path.isdir(found):
            return None
        return os.path.relpath(found, self.root)


def _installed_stanzas(root):
    """(package name, info stem, stanza) of every installed package."""
    directory = dpkg_dir(root)
    if directory is None:
        return
    info = os.path.join(directory, b"info")
    for stanza in status_stanzas(root):
        if installed(stanza) and b"Package" in stanza:
            yield stanza[b"Package"], _info_stem(info, stanza), stanza


def package_paths(root):
    """Every path (relative, bytes) installed packages list in info/<pkg>.list, directories included, as listed
    and as the root resolves their parents (:class:`Canonical`); a diverted file by its diverted-to path. For an
    rpm root, ``rpm -qa`` lists them."""
    if dpkg_dir(root) is None:
        return rpm_paths(root) if rpm_available(root) else set()
    info = os.path.join(dpkg_dir(root), b"info")
    diverted = diversions(root)
    canonical = Canonical(root)
    paths = set()
    for package, stem, _stanza in _installed_stanzas(root):
        for line in _info_lines(info, stem, b".list"):
            _own(paths, canonical, _where(_relative(line), package, diverted))
    return paths


def _own(paths, canonical, relative):
    """Add a listed path to :func:`package_paths`' set: as listed, as the root resolves it, and where a link at
    the top leads."""
    if relative:
        paths.add(relative)
        real = canonical(relative)
        if real is not None:
            paths.add(real)
            if real.count(b"/") < 2:  # the merged-/usr links are at the top; a deep check costs an lstat
                paths.add(canonical.directory(real) or real)


def conffiles(stanza):
    """``[(relative path, md5 or b"newconffile", obsolete)]`` of a stanza's Conffiles lines (`` /path md5
    [obsolete] [remove-on-upgrade]``; the path may hold spaces, so it is split from the right)."""
    found = []
    for line in stanza.get(b"Conffiles", b"").split(b"\n"):
        words = line.strip().split(b" ")
        flags = set()
        while len(words) > 2 and words[-1] in CONFFILE_FLAGS:
            flags.add(words.pop())
        if len(words) < 2:
            continue
        found.append((_relative(b" ".join(words[:-1])), words[-1], b"obsolete" in flags))
    return found


def md5sums(info, stem):
    """``[(relative path, md5)]`` of info/<stem>.md5sums (``<32 hex>  <path>``; md5sum's ``*`` binary mark too)."""
    found = []
    for line in _info_lines(info, stem, b".md5sums"):
        match = _MD5_LINE.match(line)
        if match is None:
            raise FerryError("%s: not an md5sums line: %r" % (os.fsdecode(os.path.join(info, stem + b".md5sums")),
                                                              line[:200]))
        found.append((_relative(match.group(2)), match.group(1).lower()))
    return found


def check_items(root, counts=None, owned=None):
    """What :func:`package_file_changes` checks: ``(package, path, md5, conffile)`` per package file, path
    canonical, each path once (the first package listing it wins, as ``dpkg -S`` lists it first); md5 None for
    the other entries of info/<pkg>.list (directories, symlinks), checked for existence only. ``owned`` (a set),
    when given, gets :func:`package_paths` from the same reading of the package lists."""
    directory = dpkg_dir(root)
    if directory is None:
        return
    info = os.path.join(directory, b"info")
    diverted = diversions(root)
    canonical = Canonical(root)
    seen = set()
    for package, stem, stanza in _installed_stanzas(root):
        name = package.decode("utf-8", "replace")
        mine = {}
        for relative, md5, obsolete in conffiles(stanza):
            if obsolete or md5 == b"newconffile":  # no longer shipped / not configured yet: nothing to compare
                _add(counts, "unverifiable")
                mine[relative] = None
            else:
                mine[relative] = md5.lower()
        entries = [(path, md5, True) for path, md5 in mine.items() if md5 is not None]
        entries += [(path, md5, False) for path, md5 in md5sums(info, stem) if path not in mine]
        summed = set(path for path, _md5, _conffile in entries).union(mine)
        # directories and symlinks: dpkg keeps no md5 for them, only that they exist
        listed = [_relative(line) for line in _info_lines(info, stem, b".list")]
        if owned is not None:
            for relative in listed:
                _own(owned, canonical, _where(relative, package, diverted))
        entries += [(path, None, False) for path in listed if path and path not in summed]
        for relative, md5, conffile in entries:
            path = canonical(_where(relative, package, diverted))
            if path is None:  # under a link out of the root: not looked at
                _add(counts, "unreadable")
            elif path not in seen:
                seen.add(path)
                yield name, path, md5.decode("ascii") if md5 else None, conffile


def _add(counts, key, amount=1):
    if counts is not None:
        counts[key] = counts.get(key, 0) + amount


def package_file_changes(root, workers=None, counts=None, progress=None, cache_in=None, cache_out=None,
                         owned=None):
    """Report file records of the package files of ``root`` that are modified or deleted (dpkg, else rpm).

    The md5s are read on ``workers`` processes (default: the CPUs), in groups of :data:`GROUP_FILES`, streamed:
    memory holds the paths seen (to check each once), not the results. ``counts`` (a dict), when given, is
    filled with ``checked``, ``bytes`` (read to hash), ``modified``, ``deleted``, ``unreadable``,
    ``unverifiable`` (conffiles without a recorded md5), ``cached`` (md5s taken from ``cache``).
    ``progress(checked)``, when given, is called after each group (a journal step's progress; it may raise to
    stop: the pool is stopped). ``cache_in`` (a path, or None): the md5s of the last complete check by (path, size,
    mtime, ctime, inode): an unchanged file is not read again; ``cache_out``: where this check's are written (staged,
    published when it completes). ``owned`` (a set), when given, gets :func:`package_paths` once every record is
    out."""
    if dpkg_dir(root) is None:
        if rpm_available(root):
            yield from rpm_file_changes(root, counts)
            if owned is not None:
                owned.update(rpm_paths(root))
        return
    workers = workers or default_workers()
    users, groups = read_passwd(root).by_id, read_group(root).by_id
    root_bytes = os.path.abspath(os.fsencode(root))
    jobs = ((root_bytes, group) for group in _chunks(check_items(root, counts, owned), GROUP_FILES))
    checked = 0
    _MD5_CACHE.clear()
    _MD5_CACHE.update(read_md5_cache(cache_in))  # before the pool forks: the workers read it
    staged = StagedFile.create(cache_out) if cache_out else None
    try:
        for records, found, rows in run_pool(_check_group, jobs, workers, chunksize=1):
            for key, value in found.items():
                _add(counts, key, value)
            checked += found["checked"]
            if staged is not None:
                staged.write(b"".join(rows))
            if progress is not None:
                progress(checked)
            for record in records:
                if "uid" in record:
                    record["owner"] = users.get(record["uid"])
                    record["group"] = groups.get(record["gid"])
                yield record
        if staged is not None:
            staged.commit()
    finally:
        _MD5_CACHE.clear()
        if staged is not None and not staged.published:
            staged.abort()


# What read_md5_cache read, for the forked workers: {path: (stamp, md5 digest)}.
_MD5_CACHE = {}
_MD5_ROW = struct.Struct("<QqqQH")  # size, mtime_ns, ctime_ns, inode, path length; then the path, 16 bytes md5


def read_md5_cache(path):
    """{path: ((size, mtime_ns, ctime_ns, inode), md5 digest)} of a cache file; a missing or damaged one reads as
    what it holds whole (a cache only saves reading files again)."""
    found = {}
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except (OSError, TypeError):
        return found
    offset = 0
    while offset + _MD5_ROW.size <= len(data):
        size, mtime, ctime, ino, length = _MD5_ROW.unpack_from(data, offset)
        start = offset + _MD5_ROW.size
        if start + length + 16 > len(data):
            break
        found[data[start:start + length]] = ((size, mtime, ctime, ino), data[start + length:start + length + 16])
        offset = start + length + 16
    return found


def _check_group(job):
    """One worker's share: (records of the changed files, counts, md5 cache rows). Runs in a forked process."""
    root, items = job
    records, counts, rows = [], {"checked": 0, "bytes": 0}, []
    for package, relative, md5, conffile in items:
        counts["checked"] += 1
        record = _check_file(root, package, relative, md5, conffile, counts, rows)
        if record is not None:
            counts[record["change"]] = counts.get(record["change"], 0) + 1
            records.append(record)
    return records, counts, rows


def _check_file(root, package, relative, md5, conffile, counts, rows):
    path = os.path.join(root, relative)
    try:
        info = os.lstat(path)
        if md5 is None:  # a directory or symlink of the package: only its absence is a change
            return None
        if not stat.S_ISREG(info.st_mode):
            return changed_record(root, relative, package, conffile, info)
        digest = _md5_of(path, relative, info, counts)
        rows.append(_MD5_ROW.pack(info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, len(relative))
                    + relative + digest)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return deleted_record(relative, package, conffile)
        counts["unreadable"] = counts.get("unreadable", 0) + 1
        return None
    if digest.hex() == (md5.decode("ascii", "replace") if isinstance(md5, bytes) else md5):
        return None
    try:
        return changed_record(root, relative, package, conffile, info)
    except OSError:  # replaced while we looked: the next scan sees it
        counts["unreadable"] = counts.get("unreadable", 0) + 1
        return None


def _md5_of(path, relative, info, counts):
    """The file's md5 digest: the cache's when its stat is the one cached (``cached`` counted), else read
    (``bytes`` counted)."""
    stamp = (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)
    cached = _MD5_CACHE.get(relative)
    if cached is not None and cached[0] == stamp:
        counts["cached"] = counts.get("cached", 0) + 1
        return cached[1]
    with open(path, "rb", opener=_nofollow) as handle:
        digest = hashlib.md5()
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    counts["bytes"] += info.st_size
    return digest.digest()


def _nofollow(path, flags):
    return os.open(path, flags | os.O_NOFOLLOW)


def deleted_record(relative, package, conffile):
    record = {"kind": "file"}
    record.update(name_fields("path", relative))
    record.update({"package": package, "change": "deleted"})
    if conffile:
        record["conffile"] = True
    return record


def changed_record(root, relative, package, conffile, info, change="modified"):
    """A report file record of a changed package file as the walk writes one (owner names filled by the
    caller): the sha256 of a regular file, the target of a symlink."""
    kinds = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink"}
    kind = kinds.get(stat.S_IFMT(info.st_mode))
    if kind is None:  # a device or FIFO where a package file was: the file is gone as far as a rebuild goes
        return deleted_record(relative, package, conffile)
    record = {"kind": "file"}
    record.update(name_fields("path", relative))
    record.update({"type": kind, "mode": stat.S_IMODE(info.st_mode), "uid": info.st_uid, "gid": info.st_gid,
                   "owner": None, "group": None, "size": info.st_size, "mtime_ns": info.st_mtime_ns})
    path = os.path.join(root, relative)
    if kind == "file":
        with open(path, "rb", opener=_nofollow) as handle:
            record["sha256"] = sha256_of(handle).hexdigest()
        if info.st_blocks * 512 < info.st_size:
            record["sparse"] = True
    elif kind == "symlink":
        record.update(name_fields("target", os.readlink(path)))
    record.update({"package": package, "change": change})
    if conffile:
        record["conffile"] = True
    return record


# --- rpm ----------------------------------------------------------------------------------------------

RPM_DB_DIRS = ("var/lib/rpm", "usr/lib/sysimage/rpm")
# VENDOR is the distributor ("Red Hat, Inc."), what dpkg's Origin is; rpm records no repository
RPM_QUERY = "%{NAME}\\t%{EPOCH}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\t%{VENDOR}\\n"
RPM_FILES = "[%{FILENAMES}\\t%{NAME}\\n]"
RPM_CONTENT_FLAGS = frozenset("SM5LUGP")  # T alone (an mtime) is not a change a rebuild repeats
_VERIFY_LINE = re.compile(rb"^([SM5DLUGTP.?]{8,9}|missing ) {2}(.) (/.*)$")


def rpm_available(root):
    """True when an ``rpm`` command is on PATH and ``root`` has an rpm database."""
    if shutil.which("rpm") is None:
        return False
    return any(root_path(root, name) is not None for name in RPM_DB_DIRS)


def rpm_command(root, args):
    """``rpm --root ROOT args`` streamed: its stdout lines (bytes, newline removed); a failure to start or an exit
    above 1 (1: ``-V`` found differences) raises with rpm's message."""
    argv = ["rpm", "--root", os.fsdecode(os.path.abspath(os.fsencode(root)))] + list(args)
    try:
        process = subprocess.Popen(  # pylint: disable=ansible-bad-function  # the engine runs without a module
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        raise FerryError("cannot run rpm: %s" % exc.strerror)
    with process:
        for line in process.stdout:
            yield line.rstrip(b"\n")
        error = process.stderr.read(4096).decode("utf-8", "replace").strip()
        code = process.wait()
    if code > 1 or (code and error):
        raise FerryError("%s failed (exit %d): %s" % (" ".join(argv), code, error or "no message"))


def parse_rpm_packages(lines):
    """Report package dicts of ``rpm -qa --qf RPM_QUERY`` lines (gpg-pubkey pseudo packages dropped)."""
    for line in lines:
        fields = line.decode("utf-8", "replace").split("\t")
        if len(fields) != 6 or fields[0] == "gpg-pubkey":
            continue
        name, epoch, version, release, arch, vendor = fields
        epoch = int(epoch) if epoch.isdigit() else None
        full = "%s%s-%s" % ("%d:" % epoch if epoch is not None else "", version, release)
        yield {"manager": "rpm", "name": name, "version": full, "epoch": epoch, "upstream": version,
               "release": release, "arch": None if arch == "(none)" else arch,
               "origin": None if vendor in ("(none)", "") else vendor,
               "status": "installed"}


def rpm_packages(root):
    """The installed rpm packages of ``root``."""
    if not rpm_available(root):
        return
    yield from parse_rpm_packages(rpm_command(root, ["-qa", "--qf", RPM_QUERY]))


def rpm_native_arch(root):
    """The architecture of the ``rpm`` package of ``root``; None without rpm or its database."""
    if not rpm_available(root):
        return None
    for line in rpm_command(root, ["-q", "--qf", "%{ARCH}\\n", "rpm"]):
        text = line.decode("utf-8", "replace").strip()
        if text and " " not in text:
            return text
    return None


def parse_rpm_verify(lines):
    """``(flags, attribute, relative path)`` of ``rpm -V`` lines (``S.5....T.  c /etc/x``, ``missing   c /x``):
    flags ``missing`` or the verify string, attribute ``c`` (config), ``d``, ``g``, ``l``, ``r`` or ``" "``.
    Other lines (dependency problems, script output) are skipped."""
    for line in lines:
        match = _VERIFY_LINE.match(line)
        if match is None:
            continue
        flags, attribute, path = match.groups()
        if flags == b"missing ":
            path = re.sub(rb" \([^()/]*\)$", b"", path)  # " (Permission denied)": lstat's error
            flags = b"missing"
        yield flags.decode("ascii"), attribute.decode("ascii"), _relative(path)


def rpm_paths(root, wanted=None):
    """Relative paths rpm lists for ``root`` (``wanted``: only these, as a dict path -> package name)."""
    found = {} if wanted is not None else set()
    for line in rpm_command(root, ["-qa", "--qf", RPM_FILES]):
        path, _tab, name = line.rpartition(b"\t")
        relative = _relative(path)
        if wanted is None:
            found.add(relative)
        elif relative in wanted and relative not in found:
            found[relative] = name.decode("utf-8", "replace")
    return found


def rpm_file_changes(root, counts=None):
    """Report file records of the package files ``rpm -Va`` finds changed (size, mode, digest, link, owner;
    an mtime alone is not) or missing; ``conffile`` for ``%config`` files."""
    changed = {}
    for flags, attribute, relative in parse_rpm_verify(
            rpm_command(root, ["-Va", "--nodeps", "--noscripts"])):
        if flags == "missing" or RPM_CONTENT_FLAGS.intersection(flags):
            changed.setdefault(relative, (flags, attribute == "c"))
    if not changed:
        return
    owners = rpm_paths(root, changed)
    users, groups = read_passwd(root).by_id, read_group(root).by_id
    root_bytes = os.path.abspath(os.fsencode(root))
    canonical = Canonical(root)
    for listed in sorted(changed):
        flags, conffile = changed[listed]
        package = owners.get(listed)
        relative = canonical(listed)
        if relative is None:  # under a link out of the root: not looked at
            _add(counts, "unreadable")
            continue
        try:
            info = os.lstat(os.path.join(root_bytes, relative))
        except OSError:
            info = None
        if info is None:
            record = deleted_record(relative, package, conffile)
        else:
            record = changed_record(root_bytes, relative, package, conffile, info)
            record["owner"], record["group"] = users.get(info.st_uid), groups.get(info.st_gid)
        _add(counts, record["change"])
        yield record
