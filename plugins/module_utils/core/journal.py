# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The step journal: what each step of a migration did, so reruns skip, resume or restart cleanly.

A migration has a state directory. Each step owns ``steps/<name>.json`` (its record, rewritten
atomically) and ``steps/<name>.lock`` (an flock held while the step runs). A record says
``running`` / ``complete`` / ``failed``; a ``running`` record whose lock nobody holds belongs to a
killed run and is reported as ``interrupted``.

Decisions for a step about to run (:meth:`Step.decide`):

* ``skip``    -- complete with the same input fingerprint: nothing to do, ``changed: false``;
* ``resume``  -- interrupted or failed with the same fingerprint: the step may continue from its
  checkpoint;
* ``run``     -- never ran, inputs changed, or ``force``.

The lifecycle, in one place (:meth:`Step.attempt`): a module asks for an :class:`Attempt`, may turn its
decision into another when it knows better (a skip into a run when outputs were lost), returns early when
the attempt does not run (skip, check mode), and runs its body in ``with attempt.running(...) as step``::

    attempt = attempt_step(params, "my_step", inputs, check_mode)
    if not attempt.runs:
        return {"decision": attempt.decision, "changed": attempt.decision != SKIP}
    with attempt.running(total=len(items), unit="items") as step:
        for done, item in enumerate(items):
            step.check_stop("%d item(s)" % done)     # the operator's STOP file
            work(item, attempt.checkpoint)           # the last run's checkpoint when resuming
            step.progress(done + 1)
        step.complete(counts={"items": len(items)})  # or left to the block: complete, or failed on error
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import hashlib
import json
import os
import re
import socket
import time

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import (
    FerryError,
    atomic_write_json,
    read_json,
)

RUNNING = "running"
COMPLETE = "complete"
FAILED = "failed"
INTERRUPTED = "interrupted"
UNREADABLE = "unreadable"  # migration_status: a record file that is not a record

SKIP = "skip"
RESUME = "resume"
RUN = "run"

STOP_FILE = "STOP"

_STEP_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")  # \Z: "$" would let a final newline in
# Progress is written at most this often: a hot loop must not turn into a stream of fsyncs.
PROGRESS_INTERVAL = 1.0
# Records hold errors and results: readable by the migration's user only.
FILE_MODE = 0o600


class Stopped(FerryError):
    """A graceful stop asked for with the STOP file: the work in progress was finished first."""


def attempt_step(params, default_name, inputs, check_mode=False):
    """The :class:`Attempt` of the step a module's ``state`` options name (``state_dir``, ``step`` or else
    ``default_name``, ``force``) with these ``inputs``. Check mode creates no state directory."""
    step = Journal(params["state_dir"], create=not check_mode).step(params["step"] or default_name)
    return step.attempt(inputs, params["force"], check_mode)


# The default state directory of every module (doc fragment ferry.migrate.state, migration_status) and of the
# roles' *_state_dir variables: run ad hoc without options, migration_status reports what the roles recorded.
DEFAULT_STATE_DIR = "/srv/ferry/state"


def state_argument_spec():
    """The options of the ``ferry.migrate.state`` doc fragment, for a module's argument spec."""
    return dict(
        state_dir=dict(type="path", default=DEFAULT_STATE_DIR),
        step=dict(type="str"),
        force=dict(type="bool", default=False),
    )


def fingerprint(value):
    """A stable digest of a step's inputs (any JSON-serialisable value)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _now():
    return time.time()


def _iso(epoch):
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class Journal:
    """The state directory of one migration."""

    def __init__(self, state_dir, create=True):
        self.state_dir = os.path.abspath(os.path.expanduser(state_dir))
        self.steps_dir = os.path.join(self.state_dir, "steps")
        if create:
            try:
                os.makedirs(self.steps_dir, mode=0o700, exist_ok=True)
            except OSError as exc:
                raise FerryError("cannot create state directory %s: %s" % (self.steps_dir, exc.strerror))

    def step(self, name):
        return Step(self, name)

    def records(self):
        """Every step's record, with ``interrupted`` detected, oldest start first. A record that cannot be read
        (not JSON, not an object, a file name no step can have) is reported with status ``unreadable`` and
        the reason as its error, so one damaged file does not hide the others."""
        if not os.path.isdir(self.steps_dir):
            return []
        records = []
        for entry in sorted(os.listdir(self.steps_dir)):
            if entry.endswith(".json") and not entry.startswith("."):
                record = self._read_record(entry[:-5])
                if record is not None:
                    records.append(record)
        records.sort(key=lambda rec: (_number(rec.get("started_epoch")), str(rec.get("name"))))
        return records

    def _read_record(self, name):
        path = os.path.join(self.steps_dir, name + ".json")
        try:
            record = self.step(name).record()
        except FerryError as exc:  # not JSON, or a name no step can have
            return _unreadable(name, str(exc))
        except AttributeError:  # JSON, but no object
            return _unreadable(name, "%s is not a step record (its JSON is not an object)" % path)
        except OSError as exc:
            return _unreadable(name, "cannot read %s: %s" % (path, exc.strerror or exc))
        if record is not None:
            record.setdefault("name", name)
        return record


def _unreadable(name, reason):
    return {"name": name, "status": UNREADABLE, "error": reason}


def _number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


class Step:
    """One step's record and lock."""

    def __init__(self, journal, name):
        if not _STEP_NAME.match(name or ""):
            raise FerryError("invalid step name %r: use letters, digits, '.', '_' and '-'" % (name,))
        self.journal = journal
        self.name = name
        self.path = os.path.join(journal.steps_dir, name + ".json")
        self.lock_path = os.path.join(journal.steps_dir, name + ".lock")
        self._lock_fd = None
        self._record = None
        self._last_progress_write = 0.0

    # -- files beside the record, the STOP file ----------------------------------------------
    def beside(self, suffix):
        """The path ``steps/<name><suffix>``: a file the step keeps beside its record (the RRD converters'
        done-log, failed list and report: ``beside(".done")``, ``beside(".failed")``,
        ``beside(".report.jsonl")``)."""
        return os.path.join(self.journal.steps_dir, self.name + suffix)

    @property
    def stop_path(self):
        """``<state_dir>/STOP``: the file an operator creates to stop the running step gracefully."""
        return os.path.join(self.journal.state_dir, STOP_FILE)

    def stop_requested(self):
        """True when the operator created ``<state_dir>/STOP`` (``touch`` it; remove it to go on)."""
        return os.path.exists(self.stop_path)

    def check_stop(self, done_text):
        """Raise :class:`Stopped` when a stop is requested; ``done_text`` says what was finished before it
        (``"12 batch(es)"``, ``"340 file(s)"``)."""
        if self.stop_requested():
            raise Stopped("stopped on request (%s) after %s; remove the file and run again to go on"
                          % (self.stop_path, done_text))

    # -- reading ---------------------------------------------------------------------------
    def record(self):
        """The stored record; a ``running`` one nobody holds the lock of is ``interrupted``."""
        record = read_json(self.path)
        if record is None:
            return None
        if record.get("status") == RUNNING and self._lock_fd is None and not self._locked_elsewhere():
            record["status"] = INTERRUPTED
        return record

    def attempt(self, inputs, force=False, check_mode=False):
        """The lifecycle's entry point: what to do with these ``inputs`` (any JSON-serialisable value, the
        fingerprint is taken here), as an :class:`Attempt`. Raises when another run holds the step."""
        record = self.record()
        digest = fingerprint(inputs)
        return Attempt(self, digest, self._decision(record, digest, force), record, check_mode)

    def decide(self, fingerprint_value, force=False):
        """``skip``, ``resume`` or ``run`` for a step with these inputs (see the module docstring)."""
        return self._decision(self.record(), fingerprint_value, force)

    def _decision(self, record, fingerprint_value, force):
        if force or record is None or record.get("fingerprint") != fingerprint_value:
            return RUN
        status = record.get("status")
        if status == COMPLETE:
            return SKIP
        if status == RUNNING:
            raise FerryError(self._busy_message(record))
        return RESUME

    def checkpoint(self):
        """The checkpoint the last run left (resume data), or None."""
        record = read_json(self.path) or {}
        return record.get("checkpoint")

    # -- running ---------------------------------------------------------------------------
    def begin(self, fingerprint_value, resume=False, total=None, unit=None):
        """Take the step's lock and record it as running. Raises if another run holds it."""
        self._acquire_lock()
        previous = read_json(self.path) or {}
        now = _now()
        self._record = {
            "name": self.name,
            "status": RUNNING,
            "fingerprint": fingerprint_value,
            "started": _iso(now),
            "started_epoch": now,
            "ended": None,
            "ended_epoch": None,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "attempt": int(previous.get("attempt") or 0) + 1,
            "resumed": bool(resume),
            "progress": {"done": 0, "total": total, "unit": unit},
            "counts": {},
            "checkpoint": previous.get("checkpoint") if resume else None,
            "error": None,
            "result": None,
        }
        self._write()
        return self

    def progress(self, done, total=None, unit=None, flush=False):
        progress = self._record["progress"]
        progress["done"] = done
        if total is not None:
            progress["total"] = total
        if unit is not None:
            progress["unit"] = unit
        now = _now()
        if flush or now - self._last_progress_write >= PROGRESS_INTERVAL:
            self._write()

    def save_checkpoint(self, data):
        """Store resume data now (callers pass small dicts: offsets, names of finished parts)."""
        self._record["checkpoint"] = data
        self._write()

    def complete(self, counts=None, result=None):
        self._finish(COMPLETE, counts=counts, result=result)

    def fail(self, error, counts=None):
        self._finish(FAILED, counts=counts, error=str(error))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, _tb):
        if self._record is not None and self._record["status"] == RUNNING:
            if exc is None:
                self.complete()
            elif isinstance(exc, Exception):
                self.fail(exc)
            # KeyboardInterrupt / SystemExit: leave "running"; the released lock makes it interrupted.
        self._release_lock()
        return False

    # -- internals -------------------------------------------------------------------------
    def _finish(self, status, counts=None, result=None, error=None):
        now = _now()
        self._record.update(status=status, ended=_iso(now), ended_epoch=now, error=error)
        if counts:
            self._record["counts"].update(counts)
        if result is not None:
            self._record["result"] = result
        if status == COMPLETE:
            total = self._record["progress"].get("total")
            if total is not None:
                self._record["progress"]["done"] = total
            self._record["checkpoint"] = None
        self._write()
        self._release_lock()

    def _write(self):
        self._last_progress_write = _now()
        atomic_write_json(self.path, self._record, FILE_MODE)

    def _acquire_lock(self):
        if self._lock_fd is not None:
            return
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise FerryError(self._busy_message(read_json(self.path) or {}))
            raise
        self._lock_fd = fd

    def _release_lock(self):
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _locked_elsewhere(self):
        try:
            fd = os.open(self.lock_path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        return False

    def _busy_message(self, record):
        return "step %s is already running (pid %s on %s, started %s)" % (
            self.name, record.get("pid", "?"), record.get("host", "?"), record.get("started", "?"))


class Attempt:
    """A run of a step about to start (:meth:`Step.attempt`).

    ``decision`` is ``run``, ``resume`` or ``skip``; a module that knows better may set another before running
    (``skip`` into ``run`` when outputs were lost, into ``resume`` when there is more to do, or a decision of
    its own such as the RRD converters' ``update``). Everything else follows from it:

    * ``resume``: the run goes on from the last one (any decision but ``run`` and ``skip``);
    * ``checkpoint``: the last run's checkpoint when resuming, else None;
    * ``runs``: the body runs now (neither ``skip`` nor check mode);
    * ``record``: the step's record as this attempt found it (None: the step never ran).
    """

    def __init__(self, step, fingerprint_value, decision, record, check_mode=False):
        self.step = step
        self.fingerprint = fingerprint_value
        self.decision = decision
        self.record = record
        self.check_mode = check_mode

    @property
    def resume(self):
        return self.decision not in (RUN, SKIP)

    @property
    def checkpoint(self):
        return (self.record or {}).get("checkpoint") if self.resume else None

    @property
    def runs(self):
        return self.decision != SKIP and not self.check_mode

    def running(self, total=None, unit=None):
        """Take the step's lock and record it as running (resumed or not, as decided): use it as ``with
        attempt.running(...) as step``. The block completes the step when it ends, unless the body recorded
        an end itself (``step.complete(counts=...)``, ``step.fail(...)``); an exception fails it. A kill
        leaves it running with no lock held: ``interrupted``, resumed by the next attempt."""
        if not self.runs:
            raise FerryError("step %s does not run: it is %s" % (
                self.step.name, "in check mode" if self.check_mode else "complete with the same inputs (skip)"))
        return self.step.begin(self.fingerprint, resume=self.resume, total=total, unit=unit)


def describe(record, now=None):
    """A status row for humans and for ``migration_status``: durations, rates, percentages."""
    now = _now() if now is None else now
    started = record.get("started_epoch")
    ended = record.get("ended_epoch")
    elapsed = None
    if started is not None:
        elapsed = (ended if ended is not None else now) - started
        if record.get("status") == INTERRUPTED:
            elapsed = None
    progress = dict(record.get("progress") or {})
    done, total = progress.get("done"), progress.get("total")
    progress["percent"] = round(100.0 * done / total, 1) if total and done is not None else None
    progress["rate_per_s"] = round(done / elapsed, 1) if elapsed and done else None
    return {
        "name": record.get("name"),
        "status": record.get("status"),
        "started": record.get("started"),
        "ended": record.get("ended"),
        "elapsed_s": round(elapsed, 3) if elapsed is not None else None,
        "attempt": record.get("attempt"),
        "resumed": record.get("resumed"),
        "host": record.get("host"),
        "pid": record.get("pid"),
        "progress": progress,
        "counts": record.get("counts") or {},
        "error": record.get("error"),
        "fingerprint": record.get("fingerprint"),
    }


def format_table(rows):
    """A fixed-width table of step rows, one line per step, for a playbook's debug output."""
    header = ("STEP", "STATUS", "PROGRESS", "ELAPSED", "COUNTS / ERROR")
    lines = [header]
    for row in rows:
        detail = row["error"] or ", ".join("%s=%s" % item for item in sorted(row["counts"].items()))
        lines.append((row["name"], row["status"], progress_text(row["progress"]) or "-",
                      elapsed_text(row["elapsed_s"]) or "-", detail or "-"))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header) - 1)]
    out = []
    for line in lines:
        cells = [str(cell).ljust(width) for cell, width in zip(line, widths)]
        out.append("  ".join(cells + [str(line[-1])]).rstrip())
    return "\n".join(out)


def progress_text(progress):
    """A step's progress as the status table and wait_steps print it ("" before any)."""
    done, total, unit = progress.get("done"), progress.get("total"), progress.get("unit") or ""
    if done is None:
        return ""
    if total:
        return "%s/%s %s (%.1f%%)" % (done, total, unit, progress["percent"])
    return ("%s %s" % (done, unit)).strip()


def elapsed_text(seconds):
    """Seconds as h:mm:ss ("" when unknown)."""
    if seconds is None:
        return ""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return "%d:%02d:%02d" % (hours, minutes, secs)
