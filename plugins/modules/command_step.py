#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: command_step
short_description: Run an application's command as a step of the migration journal
version_added: 0.1.0
description:
  - Runs one command (an application's own tool, such as Zenoss 5's C(zenmigrate) or C(zenpack --install)) as a
    step recorded in O(state_dir), like every ferry.migrate step, so that M(ferry.migrate.migration_status) shows
    it beside the others and a rerun with the same inputs skips it (C(changed=false)).
  - Its output (standard output and error together) goes to C(<state_dir>/steps/<step>.log) as it comes; lines
    matching O(count_pattern) are counted as the step's progress (out of O(total) when given), so
    M(ferry.migrate.wait_steps) and M(ferry.migrate.migration_status) show how far it is.
  - The step fails, with the exit status and the last lines of output, when the command exits with a status other
    than 0, when it runs longer than O(timeout), or when O(expect_count) is set and another number of lines
    matched. A failed or killed step runs again on the next attempt (a command is not resumable).
author:
  - ferry.migrate maintainers (@ferry-migrate)
extends_documentation_fragment:
  - ferry.migrate.state
  - ansible.builtin.action_common_attributes
options:
  argv:
    description:
      - The command and its arguments, run without a shell.
    type: list
    elements: str
    required: true
  stdin:
    description:
      - Text given to the command on its standard input (for example a C(zendmd) script).
    type: str
  chdir:
    description:
      - Directory to run the command in.
    type: path
  environment:
    description:
      - Variables added to the command's environment. Their values are kept out of the output.
    type: dict
    default: {}
  inputs:
    description:
      - Further values that, with O(argv), O(stdin) and O(environment), make the step's inputs; the step runs
        again when they change (for example the checksum of the data the command works on).
    type: raw
  count_pattern:
    description:
      - A regular expression; each output line it matches (C(re.search)) counts one unit of progress.
    type: str
  total:
    description:
      - The number of matching lines expected, shown as the progress' total; 0 or more.
    type: int
  expect_count:
    description:
      - Fail unless exactly this many output lines match O(count_pattern) (0 or more).
    type: int
  timeout:
    description:
      - Longest run in seconds, from 1 to 604800; the command is killed then and the step fails.
    type: int
    default: 86400
  output_lines:
    description:
      - How many of the last output lines RV(stdout_lines) returns, from 0 to 10000.
    type: int
    default: 50
attributes:
  check_mode:
    support: full
    details: Runs nothing; reports whether a run would run the command (C(changed)) from the journal.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
seealso:
  - module: ferry.migrate.migration_status
  - module: ferry.migrate.wait_steps
"""

EXAMPLES = r"""
- name: Run Zenoss 5's schema migration once
  ferry.migrate.command_step:
    argv: [serviced, service, run, zope, zenmigrate]
    step: zenoss_zenmigrate
    state_dir: /srv/ferry/state
    inputs:
      bundle_md5: 0123456789abcdef0123456789abcdef

- name: Install a ZenPack, counting the confirmation
  ferry.migrate.command_step:
    argv: [serviced, service, run, zope, zenpack, --install, ZenPacks.zenoss.LinuxMonitor]
    step: zenoss_zenpack_LinuxMonitor
    count_pattern: Successfully Installed ZenPack
    expect_count: 1
"""

RETURN = r"""
decision:
  description: What the step journal decided; C(run), C(resume) (after a failed or killed run; the command runs
    again) or C(skip) (complete earlier with the same inputs).
  returned: always
  type: str
  sample: run
rc:
  description: The command's exit status (of the earlier run when skipped).
  returned: when the command ran now or earlier
  type: int
  sample: 0
count:
  description: Output lines that matched O(count_pattern).
  returned: when the command ran now or earlier
  type: int
  sample: 12
stdout_lines:
  description: The last O(output_lines) lines of output.
  returned: when the command ran now or earlier
  type: list
  elements: str
log:
  description: The file holding the whole output.
  returned: always
  type: str
  sample: /srv/ferry/state/steps/zenoss_zenmigrate.log
"""

import collections
import os
import re
import subprocess
import threading

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import (
    FerryError,
    check_paths,
    check_ranges,
    exit_with,
    open_private,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import (
    SKIP,
    attempt_step,
    state_argument_spec,
)


def run(params, check_mode):
    check_options(params)
    pattern = re.compile(params["count_pattern"]) if params["count_pattern"] else None
    attempt = attempt_step(params, "command_step", {
        "argv": params["argv"], "stdin": params["stdin"], "chdir": params["chdir"],
        "environment": params["environment"], "inputs": params["inputs"], "count_pattern": params["count_pattern"],
        "expect_count": params["expect_count"],
    }, check_mode)
    log = attempt.step.beside(".log")
    if attempt.decision == SKIP:
        return dict((attempt.record or {}).get("result") or {}, decision=SKIP, changed=False, log=log)
    if not attempt.runs:
        return {"decision": attempt.decision, "changed": True, "log": log}
    with attempt.running(total=params["total"], unit="lines" if pattern else None) as step:
        rc, count, tail = _run_command(params, pattern, log, step)
        result = {"rc": rc, "count": count, "stdout_lines": tail}
        _check_outcome(params, result)
        step.complete(counts={"matched": count}, result=result)
    return dict(result, decision=attempt.decision, changed=True, log=log)


def _run_command(params, pattern, log, step):
    """Run the command, its output to the log as it comes; (rc, matching lines, last lines)."""
    env = dict(os.environ, **{key: str(value) for key, value in params["environment"].items()})
    tail = collections.deque(maxlen=params["output_lines"])
    count = 0
    try:
        # Not module.run_command: it holds the whole output in memory and tells nothing until the command ends;
        # this streams each line to the log and counts it as progress.
        process = subprocess.Popen(  # pylint: disable=ansible-bad-function
            params["argv"], cwd=params["chdir"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if params["stdin"] is not None else subprocess.DEVNULL)
    except OSError as exc:
        raise FerryError("cannot run %s: %s" % (params["argv"][0], exc.strerror or exc))
    timed_out = threading.Event()

    def kill():
        timed_out.set()
        process.kill()

    timer = threading.Timer(params["timeout"], kill)
    timer.start()
    try:
        if params["stdin"] is not None:
            _feed(process, params["stdin"])
        with open_private(log) as out:
            for raw in process.stdout:
                out.write(raw)
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                tail.append(line)
                if pattern and pattern.search(line):
                    count += 1
                    step.progress(count)
        rc = process.wait()
    finally:
        timer.cancel()
    if timed_out.is_set():
        raise FerryError("%s ran longer than %d s and was killed; its output is in %s"
                         % (params["argv"][0], params["timeout"], log))
    return rc, count, list(tail)


def _feed(process, text):
    """Write stdin from a thread: a command that prints before reading must not block on a full pipe."""
    def write():
        try:
            process.stdin.write(text.encode("utf-8"))
            process.stdin.close()
        except OSError:
            pass  # the command exited without reading it all: its exit status tells
    threading.Thread(target=write, daemon=True).start()


def _check_outcome(params, result):
    last = "; ".join(result["stdout_lines"][-5:]) or "no output"
    if result["rc"] != 0:
        raise FerryError("%s exited with status %d (last lines: %s)" % (params["argv"][0], result["rc"], last))
    expected = params["expect_count"]
    if expected is not None and result["count"] != expected:
        raise FerryError("%s printed %d line(s) matching %r, expected %d (last lines: %s)"
                         % (params["argv"][0], result["count"], params["count_pattern"], expected, last))


def check_options(params):
    check_paths(params, ("state_dir",))
    if not params["argv"] or not params["argv"][0]:
        raise FerryError("argv must name a command")
    if params["expect_count"] is not None and not params["count_pattern"]:
        raise FerryError("expect_count needs count_pattern")
    if params["count_pattern"]:
        try:
            re.compile(params["count_pattern"])
        except re.error as exc:
            raise FerryError("count_pattern is no regular expression: %s" % exc)
    check_ranges(params, {"timeout": (1, 604800), "output_lines": (0, 10000), "total": (0, None),
                          "expect_count": (0, None)})


def argument_spec():
    spec = dict(
        argv=dict(type="list", elements="str", required=True),
        stdin=dict(type="str"),
        chdir=dict(type="path"),
        environment=dict(type="dict", default={}, no_log=True),
        inputs=dict(type="raw"),
        count_pattern=dict(type="str"),
        total=dict(type="int"),
        expect_count=dict(type="int"),
        timeout=dict(type="int", default=86400),
        output_lines=dict(type="int", default=50),
    )
    spec.update(state_argument_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    exit_with(module, lambda: run(module.params, module.check_mode))


if __name__ == "__main__":
    main()
