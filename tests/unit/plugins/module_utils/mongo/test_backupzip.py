# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ferry backup zip: members as written, lines across the 1 MiB buffer, zip64, a fixed date, published only
whole (.partial, then renamed), bounded memory, the manifest read back and refused when it is not ours."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import tracemalloc
import zipfile

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.mongo import backupzip


def _manifest(**extra):
    manifest = {"format": backupzip.FORMAT, "format_version": backupzip.FORMAT_VERSION, "collections": {}}
    manifest.update(extra)
    return manifest


def _write(dest, members, level=6):
    writer = backupzip.Writer(str(dest), level)
    summaries = {}
    for name, lines in members:
        member = writer.member(name)
        for line in lines:
            member.add(line)
        summaries[name] = writer.close_member()
    writer.write_bytes(backupzip.MANIFEST, backupzip.manifest_bytes(_manifest()))
    assert os.path.exists(str(dest) + backupzip.PARTIAL_SUFFIX) and not os.path.exists(str(dest))
    writer.commit()
    return summaries


@pytest.mark.parametrize("lines", [
    [],
    [b"{}"],
    [b'{"a":"' + b"x" * (backupzip.CHUNK - 8) + b'"}'],  # one line about the buffer's size
    [b'{"i":%d}' % i for i in range(3)] + [b"y" * (backupzip.CHUNK + 5)] + [b"{}"],  # a line over it
    [("{\"s\":\"%s\"}" % ("\u00e9\u2028" * 50)).encode("utf-8")] * 1000,
])
def test_members_hold_the_lines_given_with_counts_and_sha256(tmp_path, lines):
    dest = tmp_path / "b.zip"
    summaries = _write(dest, [(backupzip.member_name("C"), lines)])
    data = b"".join(line + b"\n" for line in lines)
    summary = summaries["collections/C.jsonl"]
    assert summary == {"member": "collections/C.jsonl", "count": len(lines), "bytes": len(data),
                       "member_sha256": hashlib.sha256(data).hexdigest()}
    with zipfile.ZipFile(str(dest)) as archive:
        assert archive.read("collections/C.jsonl") == data
        assert list(backupzip.iter_lines(archive, "collections/C.jsonl")) == lines
        assert archive.namelist() == ["collections/C.jsonl", backupzip.MANIFEST]
        info = archive.getinfo("collections/C.jsonl")
        assert info.date_time == backupzip.FIXED_TIME and info.compress_type == zipfile.ZIP_DEFLATED
    assert os.stat(dest).st_mode & 0o777 == 0o600
    assert not os.path.exists(str(dest) + backupzip.PARTIAL_SUFFIX)


def test_zip64_is_forced_on_every_member(tmp_path):
    dest = tmp_path / "b.zip"
    _write(dest, [(backupzip.member_name("A"), [b"{}"])])
    raw = dest.read_bytes()
    # a zip64 extra field (header id 0x0001) in the local header of the first member
    name_len = int.from_bytes(raw[26:28], "little")
    extra_len = int.from_bytes(raw[28:30], "little")
    extra = raw[30 + name_len:30 + name_len + extra_len]
    assert extra[:2] == b"\x01\x00"


def test_same_lines_give_the_same_bytes(tmp_path):
    lines = [b'{"i":%d}' % i for i in range(100)]
    _write(tmp_path / "a.zip", [(backupzip.member_name("C"), lines)])
    _write(tmp_path / "b.zip", [(backupzip.member_name("C"), lines)])
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()


def test_abort_removes_the_partial_and_keeps_an_older_zip(tmp_path):
    dest = tmp_path / "b.zip"
    dest.write_bytes(b"older")
    writer = backupzip.Writer(str(dest))
    member = writer.member(backupzip.member_name("C"))
    member.add(b"{}")
    writer.abort()
    assert dest.read_bytes() == b"older"
    assert not os.path.exists(str(dest) + backupzip.PARTIAL_SUFFIX)


def test_dry_run_counts_and_writes_nothing(tmp_path):
    dest = tmp_path / "none" / "b.zip"
    writer = backupzip.Writer(str(dest), dry_run=True)
    member = writer.member(backupzip.member_name("C"))
    member.add(b"{}")
    assert writer.close_member()["count"] == 1
    assert writer.commit() is None
    assert not os.path.exists(tmp_path / "none")


def test_one_member_at_a_time(tmp_path):
    writer = backupzip.Writer(str(tmp_path / "b.zip"))
    writer.member("a")
    with pytest.raises(FerryError, match="still open"):
        writer.member("b")
    writer.abort()


def test_memory_stays_bounded_for_many_lines(tmp_path):
    line = b'{"_id":"' + b"0" * 36 + b'","v":{"$numberInt":"1"},"pad":"' + b"p" * 400 + b'"}'
    writer = backupzip.Writer(str(tmp_path / "big.zip"), 1)
    member = writer.member(backupzip.member_name("Big"))
    tracemalloc.start()
    try:
        for _unused in range(200000):  # ~95 MB of lines
            member.add(line)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    summary = writer.close_member()
    writer.abort()
    assert summary["count"] == 200000 and summary["bytes"] > 90 << 20
    assert peak < 8 << 20, peak


def test_read_manifest_and_its_refusals(tmp_path):
    good = tmp_path / "good.zip"
    _write(good, [])
    assert backupzip.read_manifest(str(good))["format"] == backupzip.FORMAT
    cases = {
        "none.zip": {"collections/A.jsonl": b""},
        "other.zip": {backupzip.MANIFEST: json.dumps({"format": "other"}).encode()},
        "v2.zip": {backupzip.MANIFEST: json.dumps(_manifest(format_version=2)).encode()},
        "bad.zip": {backupzip.MANIFEST: b"{not json"},
    }
    messages = {"none.zip": "has no ferry-manifest.json", "other.zip": "is not a ferry.mongo_backup manifest",
                "v2.zip": "format_version 2 is not supported", "bad.zip": "is not valid JSON"}
    for name, members in cases.items():
        path = tmp_path / name
        with zipfile.ZipFile(str(path), "w") as archive:
            for member, data in members.items():
                archive.writestr(member, data)
        with pytest.raises(FerryError, match=messages[name]):
            backupzip.read_manifest(str(path))
    (tmp_path / "junk.zip").write_bytes(b"PK not a zip")
    with pytest.raises(FerryError, match="is not a readable zip file"):
        backupzip.read_manifest(str(tmp_path / "junk.zip"))


def test_iter_lines_gives_a_last_line_without_newline_and_empty_lines(tmp_path):
    path = tmp_path / "x.zip"
    with zipfile.ZipFile(str(path), "w") as archive:
        archive.writestr("m", b"a\n\nb")
    with zipfile.ZipFile(str(path)) as archive:
        assert list(backupzip.iter_lines(archive, "m")) == [b"a", b"", b"b"]


def test_member_names():
    assert backupzip.member_name("DataSets") == "collections/DataSets.jsonl"
    assert backupzip.collection_of("collections/DataSets.jsonl") == "DataSets"
    assert backupzip.collection_of("files.jsonl") is None
    assert backupzip.collection_of("collections/.jsonl") is None
