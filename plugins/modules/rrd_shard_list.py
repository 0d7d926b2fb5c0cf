#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: rrd_shard_list
short_description: List one shard's Zenoss perf files for rsync --files-from
version_added: 0.1.0
description:
  - Writes to O(dest) the files under O(src) that a host converting one shard of the perf trees O(trees) needs,
    so that it copies those alone (C(rsync --from0 --files-from)) instead of whole trees. Run it where the trees
    are; the host copying gives the list to rsync (C(--files-from=:<dest>) when pulling over ssh).
  - The shard is M(ferry.migrate.rrd_to_tsdb)'s and M(ferry.migrate.rrd_verify)'s (the same code), each tree
    split as those modules split it given that tree as C(src) with the same O(shard_index) and O(shard_count) (a
    file belongs to the shard given by the CRC-32 of its path relative to its tree).
  - M(ferry.migrate.rrd_to_tsdb) skips C(X.rrd) when C(X_GAUGE.rrd) is beside it. When C(X_GAUGE.rrd) belongs to
    another shard, the list carries it too (RV(deciders); only its own shard converts it), so that a copy of
    the shard skips C(X.rrd) as the whole tree does.
  - The O(include) files that exist are listed whatever the shard (the export's C(rrdpath.map) and
    C(dmd_uuid.txt), which name the series).
  - The list holds names relative to O(src), each ended by a NUL byte (rsync's C(--from0)), so that any name
    (newlines, bytes that are not UTF-8) is listed as it is. It is written under a temporary name and renamed
    into place, and only when it changes. It records nothing in a journal, it is made anew from the trees each
    run.
author:
  - ferry.migrate maintainers (@ferry-migrate)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  src:
    description:
      - The directory the listed names are relative to, the one rsync copies from (for a Zenoss export, the
        directory M(ferry.migrate.bundle_check) extracted it into).
    type: path
    required: true
  trees:
    description:
      - The perf trees to split, relative to O(src) (or absolute inside it), each a directory holding C(Devices/),
        as given to M(ferry.migrate.rrd_to_tsdb) as C(src). C(.) is O(src) itself.
    type: list
    elements: str
    default: ["."]
  include:
    description:
      - Files relative to O(src) listed whatever the shard, when they exist.
    type: list
    elements: str
    default: []
  shard_index:
    description:
      - The shard listed, from C(0) to O(shard_count) minus one.
    type: int
    default: 0
  shard_count:
    description:
      - Hosts splitting the trees, C(1) or more.
    type: int
    default: 1
  dest:
    description:
      - The list file, created with its directory if needed, mode C(0644) (rsync may read it as another user).
    type: path
    required: true
attributes:
  check_mode:
    support: full
    details: Reads the trees and says whether the list would change; writes nothing.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
seealso:
  - module: ferry.migrate.rrd_to_tsdb
  - module: ferry.migrate.rrd_verify
"""

EXAMPLES = r"""
- name: List this worker's share of the perf trees on the host that holds them
  ferry.migrate.rrd_shard_list:
    src: /srv/ferry/extract/4x-export-20180601-120000
    trees: [perf, collectors/localhost-collector1/perf]
    include: [rrdpath.map, dmd_uuid.txt]
    shard_index: "{{ groups['workers'].index(inventory_hostname) }}"
    shard_count: "{{ groups['workers'] | length }}"
    dest: /srv/ferry/shards/{{ inventory_hostname }}.files
  delegate_to: zenoss5.example.net

- name: Pull those files (rsync run on the worker)
  ansible.builtin.command:
    argv: [rsync, --archive, --from0, "--files-from=:/srv/ferry/shards/{{ inventory_hostname }}.files",
           "zenoss5.example.net:/srv/ferry/extract/4x-export-20180601-120000/", /srv/ferry/perf/]
"""

RETURN = r"""
dest:
  description: The list file.
  returned: always
  type: str
files:
  description: Names in the list (the O(include) files found, the shards' files and RV(deciders)).
  returned: always
  type: int
  sample: 51200
bytes:
  description: Their size, what a copy of them moves.
  returned: always
  type: int
deciders:
  description: C(X_GAUGE.rrd) files of other shards listed because C(X.rrd) is in this one.
  returned: always
  type: int
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError, check_paths, exit_with
from ansible_collections.ferry.migrate.plugins.module_utils.core.tree import check_shard
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.shards import list_entries, write_list


def run(params, check_mode):
    check_paths(params, ("src", "trees", "include", "dest"))
    check_shard(params)
    src = os.path.abspath(params["src"])
    if not os.path.isdir(src):
        raise FerryError("source directory %s does not exist" % src)
    dest = os.path.abspath(params["dest"])
    if os.path.isdir(dest):
        raise FerryError("dest %s is a directory: give the list file's path" % dest)
    totals = {"files": 0, "bytes": 0, "deciders": 0}
    names = list_entries(src, params["trees"], params["include"], params["shard_index"], params["shard_count"], totals)
    changed = write_list(dest, names, check_mode)
    return dict(totals, dest=dest, changed=changed)


def argument_spec():
    return dict(
        src=dict(type="path", required=True),
        trees=dict(type="list", elements="str", default=["."]),
        include=dict(type="list", elements="str", default=[]),
        shard_index=dict(type="int", default=0),
        shard_count=dict(type="int", default=1),
        dest=dict(type="path", required=True),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    exit_with(module, lambda: run(module.params, module.check_mode))


if __name__ == "__main__":
    main()
