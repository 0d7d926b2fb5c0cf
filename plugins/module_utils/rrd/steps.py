# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the two RRD converter modules share: options, the step decision, check mode and the result."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.ferry.migrate.plugins.module_utils.rrd import rrdfile as rrd
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError, check_ranges
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import RESUME, RUN, SKIP, attempt_step
from ansible_collections.ferry.migrate.plugins.module_utils.core.tree import (
    check_shard,
    default_workers,
    relative_files,
)
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.convert import pending_files
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.naming import (
    ZenossNames,
    find_upwards,
    read_rrdpath_map,
    read_tenant,
)
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.rrdfile import source_files


MAX_WORKERS = 1024
# the numeric options of the doc fragment, (lowest, highest) both allowed, None: no upper bound
RANGES = {"workers": (0, MAX_WORKERS), "max_failed_files": (0, None), "min_free_mb": (0, None)}


def rrd_argument_spec():
    """Options of the ``ferry.migrate.rrd`` doc fragment."""
    return dict(
        src=dict(type="path", required=True),
        files=dict(type="list", elements="path"),
        counters=dict(type="str", default="rebuild", choices=["rebuild", "rate"]),
        workers=dict(type="int", default=0),
        shard_index=dict(type="int", default=0),
        shard_count=dict(type="int", default=1),
        max_failed_files=dict(type="int", default=0),
        min_free_mb=dict(type="int", default=512),
    )


def naming_argument_spec():
    """Options of the ``ferry.migrate.zenoss_naming`` doc fragment: how a Zenoss perf file's series are named."""
    return dict(
        tenant_id=dict(type="str"),
        dmd_uuid_file=dict(type="path"),
        rrdpath_map=dict(type="path"),
        metric_template=dict(type="str", default="{device}/{name}"),
        tags=dict(type="dict", default={"device": "{device}", "key": "{key}", "zenoss_tenant_id": "{tenant}"}),
    )


def zenoss_naming(params):
    """``(ZenossNames, rrdpath.map path or None)`` from the naming options: the one place rrd_to_tsdb and rrd_verify
    read the tenant and the map, so both name every series alike."""
    tenant = params["tenant_id"]
    if not tenant:
        uuid_file = params["dmd_uuid_file"] or find_upwards(params["src"], "dmd_uuid.txt")
        if not uuid_file:
            raise FerryError("no dmd_uuid.txt in %s or above it: give tenant_id or dmd_uuid_file" % params["src"])
        tenant = read_tenant(uuid_file)
    map_file = params["rrdpath_map"] or find_upwards(params["src"], "rrdpath.map")
    return ZenossNames(tenant, read_rrdpath_map(map_file), params["metric_template"], params["tags"]), map_file


def check_numbers(params, ranges=None):
    """Refuse a numeric option outside its documented range before anything is read or written; ``ranges``: a
    module's own numeric options, as ``common.check_ranges`` takes them. The shard is checked as tsdb_dump checks
    its own (``core.tree.check_shard``)."""
    check_ranges(params, dict(RANGES, **(ranges or {})))
    check_shard(params)


def needs_binding(params):
    """True when the rrdtool binding is missing and a C(.rrd) file (not a dump) is to be read."""
    if rrd.rrdtool is not None or not os.path.isdir(params["src"]):
        return False
    names = params["files"] if params["files"] else source_files(params["src"])
    return any(name.endswith(".rrd") for name in names)


UPDATE = "update"


class Run:
    """A converter step about to run: its :class:`~core.journal.Attempt`, decision and the files it covers.

    ``with run.attempt.running(unit="files"):`` runs it (unless ``run.attempt.runs`` is false: skip or check
    mode); ``state_path`` is where its files beside the record start (``<state_path>.done``, ``.failed``,
    ``.report.jsonl``).
    """

    def __init__(self, attempt, params, files):
        self.attempt = attempt
        self.step = attempt.step
        self.shard = (params["shard_index"], params["shard_count"])
        self.workers = params["workers"] or default_workers()
        self.files = files
        self.state_path = attempt.step.beside("")
        self.previous = (attempt.record or {}) if self.resume else {}
        self.skip_failed = None  # after a completed step: files that failed then, unchanged since, stay out
        self.result = {"decision": attempt.decision, "workers": self.workers, "changed": False}

    @property
    def decision(self):
        return self.attempt.decision

    @property
    def resume(self):
        """The run goes on from the last one: ``resume`` or ``update``."""
        return self.attempt.resume


def prepare(params, check_mode, inputs, default_step, done_so_far):
    """Validate the common options and decide: ``run``, ``resume``, ``skip``, or ``update`` (a completed step
    whose tree has new or changed files since). ``done_so_far(state_path)`` gives the files done already and
    those that failed, with their stamps. In check mode the pending files are counted.
    """
    src = os.path.abspath(params["src"])
    if not os.path.isdir(src):
        raise FerryError("source directory %s does not exist" % src)
    files = relative_files(src, params["files"]) if params["files"] else None
    inputs = dict(inputs, src=src, files=files, counters=params["counters"],
                  shard=(params["shard_index"], params["shard_count"]))
    attempt = attempt_step(params, default_step, inputs, check_mode)
    shard = (params["shard_index"], params["shard_count"])
    done, failed = done_so_far(attempt.step.beside("")) if attempt.decision != RUN else ({}, {})
    skip_failed = failed if attempt.decision == SKIP else None
    if attempt.decision in (SKIP, RESUME) or check_mode:
        pending = sum(1 for _f in pending_files(src, shard[0], shard[1], done, files, skip_failed))
        if attempt.decision == SKIP and pending:
            attempt.decision = UPDATE
    run = Run(attempt, params, files)
    run.skip_failed = skip_failed
    if attempt.decision == SKIP:
        run.result.update(counts=(attempt.record or {}).get("counts"), report=attempt.step.beside(".report.jsonl"))
    if check_mode and attempt.decision != SKIP:
        run.result.update(files_pending=pending, changed=pending > 0)
    return run


def finish(run, out, max_failed_files, changed):
    """The task result; a failed step (and task) when more than ``max_failed_files`` files failed.

    The result counts this run; the journal adds it to what earlier attempts of the step did.
    """
    result = dict(run.result, changed=changed, **out)
    totals = _added(run.previous.get("counts") or {}, out["counts"], run.decision == UPDATE)
    failed = out["counts"]["failed"]
    if failed > max_failed_files:
        message = "%d file(s) failed to convert (more than max_failed_files=%d), the first: %s; all are listed in %s" % (
            failed, max_failed_files, out["failed_files"][0], out["report"])
        run.step.fail(message, counts=totals)
        result["msg"] = message
    else:
        run.step.complete(counts=totals)
    return result


def conversion_warnings(result):
    """The task's warning for a run whose files gave warnings (all of them are in the report)."""
    count = result.get("counts", {}).get("warnings")
    return ["%d conversion warning(s), the first: %s" % (count, result["file_warnings"][0])] if count else []


def _added(before, now, keep_failed):
    """Counts of the step so far: this run's added to the earlier attempts' (``already_done`` is this run's;
    earlier failures count unless this run retried them)."""
    total = dict(now)
    skipped = ("already_done",) if keep_failed else ("already_done", "failed")
    for key, value in before.items():
        if key not in skipped and isinstance(value, int) and isinstance(now.get(key), int):
            total[key] = value + now[key]
    return total
