#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: rrd_to_tsdb
short_description: Convert Zenoss 4 RRD performance data into OpenTSDB points
version_added: 0.1.0
description:
  - Converts every RRD file under O(src) (a Zenoss 4 C(perf) directory holding C(Devices/)) into OpenTSDB
    points, written as point batches in O(dest) (the format M(ferry.migrate.tsdb_dump) writes and
    M(ferry.migrate.tsdb_restore) sends) and, with O(url), sent to that C(/api/put) endpoint through the same
    writer.
  - Each data source gives one time line that takes, for every time range, the finest AVERAGE archive
    covering it, so each timestamp comes once; points are stamped at interval ends (Zenoss's convention) and
    unknown values are skipped. DERIVE, COUNTER and ABSOLUTE rates are rebuilt into one continuous counter
    whose increments are rate times that archive's step (O(counters)).
  - Zenoss 5 naming by default. Metric C(<device>/<name>), C(<name>) being the file name without C(.rrd) and
    without a C(_GAUGE) suffix (C(X.rrd) is skipped when C(X_GAUGE.rrd) exists, as Zenoss does); tags
    C(device), C(key) and C(zenoss_tenant_id) (the instance UUID from C(dmd_uuid.txt)); characters outside
    C([0-9a-zA-Z-_./]) become C(-). O(metric_template) and O(tags) change the naming.
  - C(key) is what Zenoss 5 queries (C(MetricMixin.getResourceKey)), C(Devices/) and the object's path below its
    device class, from C(rrdpath.map) (O(rrdpath_map)).
  - Files are converted by O(workers) processes into batches of at most O(files_per_batch) files; O(shard_index) and
    O(shard_count) split one tree over several hosts. A file is done once the batch holding it is finished
    (its manifest lists the files), so a killed run redoes only the unfinished batches and a later run
    converts only files added since (a file already converted is not converted again, its points would be
    sent twice).
  - A corrupt or truncated RRD fails that file, naming it and the reason; the others are converted and the
    task fails at the end when more than O(max_failed_files) failed. So does a dump whose header or rows are
    impossible (a step or C(pdp_per_row) of 0 or less, a row without a value for every data source), a file
    whose times OpenTSDB cannot take (a last update outside 1970-01-01T00:00:01Z to 2286-11-20T17:46:39Z,
    9999999999 s, the most its 13-digit millisecond timestamps hold, or a known value for an interval that
    begins before 1970), and a C(.rrd) whose file name is not UTF-8 (the rrdtool binding cannot open it;
    its dump XML converts, the bytes that are not UTF-8 becoming C(-) like any character Zenoss escapes).
    In the result and the report, such bytes of a file name show as C(\xff), control characters as C(\x0a).
author:
  - ferry.migrate maintainers (@ferry-migrate)
requirements:
  - rrdtool (the Python binding, PyPI C(rrdtool)) for C(.rrd) files
  - orjson and isal (PyPI, optional) make writing point files several times faster (RV(accelerators)); the
    points are the same without them
extends_documentation_fragment:
  - ferry.migrate.state
  - ferry.migrate.rrd
  - ferry.migrate.zenoss_naming
  - ferry.migrate.endpoint
  - ferry.migrate.put
  - ansible.builtin.action_common_attributes
options:
  dest:
    description:
      - Directory for the point batches (created if needed).
    type: path
    required: true
  files_per_batch:
    description:
      - Most RRD files a point batch holds (a batch is the unit of completion), from C(1) to C(100000); batches
        are made equal and their number a multiple of O(workers), so the workers finish together.
    type: int
    default: 64
  url:
    description:
      - Also send the points to this C(/api/put) endpoint once converted, for example C(http://opentsdb:4242).
        Sending is its own journal step (O(step) with C(.put) appended) and resumes at request level.
      - To send while converting, leave this out and run M(ferry.migrate.tsdb_restore) with C(wait_for_step)
        naming this step instead.
    type: str
notes:
  - Create the file C(STOP) in O(state_dir) to stop after the batches in progress; a later run resumes.
attributes:
  check_mode:
    support: full
    details: Lists the files a run would convert and reports how many; writes and sends nothing.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
seealso:
  - module: ferry.migrate.tsdb_restore
  - module: ferry.migrate.bundle_check
  - module: ferry.migrate.rrd_to_whisper
"""

EXAMPLES = r"""
- name: Convert an extracted Zenoss 4 export's perf data into point batches
  ferry.migrate.rrd_to_tsdb:
    src: /srv/ferry/extract/4x-export-20180601-120000/perf
    dest: /srv/ferry/points
    state_dir: /srv/ferry/state

- name: Convert a remote collector's perf data (bundle_check unpacks each into collectors/<hub>-<collector>/perf)
  ferry.migrate.rrd_to_tsdb:
    src: /srv/ferry/extract/4x-export-20180601-120000/collectors/localhost-collector1/perf
    dest: /srv/ferry/points-collector1
    state_dir: /srv/ferry/state
    step: rrd_to_tsdb_collector1

- name: Convert and send to OpenTSDB, half the tree on each of two workers
  ferry.migrate.rrd_to_tsdb:
    src: /srv/ferry/extract/4x-export-20180601-120000/perf
    dest: /srv/ferry/points
    url: http://opentsdb.example.net:4242
    kind: opentsdb
    shard_index: "{{ groups['workers'].index(inventory_hostname) }}"
    shard_count: "{{ groups['workers'] | length }}"
"""

RETURN = r"""
counts:
  description:
    - C(files) converted or tried in this run, C(failed), C(skipped) files, C(points) written, C(warnings) and
      C(already_done) files in batches of earlier runs.
  returned: unless in check mode (for C(skip), what the completed step recorded)
  type: dict
  sample: {"files": 200, "failed": 0, "skipped": 2, "points": 372800, "warnings": 0, "already_done": 0}
failed_files:
  description: The first 50 files that failed, each with its reason; all of them are in RV(report).
  returned: when the step ran
  type: list
  elements: str
file_warnings:
  description: The first 50 warnings (infinite values left out of a file; JSON has no infinity).
  returned: when the step ran
  type: list
  elements: str
skipped_files:
  description: The first 50 files skipped, with the reason (C(X.rrd) next to C(X_GAUGE.rrd), outside C(Devices/)).
  returned: when the step ran
  type: list
  elements: str
report:
  description: JSON-lines file listing every failure and skip of the step.
  returned: when the step ran
  type: str
tenant_id:
  description: The C(zenoss_tenant_id) used.
  returned: always
  type: str
sent:
  description: What was sent to O(url) (requests, points, bytes, retries, seconds).
  returned: when O(url) is set and points were sent
  type: dict
files_pending:
  description: Files this run would convert.
  returned: in check mode
  type: int
accelerators:
  description:
    - Which optional accelerators this host has. C(orjson) writes each value's shortest exact text, C(isal)
      writes standard gzip, both several times faster than Python alone; values read back the same either
      way.
  returned: always
  type: dict
  sample: {"orjson": true, "isal": true}
workers:
  description: Worker processes used.
  returned: always
  type: int
decision:
  description:
    - C(run), C(resume) (the step was interrupted or failed), C(skip) (complete, nothing new), or C(update)
      (complete, but files were added to O(src) since, or changed for M(ferry.migrate.rrd_to_whisper)).
  returned: always
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.ferry.migrate.plugins.module_utils.rrd import rrdfile as rrd
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import check_paths, exit_with
from ansible_collections.ferry.migrate.plugins.module_utils.core.httpclient import check_http_params, http_argument_spec
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import state_argument_spec
from ansible_collections.ferry.migrate.plugins.module_utils.core.tree import DoneLog
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.convert import convert_points_tree, points_done
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.jobs import TsdbJob
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.steps import (
    check_numbers,
    conversion_warnings,
    finish,
    naming_argument_spec,
    needs_binding,
    prepare,
    rrd_argument_spec,
    zenoss_naming,
)
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.points import accelerators
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.transfer import (
    check_put_params,
    put_argument_spec,
    restore_step,
)


MAX_FILES_PER_BATCH = 100000


def run(params, check_mode):
    check_paths(params, ("src", "dest", "files", "dmd_uuid_file", "rrdpath_map", "state_dir"))
    check_numbers(params, {"files_per_batch": (1, MAX_FILES_PER_BATCH)})
    check_put_params(params)
    check_http_params(params, ("url",))
    names, map_file = zenoss_naming(params)
    job = TsdbJob(params["src"], names, counters=params["counters"])
    inputs = {"dest": os.path.abspath(params["dest"]), "tenant": names.tenant, "map": map_file,
              "template": (params["metric_template"], params["tags"]), "per_batch": params["files_per_batch"]}
    conversion = prepare(params, check_mode, inputs, "rrd_to_tsdb",
                         lambda path: (points_done(params["dest"], clean=False), DoneLog.read(path + ".failed", failed=True)))
    conversion.result["tenant_id"] = names.tenant
    conversion.result["accelerators"] = accelerators()
    if conversion.attempt.runs:
        with conversion.attempt.running(unit="files"):
            out = convert_points_tree(job, params["dest"], conversion.shard, conversion.workers, conversion.step,
                                      params["files_per_batch"], conversion.state_path, conversion.files,
                                      conversion.resume, stop_check=conversion.step.check_stop,
                                      skip_failed=conversion.skip_failed, min_free=params["min_free_mb"] << 20)
            result = finish(conversion, out, params["max_failed_files"], changed=out["counts"]["points"] > 0)
        if result.get("msg"):
            return result
    else:
        result = conversion.result
    if params["url"]:
        result.update(send(params, check_mode, conversion.step.name + ".put"))
    return result


def send(params, check_mode, name):
    """Send the finished batches of ``dest`` as tsdb_restore does (the same step lifecycle), as a step of its own."""
    out = restore_step(dict(params, verify=False), check_mode, params["dest"], name)
    return {"send_decision": out["decision"], "sent": out.get("counts"), "changed": out["changed"]}


def argument_spec():
    spec = dict(
        dest=dict(type="path", required=True),
        files_per_batch=dict(type="int", default=64),
        url=dict(type="str"),
    )
    spec.update(rrd_argument_spec())
    spec.update(naming_argument_spec())
    spec.update(put_argument_spec())
    spec.update(http_argument_spec())
    spec.update(state_argument_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if needs_binding(module.params):
        module.fail_json(msg=missing_required_lib("rrdtool"), exception=rrd.RRDTOOL_IMPORT_ERROR)
    exit_with(module, lambda: run(module.params, module.check_mode), conversion_warnings)


if __name__ == "__main__":
    main()
