# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rsync over ssh: the command line, its output read as it comes (progress, itemized changes, statistics) and its
errors told apart (ssh's on its stderr, missing and vanished files, files rsync could not copy).

The output is read with ``LC_ALL=C`` and ``--no-human-readable``: plain numbers, English messages. rsync writes
a name holding a newline or a byte it cannot print as ``\\#ooo`` (octal), so each item is one line.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import os
import posixpath
import re
import select
import shutil
import subprocess
import tempfile
import time

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import SAMPLE_LIMIT, FerryError, readable

EXIT_PARTIAL = 23   # some files or attributes were not transferred
EXIT_VANISHED = 24  # source files vanished while the list was made or sent
SHOWN_ERRORS = 10
TAIL_LINES = 8
SSH_TEXT = 1 << 16  # ssh's own messages come first and are short
STOP_POLL = 1.0     # seconds between looks at the journal's STOP file

_PROGRESS = re.compile(rb"^\s*(\d+)\s+(\d+)%")
_DELETING = re.compile(rb"^\*deleting +(.*)$")
_ITEM = re.compile(rb"^([<>ch.][fdLDS][^ ]{9}) (.*)$")
_STATS = {
    b"Number of files": "files",
    b"Number of created files": "created",
    b"Number of deleted files": "deleted",
    b"Number of regular files transferred": "files_transferred",
    b"Total file size": "bytes",
    b"Total transferred file size": "bytes_transferred",
}
_STAT = re.compile(rb"^(" + b"|".join(re.escape(key) for key in _STATS) + rb"): ([0-9,.]+)")
_ESCAPE = re.compile(rb"\\#([0-7]{3})")
_MISSING = re.compile(rb'^rsync: (?:\[\w+\] )?link_stat "(.*)" failed: No such file or directory \(2\)$')
_VANISHED = re.compile(rb'^file has vanished: "(.*)"$')
_SUMMARY = re.compile(rb"^rsync (?:error|warning): ")


def find_rsync():
    path = shutil.which("rsync")
    if not path:
        raise FerryError("rsync is not installed on this host (install the rsync package)")
    return path


def remote(host, path):
    """``host:path/`` as rsync reads it (an IPv6 address in brackets); the trailing ``/`` copies the contents."""
    if ":" in host:
        host = "[%s]" % host
    return "%s:%s/" % (host, path.rstrip("/"))


def rsync_argv(rsync, ssh, source, target, files_from=None, delete=False, bwlimit=0, exclude=(), dry_run=False,
               checksum=False, progress=True):
    """The command: archive mode plus ``-r`` (``--files-from`` turns recursion off, and ``-a`` does not turn it
    back on), ``-s`` (names go over the protocol, never through the remote shell), itemized changes, statistics.
    ``source`` and ``target`` end with ``/``: the contents of one root go into the other."""
    argv = [rsync, "-a", "-r", "-s", "--itemize-changes", "--no-human-readable",
            "--info=%s" % ("progress2,stats2" if progress else "stats2"), "-e", ssh]
    if files_from:
        argv += ["--from0", "--files-from=%s" % files_from]
    if delete:
        argv.append("--delete")
    if bwlimit:
        argv.append("--bwlimit=%d" % bwlimit)
    if checksum:
        argv.append("--checksum")
    if dry_run:
        argv.append("--dry-run")
    argv += ["--exclude=%s" % pattern for pattern in exclude or ()]
    return argv + ["--", source, target]


def unescape(name):
    """A name as rsync printed it (``\\#012`` for a newline), back to its bytes."""
    return _ESCAPE.sub(lambda match: bytes([int(match.group(1), 8) & 0xFF]), name)


def shown(name):
    """A name from rsync's output fit for a result (readable, one line)."""
    return readable(os.fsdecode(unescape(name)))


class Output:
    """rsync's stdout, fed in pieces as they come: progress (``done`` bytes, ``percent``), itemized changes
    (``changes``, the first ``SAMPLE_LIMIT`` in ``changed``; ``deletions``) and the statistics (``stats``)."""

    def __init__(self, on_progress=None):
        self.on_progress = on_progress
        self.done = 0
        self.percent = 0
        self.changes = 0
        self.deletions = 0
        self.changed = []
        self.stats = {}
        self._rest = b""

    def feed(self, data):
        pieces = re.split(rb"[\r\n]", self._rest + data)
        self._rest = pieces.pop()
        for piece in pieces:
            self._line(piece)

    def close(self):
        if self._rest:
            self._line(self._rest)
            self._rest = b""
        return self

    def total_estimate(self):
        """The bytes the run will have gone through, from the last progress line (rsync's own total grows while
        its incremental file list does)."""
        return self.done * 100 // self.percent if self.percent else None

    def _line(self, line):
        match = _PROGRESS.match(line)
        if match:
            self.done, self.percent = int(match.group(1)), int(match.group(2))
            if self.on_progress is not None:
                self.on_progress(self)
            return
        match = _DELETING.match(line) or _ITEM.match(line)
        if match:
            self.changes += 1
            if line.startswith(b"*"):
                self.deletions += 1
            if len(self.changed) < SAMPLE_LIMIT:
                self.changed.append(readable(os.fsdecode(unescape(line))))
            return
        match = _STAT.match(line)
        if match:
            self.stats[_STATS[match.group(1)]] = int(re.sub(rb"[,.]", b"", match.group(2)))


class Errors:
    """rsync's stderr, read line by line after it ended: listed paths missing on the sender (``missing``, relative
    to ``root``), files that vanished while copied (``vanished``), other errors (``errors``), each the first
    ``SAMPLE_LIMIT`` with a count, and the last lines (``tail``)."""

    def __init__(self, lines, root=None):
        self.missing, self.vanished, self.errors = [], [], []
        self.counts = {"missing": 0, "vanished": 0, "errors": 0}
        self.last = collections.deque(maxlen=TAIL_LINES)
        self.text = ""  # the lines that are not rsync's own: what ssh (or the remote shell) said
        prefix = posixpath.normpath(root).rstrip("/").encode("utf-8", "surrogateescape") + b"/" if root else None
        for line in lines.splitlines() if isinstance(lines, bytes) else lines:
            line = line.rstrip(b"\r\n")
            self.last.append(readable(line.decode("utf-8", "replace")))
            match = _MISSING.match(line) or _VANISHED.match(line)
            if match:
                name = match.group(1)
                if prefix and name.startswith(prefix):
                    name = name[len(prefix):]
                self._note("missing" if match.re is _MISSING else "vanished", shown(name))
            elif line.startswith(b"rsync: ") and not _SUMMARY.match(line):
                self._note("errors", readable(line.decode("utf-8", "surrogateescape")))
            elif len(self.text) < SSH_TEXT and not _SUMMARY.match(line):
                self.text += line.decode("utf-8", "replace") + "\n"

    def _note(self, kind, text):
        self.counts[kind] += 1
        found = getattr(self, kind)
        if len(found) < SAMPLE_LIMIT:
            found.append(text)

    def tail(self):
        return " / ".join(line for line in self.last if line.strip()) or "no message"


class Reach:
    """Who rsync reaches, for messages: ``host``, ``port``, ``user``, ``key`` and ``known_hosts`` as given."""

    def __init__(self, host, port=None, user=None, key=None, known_hosts=None):
        self.host, self.port, self.user, self.key, self.known_hosts = host, port, user, key, known_hosts

    def address(self):
        return "%s:%s" % (self.host, self.port or 22)


_SSH_ERRORS = (
    (re.compile(r"REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed"), "changed"),
    (re.compile(r"No \S+ host key is known for|Host key verification failed"), "unknown"),
    (re.compile(r"Permissions 0?[0-7]+ for '.*' are too open|bad permissions"), "key_mode"),
    (re.compile(r"Permission denied \(publickey|Permission denied \(.*publickey"), "refused"),
    (re.compile(r"Load key .*: (invalid format|error in libcrypto)|no such identity"), "bad_key"),
    (re.compile(r"Could not resolve hostname|Name or service not known|Temporary failure in name resolution"),
     "resolve"),
    (re.compile(r"Connection refused|Connection timed out|timed out|No route to host|Network is unreachable|"
                r"Connection closed by .* port|Connection reset"), "reach"),
    (re.compile(r"rsync: (command )?not found|rsync: No such file or directory"), "no_rsync"),
)


def ssh_error(stderr, reach):
    """A clear message for what ssh said on rsync's stderr, or None when ssh was not the problem."""
    for pattern, kind in _SSH_ERRORS:
        match = pattern.search(stderr)
        if match:
            return _ssh_message(kind, match, reach)
    return None


def _ssh_message(kind, match, reach):
    known = reach.known_hosts or "~/.ssh/known_hosts"
    key = reach.key or "(ssh's default keys)"
    user = reach.user or _local_user()
    if kind in ("changed", "unknown"):
        why = ("the host's key differs from the one recorded there" if kind == "changed"
               else "no key of the host is recorded there")
        return ("host key verification failed for %s (known_hosts %s): %s; check the host, then record its key "
                "(ssh-keyscan -p %s %s)" % (reach.address(), known, why, reach.port or 22, reach.host))
    if kind == "refused":
        return "key %s refused by %s@%s (port %s): add its public key to that user's authorized_keys" % (
            key, user, reach.host, reach.port or 22)
    if kind == "key_mode":
        return "ssh refuses key %s: others may read it (chmod 600 it)" % key
    if kind == "bad_key":
        return "ssh cannot load key %s (%s)" % (key, match.group(0))
    if kind == "no_rsync":
        return "rsync is not installed on %s (install the rsync package there)" % reach.host
    return "cannot reach %s over ssh: %s" % (reach.address(), match.group(0))


def _local_user():
    try:
        import pwd  # pylint: disable=import-outside-toplevel
        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return "(this user)"


def check_exit(rc, errors, reach, vanished_ok):
    """Raise :class:`FerryError` unless rsync's exit ``rc`` is success for this pass: listed paths missing on the
    sender are reported, not failed; vanished files are a warning when ``vanished_ok`` (the bulk pass, the source
    still in use). Returns the warnings."""
    if rc == 0:
        return []
    message = ssh_error(errors.text, reach) if rc not in (EXIT_PARTIAL, EXIT_VANISHED) else None
    if message:
        raise FerryError(message)
    if rc in (EXIT_PARTIAL, EXIT_VANISHED) and not errors.errors:
        if not errors.vanished or vanished_ok:
            return ["%d file(s) vanished while copied (the source is in use): %s"
                    % (errors.counts["vanished"], ", ".join(errors.vanished[:SHOWN_ERRORS]))] if errors.vanished else []
        raise FerryError("%d file(s) vanished during the final pass, so the source is still in use: %s"
                         % (errors.counts["vanished"], ", ".join(errors.vanished[:SHOWN_ERRORS])))
    if rc == EXIT_PARTIAL:
        raise FerryError("rsync could not copy everything (exit 23), %d error(s): %s" % (
            errors.counts["errors"], " / ".join(errors.errors[:SHOWN_ERRORS])))
    raise FerryError("rsync failed (exit %d): %s" % (rc, errors.tail()))


def run(argv, output, stop=None, root=None):
    """Run rsync, feeding its stdout to ``output`` as it comes; returns ``(rc, Errors)`` (``root``: the sending
    root, taken off the names in messages). ``stop()`` is asked about once a second; when true, rsync is ended
    (SIGTERM: it removes its temporary file) and rc is None."""
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(  # pylint: disable=ansible-bad-function
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors,
            env=dict(os.environ, LC_ALL="C"))
        stopped = False
        try:
            stopped = _read(process, output, stop)
        finally:
            if process.poll() is None:
                process.terminate()
            process.stdout.close()
            rc = process.wait()
        errors.seek(0)
        return (None if stopped else rc), Errors(errors, root)


def _read(process, output, stop):
    fd = process.stdout.fileno()
    looked = time.monotonic()
    while True:
        ready, _w, _x = select.select([fd], [], [], STOP_POLL)
        if ready:
            data = os.read(fd, 1 << 16)
            if not data:
                output.close()
                return False
            output.feed(data)
        if stop is not None and time.monotonic() - looked >= STOP_POLL:
            looked = time.monotonic()
            if stop():
                return True
