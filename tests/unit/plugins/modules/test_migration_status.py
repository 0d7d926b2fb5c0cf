# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""migration_status as an operator uses it (issue 12, defect 9): its table as a list of lines that prints well
(ad hoc and in a debug task), and one default state directory for the modules, the doc fragment and the roles,
so that run ad hoc without options it reports what the roles recorded."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os

import yaml

from ansible_collections.ferry.migrate.plugins.doc_fragments.state import ModuleDocFragment
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import (
    DEFAULT_STATE_DIR,
    Journal,
    state_argument_spec,
)
from ansible_collections.ferry.migrate.plugins.modules import migration_status

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


def params(**values):
    base = dict((name, option.get("default")) for name, option in migration_status.argument_spec().items())
    base.update(values)
    return base


def journal_with_two_steps(state_dir):
    journal = Journal(state_dir)
    for name, counts in (("bundle_check", {"rrd_files": 12}), ("perf-main", {"files": 12})):
        step = journal.step(name)
        with step.begin({"name": name}):
            step.complete(counts=counts)


def test_the_table_is_also_a_list_of_lines_one_per_step(tmp_path):
    journal_with_two_steps(str(tmp_path / "state"))
    result = migration_status.run(params(state_dir=str(tmp_path / "state")))
    lines = result["table_lines"]
    assert isinstance(lines, list) and all("\n" not in line for line in lines)
    assert lines == result["table"].splitlines()  # table stays, for compatibility
    assert lines[0].split() == ["STEP", "STATUS", "PROGRESS", "ELAPSED", "COUNTS", "/", "ERROR"]
    assert [line.split()[:2] for line in lines[1:]] == [["bundle_check", "complete"], ["perf-main", "complete"]]
    assert lines[1].endswith("rrd_files=12") and lines[2].endswith("files=12")


def test_an_empty_state_directory_gives_the_header_line_only(tmp_path):
    result = migration_status.run(params(state_dir=str(tmp_path / "none")))
    assert result["steps"] == [] and len(result["table_lines"]) == 1


def test_every_value_returned_is_documented_and_the_example_prints_the_lines(tmp_path):
    journal_with_two_steps(str(tmp_path / "state"))
    result = migration_status.run(params(state_dir=str(tmp_path / "state")))
    documented = yaml.safe_load(migration_status.RETURN)
    assert set(result) - {"changed"} == set(documented)
    assert documented["table_lines"]["type"] == "list" and documented["table_lines"]["elements"] == "str"
    examples = yaml.safe_load(migration_status.EXAMPLES)
    printed = [task["ansible.builtin.debug"]["msg"] for task in examples if "ansible.builtin.debug" in task]
    assert printed == ["{{ status.table_lines }}"]


def test_the_modules_and_the_fragment_share_one_default_state_directory():
    assert DEFAULT_STATE_DIR == "/srv/ferry/state"
    assert state_argument_spec()["state_dir"]["default"] == DEFAULT_STATE_DIR
    assert migration_status.argument_spec()["state_dir"]["default"] == DEFAULT_STATE_DIR
    fragment = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]["state_dir"]
    assert fragment["default"] == DEFAULT_STATE_DIR
    documented = yaml.safe_load(migration_status.DOCUMENTATION)["options"]["state_dir"]
    assert documented["default"] == DEFAULT_STATE_DIR


def test_every_role_state_directory_defaults_to_the_modules_default():
    """Each role's *_state_dir variables (defaults/main.yml and meta/argument_specs.yml): migration_status run ad hoc
    without options reads what the roles recorded."""
    found = {}
    for role_dir in sorted(glob.glob(os.path.join(ROOT, "roles", "*"))):
        role = os.path.basename(role_dir)
        with open(os.path.join(role_dir, "defaults", "main.yml")) as handle:
            defaults = yaml.safe_load(handle) or {}
        with open(os.path.join(role_dir, "meta", "argument_specs.yml")) as handle:
            options = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
        for name, value in defaults.items():
            if name.endswith("state_dir"):
                found["%s defaults: %s" % (role, name)] = value
        for name, option in options.items():
            if name.endswith("state_dir"):
                found["%s argument spec: %s" % (role, name)] = option.get("default")
    assert [key for key in found if key.startswith("zenoss_bundle ")] == [
        "zenoss_bundle defaults: zenoss_bundle_state_dir", "zenoss_bundle argument spec: zenoss_bundle_state_dir"]
    # mvi_migrate keeps its journal on the data mount, where the original kept its status files: a Kubernetes Job's
    # own file system goes with its pod, the data volume stays (docs/mvi.md, migration_status needs state_dir there)
    mvi = "{{ mvi_migrate_data_mount }}/logs/migrations/{{ mvi_migrate_name }}/state"
    assert found.pop("mvi_migrate defaults: mvi_migrate_state_dir") == mvi
    assert found.pop("mvi_migrate argument spec: mvi_migrate_state_dir") is None  # documented as that path
    assert dict((key, value) for key, value in found.items() if value != DEFAULT_STATE_DIR) == {}
