# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError, exit_with, open_private
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import (
    COMPLETE,
    FAILED,
    INTERRUPTED,
    RESUME,
    RUN,
    SKIP,
    Journal,
    Stopped,
    attempt_step,
    describe,
    fingerprint,
    format_table,
)


def test_fingerprint_is_stable_and_order_free():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_first_run_then_skip_then_force(tmp_path):
    step = Journal(str(tmp_path)).step("load")
    assert step.decide("fp1") == RUN
    with step.begin("fp1", total=10, unit="rows"):
        step.progress(5)
        step.complete(counts={"rows": 10}, result={"x": 1})
    record = step.record()
    assert record["status"] == COMPLETE
    assert record["counts"] == {"rows": 10}
    assert record["progress"]["done"] == 10
    assert record["started"] and record["ended"]
    assert step.decide("fp1") == SKIP
    assert step.decide("fp1", force=True) == RUN
    assert step.decide("fp2") == RUN  # inputs changed


def test_exception_records_failure_and_resume(tmp_path):
    step = Journal(str(tmp_path)).step("load")
    with pytest.raises(ValueError):
        with step.begin("fp"):
            step.save_checkpoint({"done": ["a"]})
            raise ValueError("boom: table x")
    record = step.record()
    assert record["status"] == FAILED
    assert record["error"] == "boom: table x"
    assert step.decide("fp") == RESUME
    with step.begin("fp", resume=True):
        assert step.record()["checkpoint"] == {"done": ["a"]}
        assert step.record()["attempt"] == 2
        step.complete()
    assert step.record()["checkpoint"] is None


def test_second_runner_is_refused_while_first_holds_the_lock(tmp_path):
    journal = Journal(str(tmp_path))
    first = journal.step("load").begin("fp")
    try:
        with pytest.raises(FerryError, match="already running"):
            journal.step("load").begin("fp")
        with pytest.raises(FerryError, match="already running"):
            journal.step("load").decide("fp")
    finally:
        first.complete()


def test_killed_run_is_reported_interrupted_and_resumes(tmp_path):
    # A real process takes the lock, records "running", and is killed with SIGKILL.
    code = (
        "import conftest, os, signal\n"
        "from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import Journal\n"
        "step = Journal(%r).step('load').begin('fp', total=100, unit='rows')\n"
        "step.save_checkpoint({'offset': 42})\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n" % str(tmp_path)
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))))
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, check=False)
    assert proc.returncode == -9
    with open(os.path.join(str(tmp_path), "steps", "load.json")) as handle:
        assert json.load(handle)["status"] == "running"  # what the killed process left
    step = Journal(str(tmp_path)).step("load")
    assert step.record()["status"] == INTERRUPTED
    assert step.decide("fp") == RESUME
    with step.begin("fp", resume=True):
        assert step.checkpoint() == {"offset": 42}
        step.complete()
    assert step.record()["status"] == COMPLETE


def test_records_and_table(tmp_path):
    journal = Journal(str(tmp_path))
    with journal.step("a").begin("fp", total=4, unit="files") as step:
        step.progress(2, flush=True)
        rows = [describe(rec) for rec in journal.records()]
        assert rows[0]["status"] == "running"
        assert rows[0]["progress"]["percent"] == 50.0
        step.complete(counts={"files": 4})
    with pytest.raises(RuntimeError):
        with journal.step("b").begin("fp"):
            raise RuntimeError("disk full writing /x")
    rows = [describe(rec) for rec in journal.records()]
    assert [row["name"] for row in rows] == ["a", "b"]
    table = format_table(rows).splitlines()
    assert table[0].split()[:3] == ["STEP", "STATUS", "PROGRESS"]
    assert "complete" in table[1] and "files=4" in table[1] and "4/4 files (100.0%)" in table[1]
    assert "failed" in table[2] and "disk full writing /x" in table[2]


@pytest.mark.parametrize("name", ["", "../x", "a/b", "-x", "a b", "step\n", "a" * 129])
def test_bad_step_names_are_refused(tmp_path, name):
    with pytest.raises(FerryError, match="invalid step name"):
        Journal(str(tmp_path)).step(name)


def test_corrupt_record_names_the_file(tmp_path):
    journal = Journal(str(tmp_path))
    with open(os.path.join(journal.steps_dir, "x.json"), "w") as handle:
        handle.write("{not json")
    with pytest.raises(FerryError, match="x.json is not valid JSON"):
        journal.step("x").record()


def test_journal_without_state_dir_reads_empty(tmp_path):
    assert Journal(str(tmp_path / "missing"), create=False).records() == []
    assert not (tmp_path / "missing").exists()


def test_records_and_locks_are_readable_by_their_owner_only(tmp_path):
    """Records hold errors and results; before, they were 0644 like the lock."""
    old = os.umask(0o022)  # the usual umask: the modes must not rely on a stricter one
    try:
        step = Journal(str(tmp_path)).step("load")
        with step.begin("fp"):
            step.progress(1, flush=True)
            step.save_checkpoint({"at": 1})
        modes = dict((name, os.stat(str(tmp_path / "steps" / name)).st_mode & 0o777)
                     for name in os.listdir(str(tmp_path / "steps")))
        steps_mode = os.stat(str(tmp_path / "steps")).st_mode & 0o777
        with open_private(str(tmp_path / "steps" / "load.done"), append=True) as handle:
            handle.write(b"a\n")  # the files the RRD converters keep beside the record
    finally:
        os.umask(old)
    assert modes == {"load.json": 0o600, "load.lock": 0o600} and steps_mode == 0o700
    assert os.stat(str(tmp_path / "steps" / "load.done")).st_mode & 0o777 == 0o600


# -- the lifecycle: Step.attempt ----------------------------------------------------------------------

def state(tmp_path, **values):
    """A module's ``state`` options."""
    return dict(dict(state_dir=str(tmp_path / "state"), step=None, force=False), **values)


def items_step(params, items, check_mode=False, fail_at=None):
    """The lifecycle as a module writes it (the docstring's example): a step over ``items``, resumable."""
    attempt = attempt_step(params, "items", {"items": items}, check_mode)
    if not attempt.runs:
        return {"decision": attempt.decision, "changed": attempt.decision != SKIP}
    first = (attempt.checkpoint or {}).get("next", 0)
    with attempt.running(total=len(items), unit="items") as step:
        for done in range(first, len(items)):
            step.check_stop("%d item(s)" % done)
            if done == fail_at:
                raise FerryError("item %s is bad" % items[done])
            step.save_checkpoint({"next": done + 1})
            step.progress(done + 1)
        step.complete(counts={"items": len(items) - first})
    return {"decision": attempt.decision, "changed": True, "first": first}


def test_attempt_runs_skips_resumes_and_forces(tmp_path):
    params = state(tmp_path)
    assert items_step(params, ["a", "b", "c"]) == {"decision": RUN, "changed": True, "first": 0}
    assert items_step(params, ["a", "b", "c"]) == {"decision": SKIP, "changed": False}
    assert items_step(dict(params, force=True), ["a", "b", "c"])["decision"] == RUN
    with pytest.raises(FerryError, match="item d is bad"):
        items_step(params, ["a", "b", "c", "d"], fail_at=3)  # other inputs: run, fails at the fourth item
    record = Journal(params["state_dir"]).step("items").record()
    assert record["status"] == FAILED and record["checkpoint"] == {"next": 3} and record["error"] == "item d is bad"
    assert items_step(params, ["a", "b", "c", "d"]) == {"decision": RESUME, "changed": True, "first": 3}
    record = Journal(params["state_dir"]).step("items").record()
    assert record["status"] == COMPLETE and record["resumed"] and record["attempt"] == 4 and record["counts"] == {"items": 1}
    assert items_step(dict(params, step="other"), ["a"])["decision"] == RUN  # the step option names the record


def test_attempt_in_check_mode_writes_nothing_and_cannot_run(tmp_path):
    params = state(tmp_path)
    assert items_step(params, ["a"], check_mode=True) == {"decision": RUN, "changed": True}
    assert not (tmp_path / "state").exists()
    attempt = attempt_step(params, "items", {"items": ["a"]}, check_mode=True)
    with pytest.raises(FerryError, match="step items does not run: it is in check mode"):
        attempt.running()
    items_step(params, ["a"])
    skipped = attempt_step(params, "items", {"items": ["a"]})
    assert (skipped.decision, skipped.resume, skipped.checkpoint, skipped.runs) == (SKIP, False, None, False)
    with pytest.raises(FerryError, match="complete with the same inputs"):
        skipped.running()


def test_a_module_may_turn_the_decision(tmp_path):
    """tsdb_dump runs a complete step whose outputs were lost; tsdb_restore resumes one with more to send."""
    params = state(tmp_path)
    items_step(params, ["a"])
    attempt = attempt_step(params, "items", {"items": ["a"]})
    attempt.decision = RESUME
    assert attempt.resume and attempt.runs and attempt.checkpoint is None  # a complete record keeps none
    with attempt.running(unit="items") as step:
        assert step.record()["resumed"] is True
    attempt = attempt_step(params, "items", {"items": ["a"]})
    attempt.decision = "update"  # a decision of the module's own: goes on from the last run
    assert attempt.resume and attempt.record["status"] == COMPLETE


def test_attempt_refuses_a_step_running_elsewhere(tmp_path):
    params = state(tmp_path)
    running = attempt_step(params, "items", {"items": []}).running()
    try:
        with pytest.raises(FerryError, match="step items is already running"):
            attempt_step(params, "items", {"items": []})
        forced = attempt_step(dict(params, force=True), "items", {"items": []})  # force decides run...
        with pytest.raises(FerryError, match="step items is already running"):
            forced.running()  # ...and the lock still refuses it
    finally:
        running.complete()


def test_stop_file_stops_a_step_after_the_work_in_progress(tmp_path):
    params = state(tmp_path)
    step = Journal(params["state_dir"]).step("items")
    assert not step.stop_requested()
    step.check_stop("nothing")
    (tmp_path / "state" / "STOP").write_text("")
    assert step.stop_requested()
    with pytest.raises(Stopped) as stopped:
        items_step(params, ["a", "b"])
    assert str(stopped.value) == ("stopped on request (%s) after 0 item(s); remove the file and run again to go on"
                                  % (tmp_path / "state" / "STOP"))
    assert step.record()["status"] == FAILED
    (tmp_path / "state" / "STOP").unlink()
    assert items_step(params, ["a", "b"])["decision"] == RESUME


def test_files_beside_the_record(tmp_path):
    step = Journal(str(tmp_path)).step("convert")
    assert step.beside(".done") == str(tmp_path / "steps" / "convert.done")
    assert step.beside(".report.jsonl") == str(tmp_path / "steps" / "convert.report.jsonl")


class FakeModule:
    """What exit_with uses of an AnsibleModule."""

    def __init__(self, params):
        self.params = params
        self.no_log_values = set()
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)

    def exit_json(self, **result):
        raise SystemExit(("exit", result))

    def fail_json(self, **result):
        raise SystemExit(("fail", result))


def ended(module, run, warnings=None):
    with pytest.raises(SystemExit) as end:
        exit_with(module, run, warnings)
    return end.value.args[0]


def test_exit_with_carries_an_errors_result_fields():
    class Short(FerryError):
        pass

    def fails():
        error = Short("2 points short")
        error.result = {"verification": {"short": {"m": [3, 1]}}, "msg": "not this one"}
        raise error

    module = FakeModule({"url": "http://u:secret@host"})
    assert ended(module, fails) == ("fail", {"msg": "2 points short", "verification": {"short": {"m": [3, 1]}}})
    assert "secret" in module.no_log_values

    def plain():
        raise FerryError("plain")

    assert ended(module, plain) == ("fail", {"msg": "plain"})
    assert ended(module, lambda: {"changed": False, "msg": "step x is failed"}, lambda r: ["w"]) == (
        "fail", {"changed": False, "msg": "step x is failed"})
    assert module.warnings == ["w"]
    assert ended(module, lambda: {"changed": True}) == ("exit", {"changed": True})
