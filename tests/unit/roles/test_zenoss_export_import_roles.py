# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The zenoss_export and zenoss_import roles' options: what meta/argument_specs.yml documents is what
defaults/main.yml sets, every default is documented, internals are named __<role>_*, and the commands default to
Zenoss's own forms (the playbook and molecule scenario zenoss_multihost run them end to end)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def load(role, path):
    with open(os.path.join(ROOT, "roles", role, path)) as handle:
        return yaml.safe_load(handle)


@pytest.mark.parametrize("role", ["zenoss_export", "zenoss_import"])
def test_documented_options_are_the_defaults(role):
    options = load(role, "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    defaults = load(role, "defaults/main.yml")
    assert set(defaults) <= set(options), set(defaults) - set(options)
    assert all(name.startswith(role + "_") for name in options)
    for name, option in options.items():
        if "default" in option:
            assert defaults[name] == option["default"], name
        elif name in defaults:  # computed defaults (templated) are documented in words
            assert isinstance(defaults[name], str) and "{{" in defaults[name], name


@pytest.mark.parametrize("role", ["zenoss_export", "zenoss_import"])
def test_internals_are_out_of_the_options_reach(role):
    internals = load(role, "vars/main.yml")
    assert internals and all(name.startswith("__" + role + "_") for name in internals)
    for path in os.listdir(os.path.join(ROOT, "roles", role, "tasks")):
        text = open(os.path.join(ROOT, "roles", role, "tasks", path)).read()
        registered = re.findall(r"^\s+register: (\S+)", text, re.M)
        assert all(name.startswith("__" + role + "_") for name in registered), (path, registered)


def test_zenoss_commands_default_to_zenoss_5_service_runs():
    defaults = load("zenoss_import", "defaults/main.yml")
    commands = {name: value for name, value in defaults.items() if name.endswith("_command")}
    assert len(commands) == 7
    assert all(value[:5] == ["serviced", "service", "run", "zope", value[4]] for value in commands.values())
    assert defaults["zenoss_import_schema_command"][-1] == "--update_schema_only"
    assert defaults["zenoss_import_zenpack_install_command"][-2:] == ["zenpack", "--install"]
    assert set(defaults["zenoss_import_skipped_zenpacks"]) == {
        "ZenPacks.zenoss.AutoTune", "ZenPacks.zenoss.WebScale", "ZenPacks.zenoss.ZenHoltWinters",
        "ZenPacks.zenoss.DeviceSearch", "ZenPacks.zenoss.AbsoluteCounters"}


def test_the_egg_pattern_takes_the_zenpack_names_of_zenpacks_tar():
    pattern = re.compile(load("zenoss_import", "vars/main.yml")["__zenoss_import_egg_pattern"])
    names = ["ZenPacks/", "ZenPacks/easy-install.pth", "ZenPacks/ZenPacks.zenoss.LinuxMonitor-1.2.1-py2.7.egg/",
             "./ZenPacks/ZenPacks.zenoss.PySamba-1.0.2-py2.7-linux-x86_64.egg/EGG-INFO/PKG-INFO",
             "ZenPacks/ZenPacks.community.My_Pack2-0.1-py2.7.egg/x"]  # egg names have no "-" in them
    found = [match.group(1) for match in map(pattern.search, names) if match]
    assert found == ["ZenPacks.zenoss.LinuxMonitor", "ZenPacks.zenoss.PySamba", "ZenPacks.community.My_Pack2"]


def test_the_playbook_runs_export_import_then_perf():
    plays = yaml.safe_load(open(os.path.join(ROOT, "playbooks", "zenoss4_to_zenoss5.yml")))
    roles = [play["roles"][0]["role"] for play in plays]
    assert roles == ["ferry.migrate.zenoss_export", "ferry.migrate.zenoss_import", "ferry.migrate.zenoss_perf"]
    assert [play["hosts"] for play in plays] == ["{{ ferry_source_group | default('source') }}",
                                                 "{{ ferry_target_group | default('target') }}",
                                                 "{{ ferry_workers_group | default('workers') }}"]
