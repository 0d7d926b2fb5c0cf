#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: host_scan
short_description: Scan a machine into a report of its system, packages and files, for a rebuild elsewhere
version_added: 0.2.0
description:
  - Writes O(dest), a scan report (gzip, JSON Lines) of the machine or of the tree at O(root) - its header
    (distribution, version, architecture, kernel, host name; the install profile - file systems, swap, time zone,
    locale, keyboard, kernel command line, users, groups, network interfaces, SELinux), the native packages
    (dpkg, or rpm through C(rpm --root)), the package files that were modified or deleted, and every file,
    directory and symlink that belongs to no package under O(roots). M(ferry.migrate.scan_upload) sends a report
    and the content it names to a store; M(ferry.migrate.overlay_apply) rebuilds a machine from them, and
    M(ferry.migrate.scan_to_role) turns a report into an Ansible role.
  - A file record holds the path relative to O(root) (as bytes - names that are not UTF-8 are kept, base64), the
    type, the mode with setuid, setgid and sticky bits, uid and gid with their names from the B(scanned) root's
    C(etc/passwd) and C(etc/group) (null when the name is unknown there), size, mtime in nanoseconds, the sha256 of
    a regular file, the target of a symlink as stored (relative, absolute or dangling, never followed), a hard
    link group number for regular files of more than one link (the first path of the group carries the content,
    the others are links to it; a group may have one path when the others were not scanned), C(sparse) for
    files with holes, and the package and change (C(added), C(modified), C(deleted)).
  - Character and block devices, FIFOs and sockets are never recorded, only counted (C(skipped) in RV(counts)); files
    and directories that cannot be read are counted and named in RV(warnings), and the scan goes on.
  - Names are read as bytes, each entry with C(lstat); the walk never follows a symlink. A path a package lists
    is left out (the package brings it back) unless it changed; directories of unpackaged trees are listed so
    their modes and owners come back.
  - The report is written under a temporary name and renamed into place, in bounded memory whatever the number
    of files (the walk holds the directories it lists ahead, each as big as its directory); a report without its
    final summary line is refused by every reader.
  - "Rescans are fast: the step keeps a stat cache (C(steps/<step>.statcache) in O(state_dir)): a regular file
    whose path, size, mtime, ctime and inode are unchanged since the last complete scan is not read again. The
    cache is replaced only when a scan completes, and left as it is when it would come out the same. Directories
    are listed, and the other files hashed, on O(hash_workers) processes. With O(force), the cache is not used:
    every file is read again."
  - The step runs every time (a machine changes between two scans with the same options). When the new report
    has the same content as the one at O(dest) (the same header but for its time, packages and files), O(dest)
    is left as it is and the task reports no change; otherwise O(dest) is replaced.
author:
  - ferry.migrate maintainers (@ferry-migrate)
extends_documentation_fragment:
  - ferry.migrate.state
  - ansible.builtin.action_common_attributes
options:
  root:
    description:
      - The root of the tree to scan; C(/) for the machine itself, or the mount point of another system's root
        file system. Users, groups, packages and the install profile are read from this root.
      - An empty string is refused.
    type: path
    default: /
  dest:
    description:
      - The report file to write (for example C(/srv/ferry/state/scan/report.jsonl.gz)). Its directory is created.
      - Inside O(root) it must be under an excluded path (O(state_dir), which O(default_excludes) leaves out, or one
        of O(excludes)). A report written in the tree it describes would change that tree at every scan (itself,
        its directory's time), so no rescan could come out unchanged. Otherwise the task fails before it scans.
      - An empty string is refused.
    type: path
    required: true
  roots:
    description:
      - Paths inside O(root) (absolute, as on the scanned machine) where unpackaged files are looked for.
        Each must exist; C(..) is refused. A path inside another one of the list adds nothing.
      - Package files that were modified or deleted are reported wherever they are.
    type: list
    elements: str
    default: ["/"]
  excludes:
    description:
      - Paths inside O(root) to leave out, each with everything below it (C(/srv/backups)). A final C(*) makes the
        last name a prefix (C(/var/log/journal*) leaves out C(/var/log/journal) and C(/var/log/journal.old));
        every other character is literal.
      - They apply to modified package files too.
    type: list
    elements: str
    default: []
  default_excludes:
    description:
      - Also leave out C(/proc), C(/sys), C(/dev), C(/run), C(/tmp), C(/var/tmp), C(/var/cache), C(/var/run),
        C(/var/lock), C(/var/lib/dpkg), C(/var/lib/apt/lists), C(/var/lib/rpm), C(/lost+found), C(/media) and
        C(/mnt), and O(state_dir) when it is inside O(root).
    type: bool
    default: true
  packages:
    description:
      - Read the native packages (dpkg's database, or C(rpm --root)), leave the files they own out of the report
        and report the package files whose content differs from the package's (md5) or that are missing.
      - With C(false), every file under O(roots) is reported as added and no package is listed.
    type: bool
    default: true
  hash_workers:
    description:
      - Processes listing the directories and hashing the files that are not in the stat cache, from 1 to 64. By
        default the CPUs this process may run on.
    type: int
  one_file_system:
    description:
      - Do not enter directories on another file system than the O(roots) they are under (a mount point is
        recorded as a directory, its content is not scanned).
    type: bool
    default: true
notes:
  - Create the file C(STOP) in O(state_dir) to stop the scan between two batches of files; the step is then
    recorded as failed and O(dest) is left as it was. A later run scans again without reading again the files the
    stopped (or killed) scan hashed - their stat cache rows are kept aside as it goes - nor those of the last
    complete scan that did not change.
  - Run it as root to read every file and see every owner.
attributes:
  check_mode:
    support: full
    details: Walks, reads the packages and hashes the files missing from the stat cache as a real run does; writes
      neither the report nor the cache. Reports C(changed) when the report would differ in content from the one
      at O(dest) (or there is none).
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
seealso:
  - module: ferry.migrate.scan_upload
  - module: ferry.migrate.overlay_apply
  - module: ferry.migrate.scan_to_role
"""

EXAMPLES = r"""
- name: Scan this machine (the report under the state directory, which the scan leaves out)
  ferry.migrate.host_scan:
    dest: /srv/ferry/state/scan/report.jsonl.gz
    state_dir: /srv/ferry/state

- name: Scan an old system's disk mounted on /mnt/old, only under /etc, /opt and /srv
  ferry.migrate.host_scan:
    root: /mnt/old
    dest: /srv/ferry/scan/old.jsonl.gz
    roots: [/etc, /opt, /srv]
    excludes: [/srv/backups, /var/log/journal*]
    step: scan_old
  register: scan

- name: Show what was found
  ansible.builtin.debug:
    msg: "{{ scan.counts.files }} files, {{ scan.counts.packages }} packages"
"""

RETURN = r"""
report:
  description: The report's path (O(dest)).
  returned: success
  type: str
  sample: /srv/ferry/state/scan/report.jsonl.gz
sha256:
  description: The sha256 of the report file. In check mode, null when a new report would be written (its content
    depends on the time it is written).
  returned: success
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
content_sha256:
  description: The digest of the report's content (header without its time, every package and file line), the
    same for two scans of an unchanged machine.
  returned: success
  type: str
counts:
  description: The report summary's counts. C(files), C(dirs), C(symlinks) are the records of each type (added and
    modified), C(bytes) the size of the regular files whose content the report names, C(hashed) the files read
    this time, C(cached) those the stat cache answered, C(skipped) what is never a record (C(fifo), C(socket),
    C(char), C(block)) or could not be read (C(unreadable)).
  returned: success
  type: dict
  sample: {"packages": 412, "files": 5210, "dirs": 640, "symlinks": 95, "modified": 4, "deleted": 1,
           "bytes": 734003200, "hashed": 12, "cached": 5196,
           "skipped": {"fifo": 1, "socket": 2, "char": 0, "block": 0, "unreadable": 0}}
system:
  description: The report header's system (distribution, version, codename, family, arch, kernel, hostname).
  returned: success
  type: dict
  sample: {"distribution": "debian", "version": "12", "codename": "bookworm", "family": "debian",
           "arch": "amd64", "kernel": "6.1.0-18-amd64", "hostname": "web1"}
warnings:
  description: Files and directories that could not be read (a sample; their number is in C(skipped) of RV(counts)).
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import exit_with
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import state_argument_spec
from ansible_collections.ferry.migrate.plugins.module_utils.scan.scan import run


def argument_spec():
    spec = dict(
        root=dict(type="path", default="/"),
        dest=dict(type="path", required=True),
        roots=dict(type="list", elements="str", default=["/"]),
        excludes=dict(type="list", elements="str", default=[]),
        default_excludes=dict(type="bool", default=True),
        packages=dict(type="bool", default=True),
        hash_workers=dict(type="int"),
        one_file_system=dict(type="bool", default=True),
    )
    spec.update(state_argument_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    exit_with(module, lambda: run(module.params, module.check_mode), lambda result: result.get("warnings", []))


if __name__ == "__main__":
    main()
