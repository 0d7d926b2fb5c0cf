#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: sql_dump
short_description: Dump one MariaDB or MySQL database, consistently, to a .sql.gz with its checksums and row counts
version_added: 0.2.0
description:
  - Runs C(mariadb-dump) (or C(mysqldump) when it is the one installed) with C(--single-transaction) (one snapshot
    of the InnoDB tables, without locking them), C(--routines) and C(--triggers), and streams its output to a gzip
    file at O(dest).
  - The password goes to the dump program in an option file readable by the module's user only, never on its
    command line.
  - "The dump is read statement by statement on its way to the file (the splitter M(ferry.migrate.sql_import)
    uses): the rows of each table are counted in its C(INSERT) statements, so they are those of the snapshot the
    file holds, and the triggers, routines and views it creates are listed."
  - Binary columns are written as the server sends them (escaped bytes, as C(zenbackup) does); the file is
    therefore not UTF-8 text. M(ferry.migrate.sql_import) reads it as bytes.
  - "The file is written under a hidden temporary name beside O(dest), synced and renamed into place (mode
    C(0600)): a failure or a kill never leaves a partial file at O(dest)."
  - A second run with the same options, while O(dest) is still the file written (same size and modification
    time), changes nothing, although the database may have changed since; O(force) takes a new dump.
author:
  - ferry.migrate maintainers (@ferry-migrate)
extends_documentation_fragment:
  - ferry.migrate.mysql
  - ferry.migrate.state
  - ansible.builtin.action_common_attributes
options:
  database:
    description:
      - The database to dump.
    type: str
    required: true
  dest:
    description:
      - The C(.sql.gz) file to write, on the host that runs the module. Its directory is created when missing (with
        the missing directories above it). An empty string is refused.
    type: path
    required: true
  no_data:
    description:
      - Dump the schema only (C(--no-data)), as C(zenbackup) dumps the C(zodb_session) database.
    type: bool
    default: false
  definer:
    description:
      - "C(strip) removes the C(DEFINER=) clause of every trigger, view, routine and event (as C(zenbackup) does):
          on import, the importing account becomes their definer. C(keep) writes them as the server reports them."
    type: str
    choices: [keep, strip]
    default: strip
attributes:
  check_mode:
    support: full
    details: Logs in, checks that the database exists and that a dump program is installed, and that the directory of
      O(dest) exists or can be created (no file where a directory goes); dumps nothing and creates nothing.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
notes:
  - Tables of other engines than InnoDB (MyISAM) are not part of the snapshot; their rows may change while the dump
    runs.
  - Progress (bytes of SQL written) is visible with M(ferry.migrate.migration_status) while the step runs.
  - Requires C(mariadb-dump) or C(mysqldump) on the host that runs the module.
seealso:
  - module: ferry.migrate.sql_import
"""

EXAMPLES = r"""
- name: Dump the Zenoss 4 events database as zenbackup does
  ferry.migrate.sql_dump:
    database: zenoss_zep
    dest: /srv/export/zenbackup/zep.sql.gz
    login_user: zenoss
    login_password: "{{ zep_db_password }}"
    state_dir: /srv/export/state
    step: zep-dump
  register: zep

- name: The session database, schema only
  ferry.migrate.sql_dump:
    database: zodb_session
    dest: /srv/export/zenbackup/zodb_session.sql.gz
    no_data: true
"""

RETURN = r"""
decision:
  description: What the step journal decided; C(run), C(resume) (after a killed or failed run; the dump starts
    again) or C(skip) (complete, and O(dest) is still the file written).
  returned: always
  type: str
  sample: run
dest:
  description: The file written.
  returned: always
  type: str
  sample: /srv/export/zenbackup/zep.sql.gz
size:
  description: Its size in bytes.
  returned: success
  type: int
sha256:
  description: Its sha256.
  returned: success
  type: str
md5:
  description: Its md5.
  returned: success
  type: str
tables:
  description: Each table dumped and its rows, counted in the dump.
  returned: success
  type: dict
  sample: {"event_summary": 23814, "event_archive": 71442}
routines:
  description: The procedures and functions dumped.
  returned: success
  type: list
  elements: str
triggers:
  description: The triggers dumped.
  returned: success
  type: list
  elements: str
views:
  description: The views dumped.
  returned: success
  type: list
  elements: str
statements:
  description: Statements in the dump.
  returned: success
  type: int
definers_stripped:
  description: C(DEFINER) clauses removed.
  returned: success
  type: int
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import (
    FerryError,
    check_dest_file,
    check_paths,
    exit_with,
    output_unchanged,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import (
    RUN,
    SKIP,
    attempt_step,
    state_argument_spec,
)
from ansible_collections.ferry.migrate.plugins.module_utils.sql import connection, dumper, importer

STORED = ("dest", "size", "sha256", "md5", "tables", "routines", "triggers", "views", "statements",
          "definers_stripped", "mtime_ns")


def run(params, check_mode):
    check_options(params)
    dest = os.path.abspath(params["dest"])
    attempt = attempt_step(params, "sql_dump", {
        "database": params["database"],
        "dest": dest,
        "no_data": params["no_data"],
        "definer": params["definer"],
        "server": connection.server_identity(params),
    }, check_mode)
    if attempt.decision == SKIP:
        stored = (attempt.record or {}).get("result") or {}
        if output_unchanged(dest, stored):
            return dict(stored, decision=SKIP, changed=False)
        attempt.decision = RUN  # the file was removed or replaced since
    result = {"decision": attempt.decision, "dest": dest}
    check_server(params)
    if not attempt.runs:
        result["changed"] = True
        return result
    with attempt.running(unit="bytes") as step:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        work = dumper.Dump(params, params["database"], dest, no_data=params["no_data"],
                           strip=params["definer"] == "strip", progress=step.progress)
        work.run()
        result.update(
            size=work.size, sha256=work.sha256, md5=work.md5, tables=work.tables,
            routines=sorted(work.objects["procedure"] + work.objects["function"]),
            triggers=sorted(work.objects["trigger"]), views=sorted(work.objects["view"]),
            statements=work.statements, definers_stripped=work.definers_stripped,
            mtime_ns=os.stat(dest).st_mtime_ns)
        step.complete(counts={"tables": len(work.tables), "rows": sum(work.tables.values()), "bytes": work.size},
                      result=dict((key, result[key]) for key in STORED))
    result["changed"] = True
    return result


def check_options(params):
    check_paths(params, ("dest", "state_dir"))
    connection.check_connection_options(params)
    if not (params.get("database") or "").strip():
        raise FerryError("database is empty: name the database to dump")
    check_dest_file(params["dest"])


def check_server(params):
    """Log in and find the database (and the dump program) before the step is recorded as running."""
    dumper.find_program()
    conn = connection.connect(params)
    try:
        if not importer.database_exists(conn, params["database"]):
            raise FerryError("database %s does not exist on the server (%s)" % (
                params["database"], connection.describe(params)))
    finally:
        conn.close()


def argument_spec():
    spec = dict(
        database=dict(type="str", required=True),
        dest=dict(type="path", required=True),
        no_data=dict(type="bool", default=False),
        definer=dict(type="str", choices=["keep", "strip"], default="strip"),
    )
    spec.update(connection.mysql_argument_spec())
    spec.update(state_argument_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if connection.pymysql is None:
        module.fail_json(msg=missing_required_lib("PyMySQL"), exception=connection.PYMYSQL_IMPORT_ERROR)
    exit_with(module, lambda: run(module.params, module.check_mode))


if __name__ == "__main__":
    main()
