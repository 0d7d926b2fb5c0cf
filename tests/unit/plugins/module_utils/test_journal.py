# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError, open_private
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import (
    COMPLETE,
    FAILED,
    INTERRUPTED,
    RESUME,
    RUN,
    SKIP,
    Journal,
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


@pytest.mark.parametrize("name", ["", "../x", "a/b", "-x", "a b"])
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
