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

import os
import threading
import time

from ansible_collections.ferry.migrate.plugins.module_utils.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.journal import (  # noqa: F401 (re-exported)
    STOP_FILE,
    Stopped,
    stop_requested,
)
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb import (
    BatchWriter,
    batch_name,
    check_batch,
    chunk_lines,
    finished_batches,
    iso,
    parse_line,
    plan_batches,
    read_batch_lines,
)
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb_remote import PutWriter, Rejected, count_on_target, target_frames

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


def dump_plan(source, start_ms, stop_ms, interval_ms, prefix="", metrics=None, regex=None):
    names = source.list_metrics(prefix, metrics, regex)
    batches = plan_batches(start_ms, stop_ms, interval_ms)
    return {"metrics": names, "batches": [batch_name(a, b) for a, b in batches], "ranges": batches,
            "start": iso(start_ms), "stop": iso(stop_ms)}


def dump(source, dest, plan, tags=None, step=None, checkpoint=None, space=None, state_dir=None):
    """Write every planned batch not yet finished in ``dest``; returns counts.

    ``space`` is ``(min_free_bytes, min_free_inodes, timeout)``: before each batch the dump waits for
    that much room. A STOP file in ``state_dir`` ends the dump after the current batch.
    """
    os.makedirs(dest, exist_ok=True)
    done = set(m["name"] for m in finished_batches(dest))
    totals = {"batches_written": 0, "batches_skipped": 0, "points": 0, "queries": 0}
    for index, (begin, end) in enumerate(plan["ranges"]):
        name = batch_name(begin, end)
        if name in done:
            totals["batches_skipped"] += 1
            continue
        if stop_requested(state_dir):
            raise Stopped("stopped on request (%s): %d batch(es) dumped, %d to go; remove the file and run again"
                          % (os.path.join(state_dir, STOP_FILE), len(done) + totals["batches_written"],
                             len(plan["ranges"]) - index))
        if space:
            wait_for_space(dest, *space)
        resume = checkpoint if checkpoint and checkpoint.get("batch") == name else None
        manifest = _dump_batch(source, dest, name, begin, end, plan["metrics"], tags, step, resume)
        checkpoint = None
        totals["batches_written"] += 1
        totals["points"] += manifest["points"]
        if step is not None:
            step.progress(index + 1, len(plan["ranges"]), "batches")
    totals["queries"] = source.queries
    return totals


def _dump_batch(source, dest, name, begin, end, metrics, tags, step, resume):
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
    return writer.finish({"begin_ms": begin, "end_ms": end, "begin": iso(begin), "end": iso(end)})


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


def request_size_limit(params):
    return params["request_size_limit"] or DEFAULT_SIZE_LIMITS[params["kind"]]


def put_writer(params):
    """The /api/put writer for a module's params (put and endpoint options)."""
    return PutWriter(params["url"], params["url_username"], params["url_password"], params["connections"],
                     params["compress"], timeout=params["timeout"], throttle=params["throttle"],
                     validate_certs=params["validate_certs"], details=params["kind"] == "opentsdb")


def restore_plan(source_dir):
    manifests = finished_batches(source_dir)
    metrics = {}
    for manifest in manifests:
        for metric, count in manifest["metrics"].items():
            metrics[metric] = metrics.get(metric, 0) + count
    return {"batches": manifests, "points": sum(m["points"] for m in manifests), "metrics": metrics}


def restore(source_dir, writer, max_bytes, max_points, step=None, checkpoint=None, follow=None,
            batch_attempts=3, state_dir=None, sleep=time.sleep):
    """Send every finished batch of ``source_dir``; returns the writer's stats and the final plan.

    ``follow`` is ``(still_dumping, poll_seconds)``: while ``still_dumping()`` is true, batches the dump
    finishes later are restored too (the pipelined transfer). A batch that fails is tried again
    ``batch_attempts`` times, skipping its acknowledged requests, then the restore fails naming it.
    """
    state = {"done": list((checkpoint or {}).get("done") or []), "current": (checkpoint or {}).get("current"),
             "acked": set((checkpoint or {}).get("acked") or [])}
    tracker = _AckTracker(step, state)
    started = time.monotonic()
    while True:
        dumping = follow is not None and follow[0]()
        plan = restore_plan(source_dir)
        pending = [m for m in plan["batches"] if m["name"] not in state["done"]]
        for manifest in pending:
            if stop_requested(state_dir):
                raise Stopped("stopped on request (%s) after %d restored batch(es); remove the file and run again"
                              % (os.path.join(state_dir, STOP_FILE), len(state["done"])))
            _restore_batch(manifest, writer, max_bytes, max_points, state, tracker, batch_attempts, sleep)
            if step is not None:
                step.progress(len(state["done"]), len(plan["batches"]), "batches")
        if not dumping:
            break
        sleep(follow[1])
    seconds = time.monotonic() - started
    result = dict(writer.stats)
    result.update(seconds=round(seconds, 3), batches=len(plan["batches"]),
                  points_per_s=round(result["points"] / seconds, 1) if seconds else None)
    return result, plan


class DumpWatch:
    """Whether the dump step this restore follows is still producing batches."""

    def __init__(self, journal, name, timeout):
        self.step = journal.step(name)
        self.name = name
        self.timeout = timeout
        self.started = time.monotonic()

    def running(self):
        record = self.step.record()
        if record is None:
            if time.monotonic() - self.started > self.timeout:
                raise FerryError("step %s has not started after %d s: is the dump running with this state_dir?"
                                 % (self.name, self.timeout))
            return True
        return record["status"] == "running"

    def check_finished(self, batches):
        record = self.step.record() or {}
        if record.get("status") != "complete":
            raise FerryError("the dump step %s is %s%s: the %d batch(es) it finished were restored; run the dump "
                             "again, then this restore, to complete the transfer"
                             % (self.name, record.get("status"), ": %s" % record["error"] if record.get("error") else "",
                                batches))


def _restore_batch(manifest, writer, max_bytes, max_points, state, tracker, attempts, sleep):
    name = manifest["name"]
    if state["current"] != name:
        state["current"], state["acked"] = name, set()
    check_batch(manifest)
    for attempt in range(1, attempts + 1):
        skip = set(state["acked"])
        lines = read_batch_lines(manifest, check=False)
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
    tracker.batch_done(name)


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
                self._save()

    def batch_done(self, name):
        with self.lock:
            self.state["done"].append(name)
            self.state["current"], self.state["acked"] = None, set()
            self._save()

    def _save(self):
        self.last = time.monotonic()
        if self.step is not None:
            self.step.save_checkpoint({"done": self.state["done"], "current": self.state["current"],
                                       "acked": sorted(self.state["acked"])})


def verify(kind, client, plan, timeout=30.0, poll=1.0):
    """Compare per-metric counts on the target with the batches'; a shortfall raises naming metrics.

    Targets make points visible with a delay: counts are read again until they match or ``timeout``.
    """
    expected = plan["metrics"]
    ranges = {}
    for manifest in plan["batches"]:
        for metric in manifest["metrics"]:
            first, last = ranges.get(metric, (manifest["first_ts"], manifest["last_ts"]))
            ranges[metric] = (min(first, manifest["first_ts"]), max(last, manifest["last_ts"]))
    deadline = time.monotonic() + timeout
    while True:
        found = count_on_target(kind, client, ranges)
        short = dict((m, (expected[m], found.get(m, 0))) for m in expected if found.get(m, 0) < expected[m])
        if not short or time.monotonic() >= deadline:
            break
        time.sleep(poll)
    extra = dict((m, (expected[m], found[m])) for m in expected if found.get(m, 0) > expected[m])
    report = {"metrics": len(expected), "expected_points": sum(expected.values()),
              "found_points": sum(found.values()), "short": short, "extra": extra}
    if short:
        names = ", ".join("%s (%d of %d)" % (m, got, want) for m, (want, got) in sorted(short.items())[:20])
        raise VerificationFailed("verification failed: the target holds fewer points than were sent for %d metric(s): "
                                 "%s. Points outside the target's retention period are accepted and silently "
                                 "dropped (VictoriaMetrics keeps 1 month by default: -retentionPeriod)"
                                 % (len(short), names), report)
    return report


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
    def __init__(self, message, report):
        FerryError.__init__(self, message)
        self.report = report
