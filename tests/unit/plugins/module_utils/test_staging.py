# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""core/staging.py: files and directories published whole, what a crash leaves, and the next run."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat
import subprocess
import sys

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core import staging
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.staging import (
    NoSpace,
    StagedDir,
    StagedFile,
    check_space,
    clean_staged,
    hidden_name,
    publish,
)


def listing(directory):
    return sorted(os.listdir(str(directory)))


def crashed(code):
    """Run ``code`` in a child process that ends with ``os._exit`` (no cleanup, no finally: a kill)."""
    program = ("import os, sys\nsys.path[:0] = %r\n"
               "from ansible_collections.ferry.migrate.plugins.module_utils.core.staging import StagedDir, StagedFile\n"
               "%s\nos._exit(9)\n" % ([p for p in sys.path if p], code))
    assert subprocess.run([sys.executable, "-c", program], check=False).returncode == 9


@pytest.mark.parametrize("make", [StagedFile.create, StagedFile.open])
def test_commit_publishes_the_whole_file_at_once(tmp_path, make):
    path = str(tmp_path / "data.bin")
    with open(path, "wb") as handle:
        handle.write(b"old")
    staged = make(path)
    assert os.path.basename(staged.temp).startswith(".data.bin.")
    staged.write(b"new ")
    staged.write(b"content")
    with open(path, "rb") as handle:
        assert handle.read() == b"old"  # readers see the old file until the commit
    staged.set_mode(0o640)
    staged.commit()
    with open(path, "rb") as handle:
        assert handle.read() == b"new content"
    assert listing(tmp_path) == ["data.bin"] and stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert staged.published and staged.handle is None
    staged.abort()  # nothing to undo once published
    assert listing(tmp_path) == ["data.bin"]


def test_abort_leaves_nothing(tmp_path):
    path = str(tmp_path / "data.bin")
    for make in (StagedFile.create, StagedFile.open, lambda p: StagedFile.create(p, str(tmp_path), "tmp")):
        staged = make(path)
        staged.write(b"half")
        staged.abort()
        assert listing(tmp_path) == []
    with open(path, "wb") as handle:
        handle.write(b"kept")
    staged = StagedFile.open(path)
    staged.write(b"never seen")
    staged.abort()
    assert listing(tmp_path) == ["data.bin"]
    with open(path, "rb") as handle:
        assert handle.read() == b"kept"


def test_a_crash_before_the_commit_leaves_only_the_hidden_name_which_the_next_run_cleans(tmp_path):
    path = str(tmp_path / "batch.gz")
    crashed("s = StagedFile.open(%r, %r)\ns.write(b'half')\ns.sync()" % (path, hidden_name(path, ".partial")))
    crashed("s = StagedFile.create(%r)\ns.write(b'half')\ns.sync()" % path)
    left = listing(tmp_path)
    assert len(left) == 2 and all(name.startswith(".batch.gz.") for name in left) and "batch.gz" not in left
    assert ".batch.gz.partial" in left
    clean_staged(str(tmp_path), ".batch.gz.", ".tmp")  # the unique names of create()
    assert listing(tmp_path) == [".batch.gz.partial"]
    again = StagedFile.open(path, hidden_name(path, ".partial"))  # the fixed name: replaced by the next run
    again.write(b"whole")
    again.commit()
    assert listing(tmp_path) == ["batch.gz"]


def test_a_run_goes_on_with_what_a_killed_one_wrote(tmp_path):
    path = str(tmp_path / "batch.gz")
    crashed("s = StagedFile.open(%r, resume=True)\ns.write(b'first frame|')\ns.sync()" % path)
    staged = StagedFile.open(path, resume=True)
    assert staged.handle.read() == b"first frame|"
    staged.write(b"second frame")
    staged.abort(keep=True)  # stopped again: kept for the next run
    staged = StagedFile.open(path, resume=True)
    staged.handle.seek(0, os.SEEK_END)
    staged.write(b"|third")
    staged.commit()
    with open(path, "rb") as handle:
        assert handle.read() == b"first frame|second frame|third"
    staged = StagedFile.open(path)  # without resume: a new file, whatever was left
    assert staged.handle.read() == b""
    staged.abort()


def test_a_symlink_planted_at_the_temporary_name_is_replaced_not_written_through(tmp_path):
    outside = tmp_path / "outside"
    outside.write_bytes(b"secret")
    path = str(tmp_path / "dest" / "x.wsp")
    os.mkdir(str(tmp_path / "dest"))
    os.symlink(str(outside), hidden_name(path))
    staged = StagedFile.open(path)
    staged.write(b"data")
    staged.commit()
    assert outside.read_bytes() == b"secret" and listing(tmp_path / "dest") == ["x.wsp"]


def staged_file(directory, name, data=b"x"):
    staged = StagedFile.create(os.path.join(str(directory), name))
    staged.write(data)
    staged.close()
    return staged


def test_publish_places_each_set_and_a_failing_file_ends_only_its_set(tmp_path):
    """A file that cannot be placed fails with the files after it in its set; the ones placed stay."""
    first = [staged_file(tmp_path, "a1"), staged_file(tmp_path, "a2")]
    second = [staged_file(tmp_path, "b1"), staged_file(tmp_path, "b2"), staged_file(tmp_path, "b3")]
    second[1].path = str(tmp_path / "missing" / "b2")  # its directory does not exist: the rename fails
    third = [staged_file(tmp_path, "c1")]
    failures = []
    publish(str(tmp_path), [("a", first), ("b", second), ("c", third), ("none", [])],
            failed=lambda key, exc, aborted: failures.append((key, type(exc).__name__, [s.path for s in aborted])))
    assert failures == [("b", "FileNotFoundError", [second[1].path, second[2].path])]
    assert listing(tmp_path) == ["a1", "a2", "b1", "c1"]  # no temporary name left
    assert [s.published for s in second] == [True, False, False]


def test_publish_without_failed_raises_and_the_caller_aborts(tmp_path):
    files = [staged_file(tmp_path, "a"), staged_file(tmp_path, "b")]
    files[1].path = str(tmp_path / "missing" / "b")
    with pytest.raises(OSError):
        publish(str(tmp_path), [("x", files)])
    for staged in files:
        staged.abort()
    assert listing(tmp_path) == ["a"]


def test_publish_with_links_never_replaces_a_file_made_meanwhile(tmp_path):
    staged = staged_file(tmp_path, "carbon.wsp", b"ours")
    (tmp_path / "carbon.wsp").write_bytes(b"carbon's")
    kept = []

    def place(item):
        try:
            item.place(link=True)
        except FileExistsError:
            kept.append(item.path)
            item.abort()
    publish(str(tmp_path), [("x", [staged])], place)
    assert kept and (tmp_path / "carbon.wsp").read_bytes() == b"carbon's" and listing(tmp_path) == ["carbon.wsp"]
    linked = staged_file(tmp_path, "new.wsp", b"ours")
    publish(str(tmp_path), [("y", [linked])], lambda item: item.place(link=True))
    assert (tmp_path / "new.wsp").read_bytes() == b"ours" and listing(tmp_path) == ["carbon.wsp", "new.wsp"]


def test_publish_of_nothing_does_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(staging, "sync_filesystem", lambda _path: pytest.fail("synced for nothing"))
    publish(str(tmp_path), [("x", []), ("y", [])])


def test_a_staged_directory_is_swapped_in_whole(tmp_path):
    target = tmp_path / "bundle"
    target.mkdir()
    (target / "old.txt").write_text("old")
    work = StagedDir(str(target))
    work.clean()
    temp = work.create()
    assert os.path.basename(temp) == ".bundle.ferry-tmp-%d" % os.getpid()
    (tmp_path / temp / "new.txt").write_text("new")
    assert listing(target) == ["old.txt"]
    work.commit()
    work.abort()  # after the commit: nothing to remove
    assert listing(tmp_path) == ["bundle"] and listing(target) == ["new.txt"]


def test_an_aborted_directory_leaves_nothing(tmp_path):
    work = StagedDir(str(tmp_path / "bundle"))
    (tmp_path / work.create() / "part.txt").write_text("half")
    work.abort()
    assert listing(tmp_path) == []


def test_a_crashed_directory_is_cleaned_by_the_next_run_unless_its_process_lives(tmp_path):
    target = str(tmp_path / "bundle")
    crashed("d = StagedDir(%r)\nd.create()\nopen(os.path.join(d.temp, 'part'), 'w').close()" % target)
    living = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        os.mkdir(str(tmp_path / (".bundle.ferry-tmp-%d" % living.pid)))  # a run still at work
        os.mkdir(str(tmp_path / ".bundle.ferry-old-999999999"))
        os.mkdir(str(tmp_path / ".other.ferry-tmp-1"))  # another target's
        assert len(listing(tmp_path)) == 4
        StagedDir(target).clean()
        assert listing(tmp_path) == sorted([".bundle.ferry-tmp-%d" % living.pid, ".other.ferry-tmp-1"])
    finally:
        living.kill()
        living.wait()


def test_check_space_stops_before_the_file_system_gets_too_full(tmp_path, monkeypatch):
    monkeypatch.setattr(staging, "free_bytes", lambda _path: 100 << 20)
    check_space(str(tmp_path / "not" / "made" / "yet"), 1 << 20, 64 << 20, "x")
    with pytest.raises(NoSpace, match=r"not enough free space in .*: 100\.0 MiB free, 100\.0 MiB must stay free "
                                      r"\(min_free_mb\), and caf\\xe9\.wsp needs 1\.0 MiB$"):
        check_space(str(tmp_path), 1 << 20, 100 << 20, os.fsdecode(b"caf\xe9.wsp"))
    assert issubclass(NoSpace, FerryError)
