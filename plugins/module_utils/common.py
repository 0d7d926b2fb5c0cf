# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small shared helpers: the project's error type and crash-safe file writes.

Plain Python, importable without Ansible, so the engine can be tested and benchmarked directly.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import tempfile


class FerryError(Exception):
    """An error an operator can act on: the message names the cause and the object."""


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
        _remove_quietly(tmp)
        raise
    fsync_dir(directory)


def atomic_write_json(path, value, mode=0o644):
    data = json.dumps(value, indent=2, sort_keys=True, default=str).encode("utf-8") + b"\n"
    atomic_write_bytes(path, data, mode)


def read_json(path, default=None):
    """Read a JSON file written by :func:`atomic_write_json`; ``default`` when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read().decode("utf-8"))
    except FileNotFoundError:
        return default
    except ValueError as exc:
        raise FerryError("%s is not valid JSON (%s): remove it or restore it from a backup" % (path, exc))


def _remove_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def human_bytes(count):
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return ("%d %s" % (value, unit)) if unit == "B" else ("%.1f %s" % (value, unit))
        value /= 1024.0
    return "%d B" % count  # pragma: no cover


def sync_filesystem(path):
    """Make everything written on the file system of ``path`` durable, in one journal commit.

    One ``syncfs`` after a group of files costs what one ``fsync`` does; an fsync per file would
    dominate a conversion writing hundreds of small files a second. Falls back to ``sync``.
    """
    try:
        import ctypes  # pylint: disable=import-outside-toplevel
        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (ImportError, OSError, AttributeError):
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error), path)
    finally:
        os.close(fd)


def free_bytes(path):
    """Bytes available to an unprivileged writer on the file system holding ``path``."""
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize
