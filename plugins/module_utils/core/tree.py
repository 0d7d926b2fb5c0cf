# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The parallel walk of a file tree: one job over many files, in groups, on several processes, resumable.

It knows nothing of what the files hold. The RRD converters use it (``rrd/convert.py``); so can any step
that does the same thing to every file of a tree (the host scan, the perf import).

:func:`run_tree` takes the files still to do (:func:`pending_files`: those of this shard -- a stable hash
of the relative path, :func:`in_shard`, so several hosts can split one tree -- that are not done yet, or
have changed since), hands them in groups to a job on ``workers`` forked processes (:func:`run_pool`;
groups of :func:`balanced_group_size`, so that no worker waits for another's last one), and records each
file's result in the parent as it comes: counts, a sample of the problems for the task result and every
problem in a report file (:class:`Totals`), the finished (or only the failed) files in a done-log that
lets a killed run resume (:class:`DoneLog`), and the step's progress. Between groups it calls
``stop_check(done_text)`` (``Step.check_stop``: raises ``Stopped`` when the STOP file is there).

A job's contract:

* ``job(files)``: ``files`` is a list of paths relative to the tree's root; it returns one result per file,
  a dict:

  - ``file``: the relative path, as given;
  - ``stamp``: what the done-log keeps of the file (:func:`file_stamp`, taken before reading it): a file
    whose stamp has changed since is done again; None: done whatever happens to it;
  - ``error``: only when the file failed, the reason naming the file (:func:`file_error`);
  - ``warnings``, ``skipped``: lists of texts, each naming the file;
  - the counts the caller's :class:`Totals` adds up (``points``, ``created``, ...), numbers.

* Whatever one file holds fails that file alone, as an ``error`` in its result. An exception the job raises
  ends the whole run (no space left, say): the pool is stopped and the exception raised by :func:`run_tree`,
  results of other groups recorded so far stay recorded. A group's files are reported done only once the job
  returns, so it makes them durable before returning.

* With ``workers`` above 1 the job runs in forked processes (fork, not spawn: the engine runs inside an
  Ansible module payload that a spawned interpreter could not import again; see ``pytest.ini`` for the
  warning that fork in a threaded test process gives): the job and its results are pickled, and only the
  parent writes the done-log, the report and the journal.

:func:`run_ordered` is the pool for a caller that wants results in the order of its items while it feeds the pool
as it goes (the host scan's hashing: an item without work passes straight through, in its turn).
:class:`ForkedWorkers` is for many small jobs whose results are taken in an order of the caller's (the host scan
lists a directory a job): forked processes over plain pipes, no threads.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import json
import multiprocessing
import os
import time
import zlib
from multiprocessing.connection import Connection

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import (
    SAMPLE_LIMIT,
    FerryError,
    check_ranges,
    open_private,
    readable,
)


def in_shard(relative, shard_index, shard_count):
    """Whether a file is in this shard: a hash of its name's bytes (as they are, UTF-8 or not)."""
    return shard_count <= 1 or zlib.crc32(relative.encode("utf-8", "surrogateescape")) % shard_count == shard_index


SHARD_RANGES = {"shard_count": (1, None), "shard_index": (0, None)}


def check_shard(params):
    """Refuse ``shard_index`` / ``shard_count`` options that split nothing (the one check of every module that
    takes them, before anything is recorded): a count below 1, an index outside ``[0, shard_count)``."""
    check_ranges(params, SHARD_RANGES)
    if params["shard_index"] >= params["shard_count"]:
        raise FerryError("shard_index=%d is out of range: it must be from 0 to shard_count - 1 (%d)"
                         % (params["shard_index"], params["shard_count"] - 1))


def file_stamp(path):
    """(size, mtime in ns) of a file: a file done with another stamp has changed since."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def file_error(relative, exc):
    """The reason one file failed, naming it: whatever the file holds fails that file, not its group."""
    if isinstance(exc, FerryError):
        text = str(exc)
    elif isinstance(exc, (OSError, ValueError)):
        text = "%s: %s" % (relative, exc)
    else:  # a case no check foresaw: still that file's failure, with what went wrong
        text = "%s: %s: %s" % (relative, type(exc).__name__, exc)
    return text if relative in text else "%s: %s" % (relative, text)


def relative_files(src, files):
    """A user's file list as sorted paths relative to ``src``; each must exist inside it."""
    root = os.path.abspath(src)
    out = set()
    for name in files:
        path = os.path.abspath(os.path.join(root, name))
        if not path.startswith(root + os.sep):
            raise FerryError("%s is not inside the source directory %s" % (name, root))
        if not os.path.isfile(path):
            raise FerryError("%s does not exist" % path)
        out.add(os.path.relpath(path, root))
    return sorted(out)


def pending_files(src, files, shard_index=0, shard_count=1, done=None, skip_failed=None):
    """Of ``files`` (paths relative to ``src``, an iterable walked once), those of this shard not done yet, or
    changed since (size or mtime).

    ``done``: {relative path: stamp} of the files done (stamp None: done whatever happens to it);
    ``skip_failed``: the same of files that failed before, left out while they have not changed either.
    """
    done = done or {}
    for relative in files:
        if not in_shard(relative, shard_index, shard_count):
            continue
        record = done[relative] if relative in done else (skip_failed or {}).get(relative, False)
        if record is False or record is not None and record != file_stamp(os.path.join(src, relative)):
            yield relative


class DoneLog:
    """Files finished by earlier attempts of a step, with the stamp they had; made durable every second.

    ``done`` maps a relative path to its stamp (None: done whatever happens to it).
    """

    def __init__(self, path, resume):
        self.path = path
        self.done = DoneLog.read(path) if resume else {}
        self._handle = open_private(path, append=resume)
        if resume:  # cut a torn last line, or the next entry would be glued to it
            self._handle.truncate(self._complete_size(path))
        self._synced = time.time()

    @staticmethod
    def read(path, failed=False):
        """The files recorded as finished (or, with ``failed``, as failed) in ``path``, with their stamps.

        The last record of a file wins; a torn last line (a killed run) is a file to do again.
        """
        found = {}
        for relative, stamp, has_failed in DoneLog._entries(path):
            if has_failed == failed:
                found[relative] = stamp
            else:
                found.pop(relative, None)
        return found

    @staticmethod
    def _entries(path):
        if not os.path.exists(path):
            return
        with open(path, "rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    raise FerryError("%s line %r is damaged: remove the file to convert everything again"
                                     % (path, line[:80]))
                if not isinstance(entry, list):
                    entry = [entry]
                failed = entry[-1] == "failed"
                stamp = entry[1:3] if len(entry) >= 3 else None
                yield entry[0], stamp, failed

    @staticmethod
    def _complete_size(path):
        with open(path, "rb") as handle:
            data = handle.read()
        return data.rfind(b"\n") + 1

    def add(self, relative, stamp=None, failed=False):
        """Record a finished file (or a failed one: not retried while it stays as it is)."""
        if failed:
            self.done.pop(relative, None)
        else:
            self.done[relative] = stamp
        entry = [relative] + list(stamp or ()) + (["failed"] if failed else [])
        self._handle.write(json.dumps(entry).encode("utf-8") + b"\n")
        if time.time() - self._synced >= 1.0:
            self.sync()

    def sync(self):
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._synced = time.time()

    def close(self):
        self.sync()
        self._handle.close()


class Totals:
    """Counts of a run, a sample of problems for the task result, every problem in the report file.

    ``counted``: the numbers of the job's results to add up, besides the files, failed and skipped files and
    warnings every run counts.
    """

    def __init__(self, report_path, resume=False, counted=()):
        self.counted = tuple(counted)
        keys = ("files", "failed", "skipped") + self.counted + ("warnings",)
        self.counts = dict((key, 0) for key in keys)
        self.failures = []
        self.warnings = []
        self.skips = []
        self.report_path = report_path
        self._report = open_private(report_path, append=resume)

    def add(self, result):
        self.counts["files"] += 1
        for key in self.counted:
            self.counts[key] += result.get(key, 0)
        problems = [("warning", readable(text)) for text in result.get("warnings", ())]
        problems += [("skipped", readable(text)) for text in result.get("skipped", ())]
        if result.get("error"):
            error = readable(result["error"])
            problems.append(("failed", error))
            self.counts["failed"] += 1
            _sample(self.failures, error)
        for kind, text in problems:
            if kind == "warning":
                self.counts["warnings"] += 1
                _sample(self.warnings, text)
            elif kind == "skipped":
                self.counts["skipped"] += 1
                _sample(self.skips, text)
            self._report.write(json.dumps({"file": readable(result["file"]), kind: text}).encode("utf-8") + b"\n")

    def close(self):
        self._report.close()

    def result(self):
        return {"counts": dict(self.counts), "failed_files": list(self.failures), "file_warnings": list(self.warnings),
                "skipped_files": list(self.skips), "report": self.report_path}


def _sample(bucket, text):
    if len(bucket) < SAMPLE_LIMIT:
        bucket.append(text)


def default_workers():
    """The processes a run uses unless told: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, multiprocessing.cpu_count())


def balanced_group_size(total, most, workers):
    """Files a group: at most ``most``, and as many groups as a multiple of ``workers``, so that no worker
    waits for another's last group (7 groups of 64 on 2 workers leave one idle for a seventh of the run)."""
    if total <= 0:
        return most
    groups = -(-total // most)
    groups = -(-groups // workers) * workers
    return max(1, -(-total // groups))


def run_pool(function, items, workers, chunksize=8):
    """Results of ``function`` over ``items``, as they come, from ``workers`` forked processes.

    Fork, not spawn: the engine runs inside an Ansible module payload that a spawned interpreter could
    not import again.
    """
    if workers <= 1:
        for item in items:
            yield function(item)
        return
    context = multiprocessing.get_context("fork")
    pool = context.Pool(workers)
    try:
        yield from pool.imap_unordered(function, items, chunksize)
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def run_ordered(function, items, workers, ahead=None):
    """``(item, function(work))`` for each ``(item, work)`` of ``items``, in their order, ``function`` run on
    ``workers`` forked processes (inline with one); ``work`` None: ``(item, None)``, without a trip to the pool,
    and no pool at all while no item has work (a rescan that finds everything cached).

    Pipelined: ``items`` is read on while the workers run, at most ``ahead`` items (by default 4 per worker)
    waiting for their turn, so memory stays bounded.
    """
    if workers <= 1:
        for item, work in items:
            yield item, None if work is None else function(work)
        return
    ahead = ahead or 4 * workers
    pool = None
    waiting = collections.deque()
    try:
        for item, work in items:
            if work is not None and pool is None:
                pool = multiprocessing.get_context("fork").Pool(workers)
            waiting.append((item, None if work is None else pool.apply_async(function, (work,))))
            while waiting and (len(waiting) > ahead or waiting[0][1] is None or waiting[0][1].ready()):
                item, result = waiting.popleft()
                yield item, None if result is None else result.get()
        while waiting:
            item, result = waiting.popleft()
            yield item, None if result is None else result.get()
        if pool is not None:
            pool.close()
            pool.join()
            pool = None
    finally:
        if pool is not None:  # an error or a stop: the workers' work is not wanted any more
            pool.terminate()
            pool.join()


class ForkedWorkers:
    """``count`` forked processes running ``function`` on the jobs given, each over its own pair of pipes: no
    thread in the parent and no queue between (a ``multiprocessing`` pool costs ~0.1 ms a job in its threads; the
    host scan's rescan gives one job a directory). :meth:`submit` gives a ticket, :meth:`result` its result, in any
    order (the results a worker gave before it are kept until asked for). An exception in ``function`` is raised by
    :meth:`result`. Use as a context manager: the workers are stopped at the end, killed on an error.
    """

    def __init__(self, function, count):
        self.function = function
        self.workers = []  # [pid, connection, tickets waiting]
        self.done = {}
        self.next_ticket = 0
        for _number in range(count):
            self._start()

    def _start(self):
        jobs_read, jobs_write = os.pipe()
        results_read, results_write = os.pipe()
        _widen_pipe(results_write)
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child; its coverage is the parent's results
            _die_with(parent)
            os.close(jobs_write)
            os.close(results_read)
            for _pid, connection, _tickets in self.workers:
                connection.close()
            self._serve(Connection(jobs_read, writable=False), Connection(results_write, readable=False))
        os.close(jobs_read)
        os.close(results_write)
        self.workers.append([pid, _Duplex(Connection(results_read, writable=False),
                                          Connection(jobs_write, readable=False)), collections.deque()])

    def _serve(self, jobs, results):  # pragma: no cover - runs in the child
        code = 0
        try:
            while True:
                try:
                    job = jobs.recv()
                except EOFError:
                    break
                try:
                    results.send((True, self.function(job)))
                except Exception as exc:  # pylint: disable=broad-exception-caught
                    results.send((False, exc))
        except BaseException:  # pylint: disable=broad-exception-caught
            code = 1
        finally:
            os._exit(code)  # never the parent's atexit handlers nor its buffers

    def submit(self, job):
        """Give ``job`` to the worker with the fewest jobs waiting; returns its ticket."""
        worker = min(self.workers, key=lambda found: len(found[2]))
        ticket = self.next_ticket
        self.next_ticket += 1
        worker[1].send(job)
        worker[2].append(ticket)
        return ticket, worker

    def result(self, ticket):
        ticket, worker = ticket
        while ticket not in self.done:
            if not worker[2]:
                raise FerryError("a worker lost the job it was given")
            try:
                self.done[worker[2].popleft()] = worker[1].recv()
            except EOFError:
                raise FerryError("a worker process ended before it gave its result")
        ok, value = self.done.pop(ticket)
        if not ok:
            raise value
        return value

    def close(self, kill=False):
        for pid, connection, _tickets in self.workers:
            connection.close()
            if kill:
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
        for pid, _connection, _tickets in self.workers:
            os.waitpid(pid, 0)
        self.workers = []

    def __enter__(self):
        return self

    def __exit__(self, exc_type, _exc, _tb):
        self.close(kill=exc_type is not None)


def _die_with(parent):  # pragma: no cover - runs in the child
    """A worker ends when its parent does, even when killed (Linux: PR_SET_PDEATHSIG): processes forked later keep
    copies of its jobs pipe, so the end of that pipe alone would not tell it."""
    try:
        import ctypes  # pylint: disable=import-outside-toplevel
        ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except (ImportError, OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent was gone before that
        os._exit(1)


def _widen_pipe(fd, size=1 << 20):
    """A worker's results pipe holds 1 MiB (Linux; 64 KiB by default): a worker runs on while the parent reads
    another one's result, instead of waiting with its own half-sent."""
    try:
        import fcntl  # pylint: disable=import-outside-toplevel
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except (ImportError, OSError):
        pass  # a smaller pipe only costs some waiting


class _Duplex:
    """A worker's two pipes as one connection: jobs go out on one, results come back on the other."""

    def __init__(self, incoming, outgoing):
        self.incoming = incoming
        self.outgoing = outgoing

    def send(self, value):
        self.outgoing.send(value)

    def recv(self):
        return self.incoming.recv()

    def close(self):
        self.outgoing.close()
        self.incoming.close()


def run_tree(job, pending, totals, log, group_size=16, workers=1, log_done=True, step=None, stop_check=None):
    """Every pending file, in groups of at most ``group_size``, through ``job`` (the contract: see the module's
    documentation) on ``workers`` processes.

    ``pending()`` lists the files (:func:`pending_files`); it is walked twice, once to count them, once to do
    them. Each result is added to ``totals`` (:class:`Totals`); failed files, and with ``log_done`` the finished
    ones, are recorded in ``log`` (:class:`DoneLog`). ``step`` (a journal step, or None) shows the progress in
    files. ``stop_check(done_text)``, when given, is called after each group with what is done so far
    (``"12 file(s)"``); it raises to stop the run there.
    """
    total = sum(1 for _f in pending())
    if step is not None:
        step.progress(0, total, "files", flush=True)
    group_size = balanced_group_size(total, group_size, workers)
    for results in run_pool(job, _chunks(pending(), group_size), workers, chunksize=1):
        for result in results:
            totals.add(result)
            failed = "error" in result
            if failed or log_done:
                log.add(result["file"], result.get("stamp"), failed=failed)
        if step is not None:
            step.progress(totals.counts["files"], total, "files")
        if stop_check is not None:
            stop_check("%d file(s)" % totals.counts["files"])


def _chunks(items, size):
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
