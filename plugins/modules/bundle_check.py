#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: bundle_check
short_description: Verify and safely extract a Zenoss 4 export bundle
version_added: 0.1.0
description:
  - The C(check) step of a Zenoss 4 to 5 migration. Reads the tar written by Zenoss' C(export4) once,
    front to back, and in that single pass
    verifies the full md5 of the inner C(zenbackup_*.tgz) (C(zenbackup_4x.tgz), or C(zenbackup_YYYYMMDD.tgz)
    from older export4 versions) against C(backup.md5) (whose line names the archive by its absolute path on
    the source host, of which only the file name is compared), checks the gzip
    streams (CRC and length), checks the required members (C(zodb.sql.gz), C(ZenPacks.tar),
    C(dmd_uuid.txt)) and the optional ones (C(zep.sql.gz), C(zep.tar), C(zencatalogservice.tar),
    exactly one of C(perf.tar) and C(perf.tar.gz), C(rrdpath.map), C(componentList.txt), C(flexera/),
    remote collectors' C(*-perf-backup-*.tgz)), and extracts everything.
  - Like Zenoss Import4, refuses a C(zodb.sql.gz) without any line starting with C(INSERT INTO) (an empty model);
    this is checked while the dump is inflated, so only with O(verify_dumps).
  - "The result lands in O(dest)/<bundle name without .tar>/: C(zenbackup/) (dumps, C(backup.settings) and
    the C(etc), C(bin), C(ZenPacks) and index archives as they are), C(perf/) (the main collector's RRD tree,
    C(perf/Devices/...) and the daemons' C(perf/Daemons/...)), C(collectors/<hub>-<collector>/perf/)
    (each remote collector's RRD tree, unpacked from the C(zenbackup/perf.tar) of its archive),
    C(collectors/<hub>-<collector>/zenbackup/) (the rest of that archive as it is, C(etc.tar)), C(flexera/),
    C(backup.md5), C(dmd_uuid.txt), C(componentList.txt), C(rrdpath.map), and C(.ferry-bundle.json), the
    inventory."
  - A remote collector's archive is a C(zenbackup --no-eventsdb --no-zodb) archive; one holding a bare C(perf/)
    tree is taken as it is. Two archives of one collector, or one holding both C(perf.tar) and C(perf.tar.gz),
    are refused; one without perf data is a warning.
  - Extraction is safe. Members with absolute paths or C(..), links leading outside the destination,
    paths through a symlink, device files and FIFOs are refused; setuid, setgid and sticky bits are
    dropped; owners are not restored.
  - All work happens in a hidden temporary directory inside O(dest) that is renamed into place only
    when every check has passed, so a failure or a kill never leaves a half-extracted tree; the next
    run removes what a killed run left.
  - A second run on the same bundle (same path, size and modification time) with the same options
    changes nothing and returns the stored inventory; an extraction made by an older version of this module,
    whose layout differs (remote collectors' C(perf.tar) left packed), is made again.
author:
  - ferry.migrate maintainers (@ferry-migrate)
extends_documentation_fragment:
  - ferry.migrate.state
  - ansible.builtin.action_common_attributes
options:
  path:
    description:
      - The export bundle, for example C(4x-export-20240101-120000.tar), on the host that runs the module.
        An empty string is refused.
    type: path
    required: true
  dest:
    description:
      - Directory that receives the extracted bundle, in a subdirectory named after the bundle.
      - Created if missing. An empty string is refused.
    type: path
    required: true
  allow_missing_checksum:
    description:
      - Accept a bundle without C(backup.md5); the archive is then extracted unverified and a warning
        is returned. A present but wrong checksum always fails.
    type: bool
    default: false
  verify_dumps:
    description:
      - Inflate the C(*.sql.gz) dumps while writing them, so a corrupt dump fails now instead of
        half-way through a database import.
    type: bool
    default: true
  min_free_mb:
    description:
      - Space in MiB that must stay free on the file system of O(dest). Checked before extraction starts
        and before each file is written; the step fails rather than fill the disk. C(0) or more.
    type: int
    default: 64
attributes:
  check_mode:
    support: full
    details: Reads and verifies the whole bundle (checksums, gzip streams, members, link targets) without
      writing anything.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
notes:
  - Reading is one pass over the bundle; the inner archive is never written to disk as a whole.
  - Progress (bytes read of the bundle) is visible with M(ferry.migrate.migration_status) while the
    step runs, for example when the task runs with C(async).
seealso:
  - module: ferry.migrate.migration_status
"""

EXAMPLES = r"""
- name: Check and extract the Zenoss 4 export
  ferry.migrate.bundle_check:
    path: /srv/import4/4x-export-20240101-120000.tar
    dest: /srv/import4/extracted
    state_dir: /srv/import4/state
  register: bundle

- name: Show what the bundle holds
  ansible.builtin.debug:
    msg: "tenant {{ bundle.inventory.dmd_uuid }}: {{ bundle.inventory.rrd_files }} RRD files"

- name: Only verify (nothing is written)
  ferry.migrate.bundle_check:
    path: /srv/import4/4x-export-20240101-120000.tar
    dest: /srv/import4/extracted
  check_mode: true

- name: Accept an old bundle exported without backup.md5
  ferry.migrate.bundle_check:
    path: /srv/import4/old-export.tar
    dest: /srv/import4/extracted
    allow_missing_checksum: true
"""

RETURN = r"""
extracted_path:
  description: Directory holding the extracted bundle (in check mode, where it would be).
  returned: always
  type: str
  sample: /srv/import4/extracted/4x-export-20240101-120000
decision:
  description: What the step journal decided; C(run) (new or changed inputs, or O(force)),
    C(resume) (after a killed or failed run; extraction restarts cleanly) or C(skip) (already complete).
  returned: always
  type: str
  sample: run
inventory:
  description: What the bundle holds.
  returned: success
  type: dict
  contains:
    layout:
      description: Version of the extracted layout (C(2) since remote collectors' perf data is unpacked into
        C(collectors/<name>/perf/)).
      returned: success
      type: int
      sample: 2
    dmd_uuid:
      description: The source instance UUID (trailing newline removed).
      returned: success
      type: str
      sample: 7f0c3e61-1b7e-4a51-9d5e-0a8f4a2f4b11
    tgz:
      description: The inner archive, its size, computed and expected md5 and whether they matched.
      returned: success
      type: dict
      sample: {"name": "zenbackup_4x.tgz", "size": 1048576, "md5": "0123456789abcdef0123456789abcdef",
               "md5_expected": "0123456789abcdef0123456789abcdef", "md5_verified": true, "uncompressed_size": 3145728}
    outer_members:
      description: Top-level members of the bundle with their sizes (directories' entries included).
      returned: success
      type: list
      elements: dict
    members:
      description: Top-level files of C(zenbackup/) with their sizes.
      returned: success
      type: list
      elements: dict
      sample: [{"name": "zodb.sql.gz", "size": 123456}, {"name": "ZenPacks.tar", "size": 20480}]
    optional:
      description: Which optional parts exist; C(perf) names the perf archive found, if any.
      returned: success
      type: dict
      sample: {"zep.sql.gz": true, "zep.tar": true, "zencatalogservice.tar": false, "perf": "perf.tar.gz",
               "rrdpath.map": true, "componentList.txt": true, "flexera": false, "remote_collectors": 1}
    rrd_files:
      description: Number of RRD files under C(perf/Devices/<device>/) (what M(ferry.migrate.rrd_to_tsdb) converts),
        main and remote collectors together.
      returned: success
      type: int
      sample: 1200
    other_rrd_files:
      description: Number of the other RRD files (the collector daemons' own C(perf/Daemons/...)), main and remote
        collectors together; Zenoss 5 does not take them and the converters skip them.
      returned: success
      type: int
      sample: 16
    perf:
      description: The main perf archive (C(archive), C(perf.tar) or C(perf.tar.gz), or null), its number of
        C(files), C(rrd_files), C(other_rrd_files) and C(bytes).
      returned: success
      type: dict
      sample: {"archive": "perf.tar", "files": 1208, "rrd_files": 1200, "other_rrd_files": 8, "bytes": 4190208}
    remote_collectors:
      description: One entry per remote collector archive (by C(name), C(<hub>-<collector>)), with the C(archive),
        the perf archive found in it (C(perf_archive), null for a bare tree or none), and the same counts as
        RV(inventory.perf), its RRD trees being in C(collectors/<name>/perf/).
      returned: success
      type: list
      elements: dict
      sample: [{"name": "localhost-collector1", "archive": "localhost-collector1-perf-backup-20180601-120000.tgz",
                "perf_archive": "perf.tar", "files": 304, "rrd_files": 300, "other_rrd_files": 4, "bytes": 1048576}]
    components:
      description: Lines in C(componentList.txt), or null when absent.
      returned: success
      type: int
    warnings:
      description: Non-fatal findings (also returned as Ansible warnings).
      returned: success
      type: list
      elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import check_paths, check_ranges, exit_with
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import (
    RUN,
    SKIP,
    attempt_step,
    state_argument_spec,
)
from ansible_collections.ferry.migrate.plugins.module_utils.zenoss.bundle import (
    LAYOUT,
    BundleChecker,
    bundle_identity,
    extraction_dir,
    read_manifest,
)


def run(params, check_mode):
    check_options(params)
    target = extraction_dir(params["path"], params["dest"])
    identity = bundle_identity(params["path"])
    attempt = attempt_step(params, "bundle_check", {
        "bundle": identity,
        "target": target,
        "allow_missing_checksum": params["allow_missing_checksum"],
        "verify_dumps": params["verify_dumps"],
        "layout": LAYOUT,
    }, check_mode)
    if attempt.decision == SKIP:
        manifest = read_manifest(target)
        if manifest and manifest.get("bundle") == identity and manifest.get("layout") == LAYOUT:
            return {"extracted_path": target, "decision": SKIP, "changed": False, "inventory": manifest}
        attempt.decision = RUN  # the extracted tree was removed or replaced
    result = {"extracted_path": target, "decision": attempt.decision}
    checker = BundleChecker(
        params["path"], params["dest"],
        allow_missing_checksum=params["allow_missing_checksum"],
        verify_dumps=params["verify_dumps"],
        dry_run=check_mode,
        min_free=params["min_free_mb"] << 20,
        progress=None if check_mode else (lambda done, total: attempt.step.progress(done, total, "bytes")),
    )
    if not attempt.runs:  # check mode: the whole check, writing nothing
        result.update(changed=True, inventory=checker.run())
        return result
    with attempt.running(unit="bytes") as step:
        inventory = checker.run()
        summary = {"extracted_path": target, "dmd_uuid": inventory["dmd_uuid"], "md5": inventory["tgz"]["md5"]}
        step.complete(counts=_counts(inventory), result=summary)
    result.update(changed=True, inventory=inventory)
    return result


def _counts(inventory):
    return {
        "rrd_files": inventory["rrd_files"],
        "other_rrd_files": inventory["other_rrd_files"],
        "members": len(inventory["members"]),
        "bytes": inventory["bundle"]["size"],
        "warnings": len(inventory["warnings"]),
    }


def check_options(params):
    """Refuse bad values before anything is recorded: empty paths, a negative free-space margin."""
    check_paths(params, ("path", "dest", "state_dir"))
    check_ranges(params, {"min_free_mb": (0, None)})


def argument_spec():
    spec = dict(
        path=dict(type="path", required=True),
        dest=dict(type="path", required=True),
        allow_missing_checksum=dict(type="bool", default=False),
        verify_dumps=dict(type="bool", default=True),
        min_free_mb=dict(type="int", default=64),
    )
    spec.update(state_argument_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    exit_with(module, lambda: run(module.params, module.check_mode),
              lambda result: result.get("inventory", {}).get("warnings", []))


if __name__ == "__main__":
    main()
