# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One host's share of Zenoss perf trees as a file list, made where the trees are, for ``rsync --files-from``:
each host then copies only what it converts instead of whole trees.

The split is the converters' own (``rrd.convert.pending_files``: ``core.tree.in_shard`` of each file's path
relative to its tree), so the copy holds exactly the files ``rrd_to_tsdb`` and ``rrd_verify`` take there with the
same ``shard_index`` / ``shard_count``. One more kind of file goes along: the converter skips ``X.rrd`` when
``X_GAUGE.rrd`` is beside it (``TsdbJob.skip_reason``, a look at the disk), and the two can fall in different
shards; the list then carries that ``X_GAUGE.rrd`` too (a *decider*, converted by its own shard's host only), so
the copy decides the skip as the whole tree does.

The list is NUL-separated names relative to ``src`` (``rsync --from0``: any byte but NUL and ``/`` can be in a
name, newlines and non-UTF-8 bytes included), written under a temporary name and renamed, and only when it
changes, so a rerun changes nothing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError, file_sha256
from ansible_collections.ferry.migrate.plugins.module_utils.core.staging import StagedFile
from ansible_collections.ferry.migrate.plugins.module_utils.core.tree import in_shard
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.convert import pending_files
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.jobs import gauge_sibling

LIST_MODE = 0o644  # read by rsync on the host that holds the trees, possibly as another user than the writer


def shard_names(tree, shard_index, shard_count):
    """``(name, decider)`` of every file a host converting this shard of ``tree`` needs, names relative to it:
    the shard's RRD files (and dumps) and, for each, the ``X_GAUGE`` sibling of another shard that makes the
    converter skip it (``decider`` True)."""
    for relative in pending_files(tree, shard_index, shard_count):
        yield relative, False
        gauge = gauge_sibling(relative)
        if gauge and not in_shard(gauge, shard_index, shard_count) and os.path.exists(os.path.join(tree, gauge)):
            yield gauge, True


def inside(root, name, what):
    """``name`` (relative to ``root``, or absolute inside it) as an absolute path, refused outside ``root``."""
    path = os.path.abspath(os.path.join(root, name))
    if path != root and not path.startswith(root + os.sep):
        raise FerryError("%s %s is not inside %s" % (what, name, root))
    return path


def list_entries(src, trees, include, shard_index, shard_count, totals):
    """The list's names (relative to ``src``): the ``include`` files that exist, then each tree's share.
    ``totals`` (a dict) counts ``files``, ``bytes`` and ``deciders`` as they go."""
    root = os.path.abspath(src)
    tree_paths = [inside(root, tree, "tree") for tree in trees]
    for path in tree_paths:  # all checked before anything is listed
        if not os.path.isdir(path):
            raise FerryError("tree %s does not exist (or is not a directory)" % path)
    for name in include:
        path = inside(root, name, "file")
        if os.path.isfile(path):
            yield _counted(totals, root, path, False)
    for path in tree_paths:
        for relative, decider in shard_names(path, shard_index, shard_count):
            yield _counted(totals, root, os.path.join(path, relative), decider)


def _counted(totals, root, path, decider):
    totals["files"] += 1
    totals["deciders"] += decider
    totals["bytes"] += os.lstat(path).st_size
    return os.path.relpath(path, root)


def write_list(dest, names, check_mode):
    """Write ``names`` NUL-separated to ``dest`` (through a temporary file renamed into place) unless ``dest``
    holds them already; in check mode only compare. Whether it changed (or would)."""
    old = file_sha256(dest) if os.path.isfile(dest) else None
    digest = hashlib.sha256()
    staged = None
    if not check_mode:
        directory = os.path.dirname(os.path.abspath(dest))
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755, exist_ok=True)  # workers list their shards at once
        staged = StagedFile.create(dest)
    try:
        for name in names:
            line = os.fsencode(name) + b"\0"
            digest.update(line)
            if staged is not None:
                staged.write(line)
        changed = digest.hexdigest() != old
        if staged is not None:
            if changed:
                staged.set_mode(LIST_MODE)
                staged.commit()
            else:
                staged.abort()
    except BaseException:
        if staged is not None:
            staged.abort()
        raise
    return changed
