# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role rrd_to_graphite and its guide, read statically: the variables a user can set are exactly the documented
options, what the role computes cannot collide with them, and the guide names only options and gives a query that
writes quoted CSV. (The role runs in the molecule scenarios rrd_to_graphite and nav_multihost.)"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROLE = os.path.join(ROOT, "roles", "rrd_to_graphite")
RESULT = "rrd_to_graphite_summary"


def load(*parts):
    with open(os.path.join(*parts)) as handle:
        return yaml.safe_load(handle)


def text(*parts):
    with open(os.path.join(ROOT, *parts)) as handle:
        return handle.read()


def options():
    return load(ROLE, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]


def task_files():
    folder = os.path.join(ROLE, "tasks")
    return dict((name, load(folder, name)) for name in sorted(os.listdir(folder)) if name.endswith(".yml"))


def tasks(entries):
    for task in entries or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from tasks(task.get(key))


def renamed():
    """The names the role recognises as an older guide's (tasks/variables.yml), with what they meant."""
    refuse = next(task for task in task_files()["variables.yml"] if "__rrd_to_graphite_renamed" in task.get("vars", {}))
    return refuse["vars"]["__rrd_to_graphite_renamed"]


def test_every_default_is_a_documented_option_and_back():
    assert set(load(ROLE, "defaults", "main.yml")) == set(options())


def test_the_role_computes_and_registers_only_internal_names():
    """A set_fact or register named like an option would be overridden by that option given with -e (extra
    variables win over facts) - the issue 12 defect 4: rrd_to_graphite_src was an internal fact the guide named."""
    names = set()
    for name, entries in task_files().items():
        for task in tasks(entries):
            names.update((name, key) for key in (task.get("ansible.builtin.set_fact") or {}) if key != "cacheable")
            names.update((name, key) for key in (task.get("vars") or {}))
            if task.get("register"):
                names.add((name, task["register"]))
    names.update(("vars/main.yml", key) for key in load(ROLE, "vars", "main.yml"))
    bad = sorted((where, key) for where, key in names if not key.startswith("__rrd_to_graphite_") and key != RESULT)
    assert bad == []
    assert not set(options()) & set(key for _where, key in names)


def test_the_guide_the_playbook_and_the_readme_name_only_options():
    known = set(options()) | {RESULT}
    for path in ("docs/nav.md", "README.md", "playbooks/nav3_rrd_to_graphite.yml", "roles/rrd_to_graphite/meta/argument_specs.yml"):
        found = set(re.findall(r"\brrd_to_graphite_[a-z_]*[a-z]", text(path)))
        unknown = found - known - set(renamed())
        assert unknown == set(), (path, sorted(unknown))
    # an older name is only ever mentioned as such
    for old in renamed():
        for line in text("docs/nav.md").splitlines():
            assert old not in line or "older" in line, line


def test_the_old_names_point_to_options():
    for old, meant in renamed().items():
        assert old not in options()
        assert meant.split()[0] in options() or meant.startswith("nothing")


def test_the_guide_query_writes_quoted_csv():
    """NAV's paths hold commas: the query must write CSV that quotes them (COPY ... CSV), not psql -At -F,."""
    guide = text("docs/nav.md")
    queries = [block for block in re.findall(r"```sql\n(.*?)```", guide, re.S) if "rrd_file" in block]
    assert len(queries) == 1
    query = queries[0]
    assert re.search(r"\bCOPY \(", query) and re.search(r"TO STDOUT WITH \(FORMAT csv, HEADER\)", query)
    assert "-F," not in query and "-At" not in query
    # what NAV's tables hold: the file is path || '/' || filename, its data sources in rrd_datasource
    assert "f.path || '/' || f.filename" in query and "JOIN rrd_datasource d USING (rrd_fileid)" in query
    assert ".sensors." in query  # NAV 4's sensor metrics: nav.devices.<sysname>.sensors.<internal name>
