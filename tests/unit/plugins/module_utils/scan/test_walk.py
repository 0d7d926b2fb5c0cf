# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scan's walk: names as bytes, what is never a record, excludes, hard links, sparse files, owners, the stat
cache (a hit is not read again), parallel hashing in walk order, bounded batches and memory. Runs as root
(devices, owners)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import socket
import stat
import subprocess
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.ferry.migrate.plugins.module_utils.core import tree as tree_module
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.scan import walk as walk_module
from ansible_collections.ferry.migrate.plugins.module_utils.scan.report import ReportWriter, name_of, read_report
from ansible_collections.ferry.migrate.plugins.module_utils.scan.walk import (
    CacheIndex,
    Excludes,
    Walk,
    cache_block,
    cache_row,
    scan_roots,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="devices and owners need root")


def make(root, relative, content=b"", mode=0o644):
    path = os.path.join(os.fsencode(str(root)), relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(content)
    os.chmod(path, mode)
    return path


def records(walk):
    """The walk's file records, parsed, in order."""
    found = []
    for batch in walk.batches():  # an item of lines is one line, or a directory's lines done on a worker
        parsed = [json.loads(line) for line in b"".join(batch.lines).decode("ascii").split("\n") if line]
        assert len(parsed) == batch.records
        found.extend(parsed)
    return found


def walk_key(rel):
    """The walk's order within a scan root: a directory's entries together, by name, directories depth first."""
    parent, _sep, name = rel.rpartition(b"/")
    return parent.split(b"/"), name


def by_path(found):
    return dict((name_of(record), record) for record in found)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    base = os.fsencode(str(root))
    make(root, b"etc/app.conf", b"conf\n")
    make(root, b"names/new\nline", b"nl")
    make(root, b"names/latin-\xe9", b"l1")
    make(root, b"bin/suid", b"x", 0o4755)
    make(root, b"bin/sgid-sticky", b"y", 0o3775)
    make(root, b"hard/a", b"same inode\n")
    os.link(os.path.join(base, b"hard/a"), os.path.join(base, b"hard/b"))
    os.link(os.path.join(base, b"hard/a"), os.path.join(base, b"names/c"))
    os.makedirs(os.path.join(base, b"links"))
    os.symlink(b"../etc/app.conf", os.path.join(base, b"links/rel"))
    os.symlink(b"/etc/passwd", os.path.join(base, b"links/abs"))
    os.symlink(b"../nowhere/\xff", os.path.join(base, b"links/dangling"))
    with open(os.path.join(base, b"sparse.img"), "wb") as handle:
        handle.seek(3 << 20)
        handle.write(b"end")
    os.makedirs(os.path.join(base, b"special"))
    os.mkfifo(os.path.join(base, b"special/fifo"))
    os.mknod(os.path.join(base, b"special/null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(os.path.join(base, b"special/loop"), 0o660 | stat.S_IFBLK, os.makedev(7, 0))
    server = socket.socket(socket.AF_UNIX)
    server.bind(os.path.join(base, b"special/sock"))
    server.close()
    make(root, b"owned/pkgfile", b"from a package")
    make(root, b"owned/local", b"mine")
    os.chown(os.path.join(base, b"etc/app.conf"), 1001, 1500)
    os.chown(os.path.join(base, b"owned/local"), 4242, 4343)
    return root


def test_every_kind_of_entry_is_recorded_as_it_is(tree, tmp_path):
    walk = Walk(str(tree), users={0: "root", 1001: "alice"}, groups={0: "root", 1500: "devs"},
                owned={b"owned", b"owned/pkgfile"})
    found = by_path(records(walk))
    content = {b"etc/app.conf": b"conf\n", b"names/new\nline": b"nl", b"names/latin-\xe9": b"l1",
               b"bin/suid": b"x", b"hard/a": b"same inode\n", b"owned/local": b"mine"}
    for path, data in content.items():
        assert found[path]["sha256"] == hashlib.sha256(data).hexdigest(), path
        assert found[path]["type"] == "file" and found[path]["size"] == len(data)
        assert found[path]["change"] == "added" and found[path]["package"] is None
    assert "path_b64" in json.dumps(found[b"names/latin-\xe9"]) and found[b"names/new\nline"]["path"].count("\n")
    assert found[b"bin/suid"]["mode"] == 0o4755 and found[b"bin/sgid-sticky"]["mode"] == 0o3775
    assert (found[b"etc/app.conf"]["uid"], found[b"etc/app.conf"]["owner"], found[b"etc/app.conf"]["group"]) == (
        1001, "alice", "devs")
    assert (found[b"owned/local"]["owner"], found[b"owned/local"]["group"]) == (None, None)
    assert found[b"owned/local"]["uid"] == 4242
    targets = dict((path, name_of(found[path], "target")) for path in found if found[path]["type"] == "symlink")
    assert targets == {b"links/rel": b"../etc/app.conf", b"links/abs": b"/etc/passwd",
                       b"links/dangling": b"../nowhere/\xff"}
    assert found[b"sparse.img"]["sparse"] is True and found[b"sparse.img"]["size"] == (3 << 20) + 3
    assert "sparse" not in found[b"etc/app.conf"]
    assert found[b"links"]["type"] == "dir" and found[b"special"]["type"] == "dir"
    # devices, FIFOs, sockets: never records, only counted; package files left out, their directory entered
    assert not [path for path in found if path.startswith(b"special/")]
    assert b"owned" not in found and b"owned/pkgfile" not in found
    assert walk.counts["skipped"] == {"fifo": 1, "socket": 1, "char": 1, "block": 1, "unreadable": 0}
    assert walk.counts["files"] == sum(1 for r in found.values() if r["type"] == "file") == 10
    assert walk.counts["symlinks"] == 3 and walk.counts["dirs"] == 6  # bin etc hard links names special


def test_hard_links_share_a_group_and_only_the_first_path_is_read(tree, monkeypatch):
    read = []
    real = walk_module._sha256
    monkeypatch.setattr(walk_module, "_sha256", lambda path: read.append(path) or real(path))
    found = records(Walk(str(tree)))
    group = [r for r in found if "link_group" in r]
    assert [name_of(r) for r in group] == [b"hard/a", b"hard/b", b"names/c"]  # walk order: hard/ before names/
    assert len(set(r["link_group"] for r in group)) == 1 and len(set(r["sha256"] for r in group)) == 1
    assert sum(1 for path in read if b"hard/" in path or path.endswith(b"names/c")) == 1


def test_the_walk_order_is_a_directory_listing_at_a_time_depth_first(tree):
    paths = [name_of(r) for r in records(Walk(str(tree)))]
    keys = [walk_key(path) for path in paths]
    assert keys == sorted(keys)
    assert paths.index(b"etc") < paths.index(b"etc/app.conf") and paths[:2] == [b"bin", b"etc"]


def test_excludes_take_subtrees_and_final_star_prefixes(tree):
    found = by_path(records(Walk(str(tree), excludes=["/names", "/links/d*", "/special/", "/bin/*"])))
    assert not [p for p in found if p.startswith((b"names", b"special"))]
    assert b"links/dangling" not in found and b"links/rel" in found and b"links/abs" in found
    assert b"bin" in found and not [p for p in found if p.startswith(b"bin/")]
    excludes = Excludes(["/var/log/journal*", "/srv/data"])
    assert excludes.matches(b"var/log/journal.old") and excludes.matches(b"srv/data")
    assert not excludes.matches(b"var/log/jour") and not excludes.matches(b"srv/data2")
    assert excludes.covers(b"srv/data/x/y") and not excludes.covers(b"srv/datax/y")
    with pytest.raises(FerryError, match="whole root"):
        Excludes(["/"])
    with pytest.raises(FerryError, match="without '..'"):
        Excludes(["/var/../etc"])


def test_a_literal_star_or_bracket_in_an_exclude_selects_nothing_else(tmp_path):
    make(tmp_path, b"a[1]/x", b"1")
    make(tmp_path, b"a1/x", b"2")
    found = by_path(records(Walk(str(tmp_path), excludes=["/a[1]"])))
    assert b"a1/x" in found and b"a[1]/x" not in found


def test_roots_walk_only_there_and_nested_roots_add_nothing(tree):
    assert scan_roots(["/names/", "/", "/etc"]) == [b""]
    assert scan_roots(["/names", "/etc", "/names/x"]) == [b"etc", b"names"]
    found = by_path(records(Walk(str(tree), roots=["/names", "/etc/app.conf"])))
    assert sorted(found) == [b"etc/app.conf", b"names", b"names/c", b"names/latin-\xe9", b"names/new\nline"]
    with pytest.raises(FerryError, match="roots: .*missing cannot be scanned"):
        records(Walk(str(tree), roots=["/missing"]))


def test_an_unchanged_file_is_not_read_again(tree, tmp_path, monkeypatch):
    cache = str(tmp_path / "scan.statcache")
    first = Walk(str(tree), cache_in=cache, cache_out=cache)
    before = records(first)
    assert first.counts["hashed"] == 9 and first.counts["cached"] == 0 and os.path.exists(cache)
    read = []
    real = walk_module._sha256
    monkeypatch.setattr(walk_module, "_sha256", lambda path: read.append(path) or real(path))
    second = Walk(str(tree), cache_in=cache, cache_out=cache)
    assert records(second) == before
    assert read == [] and second.counts["hashed"] == 0 and second.counts["cached"] == 9
    make(tree, b"etc/app.conf", b"changed\n")  # size, mtime and ctime change: read again
    third = Walk(str(tree), cache_in=cache, cache_out=cache)
    found = by_path(records(third))
    assert read == [os.path.join(os.fsencode(str(tree)), b"etc/app.conf")]
    assert found[b"etc/app.conf"]["sha256"] == hashlib.sha256(b"changed\n").hexdigest()


def test_a_rescan_reuses_cached_lines_only_while_the_owner_names_are_the_same(tmp_path):
    """A file of one link keeps its whole report line in the cache; a rescan reuses it as it is, unless the scanned
    root's names for its owner changed since (the line is made again) - the same lines as a scan without a cache."""
    make(tmp_path / "root", b"etc/a.conf", b"a" * 100)
    make(tmp_path / "root", b"etc/b.conf", b"b" * 100)
    os.chown(str(tmp_path / "root" / "etc" / "b.conf"), 1001, 1500)
    root, cache = str(tmp_path / "root"), str(tmp_path / "c")
    names = dict(users={0: "root", 1001: "alice"}, groups={0: "root", 1500: "devs"})
    records(Walk(root, cache_in=cache, cache_out=cache, **names))
    again = Walk(root, cache_in=cache, cache_out=cache, **names)
    assert records(again) == records(Walk(root, **names)) and again.counts["cached"] == 2
    renamed = dict(users={0: "root", 1001: "alicia"}, groups={0: "root", 1500: "devs"})
    found = by_path(records(Walk(root, cache_in=cache, cache_out=cache, **renamed)))
    assert found[b"etc/b.conf"]["owner"] == "alicia" and found[b"etc/a.conf"]["owner"] == "root"
    assert records(Walk(root, cache_in=cache, **renamed)) == records(Walk(root, **renamed))


def test_the_cache_of_an_unchanged_tree_is_not_written_again(tmp_path):
    """Every row taken verbatim, none passed over: the cache there is the new one byte for byte and stays (no
    write-back, no fsync); a changed, a new or a removed file makes a new cache."""
    for number in range(30):
        make(tmp_path / "root", b"d/f%02d" % number, b"%d" % number)
    root, cache = str(tmp_path / "root"), str(tmp_path / "c")
    records(Walk(root, cache_in=cache, cache_out=cache))
    before = os.stat(cache)
    records(Walk(root, cache_in=cache, cache_out=cache))
    after = os.stat(cache)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(os.listdir(str(tmp_path))) == ["c", "root"]  # no partial left either
    for change in (lambda: make(tmp_path / "root", b"d/f03", b"changed"),
                   lambda: make(tmp_path / "root", b"d/new", b"new"),
                   lambda: os.unlink(os.path.join(root, "d/f07"))):
        change()
        records(Walk(root, cache_in=cache, cache_out=cache))
        assert os.stat(cache).st_ino != before.st_ino
        before = os.stat(cache)
        again = Walk(root, cache_in=cache, cache_out=cache)
        assert records(again) == records(Walk(root)) and again.counts["hashed"] == 0
        assert os.stat(cache).st_ino == before.st_ino


def test_a_cache_hit_is_believed_without_reading_the_file(tree, tmp_path):
    """The cache says what a file with this path, size, mtime, ctime and inode holds: the content is not read."""
    path = os.path.join(os.fsencode(str(tree)), b"etc/app.conf")
    info = os.lstat(path)
    cache = tmp_path / "forged.statcache"
    cache.write_bytes(walk_module._CACHE_MAGIC + cache_block(0, b"etc", [cache_row(
        b"app.conf", info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, "ee" * 32)]))
    walk = Walk(str(tree), cache_in=str(cache))
    assert by_path(records(walk))[b"etc/app.conf"]["sha256"] == "ee" * 32
    assert walk.counts["cached"] == 1
    cache.write_bytes(walk_module._CACHE_MAGIC + cache_block(0, b"etc", [cache_row(
        b"app.conf", info.st_size, info.st_mtime_ns, info.st_ctime_ns + 1, info.st_ino, "ee" * 32)]))
    assert by_path(records(Walk(str(tree), cache_in=str(cache))))[b"etc/app.conf"]["sha256"] == hashlib.sha256(
        b"conf\n").hexdigest()


def test_a_damaged_cache_is_an_empty_one_and_a_walk_not_finished_keeps_the_old(tree, tmp_path):
    cache = tmp_path / "c"
    cache.write_bytes(b"garbage")
    walk = Walk(str(tree), cache_in=str(cache), cache_out=str(cache))
    batches = walk.batches()
    next(batches)
    batches.close()  # stopped (the STOP file, an error): the cache stays as it was, what was done is kept aside
    assert cache.read_bytes() == b"garbage" and sorted(os.listdir(str(tmp_path))) == ["c", "c.partial", "root"]
    records(Walk(str(tree), cache_in=str(cache), cache_out=str(cache)))
    whole = CacheIndex([str(cache)]).blocks
    last = max(whole, key=lambda key: whole[key][-1][1])
    cache.write_bytes(cache.read_bytes()[:-10])  # the last block is cut: its directory's files are read again
    assert set(whole) - set(CacheIndex([str(cache)]).blocks) == {last}
    walk = Walk(str(tree), cache_in=str(cache))
    found = records(walk)
    in_last = sum(1 for r in found if r["type"] == "file" and name_of(r).rpartition(b"/")[0] == last[1])
    assert 0 < walk.counts["hashed"] <= in_last and walk.counts["cached"] == 9 - walk.counts["hashed"]


def test_an_interrupted_walk_s_rows_are_read_first_then_the_complete_cache_s(tmp_path):
    """A scan stopped (or killed: the rows are flushed per batch) after some batches leaves them in ``.partial``;
    the next scan reads them first, then the last complete cache's rows after them: nothing is read twice."""
    for number in range(40):
        make(tmp_path / "root", b"d%d/f%02d" % (number % 4, number), b"%d" % number * 1000)
    root, cache = str(tmp_path / "root"), str(tmp_path / "c")
    records(Walk(root, cache_in=cache, cache_out=cache))  # the last complete scan
    for number in range(40):  # every file changes afterwards (ctime), so that old cache helps nobody
        os.utime(os.path.join(root, "d%d/f%02d" % (number % 4, number)), ns=(number, number))
    walk = Walk(root, cache_in=cache, cache_out=cache, batch_files=8)
    batches = walk.batches()
    next(batches)
    next(batches)
    batches.close()
    done = walk.counts["hashed"]
    assert done >= 8 and os.path.exists(walk_module.partial_name(cache))
    os.replace(walk_module.partial_name(cache), walk_module.resume_name(cache))
    again = Walk(root, cache_in=cache, cache_resume=walk_module.resume_name(cache), cache_out=cache)
    assert records(again) == records(Walk(root))
    assert again.counts["cached"] == done and again.counts["hashed"] == 40 - done
    untouched = tmp_path / "later"  # the complete cache still serves what comes after the interrupted walk's rows
    records(Walk(root, cache_in=cache, cache_out=str(untouched)))
    with open(str(untouched), "rb") as first, open(cache, "rb") as second:
        assert first.read() == second.read()


def test_several_roots_are_cached_each(tree, tmp_path):
    cache = str(tmp_path / "c")
    roots = ["/names", "/bin", "/etc"]
    records(Walk(str(tree), roots=roots, cache_in=cache, cache_out=cache))
    walk = Walk(str(tree), roots=roots, cache_in=cache, cache_out=cache)
    records(walk)
    assert walk.counts["hashed"] == 0 and walk.counts["cached"] == walk.counts["files"] == 6


def test_the_cache_index_finds_a_directory_s_blocks_and_an_interrupted_scan_s_rows_win(tmp_path):
    """Blocks by directory, found from their headers; a directory written over two batches is two blocks one after
    the other (one run: copied as one when unchanged); the resumed scan's rows replace the complete one's."""
    complete, resume = tmp_path / "c", tmp_path / "r"
    row = dict((name, cache_row(name, 1, 2, 3, 4, "%064x" % len(name))) for name in (b"a", b"bb", b"ccc"))
    first = cache_block(0, b"d", [row[b"a"], row[b"bb"]])
    complete.write_bytes(walk_module._CACHE_MAGIC + first + cache_block(0, b"d", [row[b"ccc"]]) +
                         cache_block(1, b"", [row[b"a"]]))
    newer = cache_row(b"bb", 9, 9, 9, 9, "ff" * 32)
    resume.write_bytes(walk_module._CACHE_MAGIC + cache_block(0, b"d", [newer]))
    index = CacheIndex([str(complete), None])
    assert sorted(index.blocks) == [(0, b"d"), (1, b"")]
    rows, copy = index.rows(index.pieces(0, b"d"))
    assert sorted(rows) == [b"a", b"bb", b"ccc"] and rows[b"ccc"][0] == (1, 2, 3, 4)
    assert copy == (0, len(walk_module._CACHE_MAGIC), len(first) + len(cache_block(0, b"d", [row[b"ccc"]])))
    both = CacheIndex([str(complete), str(resume)])
    rows, copy = both.rows(both.pieces(0, b"d"))
    assert rows[b"bb"][0] == (9, 9, 9, 9) and rows[b"a"][0] == (1, 2, 3, 4) and copy is None
    assert both.rows(both.pieces(0, b"missing")) == ({}, None)
    damaged = row[b"a"][:-5]  # a row cut inside a block: the rows before it serve
    complete.write_bytes(walk_module._CACHE_MAGIC + cache_block(0, b"d", [row[b"bb"], damaged]))
    index = CacheIndex([str(complete)])
    assert sorted(index.rows(index.pieces(0, b"d"))[0]) == [b"bb"]


def test_hashing_on_workers_gives_the_same_lines_in_walk_order(tmp_path):
    for n in range(300):
        make(tmp_path, b"d%d/f%03d" % (n % 7, n), os.urandom(n * 50))
    one = records(Walk(str(tmp_path), hash_workers=1, batch_files=16))
    several = records(Walk(str(tmp_path), hash_workers=3, batch_files=16, batch_bytes=4096))
    assert one == several and len(one) == 307


def test_batches_are_bounded_by_files_and_by_bytes(tmp_path):
    for n in range(50):
        make(tmp_path, b"f%02d" % n, b"x" * 1000)
    make(tmp_path, b"big", b"y" * 100000)
    walk = Walk(str(tmp_path), batch_files=8, batch_bytes=20000)
    sizes = [(batch.records, batch.bytes) for batch in walk.batches()]
    assert max(lines for lines, _bytes in sizes) <= 8
    assert sizes[0] == (1, 100000)  # a file as big as a batch ends it alone ("big" sorts first)
    assert all(size <= 20000 for _lines, size in sizes[1:])


def test_an_unreadable_file_is_counted_and_named_not_fatal(tree, monkeypatch):
    real = walk_module._sha256

    def failing(path):
        if path.endswith(b"etc/app.conf"):
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(walk_module, "_sha256", failing)
    walk = Walk(str(tree))
    found = by_path(records(walk))
    assert b"etc/app.conf" not in found and b"bin/suid" in found
    assert walk.counts["skipped"]["unreadable"] == 1 and walk.counts["files"] == 10
    assert walk.warnings == ["%s/etc/app.conf: Permission denied" % tree]


def test_a_file_that_became_a_fifo_is_not_read(tmp_path):
    path = make(tmp_path, b"was-a-file")
    os.unlink(path)
    os.mkfifo(path)
    assert walk_module.hash_files([path]) == [(None, "%s: no longer a regular file" % os.fsdecode(path))]


def test_200k_cache_rows_are_indexed_by_directory_in_bounded_memory(tmp_path):
    """The index holds one entry a directory, not a row a file; a directory's rows are read when it is listed."""
    cache = tmp_path / "c"
    with open(str(cache), "wb") as handle:
        handle.write(walk_module._CACHE_MAGIC)
        for number in range(200):
            handle.write(cache_block(0, b"dir%03d" % number, [
                cache_row(b"file%06d" % n, n, n, n, n, "ab" * 32) for n in range(number * 1000, number * 1000 + 1000)]))
    tracemalloc.start()
    try:
        index = CacheIndex([str(cache)])
        hits = 0
        for number in range(200):
            rows, _copy = index.rows(index.pieces(0, b"dir%03d" % number))
            hits += sum(1 for n in range(number * 1000, number * 1000 + 1000)
                        if walk_module.row_sha256(rows[b"file%06d" % n][1]) == "ab" * 32)
            del rows
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert hits == 200000 and cache.stat().st_size > 15 << 20 and peak < 4 << 20, peak


NAME = st.binary(min_size=1, max_size=20).filter(
    lambda raw: b"/" not in raw and b"\0" not in raw and raw not in (b".", b".."))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sets(NAME, min_size=1, max_size=12))
def test_any_names_are_found_and_written_back_as_bytes(tmp_path, names):
    top = tmp_path / os.urandom(6).hex()
    for name in names:
        make(top, b"sub/" + name, name)
    walk = Walk(str(top))
    report = str(top) + ".gz"
    with ReportWriter(report) as writer:
        writer.header({})
        for batch in walk.batches():
            writer.file_lines(batch.lines, batch.records)
        writer.close(walk.counts)
    found = dict((name_of(r), r["sha256"]) for r in read_report(report).files() if r["type"] == "file")
    assert found == dict((b"sub/" + name, hashlib.sha256(name).hexdigest()) for name in names)


def test_another_file_system_is_recorded_as_a_mount_point_and_not_entered(tmp_path):
    make(tmp_path, b"data/mnt/under-the-mount", b"hidden")
    make(tmp_path, b"data/local", b"here")
    mount = os.path.join(str(tmp_path), "data", "mnt")
    if subprocess.run(["mount", "-t", "tmpfs", "ferry-test", mount], capture_output=True, check=False).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        make(tmp_path, b"data/mnt/on-tmpfs", b"other fs")
        found = by_path(records(Walk(str(tmp_path))))
        assert found[b"data/mnt"]["type"] == "dir" and b"data/local" in found
        assert b"data/mnt/on-tmpfs" not in found
        assert b"data/mnt/on-tmpfs" in by_path(records(Walk(str(tmp_path), one_file_system=False)))
        assert b"data/mnt/on-tmpfs" in by_path(records(Walk(str(tmp_path), roots=["/data/mnt"])))
    finally:
        subprocess.run(["umount", mount], check=True)


def _slow_square(number):
    time.sleep(0.01 * (number % 3))
    return number * number


def test_run_ordered_keeps_the_order_and_needs_no_pool_without_work(monkeypatch):
    items = [(n, None if n % 4 == 0 else n) for n in range(40)]
    got = list(tree_module.run_ordered(_slow_square, iter(items), 3, ahead=5))
    assert got == [(n, None if n % 4 == 0 else n * n) for n in range(40)]
    monkeypatch.setattr(tree_module.multiprocessing, "get_context", None)  # a pool would fail
    assert list(tree_module.run_ordered(_slow_square, iter([(1, None), (2, None)]), 4)) == [(1, None), (2, None)]


def test_directories_listed_on_workers_give_the_lines_and_cache_of_one_process(tree, tmp_path):
    """Listing on forked workers (the rescan's stat calls and cached lines, a directory a job) changes nothing:
    the same lines in walk order, the same cache bytes, on a first scan, an unchanged rescan (every directory's
    rows copied as they are) and a rescan after a change."""
    for number in range(120):
        make(tree, b"many/d%d/f%03d" % (number % 6, number), b"%d" % number * (number % 7))
    names = dict(users={0: "root", 1001: "alice"}, groups={0: "root", 1500: "devs"})
    caches = {}
    for workers in (1, 2):
        cache = str(tmp_path / ("c%d" % workers))
        first = Walk(str(tree), cache_in=cache, cache_out=cache, hash_workers=workers, batch_files=16, **names)
        found = [records(first)]
        before = os.stat(cache)
        again = Walk(str(tree), cache_in=cache, cache_out=cache, hash_workers=workers, batch_files=16, **names)
        found.append(records(again))
        assert again.counts["hashed"] == 0 and again.counts["cached"] == first.counts["hashed"]
        assert (os.stat(cache).st_ino, os.stat(cache).st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        caches[workers] = [found, open(cache, "rb").read()]
    assert caches[1][0] == caches[2][0] and caches[1][1] == caches[2][1]
    make(tree, b"many/d3/f003", b"changed")
    for workers in (1, 2):
        cache = str(tmp_path / ("c%d" % workers))
        changed = Walk(str(tree), cache_in=cache, cache_out=cache, hash_workers=workers, batch_files=16, **names)
        caches[workers].append(records(changed))
        assert changed.counts["hashed"] == 1
        caches[workers].append(open(cache, "rb").read())
    assert caches[1][2:] == caches[2][2:] and caches[1][3] != caches[1][1]
    assert caches[1][2] == records(Walk(str(tree), **names))


def test_a_walk_stopped_while_workers_list_leaves_no_process(tree, tmp_path):
    for number in range(60):
        make(tree, b"many/d%02d/f" % number, b"x")
    walk = Walk(str(tree), hash_workers=2, batch_files=4)
    batches = walk.batches()
    next(batches)
    pids = [worker[0] for worker in walk._pool.workers]
    batches.close()
    assert walk._pool is None
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def test_a_directory_s_rows_make_the_same_blocks_whatever_the_batches(tmp_path, monkeypatch):
    """Blocks of BLOCK_ROWS rows and one of the rest, a directory at a time: batches of any size give the same cache
    bytes (so an unchanged rescan can tell it is the same cache), and each block is found again."""
    monkeypatch.setattr(walk_module, "BLOCK_ROWS", 4)
    for number in range(23):
        make(tmp_path / "root", b"d%d/f%02d" % (number % 2, number), b"%d" % number)
    root = str(tmp_path / "root")
    made = set()
    for batch_files in (1, 3, 7, 100):
        cache = str(tmp_path / ("c%d" % batch_files))
        records(Walk(root, cache_out=cache, batch_files=batch_files))
        made.add(open(cache, "rb").read())
    assert len(made) == 1
    index = CacheIndex([cache])
    assert [len(index.pieces(0, name)) for name in (b"d0", b"d1")] == [3, 3]  # 12 rows and 11 rows
    assert len(index.rows(index.pieces(0, b"d0"))[0]) == 12


@pytest.mark.parametrize("workers", [1, 2])
def test_the_last_directory_s_rows_are_kept_when_its_lines_fill_the_last_batch(tmp_path, workers):
    """An unchanged directory's rows are copied after its lines: when those lines end the walk's last batch, the
    copy still goes into the cache (a batch of no line but cache blocks is one too)."""
    for number in range(7):
        make(tmp_path / "root", b"d/f%d" % number, b"%d" % number)
    root, cache = str(tmp_path / "root"), str(tmp_path / "c")
    records(Walk(root, cache_in=cache, cache_out=cache, batch_files=8, hash_workers=workers))
    for _again in range(2):
        again = Walk(root, cache_in=cache, cache_out=cache, batch_files=8, hash_workers=workers)
        records(again)  # the root's line for d, then d's 7 lines from the cache: 8 records, the batch is full
        assert again.counts["cached"] == 7 and again.counts["hashed"] == 0
