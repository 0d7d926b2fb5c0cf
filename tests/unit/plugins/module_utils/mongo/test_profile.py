# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Profiles: MVI's builtin one, schema errors naming the key, restore order, rewrites, path expressions and the
path safety of what they make of a document."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
import yaml

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.mongo import backup, profile, profiles


def test_mvi_profile():
    mvi = profile.load("mvi")
    assert (mvi.name, mvi.version, mvi.database) == ("mvi", 1, "DLAAS")
    assert len(mvi.collections) == 24 and mvi.collections[0] == "DataSets"
    assert [entry.collection for entry in mvi.top_level] == ["ProjectGroups", "DataSets", "TrainedModels",
                                                             "DnnScripts", "DLTasks", "BGTasks", "UserDNNs"]
    assert len(mvi.child_collections()) == 8
    assert mvi.select_field(mvi.top_level[0], "project_groups") == "_id"
    assert mvi.select_field(mvi.top_level[0], "users") == "owner"
    assert mvi.select_field(mvi.top_level[1], "project_groups") == "project_group_id"
    assert set(mvi.rewrites) == {"thumbnail_path"} and len(mvi.sha256) == 64


def test_mvi_file_expressions_make_the_originals_paths():
    mvi = profile.load("mvi")
    doc = {"_id": "m1", "owner": "alice"}
    paths = dict((entry.collection, [expr.search(doc) for expr in entry.files]) for entry in mvi.top_level)
    assert paths["DataSets"] == ["alice/datasets/m1"]
    assert paths["TrainedModels"] == ["alice/trained-models/m1*", "alice/trained-models/thumbnails/m1*"]
    assert paths["DnnScripts"] == ["alice/dnn-scripts/m1.zip"]
    assert mvi.scope_files["users"][0].search({"item": "bob"}) == "bob"
    assert mvi.scope_files["server"][0].search({"item": "server"}) == "."


def test_restore_order_children_first():
    mvi = profile.load("mvi")
    order = mvi.restore_order(["ProjectGroups", "DataSets", "DataSetFiles", "SysUsers", "DataSetTags", "Foo"])
    assert order == ["DataSetFiles", "DataSetTags", "DataSets", "ProjectGroups", "SysUsers", "Foo"]


def test_rewrite_thumbnail_path_as_the_original():
    mvi = profile.load("mvi")
    rewrite = mvi.rewrite_for("TrainedModels", ["thumbnail_path"], "/opt/powerai-vision/data/")
    assert rewrite({"thumbnail_path": "uploads/a/uploads/t.png"}) == {
        "thumbnail_path": "/opt/powerai-vision/data/a/uploads/t.png"}
    assert rewrite({"thumbnail_path": "/abs/uploads/t.png"}) == {"thumbnail_path": "/abs/uploads/t.png"}
    assert rewrite({"other": 1}) == {"other": 1}
    assert mvi.rewrite_for("DataSets", ["thumbnail_path"]) is None
    assert mvi.rewrite_for("TrainedModels", []) is None
    with pytest.raises(FerryError, match="unknown rewrite.*nope.*has thumbnail_path"):
        mvi.rewrite_for("TrainedModels", ["nope"])


def _variant(tmp_path, change):
    data = yaml.safe_load(profiles.MVI)
    change(data)
    path = tmp_path / "p.yml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(extra=1), "unknown key.*extra"),
    (lambda d: d.update(version=0), "version must be a positive integer"),
    (lambda d: d.update(database=""), "database must be a non-empty string"),
    (lambda d: d["collections"].append("DataSets"), "collections repeats DataSets"),
    (lambda d: d["collections"].append("a$b"), "not a usable collection name"),
    (lambda d: d["top_level"].append({"collection": "Nope"}), r"top_level\[7\] names collection 'Nope'"),
    (lambda d: d["top_level"][1]["files"].append({"dir": "join(("}), r"top_level\[1\]\.files\[1\]\.dir.*JMESPath"),
    (lambda d: d["top_level"][1]["files"].append({"disk": "x"}), r"top_level\[1\]\.files\[1\] must be one of"),
    (lambda d: d["children"][0].update(parent="SysUsers"), r"children\[0\]\.parent 'SysUsers' is not a top_level"),
    (lambda d: d["children"][0]["collections"].append("DataSets"), "already selected elsewhere"),
    (lambda d: d["scopes"].pop("users"), "scopes.users.select_field"),
    (lambda d: d["rewrites"]["thumbnail_path"].update(replace="{mount}/"), "unknown placeholder.*mount"),
    (lambda d: d["rewrites"]["thumbnail_path"].pop("prefix"), "must have exactly collection, field, prefix"),
    (lambda d: d.update(restore_order="random"), "restore_order must be"),
])
def test_schema_errors_name_the_key(tmp_path, change, message):
    with pytest.raises(FerryError, match=message):
        profile.load(_variant(tmp_path, change))


def test_a_profile_file_equal_to_the_builtin_loads(tmp_path):
    path = tmp_path / "mvi.yml"
    path.write_text(profiles.MVI)
    loaded = profile.load(str(path))
    assert loaded.collections == profile.load("mvi").collections
    assert loaded.sha256 == profile.load("mvi").sha256


def test_unknown_profile_and_bad_yaml(tmp_path):
    with pytest.raises(FerryError, match="neither a builtin"):
        profile.load("nope")
    bad = tmp_path / "bad.yml"
    bad.write_text("a: [")
    with pytest.raises(FerryError, match="not valid YAML"):
        profile.load(str(bad))
    bad.write_text("- a\n")
    with pytest.raises(FerryError, match="not a YAML mapping"):
        profile.load(str(bad))


@pytest.mark.parametrize("value, message", [
    ("../etc", "'..' component"), ("a/../../b", "'..' component"), ("a/..", "'..' component"),
    ("/etc/passwd", "absolute path"), ("a\x00b", "NUL byte"), ("", "not a path"), (None, "not a path"),
    (["a"], "not a path"), (5, "not a path"), (".", "the whole data mount"),
])
def test_unsafe_paths_are_refused(value, message):
    with pytest.raises(FerryError, match=message):
        backup.safe_path(value, "collection C, _id \"x\": profile expression e (t)")


@pytest.mark.parametrize("value, expected", [
    ("alice/datasets/x", "alice/datasets/x"), ("a//b/", "a/b"), ("./a", "a"), ("a\nb/..c", "a\nb/..c"),
    ("\u00e9t\u00e9/x", "\u00e9t\u00e9/x"),
])
def test_safe_paths_are_kept(value, expected):
    assert backup.safe_path(value, "x") == expected
    assert backup.safe_path(".", "x", allow_root=True) == "."
