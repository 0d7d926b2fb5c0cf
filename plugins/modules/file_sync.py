#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: file_sync
short_description: Copy a file tree, or the files a ferry backup lists, between two hosts with rsync over ssh
version_added: 0.3.0
description:
  - Runs C(rsync) on the host running the module, reaching the other host (O(host)) over ssh with a key. O(mode)
    C(push) copies the local O(src) into O(dest) on O(host); C(pull) copies O(src) on O(host) into the local O(dest).
  - Archive mode (permissions, times, symbolic links, owners and groups when run as root) and recursion. Only new
    or changed files travel. Nothing on the receiving side is deleted unless O(delete) is set.
  - What is copied is the list of O(manifest) (the C(files.jsonl) of a M(ferry.migrate.mongo_backup) zip, or such
    a file), the O(paths), or else the whole of O(src). Every listed path is checked before anything runs; one
    that is absolute, holds C(..) or a NUL byte fails the task. When pushing, a listed path whose directory leads
    through a symbolic link outside O(src) fails it too. A listed path missing on the sending side is not an
    error; it is returned in RV(missing).
  - Entries of the C(glob) kind are patterns (Python's glob, relative to the root). When pushing they are
    expanded on this host, as the tree is now. When pulling they cannot be expanded, so the list must also
    hold their expansion (entries with C(from_glob)), else the task fails before anything runs.
  - Two passes make a migration, C(bulk) while the source is in use (files vanishing while copied and
    differences left afterwards are warnings) and C(final) once it is stopped (both are errors). The final pass
    copies only what changed since the bulk pass.
  - After the pass a dry run compares both sides (sizes and times, contents with O(checksum)); RV(verified) is
    true when it finds nothing left to copy.
  - Key authentication only (ssh runs with C(BatchMode=yes)); the host key must be known (C(StrictHostKeyChecking=yes)).
    ssh's errors are told apart (an unknown or changed host key, a refused key, a host that cannot be reached).
  - The pass is a journal step (by default C(file_sync_bulk) or C(file_sync_final)). A second run of a complete pass
    with the same inputs (mode, host, port, user, roots, file list, O(sync_pass), O(delete), O(exclude),
    O(checksum)) is skipped, even when the source has changed since; run it with O(force) to copy again (a final
    pass repeated after the source changed once more, for example). A killed pass runs rsync again, which goes on
    with what is missing.
author:
  - ferry.migrate maintainers (@ferry-migrate)
extends_documentation_fragment:
  - ferry.migrate.state
  - ansible.builtin.action_common_attributes
options:
  mode:
    description:
      - C(push) copies from this host to O(host), C(pull) from O(host) to this host.
    type: str
    choices: [push, pull]
    required: true
  src:
    description:
      - The root copied from, an absolute path (on this host when pushing, on O(host) when pulling). Its contents
        go into O(dest).
    type: str
    required: true
  dest:
    description:
      - The root copied into, an absolute path (on O(host) when pushing, on this host when pulling). When pulling
        it is created if missing; when pushing, its parent directory must exist on O(host).
    type: str
    required: true
  host:
    description:
      - The other host, as ssh reaches it (a name or an address, not C(user@host), see O(ssh_user)).
    type: str
    required: true
  ssh_port:
    description:
      - ssh's port on O(host), from 1 to 65535. Not set, ssh's own (its configuration, else 22).
    type: int
  ssh_user:
    description:
      - The user ssh logs in as on O(host). Not set, ssh's own (this user, unless its configuration says otherwise).
    type: str
  ssh_key:
    description:
      - The private key file ssh authenticates with, on this host; only this key is offered. Not set, ssh's
        default keys and agent. Passwords are never used.
    type: path
  ssh_known_hosts:
    description:
      - The known_hosts file holding O(host)'s key, on this host. Not set, ssh's own (C(~/.ssh/known_hosts)).
    type: path
  ssh_args:
    description:
      - More ssh arguments, appended as they are to the ssh command rsync runs (quote words holding spaces).
        ssh takes the first value given for an option, so C(BatchMode) and C(StrictHostKeyChecking) cannot be
        changed here.
    type: str
  manifest:
    description:
      - 'The file list, on this host: a ferry backup zip (its member C(files.jsonl)) or a C(files.jsonl) file,
        one JSON object per line, C({"path": "<relative to the root>", "kind": "dir"|"file"|"glob"}). A
        directory is copied with everything under it.'
      - Mutually exclusive with O(paths). Neither set, the whole of O(src) is copied.
      - Listed paths missing on the sending side are returned in RV(missing); when pushing a list none of whose
        paths exists under O(src), the task fails before ssh runs (a wrong O(src), not a pass with nothing to do).
    type: path
  paths:
    description:
      - Paths relative to the roots (files or directories, no patterns) to copy. Mutually exclusive with
        O(manifest). An empty list copies nothing.
    type: list
    elements: str
  sync_pass:
    description:
      - C(bulk) while the source is in use, C(final) once it is stopped (see the description).
    type: str
    choices: [bulk, final]
    default: bulk
  delete:
    description:
      - Delete files of O(dest) that O(src) does not have. With a file list, only inside the listed directories.
    type: bool
    default: false
  bwlimit:
    description:
      - Bandwidth limit in KiB/s, from 0 to 10000000; C(0) is none. The verification's dry run is not limited.
    type: int
    default: 0
  checksum:
    description:
      - Verify by comparing the contents of every file (both hosts read every file whole) rather than sizes and
        times.
    type: bool
    default: false
  exclude:
    description:
      - rsync exclude patterns (C(--exclude)), applied to the listed paths and to what is under them.
      - With a ferry backup zip as O(manifest), the paths its profile never sends (its manifest's C(files.exclude);
        MVI's C(logs/migrations/), the migration's own journals and zips) are excluded too, anchored at the root,
        and so never deleted on the receiving side either.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    details: Runs rsync with C(--dry-run) over ssh (so the host must be reachable) and returns what the pass would
      copy and delete; nothing is written and no journal step is recorded.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
notes:
  - Needs C(rsync) on both hosts and C(ssh) on this one.
  - Progress (bytes gone through, with an estimated total) is visible with M(ferry.migrate.migration_status) while
    the pass runs, for example when the task runs with C(async); a C(STOP) file in O(state_dir) ends rsync.
seealso:
  - module: ferry.migrate.migration_status
  - plugin: ferry.migrate.rsync_ssh
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Bulk pass of the files a backup lists, while MVI still runs
  ferry.migrate.file_sync:
    mode: push
    src: /opt/powerai-vision/data
    dest: /srv/mvi/data
    host: ocp-bastion.example.com
    ssh_user: ferry
    ssh_key: /etc/ferry/id_ed25519
    ssh_known_hosts: /etc/ferry/known_hosts
    manifest: /srv/ferry/mvi/pg1.zip
    sync_pass: bulk
    bwlimit: 50000
    state_dir: /srv/ferry/mvi/state

- name: Final pass, MVI stopped; differences left are an error
  ferry.migrate.file_sync:
    mode: push
    src: /opt/powerai-vision/data
    dest: /srv/mvi/data
    host: ocp-bastion.example.com
    ssh_user: ferry
    ssh_key: /etc/ferry/id_ed25519
    ssh_known_hosts: /etc/ferry/known_hosts
    manifest: /srv/ferry/mvi/pg1.zip
    sync_pass: final
    checksum: true
    state_dir: /srv/ferry/mvi/state

- name: What a pull of two users' trees would copy (nothing is written)
  ferry.migrate.file_sync:
    mode: pull
    src: /opt/powerai-vision/data
    dest: /srv/mvi/data
    host: mvi1.example.com
    paths: [alice, bob]
  check_mode: true
  register: plan
"""

RETURN = r"""
decision:
  description: What the step journal decided; C(run), C(resume) or C(skip) (complete with the same inputs).
  returned: always
  type: str
  sample: run
sync_pass:
  description: The pass, O(sync_pass).
  returned: always
  type: str
  sample: bulk
files:
  description: Entries rsync went through on the sending side (files, directories, links).
  returned: unless skipped
  type: int
  sample: 1208
bytes:
  description: Total size of the regular files gone through.
  returned: unless skipped
  type: int
  sample: 4190208
files_transferred:
  description: Regular files copied (in check mode, that would be copied).
  returned: unless skipped
  type: int
  sample: 12
bytes_transferred:
  description: Size of the files copied (in check mode, that would be copied).
  returned: unless skipped
  type: int
  sample: 81920
deleted:
  description: Entries deleted on the receiving side (O(delete)); in check mode, that would be.
  returned: unless skipped
  type: int
  sample: 0
changes:
  description: Items created, copied, deleted or whose attributes changed (C(changed) is true when not 0).
  returned: unless skipped
  type: int
  sample: 14
listed:
  description: Paths in the file list given to rsync (null when the whole root is copied).
  returned: unless skipped
  type: int
  sample: 40
missing:
  description: Listed paths (or patterns matching nothing) absent on the sending side, the first 50.
  returned: unless skipped
  type: list
  elements: str
  sample: [alice/datasets/0b1c]
missing_count:
  description: How many listed paths are absent on the sending side.
  returned: unless skipped
  type: int
  sample: 1
vanished:
  description: Files that vanished while copied (the bulk pass only, the final pass fails), the first 50.
  returned: unless skipped
  type: list
  elements: str
verified:
  description: Whether the dry run after the pass found nothing left to copy.
  returned: when the pass ran (not in check mode)
  type: bool
  sample: true
differences:
  description: What the verification found left to copy, the first 20, as rsync itemizes them.
  returned: when the pass ran (not in check mode)
  type: list
  elements: str
  sample: [">f.st...... alice/models/m1.zip"]
differences_count:
  description: How many differences the verification found.
  returned: when the pass ran (not in check mode)
  type: int
  sample: 0
rc:
  description: rsync's exit code (C(23) with listed paths missing, C(24) with vanished files in a bulk pass).
  returned: unless skipped
  type: int
  sample: 0
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import (
    FerryError,
    check_paths,
    check_ranges,
    exit_with,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import SKIP, attempt_step, state_argument_spec
from ansible_collections.ferry.migrate.plugins.module_utils.sync.transfer import Sync

RANGES = {"ssh_port": (1, 65535), "bwlimit": (0, 10000000)}
HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:%")


def run(params, check_mode):
    check_options(params)
    sync = Sync(params).prepare()
    try:
        attempt = attempt_step(params, "file_sync_%s" % params["sync_pass"], sync.identity(), check_mode)
        if attempt.decision == SKIP:
            stored = (attempt.record or {}).get("result") or {}
            return dict(stored, decision=SKIP, changed=False, sync_pass=params["sync_pass"])
        result = {"decision": attempt.decision, "sync_pass": params["sync_pass"]}
        if not attempt.runs:
            result.update(sync.dry_run())
        else:
            with attempt.running(unit="bytes") as step:
                result.update(sync.run(step))
                result.update(sync.verify())
                step.complete(counts=dict((key, result[key]) for key in COUNTED), result=_stored(result))
        result["changed"] = result["changes"] > 0
        result["warnings_list"] = sync.warnings
        return result
    finally:
        sync.close()


COUNTED = ("files", "bytes", "files_transferred", "bytes_transferred", "deleted", "missing_count")


def _stored(result):
    return dict((key, value) for key, value in result.items() if key not in ("decision", "changed"))


def check_options(params):
    """Refuse bad values before anything runs: ranges, empty or relative roots, a host ssh would misread."""
    check_paths(params, ("src", "dest", "manifest", "ssh_key", "ssh_known_hosts", "state_dir"))
    check_ranges(params, RANGES)
    for name in ("src", "dest"):
        if not os.path.isabs(params[name]):
            raise FerryError("%s, %r, must be an absolute path" % (name, params[name]))
        if "\0" in params[name]:
            raise FerryError("%s holds a NUL byte" % name)
    host = params["host"] or ""
    if not host or host.startswith("-") or not set(host) <= HOST_CHARS:
        raise FerryError("host %r is not a host name or address (the user goes in ssh_user)" % host)
    if params.get("manifest") and params.get("paths") is not None:
        raise FerryError("manifest and paths are mutually exclusive: give the file list one way")


def argument_spec():
    spec = dict(
        mode=dict(type="str", choices=["push", "pull"], required=True),
        src=dict(type="str", required=True),
        dest=dict(type="str", required=True),
        host=dict(type="str", required=True),
        ssh_port=dict(type="int"),
        ssh_user=dict(type="str"),
        ssh_key=dict(type="path"),
        ssh_known_hosts=dict(type="path"),
        ssh_args=dict(type="str"),
        manifest=dict(type="path"),
        paths=dict(type="list", elements="str"),
        sync_pass=dict(type="str", choices=["bulk", "final"], default="bulk"),
        delete=dict(type="bool", default=False),
        bwlimit=dict(type="int", default=0),
        checksum=dict(type="bool", default=False),
        exclude=dict(type="list", elements="str", default=[]),
    )
    spec.update(state_argument_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           mutually_exclusive=[("manifest", "paths")])
    exit_with(module, lambda: run(module.params, module.check_mode), lambda result: result.pop("warnings_list", []))


if __name__ == "__main__":
    main()
