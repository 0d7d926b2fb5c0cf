#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: bundle_create
short_description: Build a Zenoss 4 export bundle, as Zenoss's export4 does, in one streaming pass
version_added: 0.2.0
description:
  - The source side of a Zenoss 4 to 5 migration. Writes the tar that Zenoss's C(export4) (toolbox 2.x) writes,
    with the C(zenbackup_4x.tgz) that C(zenbackup) (Zenoss 4.2) makes inside it, from a Zenoss 4 C($ZENHOME)
    and the database dumps made by M(ferry.migrate.sql_dump).
  - "Members in export4's order: C(componentList.txt), C(rrdpath.map), C(dmd_uuid.txt), the remote collectors'
    archives, C(flexera/) (when C($ZENHOME/var/flexera) exists), C(zenbackup_4x.tgz), C(backup.md5)
    (C(<md5> *<absolute path of the tgz>), as C(md5sum -b) prints it)."
  - "Inside C(zenbackup_4x.tgz), under C(zenbackup/) and in zenbackup's order: C(backup.settings) (the database
    settings of C($ZENHOME/etc/global.conf), passwords included, as zenbackup saves them), C(zep.sql.gz) and
    C(zep.tar) (C($ZENHOME/var/zeneventserver)), C(etc.tar), C(zodb.sql.gz), C(zodb_session.sql.gz),
    C(ZenPacks.tar), C(bin.tar), C(zencatalogservice.tar) (C($ZENHOME/var/zencatalogservice)) and C(perf.tar)
    (C(tar chfC perf.tar $ZENHOME perf))."
  - Nothing is staged. Each inner archive is measured by a walk of its directory, then streamed into the gzip
    stream as the directory is walked again; C(zenbackup_4x.tgz) is written straight into the bundle, its md5
    computed as it is written. The bundle is written under a hidden temporary name beside O(dest), synced, and
    renamed into place whole, so a failure or a kill never leaves a partial bundle under O(dest); the next run
    replaces what a killed one left.
  - Symlinks are followed in C(etc), C(ZenPacks), C(bin) and C(perf), as zenbackup does (C(tar -h)), and stored
    as symlinks in C(zeneventserver), C(zencatalogservice) and C(flexera). A followed link that loops back to a
    directory being archived, or that dangles, is left out with a warning, as are sockets, FIFOs and devices.
    File names are kept byte for byte (newlines, bytes that are no UTF-8, names over 100 bytes).
  - A directory that changes while it is archived so that it no longer fits the size measured (files added or
    grown, or a file resized while it is copied) fails the step; stop Zenoss before the export, as export4 does.
  - A second run with the same inputs, while the bundle written by the first is unchanged, changes nothing.
author:
  - ferry.migrate maintainers (@ferry-migrate)
extends_documentation_fragment:
  - ferry.migrate.state
  - ansible.builtin.action_common_attributes
options:
  zenhome:
    description:
      - The Zenoss 4 home directory (C($ZENHOME), usually C(/opt/zenoss)). It must hold C(etc/).
    type: path
    required: true
  dest:
    description:
      - The bundle to write, for example C(/srv/export/4x-export-20240101-120000.tar). Its directory is created if
        missing. An existing file is replaced once the new bundle is complete.
    type: path
    required: true
  zodb_dump:
    description:
      - The model database dump (C(.sql.gz)), stored as C(zenbackup/zodb.sql.gz). It must be gzip data holding a
        line starting with C(INSERT INTO), as Import4's check requires.
    type: path
    required: true
  zodb_session_dump:
    description:
      - The session database's schema dump (C(.sql.gz), made with C(no_data)), stored as
        C(zenbackup/zodb_session.sql.gz). Left out when not given.
    type: path
  zep_dump:
    description:
      - The events database dump (C(.sql.gz)), stored as C(zenbackup/zep.sql.gz). Without it the bundle has
        neither C(zep.sql.gz) nor C(zep.tar), as after C(zenbackup --no-eventsdb).
    type: path
  dmd_uuid:
    description:
      - The source instance's UUID (C(dmd.uuid)), written to C(dmd_uuid.txt) with a newline. One line; a value
        that is no UUID is accepted with a warning.
    type: str
    required: true
  component_list:
    description:
      - The C(componentList.txt) the model side produced. Left out when not given.
    type: path
  rrdpath_map:
    description:
      - The C(rrdpath.map) the model side produced. Left out when not given.
    type: path
  collector_archives:
    description:
      - Remote collectors' zenbackup archives, each named C(<hub>-<collector>-perf-backup-<time>.tgz), added in
        this order. Left out with O(skip_perf), as export4 C(--no-perfdata) does.
    type: list
    elements: path
    default: []
  skip_perf:
    description:
      - Leave out C(perf.tar) and the remote collectors' archives (export4 C(--no-perfdata)).
    type: bool
    default: false
  tmp_dir:
    description:
      - Write C(zenbackup_4x.tgz) whole in this directory first and copy it into the bundle, as export4 does.
        By default it is written straight into the bundle, which writes it once instead of twice (and needs no
        room for a second copy).
    type: path
  outside_symlinks:
    description:
      - What to do with a symlink, in a directory whose links are followed, that points outside C($ZENHOME)
        (and outside the archived directory itself, so that a C(perf) linked to another volume is no such
        link). C(follow) archives what it points to, as zenbackup's C(tar -h) does (each one is listed in
        RV(outside_links)); C(skip) leaves it out with a warning; C(fail) fails the step.
      - The module reads what such a link points to with its own privileges; run it as the Zenoss user, or set
        C(fail), on a host whose C($ZENHOME) other users can write to.
    type: str
    choices: [follow, skip, fail]
    default: follow
  compress_level:
    description:
      - The gzip level of C(zenbackup_4x.tgz), from 0 (stored) to 9. The default is gzip's, which C(tar czf) uses.
    type: int
    default: 6
  min_free_mb:
    description:
      - Space in MiB that must stay free on the file system of O(dest). Checked before anything is written,
        against the most the bundle can take. C(0) or more.
    type: int
    default: 64
attributes:
  check_mode:
    support: full
    details: A dry run, like export4's C(--dry-run). Checks every input, walks every directory, and reports each
      member's size, the most the bundle can take and the free space (RV(plan)) without writing anything.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
notes:
  - Progress (bytes of input read) is visible with M(ferry.migrate.migration_status) while the step runs.
  - A C(STOP) file in O(state_dir) stops the step between two members; nothing is left under O(dest).
seealso:
  - module: ferry.migrate.sql_dump
  - module: ferry.migrate.bundle_check
  - module: ferry.migrate.index_restore
"""

EXAMPLES = r"""
- name: Build the export bundle
  ferry.migrate.bundle_create:
    zenhome: /opt/zenoss
    dest: /srv/export/4x-export-20240101-120000.tar
    zodb_dump: /srv/export/dumps/zodb.sql.gz
    zodb_session_dump: /srv/export/dumps/zodb_session.sql.gz
    zep_dump: /srv/export/dumps/zep.sql.gz
    dmd_uuid: "{{ dmd_uuid }}"
    component_list: /srv/export/model/componentList.txt
    rrdpath_map: /srv/export/model/rrdpath.map
    collector_archives: "{{ remote_archives | default([]) }}"
    state_dir: /srv/ferry/state
  register: bundle

- name: Dry run, as export4 --dry-run
  ferry.migrate.bundle_create:
    zenhome: /opt/zenoss
    dest: /srv/export/4x-export.tar
    zodb_dump: /srv/export/dumps/zodb.sql.gz
    dmd_uuid: "{{ dmd_uuid }}"
  check_mode: true
  register: plan

- name: Show the estimate
  ansible.builtin.debug:
    msg: "at most {{ plan.plan.bundle_max_bytes | human_readable }}, {{ plan.plan.free_bytes | human_readable }} free"
"""

RETURN = r"""
dest:
  description: The bundle's path.
  returned: always
  type: str
  sample: /srv/export/4x-export-20240101-120000.tar
decision:
  description: What the step journal decided; C(run), C(resume) (after a killed or failed run; the bundle is
    written again from its start) or C(skip) (complete with the same inputs and the bundle unchanged).
  returned: always
  type: str
  sample: run
size:
  description: The bundle's size in bytes.
  returned: success and not check mode
  type: int
  sample: 1073751040
sha256:
  description: The bundle's SHA-256, to verify a copy of it.
  returned: success and not check mode
  type: str
md5:
  description: The md5 of C(zenbackup_4x.tgz), as C(backup.md5) holds it.
  returned: success and not check mode
  type: str
  sample: 0123456789abcdef0123456789abcdef
members:
  description: The bundle's members in order, with their sizes (C(flexera/) entries one by one).
  returned: success and not check mode
  type: list
  elements: dict
  sample: [{"name": "componentList.txt", "size": 1234}, {"name": "zenbackup_4x.tgz", "size": 104857600}]
zenbackup_members:
  description: The members of C(zenbackup/) inside the tgz, in order, with their sizes.
  returned: success and not check mode
  type: list
  elements: dict
tgz:
  description: C(zenbackup_4x.tgz)'s name, size, uncompressed size and md5.
  returned: success and not check mode
  type: dict
plan:
  description: In check mode, the dry run's report - C(members) and C(zenbackup_members) with their sizes
    (the tgz's is unknown until written), C(tgz_uncompressed_bytes), C(bundle_max_bytes) (the most the bundle can
    take), C(free_bytes) and C(min_free_bytes) where it goes, and C(enough_space).
  returned: check mode
  type: dict
outside_links:
  description: Symlinks followed to a target outside C($ZENHOME) (the first 50), as C(link -> target).
  returned: success
  type: list
  elements: str
outside_link_count:
  description: How many such links were followed.
  returned: success
  type: int
skipped:
  description: How many files and links were left out (see RV(warnings)).
  returned: success
  type: int
warnings:
  description: What was left out or looks wrong (the first 50; also returned as Ansible warnings).
  returned: success
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import (
    FerryError,
    check_paths,
    check_ranges,
    exit_with,
    output_unchanged,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import (
    RUN,
    SKIP,
    attempt_step,
    state_argument_spec,
)
from ansible_collections.ferry.migrate.plugins.module_utils.zenoss.export import (
    BundleWriter,
    ExportPlan,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.tartree import OUTSIDE_POLICIES

RANGES = {"compress_level": (0, 9), "min_free_mb": (0, None)}
PATHS = ("zenhome", "dest", "zodb_dump", "zodb_session_dump", "zep_dump", "component_list", "rrdpath_map",
         "collector_archives", "tmp_dir", "state_dir")
INPUT_FILES = ("zodb_dump", "zodb_session_dump", "zep_dump", "component_list", "rrdpath_map")


def run(params, check_mode):
    check_paths(params, PATHS)
    check_ranges(params, RANGES)
    attempt = attempt_step(params, "bundle_create", _inputs(params), check_mode)
    if attempt.decision == SKIP:
        done = (attempt.record or {}).get("result") or {}
        if output_unchanged(done.get("dest"), done):
            return dict(done, decision=SKIP, changed=False)
        attempt.decision = RUN  # the bundle was removed or replaced since
    plan = ExportPlan(_options(params))
    if not attempt.runs:  # check mode: export4's dry run
        report = plan.describe()
        result = dict(_notes(plan), dest=plan.dest, decision=attempt.decision, changed=True, plan=report)
        if not report["enough_space"]:
            raise _no_room(report, result)
        return result
    with attempt.running(total=plan.input_bytes(), unit="bytes") as step:
        writer = BundleWriter(plan, progress=step.progress, check_stop=step.check_stop)
        written = writer.write()
        result = dict(written, **_notes(plan))
        step.complete(counts={"bytes": written["size"], "members": len(written["members"]),
                              "skipped": plan.skipped, "outside_links": plan.outside_count},
                      result=result)
    return dict(result, decision=attempt.decision, changed=True)


def _notes(plan):
    return {"warnings": plan.warnings, "skipped": plan.skipped, "outside_links": plan.outside_links,
            "outside_link_count": plan.outside_count}


def _no_room(report, result):
    error = FerryError("not enough free space for %s: it can take up to %d bytes, %d are free and %d must stay free "
                       "(min_free_mb)" % (report["dest"], report["bundle_max_bytes"], report["free_bytes"],
                                          report["min_free_bytes"]))
    error.result = result
    return error


def _identity(path):
    """A file input as the fingerprint sees it: its real path, size and mtime (not its bytes: a dump is large)."""
    try:
        info = os.stat(path)
    except OSError:
        return {"path": path}  # the plan reports what is wrong with it
    return {"path": os.path.realpath(path), "size": info.st_size, "mtime_ns": info.st_mtime_ns}


def _inputs(params):
    """The step's fingerprint: options and the identity of every input file. The directories of $ZENHOME are not
    in it (a live Zenoss updates its RRDs every few minutes): force rebuilds a bundle from a newer $ZENHOME."""
    inputs = dict((name, params[name]) for name in ("zenhome", "dest", "dmd_uuid", "skip_perf", "tmp_dir",
                                                    "outside_symlinks", "compress_level"))
    for name in INPUT_FILES:
        inputs[name] = _identity(params[name]) if params[name] else None
    inputs["collector_archives"] = [_identity(path) for path in params["collector_archives"] or []]
    return inputs


def _options(params):
    options = dict((name, params[name]) for name in ("zenhome", "dest", "dmd_uuid", "skip_perf", "tmp_dir",
                                                     "outside_symlinks", "compress_level", "collector_archives")
                   + INPUT_FILES)
    options["min_free"] = params["min_free_mb"] << 20
    return options


def argument_spec():
    spec = dict(
        zenhome=dict(type="path", required=True),
        dest=dict(type="path", required=True),
        zodb_dump=dict(type="path", required=True),
        zodb_session_dump=dict(type="path"),
        zep_dump=dict(type="path"),
        dmd_uuid=dict(type="str", required=True),
        component_list=dict(type="path"),
        rrdpath_map=dict(type="path"),
        collector_archives=dict(type="list", elements="path", default=[]),
        skip_perf=dict(type="bool", default=False),
        tmp_dir=dict(type="path"),
        outside_symlinks=dict(type="str", choices=list(OUTSIDE_POLICIES), default="follow"),
        compress_level=dict(type="int", default=6),
        min_free_mb=dict(type="int", default=64),
    )
    spec.update(state_argument_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    exit_with(module, lambda: run(module.params, module.check_mode), lambda result: result.get("warnings", []))


if __name__ == "__main__":
    main()
