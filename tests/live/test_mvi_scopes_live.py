# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MVI migrations end to end at module level, as the role chains them on real servers: an MVI source made by
tools/gen_mvi_db.py (SecantusDB `mongo`, a data mount of its own under tmp_path) -> mongo_backup (files_root = the
mount, the zip and the journal in the mount's logs/migrations/) -> file_sync push of the zip's file list over the
test sshd to a target mount, and of the zip itself to the target's incoming/ -> mongo_restore into a fresh database
on `mongo-target`. For the server scope, one user, two users and two project groups, the target holds exactly what
IBM's tool selects, computed here on its own from the source (cmds/migmgr.py rules, design doc
docs/design/mvi-issue14.md 1.3), compared as sets of raw BSON per collection and as file trees (path -> sha256,
mode); logs/migrations/ never travels; a rerun of the three modules changes nothing. Two sources consolidate into
one target (restore of both zips in one call: the union, the first source winning a conflicting _id)."""
import hashlib
import json
import os
import stat
import subprocess
import sys
import uuid
import zipfile

import bson
import pymongo
import pytest
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.raw_bson import RawBSONDocument

from ansible_collections.ferry.migrate.plugins.modules import file_sync, mongo_backup, mongo_restore

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "test-servers")
RUN_DIR = os.path.join(os.environ.get("FERRY_RUN_DIR") or os.path.join(ROOT, ".run"), "servers")
GEN = os.path.join(ROOT, "tools", "gen_mvi_db.py")
RAW = CodecOptions(document_class=RawBSONDocument, datetime_conversion=DatetimeConversion.DATETIME_AUTO)
WORK = "logs/migrations/e2e"  # the migration's own directory in each mount: journal, zips, a work file

# IBM's tool (misc/migrationAides): MongoAccessor.collections, migmgr.topLevelCollections/secondLevelCollections.
# Written out here rather than read from the mvi profile, so that a wrong profile fails these tests.
ALL = ["DataSets", "DLTasks", "TrainedModels", "ProjectGroups", "BGTasks", "DataSetCategories", "DataSetFiles",
       "DataSetFileLabels", "DataSetFileUserKeys", "DataSetTags", "DataSetActiontags", "DataSetFileActionLabels",
       "DataSetFileObjectLabels", "InferenceOps", "InferenceDetails", "WebAPIs", "UserDNNs", "DnnScripts",
       "DeployableBinaries", "DockerHostPorts", "SysUsers", "UploadOperations", "Tokens", "RegisteredApps"]
TOP = ["BGTasks", "DLTasks", "TrainedModels", "DnnScripts", "DataSets", "ProjectGroups", "UserDNNs"]
CHILDREN = ["DataSetCategories", "DataSetFiles", "DataSetFileLabels", "DataSetFileUserKeys", "DataSetTags",
            "DataSetActiontags", "DataSetFileActionLabels", "DataSetFileObjectLabels"]


@pytest.fixture(scope="module")
def env():
    """Only the servers these tests use: both SecantusDBs and the sshd."""
    done = subprocess.run([sys.executable, SCRIPT, "--run-dir", RUN_DIR, "up", "mongo", "mongo-target", "ssh"],
                          capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        pytest.fail("scripts/test-servers up failed:\n%s%s" % (done.stdout, done.stderr), pytrace=False)
    with open(os.path.join(RUN_DIR, "servers.json")) as handle:
        values = json.load(handle)
    source = pymongo.MongoClient(values["FERRY_MONGO_URI"], serverSelectionTimeoutMS=10000)
    target = pymongo.MongoClient(values["FERRY_MONGO_TARGET_URI"], serverSelectionTimeoutMS=10000)
    yield dict(values, source=source, target=target)
    source.close()
    target.close()


def fresh(prefix):
    return "ferry_e2e_%s_%s" % (prefix, uuid.uuid4().hex[:10])


def defaults(module):
    return dict((name, option.get("default")) for name, option in module.argument_spec().items())


def connection(env, prefix):
    return dict(login_host=env["FERRY_%s_HOST" % prefix], login_port=int(env["FERRY_%s_PORT" % prefix]),
                login_user=env["FERRY_%s_USER" % prefix], login_password=env["FERRY_%s_PASSWORD" % prefix],
                login_database=env["FERRY_%s_AUTH_SOURCE" % prefix])


# -- the source ----------------------------------------------------------------------------------------------------
def make_source(env, host_dir, seed):
    """A generated MVI database and its mount <host_dir>/data, with files no document names and a work file in the
    migration's directory; returns the generator's summary with database and mount."""
    mount = os.path.join(str(host_dir), "data")
    database = fresh("src")
    out = subprocess.run([sys.executable, GEN, "--database", database, "--files-root", mount, "--seed", str(seed),
                          "--users", "3", "--project-groups", "4", "--datasets", "2", "--files-per-dataset", "2",
                          "--all-types"], env=dict(os.environ, FERRY_MONGO_URI=env["FERRY_MONGO_URI"]),
                         capture_output=True, text=True, check=True, timeout=300)
    summary = dict(json.loads(out.stdout), database=database, mount=mount)
    db = env["source"][database]
    first_pg, second_pg = summary["project_groups"][:2]  # owned by user1 and user2
    model = db.TrainedModels.find_one({"project_group_id": first_pg})
    dataset = db.DataSets.find_one({"project_group_id": second_pg, "name": {"$ne": "typed data set"}})
    assert model["owner"] == "user1" and dataset["owner"] == "user2"
    extra = {
        "user1/notes/readme.txt": (b"named by no document: a user's tree only", 0o600),
        "user2/datasets/%s/sub/deep.bin" % dataset["_id"]: (b"\x00deep", 0o640),  # inside a data set's tree
        "user1/trained-models/thumbnails/%s-small.png" % model["_id"]: (b"second glob match", 0o644),
        "user1/trained-models/%s.d/weights.bin" % model["_id"]: (b"a directory the glob matches", 0o640),
        "user1/trained-models/unrelated.zip": (b"no model's id", 0o644),
        "user3/dnn-scripts/not-a-script.zip": (b"no script's id", 0o644),
        "logs/other.log": (b"an application log, not the migration's", 0o644),
        WORK + "/work/scratch.tmp": (b"the migration's work file: never sent", 0o600),
    }
    for relative, (data, mode) in extra.items():
        path = os.path.join(mount, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
        os.chmod(path, mode)
    os.chmod(os.path.join(mount, "user1", "trained-models", "%s.zip" % model["_id"]), 0o600)
    return summary


# -- what IBM's tool selects, computed here ------------------------------------------------------------------------
def raw_set(db, name, query=None):
    return set(doc.raw for doc in db.get_collection(name, codec_options=RAW).find(query or {}))


def expected_documents(db, scope, items):
    """{collection: set of raw BSON} as migmgr.py selects: one query per item and collection, then one per
    selected DataSet and child collection (collectDatasetArtifacts)."""
    if scope == "server":
        return dict((name, raw_set(db, name)) for name in ALL)
    field = "owner" if scope == "users" else "project_group_id"
    selected = dict((name, set()) for name in TOP + CHILDREN)
    for item in items:
        for name in TOP:
            query = {"_id": item} if scope == "project_groups" and name == "ProjectGroups" else {field: item}
            selected[name] |= raw_set(db, name, query)
    for raw in selected["DataSets"]:
        dataset_id = bson.decode(raw)["_id"]
        for name in CHILDREN:
            selected[name] |= raw_set(db, name, {"dataset_id": dataset_id})
    return selected


def tree(root):
    """{relative path: (sha256, mode)} of the regular files under root."""
    found = {}
    for top, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(top, name)
            with open(path, "rb") as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
            found[os.path.relpath(path, root)] = (digest, stat.S_IMODE(os.lstat(path).st_mode))
    return found


def expected_files(db, mount, scope, items):
    """The source files the scope moves (migmgr.py): server the whole mount but the migrations' own directory,
    users <mount>/<user>, project groups the trees, globs and files its documents name."""
    source = tree(mount)
    if scope == "server":
        return dict((path, value) for path, value in source.items() if not path.startswith("logs/migrations/"))
    if scope == "users":
        return dict((path, value) for path, value in source.items() if path.split("/")[0] in items)
    trees, globs, exact = [], [], set()
    for dataset in db.DataSets.find({"project_group_id": {"$in": items}}):
        trees.append("%s/datasets/%s/" % (dataset["owner"], dataset["_id"]))
    for model in db.TrainedModels.find({"project_group_id": {"$in": items}}):
        globs += ["%s/trained-models/%s" % (model["owner"], model["_id"]),
                  "%s/trained-models/thumbnails/%s" % (model["owner"], model["_id"])]
    for script in db.DnnScripts.find({"project_group_id": {"$in": items}}):
        exact.add("%s/dnn-scripts/%s.zip" % (script["owner"], script["_id"]))

    def wanted(path):
        if path in exact or any(path.startswith(prefix) for prefix in trees):
            return True
        return any(path.startswith(prefix) for prefix in globs)  # <_id>*: a file, or a directory's whole tree
    return dict((path, value) for path, value in source.items() if wanted(path))


def target_documents(db):
    """{collection: set of raw BSON} of every target collection that has documents."""
    found = {}
    for name in db.list_collection_names():
        docs = raw_set(db, name)
        if docs:
            found[name] = docs
    return found


# -- one migration of one source's item(s), as the role's steps do it ----------------------------------------------
def migrate(env, source, target_host, scope, items, zip_name):
    """Back up, push the files, push the zip; returns the parameters of each step (for reruns)."""
    mount = source["mount"]
    zip_path = os.path.join(mount, WORK, "work", zip_name)
    state = os.path.join(mount, WORK, "state")
    backup = dict(defaults(mongo_backup), **connection(env, "MONGO"))
    backup.update(database=source["database"], dest=zip_path, files_root=mount, state_dir=state,
                  step="backup." + zip_name)
    if scope != "server":
        backup[scope] = list(items)
    ssh = dict(mode="push", host=env["FERRY_SSH_HOST"], ssh_port=int(env["FERRY_SSH_PORT"]),
               ssh_user=env["FERRY_SSH_USER"], ssh_key=env["FERRY_SSH_KEY"],
               ssh_known_hosts=env["FERRY_SSH_KNOWN_HOSTS"], state_dir=state)
    files = dict(defaults(file_sync), **ssh)
    files.update(src=mount, dest=os.path.join(target_host, "data"), manifest=zip_path, step="files." + zip_name)
    transfer = dict(defaults(file_sync), **ssh)
    transfer.update(src=os.path.dirname(zip_path), dest=os.path.join(target_host, "incoming"), paths=[zip_name],
                    step="transfer." + zip_name)
    os.makedirs(target_host, exist_ok=True)
    steps = [("backup", mongo_backup, backup), ("files", file_sync, files), ("transfer", file_sync, transfer)]
    for name, module, params in steps:
        result = module.run(dict(params), False)
        assert result["changed"] is True and result["decision"] == "run", (name, result)
        if module is file_sync:
            assert result["verified"] is True and result["differences"] == [], (name, result)
    return steps, os.path.join(target_host, "incoming", zip_name)


def restore(env, zips, database, target_host):
    params = dict(defaults(mongo_restore), **connection(env, "MONGO_TARGET"))
    params.update(src=list(zips), database=database, verify="full", step="restore",
                  state_dir=os.path.join(target_host, "state"))
    result = mongo_restore.run(dict(params), False)
    assert result["changed"] is True and result["verified"] is True, result
    return params, result


def assert_rerun_changes_nothing(env, steps, restore_params, database, target_mount, forced=None):
    """Each step again: a skip. The forced steps (default: every file push and the restore) done again for real:
    nothing left to do. The target is the same afterwards."""
    before = (target_documents(env["target"][database]), tree(target_mount))
    steps = steps + [("restore", mongo_restore, restore_params)]
    for name, module, params in steps:
        again = module.run(dict(params), False)
        assert again["changed"] is False and again["decision"] == "skip", (name, again)
    for name, module, params in forced or steps:
        if name != "backup":
            done = module.run(dict(params, force=True), False)
            assert done["changed"] is False and done["decision"] == "run", (name, done)
    assert (target_documents(env["target"][database]), tree(target_mount)) == before


SCOPES = [
    ("server", None),
    ("users", ["user2"]),
    ("users", ["user1", "user3"]),
    ("project_groups", [0, 1]),  # indexes into the generated project groups: owners user1 and user2
]


@pytest.mark.parametrize("scope,items", SCOPES, ids=["server", "one_user", "two_users", "two_project_groups"])
def test_a_scope_moves_exactly_the_selected_documents_and_files(env, tmp_path, scope, items):
    source = make_source(env, tmp_path / "source-host", seed=11)
    if scope == "project_groups":
        items = [source["project_groups"][index] for index in items]
    source_db = env["source"][source["database"]]
    want_docs = expected_documents(source_db, scope, items)
    want_files = expected_files(source_db, source["mount"], scope, items)
    all_files = expected_files(source_db, source["mount"], "server", None)
    target_host = str(tmp_path / "target-host")
    database = fresh("dst")

    steps, incoming = migrate(env, source, target_host, scope, items, "item.zip")
    backed_up = mongo_backup.run(dict(steps[0][2]), False)  # a skip: the journal's record of the backup
    with zipfile.ZipFile(incoming) as archive:
        listed = [json.loads(line) for line in archive.read("files.jsonl").splitlines()]
    for entry in listed:  # what a model's <_id>* matches is listed as what it is: a directory or a file
        if entry.get("from_glob"):
            is_dir = os.path.isdir(os.path.join(source["mount"], entry["path"]))
            assert entry["kind"] == ("dir" if is_dir else "file"), entry
    params, result = restore(env, [incoming], database, target_host)

    got = target_documents(env["target"][database])
    assert set(got) <= set(ALL)
    for name in ALL:
        assert got.get(name, set()) == want_docs.get(name, set()), name
    assert result["inserted"] == sum(len(docs) for docs in want_docs.values()) and result["duplicates"] == 0
    got_files = tree(os.path.join(target_host, "data"))
    assert got_files == want_files
    assert not any(path.startswith("logs/migrations/") for path in got_files)
    # the selection is a real part of the source, not all or nothing
    everything = expected_documents(source_db, "server", None)
    total = sum(len(docs) for docs in everything.values())
    assert 0 < result["inserted"] <= total and (scope == "server") == (result["inserted"] == total)
    assert 0 < len(want_files) and (scope == "server") == (len(want_files) == len(all_files))
    if scope == "project_groups":  # a data set of the selection has no directory: listed as missing
        typed = source_db.DataSets.find_one({"name": "typed data set"})
        assert "user1/datasets/%s" % typed["_id"] in backed_up["missing_files"], backed_up["missing_files"]

    assert_rerun_changes_nothing(env, steps, params, database, os.path.join(target_host, "data"))


def test_two_sources_consolidate_into_one_target(env, tmp_path):
    first = make_source(env, tmp_path / "source-a", seed=21)
    second = make_source(env, tmp_path / "source-b", seed=22)
    first_db, second_db = env["source"][first["database"]], env["source"][second["database"]]
    first_items, second_items = first["project_groups"][:2], second["project_groups"][1:3]
    # the second source has a document whose _id is one of the first's, with other content: the first one wins
    taken = first_db.DataSetTags.find_one({"dataset_id": first_db.DataSets.find_one(
        {"project_group_id": first_items[0]})["_id"]})
    own = second_db.DataSets.find_one({"project_group_id": second_items[0]})
    second_db.DataSetTags.insert_one({"_id": taken["_id"], "dataset_id": own["_id"], "name": "same _id, other tag"})
    want = [expected_documents(first_db, "project_groups", first_items),
            expected_documents(second_db, "project_groups", second_items)]
    conflicting = raw_set(second_db, "DataSetTags", {"_id": taken["_id"]})
    assert len(conflicting) == 1 and not conflicting & want[0]["DataSetTags"]
    files = [expected_files(first_db, first["mount"], "project_groups", first_items),
             expected_files(second_db, second["mount"], "project_groups", second_items)]
    assert files[0] and files[1] and not set(files[0]) & set(files[1])
    target_host = str(tmp_path / "target-host")
    database = fresh("dst")

    steps_a, zip_a = migrate(env, first, target_host, "project_groups", first_items, "a.zip")
    steps_b, zip_b = migrate(env, second, target_host, "project_groups", second_items, "b.zip")
    params, result = restore(env, [zip_a, zip_b], database, target_host)

    got = target_documents(env["target"][database])
    for name in ALL:
        union = want[0].get(name, set()) | want[1].get(name, set())
        if name == "DataSetTags":
            union -= conflicting
        assert got.get(name, set()) == union, name
    conflicts = dict((name, counts["conflicting"]) for name, counts in result["collections"].items()
                     if counts["conflicting"])
    assert result["duplicates"] == 1 and conflicts == {"DataSetTags": 1} and result["replaced"] == 0
    assert tree(os.path.join(target_host, "data")) == dict(files[0], **files[1])
    target_mount = os.path.join(target_host, "data")
    assert_rerun_changes_nothing(env, steps_a + steps_b, params, database, target_mount,
                                 forced=steps_b + [("restore", mongo_restore, params)])
    # the first source's push again: no file moves; only the times of the directories both sources share
    # (".", user2/...) go back to the first source's, so rsync reports changes there
    again = file_sync.run(dict(steps_a[1][2], force=True), False)
    assert again["files_transferred"] == again["bytes_transferred"] == again["deleted"] == 0, again
    assert tree(target_mount) == dict(files[0], **files[1])
