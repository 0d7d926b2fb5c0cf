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
  - Resumable at request level. Acknowledged requests are recorded in the step journal; a killed
    restore run again skips them. Requests that were in flight when the run was killed are sent again;
    OpenTSDB overwrites the same cell, VictoriaMetrics needs C(-dedup.minScrapeInterval) to fold them.
  - With O(verify), counts the points of every metric on the target afterwards (C(/api/v1/export) for
    VictoriaMetrics at O(verify_url), C(/api/query) for OpenTSDB) and fails naming the metrics with
    fewer points than were sent; this is what catches points a target accepted and dropped, such as
    VictoriaMetrics' 1-month default retention.
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
      - Directory holding the batch files.
    type: path
    required: true
  url:
    description:
      - Base URL of the target's put API, for example C(http://opentsdb:4242) or VictoriaMetrics'
        OpenTSDB HTTP listener C(http://victoria:4242) (C(-opentsdbHTTPListenAddr)).
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
      - Seconds to wait for the target to show every point (ingestion is asynchronous).
    type: float
    default: 60
  wait_for_step:
    description:
      - Pipelined transfer. The name of a M(ferry.migrate.tsdb_dump) step writing into O(src) with the same
        O(state_dir). While that step runs, batches it finishes are restored as they appear (a batch is
        ready once its manifest exists, which survives restarts); the restore ends when the dump is
        complete, and fails naming the dump's error if the dump failed or was stopped.
    type: str
  poll_interval:
    description:
      - Seconds between looks for new batches with O(wait_for_step).
    type: float
    default: 10
  wait_timeout:
    description:
      - Seconds to wait for the O(wait_for_step) step to start.
    type: float
    default: 600
notes:
  - Create the file C(STOP) in O(state_dir) to stop gracefully after the current batch; the step is then
    recorded as failed, and a later run continues where it stopped.
attributes:
  check_mode:
    support: full
    details: Reads the manifests and reports what would be sent; sends nothing.
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
  description: Expected and found points, and the metrics short of or above their expected count.
  returned: when O(verify) is true and not in check mode
  type: dict
decision:
  description: C(run), C(resume) or C(skip).
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ferry.migrate.plugins.module_utils.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.httpclient import client_from_params, http_argument_spec
from ansible_collections.ferry.migrate.plugins.module_utils.journal import (
    RESUME,
    SKIP,
    Journal,
    fingerprint,
    state_argument_spec,
)
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb_transfer import (
    DumpWatch,
    VerificationFailed,
    put_argument_spec,
    put_writer,
    request_size_limit,
    restore,
    restore_plan,
    verify,
    verify_values,
)


def run_restore(params, check_mode):
    journal = Journal(params["state_dir"], create=not check_mode)
    plan = restore_plan(params["src"])
    follow = params["wait_for_step"]
    size_limit = request_size_limit(params)
    result = {"points": plan["points"], "batches": len(plan["batches"]), "request_size_limit": size_limit}
    # Following a dump, the batches are not known yet: the dump's own inputs stand for them.
    source = ("follow", follow, (journal.step(follow).record() or {}).get("fingerprint")) if follow else \
        [(m["name"], m["sha256"]) for m in plan["batches"]]
    inputs = fingerprint({"src": params["src"], "url": params["url"], "kind": params["kind"], "batches": source,
                          "limits": (size_limit, params["points_per_request"])})
    step = journal.step(params["step"] or "tsdb_restore")
    decision = step.decide(inputs, params["force"])
    result["decision"] = decision
    if decision == SKIP or check_mode:
        result["changed"] = decision != SKIP and (plan["points"] > 0 or bool(follow))
        return result
    writer = put_writer(params)
    checkpoint = step.checkpoint() if decision == RESUME else None
    watch = DumpWatch(journal, follow, params["wait_timeout"]) if follow else None
    with step.begin(inputs, resume=decision == RESUME, unit="batches"):
        counts, plan = restore(params["src"], writer, size_limit, params["points_per_request"], step, checkpoint,
                               follow=(watch.running, params["poll_interval"]) if watch else None,
                               batch_attempts=params["batch_attempts"], state_dir=journal.state_dir)
        if watch:
            watch.check_finished(len(plan["batches"]))
        result.update(counts=counts, points=plan["points"], batches=len(plan["batches"]))
        if params["verify"]:
            client = client_from_params(params["verify_url"] or params["url"], params)
            result["verification"] = verify(params["kind"], client, plan, params["verify_timeout"])
            if params["verify_values"]:
                result["verification"].update(verify_values(params["kind"], client, plan))
        step.complete(counts={"points": plan["points"], "sent": counts["points"], "requests": counts["requests"]})
    result["changed"] = counts["points"] > 0
    return result


def argument_spec():
    spec = dict(
        src=dict(type="path", required=True),
        url=dict(type="str", required=True),
        verify_url=dict(type="str"),
        verify=dict(type="bool", default=True),
        verify_timeout=dict(type="float", default=60.0),
        verify_values=dict(type="bool", default=False),
        wait_for_step=dict(type="str"),
        poll_interval=dict(type="float", default=10.0),
        wait_timeout=dict(type="float", default=600.0),
    )
    spec.update(put_argument_spec())
    spec.update(state_argument_spec())
    spec.update(http_argument_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = run_restore(module.params, module.check_mode)
    except VerificationFailed as exc:
        module.fail_json(msg=str(exc), verification=exc.report)
    except FerryError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
