# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""overlay_apply: a scan report and its objects applied to a root.

The report is read (header, packages, files) and every path proven safe before anything is written: relative,
no ``..``, no NUL, never through a symlink (the report's own, or one already in the target root). Then packages,
users and groups, directories, files (each object read once from the source, written under a temporary name in its
directory, sha256 checked, fsync, rename; sparse files with holes; hard links to the first path of their group),
symlinks as stored, deleted records removed, owners by name through the target root's accounts, modes (setuid
after chown), mtimes (directories last, deepest first), timezone, network, and the drift: every file record
compared with the result.

A path whose current state already matches its record (type, mode, owner, size, mtime, sha256, link target) is
left alone, so a rerun, or a run after a kill, only does what is missing.

Every file operation works from directory descriptors opened with ``O_NOFOLLOW | O_DIRECTORY`` from the root down:
a symlink met on the way is refused, never followed (``rootfs.py``); the objects come from a local overlay archive
or the store (``sources.py``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import re
import stat
import subprocess

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import (
    SAMPLE_LIMIT,
    FerryError,
    check_paths,
    readable,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.httpclient import check_http_params
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import SKIP, attempt_step
from ansible_collections.ferry.migrate.plugins.module_utils.core.staging import check_space
from ansible_collections.ferry.migrate.plugins.module_utils.scan.packages import dpkg_packages, rpm_packages
from ansible_collections.ferry.migrate.plugins.module_utils.scan.report import name_of
from ansible_collections.ferry.migrate.plugins.module_utils.scan.rootfs import (
    DIR_FLAGS,
    ObjectWriter,
    StagedEntry,
    Tree,
    ancestors,
    check_name,
    file_sha256,
    kind_of,
    lstat_at,
    make_room,
    remove_entry,
    show,
    temp_name,
    write_error,
)
from ansible_collections.ferry.migrate.plugins.module_utils.scan.sources import NoScan, open_source
from ansible_collections.ferry.migrate.plugins.module_utils.scan.store import SCAN_ID, check_instance
from ansible_collections.ferry.migrate.plugins.module_utils.scan.system import read_group, read_passwd

TIMEZONE = re.compile(r"\A[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*\Z")
SHOWN = SAMPLE_LIMIT  # drift entries and would-change paths listed in a result
CHECKPOINT_EVERY = 256  # objects between two checkpoint writes


# -- options -------------------------------------------------------------------------------------------------
def check_options(params):
    """Refuse bad values before anything is recorded."""
    check_paths(params, ("root", "src", "state_dir", "ca_path"))
    if bool(params.get("url")) == bool(params.get("src")):
        raise FerryError("give exactly one of url (a store) and src (a local overlay archive)")
    if params.get("url"):
        if not params.get("instance"):
            raise FerryError("url needs instance: the name the scans were uploaded under")
        check_http_params(params, ("url",))
    if params.get("instance") is not None:
        check_instance(params["instance"])
    if params.get("scan") is not None and not SCAN_ID.match(params["scan"]):
        raise FerryError("scan %r is not a scan id (16 lower-case hex digits)" % (params["scan"],))
    if package_mode(params) == "install" and os.path.abspath(params["root"]) != "/":
        raise FerryError("packages=install needs root /: the package manager installs on this system (root is %s)"
                         % params["root"])


def package_mode(params):
    return params.get("packages") or ("install" if os.path.abspath(params["root"]) == "/" else "skip")


# -- owners ---------------------------------------------------------------------------------------------------
class Owners:
    """uid/gid of a record: its owner and group names looked up in the target root's etc/passwd and etc/group,
    the record's numbers when a name is unknown there. ``profile``: the accounts the users step creates, counted
    as there (check mode and the plan, made before the users exist)."""

    def __init__(self, root, profile=None):
        exists = os.path.isdir(root)
        self.users = dict(read_passwd(root).by_name) if exists else {}
        self.groups = dict(read_group(root).by_name) if exists else {}
        for user in (profile or {}).get("users") or ():
            self.users.setdefault(user.get("name"), user.get("uid"))
        for group in (profile or {}).get("groups") or ():
            self.groups.setdefault(group.get("name"), group.get("gid"))

    def ids(self, record):
        uid = self.users.get(record.get("owner")) if record.get("owner") else None
        gid = self.groups.get(record.get("group")) if record.get("group") else None
        return (record["uid"] if uid is None else uid, record["gid"] if gid is None else gid)


class Entry:
    """What the writer keeps of a file record (a report can have millions: no dicts)."""

    __slots__ = ("path", "type", "mode", "uid", "gid", "owner", "group", "mtime_ns", "size", "sparse", "target",
                 "sha256")

    def __init__(self, path, record):
        self.path = path
        self.type = record.get("type")
        self.mode = record.get("mode")
        self.uid = record.get("uid")
        self.gid = record.get("gid")
        self.owner = record.get("owner")
        self.group = record.get("group")
        self.mtime_ns = record.get("mtime_ns")
        self.size = record.get("size")
        self.sparse = bool(record.get("sparse"))
        self.target = name_of(record, "target") if self.type == "symlink" else None
        self.sha256 = record.get("sha256")

    def get(self, key, default=None):
        return getattr(self, key, default) if key in self.__slots__ else default

    def __getitem__(self, key):
        return getattr(self, key)


# -- checking the report (before anything is written) ---------------------------------------------------------
def _integer(record, key, path, low=0, high=None):
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        raise FerryError("the report's record of %s has a bad %s: %r" % (show(path), key, value))


def check_record(record, path):
    """The fields the writer uses, typed; the symlink target free of NUL."""
    if record.get("change") == "deleted":
        return
    kind = record.get("type")
    if kind not in ("file", "dir", "symlink"):
        raise FerryError("the report's record of %s has the type %r: only file, dir and symlink are applied"
                         % (show(path), kind))
    _integer(record, "mode", path, 0, 0o7777)
    _integer(record, "uid", path)
    _integer(record, "gid", path)
    if kind == "file":
        _integer(record, "size", path)
        if not re.match(r"\A[0-9a-f]{64}\Z", str(record.get("sha256"))):
            raise FerryError("the report's record of %s has no sha256" % show(path))
    if kind == "symlink":
        target = name_of(record, "target")
        if not target or b"\0" in target:
            raise FerryError("the report's symlink %s has an empty target or one holding NUL: refused" % show(path))


def gather_links(report):
    """Pass 1: every name and record checked; the report's symlinks returned (a set of paths)."""
    links = set()
    for record in report.files():
        path = name_of(record)
        check_name(path)
        check_record(record, path)
        if record.get("type") == "symlink" and record.get("change") != "deleted":
            links.add(path)
    return links


# -- the plan: what differs, found before anything is written ----------------------------------------------

def differences(tree, path, record, owners, mtime=True, rewritten=None):
    """The fields in which ``path`` in the root differs from its record: ``missing``, ``type``, ``mode``,
    ``owner``, ``size``, ``sha256``, ``target``, ``mtime`` (not for directories: their mtimes are set last).
    ``rewritten``: path -> (sha256 in the report, sha256 a policy wrote instead), as :func:`apply_network` does."""
    info = tree.lstat(path)
    if info is None:
        return ["missing"]
    if kind_of(info) != record["type"]:
        return ["type"]
    found = []
    if record["type"] != "symlink" and stat.S_IMODE(info.st_mode) != record["mode"]:
        found.append("mode")
    if (info.st_uid, info.st_gid) != owners.ids(record):
        found.append("owner")
    if record["type"] == "symlink":
        fd, name = tree.parent(path)
        if os.readlink(name, dir_fd=fd) != record.target:
            found.append("target")
    alias = (rewritten or {}).get(path)
    if record["type"] == "file" and alias and alias[0] == record.sha256:
        return found + ([] if file_sha256(tree, path) == alias[1] else ["sha256"])
    if record["type"] == "file":
        if info.st_size != record["size"]:
            found.append("size")
        elif file_sha256(tree, path) != record.sha256:
            found.append("sha256")
    if mtime and record["type"] != "dir" and info.st_mtime_ns != record["mtime_ns"]:
        found.append("mtime")
    return found


CONTENT = ("missing", "type", "size", "sha256", "target")


def _refuse_full_directory(tree, path):
    """A file or a symlink of the report where the root has a directory that is not empty: refused now, before
    anything is written (an empty one is replaced)."""
    info = tree.lstat(path)
    if info is None or not stat.S_ISDIR(info.st_mode):
        return
    fd = tree.open_dir(path)
    try:
        if os.listdir(fd):
            raise FerryError("%s in %s is a directory that is not empty, where the report has no directory: "
                             "refused" % (show(path), tree.root))
    finally:
        os.close(fd)


class Plan:
    """What a run does, found by comparing each record with the root."""

    def __init__(self):
        self.dirs = []  # (entry, "create" | "meta" | None) in report order: parents first
        self.content = {}  # sha256 -> [entry, ...]: files whose content is written
        self.empty = []  # files of size 0
        self.symlinks = []  # (entry, "create" | "meta")
        self.links = []  # (entry, first path): hard links to (re)make
        self.meta = []  # entries whose owner, mode or mtime only differ
        self.deletes = []
        self.unchanged = 0
        self.bytes = 0
        self.changes = []  # a few paths that change, for the result
        self.parents = set()  # directories of the paths that change: their mtimes are kept or set after

    def note(self, path, what):
        self.parents.add(path.rpartition(b"/")[0])
        if len(self.changes) < SHOWN:
            self.changes.append({"path": show(path), "change": what})

    def counts(self):
        return {"dirs": sum(1 for _entry, action in self.dirs if action == "create"),
                "files": sum(len(targets) for targets in self.content.values()) + len(self.empty),
                "objects": len(self.content), "bytes": self.bytes,
                "symlinks": sum(1 for _entry, action in self.symlinks if action == "create"),
                "hardlinks": len(self.links),
                "metadata": len(self.meta) + sum(1 for entries in (self.dirs, self.symlinks)
                                                 for _entry, action in entries if action == "meta"),
                "deleted": len(self.deletes), "unchanged": self.unchanged}

    def changed(self):
        counts = self.counts()
        return any(value for key, value in counts.items() if key not in ("unchanged", "objects", "bytes"))


def make_plan(report, tree, links, owners, source, rewritten=None):
    """Pass 2: ancestors checked (never through a symlink of the report or of the root), every object needed
    proven in the source, and each record compared with the root."""
    plan = Plan()
    checked = set()
    groups = {}  # link_group -> (first path, whether its content is rewritten)
    for record in report.files():
        path = name_of(record)
        for above in ancestors(path):
            if above in links:
                raise FerryError("the report's path %s goes through %s, a symlink the report creates: refused"
                                 % (show(path), show(above)))
        tree.check_parents(path, checked)
        if record.get("change") == "deleted":
            if tree.lstat(path) is not None:
                plan.deletes.append(path)
                plan.note(path, "delete")
            continue
        _plan_record(plan, tree, Entry(path, record), record.get("link_group"), groups, owners, source, rewritten)
    return plan


def _plan_record(plan, tree, entry, group, groups, owners, source, rewritten):
    if entry.type == "file" and group is not None and group in groups:
        first, rewritten = groups[group]
        here, there = tree.lstat(entry.path), tree.lstat(first)
        if rewritten or here is None or there is None or (here.st_dev, here.st_ino) != (there.st_dev, there.st_ino):
            plan.links.append((entry, first))
            plan.note(entry.path, "hardlink")
        else:
            plan.unchanged += 1
        return
    entry_diffs = differences(tree, entry.path, entry, owners, rewritten=rewritten)
    if entry_diffs == ["type"] and entry.type != "dir":
        _refuse_full_directory(tree, entry.path)
    rewrite = any(field in CONTENT for field in entry_diffs)
    if entry.type == "file" and group is not None:
        groups[group] = (entry.path, rewrite)
    if not entry_diffs:
        plan.unchanged += 1
        if entry.type == "dir":
            plan.dirs.append((entry, None))
        return
    plan.note(entry.path, ",".join(entry_diffs))
    if entry.type == "dir":
        plan.dirs.append((entry, "create" if rewrite else "meta"))
    elif entry.type == "symlink":
        plan.symlinks.append((entry, "create" if rewrite else "meta"))
    elif not rewrite:
        plan.meta.append(entry)
    elif entry.size == 0:
        plan.empty.append(entry)
    else:
        sha = entry.sha256
        if source.size_of(sha) != entry.size:
            raise FerryError("object %s of %s (%d bytes) is not in %s: refused" % (
                sha, show(entry.path), entry.size, source.name))
        if sha not in plan.content:
            plan.content[sha] = []
            plan.bytes += entry.size
        plan.content[sha].append(entry)


# -- writing the plan -----------------------------------------------------------------------------------------
class Writer:
    """The plan applied to the tree; ``step`` gives progress, checkpoints and the STOP file."""

    def __init__(self, tree, plan, owners, step):
        self.tree = tree
        self.plan = plan
        self.owners = owners
        self.step = step
        self.done_bytes = 0
        self.done_objects = 0
        self.checkpoint = {"objects": 0, "parts": []}

    def progress(self, amount):
        self.done_bytes += amount
        self.step.progress(self.done_bytes)

    def directories(self):
        for entry, action in self.plan.dirs:
            if action is None:
                continue
            fd, name = self.tree.parent(entry.path, create=True)
            if action == "create":
                info = lstat_at(fd, name)
                if info is not None and not stat.S_ISDIR(info.st_mode):
                    remove_entry(fd, name, entry.path, self.tree.root)
                try:
                    os.mkdir(name, 0o700, dir_fd=fd)
                except FileExistsError:
                    pass
            self._fix_at(fd, name, entry, DIR_FLAGS, mtime=False)

    def deletes(self):
        """Remove the deleted records' paths; a directory that is not empty stays (the drift lists it)."""
        for path in self.plan.deletes:
            fd, name = self.tree.parent(path)
            if fd is not None:
                remove_entry(fd, name, path, self.tree.root, keep_full=True)

    def objects(self, source):
        writers = {}
        try:
            for sha, offset, reader, length in source.pieces(set(self.plan.content)):
                if sha is None:  # a part of the store read to its end
                    self.checkpoint["parts"].append("%s/%s" % offset)
                    self.step.save_checkpoint(self.checkpoint)
                    continue
                writer = writers.get(sha)
                if writer is None:
                    self.step.check_stop("%d object(s), %d byte(s)" % (self.done_objects, self.done_bytes))
                    writer = writers[sha] = ObjectWriter(sha, self.plan.content[sha][0].size,
                                                         self.plan.content[sha]).start(self.tree)
                if writer.feed(offset, reader, length, self.progress):
                    del writers[sha]
                    writer.finish(self.tree, self.owners)
                    self._object_done()
        except BaseException:
            for writer in writers.values():
                writer.abort()
            raise
        if writers:
            for writer in writers.values():
                writer.abort()
            raise FerryError("%d object(s) were not complete in the source (%s first): refused"
                             % (len(writers), sorted(writers)[0]))

    def _object_done(self):
        self.done_objects += 1
        self.checkpoint["objects"] = self.done_objects
        if self.done_objects % CHECKPOINT_EVERY == 0:
            self.step.save_checkpoint(self.checkpoint)

    def empty_files(self):
        for entry in self.plan.empty:
            StagedEntry(self.tree, entry.path).publish(0, self.owners.ids(entry), entry.mode, entry.mtime_ns)

    def symlinks(self):
        for entry, action in self.plan.symlinks:
            fd, name = self.tree.parent(entry.path, create=True)
            if action == "create":
                temp = temp_name(name)
                remove_entry(fd, temp, entry.path, self.tree.root)
                try:
                    os.symlink(entry.target, temp, dir_fd=fd)
                    self._owner_time(fd, temp, entry)
                    make_room(fd, name, entry.path, self.tree.root)
                    os.rename(temp, name, src_dir_fd=fd, dst_dir_fd=fd)
                except OSError as exc:
                    raise write_error(exc, entry.path, self.tree.root)
            else:
                self._owner_time(fd, name, entry)

    def hard_links(self):
        for entry, first in self.plan.links:
            first_fd = self.tree.open_dir(first.rpartition(b"/")[0])
            try:
                fd, name = self.tree.parent(entry.path, create=True)
                temp = temp_name(name)
                remove_entry(fd, temp, entry.path, self.tree.root)
                os.link(first.rpartition(b"/")[2], temp, src_dir_fd=first_fd, dst_dir_fd=fd, follow_symlinks=False)
                make_room(fd, name, entry.path, self.tree.root)
                os.rename(temp, name, src_dir_fd=fd, dst_dir_fd=fd)
            except OSError as exc:
                raise write_error(exc, entry.path, self.tree.root)
            finally:
                os.close(first_fd)

    def metadata(self):
        for entry in self.plan.meta:
            fd, name = self.tree.parent(entry.path)
            self._fix_at(fd, name, entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, mtime=True)

    def directory_times(self, entries):
        """mtimes of the directories, deepest first (writing in a directory changes its own); the count set."""
        changed = 0
        for path, mtime_ns in sorted(entries, key=lambda item: -item[0].count(b"/")):
            fd, name = self.tree.parent(path)
            info = lstat_at(fd, name) if fd is not None else None
            if info is not None and stat.S_ISDIR(info.st_mode) and info.st_mtime_ns != mtime_ns:
                os.utime(name, ns=(mtime_ns, mtime_ns), dir_fd=fd, follow_symlinks=False)
                changed += 1
        return changed

    def _fix_at(self, fd, name, entry, flags, mtime):
        try:
            handle = os.open(name, flags, dir_fd=fd)
        except OSError as exc:
            raise write_error(exc, entry.path, self.tree.root)
        try:
            os.fchown(handle, *self.owners.ids(entry))
            os.fchmod(handle, entry.mode)  # after chown, which clears setuid and setgid
            if mtime:
                os.utime(handle, ns=(entry.mtime_ns, entry.mtime_ns))
        finally:
            os.close(handle)

    def _owner_time(self, fd, name, entry):
        os.chown(name, *self.owners.ids(entry), dir_fd=fd, follow_symlinks=False)
        os.utime(name, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=fd, follow_symlinks=False)


# -- packages -------------------------------------------------------------------------------------------------
def run_command(argv, env=None):
    """(return code, the end of what it printed); 127 when the program is missing."""
    try:
        done = subprocess.run(  # pylint: disable=ansible-bad-function  # the engine runs without a module
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, check=False)
    except OSError as exc:
        return 127, "%s: %s" % (argv[0], exc.strerror)
    return done.returncode, done.stdout.decode("utf-8", "replace")[-2000:]


def installed_versions(manager):
    """name -> version of what this system has installed (root /)."""
    found = dpkg_packages("/") if manager == "dpkg" else rpm_packages("/")
    return dict((package["name"], package["version"]) for package in found)


def package_command(manager, specs):
    if manager == "dpkg":
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        return ["apt-get", "install", "-y", "--no-install-recommends"] + specs, env
    return ["dnf", "install", "-y"] + specs, None


def package_spec(manager, package, versioned):
    if not versioned:
        return package["name"]
    return ("%s=%s" if manager == "dpkg" else "%s-%s") % (package["name"], package["version"])


def apply_packages(packages, mode, check_mode, run=run_command):
    """Install the report's packages (root /): all at once with their versions, and when that fails each one with
    its version, else by name only (``fallback``), else ``failed``. Already installed at the version: skipped."""
    packages = list(packages)
    result = {"mode": mode, "installed": [], "fallback": [], "failed": [], "present": 0, "skipped": 0}
    if mode == "skip":
        result["skipped"] = len(packages)
        return result
    by_manager = {}
    for package in packages:
        by_manager.setdefault(package.get("manager") or "dpkg", []).append(package)
    for manager, group in sorted(by_manager.items()):
        have = installed_versions(manager)
        wanted = [package for package in group if have.get(package["name"]) != package["version"]]
        result["present"] += len(group) - len(wanted)
        if check_mode or not wanted:
            result["installed"].extend(package_spec(manager, package, True) for package in wanted)
            continue
        _install(manager, wanted, result, run)
    return result


def _install(manager, wanted, result, run):
    argv, env = package_command(manager, [package_spec(manager, package, True) for package in wanted])
    code, _output = run(argv, env)
    if code == 0:
        result["installed"].extend(package_spec(manager, package, True) for package in wanted)
        return
    for package in wanted:
        for versioned, bucket in ((True, "installed"), (False, "fallback")):
            argv, env = package_command(manager, [package_spec(manager, package, versioned)])
            code, output = run(argv, env)
            if code == 0:
                result[bucket].append(package_spec(manager, package, versioned))
                break
        else:
            result["failed"].append({"name": package["name"], "version": package["version"],
                                     "output": output.strip().splitlines()[-1:] or [""]})


# -- users and groups -----------------------------------------------------------------------------------------
ACCOUNT = re.compile(r"\A[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?\Z")


def apply_accounts(root, profile, tree, check_mode, run=run_command):
    """Groups, then users, of the install profile, with their uid/gid kept (``--prefix root`` when root is not
    /); names the target has already are left alone and listed in ``existing``."""
    result = {"groups": [], "users": [], "existing": [], "failed": []}
    prefix = [] if root == "/" else ["--prefix", root]
    if not check_mode and prefix:
        _account_files(tree)
    groups = dict(read_group(root).by_name) if os.path.isdir(root) else {}
    users = dict(read_passwd(root).by_name) if os.path.isdir(root) else {}
    for group in profile.get("groups") or ():
        argv = ["groupadd"] + prefix + ["-g", str(group.get("gid")), group.get("name") or ""]
        _account(result, "groups", group.get("name"), groups, argv, check_mode, run)
        groups.setdefault(group.get("name"), group.get("gid"))
    for user in profile.get("users") or ():
        extra = [name for name in user.get("groups") or () if name in groups]
        argv = ["useradd"] + prefix + ["-M", "-u", str(user.get("uid")), "-g", str(user.get("gid")),
                                       "-d", user.get("home") or "/", "-s", user.get("shell") or "/bin/sh",
                                       "-c", user.get("gecos") or ""]
        argv += (["-G", ",".join(extra)] if extra else []) + [user.get("name") or ""]
        _account(result, "users", user.get("name"), users, argv, check_mode, run)
    return result


def _account_files(tree):
    """What ``useradd --prefix`` needs: etc/ (it creates passwd and group), and etc/shadow and etc/gshadow, without
    which it writes the password field into passwd instead of ``x``."""
    fd = tree.open_dir(b"etc")
    try:
        for name in (b"shadow", b"gshadow"):
            try:
                os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=fd))
            except FileExistsError:
                pass
    finally:
        os.close(fd)


def _account(result, kind, name, existing, argv, check_mode, run):
    if not isinstance(name, str) or not ACCOUNT.match(name) or any("\n" in arg or ":" in arg for arg in argv[1:]):
        result["failed"].append({"name": readable(str(name)), "error": "not a valid account name or field"})
    elif name in existing:
        result["existing"].append(name)
    elif check_mode:
        result[kind].append(name)
    else:
        code, output = run(argv, None)
        if code == 0:
            result[kind].append(name)
        else:
            result["failed"].append({"name": name, "error": output.strip()[-300:]})


# -- timezone and network --------------------------------------------------------------------------------------
def write_small(tree, path, data, mode=0o644, owner=(0, 0), check_mode=False):
    """A small file of the root, replaced only when its content differs; True when it was (or would be)."""
    fd = tree.open_file(path)
    if fd is not None:
        try:
            same = os.read(fd, len(data) + 1) == data
        finally:
            os.close(fd)
        if same:
            return False
    if not check_mode:
        _write_small(tree, path, data, mode, owner)
    return True


def _write_small(tree, path, data, mode, owner):
    staged = StagedEntry(tree, path)
    staged.write_at(0, data)
    staged.publish(len(data), owner, mode, None)


def apply_timezone(tree, zone, check_mode):
    """etc/timezone and the etc/localtime symlink to /usr/share/zoneinfo/<zone>."""
    if not zone:
        return {"timezone": None, "changed": False}
    if not TIMEZONE.match(zone) or ".." in zone.split("/"):
        raise FerryError("the report's timezone %r is not a zone name: refused" % (zone,))
    changed = write_small(tree, b"etc/timezone", zone.encode("ascii") + b"\n", check_mode=check_mode)
    target = b"/usr/share/zoneinfo/" + zone.encode("ascii")
    fd, name = tree.parent(b"etc/localtime")
    current = None
    if fd is not None:
        try:
            current = os.readlink(name, dir_fd=fd)
        except OSError:
            current = None
    if current != target:
        changed = True
        if not check_mode:
            fd, name = tree.parent(b"etc/localtime", create=True)
            temp = temp_name(name)
            remove_entry(fd, temp, b"etc/localtime", tree.root)
            os.symlink(target, temp, dir_fd=fd)
            make_room(fd, name, b"etc/localtime", tree.root)
            os.rename(temp, name, src_dir_fd=fd, dst_dir_fd=fd)
    return {"timezone": zone, "changed": changed}


STANZA = ("iface", "mapping", "auto", "source", "source-directory", "no-auto-down", "no-scripts")


def dhcp_interfaces(text):
    """ifupdown's interfaces file with every ``iface <name> inet|inet6 static`` stanza turned to dhcp, its
    address, netmask and gateway lines dropped; (new text, names changed)."""
    lines, changed, static = [], [], False
    for line in text.splitlines(True):
        words = line.split()
        if words and (words[0] in STANZA or words[0].startswith("allow-")):
            static = False
        if len(words) >= 4 and words[0] == "iface" and words[2] in ("inet", "inet6") and words[3] == "static":
            indent = line[:len(line) - len(line.lstrip())]
            ending = "\n" if line.endswith("\n") else ""
            line = indent + " ".join(words[:3] + ["dhcp"] + words[4:]) + ending
            changed.append(words[1])
            static = True
        elif static and words and words[0] in ("address", "netmask", "gateway"):
            continue
        lines.append(line)
    return "".join(lines), changed


INTERFACES = b"etc/network/interfaces"


def apply_network(tree, policy, check_mode, previous=None):
    """The network policy; ``rewritten``: the interfaces file's sha256 before and after the rewrite (the report's
    and the one the policy leaves), so that a rerun and the drift take the rewritten file for the right one.
    ``previous``: that of the last run."""
    result = {"policy": policy, "changed": False, "interfaces": [], "rewritten": None}
    if policy != "dhcp":
        return result
    info = tree.lstat(INTERFACES)
    fd = tree.open_file(INTERFACES) if info is not None and stat.S_ISREG(info.st_mode) else None
    if fd is None:
        return result
    try:
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(1 << 20)
    except OSError as exc:
        raise FerryError("cannot read %s in %s: %s" % (show(INTERFACES), tree.root, exc.strerror))
    text = data.decode("utf-8", "surrogateescape")
    new, result["interfaces"] = dhcp_interfaces(text)
    if new == text:
        if previous and previous.get("to") == hashlib.sha256(data).hexdigest():
            result["rewritten"] = previous
        return result
    encoded = new.encode("utf-8", "surrogateescape")
    result["rewritten"] = {"from": hashlib.sha256(data).hexdigest(), "to": hashlib.sha256(encoded).hexdigest()}
    result["changed"] = write_small(tree, INTERFACES, encoded, stat.S_IMODE(info.st_mode),
                                    (info.st_uid, info.st_gid), check_mode)
    return result


def rewrites(network):
    """The path -> (report sha256, written sha256) map :func:`differences` takes, from a network result."""
    found = (network or {}).get("rewritten")
    return {INTERFACES: (found["from"], found["to"])} if found else {}


# -- drift ----------------------------------------------------------------------------------------------------
def drift(report, tree, owners, rewritten=None):
    """Every file record compared with the root after the run: (the first differences, their number)."""
    found, count = [], 0
    groups = {}
    for record in report.files():
        path = name_of(record)
        if record.get("change") == "deleted":
            fields = ["present"] if tree.lstat(path) is not None else []
        else:
            entry = Entry(path, record)
            fields = differences(tree, path, entry, owners, mtime=False, rewritten=rewritten)
            fields += _link_drift(tree, path, record.get("link_group"), groups) if entry.type == "file" else []
        if fields:
            count += 1
            if len(found) < SHOWN:
                found.append({"path": show(path), "fields": fields})
    return found, count


def _link_drift(tree, path, group, groups):
    if group is None:
        return []
    info = tree.lstat(path)
    inode = (info.st_dev, info.st_ino) if info is not None else None
    if group not in groups:
        groups[group] = inode
        return []
    return [] if inode is not None and groups[group] == inode else ["link_group"]


# -- the module's run -----------------------------------------------------------------------------------------
def run(params, check_mode):
    check_options(params)
    root = os.path.abspath(params["root"])
    try:
        source = open_source(params)
    except NoScan as exc:
        if not check_mode:
            raise
        # what a run would find once the source's upload (pending in the same check) has happened
        return dict(decision="run", changed=True, pending="check mode: %s" % exc)
    try:
        attempt = attempt_step(params, "overlay_apply", dict(source.identity(), root=root, **_choices(params)),
                               check_mode)
        if attempt.decision == SKIP:
            return dict((attempt.record or {}).get("result") or {}, decision=SKIP, changed=False)
        return _apply(params, check_mode, root, source, attempt)
    finally:
        source.close()


def _choices(params):
    return {"packages": package_mode(params), "users": params["users"], "timezone": params["timezone"],
            "network": params["network"], "drift": params["drift"], "fail_on_drift": params["fail_on_drift"]}


def _apply(params, check_mode, root, source, attempt):
    previous = _previous_rewrite(attempt) if params["network"] == "dhcp" else None
    if not attempt.runs:
        return _predict(params, root, source, attempt, previous)
    with attempt.running(unit="bytes") as step:
        checked = _plan(params, root, source, previous)  # nothing is written before it is all checked
        tree = Tree(root)
        try:
            result = _write(params, root, source, tree, step, checked, previous)
        finally:
            tree.close()
        result["decision"] = attempt.decision
        step.complete(counts=result["applied"], result=_summary(result))
    if result["drift_count"] and params["fail_on_drift"]:
        raise _Drift(result)
    return result


class _Drift(FerryError):
    def __init__(self, result):
        FerryError.__init__(self, "%d path(s) differ from the report after the apply (first: %s)" % (
            result["drift_count"], result["drift"][0]["path"] if result["drift"] else "?"))
        self.result = dict((key, result[key]) for key in ("applied", "drift", "drift_count", "changed"))


def _summary(result):
    return dict((key, result[key]) for key in ("applied", "drift_count", "drift", "packages", "users",
                                               "timezone", "network", "scan"))


def kept_times(tree, plan, params):
    """(path, mtime_ns) of the directories the run writes in that the report does not list (a package's, such as
    etc/): writing there changes their mtime, which is put back after."""
    listed = set(entry.path for entry, _action in plan.dirs)
    touched = set(plan.parents)
    touched.update([b"etc"] if params["timezone"] else [])
    touched.update([b"etc/network"] if params["network"] == "dhcp" else [])
    kept = []
    for path in touched - listed:
        info = tree.lstat(path) if path else None
        if info is not None and stat.S_ISDIR(info.st_mode):
            kept.append((path, info.st_mtime_ns))
    return kept


def _previous_rewrite(attempt):
    """The network rewrite the last run recorded (see :func:`apply_network`)."""
    return (((attempt.record or {}).get("result") or {}).get("network") or {}).get("rewritten")


def _plan(params, root, source, previous):
    """Passes 1 and 2 over the report, reading the root only: (header, profile, plan, directory times to keep)."""
    report = source.report()
    links = gather_links(report)
    profile = report.header.get("install_profile") or {}
    tree = Tree(root, dry=True)
    try:
        plan = make_plan(source.report(), tree, links, Owners(root, profile), source,
                         rewrites({"rewritten": previous}))
        return report.header, profile, plan, kept_times(tree, plan, params)
    finally:
        tree.close()


def _predict(params, root, source, attempt, previous):
    """Check mode: every check of a real run, and what it would change; nothing written."""
    header, profile, plan, _kept = _plan(params, root, source, previous)
    tree = Tree(root, dry=True)
    try:
        packages = apply_packages(source.report().packages(), package_mode(params), True)
        users = apply_accounts(root, profile, tree, True) if params["users"] else None
        zone = apply_timezone(tree, profile.get("timezone"), True) if params["timezone"] else None
        network = apply_network(tree, params["network"], True, previous)
    finally:
        tree.close()
    changed = (plan.changed() or bool(packages["installed"]) or bool(users and (users["groups"] or users["users"]))
               or bool(zone and zone["changed"]) or network["changed"])
    return {"decision": attempt.decision, "changed": changed, "applied": plan.counts(), "changes": plan.changes,
            "packages": packages, "users": users, "timezone": zone, "network": network, "drift": [],
            "drift_count": 0, "scan": _scan_of(source, header)}


def _scan_of(source, header):
    return {"scan": getattr(source, "scan", None), "created": header.get("created"),
            "system": header.get("system")}


def _write(params, root, source, tree, step, checked, previous):
    header, profile, plan, kept = checked
    # before packages and users: a target too small fails here, not halfway through its files
    check_space(root, plan.bytes, 0, "the %d file content(s) of the scan" % len(plan.content))
    step.progress(0, total=plan.bytes, unit="bytes", flush=True)
    packages = apply_packages(source.report().packages(), package_mode(params), False)
    users = apply_accounts(root, profile, tree, False) if params["users"] else None
    writer = Writer(tree, plan, Owners(root), step)
    writer.directories()
    writer.deletes()
    writer.objects(source)
    writer.empty_files()
    writer.symlinks()
    writer.hard_links()
    writer.metadata()
    zone = apply_timezone(tree, profile.get("timezone"), False) if params["timezone"] else None
    network = apply_network(tree, params["network"], False, previous)
    times = writer.directory_times([(entry.path, entry.mtime_ns) for entry, _action in plan.dirs] + kept)
    found, count = drift(source.report(), tree, writer.owners, rewrites(network)) if params["drift"] else ([], 0)
    applied = dict(plan.counts(), directory_times=times)
    changed = (plan.changed() or bool(times) or bool(packages["installed"] or packages["fallback"])
               or bool(users and (users["groups"] or users["users"])) or bool(zone and zone["changed"])
               or network["changed"])
    return {"changed": changed, "applied": applied, "changes": plan.changes, "packages": packages, "users": users,
            "timezone": zone, "network": network, "drift": found, "drift_count": count,
            "scan": _scan_of(source, header)}
