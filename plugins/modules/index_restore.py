#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: index_restore
short_description: Replace a directory with a subtree of a tar or of another directory, swapped in atomically
version_added: 0.2.0
description:
  - The index copies of a Zenoss 4 to 5 migration (Import4's C(events-index), C(model-catalog) and licence
    copy) - the events index from C(zenbackup/zep.tar) (member C(zeneventserver/index)), the global catalog from
    C(zenbackup/zencatalogservice.tar) (member C(zencatalogservice/global_catalog/index)), the C(flexera/)
    licence files from the extracted bundle's directory - or any directory from a tar.
  - The new content is extracted beside O(dest), under a hidden temporary name, through the safe extractor
    (absolute paths, C(..), links leading outside, paths through a symlink, devices and FIFOs are refused;
    setuid, setgid and sticky bits dropped), then exchanged with the old directory in one atomic rename; the old
    content is removed after. A failure or a kill leaves the old directory or the new one in place, never a mix;
    the next run removes what a killed one left.
  - A second run with the same source, while O(dest) is still the directory the first run put there, changes
    nothing.
author:
  - ferry.migrate maintainers (@ferry-migrate)
extends_documentation_fragment:
  - ferry.migrate.state
  - ansible.builtin.action_common_attributes
options:
  src:
    description:
      - A tar archive (gzip'd or not), such as the extracted bundle's C(zenbackup/zep.tar), or a directory,
        such as the extracted bundle's C(flexera).
    type: path
    required: true
  member:
    description:
      - The directory inside O(src) whose content replaces O(dest), for example C(zeneventserver/index). By
        default the whole of O(src). A source without it fails the step.
    type: str
    default: ""
  dest:
    description:
      - The directory to replace, for example C($ZENHOME/var/zeneventserver/index). Created when missing, with its
        parent directories. When it is a symlink, the directory it points to is replaced.
    type: path
    required: true
  owner:
    description:
      - User (name or number) given to every restored file and directory. By default the module's user.
    type: str
  group:
    description:
      - Group (name or number) given to every restored file and directory.
    type: str
  mode:
    description:
      - Permissions of O(dest) itself, octal (C('0755')) or symbolic (C(u=rwx,g=rx,o=rx)). By default those of
        the directory it replaces, or C(0755). The files keep the archive's permissions, less setuid, setgid and
        sticky bits.
    type: raw
  min_free_mb:
    description:
      - Space in MiB that must stay free on the file system of O(dest), checked before each file is written.
        C(0) or more.
    type: int
    default: 64
attributes:
  check_mode:
    support: full
    details: Reads and checks every member (paths, links, types) and reports the counts, writing nothing.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
notes:
  - The atomic exchange uses Linux's C(renameat2) with C(RENAME_EXCHANGE). Where the file system cannot do it, the
    old directory is moved aside and the new one renamed into place; a run killed between the two renames is
    completed by the next one.
seealso:
  - module: ferry.migrate.bundle_check
  - module: ferry.migrate.bundle_create
"""

EXAMPLES = r"""
- name: Restore the events index
  ferry.migrate.index_restore:
    src: /srv/import4/extracted/4x-export-20240101-120000/zenbackup/zep.tar
    member: zeneventserver/index
    dest: /opt/serviced/var/volumes/zeneventserver/index
    owner: "1337"
    group: "1337"

- name: Restore the global catalog
  ferry.migrate.index_restore:
    src: /srv/import4/extracted/4x-export-20240101-120000/zenbackup/zencatalogservice.tar
    member: zencatalogservice/global_catalog/index
    dest: /opt/zenoss/var/zencatalogservice/global_catalog/index

- name: Copy the licence files
  ferry.migrate.index_restore:
    src: /srv/import4/extracted/4x-export-20240101-120000/flexera
    dest: /opt/zenoss/var/flexera
"""

RETURN = r"""
dest:
  description: The directory replaced (the real path when O(dest) is a symlink).
  returned: always
  type: str
decision:
  description: What the step journal decided; C(run), C(resume) (after a killed or failed run; the restore starts
    again) or C(skip).
  returned: always
  type: str
files:
  description: Regular files restored (in check mode, that would be).
  returned: success
  type: int
bytes:
  description: Bytes of file data restored.
  returned: success
  type: int
warnings:
  description: What a directory source held that was left out (sockets, FIFOs, devices).
  returned: success
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import check_paths, check_ranges, exit_with
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import (
    RUN,
    SKIP,
    attempt_step,
    state_argument_spec,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.staging import parse_mode, resolve_owner
from ansible_collections.ferry.migrate.plugins.module_utils.zenoss.restore import (
    IndexRestore,
    check_room,
    source_identity,
)


def run(params, check_mode):
    check_paths(params, ("src", "dest", "state_dir"))
    check_ranges(params, {"min_free_mb": (0, None)})
    mode = parse_mode(params["mode"]) if params["mode"] is not None else None
    owner = resolve_owner(params["owner"], params["group"])
    dest = os.path.realpath(params["dest"])
    inputs = {"src": source_identity(params["src"]), "member": params["member"], "dest": dest,
              "owner": owner, "mode": mode}
    attempt = attempt_step(params, "index_restore", inputs, check_mode)
    if attempt.decision == SKIP:
        done = (attempt.record or {}).get("result") or {}
        if done.get("identity") == _identity(dest):
            return dict(done, decision=SKIP, changed=False)
        attempt.decision = RUN  # dest was replaced or removed since

    def restore(progress=None):
        return IndexRestore(params["src"], params["member"], dest, dry_run=check_mode,
                            min_free=params["min_free_mb"] << 20, owner=owner, mode=mode, progress=progress).run()

    if not attempt.runs:
        return dict(restore(), decision=attempt.decision, changed=True)
    check_room(params["src"], dest, params["min_free_mb"] << 20)
    with attempt.running(unit="bytes") as step:
        result = restore(step.progress)
        result["identity"] = _identity(dest)
        step.complete(counts={"files": result["files"], "bytes": result["bytes"]}, result=result)
    return dict(result, decision=attempt.decision, changed=True)


def _identity(path):
    """The directory now at ``path`` (device and inode: a swap puts another one there)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return [info.st_dev, info.st_ino]


def argument_spec():
    spec = dict(
        src=dict(type="path", required=True),
        member=dict(type="str", default=""),
        dest=dict(type="path", required=True),
        owner=dict(type="str"),
        group=dict(type="str"),
        mode=dict(type="raw"),
        min_free_mb=dict(type="int", default=64),
    )
    spec.update(state_argument_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    exit_with(module, lambda: run(module.params, module.check_mode), lambda result: result.get("warnings", []))


if __name__ == "__main__":
    main()
