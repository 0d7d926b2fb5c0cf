# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dump points from a time-series source into batch files, and restore batch files into a target.

Both are resumable through the step journal's checkpoint:

* dump: per batch, per metric, per frame. Each frame is appended to the batch's partial file as a
  gzip member and fsynced *before* the checkpoint records it; a resumed dump cuts the file back to the
  recorded offset and asks the frame again, so every point is written exactly once.
* restore: per batch, per request. Request bodies are cut the same way every run (same limits), so
  a resumed restore skips the requests already acknowledged.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bisect
import os
import re
import threading
import time

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError, check_ranges
from ansible_collections.ferry.migrate.plugins.module_utils.core.httpclient import (
    check_http_params,
    check_url,
    client_from_params,
    redact_url,
    request_attempts,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import (
    COMPLETE,
    FAILED,
    INTERRUPTED,
    RESUME,
    RUN,
    RUNNING,
    SKIP,
    Journal,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.tree import in_shard
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.points import (
    BatchWriter,
    batch_name,
    check_batch,
    chunk_lines,
    finished_batches,
    iso,
    parse_line,
    plan_batches,
    problems_text,
    read_batch_lines,
    read_series,
    scan_batches,
    series_prefix,
)
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.remote import (
    PutWriter,
    Rejected,
    count_on_target,
    count_series_on_target,
    target_frames,
)

CHECKPOINT_INTERVAL = 1.0


def wait_for_space(path, min_free_bytes, min_free_inodes, timeout, poll=5.0, sleep=time.sleep):
    """Wait until ``path``'s file system has room (bytes and inodes); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        stat = os.statvfs(path)
        free_bytes, free_inodes = stat.f_bavail * stat.f_frsize, stat.f_favail
        if free_bytes >= min_free_bytes and free_inodes >= min_free_inodes:
            return
        if time.monotonic() >= deadline:
            raise FerryError("not enough room in %s after waiting %d s: %d MiB and %d inodes free, %d MiB and %d "
                             "inodes needed" % (path, timeout, free_bytes >> 20, free_inodes, min_free_bytes >> 20,
                                                min_free_inodes))
        sleep(poll)


def dump_plan(source, start_ms, stop_ms, interval_ms, prefix="", metrics=None, regex=None, shard=(0, 1), dest=None):
    """The metrics to dump and the batches. With ``shard`` ``(index, count)`` only this shard's metrics: those whose
    name's CRC-32 (UTF-8 bytes) modulo ``count`` is ``index``, as the RRD converters split a tree
    (:func:`core.tree.in_shard`), so every host computes the same split of the same list.

    With ``dest``, the time its finished batches cover is left out of the others: a rerun with a later ``stop``
    (``now`` by default) plans ``[last stop, new stop)`` rather than the last partial batch again under another
    name, whose points the restore would send a second time."""
    names = source.list_metrics(prefix, metrics, regex)
    mine = [name for name in names if in_shard(name, shard[0], shard[1])]
    batches = plan_batches(start_ms, stop_ms, interval_ms)
    if dest is not None and os.path.isdir(dest):
        batches = uncovered(batches, [(m["begin_ms"], m["end_ms"]) for m in finished_batches(dest)
                                      if isinstance(m.get("begin_ms"), int) and isinstance(m.get("end_ms"), int)])
    return {"metrics": mine, "listed": len(names), "shard": list(shard),
            "batches": [batch_name(a, b) for a, b in batches], "ranges": batches,
            "start": iso(start_ms), "stop": iso(stop_ms)}


def uncovered(ranges, covered):
    """``ranges`` (half-open ``(begin, end)``) with what ``covered`` covers left out; a range covered exactly stays as
    it is (its finished batch has its name: the dump skips it). Linear in both after sorting."""
    exact = set(covered)
    merged = []
    for begin, end in sorted(covered):
        if merged and begin <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([begin, end])
    starts = [begin for begin, _end in merged]
    out = []
    for begin, end in ranges:
        if (begin, end) in exact:
            out.append((begin, end))
            continue
        cursor = begin
        position = max(0, bisect.bisect_right(starts, begin) - 1)
        while cursor < end and position < len(merged):
            cover_begin, cover_end = merged[position]
            if cover_end <= cursor:
                position += 1
                continue
            if cover_begin >= end:
                break
            if cover_begin > cursor:
                out.append((cursor, cover_begin))
            cursor = max(cursor, cover_end)
            position += 1
        if cursor < end:
            out.append((cursor, end))
    return out


def selection(tags, shard):
    """What a dump's manifests record of how its points were chosen besides the metric list: the tag filter and
    the shard. Verification counts with the same filter; a dump refuses batches of another selection."""
    return {"tags": dict(tags or {}), "shard": list(shard)}


def foreign_batches(dest, wanted):
    """Finished batches in ``dest`` dumped with another :func:`selection` than ``wanted`` (another shard or tag
    filter): their names would pass for this dump's, and their points are not this dump's."""
    if not os.path.isdir(dest):
        return []
    return [(m["name"], m["selection"]) for m in finished_batches(dest)
            if isinstance(m.get("selection"), dict) and m["selection"] != wanted]


def check_selection(dest, wanted):
    """Fail, naming them, when ``dest`` holds batches of another selection (see :func:`foreign_batches`)."""
    foreign = foreign_batches(dest, wanted)
    if foreign:
        name, other = foreign[0]
        raise FerryError("%s holds %d batch(es) dumped with another selection (%s: shard %s of %s, tags %s) than this "
                         "dump's (shard %s of %s, tags %s): their names would pass for this dump's batches. Dump into "
                         "another dest (and state_dir), or move them away; a transfer keeps its number of workers and "
                         "its tags from start to end"
                         % (dest, len(foreign), name, other.get("shard", ["?", "?"])[0],
                            other.get("shard", ["?", "?"])[-1], other.get("tags"), wanted["shard"][0],
                            wanted["shard"][1], wanted["tags"]))


def dump(source, dest, plan, tags=None, step=None, checkpoint=None, min_free_bytes=None, min_free_inodes=0,
         space_timeout=0):
    """Write every planned batch not yet finished in ``dest``; returns counts.

    With ``min_free_bytes`` (and ``min_free_inodes``) the dump waits before each batch until ``dest``'s file
    system has that much room, and fails after ``space_timeout`` seconds. ``step`` (a running journal step)
    records progress and checkpoints, and its STOP file ends the dump after the current batch. Each manifest
    records the :func:`selection` (``tags`` and the plan's shard).
    """
    os.makedirs(dest, exist_ok=True)
    chosen = selection(tags, plan.get("shard") or (0, 1))
    check_selection(dest, chosen)
    done = set(m["name"] for m in finished_batches(dest))
    totals = {"batches_written": 0, "batches_skipped": 0, "points": 0, "queries": 0}
    for index, (begin, end) in enumerate(plan["ranges"]):
        name = batch_name(begin, end)
        if name in done:
            totals["batches_skipped"] += 1
            continue
        if step is not None:
            step.check_stop("%d batch(es) dumped, %d to go" % (len(done) + totals["batches_written"],
                                                               len(plan["ranges"]) - index))
        if min_free_bytes is not None:
            wait_for_space(dest, min_free_bytes, min_free_inodes, space_timeout)
        resume = checkpoint if checkpoint and checkpoint.get("batch") == name else None
        manifest = _dump_batch(source, dest, name, begin, end, plan["metrics"], tags, step, resume, chosen)
        checkpoint = None
        totals["batches_written"] += 1
        totals["points"] += manifest["points"]
        if step is not None:
            step.progress(index + 1, len(plan["ranges"]), "batches")
    totals["queries"] = source.queries
    return totals


def missing_batches(dest, plan):
    """Planned batches without a sound finished batch in ``dest``: a manifest or data file lost since the dump."""
    done = set(m["name"] for m in finished_batches(dest)) if os.path.isdir(dest) else set()
    return [name for name in plan["batches"] if name not in done]


def _dump_batch(source, dest, name, begin, end, metrics, tags, step, resume, chosen):
    writer = BatchWriter(dest, name, resume=resume and resume["writer"])
    first_metric = resume["metric"] if resume else 0
    try:
        for position in range(first_metric, len(metrics)):
            cursor = resume["cursor"] if resume and position == first_metric else begin
            for frame_begin, frame_end, points in source.frames(metrics[position], cursor, end, tags):
                for point in points:
                    writer.add(*point)
                state = writer.end_frame()
                if step is not None:
                    step.save_checkpoint({"batch": name, "metric": position, "cursor": frame_end, "writer": state})
            if step is not None:
                step.save_checkpoint({"batch": name, "metric": position + 1, "cursor": begin,
                                      "writer": writer.checkpoint()})
    except BaseException:
        writer.abort()
        raise
    return writer.finish({"begin_ms": begin, "end_ms": end, "begin": iso(begin), "end": iso(end), "selection": chosen})


# OpenTSDB's HTTP layer hands bodies over 8 KiB to its chunked-request path, refused by default.
DEFAULT_SIZE_LIMITS = {"victoriametrics": 524288, "opentsdb": 8192}


def put_argument_spec():
    """Options of the ``ferry.migrate.put`` doc fragment: how points are sent to /api/put."""
    return dict(
        kind=dict(type="str", default="victoriametrics", choices=["opentsdb", "victoriametrics"]),
        request_size_limit=dict(type="int"),
        points_per_request=dict(type="int", default=2000),
        connections=dict(type="int", default=4),
        compress=dict(type="bool", default=False),
        throttle=dict(type="int", default=0),
        batch_attempts=dict(type="int", default=3),
    )


# Ranges of the put fragment's numeric options (see doc_fragments/put.py), both ends included.
PUT_RANGES = {
    "request_size_limit": (1024, 1 << 30),
    "points_per_request": (1, 1000000),
    "connections": (1, 64),
    "throttle": (0, None),
    "batch_attempts": (1, 100),
}


def check_put_params(params):
    """Validate the put options (and the endpoint options they come with) before anything happens."""
    check_ranges(params, PUT_RANGES)
    check_http_params(params, ())


def request_size_limit(params):
    limit = params["request_size_limit"]
    return DEFAULT_SIZE_LIMITS[params["kind"]] if limit is None else limit


def put_writer(params):
    """The /api/put writer for a module's params (put and endpoint options), validated again here: a
    batch_attempts of 0 would record every batch as restored without sending one."""
    check_put_params(params)
    check_url(params["url"], "url")
    return PutWriter(params["url"], params["url_username"], params["url_password"], params["connections"],
                     params["compress"], attempts=request_attempts(params), timeout=params["timeout"],
                     throttle=params["throttle"], validate_certs=params["validate_certs"],
                     details=params["kind"] == "opentsdb")


def restore_step(params, check_mode, src, name, follow=None):
    """The restore of ``src`` to ``params["url"]`` as the journal step ``name``: decide, send what was not sent,
    verify (``params["verify"]``, ``verify_values``), record. ``follow`` names a dump step to follow.

    The step's identity is its source directory and target; what it sent is its ledger (kept through reruns),
    so new batches are sent and no batch twice whatever else changes. A verification that found points
    missing is remembered: the next run resends exactly the points the target lacks. The record of a complete
    run keeps its verification's summary: a run that skips says what was verified then.

    Check mode decides as a real run does and says what it would do: ``changed`` when there are batches to send,
    points to resend, a followed dump that is not complete or will run again (it will write batches), or no batch
    yet (an earlier task writes them). A missing ``src`` is an empty one in check mode, and when a dump is followed
    (the dump creates it).

    ``params["wait_after_attempt"]`` (with ``follow``): the followed dump's record of that attempt number or an
    older one belongs to an earlier run, and this run's dump is about to start: wait for it rather than take an
    earlier run's end for this one's (a role starts the dump and the restore at once; the dump records its start
    only once it has listed the metrics).
    """
    step = Journal(params["state_dir"], create=not check_mode).step(name)
    plan = restore_plan(src, missing_ok=bool(follow) or check_mode)
    max_bytes, max_points = request_size_limit(params), params["points_per_request"]
    attempt = step.attempt({"src": os.path.abspath(src), "url": redact_url(params["url"]), "kind": params["kind"]},
                           params["force"], check_mode)
    saved = {} if attempt.decision == RUN else _saved_checkpoint(attempt.record)
    pending = unsent(plan, saved.get("sent") or {})
    after = params.get("wait_after_attempt") if follow else None
    dump_open = bool(follow) and _dump_open(step.journal.step(follow).record(), after)
    if attempt.decision == SKIP and (pending or plan["problems"] or saved.get("short") or dump_open):
        attempt.decision = RESUME  # complete, and there is more: new batches, or the dump it follows runs again
    result = {"decision": attempt.decision, "points": plan["points"], "batches": len(plan["batches"]),
              "pending_batches": len(pending), "request_size_limit": max_bytes}
    if attempt.decision == SKIP:
        result.update(_earlier(attempt.record), changed=False)
        return result
    if check_mode:
        result["pending_points"] = sum(m["points"] for m in pending)
        result["changed"] = bool(pending or saved.get("short") or dump_open or not plan["batches"])
        return result
    if not plan["batches"] and not plan["problems"] and not follow:
        raise FerryError("%s holds no finished batch: nothing to restore (is it the dump's dest?)" % src)
    writer = put_writer(params)
    watch = DumpWatch(step.journal, follow, params["wait_timeout"], after) if follow else None
    with attempt.running(unit="batches"):
        counts, plan, sent = restore(src, writer, max_bytes, max_points, step, saved, batch_attempts=params["batch_attempts"],
                                     follow=watch.running if watch else None, poll_interval=params.get("poll_interval"))
        if watch:
            watch.check_finished(len(plan["batches"]))
        result.update(counts=counts, points=plan["points"], batches=len(plan["batches"]), pending_batches=0)
        if params.get("verify"):
            client = client_from_params(params.get("verify_url") or params["url"], params)
            if saved.get("short"):
                result["resent"] = resend_missing(params["kind"], client, plan, saved["short"], writer, max_bytes,
                                                  max_points)
            result["verification"] = _verify_step(params, client, plan, step, sent)
        step.complete(counts={"points": plan["points"], "sent": counts["points"], "requests": counts["requests"]},
                      result={"sent": sent, "verification": verification_summary(result.get("verification"))})
    result["changed"] = counts["points"] > 0 or bool(result.get("resent", {}).get("points"))
    return result


SUMMARY_KEYS = ("metrics", "series", "expected_points", "found_points", "values_checked")


def verification_summary(report):
    """What a complete restore's record keeps of its verification (None: not verified): the counts, not the
    per-metric details."""
    if report is None:
        return None
    return dict((key, report[key]) for key in SUMMARY_KEYS if key in report)


def _dump_open(record, after=None):
    """Whether a followed dump will write more: its record is not complete, or is an earlier run's (``after``)."""
    record = record or {}
    return record.get("status") != COMPLETE or (after is not None and (record.get("attempt") or 0) <= after)


def _earlier(record):
    """What a skipped restore reports of the run that completed it: when, and what its verification found."""
    record = record or {}
    return {"complete_earlier": record.get("ended"),
            "verified_then": (record.get("result") or {}).get("verification")}


def _saved_checkpoint(record):
    """What the last run of a restore step left: its checkpoint, or once complete the ledger in its result."""
    record = record or {}
    return record.get("checkpoint") or {"sent": (record.get("result") or {}).get("sent") or {}}


def _verify_step(params, client, plan, step, sent):
    """Verify; when points are missing, remember which metrics so that the next run resends them."""
    try:
        report = verify(params["kind"], client, plan, params["verify_timeout"])
        if params.get("verify_values"):
            report.update(verify_values(params["kind"], client, plan))
    except VerificationFailed as exc:
        step.save_checkpoint({"sent": sent, "short": exc.report.get("short") or {}})
        raise
    return report


def resend_missing(kind, client, plan, short, writer, max_bytes, max_points):
    """Send again the points of the ``short`` metrics that the target does not hold, batch by batch: what it
    has is read back first, so nothing it kept is sent twice. Returns the points and requests sent."""
    before = dict(writer.stats)
    for manifest in plan["batches"]:
        for metric in sorted(set(manifest["metrics"]) & set(short)):
            missing = _missing_lines(kind, client, manifest, metric)
            if missing:
                writer.write((body, count, None) for body, count in chunk_lines(missing, max_bytes, max_points))
    return {"points": writer.stats["points"] - before["points"], "requests": writer.stats["requests"] - before["requests"]}


def _missing_lines(kind, client, manifest, metric):
    """The lines of ``metric`` in a batch whose series and time the target lacks (one batch, one metric)."""
    begin = manifest.get("begin_ms", manifest["first_ts"])
    end = manifest.get("end_ms", (manifest["last_ts"] or 0) + 1)
    held = set()
    for frame in target_frames(kind, client, metric, begin, end):
        held.update((tags, stamp) for _name, tags, stamp, _value in frame)
    head = series_prefix(metric, ())[:-len(b'"tags":{},"timestamp":')]  # b'{"metric":<name>,'
    missing = []
    for line in read_batch_lines(manifest):
        if line.startswith(head):
            _name, tags, stamp, _value = parse_line(line)
            if (tags, stamp) not in held:
                missing.append(line)
    return missing


def restore_plan(source_dir, missing_ok=False):
    """The finished batches of ``source_dir`` and what they hold: points per metric (``metrics``) and the tag filter
    each metric was dumped with when all its batches agree (``filters``). ``missing_ok``: a directory that does
    not exist yet is empty (a followed dump creates it). Per-series counts are read when verifying
    (:func:`plan_series`): the restore reads the manifests again at every poll."""
    if missing_ok and not os.path.isdir(source_dir):
        manifests, problems = [], []
    else:
        manifests, problems = scan_batches(source_dir)
    metrics, filters = {}, {}
    for manifest in manifests:
        chosen = manifest.get("selection") if isinstance(manifest.get("selection"), dict) else {}
        tags = chosen.get("tags") or {}
        for metric, count in manifest["metrics"].items():
            metrics[metric] = metrics.get(metric, 0) + count
            filters[metric] = tags if filters.get(metric, tags) == tags else {}
    return {"batches": manifests, "points": sum(m["points"] for m in manifests), "metrics": metrics,
            "filters": dict((m, f) for m, f in filters.items() if f), "problems": problems}


def plan_series(plan):
    """``{metric: {series_key: points}}`` over the batches of ``plan``, for the metrics whose every batch counted
    its series (:func:`points.read_series`); the others are verified per metric. One batch's counts in memory at a
    time, besides the sums."""
    series, unknown = {}, set()
    for manifest in plan["batches"]:
        counted = read_series(manifest) or {}
        for metric in manifest["metrics"]:
            if metric in unknown or metric not in counted:
                unknown.add(metric)
                continue
            per_series = series.setdefault(metric, {})
            for key, points in counted[metric].items():
                per_series[key] = per_series.get(key, 0) + points
    for metric in unknown:
        series.pop(metric, None)
    return series


def unsent(plan, sent):
    """The batches of ``plan`` not in the ledger ``sent`` (name -> sha256) as they are now."""
    return [m for m in plan["batches"] if sent.get(m["name"]) != m["sha256"]]


def restore(source_dir, writer, max_bytes, max_points, step=None, checkpoint=None, follow=None, poll_interval=10.0,
            batch_attempts=3, sleep=time.sleep):
    """Send every finished batch of ``source_dir`` not sent yet; returns the writer's stats, the final plan and
    the ledger of sent batches (name -> sha256, kept in the checkpoint: a batch is sent once, whatever reruns).

    ``follow`` is a callable telling whether the dump is still running: while ``follow()`` is true, batches
    the dump finishes later are restored too (the pipelined transfer), looked for every ``poll_interval``
    seconds. A batch that fails is tried again ``batch_attempts`` times, skipping its acknowledged requests,
    then the restore fails naming it. Once no dump is running, anything in ``source_dir`` that is not a sound
    finished batch fails the restore. ``step`` (a running journal step) keeps the checkpoint and progress,
    and its STOP file ends the restore after the current batch.
    """
    if batch_attempts < 1:
        raise FerryError("batch_attempts must be at least 1, got %r" % (batch_attempts,))
    state = restore_state(checkpoint, max_bytes, max_points)
    tracker = _AckTracker(step, state)
    tracker.save()  # the ledger carried over is the record's from now on, whatever ends this run
    started = time.monotonic()
    while True:
        dumping = follow is not None and follow()
        plan = restore_plan(source_dir, missing_ok=dumping)
        if plan["problems"] and not dumping:
            raise FerryError("%d batch(es) in %s cannot be restored as they are: %s. Run the dump again (it writes "
                             "them anew) or move them away"
                             % (len(plan["problems"]), source_dir, problems_text(plan["problems"])))
        for manifest in unsent(plan, state["sent"]):
            if step is not None:
                step.check_stop("%d restored batch(es)" % len(state["sent"]))
            _restore_batch(manifest, writer, state, tracker, batch_attempts, sleep)
            if step is not None:
                step.progress(len(plan["batches"]) - len(unsent(plan, state["sent"])), len(plan["batches"]),
                              "batches")
        if not dumping:
            break
        sleep(poll_interval)
    seconds = time.monotonic() - started
    result = dict(writer.stats)
    result.update(seconds=round(seconds, 3), batches=len(plan["batches"]),
                  points_per_s=round(result["points"] / seconds, 1) if seconds else None)
    return result, plan, state["sent"]


def restore_state(checkpoint, max_bytes, max_points):
    """What a restore resumes from: the ledger, the batch it was in, that batch's acknowledged requests and the
    limits they were cut with (a rerun with other limits than ``max_bytes`` and ``max_points`` finishes that
    batch with the old ones)."""
    checkpoint = checkpoint or {}
    limits = (max_bytes, max_points)
    return {"sent": dict(checkpoint.get("sent") or {}), "current": checkpoint.get("current"),
            "acked": set(checkpoint.get("acked") or []), "limits": tuple(checkpoint.get("limits") or limits),
            "new_limits": limits}


class DumpWatch:
    """Whether the dump step this restore follows is still producing batches.

    A dump record that is interrupted or failed when the restore starts belongs to an earlier run: the
    restore waits for the dump to run again (the usual rerun of a pipelined transfer starts both) rather than
    take it as the end; so does a record of attempt ``after`` or older, whatever its status (the caller knows the
    dump runs again). One that stops running while the restore follows it has died: the restore ends with
    what was finished and fails naming the dump's state.
    """

    def __init__(self, journal, name, timeout, after=None):
        self.step = journal.step(name)
        self.name = name
        self.timeout = timeout
        self.after = after
        self.started = time.monotonic()
        record = self.step.record()
        self.stale = _attempt(record) if record and record["status"] in (FAILED, INTERRUPTED) else None

    def running(self):
        record = self.step.record()
        if (record is None or _attempt(record) == self.stale
                or (self.after is not None and (record.get("attempt") or 0) <= self.after)):
            if time.monotonic() - self.started > self.timeout:
                raise FerryError("step %s has not %s after %d s: is the dump running with this state_dir?"
                                 % (self.name, "started" if record is None else
                                    "started again (it is %s)" % record["status"], self.timeout))
            return True
        return record["status"] == RUNNING

    def check_finished(self, batches):
        record = self.step.record() or {}
        if record.get("status") != COMPLETE:
            raise FerryError("the dump step %s is %s%s: the %d batch(es) it finished were restored; run the dump "
                             "again, then this restore, to complete the transfer"
                             % (self.name, record.get("status"), ": %s" % record["error"] if record.get("error") else "",
                                batches))


def _attempt(record):
    return (record.get("attempt"), record.get("started_epoch"))


def _restore_batch(manifest, writer, state, tracker, attempts, sleep):
    name = manifest["name"]
    if state["current"] != name:
        state["current"], state["acked"], state["limits"] = name, set(), state["new_limits"]
    check_batch(manifest)
    max_bytes, max_points = state["limits"]
    for attempt in range(1, attempts + 1):
        skip = set(state["acked"])
        lines = _Counted(read_batch_lines(manifest, check=False))
        bodies = ((body, count, position)
                  for position, (body, count) in enumerate(chunk_lines(lines, max_bytes, max_points))
                  if position not in skip)
        try:
            writer.write(bodies, on_done=tracker.ack)
            break
        except FerryError as exc:
            if attempt == attempts or isinstance(exc, Rejected):
                raise FerryError("batch %s failed after %d attempt(s): %s" % (name, attempt, exc))
            sleep(min(60, 5 * attempt))
    if lines.count != manifest["points"]:
        raise FerryError("batch %s holds %d points but its manifest says %d: the batch or its manifest is wrong; "
                         "dump it again (the points read were sent)" % (manifest["path"], lines.count,
                                                                        manifest["points"]))
    tracker.batch_done(name, manifest["sha256"])


class _Counted:
    """An iterator that counts what went through it."""

    def __init__(self, items):
        self._items = iter(items)
        self.count = 0

    def __iter__(self):
        return self

    def __next__(self):
        item = next(self._items)
        self.count += 1
        return item


class _AckTracker:
    """Records acknowledged requests in the checkpoint, at most once a second (plus at batch ends)."""

    def __init__(self, step, state):
        self.step = step
        self.state = state
        self.lock = threading.Lock()
        self.last = 0.0

    def ack(self, position, _count):
        with self.lock:
            self.state["acked"].add(position)
            if time.monotonic() - self.last >= CHECKPOINT_INTERVAL:
                self.save()

    def batch_done(self, name, sha256):
        with self.lock:
            self.state["sent"][name] = sha256
            self.state["current"], self.state["acked"] = None, set()
            self.save()

    def save(self):
        self.last = time.monotonic()
        if self.step is not None:
            self.step.save_checkpoint(checkpoint_of(self.state))


def checkpoint_of(state, **extra):
    checkpoint = {"sent": state["sent"], "current": state["current"], "acked": sorted(state["acked"]),
                  "limits": list(state["limits"])}
    checkpoint.update(extra)
    return checkpoint


def verify(kind, client, plan, timeout=30.0, poll=1.0):
    """Compare the counts on the target with the batches'; a shortfall raises naming metrics and series.

    A metric whose batches counted their series (``plan["series"]``) is counted series by series on the target
    (with the dump's tag filter, ``plan["filters"]``), and each series sent must be there with at least as many
    points: points of other series (another host's, written before) can neither hide a shortfall nor count.
    Other metrics (batches of an older format) are counted as a whole. The target counts, one number per series:
    no point is read back. Targets make points visible with a delay: counts are read again until they match or
    ``timeout``.
    """
    expected = plan["metrics"]
    by_series = plan["series"] if "series" in plan else plan_series(plan)
    filters = plan.get("filters") or {}
    ranges = {}
    for manifest in plan["batches"]:
        for metric in manifest["metrics"]:
            first, last = ranges.get(metric, (manifest["first_ts"], manifest["last_ts"]))
            ranges[metric] = (min(first, manifest["first_ts"]), max(last, manifest["last_ts"]))
    whole = dict((m, ranges[m]) for m in expected if m not in by_series)
    parts = dict((m, ranges[m] + (filters.get(m),)) for m in expected if m in by_series)
    deadline = time.monotonic() + timeout
    while True:
        found = count_on_target(kind, client, whole) if whole else {}
        found_series = count_series_on_target(kind, client, parts) if parts else {}
        tally = _tally(expected, by_series, found, found_series)
        if not tally["short"] or time.monotonic() >= deadline:
            break
        time.sleep(poll)
    report = {"metrics": len(expected), "series": sum(len(counts) for counts in by_series.values()),
              "expected_points": sum(expected.values()), "found_points": tally["found_points"],
              "short": tally["short"], "short_series": tally["short_series"], "extra": tally["extra"]}
    short = tally["short"]
    if short:
        names = ", ".join("%s (%d of %d, %s to %s%s)" % (m, got, want, iso(ranges[m][0]), iso(ranges[m][1]),
                                                         _series_text(tally["short_series"].get(m)))
                          for m, (want, got) in sorted(short.items())[:20])
        raise VerificationFailed("verification failed: the target holds fewer points than were sent for %d metric(s): "
                                 "%s. The target acknowledged every one: %s. Run the restore again: it reads these "
                                 "metrics back and sends only the points the target lacks"
                                 % (len(short), names, why_short(kind, client, min(ranges[m][0] for m in short))),
                                 report)
    return report


SERIES_SAMPLE = 5  # short series named per metric, in the message and the report


def _tally(expected, by_series, found, found_series):
    """Shortfalls and excesses: per metric for those counted whole, per series for the others (a metric is short
    by the points its series lack, whatever other series hold)."""
    short, short_series, extra, found_points = {}, {}, {}, 0
    for metric, want in expected.items():
        if metric not in by_series:
            got = found.get(metric, 0)
            found_points += got
            if got < want:
                short[metric] = (want, got)
            elif got > want:
                extra[metric] = (want, got)
            continue
        on_target = found_series.get(metric) or {}
        lacking, kept, seen = {}, 0, 0
        for key, count in sorted(by_series[metric].items()):
            there = on_target.get(key, 0)
            seen += there
            kept += min(there, count)
            if there < count:
                lacking[key] = (count, there)
        found_points += seen
        if lacking:
            short[metric] = (want, kept)
            short_series[metric] = dict(sorted(lacking.items())[:SERIES_SAMPLE])
        elif seen > want:
            extra[metric] = (want, seen)
    return {"short": short, "short_series": short_series, "extra": extra, "found_points": found_points}


def _series_text(lacking):
    if not lacking:
        return ""
    return "; series " + ", ".join("%s %d of %d" % (key, got, want) for key, (want, got) in lacking.items())


def why_short(kind, client, first_ms, now_ms=None):
    """What can make a target drop points it acknowledged, told from its retention and the oldest short point."""
    retention = target_retention(kind, client)
    if retention is None:
        return ("either they are older than its retention period (VictoriaMetrics keeps 1 month by default: "
                "-retentionPeriod), or it lost them (restarted before they were flushed?)")
    text, retention_ms = retention
    cutoff = (int(time.time() * 1000) if now_ms is None else now_ms) - retention_ms
    if first_ms < cutoff:
        return ("it keeps %s (-retentionPeriod), so it drops points before %s on arrival, and the short metrics reach "
                "back to %s; raise -retentionPeriod to keep them" % (text, iso(cutoff), iso(first_ms)))
    return ("they are within its retention period (%s), so it lost points it had accepted: was it restarted or "
            "killed before they were flushed?" % text)


_RETENTION_UNITS = {"h": 3600000, "d": 86400000, "w": 7 * 86400000, "y": 365 * 86400000, "M": 31 * 86400000}


def target_retention(kind, client):
    """``(text, ms)`` of a VictoriaMetrics target's -retentionPeriod (read from its /metrics flags), or None."""
    if kind != "victoriametrics":
        return None
    try:
        body = client.request("GET", "/metrics", headers={"Accept": "text/plain"})[1].decode("utf-8", "replace")
    except FerryError:
        return None
    match = re.search(r'^flag\{name="retentionPeriod", value="([0-9.]+)([hdwyM]?)"', body, re.M)
    if not match:
        return None
    number, unit = float(match.group(1)), match.group(2) or "M"  # a bare number is months (of 31 days)
    return match.group(1) + (match.group(2) or " month(s)"), int(number * _RETENTION_UNITS[unit])


def verify_values(kind, client, plan, limit=20):
    """Compare every point of every batch with what the target returns for the batch's range.

    Memory stays at one batch's points for one metric. VictoriaMetrics stores values with a decimal
    mantissa, so there values agree to 1e-12 relative; OpenTSDB must give them back exactly.
    """
    tolerance = 1e-12 if kind == "victoriametrics" else 0.0
    differences = []
    checked = 0
    for manifest in plan["batches"]:
        begin = manifest.get("begin_ms", manifest["first_ts"])
        end = manifest.get("end_ms", (manifest["last_ts"] or 0) + 1)
        for metric in sorted(manifest["metrics"]):
            sent = dict(((tags, stamp), value) for name, tags, stamp, value in
                        (parse_line(line) for line in read_batch_lines(manifest, check=False)) if name == metric)
            found = {}
            for frame in target_frames(kind, client, metric, begin, end):
                found.update(((tags, stamp), value) for name, tags, stamp, value in frame)
            checked += len(sent)
            for key, value in sent.items():
                if key not in found or not _same(value, found[key], tolerance):
                    differences.append("%s%s at %s: sent %r, target has %r" % (
                        metric, dict(key[0]), iso(key[1]), value, found.get(key, "nothing")))
                    if len(differences) >= limit:
                        break
    if differences:
        raise VerificationFailed("verification of values failed: %s" % "; ".join(differences[:limit]),
                                 {"values_checked": checked, "differences": differences})
    return {"values_checked": checked}


def _same(sent, found, tolerance):
    if sent == found:
        return True
    return tolerance and abs(float(sent) - float(found)) <= tolerance * max(abs(float(sent)), 1.0)


class VerificationFailed(FerryError):
    """A verification shortfall; its ``report`` is the failed task's ``verification``."""

    def __init__(self, message, report):
        FerryError.__init__(self, message)
        self.report = report
        self.result = {"verification": report}
