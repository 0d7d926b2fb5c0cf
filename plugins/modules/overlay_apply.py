#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: overlay_apply
short_description: Rebuild a machine's files from a scan report and its overlay
version_added: 0.2.0
description:
  - The rebuild half of a machine scan (M(ferry.migrate.host_scan), M(ferry.migrate.scan_upload)). Reads a scan
    report and applies it to O(root) with the file contents of its overlay, from a store (O(url), O(instance),
    O(scan)) or from a local overlay archive (O(src)).
  - "In order: every path of the report is checked (relative, no C(..), no NUL byte, never through a symlink: the
    report's own or one already in O(root)) and every archive member (only C(report.jsonl.gz) and regular
    C(objects/<sha256>) files; C(..), absolute names, symlinks, hard links, devices and FIFOs are refused, as is an
    archive without its end-of-archive block) before anything is written; then packages (O(packages)), groups and
    users (O(users)), directories, files, symlinks (targets as stored), hard links, removed package files
    (C(deleted) records), owners, modes and modification times, the timezone (O(timezone)), the network policy
    (O(network)), and the drift (O(drift))."
  - A file is written under a hidden temporary name in its directory, its sha256 checked against the report
    while it is written, synced and renamed into place; each object is read once from the source whatever the
    number of paths holding it. Sparse files get their holes back (runs of zero 4 KiB blocks skipped); hard links
    are made to the first path of their group; setuid and setgid bits are kept (set after the owner).
  - Owners are given by name through O(root)'s C(etc/passwd) and C(etc/group) (after the users are created), by
    the scanned number when the name is unknown there.
  - A path whose type, mode, owner, size, modification time, sha256 and link target already match its record is
    left alone, so a second run, or a run after a killed one, changes only what is missing.
author:
  - ferry.migrate maintainers (@ferry-migrate)
extends_documentation_fragment:
  - ferry.migrate.state
  - ferry.migrate.endpoint
  - ferry.migrate.endpoint.store
  - ansible.builtin.action_common_attributes
options:
  root:
    description:
      - The directory to rebuild; C(/) for the machine itself. Created when missing. An empty string is refused.
    type: path
    default: /
  url:
    description:
      - Base URL of the store (WebDAV or any server answering GET) that M(ferry.migrate.scan_upload) wrote to.
        Exactly one of O(url) and O(src). Credentials in the URL serve as basic authentication and are never
        shown.
    type: str
  instance:
    description:
      - The name the scans were uploaded under in the store. Required with O(url).
    type: str
  scan:
    description:
      - The scan to apply (16 hex digits, the first of its report's sha256). By default the one the store's
        C(latest.json) names. The scan must be complete in the store.
    type: str
  src:
    description:
      - A local overlay archive written by M(ferry.migrate.scan_upload) with O(ferry.migrate.scan_upload#module:dest)
        (C(report.jsonl.gz) then C(objects/<sha256>)). Exactly one of O(url) and O(src).
    type: path
  packages:
    description:
      - C(install) installs the report's packages with C(apt-get) (dpkg) or C(dnf) (rpm), each at its scanned
        version when available, else by name alone (listed in RV(packages.fallback)); packages installed at that
        version already are left alone. Only with O(root) C(/).
      - C(skip) leaves packages alone.
      - By default C(install) when O(root) is C(/), else C(skip).
    type: str
    choices: [install, skip]
  users:
    description:
      - Create the groups, then the users, of the scan's install profile with their uid and gid (C(groupadd),
        C(useradd --prefix <root>) when O(root) is not C(/)). A name O(root) has already is left alone.
    type: bool
    default: true
  timezone:
    description:
      - Write C(etc/timezone) and the C(etc/localtime) symlink to C(/usr/share/zoneinfo/<zone>) for the scanned
        timezone.
    type: bool
    default: true
  network:
    description:
      - C(keep) leaves the network configuration as the files bring it.
      - C(dhcp) turns every static C(iface) stanza of C(etc/network/interfaces) to dhcp, dropping its
        C(address), C(netmask) and C(gateway) lines (a rebuilt machine must not take the source's address).
    type: str
    choices: [keep, dhcp]
    default: keep
  drift:
    description:
      - After applying, compare every file record with the result (type, mode, owner, size, sha256, link target,
        hard-link grouping) and return the differences.
    type: bool
    default: true
  fail_on_drift:
    description:
      - Fail the task when the drift check finds a difference.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: Every check of a real run (paths, archive members, objects present in the source); returns what would
      change, and writes nothing.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
notes:
  - Run as root to give files their owners and setuid bits.
  - Progress (bytes of objects written) is visible with M(ferry.migrate.migration_status). A STOP file in
    O(state_dir) stops the run between two objects; the next run goes on with what is missing.
seealso:
  - module: ferry.migrate.host_scan
  - module: ferry.migrate.scan_upload
"""

EXAMPLES = r"""
- name: Rebuild the machine from the latest scan of web01
  ferry.migrate.overlay_apply:
    url: https://store.example.com/scans
    instance: web01
    url_username: ferry
    url_password: "{{ store_password }}"
    network: dhcp

- name: Rebuild into a directory from a local overlay archive
  ferry.migrate.overlay_apply:
    src: /srv/scans/web01.overlay.tar
    root: /srv/rebuild/web01
  register: applied

- name: Show the differences left
  ansible.builtin.debug:
    var: applied.drift
"""

RETURN = r"""
decision:
  description: What the step journal decided (C(run), C(resume) or C(skip)).
  returned: always
  type: str
  sample: run
pending:
  description:
    - Check mode only, when the store holds no complete scan of O(instance) yet (the upload the same check
      predicts has not happened) - what a run would wait for; nothing else is returned then.
  returned: when pending
  type: str
  sample: "check mode: https://store.example.net/scans/web01 holds no complete scan (no latest.json): run scan_upload first"
applied:
  description: What the run wrote (in check mode, would write). C(files) written with content, C(objects) read from
    the source and their C(bytes), C(dirs), C(symlinks) and C(hardlinks) made, C(metadata) fixed in place (owner,
    mode, time), C(deleted) paths removed, C(unchanged) records, C(directory_times) set.
  returned: success
  type: dict
  sample: {"dirs": 12, "files": 340, "objects": 300, "bytes": 1048576, "symlinks": 8, "hardlinks": 2,
           "metadata": 0, "deleted": 1, "unchanged": 0, "directory_times": 12}
changes:
  description: The first 50 paths that change, each with what differs.
  returned: success
  type: list
  elements: dict
  sample: [{"path": "etc/nginx/nginx.conf", "change": "missing"}]
packages:
  description: What became of the report's packages.
  returned: success
  type: dict
  contains:
    mode:
      description: C(install) or C(skip).
      returned: success
      type: str
    installed:
      description: The C(name=version) (C(name-version) for dnf) specs installed (in check mode, to install).
      returned: success
      type: list
      elements: str
    fallback:
      description: Packages whose scanned version was not available, installed by name.
      returned: success
      type: list
      elements: str
    failed:
      description: Packages not installed, each with C(name), C(version) and the package manager's last line.
      returned: success
      type: list
      elements: dict
    present:
      description: Packages installed at the scanned version already.
      returned: success
      type: int
    skipped:
      description: Packages left alone (O(packages=skip)).
      returned: success
      type: int
users:
  description: Created C(groups) and C(users), C(existing) names left alone, C(failed) ones with the error; null
    with O(users=false).
  returned: success
  type: dict
timezone:
  description: The C(timezone) applied and whether it C(changed); null with O(timezone=false).
  returned: success
  type: dict
network:
  description: The C(policy), whether C(etc/network/interfaces) C(changed), the C(interfaces) turned to dhcp.
  returned: success
  type: dict
drift:
  description: The first 50 records that differ from the result, with the C(fields) that differ (C(missing),
    C(type), C(mode), C(owner), C(size), C(sha256), C(target), C(link_group), C(present) for a deleted record).
  returned: success
  type: list
  elements: dict
  sample: [{"path": "etc/motd", "fields": ["sha256"]}]
drift_count:
  description: How many records differ from the result.
  returned: success
  type: int
  sample: 0
scan:
  description: The scan applied (C(scan), null for a local archive), its C(created) time and C(system).
  returned: success
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import exit_with
from ansible_collections.ferry.migrate.plugins.module_utils.core.httpclient import store_http_argument_spec
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import state_argument_spec
from ansible_collections.ferry.migrate.plugins.module_utils.scan.apply import run


def argument_spec():
    spec = dict(
        root=dict(type="path", default="/"),
        url=dict(type="str"),
        instance=dict(type="str"),
        scan=dict(type="str"),
        src=dict(type="path"),
        packages=dict(type="str", choices=["install", "skip"]),
        users=dict(type="bool", default=True),
        timezone=dict(type="bool", default=True),
        network=dict(type="str", choices=["keep", "dhcp"], default="keep"),
        drift=dict(type="bool", default=True),
        fail_on_drift=dict(type="bool", default=False),
    )
    spec.update(store_http_argument_spec())
    spec.update(state_argument_spec())
    return spec


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("url", "src"), ("url_username", "bearer_token")],
        required_one_of=[("url", "src")],
        required_together=[("url", "instance")],
        supports_check_mode=True,
    )
    exit_with(module, lambda: run(module.params, module.check_mode),
              lambda result: ["%d path(s) differ from the report after the apply" % result["drift_count"]]
              if result.get("drift_count") else [])


if __name__ == "__main__":
    main()
