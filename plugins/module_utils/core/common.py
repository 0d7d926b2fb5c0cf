# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small shared helpers: the project's error type and crash-safe file writes.

Plain Python, importable without Ansible, so the engine can be tested and benchmarked directly.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import array
import glob
import hashlib
import json
import math
import os
import struct
import sys
import tempfile
from urllib.parse import unquote


class FerryError(Exception):
    """An error an operator can act on: the message names the cause and the object.

    ``result``: fields the failed task's result carries besides ``msg`` (a verification report, say); an
    instance or a subclass sets it.
    """

    result = None


def exit_with(module, run, warnings=None):
    """End an Ansible module with the result of ``run()``: failed when it raises :class:`FerryError` (with the
    error's ``result`` fields) or its result carries a ``msg``; ``warnings(result)`` lists what to warn of
    first."""
    module.no_log_values.update(url_passwords(module.params))
    try:
        result = run()
    except FerryError as exc:
        module.fail_json(**dict(exc.result or {}, msg=str(exc)))
    for warning in warnings(result) if warnings else ():
        module.warn(warning)
    if result.get("msg"):
        module.fail_json(**result)
    module.exit_json(**result)


def url_passwords(params):
    """The passwords written into URL options (``scheme://user:password@host``), as given and decoded.

    A module adds them to Ansible's ``no_log_values``: Ansible echoes the options back in its result, and
    masks only what it knows to be secret.
    """
    secrets = set()
    for value in params.values():
        if isinstance(value, str) and "://" in value and "@" in value:
            password = value.partition("://")[2].rpartition("@")[0].partition(":")[2]
            if password:
                secrets.update((password, unquote(password)))
    return secrets


def check_ranges(params, ranges):
    """Refuse a numeric option outside its documented range before anything happens.

    ``ranges`` maps an option name to ``(low, high)``, both included, ``high`` None for no upper bound.
    An option absent or None is left to its default. NaN is out of every range.
    """
    for name in sorted(ranges):
        value = params.get(name)
        low, high = ranges[name]
        if value is None:
            continue
        if not value >= low or (high is not None and not value <= high):
            raise FerryError("%s=%r is out of range: %s" % (name, value, range_text(low, high)))


def range_text(low, high):
    """How a range reads in a message and in the documentation."""
    if high is None:
        return "it must be %s or more" % (low,)
    return "it must be from %s to %s" % (low, high)


def check_paths(params, names):
    """Refuse an empty string given for a path option: Ansible would turn it into the module's working
    directory, and a step would read or write there. None (not given) is left to the option's default.

    A list option (``files``) is checked element by element.
    """
    for name in names:
        value = params.get(name)
        values = value if isinstance(value, (list, tuple)) else [value]
        for index, item in enumerate(values):
            if item is not None and not str(item).strip():
                shown = name if values is not value else "%s[%d]" % (name, index)
                raise FerryError("%s is an empty string: give a path (an empty path would mean the module's "
                                 "working directory)" % shown)


def fsync_dir(path):
    """Persist a rename or a new entry in ``path``; without it a crash can lose the entry."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path, data, mode=0o644):
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise
    fsync_dir(directory)


def atomic_write_json(path, value, mode=0o644):
    data = json.dumps(value, indent=2, sort_keys=True, default=str).encode("utf-8") + b"\n"
    atomic_write_bytes(path, data, mode)


def open_private(path, append=False):
    """A state file opened for writing (binary), created readable by its owner only, as journal records are."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    return os.fdopen(os.open(path, flags, 0o600), "ab" if append else "wb")


def read_json(path, default=None):
    """Read a JSON file written by :func:`atomic_write_json`; ``default`` when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read().decode("utf-8"))
    except FileNotFoundError:
        return default
    except ValueError as exc:
        raise FerryError("%s is not valid JSON (%s): remove it or restore it from a backup" % (path, exc))


def remove_quietly(path):
    """Remove a file if it is there; a temporary file left by a failed write, say."""
    try:
        os.unlink(path)
    except OSError:
        pass


SAMPLE_LIMIT = 50  # failures / warnings listed in a task result; a step's report file has them all
_UNPRINTABLE = dict((code, "\\x%02x" % code) for code in list(range(32)) + [127])


def readable(text):
    """``text`` fit for a task result and a log: bytes of a file name that are not UTF-8 as ``\\xff``, control
    characters (a newline in a file name) as ``\\x0a``. Ansible refuses a result that is not valid UTF-8."""
    try:
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # surrogates that do not stand for bytes
        data = text.encode("utf-8", "backslashreplace")
    return data.decode("utf-8", "backslashreplace").translate(_UNPRINTABLE)


def human_bytes(count):
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return ("%d %s" % (value, unit)) if unit == "B" else ("%.1f %s" % (value, unit))
        value /= 1024.0
    return "%d B" % count  # pragma: no cover


def tree_files(root, suffixes):
    """Relative paths of the files under ``root`` whose names end with one of ``suffixes``, sorted,
    walked lazily one directory at a time (trees of millions of files)."""
    root = os.path.abspath(root)
    stack = [""]
    while stack:
        relative = stack.pop()
        directory = os.path.join(root, relative) if relative else root
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name, reverse=True)
        except OSError as exc:
            raise FerryError("cannot list %s: %s" % (directory, exc.strerror))
        files = []
        for entry in entries:
            path = os.path.join(relative, entry.name) if relative else entry.name
            if entry.is_dir(follow_symlinks=False):
                stack.append(path)
            elif entry.name.endswith(suffixes) and entry.is_file():
                files.append(path)
        yield from reversed(files)


def check_dest_file(dest, what="file"):
    """Refuse a ``dest`` a run could not write: a directory, or a path whose first existing ancestor is not a
    directory (a run creates the missing ones)."""
    dest = os.path.abspath(dest)
    if os.path.isdir(dest):
        raise FerryError("dest, %s, is a directory: give the path of the %s to write" % (dest, what))
    above = os.path.dirname(dest)
    while not os.path.lexists(above):
        above = os.path.dirname(above)
    if not os.path.isdir(above):
        raise FerryError("the directory of dest cannot be made: %s is not a directory" % above)


def output_unchanged(path, recorded):
    """Whether the file a complete run recorded (its ``size`` and ``mtime_ns``) is still there as it wrote it: a
    step's skip must not hide an output removed or replaced since."""
    try:
        info = os.stat(path)
    except (TypeError, OSError):
        return False
    return info.st_size == recorded.get("size") and info.st_mtime_ns == recorded.get("mtime_ns")


def prefix_matches(root, pattern):
    """The relative paths under ``root`` that ``pattern`` names: a final ``*`` matches any end of the last name
    (MVI's ``<owner>/trained-models/<id>*``), every other character is literal - a name made of data (an id, an
    owner) holding ``*``, ``?`` or ``[`` must never select other files. Sorted."""
    literal = pattern[:-1] if pattern.endswith("*") else pattern
    escaped = glob.escape(literal) + ("*" if pattern.endswith("*") else "")
    base = glob.escape(os.path.join(root, ""))
    return sorted(os.path.relpath(path, root) for path in glob.glob(base + escaped))


def sync_filesystem(path):
    """Make everything written on the file system of ``path`` durable, in one journal commit.

    One ``syncfs`` after a group of files costs what one ``fsync`` does; an fsync per file would
    dominate a conversion writing hundreds of small files a second. Falls back to ``sync``.
    """
    syncfs = _syncfs()
    if syncfs is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            import ctypes  # pylint: disable=import-outside-toplevel
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error), path)
    finally:
        os.close(fd)


_SYNCFS = []


def _syncfs():
    """libc's syncfs, looked up once (None where there is none)."""
    if not _SYNCFS:
        try:
            import ctypes  # pylint: disable=import-outside-toplevel
            _SYNCFS.append(ctypes.CDLL(None, use_errno=True).syncfs)
        except (ImportError, OSError, AttributeError):
            _SYNCFS.append(None)
    return _SYNCFS[0]


def file_sha256(path):
    """Hex SHA-256 of a file, read in 1 MiB pieces."""
    with open(path, "rb") as handle:
        return sha256_of(handle).hexdigest()


def sha256_of(handle):
    """A SHA-256 object fed with what is left of an open binary file, read in 1 MiB pieces (to go on with)."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(1 << 20), b""):
        digest.update(chunk)
    return digest


def free_bytes(path):
    """Bytes available to an unprivileged writer on the file system holding ``path``."""
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


# The two bytes of a double holding its exponent: a NaN (or an infinity) has all 11 exponent bits set.
_EXPONENT_LANES = (7, 6) if sys.byteorder == "little" else (0, 1)
_HIGH_SET = bytes(int(b & 0x7F == 0x7F) for b in range(256))
_LOW_SET = bytes(int(b & 0xF0 == 0xF0) for b in range(256))
_INFINITIES = (struct.pack("d", float("inf")), struct.pack("d", float("-inf")))


def nan_runs(values):
    """The NaNs of an ``array('d')`` as runs ``[(start, stop), ...]``, found by C loops over its bytes.

    Most columns of an RRD have no unknown value, some have long runs of them (the rows before the
    first update); a Python loop over every value would cost more than the rest of a conversion.
    """
    data = values.tobytes()
    high = data[_EXPONENT_LANES[0]::8].translate(_HIGH_SET)
    low = data[_EXPONENT_LANES[1]::8].translate(_LOW_SET)
    both = int.from_bytes(high, "little") & int.from_bytes(low, "little")
    runs = []
    if both:
        flags = both.to_bytes(len(high), "little")
        start = flags.find(1)
        while start >= 0:
            stop = flags.find(0, start)
            stop = len(flags) if stop < 0 else stop
            chunk = data[8 * start:8 * stop]
            if any(infinity in chunk for infinity in _INFINITIES):  # an infinity is a value: look closer
                runs.extend(runs_of(i for i in range(start, stop) if math.isnan(values[i])))
            else:
                runs.append((start, stop))
            start = flags.find(1, stop)
    return runs


def has_infinity(values):
    """Whether doubles (an ``array('d')``, or any sequence) hold an infinity: a search of their bytes (a match
    across two doubles only costs a closer look)."""
    data = (values if isinstance(values, array.array) else array.array("d", values)).tobytes()
    return any(infinity in data for infinity in _INFINITIES) and any(map(math.isinf, values))


def runs_of(positions):
    """Ascending positions as runs ``[(start, stop), ...]``."""
    runs = []
    for position in positions:
        if runs and runs[-1][1] == position:
            runs[-1] = (runs[-1][0], position + 1)
        else:
            runs.append((position, position + 1))
    return runs


def run_length(runs):
    return sum(stop - start for start, stop in runs)
