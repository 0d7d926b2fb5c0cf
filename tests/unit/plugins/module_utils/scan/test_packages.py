# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""scan/packages.py: dpkg's database read in its own format (status, info/*.list, *.md5sums, conffiles,
diversions, Multi-Arch names), the md5 of every package file compared, and rpm through ``rpm --root`` (a stand-in
executable here: Debian has no rpm)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import re
import shutil
import subprocess

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.scan import packages, system
from tests.support.scan_tree import make_prepared_root, prepared_for_tests
from tests.support.steps import pytest_step_only


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return prepared_for_tests(tmp_path_factory)


def write(root, relative, data, mode=0o644):
    path = os.path.join(os.fsencode(str(root)), os.fsencode(relative))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data if isinstance(data, bytes) else data.encode())
    os.chmod(path, mode)
    return path


def md5(data):
    return hashlib.md5(data).hexdigest().encode()


def changes(root, workers=1):
    counts = {}
    found = dict((packages._relative(os.fsencode(r.get("path", ""))), r)
                 for r in packages.package_file_changes(root, workers=workers, counts=counts))
    return found, counts


# --- versions ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version, expected", [
    ("1:2.3-4", (1, "2.3", "4")),
    ("2.0-beta-3", (None, "2.0-beta", "3")),  # the revision starts after the LAST hyphen
    ("5.0", (None, "5.0", None)),  # a native package has no revision
    ("0:1.0", (0, "1.0", None)),
    ("2:1.2:3-1ubuntu0.22.04.1", (2, "1.2:3", "1ubuntu0.22.04.1")),  # colons after the epoch are upstream's
    ("1.2.3+dfsg-1+deb12u1", (None, "1.2.3+dfsg", "1+deb12u1")),
    ("7.4.052-1ubuntu3.1~esm1", (None, "7.4.052", "1ubuntu3.1~esm1")),
])
def test_split_version(version, expected):
    assert packages.split_version(version) == expected


def test_split_version_refuses_a_non_numeric_epoch():
    with pytest.raises(FerryError, match="epoch 'x' is not a number"):
        packages.split_version("x:1.0-1")


# --- the prepared root ----------------------------------------------------------------------------------


def test_dpkg_packages_of_the_prepared_root(prepared):
    found = list(packages.dpkg_packages(prepared["root"]))
    assert [(p["name"], p["version"], p["arch"], p["origin"]) for p in found] == [
        (p["name"], p["version"], p["arch"], p["origin"]) for p in prepared["packages"]]
    tool = found[1]
    assert tool == {"manager": "dpkg", "name": "ferry-tool", "version": "1:2.3-4", "epoch": 1, "upstream": "2.3",
                    "release": "4", "arch": "amd64", "origin": None, "status": "installed"}
    assert "oldpkg" not in [p["name"] for p in found]  # only its conffiles remain: not installed


def test_native_arch_is_dpkg_s_own(prepared):
    assert packages.dpkg_native_arch(prepared["root"]) == "amd64"


def test_package_paths_of_the_prepared_root(prepared):
    paths = packages.package_paths(prepared["root"])
    assert paths == prepared["package_paths"]
    assert prepared["non_utf8_packaged"] in paths  # a non-UTF-8 name survives as bytes
    assert b"lib/x86_64-linux-gnu/libfoo.so.1" in paths  # as listed (Multi-Arch: info/libfoo:amd64.list)
    assert b"usr/lib/x86_64-linux-gnu/libfoo.so.1" in paths  # as the merged-/usr root has it
    for diverted, real in prepared["diverted"].items():
        assert diverted not in paths and real in paths
    for relative in prepared["added"]:
        assert relative not in paths, relative
    assert prepared["unpackaged_in_package_dir"] not in paths
    assert b"" not in paths and b"." not in paths
    owned = set()  # the scan takes them from the check's reading of the package lists
    list(packages.package_file_changes(prepared["root"], workers=1, owned=owned))
    assert owned == paths


@pytest.mark.parametrize("workers", [1, 2])
def test_package_file_changes_of_the_prepared_root(prepared, workers):
    found, counts = changes(prepared["root"], workers)
    assert set(found) == set(prepared["modified"]) | set(prepared["deleted"])
    for relative, expected in prepared["modified"].items():
        record = found[relative]
        assert (record["change"], record["package"], record["type"]) == (
            "modified", expected["package"], expected["type"])
        assert record.get("conffile", False) is expected["conffile"]
    for relative, expected in prepared["deleted"].items():
        assert found[relative] == dict({"kind": "file", "path": relative.decode(), "package": expected["package"],
                                        "change": "deleted"}, **({"conffile": True} if expected["conffile"] else {}))
    assert counts["modified"] == len(prepared["modified"]) and counts["deleted"] == len(prepared["deleted"])
    assert counts["unverifiable"] == len(prepared["unverifiable"])
    assert "unreadable" not in counts


@pytest.mark.parametrize("workers", [1, 2])
def test_an_unchanged_package_file_is_not_read_again(tmp_path, workers):
    """The md5 cache of the last complete check answers for a file with the same size, mtime, ctime and inode (a
    rescan of a real host reads gigabytes of package files otherwise); any other file is read again."""
    if os.geteuid() != 0:
        pytest.skip("the prepared root chowns files and makes devices: run as root")
    prepared = make_prepared_root(str(tmp_path / "root"))  # its own: a file of it is changed
    cache = str(tmp_path / "md5cache")
    counts = {}
    first = list(packages.package_file_changes(prepared["root"], workers=workers, counts=counts, cache_out=cache))
    assert counts["bytes"] > 0 and "cached" not in counts and os.path.exists(cache)
    counted = {}
    again = list(packages.package_file_changes(prepared["root"], workers=workers, counts=counted, cache_in=cache,
                                               cache_out=cache))
    assert again == first and counted["bytes"] == 0 and counted["cached"] > 5
    # a package file rewritten with the same size and mtime: its ctime changed, so it is read again
    relative = prepared["unchanged"][0]
    path = os.path.join(prepared["root"], relative)
    info = os.stat(path)
    with open(path, "r+b") as handle:
        data = handle.read()
        handle.seek(0)
        handle.write(bytes([data[0] ^ 1]) + data[1:])
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    counted = {}
    third = list(packages.package_file_changes(prepared["root"], workers=workers, counts=counted, cache_in=cache))
    assert counted["bytes"] == len(data) and [r for r in third if packages._relative(
        os.fsencode(r["path"])) == relative][0]["change"] == "modified"


def test_the_md5_cache_is_believed_for_its_stat_and_a_damaged_one_reads_as_what_it_holds(prepared, tmp_path):
    relative = prepared["unchanged"][0]
    info = os.stat(os.path.join(prepared["root"], relative))
    row = packages._MD5_ROW.pack(info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, len(relative))
    forged = tmp_path / "forged"
    forged.write_bytes(row + relative + b"\0" * 16 + b"\x01\x02")  # a wrong md5, then a cut row
    found = [r for r in packages.package_file_changes(prepared["root"], workers=1, cache_in=str(forged))
             if r.get("path", "").encode() == relative]
    assert found and found[0]["change"] == "modified"  # the cache said so: the file was not read
    assert packages.read_md5_cache(str(tmp_path / "missing")) == {}


def test_progress_is_told_after_each_group_and_may_stop_the_run(prepared, monkeypatch):
    monkeypatch.setattr(packages, "GROUP_FILES", 5)
    seen = []
    list(packages.package_file_changes(prepared["root"], workers=2, progress=seen.append))
    assert len(seen) >= 3 and seen == sorted(seen)
    total = {}
    list(packages.package_file_changes(prepared["root"], workers=1, counts=total))
    assert seen[-1] == total["checked"]

    class Stop(Exception):
        pass

    def stop(_checked):
        raise Stop()

    with pytest.raises(Stop):
        list(packages.package_file_changes(prepared["root"], workers=2, progress=stop))


def test_modified_records_are_whole_file_records(prepared):
    found, _counts = changes(prepared["root"])
    root = prepared["root"]
    conf = found[b"etc/ferry-tool/tool.conf"]
    with open(os.path.join(root, b"etc/ferry-tool/tool.conf"), "rb") as handle:
        data = handle.read()
    assert conf == {"kind": "file", "path": "etc/ferry-tool/tool.conf", "type": "file", "mode": 0o640,
                    "uid": 1001, "gid": 1001, "owner": "alice", "group": "alice", "size": len(data),
                    "mtime_ns": prepared["mtime_ns"], "sha256": hashlib.sha256(data).hexdigest(),
                    "package": "ferry-tool", "change": "modified", "conffile": True}
    link = found[b"usr/lib/x86_64-linux-gnu/libfoo.so.1"]
    assert (link["type"], link["target"], link["package"]) == ("symlink", "libfoo.so.1.0", "libfoo")
    assert "sha256" not in link
    tool = found[b"usr/bin/ferry-tool"]
    assert (tool["mode"], tool["owner"], tool["group"]) == (0o755, "root", "root")


def test_unchanged_obsolete_and_diverted_files_are_not_reported(prepared):
    found, _counts = changes(prepared["root"])
    for relative in prepared["unchanged"] + prepared["unverifiable"] + list(prepared["diverted"]):
        assert relative not in found, relative


# --- the database formats ---------------------------------------------------------------------------------


def test_conffiles_lines():
    stanza = {b"Conffiles": b"\n /etc/a.conf 0123456789abcdef0123456789abcdef\n"
                            b" /etc/with space.conf 0123456789abcdef0123456789abcdef\n"
                            b" /etc/old.conf 0123456789abcdef0123456789abcdef obsolete\n"
                            b" /etc/gone.conf 0123456789abcdef0123456789abcdef remove-on-upgrade\n"
                            b" /etc/new.conf newconffile"}
    assert packages.conffiles(stanza) == [
        (b"etc/a.conf", b"0123456789abcdef0123456789abcdef", False),
        (b"etc/with space.conf", b"0123456789abcdef0123456789abcdef", False),
        (b"etc/old.conf", b"0123456789abcdef0123456789abcdef", True),
        (b"etc/gone.conf", b"0123456789abcdef0123456789abcdef", False),
        (b"etc/new.conf", b"newconffile", False)]


def _dpkg_root(root, stanzas, info=None):
    write(root, "var/lib/dpkg/status", stanzas)
    for name, data in (info or {}).items():
        write(root, "var/lib/dpkg/info/" + name, data)


def test_status_stanzas_stream_with_continuations_and_no_final_newline(tmp_path):
    _dpkg_root(tmp_path, "Package: a\nStatus: hold ok installed\nVersion: 1\nDescription: x\n long\n .\n"
                         "\n\nPackage: b\nStatus: install ok half-installed\nVersion: 2\n\n"
                         "Package: c\nStatus: purge ok not-installed\n\n"
                         "Package: d\nStatus: install ok installed\nVersion: 3-1\nArchitecture: all")
    assert [(p["name"], p["version"], p["arch"]) for p in packages.dpkg_packages(str(tmp_path))] == [
        ("a", "1", None), ("d", "3-1", "all")]  # held is installed; half-installed is not


def test_md5sums_formats_and_a_non_utf8_name(tmp_path):
    _dpkg_root(tmp_path, "Package: p\nStatus: install ok installed\nVersion: 1\n", {
        "p.list": b"/.\n/usr\n/usr/caf\xe9\n/usr/star\n/usr/dot\n",
        "p.md5sums": (md5(b"x") + b"  usr/caf\xe9\n" + md5(b"y").upper() + b" *usr/star\n"
                      + md5(b"z") + b"  ./usr/dot\n")})
    write(tmp_path, b"usr/caf\xe9", b"x")
    write(tmp_path, "usr/star", b"y")
    write(tmp_path, "usr/dot", b"changed")
    found, counts = changes(str(tmp_path))
    assert list(found) == [b"usr/dot"] and counts["checked"] == 4
    assert packages.package_paths(str(tmp_path)) == {b"usr", b"usr/caf\xe9", b"usr/star", b"usr/dot"}


def test_a_bad_md5sums_line_is_refused_naming_the_file(tmp_path):
    _dpkg_root(tmp_path, "Package: p\nStatus: install ok installed\nVersion: 1\n",
               {"p.list": "/x\n", "p.md5sums": "not-an-md5  x\n"})
    with pytest.raises(FerryError, match="p.md5sums: not an md5sums line"):
        list(packages.package_file_changes(str(tmp_path), workers=1))


def test_a_non_utf8_deleted_path_is_base64(tmp_path):
    _dpkg_root(tmp_path, "Package: p\nStatus: install ok installed\nVersion: 1\n",
               {"p.list": b"/caf\xe9\n", "p.md5sums": md5(b"x") + b"  caf\xe9\n"})
    (record,) = packages.package_file_changes(str(tmp_path), workers=1)
    assert record == {"kind": "file", "path_b64": "Y2Fm6Q==", "package": "p", "change": "deleted"}


def test_multi_arch_info_names_either_way(tmp_path):
    stanza = "Package: libx\nStatus: install ok installed\nVersion: 1\nArchitecture: i386\nMulti-Arch: same\n"
    _dpkg_root(tmp_path, stanza, {"libx:i386.list": "/lib32/x\n", "libx:i386.md5sums": md5(b"") + b"  lib32/x\n"})
    assert list(packages.package_file_changes(str(tmp_path), workers=1))[0]["path"] == "lib32/x"
    os.unlink(str(tmp_path / "var/lib/dpkg/info/libx:i386.list"))
    os.rename(str(tmp_path / "var/lib/dpkg/info/libx:i386.md5sums"), str(tmp_path / "var/lib/dpkg/info/libx.md5sums"))
    write(tmp_path, "var/lib/dpkg/info/libx.list", "/lib32/y\n")  # written by a dpkg before multi-arch
    assert packages.package_paths(str(tmp_path)) == {b"lib32/y"}


def test_a_file_replaced_by_a_fifo_is_gone_for_a_rebuild(tmp_path):
    _dpkg_root(tmp_path, "Package: p\nStatus: install ok installed\nVersion: 1\n",
               {"p.list": "/f\n", "p.md5sums": md5(b"x") + b"  f\n"})
    os.mkfifo(str(tmp_path / "f"))
    (record,) = packages.package_file_changes(str(tmp_path), workers=1)
    assert record["change"] == "deleted"


def _host_file_two_deep(top):
    """``sub/name`` of a regular file of this host under ``top`` (a directory of it)."""
    for sub in sorted(os.listdir(top)):
        if os.path.isdir(os.path.join(top, sub)) and not os.path.islink(os.path.join(top, sub)):
            for name in sorted(os.listdir(os.path.join(top, sub))):
                if os.path.isfile(os.path.join(top, sub, name)) and not os.path.islink(os.path.join(top, sub, name)):
                    return "%s/%s" % (sub, name)
    pytest.skip("no file two levels under %s on this host" % top)


def test_a_package_path_is_never_looked_up_through_a_link_out_of_the_root(tmp_path):
    """lib -> /usr/lib (absolute) and lib/<sub> missing in the root: the kernel would read THIS host's
    /usr/lib/<sub>/<name> through root/lib."""
    host = _host_file_two_deep("/usr/lib")
    _dpkg_root(tmp_path, "Package: p\nStatus: install ok installed\nVersion: 1\n",
               {"p.list": "/lib\n/lib/%s\n/up/x\n" % host,
                "p.md5sums": md5(b"not this host's") + b"  lib/" + host.encode() + b"\n" + md5(b"x") + b"  up/x\n"})
    os.makedirs(str(tmp_path / "usr/lib"))
    os.symlink("/usr/lib", str(tmp_path / "lib"))
    os.symlink("../../..", str(tmp_path / "up"))  # leads out of the root
    found, counts = changes(str(tmp_path))
    real = b"usr/lib/" + host.encode()
    assert list(found) == [real] and found[real]["change"] == "deleted"
    assert counts["unreadable"] == 1  # up/x: not looked at
    assert packages.package_paths(str(tmp_path)) == {b"lib", b"usr/lib", b"lib/" + host.encode(), real, b"up/x"}


def _canonical_reference(root, relative):
    """What Canonical gives, by resolving the whole parent each time (resolve_in_root)."""
    parent, slash, name = relative.rpartition(b"/")
    if not slash:
        return relative
    try:
        found, missing = system.resolve_in_root(root, parent)
    except FerryError:
        return None
    real = os.path.relpath(found, root)
    real = b"/".join(([] if real == b"." else [real]) + missing)
    return real + b"/" + name if real else name


def test_canonical_resolves_each_directory_once_as_the_whole_resolution_would(tmp_path, monkeypatch):
    root = os.fsencode(str(tmp_path))
    for directory in ("usr/lib/deep/er", "usr/share/doc", "opt/a", "etc"):
        os.makedirs(os.path.join(str(tmp_path), directory))
    links = {"lib": "usr/lib", "usr/lib/abs": "/usr/share", "usr/lib/deep/up": "../../share/doc",
             "opt/a/out": "../../..", "opt/a/loop": "loop", "opt/a/dotdot": "../a/../../etc"}
    for link, target in links.items():
        os.symlink(target, os.path.join(str(tmp_path), link))
    (tmp_path / "etc" / "file").write_bytes(b"")
    parents = [b"lib", b"lib/deep", b"lib/deep/er", b"lib/deep/up", b"lib/abs", b"lib/abs/doc", b"usr/lib/deep/up",
               b"opt/a/out", b"opt/a/out/x", b"opt/a/loop", b"opt/a/dotdot", b"opt/a/missing/more", b"etc/file",
               b"etc/file/below", b"lib/../etc", b"lib/./deep", b"caf\xe9/x", b"opt/a/dotdot/caf\xe9"]
    paths = [b"top"] + [parent + b"/name" for parent in parents]
    expected = [_canonical_reference(root, path) for path in paths]
    assert expected[1:4] == [b"usr/lib/name", b"usr/lib/deep/name", b"usr/lib/deep/er/name"]
    assert None in expected  # the links out of the root and the loop
    assert [packages.Canonical(str(tmp_path))(path) for path in paths] == expected
    # a chain of plain directories: one lstat each, not one per component of every parent
    chain = b"/".join(b"d%d" % depth for depth in range(40))
    os.makedirs(os.path.join(root, chain))
    calls = []
    real_lstat = os.lstat
    monkeypatch.setattr(os, "lstat", lambda path, *args, **kwargs: calls.append(path) or real_lstat(path, *args, **kwargs))
    canonical = packages.Canonical(str(tmp_path))
    for depth in range(1, 41):
        assert canonical(b"/".join(b"d%d" % level for level in range(depth)) + b"/f") == (
            b"/".join(b"d%d" % level for level in range(depth)) + b"/f")
    assert len(calls) <= 40


def test_a_status_file_that_is_a_symlink_out_of_the_root_is_refused(tmp_path):
    os.makedirs(str(tmp_path / "var/lib/dpkg"))
    other = write(tmp_path / "elsewhere", "status", "Package: x\nStatus: install ok installed\nVersion: 1\n")
    os.symlink(other, str(tmp_path / "var/lib/dpkg/status"))
    with pytest.raises(FerryError, match="cannot read dpkg status file"):
        list(packages.dpkg_packages(str(tmp_path)))


def test_no_package_database_means_no_packages(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no rpm either
    assert list(packages.dpkg_packages(str(tmp_path))) == []
    assert packages.package_paths(str(tmp_path)) == set()
    assert list(packages.package_file_changes(str(tmp_path))) == []


# --- rpm ------------------------------------------------------------------------------------------------

RPM_QA = (b"bash\t(none)\t5.1.8\t9.el9\tx86_64\tRed Hat, Inc.\n"
          b"tzdata\t(none)\t2024a\t1.el9\tnoarch\t(none)\n"
          b"openssl\t1\t3.0.7\t27.el9\tx86_64\tRocky Enterprise Software Foundation\n"
          b"gpg-pubkey\t(none)\t5a6340b3\t6229229e\t(none)\t(none)\n"
          b"short\t(none)\t1\t1\tx86_64\n")  # a line without the vendor field: not this query's, skipped

RPM_VA = (b"S.5....T.  c /etc/ssh/sshd_config\n"
          b".M.......    /usr/bin/passwd\n"
          b"missing     /usr/share/doc/bash/README\n"
          b"missing   c /etc/sysconfig/gone (Permission denied)\n"
          b".......T.    /usr/lib/only-mtime\n"
          b"....L....    /usr/lib/link\n"
          b"Unsatisfied dependencies for foo-1-1.noarch:\n"
          b"\tbar is needed by (installed) foo-1-1.noarch\n"
          b"S.5?.....  d /usr/share/doc/with space.txt\n")


def test_parse_rpm_packages():
    found = list(packages.parse_rpm_packages(RPM_QA.splitlines()))
    assert [(p["name"], p["version"], p["epoch"], p["upstream"], p["release"], p["arch"], p["origin"])
            for p in found] == [
        ("bash", "5.1.8-9.el9", None, "5.1.8", "9.el9", "x86_64", "Red Hat, Inc."),
        ("tzdata", "2024a-1.el9", None, "2024a", "1.el9", "noarch", None),
        ("openssl", "1:3.0.7-27.el9", 1, "3.0.7", "27.el9", "x86_64", "Rocky Enterprise Software Foundation")]
    assert found[0]["manager"] == "rpm" and found[0]["status"] == "installed"


def test_parse_rpm_verify():
    assert list(packages.parse_rpm_verify(RPM_VA.splitlines())) == [
        ("S.5....T.", "c", b"etc/ssh/sshd_config"),
        (".M.......", " ", b"usr/bin/passwd"),
        ("missing", " ", b"usr/share/doc/bash/README"),
        ("missing", "c", b"etc/sysconfig/gone"),
        (".......T.", " ", b"usr/lib/only-mtime"),
        ("....L....", " ", b"usr/lib/link"),
        ("S.5?.....", "d", b"usr/share/doc/with space.txt")]


FAKE_RPM = """#!/bin/sh
# a stand-in for rpm: records its arguments, answers from files beside it
echo "$@" >> "{log}"
case "$*" in
  *" -Va "*) cat "{va}"; exit 1 ;;
  *FILENAMES*) cat "{files}" ;;
  *"-q --qf"*) echo x86_64 ;;
  *" -qa "*) cat "{qa}" ;;
  *) echo "rpm: unknown $*" >&2; exit 2 ;;
esac
"""


@pytest.fixture
def fake_rpm(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    paths = dict((name, str(tmp_path / name)) for name in ("log", "va", "files", "qa"))
    with open(paths["va"], "wb") as handle:
        handle.write(RPM_VA)
    with open(paths["qa"], "wb") as handle:
        handle.write(RPM_QA)
    with open(paths["files"], "wb") as handle:
        handle.write(b"/etc/ssh/sshd_config\topenssh-server\n/usr/bin/passwd\tpasswd\n"
                     b"/usr/share/doc/bash/README\tbash\n/usr/lib/link\tlinks\n/usr/bin/bash\tbash\n")
    script = bin_dir / "rpm"
    script.write_text(FAKE_RPM.format(**paths))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (bin_dir, os.environ["PATH"]))
    root = tmp_path / "root"
    os.makedirs(str(root / "var/lib/rpm"))
    return root, paths


def test_rpm_through_a_stand_in_executable(fake_rpm):
    root, paths = fake_rpm
    write(root, "etc/ssh/sshd_config", "PermitRootLogin no\n", 0o600)
    write(root, "usr/bin/passwd", b"\x7fELF", 0o4711)
    os.makedirs(str(root / "usr/lib"))
    os.symlink("elsewhere", str(root / "usr/lib/link"))
    assert [p["name"] for p in packages.rpm_packages(str(root))] == ["bash", "tzdata", "openssl"]
    assert packages.rpm_native_arch(str(root)) == "x86_64"
    assert packages.package_paths(str(root)) == {b"etc/ssh/sshd_config", b"usr/bin/passwd",
                                                 b"usr/share/doc/bash/README", b"usr/lib/link", b"usr/bin/bash"}
    counts, owned = {}, set()
    found = dict((r["path"], r) for r in packages.package_file_changes(str(root), counts=counts, owned=owned))
    assert owned == packages.package_paths(str(root))
    assert sorted(found) == ["etc/ssh/sshd_config", "etc/sysconfig/gone", "usr/bin/passwd", "usr/lib/link",
                             "usr/share/doc/bash/README", "usr/share/doc/with space.txt"]
    assert found["etc/ssh/sshd_config"]["conffile"] is True and found["etc/ssh/sshd_config"]["mode"] == 0o600
    assert found["etc/ssh/sshd_config"]["package"] == "openssh-server"
    assert found["usr/bin/passwd"]["mode"] == 0o4711 and found["usr/bin/passwd"]["change"] == "modified"
    assert found["usr/lib/link"]["target"] == "elsewhere"
    assert found["usr/share/doc/bash/README"] == {"kind": "file", "path": "usr/share/doc/bash/README",
                                                  "package": "bash", "change": "deleted"}
    assert found["etc/sysconfig/gone"]["conffile"] is True and found["etc/sysconfig/gone"]["package"] is None
    assert counts == {"modified": 3, "deleted": 3}
    with open(paths["log"]) as handle:
        assert "--root %s -Va --nodeps --noscripts" % root in handle.read()


def test_rpm_failure_names_the_command_and_its_message(fake_rpm, monkeypatch):
    root, _paths = fake_rpm
    with pytest.raises(FerryError, match="exit 2.*rpm: unknown"):
        list(packages.rpm_command(str(root), ["--bogus"]))


def test_rpm_without_a_database_is_not_asked(fake_rpm, tmp_path):
    _root, paths = fake_rpm
    assert list(packages.rpm_packages(str(tmp_path / "empty"))) == []
    assert not os.path.exists(paths["log"])


# --- this machine -----------------------------------------------------------------------------------------

real_dpkg = pytest.mark.skipif(not (shutil.which("dpkg") and os.path.isfile("/var/lib/dpkg/status")),
                               reason="this machine has no dpkg")


@real_dpkg
def test_the_real_host_packages_match_dpkg_query():
    found = list(packages.dpkg_packages("/"))
    answer = subprocess.run(["dpkg-query", "-W", "-f", "${Status}\t${Package}\t${Version}\n"],
                            stdout=subprocess.PIPE, check=True).stdout.decode()
    expected = [line.split("\t")[1:] for line in answer.splitlines() if line.split("\t")[0].endswith(" installed")]
    assert sorted([p["name"], p["version"]] for p in found) == sorted(expected)
    assert len(found) > 50
    assert all(p["upstream"] for p in found)


@real_dpkg
@pytest_step_only  # reads every package file of this machine (25 s cold): once is enough
def test_the_real_host_changes_match_dpkg_verify():
    """The same set of changed paths as ``dpkg --verify`` (missing directories included), counts plausible."""
    counts, owned = {}, set()
    mine = set(os.fsencode(r["path"]) if "path" in r else r["path_b64"]
               for r in packages.package_file_changes("/", counts=counts, owned=owned))
    answer = subprocess.run(["dpkg", "--verify"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False).stdout
    theirs = set(re.match(rb"^\S+ +(?:c )?/(.*)$", line).group(1) for line in answer.splitlines())
    paths = packages.package_paths("/")
    assert owned == paths
    assert len(paths) > 1000 and counts["checked"] > 1000 and counts["bytes"] > 1 << 20
    assert mine == theirs
