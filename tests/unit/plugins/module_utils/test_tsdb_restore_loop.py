# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore loop of tsdb_transfer with a writer that records what it is given (no server involved)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import Journal
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.points import BatchWriter, batch_name
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.transfer import DumpWatch, restore


class RecordingWriter:
    """Takes every body as acknowledged and keeps the points."""

    def __init__(self):
        self.points = []
        self.stats = {"requests": 0, "points": 0, "bytes": 0, "retries": 0}

    def write(self, bodies, on_done=None):
        for body, count, tag in bodies:
            self.points.extend(json.loads(body))
            self.stats["requests"] += 1
            self.stats["points"] += count
            if on_done is not None:
                on_done(tag, count)
        return dict(self.stats)


def make_batch(directory, begin, count):
    writer = BatchWriter(str(directory), batch_name(begin, begin + 1000))
    for offset in range(count):
        writer.add("m", (("h", "a"),), begin + offset, offset)
    return writer.finish()


def test_a_batch_holding_other_than_its_manifest_says_fails_naming_it(tmp_path):
    manifest = make_batch(tmp_path, 0, 10)
    path = tmp_path / (manifest["name"] + ".json")
    path.write_text(json.dumps(dict(manifest, points=11)))  # the data file's sha256 still matches
    with pytest.raises(FerryError, match=r"batch .*%s.jsonl.gz holds 10 points but its manifest says 11"
                       % manifest["name"]):
        restore(str(tmp_path), RecordingWriter(), 1 << 20, 1000)


def test_batches_that_cannot_be_restored_fail_the_restore_before_anything_is_sent(tmp_path):
    make_batch(tmp_path, 0, 10)
    orphan = make_batch(tmp_path, 1000, 5)
    os.unlink(str(tmp_path / (orphan["name"] + ".json")))
    writer = RecordingWriter()
    with pytest.raises(FerryError, match="1 batch\\(es\\) in .* cannot be restored as they are: %s: data file "
                       "%s.jsonl.gz has no manifest" % (orphan["name"], orphan["name"])):
        restore(str(tmp_path), writer, 1 << 20, 1000)
    assert writer.points == []


def test_no_attempt_is_no_restore(tmp_path):
    make_batch(tmp_path, 0, 10)
    with pytest.raises(FerryError, match="batch_attempts must be at least 1"):
        restore(str(tmp_path), RecordingWriter(), 1 << 20, 1000, batch_attempts=0)


def test_the_ledger_sends_a_batch_once_and_a_changed_batch_again(tmp_path):
    first = make_batch(tmp_path, 0, 10)
    writer = RecordingWriter()
    counts, plan, sent = restore(str(tmp_path), writer, 1 << 20, 1000)
    assert sent == {first["name"]: first["sha256"]} and len(writer.points) == 10
    second = make_batch(tmp_path, 1000, 4)
    counts, plan, sent = restore(str(tmp_path), writer, 1 << 20, 1000, checkpoint={"sent": sent})
    assert len(writer.points) == 14 and set(sent) == {first["name"], second["name"]}
    changed = make_batch(tmp_path, 0, 3)  # dumped again with other points
    restore(str(tmp_path), writer, 1 << 20, 1000, checkpoint={"sent": sent})
    assert len(writer.points) == 17 and changed["sha256"] != first["sha256"]


def test_a_batch_cut_with_other_limits_is_finished_with_them(tmp_path):
    make_batch(tmp_path, 0, 10)
    writer = RecordingWriter()
    # Requests 0 and 1 of 3-point requests were acknowledged before a kill; the rerun asks for 4-point requests.
    checkpoint = {"sent": {}, "current": batch_name(0, 1000), "acked": [0, 1], "limits": [1 << 20, 3]}
    restore(str(tmp_path), writer, 1 << 20, 4, checkpoint=checkpoint)
    assert [point["value"] for point in writer.points] == list(range(6, 10))


def test_a_dump_interrupted_before_the_restore_started_is_waited_for(tmp_path):
    journal = Journal(str(tmp_path))
    dump = journal.step("tsdb_dump")
    dump.begin("f")
    dump._release_lock()  # as a kill -9 leaves it: running, and nobody holds the lock
    assert dump.record()["status"] == "interrupted"
    watch = DumpWatch(journal, "tsdb_dump", timeout=60)
    assert watch.running()  # an earlier run's state: wait for the dump to run again
    again = Journal(str(tmp_path)).step("tsdb_dump")
    again.begin("f", resume=True)
    assert watch.running()
    again._release_lock()  # killed again while the restore follows it
    assert not watch.running()
    with pytest.raises(FerryError, match="not started again \\(it is interrupted\\) after 0 s"):
        DumpWatch(journal, "tsdb_dump", timeout=0).running()
