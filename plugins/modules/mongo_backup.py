#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: mongo_backup
short_description: Back up a MongoDB application's documents (whole server, users or project groups) to a zip
version_added: 0.2.0
description:
  - Reads the collections a profile names (by default C(mvi), IBM Maximo Visual Inspection's 24 collections of
    database C(DLAAS)) and writes a ferry backup zip at O(dest) that M(ferry.migrate.mongo_restore) restores.
  - "The scope: the whole server (neither O(users) nor O(project_groups)), the documents of some users (the
    profile's top-level collections by C(owner)), or of some project groups (by C(project_group_id), the
    C(ProjectGroups) document by C(_id)). The child collections of the selected data sets (C(DataSetFiles),
    labels, tags, ...) follow by C(dataset_id). Each top-level collection is read with one query for all the
    items, so several items in one call select exactly the union of single calls."
  - "Each document is written as the server stores it: one line of canonical Extended JSON per document, checked
    to give the same BSON bytes back (types, key order, C(-0.0), Int32 vs Int64, dates outside years 1 to 9999).
    A document that cannot (the deprecated types Symbol, Undefined, DBPointer, a field twice in one document, a
    NaN with a payload) fails the task naming its collection and C(_id), unless O(lossy=warn)."
  - "The zip also lists the files of the data mount each selected document owns (C(files.jsonl): data set
    directories, model files and thumbnails, DNN script zips, relative to the data mount), which
    M(ferry.migrate.file_sync) transfers, and a manifest: counts, sha256 of each member, an order-free digest of the
    documents' BSON, a sample of C(_id) hashes, the index definitions and collection options."
  - "A database that holds none of the profile's collections (a mistyped O(database) reads as an empty one) fails
    the task instead of giving an empty backup."
  - "A path a profile expression makes of a document's fields must be relative and stay inside the data mount (no
    C(..) component, no leading C(/), no NUL byte); otherwise the task fails naming the C(_id) and the expression."
  - "The zip is written as C(<dest>.partial) (mode C(0600)), synced and renamed to O(dest): a killed backup never
    leaves a file at O(dest) that looks finished."
  - "A rerun with the same options while O(dest) is still the zip written (same size and modification time)
    changes nothing, although the database may have changed since: give O(force) to back up a live database
    again. A zip removed or replaced since is written again."
author:
  - ferry.migrate maintainers (@ferry-migrate)
extends_documentation_fragment:
  - ferry.migrate.mongodb
  - ferry.migrate.state
  - ansible.builtin.action_common_attributes
options:
  database:
    description:
      - The application's database. Not set, the profile's (C(DLAAS) for C(mvi)).
    type: str
  users:
    description:
      - Back up the documents of these users (their C(owner) field) and the children of their data sets, and list
        their directories of the data mount.
      - Mutually exclusive with O(project_groups). A user with no document fails the task unless
        O(missing_items=warn).
    type: list
    elements: str
  project_groups:
    description:
      - Back up these project groups (their C(ProjectGroups) document, the documents whose C(project_group_id) is
        one of them, and the children of their data sets) and list the files of those documents.
      - An item that is the 24-digit hex form of an ObjectId also matches that ObjectId.
      - Mutually exclusive with O(users). A project group without its C(ProjectGroups) document fails the task
        unless O(missing_items=warn).
    type: list
    elements: str
  profile:
    description:
      - The profile that says what to back up. C(mvi) (builtin) or the path of a YAML file of the same schema
        (see C(plugins/module_utils/mongo/profiles.py)).
    type: str
    default: mvi
  dest:
    description:
      - The zip to write, on the host that runs the module. Its directory is created when missing. An empty
        string is refused.
    type: path
    required: true
  files_root:
    description:
      - The data mount on the host that runs the module (C(/opt/powerai-vision/data) for MVI). When given, the
        profile's globs (model files, thumbnails) are expanded under it and the files and directories that do not
        exist are listed in RV(missing_files); when not, globs are kept for M(ferry.migrate.file_sync) to expand.
    type: path
  missing_items:
    description:
      - What a user or project group with nothing to back up does. C(fail) fails the task before anything is
        written; C(warn) backs up the others with a warning (as IBM's tool did, silently).
    type: str
    choices: [fail, warn]
    default: fail
  lossy:
    description:
      - What a document that cannot be written unchanged does. C(fail) fails the task naming its collection,
        C(_id) and the reason; C(warn) writes it as pymongo reads it (a Symbol as a string, Undefined as null) and
        lists it in RV(lossy).
    type: str
    choices: [fail, warn]
    default: fail
  compress_level:
    description:
      - Deflate level of the zip's members, from 0 (stored uncompressed in deflate blocks) to 9.
    type: int
    default: 6
attributes:
  check_mode:
    support: full
    details: Logs in, checks the items exist, then reads, encodes and counts every selected document and file
      entry as a run would, so lossy documents and unsafe paths are found; writes no zip and records no step.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
notes:
  - Progress (documents written, of the estimated total) is visible with M(ferry.migrate.migration_status) while the
    step runs; a C(STOP) file in O(state_dir) stops it between batches, leaving no zip.
  - The documents are read while the application may write; stop it first for a consistent backup.
  - The zip holds the application's data; it is readable by the module's user only.
  - Memory stays bounded whatever the database's size, the zip's members may pass 4 GiB (zip64).
seealso:
  - module: ferry.migrate.mongo_restore
  - module: ferry.migrate.file_sync
"""

EXAMPLES = r"""
- name: Back up the whole MVI server
  ferry.migrate.mongo_backup:
    login_host: mvi-standalone.example
    login_user: admin
    login_password: "{{ mvi_mongo_password }}"
    login_database: DLAAS
    dest: /opt/powerai-vision/data/logs/migrations/mig1/db/server.zip
    files_root: /opt/powerai-vision/data
    state_dir: /opt/powerai-vision/data/logs/migrations/mig1/state
    step: mvi.backup.server

- name: Two project groups in one zip
  ferry.migrate.mongo_backup:
    uri: "mongodb://admin:{{ mvi_mongo_password | urlencode }}@127.0.0.1:27017/?authSource=DLAAS"
    project_groups: [3f0e3a1c-1f5c-4bb8-9d39-2b8f0f7d4e11, 9b0c4e8e-57a4-4b61-8f5a-6c1d2e3f4a5b]
    dest: /srv/migration/pgs.zip
"""

RETURN = r"""
decision:
  description: What the step journal decided; C(run), C(resume) (after a killed or failed run; the backup starts
    again) or C(skip) (complete, and O(dest) is still the zip written).
  returned: always
  type: str
  sample: run
dest:
  description: The zip written (in check mode, the one that would be).
  returned: always
  type: str
  sample: /srv/migration/server.zip
sha256:
  description: The zip's sha256.
  returned: success, not in check mode
  type: str
size:
  description: The zip's size in bytes.
  returned: success, not in check mode
  type: int
documents:
  description: Documents written (in check mode, that would be).
  returned: success
  type: int
  sample: 120533
collections:
  description: Each collection backed up and its documents (a collection of the profile the database lacks is not
    listed; one it has but nothing selected is listed with 0).
  returned: success
  type: dict
  sample: {"DataSets": 12, "DataSetFiles": 4410, "ProjectGroups": 2}
per_item:
  description: For each user or project group (C(server) in server scope), its documents per collection.
  returned: success
  type: dict
  sample: {"pg1": {"DataSets": 7, "DataSetFiles": 2100}, "pg2": {"DataSets": 5, "DataSetFiles": 2310}}
files:
  description: Entries of C(files.jsonl) (directories, files, globs and, with O(files_root), the files the globs
    matched).
  returned: success
  type: int
missing_files:
  description: Directories and files listed that do not exist under O(files_root) (empty without it).
  returned: success
  type: list
  elements: str
scope:
  description: The scope, C(server), C(users) or C(project_groups), and its items.
  returned: success
  type: dict
  sample: {"kind": "project_groups", "items": ["pg1", "pg2"]}
database:
  description: The database read.
  returned: success
  type: str
  sample: DLAAS
lossy:
  description: With O(lossy=warn), the documents written as read rather than unchanged (collection, C(_id),
    reason; the first 50).
  returned: success
  type: list
  elements: str
warnings:
  description: Items not found, with O(missing_items=warn).
  returned: success
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import (
    FerryError,
    check_dest_file,
    check_paths,
    check_ranges,
    exit_with,
    output_unchanged,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import (
    RUN,
    SKIP,
    attempt_step,
    state_argument_spec,
)
from ansible_collections.ferry.migrate.plugins.module_utils.mongo import backup, connection, profile

RANGES = {"compress_level": (0, 9)}
STORED = ("dest", "sha256", "size", "documents", "collections", "per_item", "files", "missing_files", "scope",
          "database", "lossy", "warnings", "mtime_ns")


def run(params, check_mode):
    check_options(params)
    dest = os.path.abspath(params["dest"])
    loaded = profile.load(params["profile"])
    kind, items = backup.scope_of(params)
    attempt = attempt_step(params, "mongo_backup", {
        "server": connection.server_identity(params),
        "database": params.get("database") or loaded.database,
        "scope": {"kind": kind, "items": sorted(items)},
        "profile": loaded.sha256,
        "dest": dest,
        "files_root": os.path.abspath(params["files_root"]) if params.get("files_root") else None,
        "missing_items": params["missing_items"],
        "lossy": params["lossy"],
        "compress_level": params["compress_level"],
    }, check_mode)
    if attempt.decision == SKIP:
        stored = (attempt.record or {}).get("result") or {}
        if output_unchanged(dest, stored):
            return dict(_public(stored), decision=SKIP, changed=False)
        attempt.decision = RUN  # the zip was removed or replaced since
    # Log in before the step is recorded as running: a wrong password is not a failed backup.
    client = connection.connect(params, params.get("database") or loaded.database)
    if not attempt.runs:  # check mode: read and count everything, write nothing
        result = backup.backup(params, None, dry_run=True, client=client)
        return dict(result, decision=attempt.decision, changed=True)
    with attempt.running(unit="documents") as step:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        result = backup.backup(params, step, client=client)
        result["mtime_ns"] = os.stat(dest).st_mtime_ns
        step.complete(counts={"documents": result["documents"], "collections": len(result["collections"]),
                              "files": result["files"], "bytes": result["size"]},
                      result=dict((key, result[key]) for key in STORED))
    return dict(_public(result), decision=attempt.decision, changed=True)


def _public(result):
    return dict((key, value) for key, value in result.items() if key != "mtime_ns")


def check_options(params):
    check_paths(params, ("dest", "files_root", "state_dir"))
    check_ranges(params, RANGES)
    connection.check_connection_options(params)
    if params.get("database") is not None and not params["database"].strip():
        raise FerryError("database is empty: name the database, or leave it out for the profile's")
    check_dest_file(params["dest"], "zip")
    if params.get("files_root") and not os.path.isdir(params["files_root"]):
        raise FerryError("files_root, %s, is not a directory" % params["files_root"])


def argument_spec():
    spec = dict(
        database=dict(type="str"),
        users=dict(type="list", elements="str"),
        project_groups=dict(type="list", elements="str"),
        profile=dict(type="str", default="mvi"),
        dest=dict(type="path", required=True),
        files_root=dict(type="path"),
        missing_items=dict(type="str", choices=["fail", "warn"], default="fail"),
        lossy=dict(type="str", choices=["fail", "warn"], default="fail"),
        compress_level=dict(type="int", default=6),
    )
    spec.update(connection.mongodb_argument_spec())
    spec.update(state_argument_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           mutually_exclusive=[["users", "project_groups"]])
    connection.check_pymongo(module)
    exit_with(module, lambda: run(module.params, module.check_mode),
              warnings=lambda result: list(result.get("warnings") or []) + [
                  "written as read, not unchanged: %s" % text for text in result.get("lossy") or []])


if __name__ == "__main__":
    main()
