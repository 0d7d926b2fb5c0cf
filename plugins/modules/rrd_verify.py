#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: rrd_verify
short_description: Verify Zenoss 4 RRD performance data on the OpenTSDB or VictoriaMetrics it was sent to
version_added: 0.1.0
description:
  - Checks the series of every RRD file under O(src) (a Zenoss 4 C(perf) directory holding C(Devices/)), or of
    this host's share of them (O(shard_index), O(shard_count)), on the target at O(url). The series and their
    points are computed by M(ferry.migrate.rrd_to_tsdb)'s own code with the same naming options, so the metric,
    the tags (C(key) in Zenoss 5's form) and every point are exactly what that module sends.
  - Each series must be on the target with exactly the points the file gives over its time range, counted by the
    target itself (C(count_over_time) per series for VictoriaMetrics, C(0all-count) with the C(none) aggregator for
    OpenTSDB; no point is read back). Fewer means points lost or a file never sent; more means points stored twice
    (VictoriaMetrics without C(-dedup.minScrapeInterval)) or points that are not the file's.
  - For the files of the O(sample), the first, 221st and last point of each series (the points Zenoss's Import4
    verifier checks) are read back and must be there once, with the file's value to a relative error of
    O(tolerance).
  - This is the RRD files against the target. M(ferry.migrate.tsdb_restore)'s verification is the batches it
    sent against the target (at least what was sent is there, and it resends what is missing); this one also
    sees a file whose points never reached a batch, a series stored twice, and a wrong value.
  - Fails naming each file and series that differs (the first 50 in RV(differences), all of them in
    RV(report)). Files the converter skips (C(X.rrd) next to C(X_GAUGE.rrd), outside C(Devices/)) are not
    expected on the target; files that cannot be read are listed in RV(unreadable_files) and do not fail the
    task (M(ferry.migrate.rrd_to_tsdb) reports them as failed files).
  - A complete verification is not done again while the files (names, sizes, modification times) and the
    options are the same; the rerun reports what was verified then. A failed or interrupted one runs again.
author:
  - ferry.migrate maintainers (@ferry-migrate)
requirements:
  - rrdtool (the Python binding, PyPI C(rrdtool)) for C(.rrd) files
extends_documentation_fragment:
  - ferry.migrate.state
  - ferry.migrate.zenoss_naming
  - ferry.migrate.endpoint
  - ansible.builtin.action_common_attributes
options:
  src:
    description:
      - Directory holding the RRD files (or their C(rrdtool dump) XML), as given to M(ferry.migrate.rrd_to_tsdb).
        An empty string is refused.
    type: path
    required: true
  files:
    description:
      - Verify only these files (relative to O(src), or absolute inside it) instead of the whole tree.
    type: list
    elements: path
  counters:
    description:
      - C(rebuild) or C(rate), as given to M(ferry.migrate.rrd_to_tsdb).
    type: str
    choices: [rebuild, rate]
    default: rebuild
  shard_index:
    description:
      - This host's share of the tree when O(shard_count) hosts split it, from C(0) to O(shard_count) minus one;
        the same split as M(ferry.migrate.rrd_to_tsdb)'s (a stable hash of each file's relative path).
    type: int
    default: 0
  shard_count:
    description:
      - Hosts splitting the tree, C(1) or more.
    type: int
    default: 1
  url:
    description:
      - The target's query API; VictoriaMetrics' main HTTP API (for example C(http://victoria:8428), not its
        OpenTSDB listener) or OpenTSDB's (for example C(http://opentsdb:4242)). C(http) or C(https), a host, a
        port from 1 to 65535, no query. Credentials in it are used as described for O(url_username).
    type: str
    required: true
  kind:
    description:
      - What O(url) is.
    type: str
    choices: [opentsdb, victoriametrics]
    default: victoriametrics
  sample:
    description:
      - Share of the files whose sample points are read back, from C(0) (counts only) to C(1) (every file).
        Files are picked by a stable hash of their path, the same files every run. Zenoss's Import4 checked
        about one file in seven (C(0.15)). Every file's series are counted whatever this is.
    type: float
    default: 1.0
  tolerance:
    description:
      - Largest relative difference between a value on the target and the file's, from C(0) to C(0.01).
        VictoriaMetrics keeps about 12 significant digits, OpenTSDB the double sent.
    type: float
    default: 1.0e-7
notes:
  - Create the file C(STOP) in O(state_dir) to stop between two groups of files; a later run starts again.
attributes:
  check_mode:
    support: full
    details: Says whether a run would verify (and how many files) or skip; reads nothing from the target.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
seealso:
  - module: ferry.migrate.rrd_to_tsdb
  - module: ferry.migrate.tsdb_restore
"""

EXAMPLES = r"""
- name: Verify a Zenoss perf tree on VictoriaMetrics, this worker's share of it
  ferry.migrate.rrd_verify:
    src: /srv/ferry/perf/perf
    url: http://victoria.example.net:8428
    kind: victoriametrics
    shard_index: "{{ groups['workers'].index(inventory_hostname) }}"
    shard_count: "{{ groups['workers'] | length }}"
    state_dir: /srv/ferry/state

- name: Verify on OpenTSDB the way Import4 did (sample points of one file in seven)
  ferry.migrate.rrd_verify:
    src: /srv/ferry/perf/perf
    url: http://opentsdb.example.net:4242
    kind: opentsdb
    sample: 0.15
"""

RETURN = r"""
decision:
  description: C(run), C(resume) (an earlier verification failed or was interrupted) or C(skip) (verified then).
  returned: always
  type: str
files:
  description: The files of this shard to verify.
  returned: always
  type: int
counts:
  description:
    - C(files) looked at, C(sampled) (their values read back), C(skipped) (the converter skips them),
      C(unreadable); C(series), C(expected_points) (what the files give), C(found_points) (what the target holds of
      those series), C(values_checked), C(missing_series), C(differences).
  returned: when the verification ran, and for C(skip) what it counted then
  type: dict
  sample: {"files": 24, "sampled": 24, "skipped": 2, "unreadable": 0, "series": 22, "expected_points": 41000,
           "found_points": 41000, "values_checked": 66, "missing_series": 0, "differences": 0}
differences:
  description: The first 50 differences, each naming the file, the series (metric and tags) and what differs.
  returned: when the verification ran
  type: list
  elements: str
unreadable_files:
  description: The first 50 files that could not be read, with the reason.
  returned: when the verification ran
  type: list
  elements: str
skipped_files:
  description: The first 50 files the converter skips, with the reason.
  returned: when the verification ran
  type: list
  elements: str
report:
  description: JSON-lines file listing every difference and unreadable file.
  returned: when the verification ran
  type: str
verified_then:
  description: The counts of the complete verification a skipping run stands on, and when it ended.
  returned: when RV(decision) is C(skip)
  type: dict
tenant_id:
  description: The C(zenoss_tenant_id) the series carry.
  returned: always
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.ferry.migrate.plugins.module_utils.rrd import rrdfile as rrd
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import (
    FerryError,
    check_paths,
    check_ranges,
    exit_with,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.httpclient import (
    check_http_params,
    client_from_params,
    http_argument_spec,
    redact_url,
    request_attempts,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import (
    RUN,
    SKIP,
    attempt_step,
    state_argument_spec,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.tree import check_shard, relative_files
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.convert import pending_files
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.jobs import TsdbJob
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.steps import (
    naming_argument_spec,
    needs_binding,
    zenoss_naming,
)
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.verify import Verifier, files_digest, verify_files

VERIFY_RANGES = {"sample": (0.0, 1.0), "tolerance": (0.0, 0.01)}


def run(params, check_mode):
    check_paths(params, ("src", "files", "dmd_uuid_file", "rrdpath_map", "state_dir"))
    check_ranges(params, VERIFY_RANGES)
    check_shard(params)
    check_http_params(params, ("url",))
    src = os.path.abspath(params["src"])
    if not os.path.isdir(src):
        if check_mode:  # an earlier task of the run (a copy, an extraction) creates it: a run would verify
            return {"decision": RUN, "files": 0, "tenant_id": params["tenant_id"], "changed": True}
        raise FerryError("source directory %s does not exist" % src)
    names, map_file = zenoss_naming(params)
    chosen = relative_files(src, params["files"]) if params["files"] else None
    files = list(pending_files(src, params["shard_index"], params["shard_count"], files=chosen))
    inputs = {"src": src, "url": redact_url(params["url"]), "kind": params["kind"], "tenant": names.tenant,
              "map": map_file, "naming": (params["metric_template"], params["tags"]), "counters": params["counters"],
              "shard": (params["shard_index"], params["shard_count"]), "sample": params["sample"],
              "tolerance": params["tolerance"], "files": files_digest(src, files)}
    attempt = attempt_step(params, "rrd_verify", inputs, check_mode)
    result = {"decision": attempt.decision, "files": len(files), "tenant_id": names.tenant,
              "changed": attempt.decision != SKIP}
    if attempt.decision == SKIP:
        record = attempt.record or {}
        result["verified_then"] = dict(record.get("counts") or {}, ended=record.get("ended"))
        return result
    if not attempt.runs:
        return result
    verifier = Verifier(params["kind"], client_from_params(params["url"], params), params["tolerance"],
                        request_attempts(params))
    job = TsdbJob(src, names, counters=params["counters"])
    with attempt.running(total=len(files), unit="files") as step:
        out = verify_files(job, files, verifier, params["sample"], step.beside(".report.jsonl"), step)
        result.update(out, report=step.beside(".report.jsonl"))
        differences = out["counts"]["differences"]
        if differences:
            result["msg"] = ("verification failed: %d difference(s) between the RRD files and the target, the first: "
                             "%s; all are listed in %s" % (differences, out["differences"][0], result["report"]))
            step.fail(result["msg"], counts=out["counts"])
        else:
            step.complete(counts=out["counts"])
    return result


def argument_spec():
    spec = dict(
        src=dict(type="path", required=True),
        files=dict(type="list", elements="path"),
        counters=dict(type="str", default="rebuild", choices=["rebuild", "rate"]),
        shard_index=dict(type="int", default=0),
        shard_count=dict(type="int", default=1),
        url=dict(type="str", required=True),
        kind=dict(type="str", default="victoriametrics", choices=["opentsdb", "victoriametrics"]),
        sample=dict(type="float", default=1.0),
        tolerance=dict(type="float", default=1e-7),
    )
    spec.update(naming_argument_spec())
    spec.update(http_argument_spec())
    spec.update(state_argument_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if needs_binding(module.params):
        module.fail_json(msg=missing_required_lib("rrdtool"), exception=rrd.RRDTOOL_IMPORT_ERROR)
    exit_with(module, lambda: run(module.params, module.check_mode))


if __name__ == "__main__":
    main()
