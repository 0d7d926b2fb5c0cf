# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a scanned root is (distribution, arch, kernel, host name) and how it was installed (file systems,
time zone, locale, keyboard, kernel parameters, users, groups, network, SELinux): the report header's
``system`` and ``install_profile``.

Everything is read from files under ``root``, so a mounted disk image scans like a live system; only when
``root`` is ``/`` are the running kernel (``uname``, ``/proc/cmdline``) and ``dpkg`` asked as well.
Every path is resolved inside ``root`` as a chroot would (:func:`root_path`: a symlink's absolute target is
taken from ``root``, a ``..`` above ``root`` is refused), and every file read is bounded (:data:`CONFIG_LIMIT`).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import errno
import glob
import os
import re
import stat
import subprocess

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError

CONFIG_LIMIT = 1 << 20  # a configuration file bigger than this is not one: refused, not read
MAX_LINKS = 40  # symlinks followed resolving one path, as the kernel's ELOOP limit

# shadow's defaults when etc/login.defs does not say (useradd(8))
DEFAULT_ID_RANGE = (1000, 60000)

Names = collections.namedtuple("Names", "by_id by_name")


# --- paths and files inside root -------------------------------------------------------------------------


def root_path(root, relative):
    """The real path of ``relative`` (text or bytes, with or without a leading ``/``) under ``root``, symlinks
    resolved as inside a chroot: an absolute target starts again at ``root``, a relative one from the link's
    directory, and a ``..`` above ``root`` is refused (it would leave the scanned tree). None when a component
    does not exist. The last component is resolved too."""
    resolved, missing = resolve_in_root(root, relative)
    return None if missing else resolved


def resolve_in_root(root, relative):
    """(real path of the longest existing part of ``relative`` under ``root``, the components left after the
    first missing one): :func:`root_path` that also says where a missing path would be, so that it is never
    looked up through a symlink the kernel would follow out of ``root``."""
    root = os.path.abspath(os.fsencode(root))
    parts = _parts(os.fsencode(relative))
    done = []
    links = 0
    while parts:
        name = parts.pop(0)
        if name == b"..":
            if not done:
                raise FerryError("%s: a '..' leads out of the scanned root %s: refused"
                                 % (_show(relative), _show(root)))
            done.pop()
            continue
        current = os.path.join(root, *(done + [name]))
        try:
            info = os.lstat(current)
        except (FileNotFoundError, NotADirectoryError):
            return os.path.join(root, *done) if done else root, [name] + parts
        if not stat.S_ISLNK(info.st_mode):
            done.append(name)
            continue
        links += 1
        if links > MAX_LINKS:
            raise FerryError("%s: too many levels of symbolic links under %s" % (_show(relative), _show(root)))
        target = os.readlink(current)
        if target.startswith(b"/"):
            done = []
        parts = _parts(target) + parts
    return (os.path.join(root, *done) if done else root), []


def _parts(path):
    return [part for part in path.split(b"/") if part not in (b"", b".")]


def _show(path):
    return os.fsdecode(path) if isinstance(path, bytes) else path


def read_config(root, relative, limit=CONFIG_LIMIT):
    """The text of a configuration file under ``root`` (UTF-8, bad bytes replaced), None when it is absent.

    Only a regular file is read (a FIFO or a device named like a configuration file would block or never end)
    and only up to ``limit`` bytes: a bigger one is refused naming it.
    """
    path = root_path(root, relative)
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise FerryError("cannot read %s: %s" % (_show(path), exc.strerror))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FerryError("%s is not a regular file: not read as %s" % (_show(path), _show(relative)))
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise FerryError("%s is bigger than %d bytes: not a configuration file this scan reads"
                         % (_show(path), limit))
    return data.decode("utf-8", "replace")


def config_lines(root, relative, limit=CONFIG_LIMIT):
    """The lines of a configuration file, comments (``#``) and blank lines dropped, stripped; [] when absent."""
    text = read_config(root, relative, limit)
    lines = []
    for line in (text or "").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def shell_vars(root, relative):
    """``KEY=value`` lines of a shell-style file (os-release, etc/default/*), quotes removed; {} when absent."""
    found = {}
    for line in config_lines(root, relative):
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, equals, value = line.partition("=")
        if not equals or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            continue
        found[key] = _unquote(value.strip())
    return found


def _unquote(value):
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        inner = value[1:-1]
        return re.sub(r'\\([\\"$`])', r"\1", inner) if value[0] == '"' else inner
    return value


def _is_host(root):
    return os.path.realpath(root) == "/"


# --- users and groups -------------------------------------------------------------------------------------


def passwd_entries(root):
    """The entries of the root's etc/passwd: dicts name, uid, gid, gecos, home, shell (malformed lines and
    NIS ``+``/``-`` lines skipped)."""
    entries = []
    for line in config_lines(root, "etc/passwd"):
        fields = line.split(":")
        if len(fields) != 7 or not fields[0] or fields[0][0] in "+-":
            continue
        uid, gid = _number(fields[2]), _number(fields[3])
        if uid is None or gid is None:
            continue
        entries.append({"name": fields[0], "uid": uid, "gid": gid, "gecos": fields[4], "home": fields[5],
                        "shell": fields[6]})
    return entries


def group_entries(root):
    """The entries of the root's etc/group: dicts name, gid, members (a list of user names)."""
    entries = []
    for line in config_lines(root, "etc/group"):
        fields = line.split(":")
        if len(fields) != 4 or not fields[0] or fields[0][0] in "+-":
            continue
        gid = _number(fields[2])
        if gid is None:
            continue
        members = [name for name in fields[3].split(",") if name]
        entries.append({"name": fields[0], "gid": gid, "members": members})
    return entries


def _number(text):
    return int(text) if text.isdigit() else None


def _names(entries, key):
    """Both directions; the first entry wins a duplicate id or name, as getpwuid/getpwnam do."""
    by_id, by_name = {}, {}
    for entry in entries:
        by_id.setdefault(entry[key], entry["name"])
        by_name.setdefault(entry["name"], entry[key])
    return Names(by_id, by_name)


def read_passwd(root):
    """``Names(by_id, by_name)``: uid -> user name and user name -> uid, from the root's etc/passwd (not the
    scanning host's). Both empty when the file is absent."""
    return _names(passwd_entries(root), "uid")


def read_group(root):
    """``Names(by_id, by_name)``: gid -> group name and group name -> gid, from the root's etc/group."""
    return _names(group_entries(root), "gid")


def id_ranges(root):
    """(uid_min, uid_max), (gid_min, gid_max) of regular accounts: etc/login.defs, else shadow's defaults."""
    defs = {}
    for line in config_lines(root, "etc/login.defs"):
        fields = line.split()
        if len(fields) >= 2 and fields[1].isdigit():
            defs[fields[0]] = int(fields[1])
    low, high = DEFAULT_ID_RANGE
    return ((defs.get("UID_MIN", low), defs.get("UID_MAX", high)),
            (defs.get("GID_MIN", low), defs.get("GID_MAX", high)))


def profile_users(root):
    """Regular users (uid in the login.defs range), each with ``groups``: the names of its supplementary groups
    (system ones included: ``sudo`` matters to a rebuild)."""
    (low, high), _gids = id_ranges(root)
    groups = group_entries(root)
    users = []
    for entry in passwd_entries(root):
        if low <= entry["uid"] <= high:
            entry["groups"] = [group["name"] for group in groups if entry["name"] in group["members"]]
            users.append(entry)
    return users


def profile_groups(root):
    """Regular groups (gid in the login.defs range) with their members."""
    _uids, (low, high) = id_ranges(root)
    return [entry for entry in group_entries(root) if low <= entry["gid"] <= high]


# --- the machine ----------------------------------------------------------------------------------------

FAMILIES = ("debian", "rhel", "fedora", "suse", "arch", "alpine", "gentoo")


def system_info(root):
    """The report header's ``system``: distribution, version, codename, family, arch, kernel, hostname."""
    release = shell_vars(root, "etc/os-release") or shell_vars(root, "usr/lib/os-release")
    distribution = release.get("ID") or None
    like = release.get("ID_LIKE", "").split()
    return {
        "distribution": distribution,
        "version": release.get("VERSION_ID") or None,
        "codename": release.get("VERSION_CODENAME") or None,
        "family": _family(distribution, like),
        "arch": _arch(root),
        "kernel": _kernel(root),
        "hostname": _hostname(root),
    }


def _family(distribution, like):
    """debian for Debian and Ubuntu, redhat for RHEL, Fedora, CentOS, Rocky... (ansible_os_family's names)."""
    for name in [distribution] + like:
        if name in ("debian", "ubuntu"):
            return "debian"
        if name in ("rhel", "fedora", "centos", "redhat"):
            return "redhat"
        if name in ("suse", "opensuse", "sles"):
            return "suse"
        if name in FAMILIES:
            return name
    return distribution


def _arch(root):
    """dpkg's architecture (the one the ``dpkg`` package itself has: always the native one), else rpm's, else
    the running machine's when ``root`` is ``/``; None for a foreign root that says nothing."""
    from ansible_collections.ferry.migrate.plugins.module_utils.scan import packages  # packages imports us

    arch = packages.dpkg_native_arch(root)
    if arch is None and _is_host(root):
        arch = _command(["dpkg", "--print-architecture"])
    if arch is None:
        arch = packages.rpm_native_arch(root)
    if arch is None and _is_host(root):
        arch = os.uname().machine
    return arch


def _command(argv):
    try:
        answer = subprocess.run(  # pylint: disable=ansible-bad-function  # the engine runs without a module
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = answer.stdout.decode("utf-8", "replace").strip()
    return text if answer.returncode == 0 and text else None


def _kernel(root):
    """The running kernel when ``root`` is ``/``; else the newest installed one (boot/vmlinuz-*, lib/modules/*)."""
    if _is_host(root):
        return os.uname().release
    for pattern, prefix in (("boot", "vmlinuz-"), ("lib/modules", ""), ("usr/lib/modules", "")):
        directory = root_path(root, pattern)
        if directory is None or not os.path.isdir(directory):
            continue
        names = [os.fsdecode(name)[len(prefix):] for name in os.listdir(directory)
                 if os.fsdecode(name).startswith(prefix) and len(name) > len(prefix)]
        if names:
            return max(names, key=version_key)
    return None


def version_key(text):
    """Sort key for kernel release strings: digit runs as numbers (6.1.10 after 6.1.9)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.findall(r"\d+|\D+", text)]


def _hostname(root):
    lines = config_lines(root, "etc/hostname")
    return lines[0] if lines else None


# --- how it was installed -------------------------------------------------------------------------------


def install_profile(root):
    """The report header's ``install_profile``. File systems come from etc/fstab even on a running host: it is
    the configured truth a rebuild repeats (proc/mounts adds what was mounted by hand or by systemd units)."""
    fstab = fstab_entries(root)
    return {
        "filesystems": [entry for entry in fstab if entry["type"] != "swap"],
        "swap": [entry for entry in fstab if entry["type"] == "swap"],
        "timezone": timezone(root),
        "locale": _merged(shell_vars(root, "etc/default/locale"), shell_vars(root, "etc/locale.conf")),
        "keyboard": _merged(shell_vars(root, "etc/default/keyboard"), shell_vars(root, "etc/vconsole.conf")),
        "kernel_cmdline": kernel_cmdline(root),
        "users": profile_users(root),
        "groups": profile_groups(root),
        "network": network(root),
        "selinux": selinux(root),
    }


def _merged(first, second):
    merged = dict(second)
    merged.update(first)
    return merged


def fstab_entries(root):
    """etc/fstab lines as dicts device, mountpoint, type, options, dump, passno (octal escapes decoded)."""
    entries = []
    for line in config_lines(root, "etc/fstab"):
        fields = [_fstab_unescape(field) for field in line.split()]
        if len(fields) < 3:
            continue
        fields += ["defaults", "0", "0"][len(fields) - 3:]
        entries.append({"device": fields[0], "mountpoint": fields[1], "type": fields[2], "options": fields[3],
                        "dump": _number(fields[4]) or 0, "passno": _number(fields[5]) or 0})
    return entries


def _fstab_unescape(field):
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def timezone(root):
    """etc/timezone (Debian), else the zone named by the etc/localtime link (…/zoneinfo/<zone>)."""
    lines = config_lines(root, "etc/timezone")
    if lines:
        return lines[0]
    etc = root_path(root, "etc")
    try:
        if etc is None:
            return None
        path = os.path.join(etc, b"localtime")
        target = os.fsdecode(os.readlink(path))
    except OSError:
        return None
    marker = "zoneinfo/"
    if marker not in target:
        return None
    zone = target.rsplit(marker, 1)[1]
    return zone[6:] if zone.startswith("posix/") else zone


def kernel_cmdline(root):
    """proc/cmdline of the running host when ``root`` is ``/``; else GRUB_CMDLINE_LINUX and
    GRUB_CMDLINE_LINUX_DEFAULT of etc/default/grub, joined; None when neither says."""
    if _is_host(root):
        text = read_config("/", "proc/cmdline")
        if text is not None and text.strip():
            return text.strip()
    grub = shell_vars(root, "etc/default/grub")
    parts = [grub.get(key, "").strip() for key in ("GRUB_CMDLINE_LINUX", "GRUB_CMDLINE_LINUX_DEFAULT")]
    joined = " ".join(part for part in parts if part)
    return joined or None


def selinux(root):
    """SELINUX= of etc/selinux/config (enforcing, permissive, disabled); None when the file is absent."""
    value = shell_vars(root, "etc/selinux/config").get("SELINUX")
    return value.lower() if value else None


# --- network ------------------------------------------------------------------------------------------


def network(root):
    """Interfaces as configured: ifupdown (etc/network/interfaces and what it sources), netplan
    (etc/netplan/*.yaml, when PyYAML is there), RHEL ifcfg files. Dicts name, method, address, netmask,
    gateway, source (the file, relative to root); ``auto`` for ifupdown."""
    found = ifupdown(root)
    found.extend(netplan(root))
    found.extend(ifcfg(root))
    return found


IFACE_KEYS = ("address", "netmask", "gateway")


def ifupdown(root, relative="etc/network/interfaces", seen=None):
    """``iface`` stanzas of an ifupdown file, with ``source`` / ``source-directory`` followed (each file once)."""
    seen = set() if seen is None else seen
    if relative in seen:
        return []
    seen.add(relative)
    found, auto, current = [], set(), None
    for line in config_lines(root, relative):
        words = line.split()
        keyword = words[0]
        if keyword in ("auto", "allow-auto") or keyword.startswith("allow-"):
            auto.update(words[1:])
        elif keyword == "iface" and len(words) >= 4:
            current = {"name": words[1], "family": words[2], "method": words[3], "address": None,
                       "netmask": None, "gateway": None, "source": relative}
            found.append(current)
        elif keyword in ("source", "source-directory") and len(words) >= 2:
            current = None
            for included in _sourced(root, relative, keyword, words[1]):
                found.extend(ifupdown(root, included, seen))
        elif keyword in ("mapping", "rename"):
            current = None
        elif current is not None and keyword in IFACE_KEYS and len(words) >= 2:
            current[keyword] = words[1]
    for entry in found:
        if entry["source"] == relative:
            entry["auto"] = entry["name"] in auto
        _split_cidr(entry)
    return found


def _split_cidr(entry):
    address = entry.get("address")
    if address and "/" in address and not entry.get("netmask"):
        entry["address"], entry["netmask"] = address.split("/", 1)


def _sourced(root, relative, keyword, pattern):
    """Files (relative to root) a source line names: a glob for ``source``, the files of a directory whose names
    are made of letters, digits, ``_`` and ``-`` for ``source-directory`` (run-parts' rule, as ifupdown)."""
    if not pattern.startswith("/"):
        pattern = os.path.join("/", os.path.dirname(relative), pattern)
    base = os.fsdecode(root_path(root, "") or root)
    if keyword == "source-directory":
        directory = root_path(root, pattern)
        if directory is None or not os.path.isdir(directory):
            return []
        names = sorted(os.fsdecode(name) for name in os.listdir(directory))
        relative_dir = os.path.relpath(os.fsdecode(directory), base)
        return [os.path.join(relative_dir, name) for name in names if re.match(r"^[A-Za-z0-9_-]+$", name)]
    matches = sorted(glob.glob(os.path.join(base, pattern.lstrip("/"))))
    return [os.path.relpath(match, base) for match in matches]


def netplan(root):
    """Ethernets of etc/netplan/*.yaml; [] without PyYAML (a managed host may lack it) or on a bad file."""
    try:
        import yaml
    except ImportError:
        return []
    directory = root_path(root, "etc/netplan")
    if directory is None or not os.path.isdir(directory):
        return []
    found = []
    for name in sorted(os.fsdecode(name) for name in os.listdir(directory)):
        if not name.endswith(".yaml"):
            continue
        relative = "etc/netplan/" + name
        try:
            document = yaml.safe_load(read_config(root, relative) or "")
        except yaml.YAMLError:
            continue
        found.extend(_netplan_ethernets(document, relative))
    return found


def _netplan_ethernets(document, relative):
    network_ = (document or {}).get("network") if isinstance(document, dict) else None
    ethernets = network_.get("ethernets") if isinstance(network_, dict) else None
    found = []
    for name, config in sorted((ethernets or {}).items()):
        config = config if isinstance(config, dict) else {}
        addresses = config.get("addresses") or []
        address = str(addresses[0]) if addresses else None
        entry = {"name": str(name), "method": "dhcp" if config.get("dhcp4") else ("static" if address else "manual"),
                 "address": address, "netmask": None, "gateway": config.get("gateway4"), "source": relative}
        _split_cidr(entry)
        found.append(entry)
    return found


def ifcfg(root):
    """RHEL's etc/sysconfig/network-scripts/ifcfg-<name>: BOOTPROTO (none/static -> static), IPADDR,
    NETMASK or PREFIX, GATEWAY."""
    directory = root_path(root, "etc/sysconfig/network-scripts")
    if directory is None or not os.path.isdir(directory):
        return []
    found = []
    for name in sorted(os.fsdecode(name) for name in os.listdir(directory)):
        if not name.startswith("ifcfg-") or name.endswith((".bak", ".orig", "~")):
            continue
        relative = "etc/sysconfig/network-scripts/" + name
        values = shell_vars(root, relative)
        proto = values.get("BOOTPROTO", "none").lower()
        found.append({"name": values.get("DEVICE") or name[6:],
                      "method": "static" if proto in ("none", "static", "") else proto,
                      "address": values.get("IPADDR") or None,
                      "netmask": values.get("NETMASK") or values.get("PREFIX") or None,
                      "gateway": values.get("GATEWAY") or None, "source": relative})
    return found
