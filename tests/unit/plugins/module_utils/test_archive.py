# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import hashlib
import io
import os
import stat
import tarfile

import pytest

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
