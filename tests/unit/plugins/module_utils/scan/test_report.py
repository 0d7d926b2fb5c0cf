# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scan report: names as bytes, the staged gzip JSON Lines writer, the reader's refusals, bounded memory."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import hashlib
import io
import json
import os
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.scan import report as report_module
from ansible_collections.ferry.migrate.plugins.module_utils.scan.report import (
    ReportWriter,
    name_fields,
    name_of,
    read_report,
)

COUNTS = {"files": 2}


def write(path, packages=({"name": "bash", "version": "5.2-1"},), files=None, counts=None, unless_content=None):
    files = files if files is not None else [dict(name_fields("path", b"etc/a"), type="file", sha256="0" * 64),
                                             dict(name_fields("path", b"x/\xff\nb"), type="dir")]
    with ReportWriter(str(path), unless_content=unless_content) as writer:
        writer.header({"created": "2026-01-01T00:00:00Z", "root": "/", "system": {"arch": "amd64"}})
        for package in packages:
            writer.package(package)
        for record in files:
            writer.file(record)
        writer.close(counts or COUNTS)
    return writer


def lines_of(path):
    with gzip.open(str(path), "rb") as handle:
        return handle.read().split(b"\n")


def write_raw(path, lines):
    with gzip.open(str(path), "wb") as handle:
        handle.write(b"".join(line + b"\n" for line in lines))


@given(st.binary(min_size=1, max_size=64))
def test_every_name_comes_back_as_the_same_bytes(raw):
    fields = name_fields("path", raw)
    assert name_of(json.loads(json.dumps(fields))) == raw
    try:
        raw.decode("utf-8")
        assert list(fields) == ["path"]
    except UnicodeDecodeError:
        assert list(fields) == ["path_b64"]


def test_a_symlink_target_uses_its_own_key_and_a_record_without_the_name_is_refused():
    record = dict(name_fields("target", b"/etc/\xfe"), **name_fields("path", b"lnk"))
    assert name_of(record, "target") == b"/etc/\xfe" and name_of(record) == b"lnk"
    with pytest.raises(FerryError, match="no target"):
        name_of({"path": "x"}, "target")
    with pytest.raises(FerryError, match="bad path_b64"):
        name_of({"path_b64": "***"})


def test_round_trip_header_packages_files_summary_and_the_file_digest(tmp_path):
    path = tmp_path / "report.jsonl.gz"
    writer = write(path)
    assert writer.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert oct(os.stat(str(path)).st_mode & 0o777) == "0o600"
    assert os.listdir(str(tmp_path)) == ["report.jsonl.gz"]  # no temporary file left
    report = read_report(str(path))
    assert report.header["format"] == "ferry-scan" and report.header["version"] == 1
    assert [p["name"] for p in report.packages()] == ["bash"]
    assert [name_of(f) for f in report.files()] == [b"etc/a", b"x/\xff\nb"]
    assert report.summary["counts"] == COUNTS and report.summary["records"] == 3
    assert [r["kind"] for r in report.records()] == ["package", "file", "file"]  # a fresh pass each time
    assert lines_of(path)[-1] == b""  # every line ends with a newline, the last one too


def test_a_file_object_is_read_once_in_order(tmp_path):
    path = tmp_path / "report.jsonl.gz"
    write(path)
    report = read_report(io.BytesIO(path.read_bytes()))
    assert report.name == "the scan report"
    assert [p["name"] for p in report.packages()] == ["bash"]
    assert [name_of(f) for f in report.files()] == [b"etc/a", b"x/\xff\nb"]
    assert report.summary["records"] == 3
    with pytest.raises(FerryError, match="the scan report is read from a stream, once"):
        list(report.packages())
    files_only = read_report(io.BytesIO(path.read_bytes()), "body")
    assert len(list(files_only.files())) == 2 and files_only.summary["records"] == 3


def test_the_content_digest_ignores_the_time_and_the_counts_but_not_a_record(tmp_path):
    first = write(tmp_path / "a.gz")
    second = write(tmp_path / "b.gz", counts={"files": 2, "hashed": 0, "cached": 2})
    with ReportWriter(str(tmp_path / "c.gz")) as writer:
        writer.header({"created": "2030-01-01T00:00:00Z", "root": "/", "system": {"arch": "amd64"}})
        writer.package({"name": "bash", "version": "5.2-1"})
        writer.file_lines([json.dumps(dict({"kind": "file"}, **name_fields("path", b"etc/a"), type="file",
                                           sha256="0" * 64), separators=(",", ":")).encode() + b"\n", b""], 1)
        writer.file(dict(name_fields("path", b"x/\xff\nb"), type="dir"))
        writer.close(COUNTS)
    third = write(tmp_path / "d.gz", files=[dict(name_fields("path", b"etc/a"), type="file", sha256="1" * 64)])
    assert first.content_sha256 == second.content_sha256 == writer.content_sha256 != third.content_sha256
    assert first.sha256 != second.sha256
    assert read_report(str(tmp_path / "a.gz")).summary["content_sha256"] == first.content_sha256


def test_a_report_of_the_same_content_leaves_the_file_there(tmp_path):
    path = tmp_path / "report.jsonl.gz"
    first = write(path)
    before = path.read_bytes()
    with ReportWriter(str(path), unless_content=first.content_sha256) as writer:
        writer.header({"created": "2031-01-01T00:00:00Z", "root": "/", "system": {"arch": "amd64"}})
        writer.package({"name": "bash", "version": "5.2-1"})
        writer.file(dict(name_fields("path", b"etc/a"), type="file", sha256="0" * 64))
        writer.file(dict(name_fields("path", b"x/\xff\nb"), type="dir"))
        writer.close(COUNTS)
    assert writer.kept and path.read_bytes() == before and os.listdir(str(tmp_path)) == ["report.jsonl.gz"]


@pytest.mark.parametrize("spool_most", [1, 600, 1 << 20])
def test_a_rescan_s_lines_are_held_back_then_deflated_only_when_the_content_differs(tmp_path, monkeypatch, spool_most):
    """With a report there, the lines wait undeflated (up to SPOOL_MOST, then deflated from there on): the same
    content deflates nothing and leaves the file; another content gives the same report a writer without it gives."""
    monkeypatch.setattr(report_module, "SPOOL_MOST", spool_most)
    monkeypatch.setattr(report_module, "FLUSH_BYTES", 512)
    files = [dict(name_fields("path", b"d/f%05d" % n), type="file", sha256="%064x" % n) for n in range(300)]
    path = tmp_path / "report.jsonl.gz"
    first = write(path, files=files)
    before = path.read_bytes()
    compressed = []
    real = report_module.ReportWriter._deflate_and_write
    monkeypatch.setattr(report_module.ReportWriter, "_deflate_and_write",
                        lambda self, item: compressed.append(len(item[0])) or real(self, item))
    again = write(path, files=files, unless_content=first.content_sha256)
    assert again.kept and path.read_bytes() == before and os.listdir(str(tmp_path)) == ["report.jsonl.gz"]
    assert (sum(compressed) == 0) == (spool_most > 600)  # held back whole, or deflated past the limit
    changed = write(path, files=files + [dict(name_fields("path", b"new"), type="dir")],
                    unless_content=first.content_sha256)
    plain = write(tmp_path / "plain.gz", files=files + [dict(name_fields("path", b"new"), type="dir")])
    assert not changed.kept and changed.sha256 == plain.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [name_of(r) for r in read_report(str(path)).files()][-1] == b"new"


def test_a_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "report.jsonl.gz"
    with pytest.raises(RuntimeError):
        with ReportWriter(str(path)) as writer:
            writer.header({"root": "/"})
            writer.file({"path": "a"})
            raise RuntimeError("disk gone")
    assert os.listdir(str(tmp_path)) == []


def test_a_write_that_fails_in_the_deflate_thread_stops_the_writer_and_leaves_nothing(tmp_path, monkeypatch):
    """The compressed lines are written by a thread beside the walk: its failure (a full disk) is raised in the
    writer's own thread at the next flush or at close, and the temporary file goes."""
    calls = []

    def full(self, data):
        calls.append(len(data))
        raise OSError(28, "No space left on device")
    monkeypatch.setattr("ansible_collections.ferry.migrate.plugins.module_utils.core.staging.StagedFile.write", full)
    path = tmp_path / "report.jsonl.gz"
    with pytest.raises(OSError, match="No space left"):
        with ReportWriter(str(path)) as writer:
            writer.header({"root": "/"})
            for number in range(20000):  # several flushes of 256 KiB
                writer.file({"path": "file-%06d" % number, "type": "file", "size": number})
            writer.close(COUNTS)
    assert os.listdir(str(tmp_path)) == [] and len(calls) == 1


def test_records_go_between_the_header_and_the_summary(tmp_path):
    with ReportWriter(None) as writer:
        with pytest.raises(ValueError):
            writer.file({"path": "a"})
        writer.header({})
        with pytest.raises(ValueError):
            writer.header({})
        writer.close({})
        with pytest.raises(ValueError):
            writer.file({"path": "a"})
    assert writer.sha256 is None and writer.content_sha256  # check mode: nothing deflated, the content digest only


@pytest.mark.parametrize("cut", [10, 40, 0.5, -30, -1])
def test_a_cut_report_is_refused_as_truncated(tmp_path, cut):
    path = tmp_path / "report.jsonl.gz"
    write(path, files=[dict(name_fields("path", b"f%05d" % n), type="file", sha256=os.urandom(32).hex())
                       for n in range(2000)])
    data = path.read_bytes()
    size = int(len(data) * cut) if isinstance(cut, float) else (cut if cut > 0 else len(data) + cut)
    path.write_bytes(data[:size])
    with pytest.raises(FerryError, match="report.jsonl.gz is truncated \\(no summary line\\)"):
        report = read_report(str(path))
        for _record in report.records():
            pass


def test_a_report_whose_gzip_is_whole_but_has_no_summary_is_truncated(tmp_path):
    path = tmp_path / "r.gz"
    lines = lines_of(write(tmp_path / "good.gz").path)
    write_raw(path, [line for line in lines if line and b'"summary"' not in line])
    report = read_report(str(path))
    with pytest.raises(FerryError, match="r.gz is truncated"):
        list(report.files())
    with pytest.raises(FerryError, match="r.gz is truncated"):
        report.summary  # pylint: disable=pointless-statement
    with pytest.raises(FerryError, match="the scan report is truncated"):
        list(read_report(io.BytesIO(path.read_bytes())).files())


def test_bad_lines_are_refused_naming_the_file_and_the_line(tmp_path):
    lines = [line for line in lines_of(write(tmp_path / "good.gz").path) if line]
    cases = {
        "not JSON": (lines[:2] + [b"{oops"] + lines[2:], "line 3: not JSON"),
        "no kind": (lines[:2] + [b"[1]"] + lines[2:], "line 3: not a report record"),
        "unknown kind": (lines[:2] + [b'{"kind":"other"}'] + lines[2:], "line 3: unknown kind 'other'"),
        "after summary": (lines + [b'{"kind":"file"}'], "line 6: a line after the summary"),
        "count": (lines[:2] + lines[3:], "is damaged: its summary counts 3 records, 2 were read"),
        "format": ([b'{"kind":"header","format":"other","version":1}'] + lines[1:], "is not a ferry scan report"),
        "version": ([lines[0].replace(b'"version":1', b'"version":2')] + lines[1:], "of version 2"),
        "empty": ([], "is truncated"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / ("%s.gz" % name.replace(" ", "-"))
        write_raw(path, content)
        with pytest.raises(FerryError, match=message) as caught:
            list(read_report(str(path)).records())
        assert str(path) in str(caught.value), name


def test_a_line_longer_than_the_limit_is_refused_before_it_fills_the_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(report_module, "MAX_LINE", 1 << 20)
    lines = [line for line in lines_of(write(tmp_path / "good.gz").path) if line]
    at_limit = tmp_path / "at-limit.gz"  # a line of exactly the limit is read (and refused as not JSON)
    write_raw(at_limit, lines[:1] + [b"x" * (1 << 20)] + lines[1:])
    with pytest.raises(FerryError, match="line 2: not JSON"):
        list(read_report(str(at_limit)).records())
    endless = tmp_path / "endless.gz"
    write_raw(endless, lines[:1] + [b"x" * ((1 << 20) + 1) + b"y" * (3 << 20)])
    with pytest.raises(FerryError, match="endless.gz line 2 is longer than 1 MiB: not a scan report"):
        list(read_report(str(endless)).records())


def test_not_gzip_is_refused(tmp_path):
    path = tmp_path / "plain.jsonl"
    path.write_bytes(b'{"kind":"header"}\n')
    with pytest.raises(FerryError, match="plain.jsonl is not a gzip scan report"):
        read_report(str(path))


def test_200k_records_are_written_and_read_in_bounded_memory(tmp_path):
    path = str(tmp_path / "big.jsonl.gz")
    line = '{"kind":"file","path":"usr/local/share/data/file-%06d","type":"file","mode":420,"uid":0,"gid":0,' \
           '"owner":"root","group":"root","size":1234,"mtime_ns":1700000000123456789,"sha256":"%s",' \
           '"package":null,"change":"added"}\n'
    digest = "ab" * 32
    tracemalloc.start()
    try:
        with ReportWriter(path) as writer:
            writer.header({"root": "/"})
            for start in range(0, 200000, 1000):
                writer.file_lines([(line % (n, digest)).encode() for n in range(start, start + 1000)], 1000)
            writer.close({"files": 200000})
        written_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        count = sum(1 for _record in read_report(path).files())
        read_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 200000
    assert os.path.getsize(path) > 2 * report_module.FLUSH_BYTES  # the data is far bigger than what stays in memory
    assert written_peak < 8 << 20 and read_peak < 8 << 20, (written_peak, read_peak)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=30))
def test_any_names_survive_a_written_report(tmp_path_factory, names):
    path = tmp_path_factory.mktemp("names") / "r.gz"
    write(path, packages=(), files=[dict(name_fields("path", raw), type="file") for raw in names])
    assert [name_of(record) for record in read_report(str(path)).files()] == names
