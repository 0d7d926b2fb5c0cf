# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""overlay_apply's engine over local overlay archives made here: every file type comes back (content, modes with
setuid, owners, symlinks as stored, hard links, holes), bad reports and bad archives are refused before anything
is written (a sentinel directory outside the root stays as it was), a rerun changes nothing and check mode writes
nothing."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import io
import json
import os
import stat
import tarfile
import tempfile

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import Stopped
from ansible_collections.ferry.migrate.plugins.module_utils.scan import apply, rootfs
from ansible_collections.ferry.migrate.plugins.module_utils.scan.report import ReportWriter, name_fields
from ansible_collections.ferry.migrate.plugins.modules import overlay_apply

MTIME = 1700000000123456789
SPARSE_SIZE = 1 << 20


def sha(data):
    return hashlib.sha256(data).hexdigest()


def record(path, kind, mode, uid=0, gid=0, owner="root", group="root", **extra):
    raw = path if isinstance(path, bytes) else path.encode("utf-8")
    fields = dict(name_fields("path", raw), type=kind, mode=mode, uid=uid, gid=gid, owner=owner, group=group,
                  mtime_ns=MTIME, package=None, change="added")
    fields.update(extra)
    return fields


def regular(path, data, mode=0o644, **extra):
    return record(path, "file", mode, size=len(data), sha256=sha(data), **extra)


def symlink(path, target, **extra):
    return record(path, "symlink", 0o777, size=len(target), **dict(name_fields("target", target.encode()), **extra))


def deleted(path):
    return dict(name_fields("path", path.encode()), package="base-files", change="deleted")


def make_archive(tmp_path, records, objects, profile=None, extra=(), packages=(), name="overlay.tar",
                 end=True, object_data=None):
    """A local overlay archive: report.jsonl.gz, objects/<sha256> of ``objects``, then ``extra`` members
    ((TarInfo, bytes or None)). ``object_data``: sha -> bytes to store instead of the real content."""
    report = tmp_path / (name + ".report.jsonl.gz")
    with ReportWriter(str(report)) as writer:
        writer.header({"created": "2026-12-06T10:00:00Z", "root": "/", "system": {"family": "debian"},
                       "install_profile": profile or {}, "options": {}})
        for package in packages:
            writer.package(package)
        for item in records:
            writer.file(item)
        writer.close({"files": len(records)})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(str(report), arcname="report.jsonl.gz")
        for data in objects:
            stored = (object_data or {}).get(sha(data), data)
            info = tarfile.TarInfo("objects/" + sha(data))
            info.size = len(stored)
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(stored))
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    data = buffer.getvalue()
    if not end:
        data = data.rstrip(b"\0")
        data += b"\0" * (-len(data) % 512)
    path = tmp_path / name
    path.write_bytes(data)
    return path


def params(tmp_path, src=None, **extra):
    values = dict((key, spec.get("default")) for key, spec in overlay_apply.argument_spec().items())
    values.update(root=str(tmp_path / "root"), src=src and str(src), state_dir=str(tmp_path / "state"),
                  users=False, timezone=False)
    values.update(extra)
    return values


class Sentinel:
    """A directory outside the root that nothing may touch, and a check that nothing did."""

    def __init__(self, where):
        self.where = where
        where.mkdir()
        (where / "passwd").write_bytes(b"untouched\n")

    def __str__(self):
        return str(self.where)

    def unchanged(self):
        assert sorted(os.listdir(self.where)) == ["passwd"]
        assert (self.where / "passwd").read_bytes() == b"untouched\n"


@pytest.fixture
def sentinel(tmp_path):
    return Sentinel(tmp_path / "outside")


def tree_listing(root):
    found = []
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            found.append(os.path.relpath(os.path.join(directory, name), root))
    return sorted(found)


# -- every type comes back ---------------------------------------------------------------------------------
SETUID = b"#!/bin/sh\necho setuid\n"
CONFIG = b"listen 80;\n"
LINKED = b"one inode, two names\n"
SPARSE = b"head" + b"\0" * (SPARSE_SIZE - 8) + b"tail"
NEWLINE = b"a name with a newline\n"
LATIN = b"latin-1 name\n"


def full_records():
    return [
        record("etc", "dir", 0o755),
        record("etc/app", "dir", 0o2750, uid=4321, gid=4322, owner=None, group=None),
        regular("etc/app/app.conf", CONFIG, 0o640, uid=4321, gid=4322, owner="ghost", group="ghosts"),
        regular("etc/app/copy.conf", CONFIG, 0o600),
        record("usr", "dir", 0o755),
        record("usr/local", "dir", 0o755),
        record("usr/local/bin", "dir", 0o755),
        regular("usr/local/bin/tool", SETUID, 0o4755),
        regular("usr/local/bin/group-tool", SETUID + b"#", 0o2711),
        symlink("usr/local/bin/relative", "tool"),
        symlink("usr/local/bin/absolute", "/etc/app/app.conf"),
        symlink("usr/local/bin/dangling", "../nowhere/at/all"),
        regular("usr/local/bin/first", LINKED, 0o644, link_group=1),
        regular("usr/local/bin/second", LINKED, 0o644, link_group=1),
        regular("usr/local/bin/holes", SPARSE, 0o644, sparse=True),
        regular("usr/local/bin/empty", b"", 0o644),
        regular(b"usr/local/bin/new\nline", NEWLINE, 0o644),
        regular(b"usr/local/bin/caf\xe9", LATIN, 0o644),
        record("srv", "dir", 0o1777),
    ]


FULL_OBJECTS = [CONFIG, SETUID, SETUID + b"#", LINKED, SPARSE, NEWLINE, LATIN]


def test_every_type_comes_back(tmp_path):
    src = make_archive(tmp_path, full_records(), FULL_OBJECTS)
    result = apply.run(params(tmp_path, src), False)
    root = tmp_path / "root"
    assert result["changed"] is True and result["drift_count"] == 0, result["drift"]
    assert result["applied"]["objects"] == len(FULL_OBJECTS)
    assert (root / "etc/app/app.conf").read_bytes() == CONFIG
    assert (root / "etc/app/copy.conf").read_bytes() == CONFIG
    conf = os.lstat(root / "etc/app/app.conf")
    assert (conf.st_uid, conf.st_gid, stat.S_IMODE(conf.st_mode)) == (4321, 4322, 0o640)  # numeric: unknown names
    assert stat.S_IMODE(os.lstat(root / "etc/app").st_mode) == 0o2750
    assert stat.S_IMODE(os.lstat(root / "usr/local/bin/tool").st_mode) == 0o4755
    assert stat.S_IMODE(os.lstat(root / "usr/local/bin/group-tool").st_mode) == 0o2711
    assert stat.S_IMODE(os.lstat(root / "srv").st_mode) == 0o1777
    assert os.readlink(root / "usr/local/bin/relative") == "tool"
    assert os.readlink(root / "usr/local/bin/absolute") == "/etc/app/app.conf"
    assert os.readlink(root / "usr/local/bin/dangling") == "../nowhere/at/all"
    first, second = os.lstat(root / "usr/local/bin/first"), os.lstat(root / "usr/local/bin/second")
    assert first.st_ino == second.st_ino and first.st_nlink == 2
    holes = os.lstat(root / "usr/local/bin/holes")
    assert holes.st_size == SPARSE_SIZE and holes.st_blocks * 512 < SPARSE_SIZE // 4
    assert (root / "usr/local/bin/holes").read_bytes() == SPARSE
    assert (root / "usr/local/bin/empty").read_bytes() == b""
    assert open(os.path.join(os.fsencode(root), b"usr/local/bin/new\nline"), "rb").read() == NEWLINE
    assert open(os.path.join(os.fsencode(root), b"usr/local/bin/caf\xe9"), "rb").read() == LATIN
    for relative in ("etc/app/app.conf", "usr/local/bin/tool", "usr/local/bin/absolute", "etc/app", "usr/local"):
        assert os.lstat(root / relative).st_mtime_ns == MTIME, relative
    assert not [name for name in tree_listing(root) if "ferry-tmp" in name]


def test_a_rerun_changes_nothing(tmp_path):
    src = make_archive(tmp_path, full_records(), FULL_OBJECTS)
    apply.run(params(tmp_path, src), False)
    root = tmp_path / "root"
    before = dict((name, os.lstat(root / name)) for name in tree_listing(root))
    again = apply.run(params(tmp_path, src), False)
    assert again["changed"] is False and again["decision"] == "skip"
    forced = apply.run(params(tmp_path, src, force=True), False)  # every path compared with its record
    assert forced["changed"] is False and forced["decision"] == "run" and forced["drift_count"] == 0
    assert forced["applied"]["unchanged"] == len(full_records())
    after = dict((name, os.lstat(root / name)) for name in tree_listing(root))
    assert sorted(after) == sorted(before)
    for name, info in before.items():
        assert (after[name].st_ino, after[name].st_ctime_ns) == (info.st_ino, info.st_ctime_ns), name


def test_a_rerun_mends_only_what_differs(tmp_path):
    src = make_archive(tmp_path, full_records(), FULL_OBJECTS)
    apply.run(params(tmp_path, src), False)
    root = tmp_path / "root"
    os.unlink(root / "usr/local/bin/tool")
    os.chmod(root / "etc/app/copy.conf", 0o666)
    os.unlink(root / "usr/local/bin/second")
    kept = os.lstat(root / "etc/app/app.conf")
    result = apply.run(params(tmp_path, src, force=True), False)
    assert result["changed"] is True and result["drift_count"] == 0
    assert result["applied"]["files"] == 1 and result["applied"]["objects"] == 1
    assert result["applied"]["metadata"] == 1 and result["applied"]["hardlinks"] == 1
    assert stat.S_IMODE(os.lstat(root / "usr/local/bin/tool").st_mode) == 0o4755
    assert os.lstat(root / "usr/local/bin/second").st_ino == os.lstat(root / "usr/local/bin/first").st_ino
    assert os.lstat(root / "etc/app/app.conf").st_ino == kept.st_ino


def test_check_mode_writes_nothing(tmp_path):
    src = make_archive(tmp_path, full_records() + [deleted("etc/gone")], FULL_OBJECTS,
                       profile={"timezone": "Europe/Paris"})
    (tmp_path / "root/etc").mkdir(parents=True)
    (tmp_path / "root/etc/gone").write_bytes(b"x")
    result = apply.run(params(tmp_path, src, timezone=True), True)
    assert result["changed"] is True
    assert result["applied"]["files"] == 9 and result["applied"]["hardlinks"] == 1 and result["applied"]["deleted"] == 1
    assert result["timezone"]["changed"] is True
    assert tree_listing(tmp_path / "root") == ["etc", "etc/gone"]
    assert not (tmp_path / "state").exists()


def test_check_mode_of_an_applied_root_predicts_no_change(tmp_path):
    src = make_archive(tmp_path, full_records(), FULL_OBJECTS)
    apply.run(params(tmp_path, src), False)
    result = apply.run(params(tmp_path, src, force=True), True)
    assert result["changed"] is False and result["changes"] == []


# -- refused before anything is written ----------------------------------------------------------------------
@pytest.mark.parametrize("records, message", [
    ([regular("/etc/passwd", b"x\n")], "etc/passwd is absolute"),
    ([regular("etc/../../outside/passwd", b"x\n")], "goes up with '..'"),
    ([regular("..", b"x\n")], "goes up with '..'"),
    ([regular("etc/pass\0wd", b"x\n")], "holds a NUL byte"),
    ([regular("etc//passwd", b"x\n")], "not a normalised relative path"),
    ([regular("", b"x\n")], "empty path"),
    ([symlink("lnk", "/etc"), regular("lnk/passwd", b"x\n")], "lnk/passwd goes through lnk, a symlink the report"),
    ([regular("lnk/passwd", b"x\n"), symlink("lnk", "../outside")], "lnk/passwd goes through lnk"),
    ([symlink("lnk", "../outside"), deleted("lnk/passwd")], "lnk/passwd goes through lnk"),
    ([record("dev/null", "char", 0o666)], "type 'char'"),
    ([regular("etc/x", b"x\n", mode=0o17777)], "bad mode"),
    ([dict(regular("etc/x", b"x\n"), sha256="nope")], "has no sha256"),
])
def test_a_bad_report_path_is_refused_before_anything_is_written(tmp_path, sentinel, records, message):
    first = [regular("aaa-written-first", b"first\n")]
    src = make_archive(tmp_path, first + records, [b"first\n", b"x\n"])
    with pytest.raises(FerryError, match=message):
        apply.run(params(tmp_path, src), False)
    assert not (tmp_path / "root").exists()  # not even the root is made
    sentinel.unchanged()


def test_a_symlink_already_in_the_root_is_never_followed(tmp_path, sentinel):
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(str(sentinel), root / "etc")
    records = [regular("aaa", b"first\n"), regular("etc/passwd", b"x\n")]
    src = make_archive(tmp_path, records, [b"first\n", b"x\n"])
    with pytest.raises(FerryError, match="etc/passwd: etc in .* is a symlink: refused"):
        apply.run(params(tmp_path, src), False)
    assert os.listdir(root) == ["etc"]
    sentinel.unchanged()


def test_a_deleted_record_under_a_symlink_of_the_root_is_refused(tmp_path, sentinel):
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(str(sentinel), root / "etc")
    src = make_archive(tmp_path, [deleted("etc/passwd")], [])
    with pytest.raises(FerryError, match="is a symlink: refused"):
        apply.run(params(tmp_path, src), False)
    sentinel.unchanged()


def _member(name, kind=tarfile.REGTYPE, linkname="", data=b"x"):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


@pytest.mark.parametrize("member, message", [
    (_member("../outside/passwd"), r"points outside the destination \(..\)"),
    (_member("/etc/passwd"), "has an absolute path"),
    (_member("objects/" + "a" * 64, tarfile.SYMTYPE, "/etc/passwd"), "is a symlink"),
    (_member("objects/" + "b" * 64, tarfile.LNKTYPE, "report.jsonl.gz"), "is a hard link"),
    (_member("objects/" + "c" * 64, tarfile.CHRTYPE), "is a device file"),
    (_member("objects/" + "d" * 64, tarfile.FIFOTYPE), "is a FIFO"),
    (_member("objects/" + "e" * 64 + ".0"), "neither report.jsonl.gz"),
    (_member("etc/passwd"), "neither report.jsonl.gz"),
    (_member("report.jsonl.gz"), "neither report.jsonl.gz"),
])
def test_a_bad_archive_member_is_refused_before_anything_is_written(tmp_path, sentinel, member, message):
    src = make_archive(tmp_path, [regular("etc/motd", b"x\n")], [b"x\n"], extra=[member])
    (tmp_path / "root").mkdir()
    with pytest.raises(FerryError, match=message):
        apply.run(params(tmp_path, src), False)
    assert os.listdir(tmp_path / "root") == []
    sentinel.unchanged()


def test_an_archive_without_its_end_block_is_refused(tmp_path):
    src = make_archive(tmp_path, [regular("etc/motd", b"x\n")], [b"x\n"], end=False)
    with pytest.raises(FerryError, match="truncated"):
        apply.run(params(tmp_path, src), False)
    assert not (tmp_path / "root/etc").exists()


def test_a_missing_object_is_refused_before_anything_is_written(tmp_path):
    src = make_archive(tmp_path, [regular("aaa", b"first\n"), regular("etc/motd", b"x\n")], [b"first\n"])
    with pytest.raises(FerryError, match="object %s of etc/motd .* is not in" % sha(b"x\n")):
        apply.run(params(tmp_path, src), False)
    assert tree_listing(tmp_path / "root") == []


def test_an_object_that_does_not_match_its_sha256_is_refused(tmp_path):
    src = make_archive(tmp_path, [regular("etc/motd", b"good\n")], [b"good\n"], object_data={sha(b"good\n"): b"evil\n"})
    with pytest.raises(FerryError, match="does not match its sha256"):
        apply.run(params(tmp_path, src), False)
    assert tree_listing(tmp_path / "root") == ["etc"]  # the directory, never the file nor its temporary name


def test_a_source_giving_more_bytes_than_the_report_says_is_refused_before_writing_them(tmp_path):
    """A damaged or hostile store part whose member is longer than the object: nothing past the report's size is
    written (a disk is not filled by a source that lies)."""
    tree = rootfs.Tree(str(tmp_path / "root"))
    try:
        entry = apply.Entry(b"big.bin", dict(regular("big.bin", b"x" * 10), type="file"))
        writer = rootfs.ObjectWriter(sha(b"x" * 10), 10, [entry]).start(tree)
        with pytest.raises(FerryError, match="has 1048576 byte.s. at offset 0, past its 10 byte.s. in the report"):
            writer.feed(0, io.BytesIO(b"x" * (1 << 20)), 1 << 20, lambda _n: None)
        with pytest.raises(FerryError, match="at offset -1"):
            writer.feed(-1, io.BytesIO(b"x"), 1, lambda _n: None)
        writer.abort()
    finally:
        tree.close()
    assert tree_listing(tmp_path / "root") == []


def test_a_target_without_room_for_the_contents_fails_before_writing(tmp_path, monkeypatch):
    src = make_archive(tmp_path, [regular("etc/motd", b"good\n")], [b"good\n"])
    monkeypatch.setattr("ansible_collections.ferry.migrate.plugins.module_utils.core.staging.free_bytes",
                        lambda _path: 3)
    with pytest.raises(FerryError, match="not enough free space in .*the 1 file content.s. of the scan needs 5 B") as caught:
        apply.run(params(tmp_path, src), False)
    assert "min_free_mb" not in str(caught.value)  # overlay_apply has no such option
    assert not (tmp_path / "root" / "etc" / "motd").exists()


# -- owners, users, deletes, timezone, network ------------------------------------------------------------------
def test_owners_are_mapped_by_name_through_the_target_root(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nalice:x:2001:2001::/home/alice:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\nstaff:x:2050:\n")
    records = [regular("srv-alice", b"a\n", uid=1001, gid=50, owner="alice", group="staff"),
               regular("srv-ghost", b"g\n", uid=1002, gid=1003, owner="ghost", group="ghosts")]
    src = make_archive(tmp_path, records, [b"a\n", b"g\n"])
    assert apply.run(params(tmp_path, src), False)["drift_count"] == 0
    assert (os.lstat(root / "srv-alice").st_uid, os.lstat(root / "srv-alice").st_gid) == (2001, 2050)
    assert (os.lstat(root / "srv-ghost").st_uid, os.lstat(root / "srv-ghost").st_gid) == (1002, 1003)


def test_users_and_groups_are_created_with_their_ids_under_a_prefix(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nbob:x:3000:3000::/home/bob:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\n")
    profile = {"groups": [{"name": "devs", "gid": 2500, "members": ["carol"]}],
               "users": [{"name": "carol", "uid": 2600, "gid": 2500, "gecos": "Carol C", "home": "/home/carol",
                          "shell": "/bin/bash", "groups": ["devs"]},
                         {"name": "bob", "uid": 1234, "gid": 2500, "home": "/home/bob", "shell": "/bin/sh"},
                         {"name": "bad:name", "uid": 2700, "gid": 2500}]}
    records = [regular("home-carol", b"c\n", uid=2600, gid=2500, owner="carol", group="devs")]
    src = make_archive(tmp_path, records, [b"c\n"], profile=profile)
    result = apply.run(params(tmp_path, src, users=True), False)
    assert result["users"]["groups"] == ["devs"] and result["users"]["users"] == ["carol"]
    assert result["users"]["existing"] == ["bob"] and result["users"]["failed"][0]["name"] == "bad:name"
    assert "carol:x:2600:2500:Carol C:/home/carol:/bin/bash" in (root / "etc/passwd").read_text()
    assert (root / "etc/shadow").read_text().startswith("carol:!")
    assert "devs:x:2500:carol" in (root / "etc/group").read_text()
    assert os.lstat(root / "home-carol").st_uid == 2600
    assert not (root / "home/carol").exists()


def test_deleted_records_are_removed_inside_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "usr/share/doc").mkdir(parents=True)
    (root / "usr/share/doc/gone").write_bytes(b"x")
    (root / "usr/share/doc/full").mkdir()
    (root / "usr/share/doc/full/keep").write_bytes(b"k")
    src = make_archive(tmp_path, [deleted("usr/share/doc/gone"), deleted("usr/share/doc/absent"),
                                  deleted("usr/nowhere/x"), deleted("usr/share/doc/full")], [])
    result = apply.run(params(tmp_path, src), False)
    assert result["applied"]["deleted"] == 2 and result["drift_count"] == 1
    assert result["drift"] == [{"path": "usr/share/doc/full", "fields": ["present"]}]  # not empty: kept
    assert not (root / "usr/share/doc/gone").exists()
    assert (root / "usr/share/doc/full/keep").exists()


def test_timezone_and_dhcp_network(tmp_path):
    interfaces = ("auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet static\n    address 10.0.0.5\n"
                  "    netmask 255.255.255.0\n    gateway 10.0.0.1\n    dns-nameservers 10.0.0.2\n\n"
                  "allow-hotplug eth1\niface eth1 inet dhcp\n")
    records = [record("etc", "dir", 0o755), record("etc/network", "dir", 0o755),
               regular("etc/network/interfaces", interfaces.encode(), 0o644)]
    src = make_archive(tmp_path, records, [interfaces.encode()], profile={"timezone": "Europe/Paris"})
    result = apply.run(params(tmp_path, src, timezone=True, network="dhcp"), False)
    root = tmp_path / "root"
    assert (root / "etc/timezone").read_text() == "Europe/Paris\n"
    assert os.readlink(root / "etc/localtime") == "/usr/share/zoneinfo/Europe/Paris"
    text = (root / "etc/network/interfaces").read_text()
    assert "iface eth0 inet dhcp\n    dns-nameservers 10.0.0.2\n" in text
    assert "address" not in text and "gateway" not in text and "iface eth1 inet dhcp" in text
    assert result["network"]["interfaces"] == ["eth0"]
    assert os.lstat(root / "etc").st_mtime_ns == MTIME  # set after the timezone and network files
    assert result["drift_count"] == 0  # the rewrite is known: the file is as the policy wants it
    again = apply.run(params(tmp_path, src, timezone=True, network="dhcp", force=True), False)
    assert again["timezone"]["changed"] is False and again["network"]["changed"] is False


def test_a_bad_timezone_is_refused(tmp_path):
    src = make_archive(tmp_path, [], [], profile={"timezone": "../../etc/passwd"})
    with pytest.raises(FerryError, match="not a zone name"):
        apply.run(params(tmp_path, src, timezone=True), False)


def test_dhcp_interfaces_keeps_other_stanzas():
    text = "iface br0 inet6 static\n address ::1\nmapping eth2\n address x\n"
    new, names = apply.dhcp_interfaces(text)
    assert new == "iface br0 inet6 dhcp\nmapping eth2\n address x\n" and names == ["br0"]


# -- packages ---------------------------------------------------------------------------------------------------
@pytest.fixture
def fake_apt(tmp_path, monkeypatch):
    """An apt-get on PATH that logs its arguments and fails for the specs listed in FAIL (one a line)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "apt.log"
    fail = tmp_path / "fail"
    fail.write_text("")
    script = bin_dir / "apt-get"
    script.write_text("#!/bin/sh\necho \"$*\" >> %s\nfor a in \"$@\"; do if grep -qxF -- \"$a\" %s; then "
                      "echo \"E: cannot install $a\"; exit 100; fi; done\nexit 0\n" % (log, fail))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (bin_dir, os.environ["PATH"]))
    return log, fail


def package(name, version):
    return {"manager": "dpkg", "name": name, "version": version, "arch": "amd64", "status": "installed"}


def test_packages_install_with_versions_then_fall_back_by_name(fake_apt):
    log, fail = fake_apt
    fail.write_text("ferry-b=2.0\nferry-c=3.0\nferry-c\n")
    result = apply.apply_packages([package("ferry-a", "1.0"), package("ferry-b", "2.0"), package("ferry-c", "3.0")],
                                  "install", False)
    assert result["installed"] == ["ferry-a=1.0"] and result["fallback"] == ["ferry-b"]
    assert [item["name"] for item in result["failed"]] == ["ferry-c"]
    calls = log.read_text().splitlines()
    assert calls[0] == "install -y --no-install-recommends ferry-a=1.0 ferry-b=2.0 ferry-c=3.0"
    assert "install -y --no-install-recommends ferry-b" in calls


def test_packages_all_at_once_when_every_version_is_there(fake_apt):
    log, _fail = fake_apt
    result = apply.apply_packages([package("ferry-a", "1.0"), package("ferry-b", "2:2.0-1")], "install", False)
    assert result["installed"] == ["ferry-a=1.0", "ferry-b=2:2.0-1"]
    assert len(log.read_text().splitlines()) == 1
    assert apply.apply_packages([package("ferry-a", "1.0")], "install", True)["installed"] == ["ferry-a=1.0"]
    assert len(log.read_text().splitlines()) == 1  # check mode runs nothing
    assert apply.apply_packages([package("ferry-a", "1.0")], "skip", False)["skipped"] == 1


def test_packages_already_installed_are_left_alone(fake_apt, monkeypatch):
    log, _fail = fake_apt
    monkeypatch.setattr(apply, "installed_versions", lambda manager: {"ferry-a": "1.0"})
    result = apply.apply_packages([package("ferry-a", "1.0")], "install", False)
    assert result["present"] == 1 and result["installed"] == [] and not log.exists()


def test_packages_install_needs_root_slash(tmp_path):
    src = make_archive(tmp_path, [], [])
    with pytest.raises(FerryError, match="packages=install needs root /"):
        apply.run(params(tmp_path, src, packages="install"), False)


# -- options, STOP, sparse writes ----------------------------------------------------------------------------
@pytest.mark.parametrize("extra, message", [
    ({"url": "http://127.0.0.1:1/"}, "exactly one of url"),
    ({"src": None}, "exactly one of url"),
    ({"src": None, "url": "http://127.0.0.1:1/"}, "url needs instance"),
    ({"src": None, "url": "http://127.0.0.1:1/", "instance": "bad/name"}, "invalid instance"),
    ({"scan": "XYZ"}, "not a scan id"),
    ({"root": ""}, "root is an empty string"),
    ({"src": None, "url": "http://127.0.0.1:1/", "instance": "web", "timeout": 0}, "timeout=0 is out of range"),
])
def test_bad_options_are_refused_before_anything_happens(tmp_path, extra, message):
    with pytest.raises(FerryError, match=message):
        apply.run(params(tmp_path, **dict({"src": tmp_path / "none.tar"}, **extra)), False)
    assert not (tmp_path / "state").exists() and not (tmp_path / "root").exists()


def test_stop_is_honoured_and_the_next_run_goes_on(tmp_path):
    src = make_archive(tmp_path, full_records(), FULL_OBJECTS)
    (tmp_path / "state").mkdir()
    (tmp_path / "state/STOP").write_text("")
    with pytest.raises(Stopped):
        apply.run(params(tmp_path, src), False)
    os.unlink(tmp_path / "state/STOP")
    result = apply.run(params(tmp_path, src), False)
    assert result["decision"] == "resume" and result["drift_count"] == 0


@pytest.mark.parametrize("offset", [0, 1, 4095, 4096, 10000])
def test_holes_are_left_for_zero_blocks_at_any_offset(tmp_path, offset):
    data = b"x" * 5000 + b"\0" * 20000 + b"y" * 3 + b"\0" * 9000
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        rootfs._write_holes(fd, offset, data)
        os.ftruncate(fd, offset + len(data))
    finally:
        os.close(fd)
    content = path.read_bytes()
    assert content[offset:] == data and content[:offset] == b"\0" * offset
    assert os.lstat(path).st_blocks * 512 < len(data) + offset


def test_long_names_get_a_short_temporary_name():
    assert len(rootfs.temp_name(b"n" * 255)) <= 255
    assert rootfs.temp_name(b"motd") == b".motd.ferry-tmp"


# -- the store and scan_upload's archive (a stand-in WebDAV server) -------------------------------------------
BIG = bytes(range(256)) * (10 << 10)  # 2.5 MiB: split into pieces over parts of 1 MiB


def upload(tmp_path, files, **extra):
    from ansible_collections.ferry.migrate.plugins.module_utils.scan import upload as scan_upload
    from tests.support.scan_objects import write_tree_and_report
    src_root = tmp_path / "source"
    report = tmp_path / "report.jsonl.gz"
    write_tree_and_report(src_root, report, files)
    values = dict(report=str(report), src_root=str(src_root), url=None, dest=None, instance=None,
                  part_size=1 << 20, url_username=None, url_password=None, bearer_token=None, validate_certs=True,
                  ca_path=None, timeout=30.0, retries=0, state_dir=str(tmp_path / "upload-state"), step=None,
                  force=False)
    values.update(extra)
    return scan_upload.run(values, False)


def store_params(tmp_path, dav, **extra):
    return params(tmp_path, src=None, url=dav.url, instance="web01", url_username="ferry", url_password="pw",
                  retries=0, **extra)


STORE_FILES = {b"etc/big.bin": BIG, b"etc/small.conf": b"small\n", b"etc/same.conf": b"small\n",
               b"opt/caf\xe9": b"latin\n"}


def test_a_scan_comes_back_from_the_store_with_pieces(tmp_path):
    from tests.support.dav_standin import DavStandin
    with DavStandin(user="ferry", password="pw") as dav:
        uploaded = upload(tmp_path, STORE_FILES, url=dav.url, instance="web01", url_username="ferry",
                          url_password="pw")
        assert uploaded["parts"] >= 3

        def report_gets():
            return len([path for path in dav.methods("GET") if path.endswith("/report.jsonl.gz")])

        predicted = apply.run(store_params(tmp_path, dav), True)
        assert predicted["changed"] is True and predicted["applied"]["objects"] == 3
        assert not (tmp_path / "root").exists() and not (tmp_path / "state").exists()
        assert report_gets() == 1  # read three times, fetched once
        result = apply.run(store_params(tmp_path, dav), False)
        assert result["drift_count"] == 0 and result["applied"]["objects"] == 3
        assert report_gets() == 2
        assert result["scan"]["scan"] == uploaded["scan_id"]
        root = tmp_path / "root"
        assert (root / "etc/big.bin").read_bytes() == BIG
        assert (root / "etc/same.conf").read_bytes() == b"small\n"
        assert open(os.path.join(os.fsencode(root), b"opt/caf\xe9"), "rb").read() == b"latin\n"
        gets = len(dav.methods("GET"))
        again = apply.run(store_params(tmp_path, dav, force=True), False)
        assert again["changed"] is False
        assert not [path for path in dav.methods("GET")[gets:] if path.endswith(".tar")]  # no part read again


def test_no_temporary_file_for_the_store_report_is_a_clear_error(tmp_path, monkeypatch):
    from tests.support.dav_standin import DavStandin
    with DavStandin(user="ferry", password="pw") as dav:
        upload(tmp_path, {b"etc/a": b"a\n"}, url=dav.url, instance="web01", url_username="ferry", url_password="pw")

        def no_space(*_args, **_kwargs):
            raise OSError(28, "No space left on device")
        monkeypatch.setattr(tempfile, "TemporaryFile", no_space)
        with pytest.raises(FerryError, match=r"cannot keep a copy of .*web01 scan [0-9a-f]+ report in .*: .*No space left"):
            apply.run(store_params(tmp_path, dav), False)
        assert not (tmp_path / "root").exists()


def test_a_store_report_that_is_not_the_recorded_one_is_refused(tmp_path):
    from tests.support.dav_standin import DavStandin
    with DavStandin(user="ferry", password="pw") as dav:
        uploaded = upload(tmp_path, {b"etc/a": b"a\n"}, url=dav.url, instance="web01", url_username="ferry",
                          url_password="pw")
        name = "/web01/scans/%s/report.jsonl.gz" % uploaded["scan_id"]
        other = tmp_path / "other"
        other.mkdir()
        upload(other, {b"etc/b": b"b\n"}, dest=str(other / "x.tar"))
        dav.files[name] = (other / "report.jsonl.gz").read_bytes()
        with pytest.raises(FerryError, match="its sha256 is .* the store's record says"):
            apply.run(store_params(tmp_path, dav), False)
        assert tree_listing(tmp_path / "root") == []


def test_an_empty_store_is_named(tmp_path):
    from tests.support.dav_standin import DavStandin
    with DavStandin(user="ferry", password="pw") as dav:
        with pytest.raises(FerryError, match="holds no complete scan"):
            apply.run(store_params(tmp_path, dav), False)


def test_scan_uploads_local_archive_is_applied(tmp_path):
    upload(tmp_path, STORE_FILES, dest=str(tmp_path / "overlay.tar"))
    result = apply.run(params(tmp_path, tmp_path / "overlay.tar"), False)
    assert result["drift_count"] == 0 and result["applied"]["files"] == 4
    assert (tmp_path / "root/etc/big.bin").read_bytes() == BIG


def test_a_bad_member_in_a_store_part_is_refused(tmp_path, sentinel):
    from tests.support.dav_standin import DavStandin
    with DavStandin(user="ferry", password="pw") as dav:
        upload(tmp_path, {b"etc/a": b"a\n"}, url=dav.url, instance="web01", url_username="ferry", url_password="pw")
        part = [name for name in dav.files if name.endswith("part-00001.tar")][0]
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo("objects/" + sha(b"a\n"))
            info.type = tarfile.SYMTYPE
            info.linkname = str(sentinel) + "/passwd"
            tar.addfile(info)
        dav.files[part] = buffer.getvalue()
        with pytest.raises(FerryError, match="is a symlink: an overlay holds only regular files"):
            apply.run(store_params(tmp_path, dav), False)
    assert tree_listing(tmp_path / "root") == []
    sentinel.unchanged()


def test_a_killed_run_resumes_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    src = make_archive(tmp_path, full_records(), FULL_OBJECTS)
    finish = apply.ObjectWriter.finish
    calls = []

    def killed(self, tree, owners):
        calls.append(self.sha)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as a kill between two objects would leave it, the third one half-done
        finish(self, tree, owners)
    monkeypatch.setattr(apply.ObjectWriter, "finish", killed)
    with pytest.raises(KeyboardInterrupt):
        apply.run(params(tmp_path, src), False)
    monkeypatch.setattr(apply.ObjectWriter, "finish", finish)
    record = json.loads((tmp_path / "state/steps/overlay_apply.json").read_text())
    assert record["status"] == "running" and record["progress"]["unit"] == "bytes"
    assert record["progress"]["total"] == sum(len(data) for data in FULL_OBJECTS)
    result = apply.run(params(tmp_path, src), False)
    assert result["decision"] == "resume" and result["drift_count"] == 0
    assert result["applied"]["objects"] == len(FULL_OBJECTS) - 2  # the two finished before the kill stay
    assert not [name for name in tree_listing(tmp_path / "root") if "ferry-tmp" in name]


def test_a_full_directory_where_the_report_has_a_file_is_refused_before_writing(tmp_path):
    (tmp_path / "root/etc/motd").mkdir(parents=True)
    (tmp_path / "root/etc/motd/inside").write_bytes(b"x")
    (tmp_path / "root/etc/empty").mkdir()
    src = make_archive(tmp_path, [regular("aaa", b"a\n"), symlink("etc/empty", "motd"), regular("etc/motd", b"m\n")],
                       [b"a\n", b"m\n"])
    with pytest.raises(FerryError, match="etc/motd in .* is a directory that is not empty"):
        apply.run(params(tmp_path, src), False)
    assert tree_listing(tmp_path / "root") == ["etc", "etc/empty", "etc/motd", "etc/motd/inside"]
    os.unlink(tmp_path / "root/etc/motd/inside")
    result = apply.run(params(tmp_path, src), False)
    assert result["drift_count"] == 0 and os.readlink(tmp_path / "root/etc/empty") == "motd"
