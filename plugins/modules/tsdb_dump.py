#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: tsdb_dump
short_description: Dump time-series points from OpenTSDB or VictoriaMetrics into batch files
version_added: 0.1.0
description:
  - Reads every point of the selected metrics between O(start) (inclusive) and O(stop) (exclusive)
    and writes them into batch files in O(dest), one batch per O(batch_interval) (aligned on UTC
    hours or days) as gzip-compressed JSON lines in the OpenTSDB put format with millisecond timestamps,
    integers kept exact, and a manifest per batch (point count, first and last timestamp, points per
    metric, sha256). M(ferry.migrate.tsdb_restore) sends them to a target.
  - OpenTSDB (2.3 or later) is read with C(/api/suggest) (every metric, however many) and
    C(POST /api/query) with the C(none) aggregator and millisecond resolution, so tag values with
    colons work and sub-second points are kept. Query frames are sized by point density rather than a
    fixed 180 seconds, and frame ends neither overlap nor drop a millisecond.
  - Prometheus-compatible storage (VictoriaMetrics) is read with C(/api/v1/export).
  - Resumable at frame level. Each frame is made durable before it is recorded in the step journal;
    a killed dump run again writes every point exactly once. Finished batches are never dumped again.
author:
  - ferry.migrate maintainers (@ferry-migrate)
extends_documentation_fragment:
  - ferry.migrate.state
  - ferry.migrate.endpoint
  - ansible.builtin.action_common_attributes
options:
  url:
    description:
      - Base URL of the source, for example C(http://opentsdb:4242) or C(http://victoria:8428).
      - Checked before anything happens. C(http) or C(https), a host, a port from 1 to 65535, no query.
        Credentials in it are used as described for O(url_username).
    type: str
    required: true
  kind:
    description:
      - The source's API.
    type: str
    choices: [opentsdb, prometheus]
    default: opentsdb
  start:
    description:
      - First instant to dump (inclusive). Epoch seconds or milliseconds, C(%Y-%m-%d),
        C(%Y-%m-%dT%H:%M:%S), C(%Y-%m-%d %H:%M:%S) (in O(timezone)) or OpenTSDB's relative C(7d-ago).
    type: str
    required: true
  stop:
    description:
      - End of the range (exclusive), in the same formats as O(start). Defaults to now.
    type: str
  timezone:
    description:
      - Time zone of O(start) and O(stop) when they are given as dates, as C(UTC), an offset like C(+02:00)
        or an IANA name like C(Europe/Paris).
    type: str
    default: UTC
  metric_prefix:
    description:
      - Only metrics whose name starts with this.
    type: str
    default: ""
  metrics:
    description:
      - Only these metrics. A name missing on the source is an error.
    type: list
    elements: str
    default: []
  metric_regex:
    description:
      - Only metrics whose name matches this Python regular expression (searched anywhere in the name).
    type: str
  tags:
    description:
      - Only series with these tag values. A value with C(*) is a wildcard, C(a|b) means either.
      - Recorded in each manifest; M(ferry.migrate.tsdb_restore) counts on the target with the same filter.
    type: dict
    default: {}
  shard_index:
    description:
      - This host's share of the metrics when O(shard_count) hosts split the transfer, from C(0) to O(shard_count)
        minus one. A metric belongs to the shard given by the CRC-32 of its name's UTF-8 bytes modulo O(shard_count)
        (the RRD converters' split), so every host computes the same split of the same list, and each metric is
        dumped by exactly one host.
      - Each host dumps its share into its own O(dest) and O(state_dir) and restores it from there with
        M(ferry.migrate.tsdb_restore). The manifests record the shard and O(tags); a O(dest) holding batches of
        another shard or tag filter is refused, so keep O(shard_count) and O(tags) from start to end of a transfer.
    type: int
    default: 0
  shard_count:
    description:
      - Hosts splitting the metrics, C(1) or more.
    type: int
    default: 1
  batch_interval:
    description:
      - Length of one batch file, C(hour), C(day) or a number of seconds.
    type: str
    default: day
  dest:
    description:
      - Directory receiving the batch files. Created if missing. An empty string is refused.
    type: path
    required: true
  points_per_query:
    description:
      - Most points one query answer may hold, from 1 to 10000000. Frames aim at three quarters of it and grow
        or shrink with the density of the data (the first frame of a metric in a batch is sized from the
        batch before, or from one count query); an answer above it is dropped and its frame asked again in
        smaller pieces, so no answer larger than this is kept in memory.
    type: int
    default: 50000
  min_free_mb:
    description:
      - Before each batch, wait until the file system of O(dest) has this many MiB free (for example while a
        pipelined restore frees room), at most O(space_wait_timeout) seconds. C(0) or more.
    type: int
    default: 512
  min_free_inodes:
    description:
      - Before each batch, wait until the file system of O(dest) has this many free inodes. C(0) or more.
    type: int
    default: 1000
  space_wait_timeout:
    description:
      - Longest wait in seconds for O(min_free_mb) and O(min_free_inodes); then the dump fails, naming
        what is missing. Batches already finished stay. From 0 to 604800.
    type: float
    default: 3600
notes:
  - Create the file C(STOP) in O(state_dir) to stop gracefully after the current batch; the step is then
    recorded as failed, and a later run continues where it stopped.
attributes:
  check_mode:
    support: full
    details: Lists the metrics and plans the batches without reading points or writing anything; decides as a real
      run does and reports C(changed) when it would write batches (RV(batches_to_write)). A O(dest) or O(state_dir)
      that does not exist yet is no error.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
seealso:
  - module: ferry.migrate.tsdb_restore
  - module: ferry.migrate.migration_status
"""

EXAMPLES = r"""
- name: Dump last year's switch metrics from OpenTSDB, one file a day
  ferry.migrate.tsdb_dump:
    url: http://opentsdb.example.net:4242
    start: "2025-01-01"
    stop: "2026-01-01"
    metric_prefix: switch.
    dest: /srv/ferry/otsdb
    state_dir: /srv/ferry/state

- name: Plan only (check mode lists metrics and batches)
  ferry.migrate.tsdb_dump:
    url: http://opentsdb.example.net:4242
    start: 7d-ago
    metric_regex: "^flow\\."
    batch_interval: hour
    dest: /srv/ferry/otsdb
  check_mode: true
"""

RETURN = r"""
metrics:
  description: The metrics dumped (in check mode, that would be dumped); with O(shard_count) above 1, this shard's.
  returned: always
  type: list
  elements: str
metrics_listed:
  description: The metrics the source has that the prefix, list and regular expression select, every shard's.
  returned: always
  type: int
shard:
  description: O(shard_index) and O(shard_count).
  returned: always
  type: list
  elements: int
  sample: [0, 2]
batches_to_write:
  description: Planned batches without a finished batch in O(dest), which the run writes (or in check mode would).
  returned: always
  type: list
  elements: str
batches:
  description: Names of the planned batches (C(<begin ms>-<end ms>)).
  returned: always
  type: list
  elements: str
frames_min:
  description: The fewest query frames the dump needs, one per metric per batch; dense data splits
    frames further (about O(points_per_query) points each).
  returned: always
  type: int
  sample: 480
start:
  description: The start as ISO 8601 UTC.
  returned: always
  type: str
stop:
  description: The stop as ISO 8601 UTC.
  returned: always
  type: str
counts:
  description: Batches written and skipped (already complete), points written, queries sent.
  returned: when not in check mode
  type: dict
  sample: {"batches_written": 24, "batches_skipped": 0, "points": 1200000, "queries": 96}
missing_batches:
  description: Batches of a complete dump that are gone from O(dest) or no longer sound (a manifest or data file
    lost or changed); the run dumps them again (decision C(run)) and skips the others.
  returned: when the step was complete
  type: list
  elements: str
previous_attempt:
  description: The attempt number of the step's record before this run (C(0) when it never ran). A pipelined
    M(ferry.migrate.tsdb_restore) started with the dump of a check-mode run that would write batches takes it as
    O(ferry.migrate.tsdb_restore#module:wait_after_attempt), so that it waits for this run of the dump rather than
    take an earlier run's end for its end.
  returned: always
  type: int
decision:
  description: C(run), C(resume) (continued from the last recorded frame) or C(skip).
  returned: always
  type: str
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import (
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
from ansible_collections.ferry.migrate.plugins.module_utils.core.tree import check_shard
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.points import batch_interval_ms, parse_time
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.remote import OpenTSDBSource, PrometheusSource
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.transfer import (
    check_selection,
    dump,
    dump_plan,
    missing_batches,
    selection,
)


def run(params, check_mode):
    check_options(params)
    now_ms = int(time.time() * 1000)
    start = parse_time(params["start"], params["timezone"], now_ms)
    stop = parse_time(params["stop"], params["timezone"], now_ms) if params["stop"] else now_ms
    interval = batch_interval_ms(params["batch_interval"])
    client = client_from_params(params["url"], params)
    if params["kind"] == "opentsdb":
        source = OpenTSDBSource(client, target_points=params["points_per_query"], retries=request_attempts(params))
    else:
        source = PrometheusSource(client, retries=request_attempts(params))
    shard = (params["shard_index"], params["shard_count"])
    check_selection(params["dest"], selection(params["tags"], shard))
    plan = dump_plan(source, start, stop, interval, params["metric_prefix"], params["metrics"], params["metric_regex"],
                     shard, params["dest"])
    result = {"metrics": plan["metrics"], "metrics_listed": plan["listed"], "shard": list(shard),
              "batches": plan["batches"], "start": plan["start"], "stop": plan["stop"],
              "frames_min": len(plan["metrics"]) * len(plan["batches"])}
    inputs = {"url": redact_url(params["url"]), "kind": params["kind"], "start": start, "stop": stop,
              "interval": interval, "metrics": plan["metrics"], "tags": params["tags"], "dest": params["dest"]}
    if shard[1] > 1:
        inputs["shard"] = list(shard)
    attempt = attempt_step(params, "tsdb_dump", inputs, check_mode)
    to_write = missing_batches(params["dest"], plan)
    if attempt.decision == SKIP:
        result["missing_batches"] = to_write
        if to_write:  # complete, but batches were lost since: dump those again
            attempt.decision = RUN
    result.update(decision=attempt.decision, batches_to_write=[] if attempt.decision == SKIP else to_write,
                  previous_attempt=(attempt.record or {}).get("attempt") or 0)
    if not attempt.runs:
        result["changed"] = bool(result["batches_to_write"])
        return result
    with attempt.running(total=len(plan["ranges"]), unit="batches") as step:
        counts = dump(source, params["dest"], plan, params["tags"], step, attempt.checkpoint,
                      min_free_bytes=params["min_free_mb"] << 20, min_free_inodes=params["min_free_inodes"],
                      space_timeout=params["space_wait_timeout"])
        step.complete(counts=counts)
    result.update(changed=counts["batches_written"] > 0, counts=counts)
    return result


# Ranges of this module's own numeric options; the endpoint options have theirs next to their spec.
DUMP_RANGES = {"points_per_query": (1, 10000000), "min_free_mb": (0, None), "min_free_inodes": (0, None),
               "space_wait_timeout": (0, 604800)}


def check_options(params):
    """Refuse bad values before anything is recorded: empty paths, numbers out of range, an unusable URL."""
    check_paths(params, ("dest", "state_dir"))
    check_ranges(params, DUMP_RANGES)
    check_shard(params)
    check_http_params(params, ("url",))


def argument_spec():
    spec = dict(
        url=dict(type="str", required=True),
        kind=dict(type="str", default="opentsdb", choices=["opentsdb", "prometheus"]),
        start=dict(type="str", required=True),
        stop=dict(type="str"),
        timezone=dict(type="str", default="UTC"),
        metric_prefix=dict(type="str", default=""),
        metrics=dict(type="list", elements="str", default=[]),
        metric_regex=dict(type="str"),
        tags=dict(type="dict", default={}),
        shard_index=dict(type="int", default=0),
        shard_count=dict(type="int", default=1),
        batch_interval=dict(type="str", default="day"),
        dest=dict(type="path", required=True),
        points_per_query=dict(type="int", default=50000),
        min_free_mb=dict(type="int", default=512),
        min_free_inodes=dict(type="int", default=1000),
        space_wait_timeout=dict(type="float", default=3600.0),
    )
    spec.update(state_argument_spec())
    spec.update(http_argument_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    exit_with(module, lambda: run(module.params, module.check_mode))


if __name__ == "__main__":
    main()
