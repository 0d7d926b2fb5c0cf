# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import hashlib
import io
import os
import stat
import subprocess
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.ferry.migrate.plugins.module_utils.core import archive
from ansible_collections.ferry.migrate.plugins.module_utils.core.archive import (
    GzipCheckingReader,
    GzipReader,
    HashingReader,
    SafeExtractor,
    iter_members,
    open_tar_stream,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError


def make_tar(members):
    """members: list of (TarInfo fields dict, data or None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for fields, data in members:
            info = tarfile.TarInfo(fields.pop("name"))
            for key, value in fields.items():
                setattr(info, key, value)
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def extract(data, root, dry_run=False, min_free=0):
    extractor = SafeExtractor(str(root), dry_run=dry_run, min_free=min_free)
    tar = open_tar_stream(io.BytesIO(data), "test.tar")
    return [extractor.extract_member(tar, member, "test.tar") for member in iter_members(tar, "test.tar")]


def test_hashing_reader_digests_everything_read():
    data = os.urandom(3 << 20)
    reader = HashingReader(io.BytesIO(data))
    reader.read(1000)
    reader.drain()
    assert reader.hexdigest() == hashlib.md5(data).hexdigest()
    assert reader.bytes_read == len(data)


def test_gzip_reader_handles_concatenated_members_and_zero_padding():
    data = gzip.compress(b"first\n") + gzip.compress(b"second\n") + b"\0" * 512
    assert GzipReader(io.BytesIO(data), "x.gz").read() == b"first\nsecond\n"


def test_gzip_reader_bounds_output_of_a_bomb():
    bomb = gzip.compress(b"\0" * (64 << 20))
    reader = GzipReader(io.BytesIO(bomb), "bomb.gz")
    assert len(reader.read(1000)) == 1000
    assert len(reader._buffer) <= (1 << 20)


def test_gzip_reader_detects_crc_mismatch():
    data = bytearray(gzip.compress(b"hello world" * 1000))
    data[-8] ^= 0xFF  # CRC32 in the trailer
    with pytest.raises(FerryError, match="x.gz: corrupt gzip data"):
        GzipReader(io.BytesIO(bytes(data)), "x.gz").read()


def test_gzip_reader_detects_corruption_in_the_middle():
    data = bytearray(gzip.compress(os.urandom(1 << 16) + b"a" * (1 << 16)))
    for offset in range(len(data) // 2, len(data) // 2 + 64):
        data[offset] ^= 0x55
    with pytest.raises(FerryError, match="corrupt gzip data"):
        GzipReader(io.BytesIO(bytes(data)), "x.gz").read()


def test_gzip_reader_detects_truncation():
    data = gzip.compress(os.urandom(100000))
    with pytest.raises(FerryError, match="x.gz: gzip data is truncated"):
        GzipReader(io.BytesIO(data[: len(data) // 2]), "x.gz").read()


def test_gzip_checking_reader_passes_bytes_through_and_checks():
    data = gzip.compress(b"payload" * 10000)
    reader = GzipCheckingReader(io.BytesIO(data), "dump.sql.gz")
    assert b"".join(iter(lambda: reader.read(4096), b"")) == data
    broken = GzipCheckingReader(io.BytesIO(data[:-4]), "dump.sql.gz")
    with pytest.raises(FerryError, match="dump.sql.gz"):
        while broken.read(4096):
            pass


def test_extracts_files_dirs_and_inside_links(tmp_path):
    data = make_tar([
        ({"name": "d", "type": tarfile.DIRTYPE, "mode": 0o755}, None),
        ({"name": "d/f.txt", "mode": 0o640, "mtime": 1000000000}, b"content"),
        ({"name": "d/link", "type": tarfile.SYMTYPE, "linkname": "f.txt"}, None),
        ({"name": "hard", "type": tarfile.LNKTYPE, "linkname": "d/f.txt"}, None),
    ])
    assert extract(data, tmp_path) == ["d", "d/f.txt", "d/link", "hard"]
    assert (tmp_path / "d" / "f.txt").read_bytes() == b"content"
    assert os.readlink(str(tmp_path / "d" / "link")) == "f.txt"
    assert (tmp_path / "hard").read_bytes() == b"content"
    assert stat.S_IMODE(os.stat(str(tmp_path / "d" / "f.txt")).st_mode) == 0o640
    assert os.stat(str(tmp_path / "d" / "f.txt")).st_mtime == 1000000000


def test_setuid_setgid_and_sticky_bits_are_dropped(tmp_path):
    data = make_tar([({"name": "tool", "mode": 0o7755}, b"#!/bin/sh\n")])
    extract(data, tmp_path)
    assert stat.S_IMODE(os.stat(str(tmp_path / "tool")).st_mode) == 0o755


@pytest.mark.parametrize("fields, data, message", [
    ({"name": "/etc/cron.d/evil"}, b"x", "absolute path"),
    ({"name": "a/../../evil"}, b"x", r"outside the destination \(\.\.\)"),
    ({"name": "../evil"}, b"x", r"outside the destination \(\.\.\)"),
    ({"name": "l", "type": tarfile.SYMTYPE, "linkname": "../../etc/passwd"}, None, "symlink .* points outside"),
    ({"name": "l", "type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, None, "symlink .* points outside"),
    ({"name": "h", "type": tarfile.LNKTYPE, "linkname": "../../etc/passwd"}, None, "hard link .* points outside"),
    ({"name": "h", "type": tarfile.LNKTYPE, "linkname": "/etc/passwd"}, None, "hard link .* points outside"),
    ({"name": "h", "type": tarfile.LNKTYPE, "linkname": "not-extracted"}, None, "does not point to a file extracted"),
    ({"name": "dev", "type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}, None, "device file"),
    ({"name": "blk", "type": tarfile.BLKTYPE, "devmajor": 8, "devminor": 0}, None, "device file"),
    ({"name": "fifo", "type": tarfile.FIFOTYPE}, None, "FIFO"),
])
def test_dangerous_members_are_refused_and_nothing_written(tmp_path, fields, data, message):
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(FerryError, match=message):
        extract(make_tar([fields, data] and [(fields, data)]), root)
    assert os.listdir(str(root)) == []
    assert os.listdir(str(tmp_path)) == ["root"]


def test_paths_through_an_archive_symlink_are_refused(tmp_path):
    data = make_tar([
        ({"name": "sub", "type": tarfile.DIRTYPE}, None),
        ({"name": "l", "type": tarfile.SYMTYPE, "linkname": "sub"}, None),
        ({"name": "l/f", "mode": 0o644}, b"x"),
    ])
    with pytest.raises(FerryError, match="goes through a symlink"):
        extract(data, tmp_path)


def test_dry_run_checks_without_writing(tmp_path):
    good = make_tar([({"name": "a/b", "mode": 0o644}, b"x" * 100)])
    assert extract(good, tmp_path, dry_run=True) == ["a/b"]
    assert os.listdir(str(tmp_path)) == []
    with pytest.raises(FerryError, match="absolute path"):
        extract(make_tar([({"name": "/x"}, b"x")]), tmp_path, dry_run=True)


def test_refuses_a_file_that_would_eat_the_reserved_space(tmp_path, monkeypatch):
    # A fixed reading: the real free space moves while parallel tests write and delete files.
    monkeypatch.setattr(archive, "free_bytes", lambda _path: 1 << 30)
    data = make_tar([({"name": "big"}, b"x" * 4096)])
    with pytest.raises(FerryError, match="not enough free space .* for big"):
        extract(data, tmp_path, min_free=(1 << 30) - 4095)
    assert not (tmp_path / "big").exists()


def test_truncated_tar_names_the_archive(tmp_path):
    data = make_tar([({"name": "f"}, os.urandom(100000))])
    with pytest.raises(FerryError, match="test.tar"):
        try:
            extract(data[:50000], tmp_path)
        except tarfile.TarError as exc:  # pragma: no cover - the extractor must not leak these
            pytest.fail("raw tarfile error leaked: %s" % exc)


# -- the end of a tar: a cut at (or inside) a header is not the end of the archive -------------------------------
def listing_of(data, how, name="x.tar"):
    """(name, content) of every member, read the way the collection reads tars: ``stream`` (open_tar_stream),
    ``seekable`` (tarfile.open "r:", as bundle_check reads the outer bundle) or ``gzip`` (``data`` gzip'd, read
    through GzipReader). Content is read through open_member, so a cut inside data is found too."""
    if how == "gzip":
        tar = open_tar_stream(GzipReader(io.BytesIO(gzip.compress(data)), name), name)
    elif how == "stream":
        tar = open_tar_stream(io.BytesIO(data), name)
    else:
        try:
            tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:")
        except tarfile.TarError as exc:  # what bundle_check does with the outer bundle's first header
            raise FerryError("%s is not a tar archive or is truncated (%s)" % (name, exc))
    return [(member.name, archive.open_member(tar, member, name).read() if member.isreg() else None)
            for member in iter_members(tar, name)]


def end_offset(data):
    """Where the end-of-archive block starts (what follows the last member), as tarfile finds it."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        tar.getmembers()
        return tar.offset


def assert_cut(data, cut, how, expected):
    """A cut before the end of the first end-of-archive block is an error naming the archive; any cut after it
    lists every member (a lone zero block: nothing can be missing after it, and GNU tar takes it too)."""
    if cut >= end_offset(data) + tarfile.BLOCKSIZE:
        assert listing_of(data[:cut], how) == expected
    else:
        with pytest.raises(FerryError, match=r"x\.tar"):
            listing_of(data[:cut], how)


HOWS = ["stream", "seekable", "gzip"]
NAMES = st.sampled_from(["a", "d/" + "n" * 97, "d/" + "n" * 98, "d/" + "n" * 99, "d/" + "l" * 150, "caf\xe9"])


@settings(max_examples=150, deadline=None)
@given(members=st.lists(st.tuples(NAMES, st.sampled_from([0, 1, 511, 512, 513, 1024, 3000, 9216, 9728, 10240])),
                        max_size=4),
       tar_format=st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]), where=st.floats(0, 1),
       how=st.sampled_from(HOWS))
def test_a_tarfile_archive_cut_anywhere_before_its_end_block_is_refused(members, tar_format, where, how):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tar_format) as tar:
        for position, (name, size) in enumerate(members):
            info = tarfile.TarInfo("%d/%s" % (position, name))
            info.size = size
            tar.addfile(info, io.BytesIO(b"%d" % position * size))
    data = buf.getvalue()
    expected = [("%d/%s" % (position, name), b"%d" % position * size) for position, (name, size) in enumerate(members)]
    assert listing_of(data, how) == expected
    end = end_offset(data)
    for cut in (int(where * len(data)), end, end + tarfile.BLOCKSIZE - 1, end + tarfile.BLOCKSIZE):
        assert_cut(data, cut, how, expected)


@pytest.fixture(scope="module")
def gnu_tree(tmp_path_factory):
    """Files for GNU tar: a long name (GNU LongLink or pax header), an empty file, whole and odd blocks."""
    root = tmp_path_factory.mktemp("gnu")
    sub = root / "d"
    sub.mkdir()
    for name, size in (("a", 1000), ("empty", 0), ("block", 512), ("L" * 150, 700), ("z", 9 * 512)):
        (sub / name).write_bytes(os.urandom(size))
    return root


GNU_TARS = {
    "gnu": [["tar", "cf", "{out}", "d"]],
    "pax": [["tar", "--format=pax", "-cf", "{out}", "d"]],
    "ustar": [["tar", "--format=ustar", "-cf", "{out}", "d/a", "d/empty", "d/block", "d/z"]],
    "v7": [["tar", "--format=v7", "-cf", "{out}", "d/a", "d/block"]],
    "blocking-factor-1": [["tar", "-b", "1", "-cf", "{out}", "d"]],  # no padding after the two end blocks
    "appended": [["tar", "cf", "{out}", "d/a"], ["tar", "-rf", "{out}", "d/z"], ["tar", "-rf", "{out}", "d/block"]],
    "empty": [["tar", "cf", "{out}", "--files-from", "/dev/null"]],
}


def gnu_tar(tree, commands):
    out = str(tree / "out.tar")
    if os.path.exists(out):
        os.unlink(out)
    for command in commands:
        subprocess.run([part.format(out=out) for part in command], cwd=str(tree), check=True)
    with open(out, "rb") as handle:
        data = handle.read()
    names = subprocess.run(["tar", "-tf", out], check=True, stdout=subprocess.PIPE).stdout.decode().splitlines()
    return data, [name.rstrip("/") for name in names]


@pytest.mark.parametrize("kind", sorted(GNU_TARS))
def test_gnu_tar_archives_are_read_whole_and_their_cuts_refused(gnu_tree, kind):
    data, names = gnu_tar(gnu_tree, GNU_TARS[kind])
    for how in HOWS:
        expected = listing_of(data, how)
        assert [name for name, _content in expected] == names
        files = dict(expected)
        assert all(files[name] == (gnu_tree / name).read_bytes() for name in names if files[name] is not None)
        end = end_offset(data)
        for cut in list(range(0, end + 2 * tarfile.BLOCKSIZE, tarfile.BLOCKSIZE)) + [end - 1, end + 1, len(data)]:
            assert_cut(data, max(cut, 0), how, expected)


def test_gnu_tar_gzip_output_is_read_whole(gnu_tree):
    out = gnu_tree / "out.tgz"
    subprocess.run(["tar", "czf", str(out), "d"], cwd=str(gnu_tree), check=True)
    reader = GzipReader(open(str(out), "rb"), "out.tgz")  # pylint: disable=consider-using-with
    tar = open_tar_stream(reader, "out.tgz")
    names = [member.name for member in iter_members(tar, "out.tgz")]
    reader.drain()
    assert sorted(names) == sorted(["d", "d/a", "d/empty", "d/block", "d/" + "L" * 150, "d/z"])


@pytest.mark.parametrize("how", HOWS)
def test_a_corrupt_header_is_not_taken_for_the_end(how):
    data = bytearray(make_tar([({"name": "first"}, b"1" * 600), ({"name": "second"}, b"2")]))
    data[1536 + 10] ^= 0x01  # in the second member's header: its checksum no longer matches
    with pytest.raises(FerryError, match=r"x\.tar is corrupt: the block at byte 1536 is neither a member header"):
        listing_of(bytes(data), how)


@pytest.mark.parametrize("how", HOWS)
def test_a_lone_zero_block_followed_by_members_is_refused(how):
    """GNU tar stops there with a warning ("A lone zero block") and exit status 0: the members after it would be
    lost without a word."""
    first = make_tar([({"name": "first"}, b"1")])
    second = make_tar([({"name": "second"}, b"2")])
    data = first[:1024] + b"\0" * 512 + second
    with pytest.raises(FerryError, match=r"x\.tar is corrupt: a lone zero block at byte 1024 is followed by data"):
        listing_of(data, how)
    assert listing_of(first[:1024] + b"\0" * 1024 + second, how) == [("first", b"1")]  # a whole end: tar -t too


@pytest.mark.parametrize("how", HOWS)
def test_an_archive_of_only_end_blocks_is_empty(how):
    assert listing_of(b"\0" * 10240, how) == []
    assert listing_of(b"\0" * 512, how) == []
    with pytest.raises(FerryError, match=r"x\.tar"):
        listing_of(b"\0" * 511, how)
