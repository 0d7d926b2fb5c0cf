# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""file_sync's file list: every path proven relative and inside the root before rsync runs, entries written as
``./<path>`` NUL-separated (names with newlines, '#', ';' and non-UTF-8 bytes intact), globs expanded on the
sending host only, missing paths reported, a ferry backup zip's files.jsonl read directly."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import zipfile

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.sync import filelist

BAD = os.fsdecode(b"bad\xff\xfe")  # a name that is not UTF-8, as a str holds it


def written(files):
    with open(files.path, "rb") as handle:
        return handle.read().split(b"\0")[:-1]


def make_list(entries, root=None):
    return filelist.FileList(root).write((entry, "entry %d" % i) for i, entry in enumerate(entries))


@pytest.mark.parametrize("path, normal", [
    ("a", "a"), ("a//./b/", "a/b"), ("./a", "a"), (".", "."), ("a/./.", "a"), ("#x", "#x"), (";y", ";y"),
    ("a\nb", "a\nb"), ("..a/b..", "..a/b.."), ("-rf", "-rf"),
])
def test_relative_paths_are_normalised(path, normal):
    assert filelist.relative_path(path, "here") == normal


@pytest.mark.parametrize("path, message", [
    ("../x", r"leads outside the root \(\.\.\)"),
    ("a/../../x", "leads outside"),
    ("a/..", "leads outside"),
    ("/etc/passwd", "is absolute"),
    ("//x", "is absolute"),
    ("a\0b", "NUL byte"),
    ("", "non-empty string"),
    (None, "non-empty string"),
    (7, "non-empty string"),
])
def test_paths_that_could_leave_the_root_are_refused(path, message):
    with pytest.raises(FerryError, match="here: .*" + message):
        filelist.relative_path(path, "here")


def test_entries_are_written_dot_slash_prefixed_and_nul_separated(tmp_path):
    files = make_list([{"path": "#comment", "kind": "file"}, {"path": ";semi", "kind": "dir"},
                       {"path": "a\nb", "kind": "file"}, {"path": BAD, "kind": "file"}, {"path": ".", "kind": "dir"}])
    try:
        assert written(files) == [b"./#comment", b"./;semi", b"./a\nb", b"./bad\xff\xfe", b"."]
        assert files.count == 5 and len(files.sha256) == 64
        assert oct(os.stat(files.path).st_mode & 0o777) == "0o600"
    finally:
        files.remove()
    assert not os.path.exists(files.path or "/nonexistent")


def test_an_empty_list_writes_an_empty_file():
    files = make_list([])
    assert written(files) == [] and files.count == 0
    files.remove()


def test_a_bad_path_fails_before_anything_and_leaves_no_list(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with pytest.raises(FerryError, match="entry 1: path ../x leads outside"):
        make_list([{"path": "ok"}, {"path": "../x"}])
    assert os.listdir(str(tmp_path)) == []


def tree(tmp_path):
    root = tmp_path / "src"
    (root / "u" / "models").mkdir(parents=True)
    for name in ("m1.zip", "m1.json", "m2.zip", ".m1.hidden"):
        (root / "u" / "models" / name).write_bytes(b"x")
    (root / "u" / "a\nb").write_bytes(b"n")
    (root / os.fsencode(BAD).decode("utf-8", "surrogateescape")).write_bytes(b"b")
    return root


def test_pushing_expands_globs_here_and_reports_what_is_missing(tmp_path):
    root = tree(tmp_path)
    files = make_list([
        {"path": "u/models/m1*", "kind": "glob"},
        {"path": "u/models/m1.zip", "kind": "file", "from_glob": "u/models/m1*"},  # expanded again, not twice
        {"path": "u/models/zz*", "kind": "glob"},
        {"path": "u/a\nb", "kind": "file"},
        {"path": BAD, "kind": "file"},
        {"path": "u/gone", "kind": "dir"},
    ], str(root))
    try:
        assert written(files) == [b"./u/models/m1.json", b"./u/models/m1.zip", b"./u/a\nb", b"./bad\xff\xfe"]
        assert files.missing == ["u/models/zz*", "u/gone"] and files.missing_count == 2
    finally:
        files.remove()


def test_missing_paths_are_counted_beyond_the_ones_listed(tmp_path):
    files = make_list([{"path": "gone%d" % i} for i in range(70)], str(tmp_path))
    assert files.missing_count == 70 and len(files.missing) == 50 and files.count == 0
    files.remove()


def test_pulling_refuses_patterns_nobody_expanded():
    with pytest.raises(FerryError, match="only the sending host can expand: u/t/m1\\*"):
        make_list([{"path": "u/t/m1*", "kind": "glob"}, {"path": "u/d", "kind": "dir"}])
    files = make_list([{"path": "u/t/m1*", "kind": "glob"},
                       {"path": "u/t/m1.zip", "kind": "file", "from_glob": "u/t/m1*"}])
    assert written(files) == [b"./u/t/m1.zip"] and files.missing == []
    files.remove()


def test_a_listed_path_through_a_link_leading_outside_the_root_is_refused(tmp_path):
    root = tree(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    os.symlink(str(outside), str(root / "link"))
    os.symlink("models", str(root / "u" / "inner"))  # a link inside the root is fine
    with pytest.raises(FerryError, match="link/secret goes through a symbolic link leading outside"):
        make_list([{"path": "link/secret"}], str(root))
    files = make_list([{"path": "link"}, {"path": "u/inner/m2.zip"}], str(root))  # the link itself is copied as one
    assert written(files) == [b"./link", b"./u/inner/m2.zip"]
    files.remove()


def entries_lines(entries):
    return "".join(json.dumps(entry) + "\n" for entry in entries).encode("utf-8")


def test_the_list_is_read_from_a_ferry_zip_or_a_jsonl_file(tmp_path):
    entries = [{"path": "u/datasets/d1", "kind": "dir", "item": "pg1", "collection": "DataSets", "_id": "d1"},
               {"path": "u/" + BAD, "kind": "file"}]
    data = entries_lines(entries)  # json.dumps writes the surrogates as \udcff escapes
    archive = tmp_path / "backup.zip"
    with zipfile.ZipFile(str(archive), "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("collections/DataSets.jsonl", b"")
        out.writestr("files.jsonl", data + b"\n")
    (tmp_path / "files.jsonl").write_bytes(data)
    for source in (archive, tmp_path / "files.jsonl"):
        got = list(filelist.manifest_entries(str(source)))
        assert [entry for entry, _where in got] == entries
        assert got[1][1].endswith("files.jsonl line 2")
        files = filelist.FileList().write(iter(got))
        assert written(files) == [b"./u/datasets/d1", b"./u/bad\xff\xfe"]
        files.remove()


@pytest.mark.parametrize("content, message", [
    (b'{"path": "a"}\nnot json\n', "line 2 is not a JSON object"),
    (b'["a"]\n', "line 1: expected"),
    (b'{"path": "a", "kind": "socket"}\n', "line 1: expected"),
])
def test_a_bad_list_line_is_named(tmp_path, content, message):
    (tmp_path / "files.jsonl").write_bytes(content)
    with pytest.raises(FerryError, match=message):
        list(filelist.manifest_entries(str(tmp_path / "files.jsonl")))


def test_a_zip_without_a_file_list_or_no_file_is_refused(tmp_path):
    with zipfile.ZipFile(str(tmp_path / "other.zip"), "w") as out:
        out.writestr("DataSets", b"[]")
    with pytest.raises(FerryError, match="has no member files.jsonl"):
        list(filelist.manifest_entries(str(tmp_path / "other.zip")))
    with pytest.raises(FerryError, match="cannot read the file list"):
        list(filelist.manifest_entries(str(tmp_path / "none.jsonl")))
