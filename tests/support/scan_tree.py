# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A prepared root for the machine scan's tests: a small Debian-like system whose every path is known.

    facts = make_prepared_root(tmp_path / "root")

builds it (as root: owners, a setuid file, devices) and returns what the scan must find, paths relative to the
root as bytes:

- ``packages``: the installed packages as the report lists them (status order), ``removed``: a package whose
  config files remain (not installed: not listed);
- ``package_paths``: paths the packages list (``unpackaged`` must not be among them), ``modified``,
  ``deleted``: the package file changes ({path: {"package", "conffile"}}; a deleted path may be a directory the
  package lists), ``unchanged``: package files that must not be reported (a rebuild gets them from the
  packages), ``unverifiable``: conffiles without a recorded md5 (``fresh.conf``: newconffile, listed, so not
  reported; ``old.conf``: obsolete, no longer listed, so reported ``added``);
- ``added``: unpackaged regular files {path: content}, ``dirs``: unpackaged directories whose modes and owners
  matter (not all of them: etc/network, boot... are unpackaged too), ``symlinks``:
  {path: target}, ``hardlinks``: lists of paths of one inode, ``sparse``, ``setuid``, ``owners``:
  {path: (uid, gid, owner name or None, group name or None)}, ``newline_name``, ``non_utf8_name``;
- ``skipped``: {"fifo": [...], "socket": [...], "char": [...], "block": [...]}: never records;
- ``excluded``: files under default-excluded directories (tmp, var/cache, var/lib/dpkg...);
- ``system``, ``profile``: parts of system_info / install_profile the scan must return;
- ``wants``: the systemd wants link (enabled unit), ``mtime_ns``: the mtime every file and dir is given;
- ``diverted``: {listed path: where the package's file is} (a local dpkg-divert; the admin's own file at the listed
  path is ``added``), ``non_utf8_packaged``: a package file whose name is not UTF-8,
  ``unpackaged_in_package_dir``: an ``added`` file inside a package's directory.

The dpkg database is in dpkg's own format (status stanzas with Conffiles, a Multi-Arch: same package's
``info/<pkg>:<arch>.*`` files, md5sums lines ``<md5>  <path without leading />``, a diversions file) and the
root has merged /usr (``lib -> usr/lib``) so that listed paths differ from real ones.
"""

import hashlib
import os
import socket
import stat

MTIME_NS = 1_700_000_000_123_456_789
ALICE = (1001, 1001)
ORPHAN = (4242, 4343)

PASSWD = """root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
_apt:x:42:65534::/nonexistent:/usr/sbin/nologin
alice:x:1001:1001:Alice Example,,,:/home/alice:/bin/bash
bob:x:1002:1500:Bob:/home/bob:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
"""

GROUP = """root:x:0:
sudo:x:27:alice
alice:x:1001:
devs:x:1500:alice,bob
nogroup:x:65534:
"""

OS_RELEASE = """PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
"""

INTERFACES = """# interfaces(5) file used by ifup(8) and ifdown(8)
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

auto eth0
iface eth0 inet static
    address 192.0.2.10/24
    gateway 192.0.2.1
"""

INTERFACES_D = """allow-hotplug eth1
iface eth1 inet dhcp
"""

FSTAB = """# <file system> <mount point> <type> <options> <dump> <pass>
UUID=0a1b2c3d-0000-4000-8000-000000000001 / ext4 errors=remount-ro 0 1
/dev/vdb1 /srv/data\\040store xfs defaults,noatime 0 2
/swapfile none swap sw 0 0
"""

# name, version, arch, multi-arch, origin, {listed path: content} (None: a directory), conffiles
PACKAGES = [
    ("dpkg", "1.21.22", "amd64", None, "debian", {
        "/usr": None, "/usr/bin": None, "/usr/bin/dpkg": b"dpkg binary\n"}, {}),
    ("ferry-tool", "1:2.3-4", "amd64", None, None, {
        "/etc": None, "/etc/ferry-tool": None, "/usr": None, "/usr/bin": None, "/usr/share": None,
        "/usr/share/doc": None, "/usr/share/doc/ferry-tool": None, "/usr/share/ferry-tool": None,
        "/usr/bin/ferry-tool": b"#!/bin/sh\necho tool\n",
        "/usr/bin/ferry-helper": b"#!/bin/sh\necho helper\n",
        "/usr/share/doc/ferry-tool/README": b"read me\n",
        "/usr/share/ferry-tool/data.txt": b"data\n",
        "/usr/share/ferry-tool/with space.txt": b"spaced\n",
        "/etc/ferry-tool/tool.conf": b"setting = 1\n",
        "/etc/ferry-tool/keep.conf": b"keep = yes\n",
        "/etc/ferry-tool/fresh.conf": b"fresh = 1\n",
    }, {"/etc/ferry-tool/tool.conf": "", "/etc/ferry-tool/keep.conf": "",
        "/etc/ferry-tool/fresh.conf": "newconffile", "/etc/ferry-tool/old.conf": "obsolete"}),
    ("libfoo", "2.0-beta-3", "amd64", "same", "Ferry Labs", {
        "/lib": None, "/lib/x86_64-linux-gnu": None,
        "/lib/x86_64-linux-gnu/libfoo.so.1": b"\x7fELF libfoo\n",
        "/lib/x86_64-linux-gnu/libfoo.so.1.0": b"\x7fELF libfoo real\n",
    }, {}),
    ("ferry-data", "20240101", "all", "foreign", None, {
        "/opt": None, "/opt/ferry-data": None, "/opt/ferry-data/share": None,
        "/opt/ferry-data/share/a.txt": b"a\n",
        b"/opt/ferry-data/share/caf\xe9.txt": b"latin-1 name\n",
        "/opt/ferry-data/cache": None,
    }, {}),
]


def _b(text):
    return text if isinstance(text, bytes) else text.encode("utf-8")


def _write(root, relative, data, mode=0o644, owner=None):
    path = os.path.join(root, _b(relative))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(_b(data))
    os.chmod(path, mode)
    if owner:
        os.chown(path, *owner)
    return path


def _link(root, relative, target):
    path = os.path.join(root, _b(relative))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.symlink(_b(target), path)


def _md5(data):
    return hashlib.md5(_b(data)).hexdigest()


def _real(listed):
    """Where a listed path is on this merged-/usr root (lib -> usr/lib)."""
    relative = _b(listed).lstrip(b"/")
    return b"usr/" + relative if relative == b"lib" or relative.startswith(b"lib/") else relative


def prepared_for_tests(tmp_path_factory):
    """What a module-scoped fixture returns: a fresh prepared root, or the test skipped when not run as root."""
    if os.geteuid() != 0:
        import pytest
        pytest.skip("the prepared root chowns files and makes devices: run as root")
    return make_prepared_root(tmp_path_factory.mktemp("scan") / "root")


def make_prepared_root(path):
    root = os.fsencode(os.path.abspath(path))
    os.makedirs(root, exist_ok=True)
    facts = {"root": root, "mtime_ns": MTIME_NS}
    _system(root, facts)
    _dpkg(root, facts)
    _unpackaged(root, facts)
    _specials(root, facts)
    _times(root)
    return facts


def _system(root, facts):
    _link(root, "lib", "usr/lib")  # merged /usr, as Debian 12 installs it
    _write(root, "usr/lib/os-release", OS_RELEASE)
    _link(root, "etc/os-release", "../usr/lib/os-release")
    _write(root, "etc/passwd", PASSWD)
    _write(root, "etc/group", GROUP)
    _write(root, "etc/hostname", "scanned-host\n")
    _write(root, "etc/timezone", "Europe/Paris\n")
    _link(root, "etc/localtime", "/usr/share/zoneinfo/Europe/Paris")  # absolute and dangling in this root
    _write(root, "etc/network/interfaces", INTERFACES)
    _write(root, "etc/network/interfaces.d/eth1", INTERFACES_D)
    _write(root, "etc/default/locale", 'LANG="en_US.UTF-8"\nLC_TIME=fr_FR.UTF-8\n')
    _write(root, "etc/default/keyboard", 'XKBMODEL="pc105"\nXKBLAYOUT="fr"\nXKBVARIANT=""\n')
    _write(root, "etc/default/grub", 'GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\n'
                                     'GRUB_CMDLINE_LINUX="console=ttyS0,115200"\n')
    _write(root, "etc/fstab", FSTAB)
    _write(root, "boot/vmlinuz-6.1.0-9-amd64", "old kernel")
    _write(root, "boot/vmlinuz-6.1.0-18-amd64", "new kernel")
    _write(root, "usr/lib/systemd/system/ferry-demo.service", "[Service]\nExecStart=/bin/true\n")
    wants = "etc/systemd/system/multi-user.target.wants/ferry-demo.service"
    _link(root, wants, "/lib/systemd/system/ferry-demo.service")
    facts["wants"] = {wants.encode(): b"/lib/systemd/system/ferry-demo.service"}
    facts["system"] = {"distribution": "debian", "version": "12", "codename": "bookworm", "family": "debian",
                       "arch": "amd64", "kernel": "6.1.0-18-amd64", "hostname": "scanned-host"}
    facts["profile"] = {
        "timezone": "Europe/Paris", "locale": {"LANG": "en_US.UTF-8", "LC_TIME": "fr_FR.UTF-8"},
        "keyboard": {"XKBMODEL": "pc105", "XKBLAYOUT": "fr", "XKBVARIANT": ""},
        "kernel_cmdline": "console=ttyS0,115200 quiet", "selinux": None,
        "users": ["alice", "bob"], "groups": ["alice", "devs"],
        "filesystems": [("/", "ext4"), ("/srv/data store", "xfs")], "swap": ["/swapfile"],
        "network": {"lo": "loopback", "eth0": "static", "eth1": "dhcp"},
        "eth0": {"address": "192.0.2.10", "netmask": "24", "gateway": "192.0.2.1"},
    }


def _dpkg(root, facts):
    info = os.path.join(root, b"var/lib/dpkg/info")
    os.makedirs(info)
    stanzas, listed, unchanged, packages = [], set(), [], []
    for name, version, arch, multi, origin, files, conffiles in PACKAGES:
        stem = "%s:%s" % (name, arch) if multi == "same" else name
        lines, sums = [], []
        for entry, content in files.items():
            lines.append(_b(entry))
            listed.add(_b(entry).lstrip(b"/"))
            listed.add(_real(entry))
            if content is None:
                os.makedirs(os.path.join(root, _real(entry)), exist_ok=True)
                continue
            _write(root, _real(entry), content)
            if entry not in conffiles:
                sums.append(b"%s  %s\n" % (_md5(content).encode(), _b(entry).lstrip(b"/")))
                unchanged.append(_real(entry))
        with open(os.path.join(info, stem.encode() + b".list"), "wb") as handle:
            handle.write(b"/.\n" + b"".join(line + b"\n" for line in lines))
        if sums:
            with open(os.path.join(info, stem.encode() + b".md5sums"), "wb") as handle:
                handle.write(b"".join(sums))
        conf_lines = []
        for conffile, flag in conffiles.items():
            md5 = _md5(files.get(conffile, b"")) if flag in ("", "obsolete") else flag
            conf_lines.append(" %s %s%s" % (conffile, md5, " obsolete" if flag == "obsolete" else ""))
            if flag == "":
                unchanged.append(_real(conffile))
        if conffiles:
            _write(root, "var/lib/dpkg/info/%s.conffiles" % stem,
                   "".join(c + "\n" for c, flag in conffiles.items() if flag != "obsolete"))
        stanza = ["Package: %s" % name, "Status: install ok installed", "Priority: optional",
                  "Installed-Size: 12", "Maintainer: Ferry <ferry@example.org>", "Architecture: %s" % arch]
        if multi:
            stanza.append("Multi-Arch: %s" % multi)
        stanza.append("Version: %s" % version)
        if origin:
            stanza.append("Origin: %s" % origin)
        if conf_lines:
            stanza.append("Conffiles:\n" + "\n".join(conf_lines))
        stanza.append("Description: %s\n test package\n .\n second paragraph" % name)
        stanzas.append("\n".join(stanza) + "\n")
        packages.append({"name": name, "version": version, "arch": arch, "origin": origin})
    stanzas.append("Package: oldpkg\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 0.9-1\n"
                   "Conffiles:\n /etc/oldpkg.conf 00000000000000000000000000000000\n")
    _write(root, "etc/oldpkg.conf", "left behind\n")
    _write(root, "var/lib/dpkg/info/oldpkg.list", "/etc/oldpkg.conf\n")
    _write(root, "var/lib/dpkg/status", "\n".join(stanzas))
    # local diversion: the package's ferry-helper lives at ferry-helper.real, the admin's own is in its place
    os.rename(os.path.join(root, b"usr/bin/ferry-helper"), os.path.join(root, b"usr/bin/ferry-helper.real"))
    _write(root, "usr/bin/ferry-helper", "#!/bin/sh\necho the admin's helper\n", 0o755)
    _write(root, "var/lib/dpkg/diversions", "/usr/bin/ferry-helper\n/usr/bin/ferry-helper.real\n:\n")
    unchanged.remove(b"usr/bin/ferry-helper")
    unchanged.append(b"usr/bin/ferry-helper.real")
    listed.discard(b"usr/bin/ferry-helper")
    listed.add(b"usr/bin/ferry-helper.real")
    # the changes the scan must find
    _write(root, "usr/bin/ferry-tool", "#!/bin/sh\necho patched tool\n", 0o755)
    _write(root, "etc/ferry-tool/tool.conf", "setting = 2\n", 0o640, ALICE)
    _write(root, "etc/ferry-tool/old.conf", "obsolete, still here\n")
    _write(root, "etc/ferry-tool/fresh.conf", "fresh = 2\n")  # newconffile: no md5 to compare, not reported
    unchanged.append(b"etc/ferry-tool/fresh.conf")
    os.unlink(os.path.join(root, b"usr/share/doc/ferry-tool/README"))
    os.unlink(os.path.join(root, b"usr/lib/x86_64-linux-gnu/libfoo.so.1"))
    _link(root, "usr/lib/x86_64-linux-gnu/libfoo.so.1", "libfoo.so.1.0")  # a file turned into a symlink
    os.rmdir(os.path.join(root, b"opt/ferry-data/cache"))  # a package directory removed
    for path in (b"usr/bin/ferry-tool", b"etc/ferry-tool/tool.conf", b"usr/share/doc/ferry-tool/README",
                 b"usr/lib/x86_64-linux-gnu/libfoo.so.1"):
        unchanged.remove(path) if path in unchanged else None
    listed.discard(b".")
    facts.update({
        "packages": packages, "removed": ["oldpkg"], "package_paths": listed, "unchanged": unchanged,
        "modified": {b"usr/bin/ferry-tool": {"package": "ferry-tool", "conffile": False, "type": "file"},
                     b"etc/ferry-tool/tool.conf": {"package": "ferry-tool", "conffile": True, "type": "file"},
                     b"usr/lib/x86_64-linux-gnu/libfoo.so.1": {"package": "libfoo", "conffile": False,
                                                               "type": "symlink"}},
        "deleted": {b"usr/share/doc/ferry-tool/README": {"package": "ferry-tool", "conffile": False},
                    b"opt/ferry-data/cache": {"package": "ferry-data", "conffile": False}},
        "unverifiable": [b"etc/ferry-tool/fresh.conf", b"etc/ferry-tool/old.conf"],
        "diverted": {b"usr/bin/ferry-helper": b"usr/bin/ferry-helper.real"},
        "non_utf8_packaged": b"opt/ferry-data/share/caf\xe9.txt",
    })


def _unpackaged(root, facts):
    added = {
        b"etc/ferry-local.conf": b"local = true\n",
        b"etc/oldpkg.conf": b"left behind\n",
        b"etc/ferry-tool/old.conf": b"obsolete, still here\n",
        b"usr/bin/ferry-helper": b"#!/bin/sh\necho the admin's helper\n",
        b"usr/lib/systemd/system/ferry-demo.service": b"[Service]\nExecStart=/bin/true\n",
        b"opt/ferry-data/local/notes.txt": b"notes inside a package's directory\n",
        b"opt/app/bin/run.sh": b"#!/bin/sh\nexec true\n",
        b"opt/app/bin/suid-helper": b"\x7fELF pretend setuid\n",
        b"opt/app/data/blob.bin": bytes(range(256)) * 64,
        b"opt/app/empty": b"",
        b"opt/app/names/line\nbreak.txt": b"newline in my name\n",
        b"opt/app/names/latin1-\xe9.txt": b"not UTF-8 name\n",
        b"opt/app/hard/a": b"one inode, two names\n",
        b"home/alice/.profile": b"export EDITOR=vi\n",
    }
    owners = {b"etc/ferry-local.conf": ALICE, b"opt/app/data/blob.bin": ORPHAN, b"opt/app/data": ORPHAN,
              b"home/alice": ALICE, b"home/alice/.profile": ALICE, b"etc/ferry-tool/tool.conf": ALICE}
    for relative, content in added.items():
        if not os.path.lexists(os.path.join(root, relative)):
            _write(root, relative, content, 0o755 if relative.startswith(b"opt/app/bin/") else 0o644)
    for relative, owner in owners.items():
        os.chown(os.path.join(root, relative), *owner, follow_symlinks=False)
    os.chmod(os.path.join(root, b"opt/app/bin/suid-helper"), 0o4755)
    os.chmod(os.path.join(root, b"home/alice"), 0o750)
    os.link(os.path.join(root, b"opt/app/hard/a"), os.path.join(root, b"opt/app/hard/b"))
    sparse = os.path.join(root, b"opt/app/sparse.img")
    with open(sparse, "wb") as handle:
        handle.seek(1 << 20)
        handle.write(b"island" * 1000)
        handle.truncate(8 << 20)
    added[b"opt/app/sparse.img"] = None  # content: 8 MiB, zeros but 6000 bytes at 1 MiB
    added[b"opt/app/hard/b"] = added[b"opt/app/hard/a"]
    symlinks = {b"opt/app/links/relative": b"../bin/run.sh", b"opt/app/links/absolute": b"/etc/hostname",
                b"opt/app/links/dangling": b"../nowhere", b"opt/app/links/into-lib": b"/lib/x86_64-linux-gnu"}
    for relative, target in symlinks.items():
        _link(root, relative, target)
    symlinks.update(facts["wants"])
    symlinks.update({b"lib": b"usr/lib", b"etc/os-release": b"../usr/lib/os-release",
                     b"etc/localtime": b"/usr/share/zoneinfo/Europe/Paris"})
    excluded = [b"tmp/junk.txt", b"var/cache/apt/pkgcache.bin", b"var/tmp/x", b"var/lib/apt/lists/index"]
    excluded_existing = [b"var/lib/dpkg/status"]
    for relative in excluded:
        _write(root, relative, b"excluded\n")
    facts.update({
        "added": added, "symlinks": symlinks, "hardlinks": [[b"opt/app/hard/a", b"opt/app/hard/b"]],
        "sparse": b"opt/app/sparse.img", "setuid": b"opt/app/bin/suid-helper",
        "newline_name": b"opt/app/names/line\nbreak.txt", "non_utf8_name": b"opt/app/names/latin1-\xe9.txt",
        "dirs": [b"opt/app", b"opt/app/bin", b"opt/app/data", b"opt/app/names", b"opt/app/hard",
                 b"opt/app/links", b"opt/ferry-data/local", b"home/alice"],
        "owners": {relative: owner + (_name(owner[0], PASSWD), _name(owner[1], GROUP))
                   for relative, owner in owners.items()},
        "excluded": excluded + excluded_existing,
        "unpackaged_in_package_dir": b"opt/ferry-data/local/notes.txt",
    })


def _name(number, table):
    for line in table.splitlines():
        fields = line.split(":")
        if int(fields[2]) == number:
            return fields[0]
    return None


def _specials(root, facts):
    special = os.path.join(root, b"opt/app/special")
    os.makedirs(special)
    os.mkfifo(os.path.join(special, b"fifo"))
    os.mknod(os.path.join(special, b"null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(os.path.join(special, b"loop9"), 0o660 | stat.S_IFBLK, os.makedev(7, 9))
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(os.path.join(special, b"sock"))
    finally:
        server.close()
    facts["dirs"].append(b"opt/app/special")
    facts["skipped"] = {"fifo": [b"opt/app/special/fifo"], "char": [b"opt/app/special/null"],
                        "block": [b"opt/app/special/loop9"], "socket": [b"opt/app/special/sock"]}


def _times(root):
    """Every entry gets MTIME_NS (symlinks too), deepest first so that a directory's time is its own."""
    for directory, dirs, files in os.walk(root, topdown=False):
        for name in files + dirs:
            os.utime(os.path.join(directory, name), ns=(MTIME_NS, MTIME_NS), follow_symlinks=False)
    os.utime(root, ns=(MTIME_NS, MTIME_NS))
