# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait for async jobs of ferry.migrate steps, printing their journal progress at each poll.

``until`` on ``async_status`` prints ``FAILED - RETRYING: ... (302399 retries left)`` at each poll: it reads like
trouble and says nothing of the progress. This action polls the jobs itself (``async_status`` on the managed host)
and prints one line per poll with each step's status and progress from its journal (``migration_status``), for
example ``[worker1] tsdb_dump running 3/12 batches 25.0% 0:00:14 | tsdb_restore running 2/12 batches 16.7% 0:00:13``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import elapsed_text, progress_text

display = Display()

HEARTBEAT = 60.0  # an unchanged progress line is printed again after this many seconds


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True
    _supports_check_mode = True
    _supports_async = False

    ARGUMENT_SPEC = {
        "jobs": {"type": "dict", "required": True},
        "state_dir": {"type": "path", "required": True},
        "poll_interval": {"type": "float", "default": 10.0},
        "timeout": {"type": "float", "default": 604800.0},
    }

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=self.ARGUMENT_SPEC)
        jobs = dict((str(step), str(jid)) for step, jid in args["jobs"].items() if jid)
        if not 0.1 <= args["poll_interval"] <= 3600 or args["timeout"] < 0:
            result.update(failed=True, msg="poll_interval must be from 0.1 to 3600 and timeout 0 or more: got %r and %r"
                          % (args["poll_interval"], args["timeout"]))
            return result
        host = (task_vars or {}).get("inventory_hostname", "?")
        async_dir = self._remote_expand_user(self.get_shell_option("async_dir", default="~/.ansible_async"))
        deadline = time.monotonic() + args["timeout"]
        finished, last_line, last_shown = {}, None, 0.0
        try:
            while True:
                for step, jid in sorted(jobs.items()):
                    if step not in finished:
                        status = self._job_status(jid, async_dir, task_vars)
                        if status.get("finished") or status.get("failed"):
                            finished[step] = status
                line = self._progress_line(args["state_dir"], sorted(jobs), finished, task_vars)
                now = time.monotonic()
                if line != last_line or now - last_shown >= HEARTBEAT:
                    display.display("[%s] %s" % (host, line))
                    last_line, last_shown = line, now
                if len(finished) == len(jobs) or now >= deadline:
                    break
                time.sleep(min(args["poll_interval"], max(0.0, deadline - now)))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        for step in jobs:
            finished.setdefault(step, {"finished": False, "ansible_job_id": jobs[step],
                                       "msg": "step %s did not finish within %d s" % (step, args["timeout"])})
        result.update(jobs=finished, finished=all(job.get("finished") for job in finished.values()),
                      changed=any(job.get("changed") for job in finished.values()))
        return result

    def _job_status(self, jid, async_dir, task_vars):
        """One look at an async job (``async_status``); a job whose status cannot be read is finished, failed."""
        status = self._execute_module(module_name="ansible.legacy.async_status", task_vars=task_vars,
                                      module_args={"jid": jid, "mode": "status", "_async_dir": async_dir})
        for name in ("started", "finished"):
            status[name] = bool(status.get(name))
        if status.get("failed") and not status.get("finished"):
            status["finished"] = True  # e.g. "could not find job": waiting longer cannot help
        return status

    def _progress_line(self, state_dir, steps, finished, task_vars):
        """``<step> <status> <progress> <elapsed>`` for each step, from the journal (``migration_status``)."""
        rows = {}
        try:
            answer = self._execute_module(module_name="ferry.migrate.migration_status", task_vars=task_vars,
                                          module_args={"state_dir": state_dir, "steps": steps})
            rows = dict((row.get("name"), row) for row in answer.get("steps") or [])
        except Exception as exc:  # pylint: disable=broad-except  # progress is a courtesy: never fail the wait
            display.vvv("wait_steps: no progress from %s: %s" % (state_dir, exc))
        parts = []
        for step in steps:
            row = rows.get(step) or {}
            status = row.get("status") or "pending"
            if step in finished and finished[step].get("failed"):
                status = "failed"
            parts.append(" ".join(text for text in (step, status, progress_text(row.get("progress") or {}),
                                                    elapsed_text(row.get("elapsed_s"))) if text))
        return " | ".join(parts)
