# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""scan/system.py: what a scanned root is and how it was installed, read from its files only, every path
resolved inside the root as a chroot would, every file bounded."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import stat
import subprocess
import sys

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.scan import system
from tests.support.scan_tree import prepared_for_tests


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return prepared_for_tests(tmp_path_factory)


def write(root, relative, text, mode=0o644):
    path = os.path.join(str(root), relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, mode)
    return path


def link(root, relative, target):
    path = os.path.join(str(root), relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.symlink(target, path)


# --- the prepared root ----------------------------------------------------------------------------------


def test_system_info_of_the_prepared_root(prepared):
    assert system.system_info(prepared["root"]) == prepared["system"]


def test_install_profile_of_the_prepared_root(prepared):
    profile = system.install_profile(prepared["root"])
    expected = prepared["profile"]
    for key in ("timezone", "locale", "keyboard", "kernel_cmdline", "selinux"):
        assert profile[key] == expected[key], key
    assert [user["name"] for user in profile["users"]] == expected["users"]
    assert [group["name"] for group in profile["groups"]] == expected["groups"]
    assert [(fs["mountpoint"], fs["type"]) for fs in profile["filesystems"]] == expected["filesystems"]
    assert [swap["device"] for swap in profile["swap"]] == expected["swap"]
    methods = dict((iface["name"], iface["method"]) for iface in profile["network"])
    assert methods == expected["network"]
    eth0 = [iface for iface in profile["network"] if iface["name"] == "eth0"][0]
    assert dict((key, eth0[key]) for key in expected["eth0"]) == expected["eth0"]
    assert eth0["source"] == "etc/network/interfaces"
    eth1 = [iface for iface in profile["network"] if iface["name"] == "eth1"][0]
    assert eth1["source"] == "etc/network/interfaces.d/eth1" and eth1["auto"] is True


def test_users_carry_their_supplementary_groups(prepared):
    users = dict((user["name"], user) for user in system.install_profile(prepared["root"])["users"])
    assert users["alice"] == {"name": "alice", "uid": 1001, "gid": 1001, "gecos": "Alice Example,,,",
                              "home": "/home/alice", "shell": "/bin/bash", "groups": ["sudo", "devs"]}
    groups = dict((group["name"], group) for group in system.install_profile(prepared["root"])["groups"])
    assert groups["devs"] == {"name": "devs", "gid": 1500, "members": ["alice", "bob"]}


def test_passwd_and_group_maps_come_from_the_scanned_root(prepared):
    users, groups = system.read_passwd(prepared["root"]), system.read_group(prepared["root"])
    assert users.by_id[1001] == "alice" and users.by_name["bob"] == 1002
    assert groups.by_id[1500] == "devs" and groups.by_name["sudo"] == 27
    assert 4242 not in users.by_id and 4343 not in groups.by_id  # the orphan owner has no name
    for relative, (uid, gid, owner, group) in prepared["owners"].items():
        assert users.by_id.get(uid) == owner and groups.by_id.get(gid) == group, relative


# --- users and groups -------------------------------------------------------------------------------------


def test_passwd_first_entry_wins_and_bad_lines_are_skipped(tmp_path):
    write(tmp_path, "etc/passwd", "a:x:1000:1000::/h:/bin/sh\nb:x:1000:1000::/h:/bin/sh\n+nis::::::\n"
                                  "short:x:1\nbad:x:one:1::/:/bin/sh\n# comment\n\na:x:1003:1003::/:/bin/sh\n")
    names = system.read_passwd(tmp_path)
    assert names.by_id == {1000: "a", 1003: "a"}
    assert names.by_name == {"a": 1000, "b": 1000}


def test_absent_passwd_and_group_give_empty_maps(tmp_path):
    assert system.read_passwd(tmp_path) == ({}, {})
    assert system.read_group(tmp_path).by_name == {}


def test_login_defs_moves_the_regular_id_range(tmp_path):
    write(tmp_path, "etc/passwd", "old:x:600:600::/h:/bin/sh\nsys:x:499:499::/h:/bin/sh\nbig:x:70000:1::/:/bin/sh\n")
    write(tmp_path, "etc/group", "old:x:600:\nsys:x:499:\n")
    assert system.profile_users(tmp_path) == []  # shadow's default range starts at 1000
    write(tmp_path, "etc/login.defs", "# comment\nUID_MIN 500\nUID_MAX  80000\nGID_MIN\t550\nMAIL_DIR /var/mail\n")
    assert [user["name"] for user in system.profile_users(tmp_path)] == ["old", "big"]
    assert [group["name"] for group in system.profile_groups(tmp_path)] == ["old"]


# --- paths inside root ------------------------------------------------------------------------------------


def test_os_release_link_is_read_inside_the_root(tmp_path):
    write(tmp_path, "usr/lib/os-release", 'ID=rocky\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.3"\n')
    link(tmp_path, "etc/os-release", "/usr/lib/os-release")  # absolute: the root's, not this host's
    info = system.system_info(str(tmp_path))
    assert (info["distribution"], info["version"], info["family"]) == ("rocky", "9.3", "redhat")


def test_os_release_link_escaping_the_root_is_refused(tmp_path):
    root = tmp_path / "root"
    link(root, "etc/os-release", "../../../../../../etc/os-release")
    with pytest.raises(FerryError, match="leads out of the scanned root"):
        system.system_info(str(root))


def test_symlink_loop_is_refused(tmp_path):
    link(tmp_path, "etc/hostname", "hostname2")
    link(tmp_path, "etc/hostname2", "/etc/hostname")
    with pytest.raises(FerryError, match="too many levels of symbolic links"):
        system.read_config(tmp_path, "etc/hostname")


def test_root_path_resolves_parents_and_dotdot_inside(tmp_path):
    os.makedirs(str(tmp_path / "usr/lib"))
    link(tmp_path, "lib", "usr/lib")
    write(tmp_path, "usr/lib/x", "x")
    root = os.fsencode(str(tmp_path))
    assert system.root_path(tmp_path, "lib/x") == root + b"/usr/lib/x"
    assert system.root_path(tmp_path, b"/lib/../lib/./x") == root + b"/usr/lib/x"
    assert system.root_path(tmp_path, "lib/missing/y") is None
    assert system.root_path(tmp_path, "usr/lib/x/under-a-file") is None
    assert system.root_path(tmp_path, "") == root


def test_oversize_config_is_refused_and_the_limit_itself_is_read(tmp_path):
    write(tmp_path, "etc/hostname", "h" * system.CONFIG_LIMIT)
    assert len(system.read_config(tmp_path, "etc/hostname")) == system.CONFIG_LIMIT
    write(tmp_path, "etc/hostname", "h" * (system.CONFIG_LIMIT + 1))
    with pytest.raises(FerryError, match="etc/hostname is bigger than 1048576 bytes"):
        system.system_info(str(tmp_path))


def test_a_fifo_named_like_a_config_is_refused_not_waited_on(tmp_path):
    os.makedirs(str(tmp_path / "etc"))
    os.mkfifo(str(tmp_path / "etc/timezone"))
    with pytest.raises(FerryError, match="is not a regular file"):
        system.timezone(str(tmp_path))


def test_an_empty_root_says_nothing(tmp_path):
    info = system.system_info(str(tmp_path))
    assert info == {"distribution": None, "version": None, "codename": None, "family": None, "arch": None,
                    "kernel": None, "hostname": None}
    profile = system.install_profile(str(tmp_path))
    assert profile == {"filesystems": [], "swap": [], "timezone": None, "locale": {}, "keyboard": {},
                       "kernel_cmdline": None, "users": [], "groups": [], "network": [], "selinux": None}


def test_non_utf8_config_bytes_are_replaced_not_fatal(tmp_path):
    path = os.path.join(str(tmp_path), "etc/hostname")
    os.makedirs(os.path.dirname(path))
    with open(path, "wb") as handle:
        handle.write(b"h\xffst\n")
    assert system.system_info(str(tmp_path))["hostname"] == "h\ufffdst"


# --- the rest of the profile ------------------------------------------------------------------------------


def test_kernel_is_the_newest_installed_one(tmp_path):
    for name in ("6.1.0-9-amd64", "6.1.0-10-amd64", "5.10.0-28-amd64"):
        os.makedirs(str(tmp_path / "usr/lib/modules" / name))
    link(tmp_path, "lib", "usr/lib")
    assert system.system_info(str(tmp_path))["kernel"] == "6.1.0-10-amd64"
    write(tmp_path, "boot/vmlinuz-6.2.0-1-amd64", "k")
    write(tmp_path, "boot/vmlinuz-", "not a kernel name")
    assert system.system_info(str(tmp_path))["kernel"] == "6.2.0-1-amd64"


def test_timezone_from_the_localtime_link(tmp_path):
    link(tmp_path, "etc/localtime", "/usr/share/zoneinfo/America/New_York")
    assert system.timezone(str(tmp_path)) == "America/New_York"
    os.unlink(str(tmp_path / "etc/localtime"))
    link(tmp_path, "etc/localtime", "../usr/share/zoneinfo/posix/Europe/Berlin")
    assert system.timezone(str(tmp_path)) == "Europe/Berlin"
    os.unlink(str(tmp_path / "etc/localtime"))
    write(tmp_path, "etc/localtime", "TZif a copy, not a link")
    assert system.timezone(str(tmp_path)) is None


def test_locale_and_keyboard_of_systemd_files(tmp_path):
    write(tmp_path, "etc/locale.conf", 'LANG=de_DE.UTF-8\nexport LC_ALL="C"\n')
    write(tmp_path, "etc/vconsole.conf", "KEYMAP=de-latin1\nFONT='eurlatgr'\n")
    profile = system.install_profile(str(tmp_path))
    assert profile["locale"] == {"LANG": "de_DE.UTF-8", "LC_ALL": "C"}
    assert profile["keyboard"] == {"KEYMAP": "de-latin1", "FONT": "eurlatgr"}


def test_shell_vars_quoting(tmp_path):
    text = 'A="a \\"quoted\\" \\$word"\nB=\'single \\n\'\nC=plain # not a comment\nnot a var\n1BAD=x\nD=\n'
    write(tmp_path, "etc/default/x", text)
    assert system.shell_vars(str(tmp_path), "etc/default/x") == {
        "A": 'a "quoted" $word', "B": "single \\n", "C": "plain # not a comment", "D": ""}


@pytest.mark.parametrize("value, expected", [("enforcing", "enforcing"), ("Permissive", "permissive"),
                                             ("disabled", "disabled")])
def test_selinux_config(tmp_path, value, expected):
    write(tmp_path, "etc/selinux/config", "# SELinux\nSELINUX=%s\nSELINUXTYPE=targeted\n" % value)
    assert system.selinux(str(tmp_path)) == expected


def test_kernel_cmdline_from_grub_without_default(tmp_path):
    write(tmp_path, "etc/default/grub", 'GRUB_CMDLINE_LINUX="crashkernel=auto rd.lvm.lv=rl/root"\n')
    assert system.kernel_cmdline(str(tmp_path)) == "crashkernel=auto rd.lvm.lv=rl/root"
    write(tmp_path, "etc/default/grub", 'GRUB_CMDLINE_LINUX=""\n')
    assert system.kernel_cmdline(str(tmp_path)) is None


def test_ifupdown_source_directory_names_and_cycles(tmp_path):
    write(tmp_path, "etc/network/interfaces", "source-directory interfaces.d\nsource interfaces\n"
                                              "iface br0 inet manual\n  bridge_ports eth0\n")
    write(tmp_path, "etc/network/interfaces.d/eth2", "iface eth2 inet6 static\n address 2001:db8::2/64\n")
    write(tmp_path, "etc/network/interfaces.d/bad.name", "iface ignored inet dhcp\n")
    write(tmp_path, "etc/network/interfaces.d/loop", "source /etc/network/interfaces\n")
    found = system.ifupdown(str(tmp_path))
    assert [(iface["name"], iface["method"]) for iface in found] == [("eth2", "static"), ("br0", "manual")]
    assert (found[0]["address"], found[0]["netmask"], found[0]["family"]) == ("2001:db8::2", "64", "inet6")
    assert found[1]["auto"] is False


def test_rhel_ifcfg_files(tmp_path):
    scripts = "etc/sysconfig/network-scripts/"
    write(tmp_path, scripts + "ifcfg-eth0", 'DEVICE=eth0\nBOOTPROTO=none\nIPADDR=10.0.0.5\nPREFIX=24\n'
                                            'GATEWAY=10.0.0.1\nONBOOT=yes\n')
    write(tmp_path, scripts + "ifcfg-eth1", 'BOOTPROTO="dhcp"\n')
    write(tmp_path, scripts + "ifcfg-eth1.bak", 'BOOTPROTO="static"\n')
    write(tmp_path, scripts + "ifup-eth", "#!/bin/sh\n")
    found = system.network(str(tmp_path))
    assert found == [
        {"name": "eth0", "method": "static", "address": "10.0.0.5", "netmask": "24", "gateway": "10.0.0.1",
         "source": scripts + "ifcfg-eth0"},
        {"name": "eth1", "method": "dhcp", "address": None, "netmask": None, "gateway": None,
         "source": scripts + "ifcfg-eth1"}]


NETPLAN = """network:
  version: 2
  ethernets:
    ens3:
      addresses: [192.0.2.20/24]
      gateway4: 192.0.2.1
    ens4:
      dhcp4: true
"""


def test_netplan_with_pyyaml(tmp_path):
    pytest.importorskip("yaml")
    write(tmp_path, "etc/netplan/50-cloud-init.yaml", NETPLAN)
    write(tmp_path, "etc/netplan/99-broken.yaml", "network: [unclosed\n")
    found = system.netplan(str(tmp_path))
    assert [(i["name"], i["method"], i["address"], i["netmask"], i["gateway"]) for i in found] == [
        ("ens3", "static", "192.0.2.20", "24", "192.0.2.1"), ("ens4", "dhcp", None, None, None)]


def test_netplan_without_pyyaml_is_skipped_not_fatal(tmp_path, monkeypatch):
    write(tmp_path, "etc/netplan/50-cloud-init.yaml", NETPLAN)
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml raises ImportError
    assert system.netplan(str(tmp_path)) == []


def test_version_key_orders_kernel_releases():
    names = ["6.1.0-9-amd64", "6.1.0-18-amd64", "5.10.0-28-amd64", "6.1.0-18-rt-amd64"]
    assert max(names, key=system.version_key) == "6.1.0-18-rt-amd64"
    assert sorted(names, key=system.version_key)[0] == "5.10.0-28-amd64"


# --- this machine -----------------------------------------------------------------------------------------


def test_the_running_host():
    info = system.system_info("/")
    assert info["kernel"] == os.uname().release
    if shutil.which("dpkg"):
        native = subprocess.run(["dpkg", "--print-architecture"], stdout=subprocess.PIPE, check=True)
        assert info["arch"] == native.stdout.decode().strip()
    profile = system.install_profile("/")
    with open("/proc/cmdline") as handle:
        assert profile["kernel_cmdline"] == (handle.read().strip() or profile["kernel_cmdline"])
    assert all(1000 <= user["uid"] <= 60000 for user in profile["users"])


# --- the prepared root itself (tests/support/scan_tree.py): what other tests rely on is really there ---------


def test_prepared_root_is_what_its_facts_say(prepared):
    root = prepared["root"]

    def at(relative):
        return os.path.join(root, relative)

    for relative, content in prepared["added"].items():
        info = os.lstat(at(relative))
        assert stat.S_ISREG(info.st_mode), relative
        if content is not None:
            with open(at(relative), "rb") as handle:
                assert handle.read() == content, relative
    for relative, target in prepared["symlinks"].items():
        assert os.readlink(at(relative)) == target, relative
    for relative in prepared["dirs"]:
        assert stat.S_ISDIR(os.lstat(at(relative)).st_mode), relative
    kinds = {"fifo": stat.S_ISFIFO, "socket": stat.S_ISSOCK, "char": stat.S_ISCHR, "block": stat.S_ISBLK}
    for kind, relatives in prepared["skipped"].items():
        assert all(kinds[kind](os.lstat(at(relative)).st_mode) for relative in relatives), kind
    (first, second), = prepared["hardlinks"]
    assert os.lstat(at(first)).st_ino == os.lstat(at(second)).st_ino and os.lstat(at(first)).st_nlink == 2
    sparse = os.lstat(at(prepared["sparse"]))
    assert sparse.st_size == 8 << 20 and sparse.st_blocks * 512 < sparse.st_size
    assert os.lstat(at(prepared["setuid"])).st_mode & 0o7777 == 0o4755
    for relative, (uid, gid, _owner, _group) in prepared["owners"].items():
        info = os.lstat(at(relative))
        assert (info.st_uid, info.st_gid) == (uid, gid), relative
    assert b"\n" in prepared["newline_name"] and os.path.exists(at(prepared["newline_name"]))
    with pytest.raises(UnicodeDecodeError):
        prepared["non_utf8_name"].decode("utf-8")
    for relative in list(prepared["deleted"]):
        assert not os.path.lexists(at(relative)), relative
    for relative in prepared["unchanged"] + list(prepared["modified"]) + prepared["excluded"]:
        assert os.path.lexists(at(relative)), relative
    assert not os.path.lexists(at(b"etc/selinux/config"))
    assert os.lstat(at(b"opt/app/hard/a")).st_mtime_ns == prepared["mtime_ns"]
