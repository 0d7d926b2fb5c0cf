#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: sql_import
short_description: Load a .sql or .sql.gz dump into MariaDB or MySQL, in bounded memory
version_added: 0.2.0
description:
  - Streams a dump written by C(mysqldump), C(mariadb-dump) or M(ferry.migrate.sql_dump) into one database, the
    way the C(mariadb) client would run it, over one connection (the dump's session settings such as
    C(SET FOREIGN_KEY_CHECKS=0) hold for all of it), with autocommit on.
  - "The file is read as bytes, never decoded: binary strings of dumps made without C(--hex-blob) and text in any
    character set reach the server exactly as written. Statements are cut like the client cuts them: quoted
    strings with backslash escapes, C(-- ), C(#) and C(/* */) comments, C(/*! */) conditional comments (sent:
    the server runs them) and the client's C(DELIMITER) command (triggers, routines)."
  - A gzip file is recognised by its first bytes, whatever its name; a corrupt or truncated one fails before
    anything is sent.
  - "Before anything is sent, the whole file is read once: its sha256, its largest statement (checked against the
    server's C(max_allowed_packet): a dump the server would cut off half-way fails now), what it creates, and the
    C(DEFINER) accounts of its triggers, views and routines (see O(definer))."
  - "A rerun after a kill or a failure ends with exactly a clean import's content: before the first statement,
    every table, view, trigger, routine and event the dump creates is dropped from O(database), then the dump
    runs from its start (as C(mysqldump)'s own C(DROP TABLE IF EXISTS) would do). Other objects of O(database)
    are left alone. A dump that inserts into a table it does not create (a data-only dump) cannot be redone that
    way: a resumed run refuses it."
  - "A dump taken with C(--databases) (C(CREATE DATABASE) and C(USE) of its database) is loaded into O(database):
    those two statements are skipped. A dump holding several databases is refused."
  - "Views, triggers and routines whose definition names the dump's own database (C(`zenoss_zep`.`t`)) are made to
    name O(database) instead, when it differs: the dump's database is read from its header
    (C(-- Host: ... Database: zenoss_zep)) or its C(USE) statement. Quoted strings are left alone."
  - "After the import, each table's rows are counted on the server and compared with the rows of the dump's
      C(INSERT) statements; a difference fails the task, unless the dump creates triggers (which may add or remove
      rows): then both counts are returned."
author:
  - ferry.migrate maintainers (@ferry-migrate)
extends_documentation_fragment:
  - ferry.migrate.mysql
  - ferry.migrate.state
  - ansible.builtin.action_common_attributes
options:
  src:
    description:
      - The dump on the host that runs the module, plain SQL or gzip. An empty string is refused.
    type: path
    required: true
  database:
    description:
      - The database to load the dump into.
    type: str
    required: true
  create_database:
    description:
      - Create O(database) when it does not exist (with the server's default character set; the dump's tables
        carry their own). When false, a missing database fails the task.
    type: bool
    default: true
  definer:
    description:
      - What becomes of the C(DEFINER=) clauses of the dump's triggers, views, routines and events.
      - C(keep) leaves them; every such account must then exist on the server, which is checked before anything
        is sent (MariaDB would accept the triggers and then fail every later C(INSERT) into their tables with
        error 1449). When the module's account cannot read C(mysql.user), a warning says the check was not made.
      - "C(strip) removes them: the importing account becomes the definer (what C(zenbackup) does)."
      - An account C(user@host) (for example C(zenoss@localhost)) replaces them; it must exist.
    type: str
    default: strip
attributes:
  check_mode:
    support: full
    details: Reads the whole dump and makes every check against the server (login, database, max_allowed_packet,
      DEFINER accounts), sending nothing that changes it.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
notes:
  - Progress is visible with M(ferry.migrate.migration_status) while the step runs (for example when the task runs
    with C(async)); bytes of SQL done of the total, and the statements done in the record's checkpoint.
  - A C(STOP) file in O(state_dir) stops the import between two statements; the next run starts it again cleanly.
  - A second run with the same file (same path, size and modification time), database, options and server
    changes nothing; O(force) imports again.
  - C(ANSI_QUOTES) and C(NO_BACKSLASH_ESCAPES) dumps (C(mysqldump --compatible=ansi)) are not supported.
seealso:
  - module: ferry.migrate.sql_dump
  - module: ferry.migrate.migration_status
"""

EXAMPLES = r"""
- name: Load the events database of a Zenoss 4 export
  ferry.migrate.sql_import:
    src: /srv/import4/extracted/4x-export-20240101-120000/zenbackup/zep.sql.gz
    database: zenoss_zep
    login_user: root
    login_unix_socket: /var/lib/mysql/mysql.sock
    state_dir: /srv/import4/state
    step: events-database

- name: Keep the dump's definers (their accounts exist on the target)
  ferry.migrate.sql_import:
    src: /srv/dumps/app.sql
    database: app
    definer: keep
    login_host: db.example.com
    login_user: admin
    login_password: "{{ vault_db_password }}"
    ca_cert: /etc/ssl/db-ca.pem

- name: Check the dump against the server without loading it
  ferry.migrate.sql_import:
    src: /srv/dumps/zodb.sql.gz
    database: zodb
    definer: zenoss@localhost
  check_mode: true
"""

RETURN = r"""
decision:
  description: What the step journal decided; C(run), C(resume) (after a killed or failed run; the import starts
    again cleanly) or C(skip) (already complete).
  returned: always
  type: str
  sample: run
database:
  description: The database loaded.
  returned: always
  type: str
  sample: zenoss_zep
statements:
  description: Statements of the dump (check mode and skip - the statements the dump holds).
  returned: success
  type: int
  sample: 246
bytes:
  description: Bytes of SQL in the dump (inflated).
  returned: success
  type: int
  sample: 220206406
tables:
  description: Each table of the dump and its rows (counted in the dump's C(INSERT) statements, and found so on
    the server after the import).
  returned: success
  type: dict
  sample: {"event_summary": 23814, "event_archive": 71442, "config": 2}
sha256:
  description: The sha256 of the file as read (compressed bytes for a gzip file).
  returned: success
  type: str
largest_statement:
  description: Size in bytes of the largest statement, and the server's C(max_allowed_packet) it was checked
    against.
  returned: success
  type: dict
  sample: {"bytes": 1043129, "number": 57, "max_allowed_packet": 268435456}
objects:
  description: What the dump creates, by kind (table, view, trigger, procedure, function, event).
  returned: success
  type: dict
definers:
  description: The C(DEFINER) accounts of the dump and the objects that name them.
  returned: success
  type: dict
source_database:
  description: The database the dump was taken from (its header or C(USE) statement), or null.
  returned: success
  type: str
renamed_views:
  description: Views whose definition named the dump's database, made to name O(database).
  returned: success
  type: list
  elements: str
rows_on_server:
  description: Each table of the dump and its rows counted on the server after the import.
  returned: changed
  type: dict
  sample: {"event_summary": 23814, "event_archive": 71442, "config": 2}
dropped:
  description: Objects of the dump that were in O(database) already and were dropped before the import (by an
    earlier import of the same dump that did not end, say).
  returned: success
  type: int
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import (
    FerryError,
    atomic_write_json,
    check_paths,
    exit_with,
    read_json,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import (
    SKIP,
    attempt_step,
    state_argument_spec,
)
from ansible_collections.ferry.migrate.plugins.module_utils.sql import connection, importer


def run(params, check_mode):
    check_options(params)
    definer = importer.parse_definer(params["definer"])
    identity = file_identity(params["src"])
    attempt = attempt_step(params, "sql_import", {
        "src": identity,
        "database": params["database"],
        "create_database": params["create_database"],
        "definer": params["definer"],
        "server": connection.server_identity(params),
    }, check_mode)
    result = {"decision": attempt.decision, "database": params["database"]}
    if attempt.decision == SKIP:
        result.update(changed=False, **((attempt.record or {}).get("result") or {}))
        return result
    found = cached_scan(attempt, identity, params["src"])
    conn = connection.connect(params)
    try:
        warnings = check_server(conn, params, found, definer, attempt)
        result.update(summary(found), warnings=warnings)
        if not attempt.runs:  # check mode: every check made, nothing sent
            result["changed"] = True
            return result
        with attempt.running(total=found["bytes"], unit="bytes") as step:
            loaded = load(conn, params, found, definer, attempt, step)
            result.update(loaded)
            step.complete(counts={"statements": found["statements"], "bytes": found["bytes"],
                                  "tables": len(loaded["tables"]), "rows": sum(loaded["tables"].values())},
                          result=dict((key, result[key]) for key in STORED if key in result))
    finally:
        conn.close()
    result["changed"] = True
    return result


STORED = ("database", "statements", "bytes", "tables", "rows_on_server", "sha256", "largest_statement", "objects",
          "definers",
          "source_database", "renamed_views")


def check_options(params):
    check_paths(params, ("src", "state_dir"))
    connection.check_connection_options(params)
    if not (params.get("database") or "").strip():
        raise FerryError("database is empty: name the database to load the dump into")


def file_identity(path):
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise FerryError("cannot read the dump %s: %s" % (path, exc.strerror or exc))
    if not os.path.isfile(path):
        raise FerryError("the dump %s is not a regular file" % path)
    return {"path": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def cached_scan(attempt, identity, path):
    """The pre-scan, read from beside the step's record when an earlier run of the same file left it."""
    cache = attempt.step.beside(".scan")  # not .json: the journal reads those as records
    stored = read_json(cache) or {}
    if stored.get("identity") == identity:
        return stored["scan"]
    found = importer.scan(path)
    if not attempt.check_mode:
        atomic_write_json(cache, {"identity": identity, "scan": found}, 0o600)
    return found


def check_server(conn, params, found, definer, attempt):
    """Everything that can fail before a statement is sent; returns warnings."""
    database = params["database"]
    if not params["create_database"] and not importer.database_exists(conn, database):
        raise FerryError("database %s does not exist on the server (create_database is false)" % database)
    if attempt.resume and found["inserted_only"]:
        raise FerryError(
            "an earlier import of %s into %s did not end, and the dump inserts into table(s) it does not create (%s):"
            " running it again would duplicate their rows. Restore those tables, then run with force: true"
            % (params["src"], database, ", ".join(found["inserted_only"][:10])))
    found["max_allowed_packet"] = importer.check_packet(conn, found, params["src"])
    return importer.check_definers(conn, found, definer)


def summary(found):
    largest = found.get("largest") or {}
    return {
        "statements": found["statements"],
        "bytes": found["bytes"],
        "sha256": found["sha256"],
        "largest_statement": {"bytes": largest.get("size", 0), "number": largest.get("number"),
                              "max_allowed_packet": found.get("max_allowed_packet")},
        "objects": found["objects"],
        "definers": found["definers"],
        "source_database": found["source_database"],
        "renamed_views": found["views_naming_source"],
        "tables": dict((name, None) for name in found["objects"]["table"] if name not in found["objects"]["view"]),
    }


def load(conn, params, found, definer, attempt, step):
    database = params["database"]
    with conn.cursor() as cursor:
        cursor.execute("CREATE DATABASE IF NOT EXISTS %s" % importer.dumpfile.quote_name(database))
    conn.select_db(database)
    dropped = importer.drop_objects(conn, database, found)
    marks = {"at": 0.0}

    def progress(done, statements):
        step.progress(done)
        if statements and time.time() - marks["at"] >= importer.CHECKPOINT_INTERVAL:
            marks["at"] = time.time()
            step.save_checkpoint({"statements": statements, "bytes": done})

    work = importer.Importer(params["src"], database, definer, found["source_database"], progress, step.check_stop)
    work.run(conn)
    counted = importer.count_rows(conn, database, sorted(work.tables))
    wrong = ["%s: %d in the dump, %d on the server" % (name, work.tables[name], counted[name])
             for name in sorted(work.tables) if counted[name] != work.tables[name]]
    if wrong and not found["objects"]["trigger"]:  # triggers may add rows: then the counts are only reported
        raise FerryError("after importing %s, row counts differ: %s" % (params["src"], "; ".join(wrong[:10])))
    return {"tables": work.tables, "rows_on_server": counted, "dropped": dropped}


def argument_spec():
    spec = dict(
        src=dict(type="path", required=True),
        database=dict(type="str", required=True),
        create_database=dict(type="bool", default=True),
        definer=dict(type="str", default="strip"),
    )
    spec.update(connection.mysql_argument_spec())
    spec.update(state_argument_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if connection.pymysql is None:
        module.fail_json(msg=missing_required_lib("PyMySQL"), exception=connection.PYMYSQL_IMPORT_ERROR)
    exit_with(module, lambda: run(module.params, module.check_mode), lambda result: result.get("warnings", []))


if __name__ == "__main__":
    main()
