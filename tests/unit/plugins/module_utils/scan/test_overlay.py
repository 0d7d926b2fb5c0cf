# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Overlay parts: planned the same from the same report and index, pieces cut at part_size, streamed tars that
tarfile and core.archive read, a file changed since the scan failing before the part is whole, the local archive."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import os
import random
import tarfile

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.archive import (
    iter_members,
    open_member,
    open_tar_stream,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.scan import overlay
from ansible_collections.ferry.migrate.plugins.module_utils.scan.overlay import (
    Changed,
    Member,
    Obj,
    ObjectReader,
    archive_chunks,
    archive_length,
    index_lines,
    parse_member,
    plan_parts,
    report_objects,
    write_archive,
)
from ansible_collections.ferry.migrate.plugins.module_utils.scan.report import ReportWriter, name_fields, read_report
from tests.support.scan_objects import sha, write_tree_and_report

PS = 4096  # part size of the plans below


def objects_of(sizes):
    """{sha: Obj} for objects of these sizes (distinct contents), and the contents by sha."""
    contents = [bytes([n % 251]) * size + b"%d" % n for n, size in enumerate(sizes)]
    return ({sha(data): Obj(sha(data), len(data), b"f%d" % n) for n, data in enumerate(contents)},
            {sha(data): data for data in contents})


def layout(parts):
    return [(part.name, [(m.obj.sha256, m.offset, m.length) for m in part.members]) for part in parts]


def read_tar(data, name="part"):
    """[(member name, bytes, TarInfo)] by core.archive (end block required) and the same by tarfile."""
    tar = open_tar_stream(io.BytesIO(data), name)
    ours = [(m.name, open_member(tar, m, name).read(), m) for m in iter_members(tar, name)]
    with tarfile.open(fileobj=io.BytesIO(data)) as plain:
        theirs = [(m.name, plain.extractfile(m).read()) for m in plain.getmembers()]
    assert [(n, d) for n, d, _m in ours] == theirs
    return ours


# -- names -----------------------------------------------------------------------------------------------------
def test_member_names_parse_and_nothing_else_does():
    digest = "a" * 64
    assert parse_member("objects/" + digest) == (digest, None)
    assert parse_member("objects/%s.0" % digest) == (digest, 0)
    assert parse_member("objects/%s.17179869184" % digest) == (digest, 16 << 30)
    for name in ("objects/" + "A" * 64, "objects/" + "a" * 63, "objects/%s.01" % digest, "objects/%s." % digest,
                 "../objects/" + digest, "/objects/" + digest, "objects/%s/x" % digest, "objects/%s\n" % digest,
                 "report.jsonl.gz", "objects/%s.-1" % digest):
        assert parse_member(name) is None, name


# -- the plan --------------------------------------------------------------------------------------------------
def test_the_plan_is_the_same_whatever_the_order_and_leaves_out_what_is_known():
    objects, _data = objects_of([10, 3000, 2000, 5000, 0, 4096, 100] * 3)
    shuffled = list(objects.items())
    random.Random(7).shuffle(shuffled)
    known = set(sorted(objects)[::4])
    first = plan_parts(objects, known, PS)
    assert layout(first) == layout(plan_parts(dict(shuffled), set(known), PS))
    planned = [m.obj.sha256 for part in first for m in part.members]
    assert not known & set(planned)
    assert sorted(set(planned)) == sorted(set(objects) - known)
    assert planned == sorted(planned)  # in SHA-256 order, pieces of one object together
    assert all(part.bytes <= PS for part in first)
    assert [part.name for part in first] == ["part-%05d.tar" % n for n in range(1, len(first) + 1)]


@pytest.mark.parametrize("size,pieces", [
    (PS - 1, None), (PS, None), (PS + 1, [(0, PS), (PS, 1)]),
    (2 * PS, [(0, PS), (PS, PS)]), (2 * PS + 1, [(0, PS), (PS, PS), (2 * PS, 1)]), (0, None)])
def test_pieces_are_cut_at_part_size(size, pieces):
    obj = Obj("b" * 64, size, b"x")
    parts = plan_parts({obj.sha256: obj}, set(), PS)
    members = [(m.offset, m.length) for part in parts for m in part.members]
    assert members == (pieces or [(None, size)])
    assert all(len(part.members) == 1 for part in parts)  # a piece of part_size fills its part


def test_objects_fill_a_part_up_to_part_size_exactly():
    small = Obj("1" * 64, PS - 100, b"a")
    fits = Obj("2" * 64, 100, b"b")
    spills = Obj("3" * 64, 1, b"c")
    big = Obj("4" * 64, PS + 10, b"d")  # its last piece (10 bytes) starts a part others join
    after = Obj("5" * 64, 20, b"e")
    parts = plan_parts({o.sha256: o for o in (small, fits, spills, big, after)}, set(), PS)
    assert [[(m.obj.path, m.offset) for m in p.members] for p in parts] == [
        [(b"a", None), (b"b", None)], [(b"c", None)], [(b"d", 0)], [(b"d", PS), (b"e", None)]]
    assert [p.bytes for p in parts] == [PS, 1, PS, 30]


def test_index_lines_give_each_piece_its_part():
    big = Obj("4" * 64, 2 * PS + 3, b"d")
    small = Obj("1" * 64, 5, b"a")
    lines = list(index_lines(plan_parts({big.sha256: big, small.sha256: small}, set(), PS), scan="0123456789abcdef"))
    assert lines == [
        {"sha256": small.sha256, "size": 5, "part": "part-00001.tar", "scan": "0123456789abcdef"},
        {"sha256": big.sha256, "size": 2 * PS + 3, "part": "part-00002.tar", "scan": "0123456789abcdef",
         "pieces": [[0, PS, "part-00002.tar"], [PS, PS, "part-00003.tar"], [2 * PS, 3, "part-00004.tar"]]}]


# -- the streamed tar ------------------------------------------------------------------------------------------
def tree(tmp_path, sizes):
    objects, contents = objects_of(sizes)
    root = tmp_path / "root"
    root.mkdir()
    for digest, obj in objects.items():
        (root / os.fsdecode(obj.path)).write_bytes(contents[digest])
    return str(root), objects, contents


@pytest.mark.parametrize("chunk", [1, 511, 512, 513, 1 << 20])
def test_parts_are_tars_of_the_objects_with_end_blocks(tmp_path, chunk):
    root, objects, contents = tree(tmp_path, [0, 1, 511, 512, 513, PS - 1, PS, PS + 1, 3 * PS + 7, 1000])
    reader = ObjectReader(root, chunk=chunk)
    rebuilt = {}
    for part in plan_parts(objects, set(), PS):
        data = b"".join(reader.part_chunks(part.members))
        assert len(data) == part.length  # what HEAD must answer for a whole part
        assert data.endswith(b"\0" * 1024) and len(data) % 512 == 0
        for name, content, info in read_tar(data):
            digest, offset = parse_member(name)
            assert (info.mode, info.uid, info.gid, info.mtime, info.isreg()) == (0o600, 0, 0, 0, True)
            rebuilt.setdefault(digest, {})[offset or 0] = content
    assert {d: b"".join(p[o] for o in sorted(p)) for d, p in rebuilt.items()} == contents


def test_a_part_read_by_tarfile_alone(tmp_path):
    root, objects, contents = tree(tmp_path, [3, 700])
    part = plan_parts(objects, set(), PS)[0]
    with tarfile.open(fileobj=io.BytesIO(b"".join(ObjectReader(root).part_chunks(part.members))), mode="r|") as tar:
        assert {m.name: tar.extractfile(m).read() for m in tar} == {"objects/" + d: c for d, c in contents.items()}


def chunks_until_error(generator):
    sent = []
    with pytest.raises(Changed) as info:
        for chunk in generator:
            sent.append(chunk)
    return b"".join(sent), str(info.value)


@pytest.mark.parametrize("change", ["same size", "longer", "shorter", "symlink", "fifo", "removed", "dir"])
def test_a_file_changed_since_the_scan_fails_before_the_part_is_whole(tmp_path, change):
    root, objects, contents = tree(tmp_path, [10, 2000, 30])
    victim = sorted(objects)[1]
    path = os.path.join(root, os.fsdecode(objects[victim].path))
    os.unlink(path)
    if change == "same size":
        with open(path, "wb") as handle:
            handle.write(b"Z" * objects[victim].size)
    elif change in ("longer", "shorter"):
        with open(path, "wb") as handle:
            handle.write(contents[victim] + b"!" if change == "longer" else contents[victim][:-1])
    elif change == "symlink":
        os.symlink(os.path.join(root, os.fsdecode(objects[sorted(objects)[0]].path)), path)
    elif change == "fifo":
        os.mkfifo(path)  # must not block the open
    elif change == "dir":
        os.mkdir(path)
    part = plan_parts(objects, set(), PS)[0]
    sent, message = chunks_until_error(ObjectReader(root).part_chunks(part.members))
    assert len(sent) < part.length and not sent.endswith(b"\0" * 1024)
    assert message.startswith(path) and "changed since the scan" in message and "run host_scan again" in message


def test_a_piece_read_alone_is_checked_against_the_whole_file(tmp_path, monkeypatch):
    """A resumed upload sends the last piece of an object whose first pieces an earlier run sent."""
    root, objects, contents = tree(tmp_path, [3 * PS + 5])
    digest = next(iter(objects))
    parts = plan_parts(objects, set(), PS)
    last = parts[-1].members
    data = b"".join(ObjectReader(root).part_chunks(last))
    assert read_tar(data)[0][1] == contents[digest][3 * PS:]
    path = os.path.join(root, os.fsdecode(objects[digest].path))
    with open(path, "r+b") as handle:  # the first piece changed: only the whole-file digest can tell
        handle.write(b"#")
    chunks_until_error(ObjectReader(root).part_chunks(last))
    with open(path, "r+b") as handle:
        handle.write(contents[digest][:1])
    # read in order by one reader, the digest is carried from piece to piece: no byte read twice
    reads = []
    real_pread = os.pread

    def counting(fd, size, offset):
        reads.append(size)
        return real_pread(fd, size, offset)

    monkeypatch.setattr(overlay.os, "pread", counting)
    reader = ObjectReader(root)
    for part in parts:
        b"".join(reader.part_chunks(part.members))
    assert sum(reads) == objects[digest].size + 1  # + the one byte read past the end, proving the file has no more


def test_a_retried_part_restarts_the_carried_digest(tmp_path):
    root, objects, _contents = tree(tmp_path, [2 * PS + 5])
    parts = plan_parts(objects, set(), PS)
    reader = ObjectReader(root)
    b"".join(reader.part_chunks(parts[0].members))
    partial = reader.part_chunks(parts[1].members)
    next(partial), next(partial)  # a send cut half-way
    b"".join(reader.part_chunks(parts[1].members))  # the retry
    b"".join(reader.part_chunks(parts[2].members))  # checks the whole object: no Changed


def test_names_are_bytes_newlines_and_non_utf8_included(tmp_path):
    files = {b"etc/new\nline": b"one", b"etc/caf\xe9": b"two", b"opt/a b/c": b"three", b"empty": b""}
    report = tmp_path / "report.jsonl.gz"
    write_tree_and_report(tmp_path / "root", report, files)
    objects = report_objects(read_report(str(report)))
    assert {obj.path: obj.sha256 for obj in objects.values()} == {p: sha(d) for p, d in files.items()}
    data = b"".join(ObjectReader(str(tmp_path / "root")).part_chunks(plan_parts(objects, set(), PS)[0].members))
    assert {name: content for name, content, _i in read_tar(data)} == {"objects/" + sha(d): d for d in files.values()}


def test_report_objects_take_the_first_path_of_a_content_and_only_regular_files(tmp_path):
    report = tmp_path / "r.jsonl.gz"
    with ReportWriter(str(report)) as writer:
        writer.header({"created": "x", "root": "/", "system": {}, "install_profile": {}, "options": {}})
        writer.file(dict(name_fields("path", b"b"), type="file", size=1, sha256="c" * 64, change="modified"))
        writer.file(dict(name_fields("path", b"a"), type="file", size=1, sha256="c" * 64, change="added"))
        writer.file(dict(name_fields("path", b"hard"), type="file", size=1, link_group=1, change="added"))
        writer.file(dict(name_fields("path", b"l"), type="symlink", target="b", change="added"))
        writer.file(dict(name_fields("path", b"d"), type="dir", change="added"))
        writer.file(dict(name_fields("path", b"gone"), package="p", change="deleted"))
        writer.close({})
    objects = report_objects(read_report(str(report)))
    assert [(o.sha256, o.path, o.size) for o in objects.values()] == [("c" * 64, b"b", 1)]
    with ReportWriter(str(report)) as writer:
        writer.header({"created": "x", "root": "/", "system": {}, "install_profile": {}, "options": {}})
        writer.file(dict(name_fields("path", b"odd"), type="file", size=1, sha256="C" * 64, change="added"))
        writer.close({})
    with pytest.raises(FerryError, match="bad sha256 or size: odd"):
        report_objects(read_report(str(report)))
    for bad in (b"/etc/passwd", b"../x", b"a/../../x", b"a\0b", b""):
        with ReportWriter(str(report)) as writer:
            writer.header({"created": "x", "root": "/", "system": {}, "install_profile": {}, "options": {}})
            writer.file(dict(name_fields("path", bad), type="file", size=1, sha256="c" * 64, change="added"))
            writer.close({})
        with pytest.raises(FerryError, match="path is not relative to the scanned root"):
            report_objects(read_report(str(report)))


# -- the local overlay archive ---------------------------------------------------------------------------------
def test_the_local_archive_holds_the_report_then_every_object(tmp_path):
    files = {b"etc/a": b"alpha", b"etc/b": b"x" * (PS + 3), b"etc/c": b"alpha"}
    report = tmp_path / "report.jsonl.gz"
    digest = write_tree_and_report(tmp_path / "root", report, files)
    objects = report_objects(read_report(str(report)))
    dest = tmp_path / "out" / "overlay.tar"
    dest.parent.mkdir()
    write_archive(str(dest), archive_chunks(str(report), digest, objects, ObjectReader(str(tmp_path / "root"))))
    data = dest.read_bytes()
    assert len(data) == archive_length(report.stat().st_size, objects)
    members = read_tar(data, str(dest))
    assert members[0][:2] == ("report.jsonl.gz", report.read_bytes())
    assert [(n, c) for n, c, _i in members[1:]] == sorted(("objects/" + sha(d), d) for d in set(files.values()))
    assert oct(dest.stat().st_mode & 0o777) == "0o600"
    assert os.listdir(dest.parent) == ["overlay.tar"]


def test_a_failed_local_archive_leaves_nothing(tmp_path):
    files = {b"etc/a": b"alpha", b"etc/b": b"beta"}
    report = tmp_path / "report.jsonl.gz"
    digest = write_tree_and_report(tmp_path / "root", report, files)
    objects = report_objects(read_report(str(report)))
    (tmp_path / "root" / "etc" / "b").write_bytes(b"BETA")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(Changed, match="etc/b changed since the scan"):
        write_archive(str(out / "o.tar"),
                      archive_chunks(str(report), digest, objects, ObjectReader(str(tmp_path / "root"))))
    assert os.listdir(out) == []
    with pytest.raises(Changed, match="report.jsonl.gz changed since the scan"):  # the report itself is checked
        write_archive(str(out / "o.tar"), archive_chunks(str(report), "0" * 64, {}, ObjectReader("/")))
    assert os.listdir(out) == []


def test_member_lengths_match_what_is_written():
    for size in (0, 1, 511, 512, 513, 10 ** 6):
        member = Member(Obj("d" * 64, size, b"x"))
        assert member.tar_length == 512 + -(-size // 512) * 512
