# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Staged publishing: what a step writes appears under its own name only whole, and stays there after a crash.

A file, or a directory, is written under a hidden temporary name (a name starting with ``.``, which listings
of finished work skip), made durable, then renamed (or hard-linked) into place, and the directory holding the
new name made durable. A crash before that leaves only the hidden name, which the next run removes or goes
on with; a crash after it leaves the whole thing.

* :class:`StagedFile`: one file. :meth:`StagedFile.create` (a unique temporary name), :meth:`StagedFile.open`
  (a fixed one: a run can go on with what a killed run wrote), then ``write``, :meth:`~StagedFile.commit`
  (fsync, rename, fsync of the directory) or :meth:`~StagedFile.abort`.
* :func:`publish`: many staged files at once with two syncs of their file system whatever their number (an
  fsync per file would dominate a run writing hundreds of small files a second); a file that cannot be placed
  fails alone.
* :class:`StagedDir`: a directory filled under ``.<name>.ferry-tmp-<pid>`` and swapped in whole, exchanged
  atomically with an older one (:func:`exchange`), or where the system cannot, the older one moved aside first;
  either way removed after, and a kill at any point leaves the old directory or the new one to the next run.
* :func:`clean_staged`: the hidden files a killed run left.

Also here, for whatever a step writes: :func:`check_space` (stop before the output's file system gets too
full) and the permissions and owner of the files created (:func:`parse_mode`, :func:`resolve_owner`).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import queue
import re
import shutil
import tempfile
import threading

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import (
    FerryError,
    free_bytes,
    fsync_dir,
    human_bytes,
    readable,
    remove_quietly,
    sync_filesystem,
)

TMP_SUFFIX = ".ferry-tmp"  # a staged file's fixed temporary name: ``.<name>.ferry-tmp`` beside it
DIR_MARK = ".ferry-tmp-"  # a staged directory: ``.<name>.ferry-tmp-<pid>`` beside it
OLD_MARK = ".ferry-old-"  # the directory it replaces, moved aside: ``.<name>.ferry-old-<pid>``


def hidden_name(path, suffix=TMP_SUFFIX):
    """``<dir>/.<name><suffix>``: a hidden name beside ``path``."""
    directory, name = os.path.split(path)
    return os.path.join(directory, "." + name + suffix)


def open_new(path, perms=0o600):
    """A new file at ``path`` (a descriptor open for reading and writing), never through a symlink or a file left
    there: whatever is at ``path`` is removed first. ``perms``: its permissions, less the umask."""
    remove_quietly(path)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), perms)


class StagedFile:
    """A file written under a temporary name, published whole at ``path``.

    ``temp`` is the temporary name, ``handle`` the open file (None once closed), ``info`` whatever the caller
    keeps with the file. ``StagedFile(path, temp)`` stands for a temporary file written already.
    """

    def __init__(self, path, temp, handle=None):
        self.path = path
        self.temp = temp
        self.handle = handle
        self.info = None
        self.published = False
        self.aborted = False

    @classmethod
    def create(cls, path, directory=None, prefix=None, suffix=".tmp"):
        """A new temporary file of a unique name ``<prefix>XXXXXXXX<suffix>`` (``prefix`` by default ``.<name>.``),
        created in ``directory`` (by default beside ``path``), readable by its owner only until
        :meth:`set_mode`."""
        if prefix is None:
            prefix = "." + os.path.basename(path) + "."
        fd, temp = tempfile.mkstemp(prefix=prefix, suffix=suffix,
                                    dir=directory or os.path.dirname(os.path.abspath(path)))
        return cls(path, temp, os.fdopen(fd, "wb"))

    @classmethod
    def open(cls, path, temp=None, resume=False, perms=0o600):
        """The temporary file of the fixed name ``temp`` (by default ``.<name>.ferry-tmp`` beside ``path``).

        With ``resume``, the one an earlier run left, when it is there, opened to go on (read and write, at its
        start); otherwise a new one (:func:`open_new`: a file or symlink at ``temp`` is replaced, never written
        through) with ``perms``.
        """
        temp = temp or hidden_name(path)
        if resume and os.path.exists(temp):
            return cls(path, temp, open(temp, "r+b"))
        return cls(path, temp, os.fdopen(open_new(temp, perms), "w+b"))

    def write(self, data):
        self.handle.write(data)

    def sync(self):
        """Make what was written durable (flush and fsync)."""
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self):
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def set_mode(self, mode, owner=None):
        """Give the temporary file its final permissions and, with ``owner`` (uid, gid), its owner."""
        os.chmod(self.temp, mode)
        if owner:
            os.chown(self.temp, *owner)

    def place(self, link=False):
        """Put the file in place, without making it durable (:meth:`commit` and :func:`publish` do): renamed (a
        file or symlink at ``path`` is replaced, never followed), or with ``link`` hard-linked, which raises
        ``FileExistsError`` rather than replace a file another process put there meanwhile, and the temporary
        name removed."""
        self.close()
        if link:
            os.link(self.temp, self.path)
            self.published = True
            remove_quietly(self.temp)
        else:
            os.rename(self.temp, self.path)
            self.published = True

    def commit(self, sync=True, sync_dir=True):
        """Publish the file durably: its data synced (``sync`` False: the caller did), renamed into place, and its
        directory synced (``sync_dir`` False: the caller writes there again and syncs it then)."""
        if sync and self.handle is not None:
            self.sync()
        self.place()
        if sync_dir:
            fsync_dir(os.path.dirname(os.path.abspath(self.path)))

    def abort(self, keep=False):
        """Give up: close, and remove the temporary file unless ``keep`` (a later run goes on with it). Nothing more
        once the file is published or aborted (its temporary name may be another file's by then)."""
        self.close()
        if not (keep or self.published or self.aborted):
            remove_quietly(self.temp)
        self.aborted = not self.published


def publish(root, sets, place=None, failed=None):
    """Publish many staged files with two syncs of the file system holding ``root``: the first makes their data
    durable, each is placed, the second makes the new names durable.

    ``sets``: pairs ``(key, [StagedFile, ...])`` (``key``: what the files belong to, the file they were made of,
    say). A set's files are placed in order by ``place(staged)`` (by default :meth:`StagedFile.place`). One that
    cannot be (``FerryError`` or ``OSError``) ends its set: it and those after it are aborted and
    ``failed(key, exc, aborted)`` is called, the ones placed before stay, and the other sets go on. Without
    ``failed`` the error is raised.
    """
    if not any(files for _key, files in sets):
        return
    place = place or StagedFile.place
    sync_filesystem(root)
    for key, files in sets:
        for position, staged in enumerate(files):
            try:
                place(staged)
            except (FerryError, OSError) as exc:
                if failed is None:
                    raise
                aborted = files[position:]
                for item in aborted:
                    item.abort()
                failed(key, exc, aborted)
                break
    sync_filesystem(root)


def clean_staged(directory, prefix=".", suffix=TMP_SUFFIX):
    """Remove the hidden files named ``<prefix>...<suffix>`` in ``directory``: what a killed run left."""
    for entry in os.listdir(directory):
        if entry.startswith(prefix) and entry.endswith(suffix):
            remove_quietly(os.path.join(directory, entry))


class StagedDir:
    """A directory filled under the hidden name ``.<name>.ferry-tmp-<pid>`` beside ``path``, swapped in whole.

    :meth:`clean` finishes or undoes what a killed run left, :meth:`create` makes the directory (``temp``),
    :meth:`commit` swaps it in and :meth:`abort` removes it. A reader of ``path`` sees the old directory or the new
    one, never a mix; after a kill at any point the next run's :meth:`clean` leaves one complete directory there
    (the old or the new), never none.
    """

    def __init__(self, path):
        self.path = path
        self._hidden = hidden_name(path, "")
        self.temp = "%s%s%d" % (self._hidden, DIR_MARK, os.getpid())

    def clean(self):
        """Remove the temporary and moved-aside directories of ``path`` that killed runs left (those of processes
        still alive stay), first putting a complete one back at ``path`` when a kill left it without any."""
        parent = os.path.dirname(os.path.abspath(self.path))
        ours = re.compile(r"%s(%s|%s)(\d+)\Z" % tuple(re.escape(part) for part in (
            os.path.basename(self._hidden), DIR_MARK, OLD_MARK)))
        left = {}
        for entry in os.listdir(parent):
            match = ours.match(entry)
            if match and (int(match.group(2)) == os.getpid() or not _alive(int(match.group(2)))):
                left[entry] = os.path.join(parent, entry)
        if not os.path.lexists(self.path):
            self._recover(left, parent)
        for path in left.values():
            remove_tree(path)

    def _recover(self, left, parent):
        """``path`` is gone: a kill between the two renames of the fallback swap. Its moved-aside directory tells
        that the temporary one beside it was complete (it is only moved once complete): that one goes in place, or
        the moved-aside one back when it is gone."""
        for entry in sorted(left):
            if OLD_MARK not in entry:
                continue
            staged = "%s%s%s" % (self._hidden, DIR_MARK, entry.rsplit(OLD_MARK, 1)[1])
            source = staged if os.path.basename(staged) in left else left[entry]
            os.rename(source, self.path)
            left.pop(os.path.basename(source))
            fsync_dir(parent)
            return

    def create(self, mode=0o755):
        os.mkdir(self.temp, mode)
        return self.temp

    def commit(self):
        """Swap the finished directory in: exchanged with an older one in one ``renameat2(RENAME_EXCHANGE)`` where
        the kernel and file system can, else the older one moved aside and the new one renamed in (a kill between
        the two is finished by the next :meth:`clean`). The older content is removed after."""
        fsync_dir(self.temp)
        parent = os.path.dirname(os.path.abspath(self.path))
        if os.path.lexists(self.path) and exchange(self.temp, self.path):
            fsync_dir(parent)
            remove_tree(self.temp)  # the older content, under the temporary name now
            return
        old = None
        if os.path.lexists(self.path):
            old = "%s%s%d" % (self._hidden, OLD_MARK, os.getpid())
            os.rename(self.path, old)
        try:
            os.rename(self.temp, self.path)
        except OSError:
            if old:
                os.rename(old, self.path)
            raise
        fsync_dir(parent)
        if old:
            remove_tree(old)

    def abort(self):
        if os.path.lexists(self.temp):
            remove_tree(self.temp)


def remove_tree(path):
    """Remove a directory tree, a file or a symlink (never followed), quietly."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        remove_quietly(path)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


# -- atomic exchange of two paths ------------------------------------------------------------------------------
RENAME_EXCHANGE = 2  # linux/fs.h
AT_FDCWD = -100
_RENAMEAT2 = []  # the libc function, looked up once (None: there is none)


def _renameat2():
    if not _RENAMEAT2:
        try:
            import ctypes  # pylint: disable=import-outside-toplevel  # not in every minimal Python build

            function = ctypes.CDLL(None, use_errno=True).renameat2
            function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            _RENAMEAT2.append((function, ctypes.get_errno))
        except (ImportError, OSError, AttributeError):
            _RENAMEAT2.append(None)
    return _RENAMEAT2[0]


def exchange(first, second):
    """Swap two existing paths atomically; False where this system cannot (no ``renameat2`` in the C library, or a
    kernel or file system without ``RENAME_EXCHANGE``), and nothing was changed then."""
    found = _renameat2()
    if found is None:
        return False
    function, get_errno = found
    if function(AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second), RENAME_EXCHANGE) == 0:
        return True
    error = get_errno()
    if error in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(error, os.strerror(error), second)


# -- room --------------------------------------------------------------------------------------------------------
class NoSpace(FerryError):
    """The file system of the output is too full to go on: the run stops (what is published stays)."""


def check_space(directory, needed, min_free, what):
    """Raise :class:`NoSpace` when writing ``needed`` bytes for ``what`` (a file name; None before anything is
    written) would leave less than ``min_free`` bytes free where ``directory`` is, or will be."""
    if not min_free and not needed:
        return
    existing = directory
    while not os.path.isdir(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)  # a directory not made yet: the file system it will be on
    free = free_bytes(existing)
    if free - needed < min_free:
        message = "not enough free space in %s: %s free" % (directory, human_bytes(free))
        if min_free:  # the option of the callers that have one
            message += ", %s must stay free (min_free_mb)" % human_bytes(min_free)
        raise NoSpace(message + (", and %s needs %s" % (readable(what), human_bytes(needed)) if needed else ""))


# -- permissions and owner of the files created -----------------------------------------------------------------
_OCTAL = re.compile(r"^(0o?)?[0-7]+$")
_CLAUSE = re.compile(r"^([ugoa]+)([-+=])([rwxst]*)$")
_WHO = {"u": 0o4700, "g": 0o2070, "o": 0o1007}  # every bit a class of users can have
_BITS = {"r": 0o444, "w": 0o222, "x": 0o111, "s": 0o6000, "t": 0o1000}


def parse_mode(value):
    """Permissions as Ansible's file modules take them: an integer is its value (``mode: 0644`` unquoted is the
    YAML integer 420, which is 0o644), a string is octal (``"0644"``, ``"644"``, ``"0o644"``) or symbolic
    (``"u=rw,g=r,o=r"``, applied to no permissions: the files are new). From 0 to 0o7777."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise FerryError("invalid mode %r: give octal permissions such as '0644', or symbolic ones such as "
                         "'u=rw,g=r,o=r'" % (value,))
    if isinstance(value, int):
        mode = value
    elif _OCTAL.match(value.strip()):
        mode = int(value.strip(), 8)
    else:
        mode = _symbolic_mode(value)
    if not 0 <= mode <= 0o7777:
        raise FerryError("invalid mode %r: permissions go from 0 to 0o7777 (give '0644' quoted, or 420)" % (value,))
    return mode


def _symbolic_mode(text):
    """``u=rw,g=r,o=r`` and the like (``+``, ``-``, ``=``; r, w, x, s, t) applied to no permissions."""
    mode = 0
    for clause in text.split(","):
        match = _CLAUSE.match(clause.strip())
        if not match:
            raise FerryError("invalid mode %r: give octal permissions such as '0644', or symbolic ones such as "
                             "'u=rw,g=r,o=r' (who: u, g, o, a; operator: +, - or =; permissions: r, w, x, s, t)"
                             % (text,))
        users, operator, permissions = match.groups()
        mask = 0
        for who in users.replace("a", "ugo"):
            mask |= _WHO[who]
        bits = mask & sum(_BITS[p] for p in set(permissions))
        if operator == "=":
            mode = (mode & ~mask) | bits
        elif operator == "+":
            mode |= bits
        else:
            mode &= ~bits
    return mode


def resolve_owner(owner, group):
    """(uid, gid) from names or numbers; None when neither is given (-1 keeps that one)."""
    if owner is None and group is None:
        return None
    import grp  # pylint: disable=import-outside-toplevel
    import pwd  # pylint: disable=import-outside-toplevel
    return (_lookup(owner, pwd.getpwnam, "pw_uid", "user"), _lookup(group, grp.getgrnam, "gr_gid", "group"))


def _lookup(name, function, field, what):
    if name is None:
        return -1
    if str(name).isdigit():
        return int(name)
    try:
        return getattr(function(str(name)), field)
    except KeyError:
        raise FerryError("no %s named %s on this host" % (what, name))


class BackgroundWriter:
    """``write(item)`` called on each item :meth:`put` gives, in order, in a thread of its own: zlib, hashlib and
    file writes let go of the GIL, so the producer goes on meanwhile. At most ``ahead`` items wait (bounded
    memory). The thread's first error is raised by the next :meth:`put` or by :meth:`close`; after it, items are
    dropped. :meth:`abort` waits for the thread and drops its error (the caller is failing already)."""

    def __init__(self, write, ahead=1, name="ferry-writer"):
        self.write = write
        self.items = queue.Queue(maxsize=ahead)
        self.error = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            item = self.items.get()
            if item is None:
                return
            if self.error is None:
                try:
                    self.write(item)
                except BaseException as exc:  # pylint: disable=broad-exception-caught
                    self.error = exc  # raised in the producer's thread by put/close

    def put(self, item):
        if self.error is not None:
            raise self.error
        self.items.put(item)

    def close(self):
        self.abort()
        if self.error is not None:
            raise self.error

    def abort(self):
        if self.thread is not None:
            self.items.put(None)
            self.thread.join()
            self.thread = None
