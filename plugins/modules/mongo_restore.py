#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: mongo_restore
short_description: Restore MongoDB backup zips (ferry's or the original MVI tool's) into a database, and verify it
version_added: 0.1.0
description:
  - Restores one or more zips written by M(ferry.migrate.mongo_backup) into one database, in the order of O(src)
    (several zips consolidate into one target). Zips of the original MVI migration tool (one member per
    collection, named after it, holding one JSON array) are read too.
  - Preflight, before anything is written. Every zip is opened and every member read to its end (its CRC
    checked). Every member must be a collection of the O(profile) (or C(files.jsonl) and C(ferry-manifest.json)),
    else the restore fails naming the foreign members. A ferry member's sha256, size and line count must match
    the manifest; an original member must be one JSON array of documents. A corrupt or truncated zip thus fails
    with nothing written.
  - Indexes recorded in the manifest are created before the data. One the server cannot create (SecantusDB
    refuses text and hashed indexes, code 67), or a different index under the same name, is a warning naming the
    collection and the index.
  - Documents are streamed (memory holds a batch, whatever the size of the zip), sent as raw BSON in unordered
    batches of at most O(batch_size) documents and about 8 MiB, the next batch prepared while one is in flight.
    A document whose C(_id) exists already is compared with the target's by sha256 of its BSON. An identical one
    (an earlier run, or another source with the same document) is counted and left. A conflicting one is skipped,
    replaced or an error, as O(on_duplicate) says. Any other write error fails the restore naming the collection,
    the C(_id), the server's code and reason, with the counts so far.
  - A batch cut by a network error is sent once more, by the module. The driver's retryable writes are off
    (C(retryWrites=false), over the URI's), as a batch sent twice is harmless here; what the first attempt inserted
    comes back as identical duplicates. A second network error on the same batch fails the restore; a rerun
    resumes.
  - Resumable. After acknowledged batches the step's journal records the source, collection and line; a killed
    or stopped run goes on from there, and the batch that was in flight comes back as identical duplicates, so
    the target ends up as after an uninterrupted run. A rerun with the same zips (same path, size and modification
    time; a skip reads none of them), target and options is a no-op
    (C(changed=false)); with O(force) it finds every document identical and changes
    nothing either.
  - Verifies afterwards (O(verify)). Every document read must have been acknowledged by the server (inserted, or
    reported as a duplicate of one it holds). Then
    the manifest's sample of C(_id) and sha256 pairs (for an original zip, every n-th document, 1000 per
    collection), or with C(full) every document, is compared with the target. Differences explained by
    conflicting duplicates (kept under C(skip), replaced by a later source) are reported, not an error.
author:
  - ferry.migrate maintainers (@ferry-migrate)
extends_documentation_fragment:
  - ferry.migrate.mongodb
  - ferry.migrate.state
  - ansible.builtin.action_common_attributes
options:
  src:
    description:
      - The backup zip, or a list of them restored in this order into the one O(database).
      - Ansible splits a single string at commas; give a list when a path has a comma.
    type: list
    elements: path
    required: true
  database:
    description:
      - The target database. Defaults to the database the manifest names (the same for every zip, else this
        option is needed), for an original zip the O(profile)'s (C(DLAAS) for C(mvi)).
    type: str
  profile:
    description:
      - The collection profile, C(mvi) (built in) or the path of a profile YAML file. Only its collections are
        restored, in its restore order (children first).
    type: str
    default: mvi
  on_duplicate:
    description:
      - What to do with a document whose C(_id) exists in the target with other content.
      - C(skip) leaves the target's; C(replace) writes the zip's; C(fail) checks every document before
        anything is written and fails listing the first 20 conflicts (identical documents are no conflict, so
        a resumed run does not fail on its own inserts).
    type: str
    choices: [skip, replace, fail]
    default: skip
  rewrites:
    description:
      - Names of the O(profile)'s rewrites to apply to the documents (C(mvi) has C(thumbnail_path), which turns
        a C(TrainedModels) C(thumbnail_path) starting with C(uploads/) into one under O(data_mount), as the
        original tool always did). None by default.
    type: list
    elements: str
    default: []
  data_mount:
    description:
      - The data mount the rewrites use.
    type: str
    default: /opt/powerai-vision/data
  batch_size:
    description:
      - Documents per insert, from 1 to 100000; a batch also ends at about 8 MiB of BSON.
    type: int
    default: 1000
  indexes:
    description:
      - Create the indexes the manifest records (not C(_id_)) before the data.
    type: bool
    default: true
  verify:
    description:
      - C(sample) checks that every document read was acknowledged by the server (inserted, or reported as a
        duplicate of one it holds) and reads back the manifest's sample (up to 1000 documents per collection),
        comparing their sha256; C(full) reads back every document (reads the zips and every restored document
        once more); C(none) skips the verification.
    type: str
    choices: [sample, full, none]
    default: sample
notes:
  - Needs pymongo 4.3 or later on the host the module runs on.
  - Create the file C(STOP) in O(state_dir) to stop after the batch in flight; the step
    is then recorded as failed, and a later run continues where it stopped.
attributes:
  check_mode:
    support: full
    details: Runs the preflight, connects, and compares every document with the target to count what would be
      inserted, identical and conflicting; creates and writes nothing. Duplicates between the zips themselves are
      not predicted.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
seealso:
  - module: ferry.migrate.mongo_backup
"""

EXAMPLES = r"""
- name: Restore two source hosts' backups into one MVI database on OpenShift
  ferry.migrate.mongo_restore:
    src:
      - /srv/ferry/mvi/host1/db.zip
      - /srv/ferry/mvi/host2/db.zip
    login_host: 127.0.0.1
    login_port: 27017
    login_user: admin
    login_password: "{{ vault_mongo_password }}"
    on_duplicate: fail
    state_dir: /srv/ferry/state

- name: Restore a zip of the original tool, rewriting thumbnail paths as it did
  ferry.migrate.mongo_restore:
    src: /srv/ferry/mvi/dbBkup.zip
    uri: "{{ vault_mongo_uri }}"
    rewrites: [thumbnail_path]
"""

RETURN = r"""
database:
  description: The target database.
  returned: always
  type: str
sources:
  description: The zips, in the order restored.
  returned: always
  type: list
  elements: str
formats:
  description: C(ferry) or C(original) for each zip.
  returned: unless RV(decision) is C(skip)
  type: list
  elements: str
documents:
  description: Documents in the zips.
  returned: unless RV(decision) is C(skip)
  type: int
collections:
  description:
    - Per collection, over the runs of this step (a resumed run adds to the killed one's counts) - documents
      read, inserted, identical (already there, same content), conflicting (already there, other content),
      replaced, and whether the verification passed.
  returned: always
  type: dict
  sample: {"DataSets": {"read": 12, "inserted": 10, "identical": 2, "conflicting": 0, "replaced": 0, "verified": true}}
inserted:
  description: Documents inserted.
  returned: always
  type: int
replaced:
  description: Conflicting documents replaced (O(on_duplicate=replace)).
  returned: always
  type: int
duplicates:
  description: Documents whose C(_id) existed already (identical and conflicting).
  returned: always
  type: int
indexes_created:
  description: Indexes created (or, in check mode, missing).
  returned: always
  type: int
index_warnings:
  description: Indexes not created, with the collection, the index and the reason.
  returned: always
  type: list
  elements: str
verified:
  description: True when the verification passed, null when it did not run.
  returned: always
  type: bool
verification:
  description:
    - Per collection, documents read and acknowledged by the server (inserted or duplicates), documents checked,
      missing (and the first 20 of their C(_id)s) and different, and manifest sample entries whose C(_id) could not
      be read (left out of the check).
  returned: when the restore ran and O(verify) is not C(none)
  type: dict
docs_per_s:
  description: Documents read per second in this run's data phase.
  returned: always
  type: float
decision:
  description: C(run), C(resume) (goes on from a killed or failed run's checkpoint) or C(skip) (done before).
  returned: always
  type: str
complete_earlier:
  description: When the run that completed the step ended (ISO 8601 UTC).
  returned: when RV(decision) is C(skip)
  type: str
earlier:
  description: The result of the run that completed the step.
  returned: when RV(decision) is C(skip)
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import exit_with
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import state_argument_spec
from ansible_collections.ferry.migrate.plugins.module_utils.mongo import profile as profiles
from ansible_collections.ferry.migrate.plugins.module_utils.mongo import restore
from ansible_collections.ferry.migrate.plugins.module_utils.mongo.connection import (
    check_pymongo,
    mongodb_argument_spec,
)


def run(params, check_mode):
    restore.check_options(params)
    return restore.run(params, check_mode, profiles.load(params["profile"]))


def argument_spec():
    spec = restore.restore_argument_spec()
    spec.update(mongodb_argument_spec())
    spec.update(state_argument_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    check_pymongo(module)
    exit_with(module, lambda: run(module.params, module.check_mode), lambda result: result.get("index_warnings", []))


if __name__ == "__main__":
    main()
