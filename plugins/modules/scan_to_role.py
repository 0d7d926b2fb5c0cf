#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: scan_to_role
short_description: Turn a machine scan into a readable Ansible role
version_added: 0.2.0
description:
  - Reads a scan report written by M(ferry.migrate.host_scan) and, when given, the file contents of its overlay (a
    local overlay archive O(src), or a store O(url) and O(instance)), and writes an Ansible role in O(dest) that
    rebuilds what the scan found, in the spirit of devstructure's blueprint.
  - "The role: C(defaults/main.yml) (switches C(<role>_pin_versions), C(<role>_network_policy),
    C(<role>_manage_packages|users|files|services), and the lists C(<role>_packages) with their versions,
    C(<role>_groups), C(<role>_users) with their ids, C(<role>_services)); C(vars/main.yml) (the scanned paths by
    kind: directories, files, templates, hard links, symlinks, removed package files, files without content);
    C(tasks/main.yml) importing C(users.yml), C(packages.yml), C(files.yml), C(network.yml) and C(services.yml);
    C(handlers/main.yml); C(meta/main.yml) (the platform of the scanned distribution); C(meta/argument_specs.yml);
    C(README.md) (what the scan saw and what was left out, and why); C(files/) and C(templates/) holding the
    contents at the scanned paths."
  - Only C(ansible.builtin) modules are used. Packages are installed with C(apt) or C(dnf) as the target's
    package manager says (C(name=version) / C(name-version) with C(<role>_pin_versions)), else by name with
    C(package). Groups and users keep their scanned ids (those below 100, and 65534, are the distribution's own
    and left alone). Directories, files and hard links keep their owner, group and mode (setuid and setgid
    kept, written as quoted octal strings such as C("04755")); symlinks are made as scanned. systemd units
    enabled on the scanned host (C(etc/systemd/system/*.wants/) links) are enabled with C(systemd_service).
  - Text files under C(etc/) (UTF-8, no NUL, no carriage return) become templates wrapped in C({% raw %}), so
    C({{ }}), C({% %}) and C({#...#}) in them render verbatim; other files are copied as they are.
  - Left out, and listed in the README and in RV(skipped) (base64 when needed) are names that cannot be YAML strings
    and file names (not UTF-8, a newline or another control character); files over O(max_file_size) and files
    whose content is not available are managed by owner and mode only and listed in the README. Accounts files
    (C(etc/passwd), C(etc/shadow), ...), C(etc/machine-id) and C(etc/fstab) are never copied. Devices, FIFOs and
    sockets are never in a scan.
  - Every path of the report is checked before anything is written (absolute paths, C(..), NUL bytes and paths
    under a symlink of the report are refused, naming the path), and every objects' sha256.
  - The role is written in a hidden temporary directory beside O(dest) and swapped in whole; a failure leaves the
    previous role as it was. The output is deterministic (sorted; the same inputs give a byte-identical role),
    and C(dest/.ferry-role.json) records the inputs, so a second run with the same inputs changes nothing, even
    without the step journal; a role edited since is left as it is unless O(force).
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
      - The scan report (C(report.jsonl.gz)) written by M(ferry.migrate.host_scan). A truncated report is refused.
    type: path
    required: true
  src:
    description:
      - A local overlay archive written by M(ferry.migrate.scan_upload) with O(ferry.migrate.scan_upload#module:dest)
        (C(report.jsonl.gz) then C(objects/<sha256>)), for the file contents. At most one of O(src) and O(url);
        without either, files are managed by owner and mode only and listed as without content.
    type: path
  url:
    description:
      - Base URL of the store M(ferry.migrate.scan_upload) wrote to, for the file contents (any object the store
        holds for O(instance) is used). Credentials in the URL serve as basic authentication and are never shown.
    type: str
  instance:
    description:
      - The name the scans were uploaded under in the store. Required with O(url).
    type: str
  scan:
    description:
      - The scan whose completeness in the store is checked (16 hex digits). By default the one the store's
        C(latest.json) names.
    type: str
  dest:
    description:
      - The directory of the role to write; its parent is created when missing. A role made by this module there
        is replaced whole; a directory holding anything else (no C(.ferry-role.json)) is refused, never replaced.
        An empty string is refused.
    type: path
    required: true
  role_name:
    description:
      - The role's name, the prefix of its variables. Lower-case letters, digits and C(_), starting with a letter.
      - By default the last component of O(dest). Ansible (and ansible-lint) name a role after its directory, so a
        different name is warned of, for a role to be renamed before use.
    type: str
  include:
    description:
      - Path prefixes (relative to the scanned root; a leading C(/) is dropped) of the files the role manages.
        C("") takes every file of the report.
    type: list
    elements: str
    default: ["etc/", "opt/", "srv/", "usr/local/"]
  max_file_size:
    description:
      - Files bigger than this many bytes are not carried in the role (only their owner and mode are managed;
        the README lists them). From 0 to 1073741824 (1 GiB).
    type: int
    default: 1048576
  templates:
    description:
      - Write text files under C(etc/) as templates (verbatim, in C({% raw %})) so they can be edited into real
        templates; C(false) copies every file as it is.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    details: Reads the report and the objects, checks them and returns the counts; writes nothing.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
notes:
  - The included file records are held in memory (sorted for a deterministic role); contents are streamed, each
    object read once whatever the number of paths holding it.
  - Progress (objects read) is visible with M(ferry.migrate.migration_status) while the step runs.
seealso:
  - module: ferry.migrate.host_scan
  - module: ferry.migrate.scan_upload
  - module: ferry.migrate.overlay_apply
"""

EXAMPLES = r"""
- name: Turn the scan of web01 into a role, contents from the local overlay archive
  ferry.migrate.scan_to_role:
    report: /srv/scans/web01/report.jsonl.gz
    src: /srv/scans/web01.overlay.tar
    dest: /srv/ansible/roles/web01
  register: made

- name: Show what the role could not carry
  ansible.builtin.debug:
    var: made.skipped

- name: The same from the store, without templates, only etc/ and /opt/app
  ferry.migrate.scan_to_role:
    report: /srv/scans/web01/report.jsonl.gz
    url: https://store.example.com/scans
    instance: web01
    bearer_token: "{{ store_token }}"
    dest: /srv/ansible/roles/web01_rebuild
    include: [etc/, opt/app/]
    templates: false
"""

RETURN = r"""
role:
  description: The role's directory.
  returned: always
  type: str
  sample: /srv/ansible/roles/web01
role_name:
  description: The role's name (the prefix of its variables).
  returned: always
  type: str
  sample: web01
decision:
  description: What the step journal decided (C(run), C(resume) or C(skip)); C(skip) too when the role in O(dest)
    was made from the same inputs.
  returned: always
  type: str
  sample: run
counts:
  description: What the role holds; C(without_content) files are managed by owner and mode only, C(skipped) names
    could not be carried, C(left_out) files are never copied (accounts, machine-id, fstab).
  returned: always
  type: dict
  sample: {"packages": 412, "groups": 3, "users": 2, "services": 5, "directories": 40, "files": 12, "templates": 85,
           "hard_links": 0, "links": 9, "absent": 1, "without_content": 2, "skipped": 1, "left_out": 4}
skipped:
  description: The names the role cannot carry (at most 50; the README lists them all), each with C(path) or,
    when not UTF-8 or holding a control character, C(path_b64), and the C(reason).
  returned: always
  type: list
  elements: dict
  sample: [{"path_b64": "ZXRjL29kZApuYW1l", "reason": "the name holds a newline or another control character"}]
skipped_count:
  description: How many names were skipped.
  returned: always
  type: int
  sample: 1
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import exit_with
from ansible_collections.ferry.migrate.plugins.module_utils.core.httpclient import store_http_argument_spec
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import state_argument_spec
from ansible_collections.ferry.migrate.plugins.module_utils.scan.role import DEFAULT_INCLUDE, run


def argument_spec():
    spec = dict(
        report=dict(type="path", required=True),
        src=dict(type="path"),
        url=dict(type="str"),
        instance=dict(type="str"),
        scan=dict(type="str"),
        dest=dict(type="path", required=True),
        role_name=dict(type="str"),
        include=dict(type="list", elements="str", default=list(DEFAULT_INCLUDE)),
        max_file_size=dict(type="int", default=1 << 20),
        templates=dict(type="bool", default=True),
    )
    spec.update(store_http_argument_spec())
    spec.update(state_argument_spec())
    return spec


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("url", "src"), ("url_username", "bearer_token")],
        required_together=[("url", "instance")],
        supports_check_mode=True,
    )
    exit_with(module, lambda: run(module.params, module.check_mode), warnings)


def warnings(result):
    found = result.pop("warnings", [])
    if result.get("skipped_count"):
        found.append("%d name(s) cannot be carried in the role (see its README.md)" % result["skipped_count"])
    return found


if __name__ == "__main__":
    main()
