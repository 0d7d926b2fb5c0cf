#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: rrd_to_whisper
short_description: Convert a tree of RRD files into Graphite whisper files, exactly and fast (NAV 3 to NAV 4)
version_added: 0.1.0
description:
  - Converts every RRD file under O(src) (or the O(files) listed) into whisper files under O(dest), one
    per data source, named like Carbon's storage (dots are directories).
  - Each AVERAGE archive of the RRD becomes a retention archive with the same resolution and length, its
    values exactly those C(rrdtool fetch) gives for that archive, stamped at interval starts (Graphite's
    convention, NAV's converter's too). With O(consolidations), MIN, MAX or LAST archives become their own
    metrics, suffixed C(_min), C(_max), C(_last).
  - DERIVE, COUNTER and ABSOLUTE data sources hold rates in an RRD; they are rebuilt into one continuous
    counter (O(counters=rebuild)), each interval adding rate times that archive's step and an unknown
    interval adding nothing, so the counter has no fake resets at archive boundaries or gaps. O(counters=rate)
    keeps the rates.
  - Carbon's C(storage-schemas.conf) (O(storage_schemas)) adds the finer archive a schema asks for, filled
    by holding values (a counter rises at its rate instead, so it shows no spikes); C(storage-aggregation.conf)
    (O(storage_aggregation)) sets the aggregation method and xFilesFactor per metric. Resolutions whisper
    cannot take (one not dividing the next) are adjusted, with a warning, rather than failing the file.
  - New whisper files are built directly (not through C(whisper.update_many)), staged, made durable with one
    file-system sync per group and renamed into place. A whisper file that already exists is backfilled in
    place under Carbon's lock, filling only empty slots; newer data is never overwritten.
  - Files are converted by O(workers) processes; O(shard_index) and O(shard_count) let several hosts split
    one tree. Every finished file is recorded in the step journal with its size and modification time, so
    a killed run resumes with the files it had not finished, and a later run converts only files added or
    changed since (a completed step with nothing new is skipped).
  - A corrupt or truncated RRD fails that file, naming it and the reason; the others are converted and the
    task fails at the end when more than O(max_failed_files) failed. So does a dump whose header or rows are
    impossible (a step or C(pdp_per_row) of 0 or less, a row without a value for every data source), a file
    whose times whisper cannot store (a last update outside 1970-01-01T00:00:01Z to 2106-02-07T06:28:15Z,
    whisper's unsigned 32-bit seconds, or a known value for an interval that begins before 1970), a C(.rrd)
    whose file name is not UTF-8 (the rrdtool binding cannot open it; its dump XML can be converted), and a
    file whose whisper file cannot be placed (an element longer than the file system takes, C(ENAMETOOLONG)).
  - A metric name must be a path Carbon could have made itself (Carbon makes each dot a directory and escapes
    nothing); a name holding C(/), NUL or a control character, with an empty element (C(a..b), C(.a), C(a.)),
    or that is not valid UTF-8 (from a file name that is not) fails its file, named with the reason. Every
    whisper file is proven to resolve inside O(dest) before it is written, so a symlink in O(dest) leading
    elsewhere fails the file too.
    In the result and the report, bytes of a file name that are not UTF-8 show as C(\xff), control
    characters as C(\x0a).
author:
  - ferry.migrate maintainers (@ferry-migrate)
requirements:
  - rrdtool (the Python binding, PyPI C(rrdtool), built against C(librrd-dev)) for C(.rrd) files;
    dump XML needs nothing more
extends_documentation_fragment:
  - ferry.migrate.state
  - ferry.migrate.rrd
  - ansible.builtin.action_common_attributes
options:
  dest:
    description:
      - Whisper storage directory (Carbon's C(LOCAL_DATA_DIR), for example C(/var/lib/graphite/whisper)) or a
        staging directory to copy from.
    type: path
    required: true
  metric_prefix:
    description:
      - First elements of every default metric name, for example C(nav.rrd). Not applied to names from
        O(mapping_file). A prefix that is no Carbon path (see above) is refused before anything runs.
    type: str
    default: ""
  mapping_file:
    description:
      - >-
        CSV (C(rrd_path,metric), C(rrd_path,ds,metric) or C(rrd_path,ds,metric,scale) rows; a header row
        naming C(metric) is skipped) or YAML (C({rrd_path: metric}), C({rrd_path: {ds: metric}}) or
        C({rrd_path: {ds: {metric: m, scale: f}}})) file naming the metrics. A metric given without a data
        source is the file's prefix, the data source name is appended. Paths are relative to O(src) or
        absolute under it. A scale multiplies the values, for the sensors NAV 3 stored unscaled. C(docs/nav.md)
        shows the SQL that makes the file from NAV's database (C(COPY ... CSV): a path holding a comma is quoted;
        an unquoted path holding commas is still read, up to the field ending in C(.rrd)). A bad row fails the
        task naming its line and the forms expected.
      - Without it, a data source's metric is C(<metric_prefix>.<dir>...<rrd name>.<ds>), each element
        escaped like NAV does (C(.), C(/), space, parentheses and commas become C(_)).
    type: path
  mapping_root:
    description:
      - The directory the absolute paths of O(mapping_file) are under, as the file names it. NAV stores them
        absolute on the NAV 3 host (C(/var/lib/nav/rrd/...)); when O(src) is a copy of that tree on another host,
        or its dumps, give the NAV 3 host's RRD directory here.
      - Defaults to O(src).
    type: path
  validate_only:
    description:
      - Only check the options and return, reading no RRD file and writing nothing - the mapping file (parsed
        whole), the storage rules, O(metric_prefix), O(mode), O(owner) and O(group) on this host, the numeric
        options and the shard. O(src) need not exist yet. Used before any data is moved (the role
        C(ferry.migrate.rrd_to_graphite) does it before shipping a tree).
    type: bool
    default: false
  unmapped:
    description:
      - What to do with data sources O(mapping_file) does not name. C(default) names them as without a
        mapping, C(skip) leaves them out (they are listed in RV(skipped_files)).
    type: str
    choices: [default, skip]
    default: default
  consolidations:
    description:
      - Consolidation functions to convert. C(AVERAGE) gives the metric itself; any other its own metric
        suffixed with the function's name in lower case.
    type: list
    elements: str
    choices: [AVERAGE, MIN, MAX, LAST]
    default: [AVERAGE]
  storage_schemas:
    description:
      - Carbon's C(storage-schemas.conf). The first section whose C(pattern) matches a metric gives its
        retentions; those finer than the RRD's finest archive are added.
    type: path
  storage_aggregation:
    description:
      - Carbon's C(storage-aggregation.conf). The first section whose C(pattern) matches a metric gives its
        C(aggregationMethod) and C(xFilesFactor). Without a match, rebuilt counters get C(last) and the rest
        C(average), with an xFilesFactor of 0.5.
    type: path
  owner:
    description:
      - Owner (name or uid) of the whisper files and directories created, for example Carbon's user.
    type: str
  group:
    description:
      - Group (name or gid) of the whisper files and directories created.
    type: str
  mode:
    description:
      - Permissions of the whisper files created, read as Ansible's file modules read C(mode). An integer is
        taken as it is (an unquoted C(0644) is the YAML integer 420, that is C(0o644)); a string is octal
        (C("0644"), C("644"), C("0o644")) or symbolic (C("u=rw,g=r,o=r"); C(u), C(g), C(o), C(a); C(+), C(-),
        C(=); C(r), C(w), C(x), C(s), C(t)), applied to no permissions since the files are new. From C(0) to
        C(0o7777). Directories get the same plus the search bits.
    type: raw
    default: "0644"
notes:
  - Backfilling and converting can run while Carbon writes to O(dest); Carbon should use
    C(WHISPER_LOCK_WRITES = True) so the two never write the same file at once.
  - Create the file C(STOP) in O(state_dir) to stop after the files in progress; a later run resumes.
attributes:
  check_mode:
    support: full
    details: Lists the files a run would convert and reports how many; writes nothing.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
seealso:
  - module: ferry.migrate.rrd_to_tsdb
  - module: ferry.migrate.migration_status
"""

EXAMPLES = r"""
- name: Convert NAV's RRD files straight into Carbon's storage
  ferry.migrate.rrd_to_whisper:
    src: /var/lib/nav/rrd
    dest: /var/lib/graphite/whisper
    mapping_file: /srv/ferry/nav-metrics.csv
    storage_schemas: /etc/carbon/storage-schemas.conf
    storage_aggregation: /etc/carbon/storage-aggregation.conf
    owner: _graphite
    group: _graphite
    state_dir: /srv/ferry/state

- name: Split one tree over the hosts of the workers group
  ferry.migrate.rrd_to_whisper:
    src: /srv/ferry/rrd
    dest: /srv/ferry/whisper
    metric_prefix: nav.rrd
    consolidations: [AVERAGE, MAX]
    shard_index: "{{ groups['workers'].index(inventory_hostname) }}"
    shard_count: "{{ groups['workers'] | length }}"
"""

RETURN = r"""
counts:
  description:
    - C(files) converted or tried in this run, C(failed), C(skipped) data sources, whisper files C(created),
      C(backfilled) and C(up_to_date), C(points) written, C(warnings), and C(already_done) files of earlier
      runs of the step.
  returned: unless in check mode (for C(skip), what the completed step recorded)
  type: dict
  sample: {"files": 2512, "failed": 1, "skipped": 0, "created": 9870, "backfilled": 12, "up_to_date": 0,
           "points": 21950000, "warnings": 3, "already_done": 0}
failed_files:
  description: The first 50 files that failed, each with its reason; all of them are in RV(report).
  returned: when the step ran
  type: list
  elements: str
  sample: ["sw1/Gi0_1.rrd is not a readable RRD file (sw1/Gi0_1.rrd: found extra data on end of file)"]
file_warnings:
  description: The first 50 warnings (adjusted resolutions, missing archives).
  returned: when the step ran
  type: list
  elements: str
skipped_files:
  description: The first 50 data sources left out (not in the mapping file with O(unmapped=skip)).
  returned: when the step ran
  type: list
  elements: str
report:
  description: JSON-lines file listing every failure, warning and skip of the step.
  returned: when the step ran
  type: str
mapping_entries:
  description: Entries of O(mapping_file) (data sources or files named), C(0) without one.
  returned: with O(validate_only)
  type: int
files_pending:
  description: Files this run would convert.
  returned: in check mode
  type: int
workers:
  description: Worker processes used.
  returned: always
  type: int
decision:
  description:
    - C(run), C(resume) (the step was interrupted or failed), C(skip) (complete, nothing new), or C(update)
      (complete, but files were added to O(src) since, or changed for M(ferry.migrate.rrd_to_whisper));
      C(validate) with O(validate_only).
  returned: always
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.ferry.migrate.plugins.module_utils.rrd import rrdfile as rrd
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import check_paths, exit_with, file_sha256
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import state_argument_spec
from ansible_collections.ferry.migrate.plugins.module_utils.core.staging import parse_mode, resolve_owner
from ansible_collections.ferry.migrate.plugins.module_utils.core.tree import DoneLog
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.convert import convert_whisper_tree
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.jobs import WhisperJob
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.naming import NavNames, load_mapping
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.steps import (
    check_numbers,
    conversion_warnings,
    finish,
    needs_binding,
    prepare,
    rrd_argument_spec,
)
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.whisper import Rules


def run(params, check_mode):
    check_paths(params, ("src", "dest", "files", "mapping_file", "mapping_root", "storage_schemas", "storage_aggregation",
                         "state_dir"))
    check_numbers(params)
    root = params["mapping_root"] or params["src"]
    mapping = load_mapping(params["mapping_file"], root) if params["mapping_file"] else None
    names = NavNames(params["metric_prefix"], mapping, params["unmapped"])
    rules = Rules(params["storage_schemas"], params["storage_aggregation"])
    mode = parse_mode(params["mode"])
    job = WhisperJob(params["src"], params["dest"], names, rules, tuple(params["consolidations"]), params["counters"],
                     resolve_owner(params["owner"], params["group"]), mode, mode | (mode & 0o444) >> 2,
                     min_free=params["min_free_mb"] << 20)
    if params["validate_only"]:  # the shard was checked with the other numbers
        return {"changed": False, "decision": "validate", "mapping_entries": len(mapping or ())}
    # the files' contents, not their names: an edited mapping or schema makes the step run again
    digests = [file_sha256(path) if path else None
               for path in (params["mapping_file"], params["storage_schemas"], params["storage_aggregation"])]
    inputs = {"dest": os.path.abspath(params["dest"]), "names": (params["metric_prefix"], params["unmapped"]),
              "consolidations": params["consolidations"], "contents": digests, "mode": mode,
              "owner": (params["owner"], params["group"])}
    if params["mapping_root"]:  # only when given: the fingerprint of earlier runs stays the same
        inputs["mapping_root"] = os.path.abspath(root)
    conversion = prepare(params, check_mode, inputs, "rrd_to_whisper",
                         lambda path: (DoneLog.read(path + ".done"), DoneLog.read(path + ".done", failed=True)))
    if not conversion.attempt.runs:  # skip, or check mode (the files pending counted)
        return conversion.result
    with conversion.attempt.running(unit="files"):
        out = convert_whisper_tree(job, conversion.shard, conversion.workers, conversion.step, conversion.resume,
                                   conversion.state_path, files=conversion.files,
                                   stop_check=conversion.step.check_stop, skip_failed=conversion.skip_failed)
        counts = out["counts"]
        return finish(conversion, out, params["max_failed_files"], changed=counts["created"] + counts["points"] > 0)


def argument_spec():
    spec = dict(
        dest=dict(type="path", required=True),
        metric_prefix=dict(type="str", default=""),
        mapping_file=dict(type="path"),
        mapping_root=dict(type="path"),
        validate_only=dict(type="bool", default=False),
        unmapped=dict(type="str", default="default", choices=["default", "skip"]),
        consolidations=dict(type="list", elements="str", default=["AVERAGE"], choices=["AVERAGE", "MIN", "MAX", "LAST"]),
        storage_schemas=dict(type="path"),
        storage_aggregation=dict(type="path"),
        owner=dict(type="str"),
        group=dict(type="str"),
        mode=dict(type="raw", default="0644"),
    )
    spec.update(rrd_argument_spec())
    spec.update(state_argument_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if not module.params["validate_only"] and needs_binding(module.params):
        module.fail_json(msg=missing_required_lib("rrdtool"), exception=rrd.RRDTOOL_IMPORT_ERROR)
    exit_with(module, lambda: run(module.params, module.check_mode), conversion_warnings)


if __name__ == "__main__":
    main()
