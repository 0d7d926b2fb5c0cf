#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: scan_upload
short_description: Upload a machine scan and the file contents the store lacks, or write a local overlay archive
version_added: 0.2.0
description:
  - Sends the report M(ferry.migrate.host_scan) wrote, and the contents of its added and modified files (the
    objects, named by SHA-256), to a store on a WebDAV server (or any server taking C(PUT), C(GET) and C(HEAD))
    at O(url), under O(instance); or, with O(dest), writes them into one local overlay archive.
  - "In the store: C(<instance>/scans/<scan_id>/report.jsonl.gz) (C(scan_id): the first 16 hex digits of the
    report's SHA-256), the parts C(part-00001.tar), ... (tar archives of C(objects/<sha256>) members, a piece of an
    object bigger than O(part_size) as C(objects/<sha256>.<offset>)), C(overlay.jsonl.gz) (this scan's objects by
    part), then C(<instance>/content.jsonl.gz) (every object the store holds), C(complete.json) and, last,
    C(<instance>/latest.json). A scan is whole in the store once C(complete.json) exists."
  - Only what the store lacks is sent, as read from its C(content.jsonl.gz) at the start. A file whose content an
    earlier scan of the instance uploaded is not sent again, and a scan of an unchanged host sends the report alone.
  - The parts are made while they are sent, each file read from O(src_root) and hashed on the way (no
    temporary file on this host). A file whose content is no longer what the report says fails the task
    (C(<path> changed since the scan)) before the part's last bytes, so the store keeps nothing of that part.
  - A run that was killed or failed (the store went away, a timeout) is resumed by running the task again. It
    plans the same parts and skips those the store holds whole. An operator can stop it between parts with a
    C(STOP) file in O(state_dir).
  - With O(dest), the archive holds C(report.jsonl.gz) first, then every object of the report as
    C(objects/<sha256>); it is written under a temporary name beside O(dest) and renamed into place when whole.
    M(ferry.migrate.overlay_apply) reads it with its C(src) option.
author:
  - ferry.migrate maintainers (@ferry-migrate)
extends_documentation_fragment:
  - ferry.migrate.state
  - ferry.migrate.endpoint
  - ferry.migrate.endpoint.store
  - ansible.builtin.action_common_attributes
options:
  report:
    description:
      - The scan report (C(report.jsonl.gz)) written by M(ferry.migrate.host_scan). A truncated report (without its
        summary line) is refused.
    type: path
    required: true
  src_root:
    description:
      - Where the scanned files are read. By default the root the report names (its header's C(root)); give it when
        the scanned tree is mounted elsewhere now.
    type: path
  url:
    description:
      - The store's base URL (C(http://) or C(https://)), for example C(https://dav.example.net/scans). Credentials in
        it serve as basic authentication and are never shown. Exactly one of O(url) and O(dest).
    type: str
  instance:
    description:
      - The name the scans of one machine are kept under in the store (scans of one name share their objects);
        1 to 128 letters, digits, C(.), C(_) or C(-), starting with a letter or digit. Required with O(url).
    type: str
  dest:
    description:
      - Write a local overlay archive at this path instead of uploading. Exactly one of O(url) and O(dest).
    type: path
  part_size:
    description:
      - Most object bytes in one part, from 1048576 (1 MiB) to 17179869184 (16 GiB). An object bigger than this is
        sent in pieces of this size. A resumed upload skips whole parts, so a smaller size loses less on a failure.
      - The parts of a scan depend on it. Keep it when resuming.
    type: int
    default: 268435456
attributes:
  check_mode:
    support: full
    details: Reads the report and the store's indexes (never a part) and returns what a run would upload
      (objects, bytes, parts); nothing is sent or written.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
notes:
  - Progress (object bytes sent) is visible with M(ferry.migrate.migration_status) while the step runs, for example
    when the task runs with C(async).
  - One upload at a time per instance. Two running at once would each rewrite C(content.jsonl.gz).
seealso:
  - module: ferry.migrate.host_scan
  - module: ferry.migrate.overlay_apply
  - module: ferry.migrate.migration_status
"""

EXAMPLES = r"""
- name: Upload the scan to the store
  ferry.migrate.scan_upload:
    report: /var/lib/ferry/scan/report.jsonl.gz
    url: https://dav.example.net/scans
    instance: web01
    url_username: ferry
    url_password: "{{ dav_password }}"
    ca_path: /etc/ferry/dav-ca.pem
    state_dir: /var/lib/ferry/state
  register: upload

- name: What would be sent (nothing is)
  ferry.migrate.scan_upload:
    report: /var/lib/ferry/scan/report.jsonl.gz
    url: https://dav.example.net/scans
    instance: web01
    bearer_token: "{{ dav_token }}"
  check_mode: true

- name: Or one local overlay archive, for overlay_apply's src
  ferry.migrate.scan_upload:
    report: /var/lib/ferry/scan/report.jsonl.gz
    dest: /srv/overlays/web01.tar
"""

RETURN = r"""
scan_id:
  description: The scan's id in the store, the first 16 hex digits of the report's SHA-256.
  returned: always
  type: str
  sample: 3f2a9c0d1e4b5a67
report_sha256:
  description: The SHA-256 of the report file.
  returned: always
  type: str
  sample: 3f2a9c0d1e4b5a6700112233445566778899aabbccddeeff0011223344556677
objects:
  description: Objects uploaded (or written to O(dest)); in check mode, those a run would upload.
  returned: always
  type: int
  sample: 1204
bytes:
  description: Object bytes uploaded (or written to O(dest)), tar headers not counted.
  returned: always
  type: int
  sample: 73400320
parts:
  description: Parts sent by this run (0 with O(dest)); in check mode, the parts planned.
  returned: always
  type: int
  sample: 1
parts_skipped:
  description: Parts the store held whole already (a resumed upload).
  returned: always
  type: int
  sample: 0
known:
  description: Objects of the report the store held already (sent by earlier scans of the instance).
  returned: always
  type: int
  sample: 51230
url:
  description: The store's URL, without credentials (null with O(dest)).
  returned: always
  type: str
  sample: https://dav.example.net/scans
instance:
  description: The instance, with O(url).
  returned: when url is given
  type: str
  sample: web01
dest:
  description: The local overlay archive (null with O(url)).
  returned: always
  type: str
  sample: /srv/overlays/web01.tar
decision:
  description: What the step journal decided; C(run), C(resume) (after a killed or failed run; complete parts are
    skipped) or C(skip) (already complete, in the store too).
  returned: always
  type: str
  sample: run
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import exit_with
from ansible_collections.ferry.migrate.plugins.module_utils.core.httpclient import store_http_argument_spec
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import state_argument_spec
from ansible_collections.ferry.migrate.plugins.module_utils.scan.overlay import DEFAULT_PART_SIZE
from ansible_collections.ferry.migrate.plugins.module_utils.scan.upload import run


def argument_spec():
    spec = dict(
        report=dict(type="path", required=True),
        src_root=dict(type="path"),
        url=dict(type="str"),
        instance=dict(type="str"),
        dest=dict(type="path"),
        part_size=dict(type="int", default=DEFAULT_PART_SIZE),
    )
    spec.update(store_http_argument_spec())
    spec.update(state_argument_spec())
    return spec


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("url", "dest"), ("url_username", "bearer_token")],
        required_one_of=[("url", "dest")],
        required_by={"url": ("instance",)},
        supports_check_mode=True,
    )
    exit_with(module, lambda: run(module.params, module.check_mode))


if __name__ == "__main__":
    main()
