#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: wait_steps
short_description: Wait for async jobs of ferry.migrate steps, printing their progress at each poll
version_added: 0.1.0
description:
  - Polls the C(async) jobs given in O(jobs) on the host (as M(ansible.builtin.async_status) does) until every one
    has finished, and prints one line per poll with each step's status, progress and elapsed time read from its
    step journal in O(state_dir) (as M(ferry.migrate.migration_status) reports them), for example
    C([worker1] tsdb_dump running 3/12 batches 25.0% 0:00:14 | tsdb_restore running 2/12 batches 16.7% 0:00:13).
    An unchanged line is printed again once a minute.
  - Unlike an C(until) loop on M(ansible.builtin.async_status), it prints no C(FAILED - RETRYING) line at each poll.
  - The task does not fail when a job failed. RV(jobs) holds each job's result (its C(msg) tells), so that a role
    can print the steps' status before failing.
  - This is an action plugin. It runs on the controller and runs M(ansible.builtin.async_status) and
    M(ferry.migrate.migration_status) on the host at each poll.
author:
  - ferry.migrate maintainers (@ferry-migrate)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.flow
options:
  jobs:
    description:
      - Step name to async job id (the C(ansible_job_id) of the task started with C(async) and C(poll=0)). The
        step name is the one the module records in O(state_dir) (for example C(tsdb_dump)). An empty id is left out.
    type: dict
    required: true
  state_dir:
    description:
      - The state directory the steps record in, as given to them.
    type: path
    required: true
  poll_interval:
    description:
      - Seconds between polls, from 0.1 to 3600.
    type: float
    default: 10
  timeout:
    description:
      - Longest wait in seconds, 0 or more; the jobs not finished by then are returned with C(finished) false and
        a C(msg).
    type: float
    default: 604800
attributes:
  action:
    support: full
  async:
    support: none
  become:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: It only reads; jobs are usually not started in check mode, so roles skip the wait there.
  connection:
    support: full
  delegation:
    support: full
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
seealso:
  - module: ferry.migrate.migration_status
  - module: ansible.builtin.async_status
"""

EXAMPLES = r"""
- name: Start the dump
  ferry.migrate.tsdb_dump:
    url: http://opentsdb.example.net:4242
    start: "2025-01-01"
    dest: /srv/ferry/tsdb/batches
    state_dir: /srv/ferry/state
  async: 604800
  poll: 0
  register: dump_job

- name: Wait for the dump (its progress is printed at each poll)
  ferry.migrate.wait_steps:
    jobs:
      tsdb_dump: "{{ dump_job.ansible_job_id }}"
    state_dir: /srv/ferry/state
  register: waited

- name: Fail when the dump failed
  ansible.builtin.fail:
    msg: "{{ waited.jobs.tsdb_dump.msg }}"
  when: waited.jobs.tsdb_dump.msg is defined
"""

RETURN = r"""
jobs:
  description: Each step's job result, as M(ansible.builtin.async_status) returns it once the job has finished (the
    module's own result, with C(changed), C(msg) when it failed, and its return values), or C(finished) false and a
    C(msg) when it did not finish within O(timeout).
  returned: always
  type: dict
  sample: {"tsdb_dump": {"finished": true, "changed": true, "decision": "run"}}
finished:
  description: Whether every job finished.
  returned: always
  type: bool
changed:
  description: Whether any job reported a change.
  returned: always
  type: bool
"""
