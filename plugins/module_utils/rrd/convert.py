# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RRD trees converted file by file: to whisper files (NAV 3 -> 4) or to OpenTSDB points (Zenoss 4 -> 5).

The entry points of the two converters. Both walk the tree with ``core/tree.py`` (shards, the worker pool,
the per-file completion record that lets a killed run resume, STOP); what differs is the work on a group of
files (``rrd/jobs.py``: :class:`WhisperJob`, :class:`PointBatchJob`) and what records a file as done: the
done-log for whisper files, the finished batches' manifests for points.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools
import os
import shutil

from ansible_collections.ferry.migrate.plugins.module_utils.tsdb import points as tsdb
from ansible_collections.ferry.migrate.plugins.module_utils.core import tree
from ansible_collections.ferry.migrate.plugins.module_utils.core.staging import check_space, clean_staged
from ansible_collections.ferry.migrate.plugins.module_utils.core.tree import DoneLog, Totals, run_tree
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.jobs import PointBatchJob
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.rrdfile import source_files

WHISPER_COUNTS = ("created", "backfilled", "up_to_date", "points")


def pending_files(src, shard_index, shard_count, done=None, files=None, skip_failed=None):
    """Files of this shard not done yet, or changed since (size or mtime): ``files`` or every RRD (and dump) under
    ``src``. ``skip_failed``: files that failed before, left out while they have not changed either."""
    return tree.pending_files(src, source_files(src) if files is None else files, shard_index, shard_count, done,
                              skip_failed)


def convert_whisper_tree(job, shard=(0, 1), workers=1, step=None, resume=False, state_path=None, files_per_group=16,
                         files=None, stop_check=None, skip_failed=None):
    """Convert every pending RRD of ``job.src`` in this shard; returns :meth:`Totals.result`. The run stops
    (:class:`NoSpace`) before a whisper file would leave less than ``job.min_free`` bytes free in ``job.dest``;
    ``stop_check(done_text)`` is called after each group (``Step.check_stop``: it raises to stop there)."""
    state_path = state_path or os.path.join(job.dest, ".ferry-rrd_to_whisper")
    done = DoneLog(state_path + ".done", resume)
    totals = Totals(state_path + ".report.jsonl", resume, WHISPER_COUNTS)
    pending = functools.partial(pending_files, job.src, shard[0], shard[1], done.done, files, skip_failed)
    shutil.rmtree(job.staging, ignore_errors=True)  # what a killed run left
    try:
        check_space(job.dest, 0, job.min_free, None)
        run_tree(job, pending, totals, done, files_per_group, workers, log_done=True, step=step, stop_check=stop_check)
    finally:
        done.close()
        totals.close()
        shutil.rmtree(job.staging, ignore_errors=True)
    out = totals.result()
    out["counts"]["already_done"] = len(done.done) - (totals.counts["files"] - totals.counts["failed"])
    return out


def points_done(dest, clean=True):
    """Files already in a finished batch of ``dest`` (whatever happened to them since: converting a file
    again would send its points twice); partial batches of a killed run are removed."""
    done = {}
    if not os.path.isdir(dest):
        return done
    if clean:
        remove_partial_batches(dest)
    for manifest in tsdb.finished_batches(dest):
        if manifest.get("source") == "rrd":
            done.update(dict.fromkeys(manifest.get("files") or ()))
    return done


def remove_partial_batches(dest):
    """Remove the unfinished batches of a killed (or stopped) conversion."""
    clean_staged(dest, ".rrd-", ".partial")


def convert_points_tree(job, dest, shard=(0, 1), workers=1, step=None, files_per_batch=64, state_path=None,
                        files=None, resume=False, stop_check=None, skip_failed=None, min_free=0):
    """Convert every RRD of ``job.src`` in this shard not yet in a finished batch of ``dest``.

    The batch manifests are the completion record: a file is done once the batch holding it is. Failed
    files are recorded in ``<state_path>.failed``. The run stops (:class:`NoSpace`) before a batch would
    leave less than ``min_free`` bytes free in ``dest``; ``stop_check(done_text)`` is called after each batch.
    """
    if not os.path.isdir(dest):
        os.makedirs(dest)
    check_space(dest, 0, min_free, None)
    done = points_done(dest)
    state_path = state_path or os.path.join(dest, ".ferry-rrd_to_tsdb")
    totals = Totals(state_path + ".report.jsonl", resume, ("points",))
    failures = DoneLog(state_path + ".failed", resume)
    pending = functools.partial(pending_files, job.src, shard[0], shard[1], done, files, skip_failed)
    try:
        run_tree(PointBatchJob(job, dest, min_free), pending, totals, failures, files_per_batch, workers,
                 log_done=False, step=step, stop_check=stop_check)
    except BaseException:
        remove_partial_batches(dest)  # those of the other workers, stopped in the middle of their batch
        raise
    finally:
        totals.close()
        failures.close()
    out = totals.result()
    out["counts"]["already_done"] = len(done)
    return out
