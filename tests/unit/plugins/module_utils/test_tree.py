# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""core/tree.py with a toy job over a temporary tree: no RRD in sight."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError, tree_files
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import Journal, Stopped
from ansible_collections.ferry.migrate.plugins.module_utils.core.tree import (
    DoneLog,
    ForkedWorkers,
    Totals,
    balanced_group_size,
    file_error,
    file_stamp,
    in_shard,
    pending_files,
    run_tree,
)

NAMES = ["d%d/f%02d.txt" % (index % 3, index) for index in range(20)]


class Boom(FerryError):
    """What a job raises to end the whole run (no space left, say)."""


class CountBytes:
    """The toy job: each file's size counted as ``bytes``; a file holding ``bad`` fails alone, one holding
    ``boom`` ends the run. Every file it looks at is appended to ``seen`` (unbuffered: it survives a kill)."""

    def __init__(self, src, seen):
        self.src = src
        self.seen = seen

    def __call__(self, files):
        results = []
        for relative in files:
            path = os.path.join(self.src, relative)
            with open(self.seen, "a") as handle:
                handle.write("%s %d\n" % (relative, len(files)))
            result = {"file": relative, "stamp": file_stamp(path)}
            try:
                with open(path, "rb") as handle:
                    data = handle.read()
                if data == b"boom":
                    raise Boom("%s: the disk is full" % relative)
                if data == b"bad":
                    raise ValueError("not what a file should hold")
                result["bytes"] = len(data)
                if data == b"odd":
                    result["warnings"] = ["%s: odd" % relative]
            except Boom:
                raise
            except Exception as exc:  # pylint: disable=broad-except
                result = {"file": relative, "stamp": result["stamp"], "error": file_error(relative, exc)}
            results.append(result)
        return results


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "src"
    for name in NAMES:
        (src / os.path.dirname(name)).mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(b"x" * (NAMES.index(name) + 1))
    return src


def seen(path):
    """(file, size of its group) the job looked at, in order."""
    if not os.path.exists(str(path)):
        return []
    with open(str(path)) as handle:
        return [(line.split()[0], int(line.split()[1])) for line in handle]


def walk(src, state, resume=False, workers=1, group_size=4, shard=(0, 1), stop_check=None, step=None):
    """A run as a converter makes it: done-log, totals, the pending files of the shard; its result and done-log."""
    log = DoneLog(str(state / "walk.done"), resume)
    totals = Totals(str(state / "walk.report.jsonl"), resume, counted=("bytes",))
    job = CountBytes(str(src), str(state / "seen"))

    def pending():
        return pending_files(str(src), tree_files(str(src), (".txt",)), shard[0], shard[1], log.done)
    try:
        run_tree(job, pending, totals, log, group_size, workers, True, step, stop_check)
    finally:
        log.close()
        totals.close()
    return totals.result(), log


@pytest.fixture
def state(tmp_path):
    path = tmp_path / "state"
    path.mkdir()
    return path


@pytest.mark.parametrize("workers", [1, 2])
def test_every_file_is_done_once_and_counted(tree, state, workers):
    result, log = walk(tree, state, workers=workers)
    assert sorted(name for name, _size in seen(state / "seen")) == sorted(NAMES)
    assert result["counts"] == {"files": 20, "failed": 0, "skipped": 0, "bytes": sum(range(1, 21)), "warnings": 0}
    assert set(log.done) == set(NAMES)
    assert DoneLog.read(str(state / "walk.done")) == dict((name, file_stamp(str(tree / name))) for name in NAMES)
    again, _log = walk(tree, state, resume=True, workers=workers)
    assert again["counts"]["files"] == 0 and len(seen(state / "seen")) == 20  # nothing left to do


def test_shards_partition_the_files(tree, state):
    count = 3
    shards = [list(pending_files(str(tree), NAMES, index, count)) for index in range(count)]
    assert sorted(sum(shards, [])) == sorted(NAMES) and all(shards)
    for index, files in enumerate(shards):
        assert all(in_shard(name, index, count) for name in files)
    for index in range(count):  # a run per shard, one after the other, does each file once
        walk(tree, state, resume=index > 0, shard=(index, count))
    assert sorted(name for name, _size in seen(state / "seen")) == sorted(NAMES)


def test_groups_are_balanced_over_the_workers(tree, state):
    walk(tree, state, workers=2, group_size=8)
    sizes = [size for _name, size in seen(state / "seen")]
    assert balanced_group_size(20, 8, 2) == 5  # 4 groups of 5, not 8, 8 and 4: both workers busy to the end
    assert sorted(set(sizes)) == [5] and len(sizes) == 20


def test_a_changed_file_is_done_again(tree, state):
    walk(tree, state)
    (tree / NAMES[3]).write_bytes(b"changed, and longer")
    result, _log = walk(tree, state, resume=True)
    assert result["counts"]["files"] == 1 and seen(state / "seen")[-1][0] == NAMES[3]


def test_a_failing_file_fails_alone(tree, state):
    (tree / NAMES[5]).write_bytes(b"bad")
    (tree / NAMES[6]).write_bytes(b"odd")
    result, log = walk(tree, state)
    assert result["counts"]["files"] == 20 and result["counts"]["failed"] == 1 and result["counts"]["warnings"] == 1
    assert result["failed_files"] == ["%s: not what a file should hold" % NAMES[5]]
    assert set(log.done) == set(NAMES) - {NAMES[5]}
    assert list(DoneLog.read(str(state / "walk.done"), failed=True)) == [NAMES[5]]
    with open(str(state / "walk.report.jsonl")) as handle:
        assert len(handle.readlines()) == 2  # the failure and the warning
    again, _log = walk(tree, state, resume=True)  # a resumed run tries the failed file again
    assert again["counts"]["files"] == 1 and again["counts"]["failed"] == 1


def test_an_exception_of_the_job_ends_the_run_and_keeps_what_was_recorded(tree, state):
    (tree / NAMES[10]).write_bytes(b"boom")  # in the third group of the walk
    with pytest.raises(Boom, match="the disk is full"):
        walk(tree, state, group_size=4)
    done = DoneLog.read(str(state / "walk.done"))
    assert len(done) == 8 and NAMES[10] not in done  # the two groups before the one that raised
    (tree / NAMES[10]).write_bytes(b"fine now")
    result, log = walk(tree, state, resume=True)
    assert result["counts"]["files"] == 12 and set(log.done) == set(NAMES)


def test_stop_check_stops_between_groups(tree, state):
    calls = []

    def stop_check(done_text):
        calls.append(done_text)
        if len(calls) == 2:
            raise Stopped("stop after %s" % done_text)
    with pytest.raises(Stopped, match=r"^stop after 8 file\(s\)$"):
        walk(tree, state, group_size=4, stop_check=stop_check)
    assert calls == ["4 file(s)", "8 file(s)"]
    assert len(seen(state / "seen")) == 8 and len(DoneLog.read(str(state / "walk.done"))) == 8


def test_the_stop_file_through_the_journal_step(tree, state, tmp_path):
    step = Journal(str(tmp_path / "migration")).step("walk")
    (tmp_path / "migration" / "STOP").write_text("")
    with pytest.raises(Stopped, match=r"stopped on request \(.*STOP\) after 4 file\(s\); remove the file"):
        with step.begin("fp", unit="files"):
            walk(tree, state, group_size=4, stop_check=step.check_stop, step=step)
    record = step.record()
    assert record["status"] == "failed" and record["progress"]["done"] == 4 and record["progress"]["total"] == 20
    os.unlink(str(tmp_path / "migration" / "STOP"))
    result, _log = walk(tree, state, resume=True, stop_check=step.check_stop)
    assert result["counts"]["files"] == 16


def test_the_done_log_resumes_after_a_kill(tree, state):
    """A run killed after three groups, its done-log synced a moment before (it is, once a second) and its last
    line torn: the resumed run does the files that were not recorded, and only those."""
    pid = os.fork()
    if pid == 0:  # the run to kill
        try:
            log = DoneLog(str(state / "walk.done"), False)
            totals = Totals(str(state / "walk.report.jsonl"), False, counted=("bytes",))

            def kill_after_three(done_text):
                if done_text == "4 file(s)":
                    log.sync()
                elif done_text == "6 file(s)":  # the third group's lines are still in the buffer: lost
                    with open(str(state / "walk.done"), "ab") as handle:
                        handle.write(b'["%s' % NAMES[0].encode())  # and a line torn by the kill
                    os.kill(os.getpid(), signal.SIGKILL)

            def pending():
                return pending_files(str(tree), tree_files(str(tree), (".txt",)))
            run_tree(CountBytes(str(tree), str(state / "seen")), pending, totals, log, 2, 1, True, None,
                     kill_after_three)
        finally:
            os._exit(1)  # never reached: killed
    _pid, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    before = [name for name, _size in seen(state / "seen")]
    assert len(before) == 6
    recorded = DoneLog.read(str(state / "walk.done"))  # what reached the disk: the first two groups
    assert sorted(recorded) == sorted(before[:4])
    result, log = walk(tree, state, resume=True)
    after = [name for name, _size in seen(state / "seen")][6:]
    assert sorted(after) == sorted(set(NAMES) - set(recorded)) and result["counts"]["files"] == 16
    assert set(DoneLog.read(str(state / "walk.done"))) == set(NAMES) == set(log.done)


def _square_or_fail(job):
    if job == "fail":
        raise FerryError("job refused")
    if job == "big":
        return b"x" * (3 << 20)  # bigger than any pipe: the worker waits for the parent to read it
    return job * job


def test_forked_workers_give_each_ticket_its_result_in_any_order():
    with ForkedWorkers(_square_or_fail, 2) as workers:
        tickets = dict((number, workers.submit(number)) for number in range(40))
        big = workers.submit("big")
        assert [workers.result(tickets[number]) for number in reversed(range(40))] == [
            number * number for number in reversed(range(40))]
        assert workers.result(big) == b"x" * (3 << 20)
        pids = [worker[0] for worker in workers.workers]
        assert len(set(pids)) == 2 and os.getpid() not in pids
    assert workers.workers == []
    for pid in pids:  # reaped: no child left behind
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def test_a_forked_worker_s_exception_is_raised_by_its_result_and_the_others_go_on():
    with ForkedWorkers(_square_or_fail, 2) as workers:
        failing, fine = workers.submit("fail"), workers.submit(7)
        with pytest.raises(FerryError, match="job refused"):
            workers.result(failing)
        assert workers.result(fine) == 49


def test_a_forked_worker_that_dies_is_a_clear_error():
    with pytest.raises(FerryError, match="ended before it gave its result"):
        with ForkedWorkers(os._exit, 1) as workers:
            workers.result(workers.submit(3))


def test_forked_workers_end_when_their_parent_is_killed(tmp_path):
    """A SIGKILLed module leaves no worker behind, though processes forked later hold copies of its pipes."""
    script = ("import os, sys, time\n"
              "from ansible_collections.ferry.migrate.plugins.module_utils.core.tree import ForkedWorkers\n"
              "workers = ForkedWorkers(abs, 2)\n"
              "holder = os.fork()\n"  # holds copies of the workers' pipes, as the hashing pool's workers do
              "if holder == 0:\n    time.sleep(30)\n    os._exit(0)\n"
              "print(' '.join(str(worker[0]) for worker in workers.workers), holder, flush=True)\n"
              "time.sleep(30)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    try:
        pids = [int(pid) for pid in proc.stdout.readline().split()]
        proc.kill()
        proc.wait()
        deadline = time.time() + 10
        while time.time() < deadline and any(_alive(pid) for pid in pids[:2]):
            time.sleep(0.05)
        assert not any(_alive(pid) for pid in pids[:2])
    finally:
        proc.kill()
        try:
            os.kill(pids[2], signal.SIGKILL)
        except (OSError, NameError, IndexError):
            pass


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
