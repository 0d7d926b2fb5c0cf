#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: migration_status
short_description: Report the status of every step of a migration
version_added: 0.1.0
description:
  - Reads a migration's state directory and returns each recorded step with its status
    (C(running), C(complete), C(failed), or C(interrupted) for a step whose run was killed),
    progress, counts, timings and error, plus a readable table (RV(table_lines), one line per step, prints well in
    a C(debug) task and in ad hoc output).
  - A step record that cannot be read (damaged, not JSON) is reported as C(unreadable) with the reason as
    its error, and a warning; the other steps are reported as usual.
  - Safe to run at any time, also while steps run (for example to follow an C(async) task).
  - Never changes anything.
author:
  - ferry.migrate maintainers (@ferry-migrate)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  state_dir:
    description:
      - The migration's state directory, as given to the steps' O(ferry.migrate.bundle_check#module:state_dir).
        An empty string is refused.
      - The default is the default of every step's O(ferry.migrate.bundle_check#module:state_dir) and of the roles'
        state directories (C(zenoss_bundle_state_dir), C(tsdb_transfer_state_dir), C(rrd_to_graphite_state_dir)),
        so that run ad hoc without options it reports what the roles recorded on that host.
    type: path
    default: /srv/ferry/state
  steps:
    description:
      - Only report these steps. Steps named here that never ran are reported as C(pending).
    type: list
    elements: str
    default: []
  fail_on:
    description:
      - Fail the task if any reported step has one of these statuses (for example to stop a workflow
        after a failed step).
    type: list
    elements: str
    choices: [failed, interrupted, running, pending, unreadable]
    default: []
attributes:
  check_mode:
    support: full
    details: The module only reads.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
seealso:
  - module: ferry.migrate.bundle_check
"""

EXAMPLES = r"""
- name: Show the migration's progress
  ferry.migrate.migration_status:
    state_dir: /srv/import4/state
  register: status

- name: Print the table, one line per step
  ansible.builtin.debug:
    msg: "{{ status.table_lines }}"

# Ad hoc, on every host of the group (the default state_dir is the roles' one):
#   ansible target -m ferry.migrate.migration_status
#   ansible target -m ferry.migrate.migration_status -a state_dir=/srv/import4/state
# and read table_lines in the output.

- name: Stop if a step failed or was interrupted
  ferry.migrate.migration_status:
    state_dir: /srv/import4/state
    steps: [bundle_check]
    fail_on: [failed, interrupted, pending]
"""

RETURN = r"""
steps:
  description: One entry per step, oldest start first.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Step name.
      type: str
      returned: always
      sample: bundle_check
    status:
      description: C(pending), C(running), C(complete), C(failed), C(interrupted) or C(unreadable) (its record
        cannot be read; RV(steps[].error) says why).
      type: str
      returned: always
      sample: complete
    started:
      description: Start time (UTC, ISO 8601).
      type: str
      returned: always
    ended:
      description: End time (UTC, ISO 8601), null while running.
      type: str
      returned: always
    elapsed_s:
      description: Duration in seconds (up to now while running).
      type: float
      returned: always
    attempt:
      description: How many times the step has started.
      type: int
      returned: always
    progress:
      description: Done, total, unit, percent and rate per second.
      type: dict
      returned: always
      sample: {"done": 524288000, "total": 1048576000, "unit": "bytes", "percent": 50.0, "rate_per_s": 210000000.0}
    counts:
      description: What the step counted (files, rows, points...).
      type: dict
      returned: always
    error:
      description: Why the step failed, or why its record is unreadable; null otherwise.
      type: str
      returned: always
summary:
  description: Number of steps per status.
  returned: always
  type: dict
  sample: {"complete": 3, "failed": 1}
complete:
  description: True when every reported step is complete.
  returned: always
  type: bool
table_lines:
  description:
    - The table of the steps as a list of lines (a header, then one line per step), for printing with
      C(ansible.builtin.debug) (its C(msg) set to this list) and for reading ad hoc output.
  returned: always
  type: list
  elements: str
  sample:
    - "STEP          STATUS    PROGRESS                              ELAPSED  COUNTS / ERROR"
    - "bundle_check  complete  1048576000/1048576000 bytes (100.0%)  0:00:05  bytes=1048576000, rrd_files=1200"
table:
  description:
    - The same table as one string, lines separated by newlines (kept for compatibility; RV(table_lines) prints
      better).
  returned: always
  type: str
  sample: |-
    STEP          STATUS    PROGRESS                              ELAPSED  COUNTS / ERROR
    bundle_check  complete  1048576000/1048576000 bytes (100.0%)  0:00:05  bytes=1048576000, rrd_files=1200
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import check_paths, exit_with
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import (
    UNREADABLE,
    Journal,
    describe,
    format_table,
    state_argument_spec,
)


def run(params, check_mode=False):
    """The status of the steps; a result with a ``msg`` (a failed task) when one is in a ``fail_on`` status.
    Check mode changes nothing: the module only reads."""
    result = dict(collect(params["state_dir"], params["steps"]), changed=False)
    bad = [row for row in result["steps"] if row["status"] in params["fail_on"]]
    if bad:
        result["msg"] = "; ".join("step %s is %s%s" % (row["name"], row["status"],
                                                       ": %s" % row["error"] if row["error"] else "")
                                  for row in bad)
    return result


def collect(state_dir, only):
    check_paths({"state_dir": state_dir}, ("state_dir",))
    rows = [_row(record) for record in Journal(state_dir, create=False).records()]
    if only:
        by_name = dict((row["name"], row) for row in rows)
        rows = [by_name.get(name) or _pending(name) for name in only]
    summary = {}
    for row in rows:
        summary[row["status"]] = summary.get(row["status"], 0) + 1
    table = format_table(rows)
    return {
        "steps": rows,
        "summary": summary,
        "complete": bool(rows) and all(row["status"] == "complete" for row in rows),
        "table": table,
        "table_lines": table.splitlines(),
    }


def _row(record):
    """A step's row; a record whose fields are not what a step writes is unreadable, not a failed task."""
    try:
        return describe(record)
    except (TypeError, ValueError, AttributeError) as exc:
        return dict(_pending(record.get("name")), status=UNREADABLE,
                    error="the record of step %s holds unexpected values (%s)" % (record.get("name"), exc))


def unreadable_warnings(result):
    return ["step %s: %s" % (row["name"], row["error"]) for row in result["steps"] if row["status"] == UNREADABLE]


def _pending(name):
    return {"name": name, "status": "pending", "started": None, "ended": None, "elapsed_s": None,
            "attempt": 0, "resumed": False, "host": None, "pid": None,
            "progress": {"done": None, "total": None, "unit": None, "percent": None, "rate_per_s": None},
            "counts": {}, "error": None, "fingerprint": None}


def argument_spec():
    return dict(
        state_dir=state_argument_spec()["state_dir"],
        steps=dict(type="list", elements="str", default=[]),
        fail_on=dict(type="list", elements="str", default=[],
                     choices=["failed", "interrupted", "running", "pending", "unreadable"]),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    exit_with(module, lambda: run(module.params, module.check_mode), unreadable_warnings)


if __name__ == "__main__":
    main()
