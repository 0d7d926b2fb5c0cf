#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: tsdb_restore
short_description: Send dumped time-series points to OpenTSDB or VictoriaMetrics, and verify them
version_added: 0.1.0
description:
  - Reads the finished batches in O(src) (written by M(ferry.migrate.tsdb_dump) or by an RRD
    converter), checks each against its manifest's sha256, and sends the points to O(url)C(/api/put)
    in requests bounded by O(request_size_limit) bytes and O(points_per_request) points, over
    O(connections) keep-alive connections, optionally gzip-compressed and throttled.
  - Connection errors, 5xx and 429 answers are retried with backoff; any other 4xx stops the restore
    with the server's message and, for OpenTSDB, the first rejected points (from C(?details)).
  - Each batch is sent once. The step keeps a ledger of the batches it sent (name and sha256) through
    reruns, so a rerun sends only new batches, and a batch dumped again with the same content is not
    sent again; one whose content changed is sent again. The step is identified by O(src), O(url) and
    O(kind); another target starts a new ledger, and so does O(force).
  - Resumable at request level. Acknowledged requests are recorded in the step journal; a killed
    restore run again skips them (finishing a batch with the request limits it was started with).
    Requests that were in flight when the run was killed are sent again; OpenTSDB overwrites the same
    cell, VictoriaMetrics needs C(-dedup.minScrapeInterval) to fold them.
  - Every batch is cross-checked as it is sent, by its sha256 and by the number of points read against its
    manifest's count. Anything in O(src) that is not a sound finished batch (a data file without its
    manifest, a manifest of another format or without its data file) fails the restore, naming it,
    before anything is sent; a directory without any finished batch fails too.
  - With O(verify), counts the points on the target afterwards, series by series (C(count_over_time) for
    VictoriaMetrics at O(verify_url), C(0all-count) with the C(none) aggregator for OpenTSDB; the target counts, no
    point is read back), with the tag filter the dump recorded in its manifests (M(ferry.migrate.tsdb_dump)'s
    O(ferry.migrate.tsdb_dump#module:tags)), and fails naming the metrics and series with fewer points than were
    sent. Each series sent must be there with at least its points; points of other series, written before or by
    another host, neither hide a shortfall nor count. Batches of an older format, without per-series counts, are
    verified per metric. This is what catches points a target accepted and dropped, such as
    VictoriaMetrics' 1-month default retention or a target killed before it flushed. The message says which
    from the target's C(-retentionPeriod) (VictoriaMetrics' C(/metrics)) and the oldest short point. The
    step is then recorded as failed with the short metrics; a rerun reads those metrics back batch by batch
    and sends only the points the target lacks (RV(resent)), then verifies again.
  - The record of a complete run keeps its verification's counts; a run that skips returns them
    (RV(verified_then), RV(complete_earlier)).
author:
  - ferry.migrate maintainers (@ferry-migrate)
extends_documentation_fragment:
  - ferry.migrate.state
  - ferry.migrate.endpoint
  - ferry.migrate.put
  - ansible.builtin.action_common_attributes
options:
  src:
    description:
      - Directory holding the batch files. An empty string is refused.
    type: path
    required: true
  url:
    description:
      - Base URL of the target's put API, for example C(http://opentsdb:4242) or VictoriaMetrics'
        OpenTSDB HTTP listener C(http://victoria:4242) (C(-opentsdbHTTPListenAddr)).
      - Checked before anything happens, as O(verify_url) is. C(http) or C(https), a host, a port from 1 to
        65535, no query. Credentials in it are used as described for O(url_username).
    type: str
    required: true
  verify_url:
    description:
      - Base URL for reading back, for VictoriaMetrics its main HTTP API (for example C(http://victoria:8428)).
        Defaults to O(url) (right for OpenTSDB).
    type: str
  verify:
    description:
      - Count the points on the target afterwards and fail on a shortfall.
    type: bool
    default: true
  verify_values:
    description:
      - After the counts, also read every point back and compare its value with what was sent (exactly for
        OpenTSDB, to 1e-12 relative for VictoriaMetrics, whose storage rounds long numbers). Reads the whole
        range back once more; memory stays at one batch's points of one metric.
    type: bool
    default: false
  verify_timeout:
    description:
      - Seconds to wait for the target to show every point (ingestion is asynchronous), from 0 to 86400.
    type: float
    default: 60
  wait_for_step:
    description:
      - Pipelined transfer. The name of a M(ferry.migrate.tsdb_dump) step writing into O(src) with the same
        O(state_dir). While that step runs, batches it finishes are restored as they appear (a batch is
        ready once its manifest exists, which survives restarts); the restore ends when the dump is
        complete, and fails naming the dump's error if the dump failed, was stopped or was killed while
        the restore followed it.
      - O(src) may not exist yet (the dump creates it), in check mode too.
      - A dump that has not started yet, or whose record is still that of an earlier run that failed or was
        killed, is waited for (up to O(wait_timeout)); rerun both, in any order, to go on after an interruption.
    type: str
  wait_after_attempt:
    description:
      - With O(wait_for_step), a record of that step of this attempt number or an older one belongs to an earlier run,
        whatever its status, so the restore waits for the step to start again (up to O(wait_timeout)). Give the
        RV(ferry.migrate.tsdb_dump#module:previous_attempt) of a check-mode run of the dump that would write batches
        (RV(ferry.migrate.tsdb_dump#module:batches_to_write)) when the dump and the restore are started together;
        the dump records its start only after listing the metrics, and a restore that looked first would take the
        earlier run's end for the end, leaving the new batches for the next run. C(0) or more.
    type: int
  poll_interval:
    description:
      - Seconds between looks for new batches with O(wait_for_step), from 0.1 to 3600.
    type: float
    default: 10
  wait_timeout:
    description:
      - Seconds to wait for the O(wait_for_step) step to start, from 0 to 604800.
    type: float
    default: 600
notes:
  - Create the file C(STOP) in O(state_dir) to stop gracefully after the current batch; the step is then
    recorded as failed, and a later run continues where it stopped.
attributes:
  check_mode:
    support: full
    details: Reads the manifests and decides as a real run does; sends nothing. Reports C(changed) when a real run
      would send points (batches not sent yet, points a verification found missing, or a followed dump that is not
      complete). A missing O(src) is no error when O(wait_for_step) names the dump that creates it.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
seealso:
  - module: ferry.migrate.tsdb_dump
"""

EXAMPLES = r"""
- name: Restore into VictoriaMetrics and verify every metric's count
  ferry.migrate.tsdb_restore:
    src: /srv/ferry/otsdb
    url: http://victoria.example.net:4242
    verify_url: http://victoria.example.net:8428
    state_dir: /srv/ferry/state

- name: Restore gently into a production OpenTSDB
  ferry.migrate.tsdb_restore:
    src: /srv/ferry/otsdb
    url: https://opentsdb.example.net
    kind: opentsdb
    connections: 2
    throttle: 20000
    url_username: ferry
    url_password: "{{ vault_otsdb_password }}"
"""

RETURN = r"""
request_size_limit:
  description: The request body limit used, in bytes.
  returned: always
  type: int
points:
  description: Points in the finished batches of O(src).
  returned: always
  type: int
counts:
  description: Requests, points and bytes sent in this run, retries, seconds, points per second.
  returned: when points were sent
  type: dict
  sample: {"requests": 1000, "points": 1000000, "bytes": 104857600, "retries": 0, "seconds": 3.9, "points_per_s": 256410.3}
verification:
  description:
    - Metrics and series verified, expected and found points (of the series sent), the metrics short of or above
      their expected count (C(short), C(extra), each C([expected, found])) and a few short series per short metric
      (C(short_series)).
  returned: when O(verify) is true and the restore ran (not in check mode, not when it skipped)
  type: dict
  sample: {"metrics": 12, "series": 48, "expected_points": 17280, "found_points": 17280, "short": {}, "extra": {}}
complete_earlier:
  description: When the run that completed the step ended (ISO 8601 UTC).
  returned: when RV(decision) is C(skip)
  type: str
verified_then:
  description: What the verification of the run that completed the step found (C(metrics), C(series),
    C(expected_points), C(found_points)); null when that run did not verify.
  returned: when RV(decision) is C(skip)
  type: dict
  sample: {"metrics": 12, "series": 48, "expected_points": 17280, "found_points": 17280}
pending_points:
  description: Points in the batches not sent yet (check mode).
  returned: in check mode, unless RV(decision) is C(skip)
  type: int
pending_batches:
  description: Finished batches in O(src) not sent yet when the run started (0 after a real run).
  returned: always
  type: int
resent:
  description: Points and requests sent again because the last run's verification found them missing.
  returned: when the last run's verification failed
  type: dict
  sample: {"points": 14400, "requests": 8}
decision:
  description: C(run) (a new ledger), C(resume) (goes on from the last run's ledger, checkpoint or
    verification) or C(skip) (everything sent and verified, and a followed dump complete).
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import check_paths, check_ranges, exit_with
from ansible_collections.ferry.migrate.plugins.module_utils.core.httpclient import (
    check_http_params,
    http_argument_spec,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import state_argument_spec
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.transfer import (
    check_put_params,
    put_argument_spec,
    restore_step,
)


def run(params, check_mode):
    check_options(params)
    return restore_step(params, check_mode, params["src"], params["step"] or "tsdb_restore", params["wait_for_step"])


# Ranges of this module's own numeric options; the put and endpoint options have theirs next to their specs.
RESTORE_RANGES = {"verify_timeout": (0, 86400), "poll_interval": (0.1, 3600), "wait_timeout": (0, 604800),
                  "wait_after_attempt": (0, None)}


def check_options(params):
    """Refuse bad values before anything is recorded: empty paths, numbers out of range, unusable URLs."""
    check_paths(params, ("src", "state_dir"))
    check_ranges(params, RESTORE_RANGES)
    check_put_params(params)
    check_http_params(params, ("url", "verify_url"))


def argument_spec():
    spec = dict(
        src=dict(type="path", required=True),
        url=dict(type="str", required=True),
        verify_url=dict(type="str"),
        verify=dict(type="bool", default=True),
        verify_timeout=dict(type="float", default=60.0),
        verify_values=dict(type="bool", default=False),
        wait_for_step=dict(type="str"),
        wait_after_attempt=dict(type="int"),
        poll_interval=dict(type="float", default=10.0),
        wait_timeout=dict(type="float", default=600.0),
    )
    spec.update(put_argument_spec())
    spec.update(state_argument_spec())
    spec.update(http_argument_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    exit_with(module, lambda: run(module.params, module.check_mode))


if __name__ == "__main__":
    main()
