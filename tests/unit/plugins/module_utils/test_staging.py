# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""core/staging.py: files and directories published whole, what a crash leaves, and the next run."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import stat
import subprocess
import sys

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core import staging
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.staging import (
    BackgroundWriter,
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
    (tmp_path / "bundle").mkdir()
    crashed("d = StagedDir(%r)\nd.create()\nopen(os.path.join(d.temp, 'part'), 'w').close()" % target)
    living = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        os.mkdir(str(tmp_path / (".bundle.ferry-tmp-%d" % living.pid)))  # a run still at work
        os.mkdir(str(tmp_path / ".bundle.ferry-old-999999999"))
        os.mkdir(str(tmp_path / ".other.ferry-tmp-1"))  # another target's
        os.mkdir(str(tmp_path / ".bundle.v2.ferry-tmp-999999998"))  # another target's, its name starting alike
        assert len(listing(tmp_path)) == 6
        StagedDir(target).clean()
        assert listing(tmp_path) == sorted([".bundle.ferry-tmp-%d" % living.pid, ".other.ferry-tmp-1",
                                            ".bundle.v2.ferry-tmp-999999998", "bundle"])
    finally:
        living.kill()
        living.wait()


def test_the_only_copy_moved_aside_is_put_back(tmp_path):
    """A kill between the fallback's renames, its new directory lost since (by an older clean() that removed it):
    the moved-aside directory is the only complete copy, and clean() puts it back instead of removing it."""
    aside = tmp_path / ".bundle.ferry-old-999999999"
    aside.mkdir()
    (aside / "old.txt").write_text("old")
    StagedDir(str(tmp_path / "bundle")).clean()
    assert listing(tmp_path) == ["bundle"] and listing(tmp_path / "bundle") == ["old.txt"]


# -- a kill at each point of StagedDir.commit, then the next run -------------------------------------------------
OLD = {"a.txt": "old a", "sub": {"b.txt": "old b", "c.txt": "old c"}}
NEW = {"x.txt": "new x", "sub": {"y.txt": "new y"}}

KILLER = """
import os, sys
sys.path[:0] = %(path)r
from ansible_collections.ferry.migrate.plugins.module_utils.core import staging
target, point, fallback = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
work = staging.StagedDir(target)
work.clean()
root = work.create()
os.mkdir(os.path.join(root, "sub"))
for name, text in (("x.txt", "new x"), ("sub/y.txt", "new y")):
    with open(os.path.join(root, name), "w") as handle:
        handle.write(text)
if fallback:
    staging.exchange = lambda first, second: False
calls = [0]
def step(function):
    def wrapped(*args, **kwargs):
        calls[0] += 1
        if calls[0] == point:
            os._exit(9)  # killed before this step: no finally, no cleanup
        return function(*args, **kwargs)
    return wrapped
for name in ("fsync_dir", "exchange"):
    setattr(staging, name, step(getattr(staging, name)))
for name in ("rename", "unlink", "rmdir"):
    setattr(os, name, step(getattr(os, name)))
work.commit()
print(calls[0])
"""


def make_tree(root, spec):
    root.mkdir()
    for name, value in spec.items():
        if isinstance(value, dict):
            make_tree(root / name, value)
        else:
            (root / name).write_text(value)


def read_tree(root):
    return dict((entry.name, read_tree(entry) if entry.is_dir() else entry.read_text()) for entry in root.iterdir())


def commit_killed_at(tmp_path, point, fallback):
    """Run a commit in a child process killed before its ``point``-th step (0: not killed); the steps it took."""
    program = KILLER % {"path": [p for p in sys.path if p]}
    command = [sys.executable, "-c", program, str(tmp_path / "index"), str(point), "1" if fallback else "0"]
    proc = subprocess.run(command, stdout=subprocess.PIPE, check=False)
    assert proc.returncode == (9 if point else 0)
    return int(proc.stdout) if not point else None


@pytest.mark.parametrize("fallback", [False, True], ids=["exchange", "two-renames"])
def test_a_kill_at_each_point_of_the_commit_leaves_one_whole_directory(tmp_path, fallback):
    (tmp_path / "first").mkdir()
    make_tree(tmp_path / "first" / "index", OLD)
    steps = commit_killed_at(tmp_path / "first", 0, fallback)
    assert read_tree(tmp_path / "first" / "index") == NEW and listing(tmp_path / "first") == ["index"]
    assert steps >= (8 if fallback else 6)
    seen = set()
    for point in range(1, steps + 1):
        run = tmp_path / str(point)
        run.mkdir()
        make_tree(run / "index", OLD)
        commit_killed_at(run, point, fallback)
        StagedDir(str(run / "index")).clean()  # the next run
        assert listing(run) == ["index"], point  # one directory: never none, nothing left beside it
        found = read_tree(run / "index")
        assert found in (OLD, NEW), (point, found)  # never a mix
        seen.add("new" if found == NEW else "old")
    assert seen == {"old", "new"}


def test_a_kill_before_a_first_commit_leaves_nothing_half_made(tmp_path):
    for point in (1, 2, 3):
        run = tmp_path / str(point)
        run.mkdir()
        commit_killed_at(run, point, False)
        StagedDir(str(run / "index")).clean()
        assert listing(run) in ([], ["index"])
        if listing(run):
            assert read_tree(run / "index") == NEW


def test_a_failed_second_rename_puts_the_old_directory_back(tmp_path, monkeypatch):
    target = tmp_path / "index"
    make_tree(target, OLD)
    work = StagedDir(str(target))
    (tmp_path / os.path.basename(work.create()) / "x.txt").write_text("new x")
    monkeypatch.setattr(staging, "exchange", lambda first, second: False)
    real = os.rename

    def rename(source, dest):
        if source == work.temp:
            raise OSError(13, "Permission denied")
        real(source, dest)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError):
        work.commit()
    work.abort()
    assert listing(tmp_path) == ["index"] and read_tree(target) == OLD


def test_exchange_swaps_two_paths_or_says_it_cannot(tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    make_tree(first, {"from-a": ""})
    second.write_text("a file")
    assert staging.exchange(str(first), str(second)) is True
    assert first.read_text() == "a file" and read_tree(second) == {"from-a": ""}
    with pytest.raises(OSError):
        staging.exchange(str(first), str(tmp_path / "missing"))
    monkeypatch.setattr(staging, "_RENAMEAT2", [(lambda *args: -1, lambda: errno.EINVAL)])
    assert staging.exchange(str(first), str(second)) is False  # a file system without RENAME_EXCHANGE
    monkeypatch.setattr(staging, "_RENAMEAT2", [None])  # a C library without renameat2
    assert staging.exchange(str(first), str(second)) is False
    work = StagedDir(str(second))
    make_tree(tmp_path / os.path.basename(work.temp), {"new": ""})
    work.commit()  # the fallback: the directory at the path moved aside, then removed
    assert listing(tmp_path) == ["a", "b"] and read_tree(second) == {"new": ""}


def test_check_space_stops_before_the_file_system_gets_too_full(tmp_path, monkeypatch):
    monkeypatch.setattr(staging, "free_bytes", lambda _path: 100 << 20)
    check_space(str(tmp_path / "not" / "made" / "yet"), 1 << 20, 64 << 20, "x")
    with pytest.raises(NoSpace, match=r"not enough free space in .*: 100\.0 MiB free, 100\.0 MiB must stay free "
                                      r"\(min_free_mb\), and caf\\xe9\.wsp needs 1\.0 MiB$"):
        check_space(str(tmp_path), 1 << 20, 100 << 20, os.fsdecode(b"caf\xe9.wsp"))
    with pytest.raises(NoSpace, match=r"not enough free space in .*: 100\.0 MiB free, and x needs 101\.0 MiB$"):
        check_space(str(tmp_path), 101 << 20, 0, "x")  # no min_free: no option to name
    assert issubclass(NoSpace, FerryError)


def test_a_background_writer_writes_in_order_and_raises_its_error_in_the_producer():
    written = []

    def write(item):
        if item == "boom":
            raise OSError(28, "No space left on device")
        written.append(item)

    writer = BackgroundWriter(write, ahead=2)
    for item in range(50):
        writer.put(item)
    writer.close()
    assert written == list(range(50))
    failing = BackgroundWriter(write)
    failing.put("boom")
    with pytest.raises(OSError, match="No space left"):
        for item in range(1000):  # raised by a later put (or by close)
            failing.put(item)
        failing.close()
    failing.abort()  # a failing caller's clean-up: waits, raises nothing
    assert written == list(range(50))
