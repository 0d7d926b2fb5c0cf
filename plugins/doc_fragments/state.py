# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Options every journalled step takes (see plugins/module_utils/core/journal.py).
    DOCUMENTATION = r"""
options:
  state_dir:
    description:
      - The migration's state directory on the host that runs the module. Each step records there
        its status, timings, input fingerprint, progress, counts and error.
      - Use one state directory per migration; M(ferry.migrate.migration_status) reads it.
      - The step records and locks are created readable by their owner only (mode C(0600)). An empty string
        is refused.
      - A step already complete with the same inputs is skipped and reports no change.
      - The default, C(/srv/ferry/state), is also the roles' default and M(ferry.migrate.migration_status)'s, so
        that one host's steps are all reported together; steps of different migrations on one host have
        different names. Set another directory to keep a migration apart (a C(STOP) file in a state directory
        stops every step running with it).
    type: path
    default: /srv/ferry/state
  step:
    description:
      - The name under which this step is recorded in O(state_dir). Give distinct names to two runs
        of the same module in one migration.
      - When not set, the module's short name (for example C(bundle_check)).
      - Letters, digits, C(.), C(_) and C(-).
    type: str
  force:
    description:
      - Run the step again even if it is recorded as complete with the same inputs.
    type: bool
    default: false
"""
