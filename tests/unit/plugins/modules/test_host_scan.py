# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""host_scan on the prepared Debian-like root (tests/support/scan_tree.py): what the report holds, the rescan that
reads nothing and changes nothing, check mode, STOP, bad options, and the module as Ansible runs it."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import pathlib
import subprocess
import sys

import pytest

from ansible_collections.ferry.migrate.plugins.doc_fragments import state as state_fragment
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import Journal, Stopped
from ansible_collections.ferry.migrate.plugins.module_utils.scan import scan as scan_module
from ansible_collections.ferry.migrate.plugins.module_utils.scan import walk as walk_module
from ansible_collections.ferry.migrate.plugins.module_utils.scan.report import name_of, read_report
from ansible_collections.ferry.migrate.plugins.modules import host_scan
from tests.support import module_docs
from tests.support.scan_tree import make_prepared_root

ROOT = pathlib.Path(__file__).resolve().parents[4]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the prepared root needs root (owners, devices)")


def params(tmp_path, **extra):
    base = dict(root=str(tmp_path / "root"), dest=str(tmp_path / "out" / "report.jsonl.gz"), roots=["/"],
                excludes=[], default_excludes=True, packages=True, hash_workers=2, one_file_system=True,
                state_dir=str(tmp_path / "state"), step=None, force=False)
    base.update(extra)
    return base


@pytest.fixture
def prepared(tmp_path):
    return make_prepared_root(str(tmp_path / "root"))


def files_of(path):
    return dict((name_of(record), record) for record in read_report(path).files())


def test_the_documentation_matches_the_spec():
    returned = module_docs.assert_documentation_matches_the_spec(
        host_scan, {"ferry.migrate.state": state_fragment.ModuleDocFragment})
    assert set(returned) >= {"report", "sha256", "counts", "system"}


def test_the_report_holds_what_a_rebuild_needs(tmp_path, prepared):
    result = host_scan.run(params(tmp_path), False)
    assert result["changed"] is True
    report = read_report(result["report"])
    assert result["sha256"] == hashlib.sha256(pathlib.Path(result["report"]).read_bytes()).hexdigest()
    assert report.header["system"]["distribution"] == "debian" and result["system"] == report.header["system"]
    assert report.header["options"]["excludes"][:1] == ["/proc"]
    assert [(p["name"], p["version"]) for p in report.packages()] == [
        (p["name"], p["version"]) for p in prepared["packages"]]
    found = files_of(result["report"])
    for path, content in prepared["added"].items():
        assert found[path]["change"] == "added" and found[path]["type"] == "file", path
        if content is not None:
            assert found[path]["sha256"] == hashlib.sha256(content).hexdigest(), path
    for path in prepared["dirs"]:
        assert found[path]["type"] == "dir", path
    for path, target in prepared["symlinks"].items():
        if path in found:  # a symlink a package lists is the package's
            assert name_of(found[path], "target") == target
    assert name_of(found[b"opt/app/links/dangling"], "target") == b"../nowhere"
    for group in prepared["hardlinks"]:
        assert len(set(found[path]["link_group"] for path in group)) == 1
    assert found[prepared["sparse"]]["sparse"] is True
    assert found[prepared["setuid"]]["mode"] & 0o4000
    for path, (uid, gid, owner, group) in prepared["owners"].items():
        assert (found[path]["uid"], found[path]["gid"], found[path]["owner"], found[path]["group"]) == (
            uid, gid, owner, group), path
    assert prepared["newline_name"] in found and prepared["non_utf8_name"] in found
    for kind, paths in prepared["skipped"].items():
        assert result["counts"]["skipped"][kind] == len(paths)
        assert not set(paths) & set(found)
    assert not set(prepared["excluded"]) & set(found)
    for path, change in prepared["modified"].items():
        assert (found[path]["change"], found[path]["package"]) == ("modified", change["package"]), path
    for path, change in prepared["deleted"].items():
        assert (found[path]["change"], found[path]["package"]) == ("deleted", change["package"]), path
    for path in prepared["unchanged"]:
        assert path not in found, path
    assert result["counts"]["modified"] == len(prepared["modified"])
    assert result["counts"]["deleted"] == len(prepared["deleted"])
    assert report.summary["counts"] == result["counts"]
    record = Journal(str(tmp_path / "state")).step("host_scan").record()
    assert record["status"] == "complete" and record["result"]["sha256"] == result["sha256"]


def test_a_rescan_of_an_unchanged_root_reads_nothing_and_changes_nothing(tmp_path, prepared, monkeypatch):
    first = host_scan.run(params(tmp_path), False)
    before = os.stat(first["report"])
    read = []
    real = walk_module._sha256
    monkeypatch.setattr(walk_module, "_sha256", lambda path: read.append(path) or real(path))
    second = host_scan.run(params(tmp_path, hash_workers=1), False)
    assert second["changed"] is False and second["sha256"] == first["sha256"]
    assert os.stat(first["report"]).st_mtime_ns == before.st_mtime_ns
    assert read == [] and second["counts"]["hashed"] == 0
    assert second["counts"]["cached"] == first["counts"]["hashed"] > 10
    with open(os.path.join(str(tmp_path / "root"), "etc/ferry-local.conf"), "ab") as handle:
        handle.write(b"more = 1\n")
    third = host_scan.run(params(tmp_path, hash_workers=1), False)
    assert third["changed"] is True and third["sha256"] != first["sha256"]
    assert [os.path.basename(path) for path in read] == [b"ferry-local.conf"]
    forced = host_scan.run(params(tmp_path, hash_workers=1, force=True), False)
    assert forced["changed"] is False and forced["counts"]["cached"] == 0
    assert len(read) == 1 + forced["counts"]["hashed"] == 1 + first["counts"]["hashed"]


def test_the_recorded_digest_serves_only_while_dest_is_the_report_the_scan_wrote(tmp_path, prepared, monkeypatch):
    """A rescan takes the previous report's content digest from the journal (not inflating the whole report) only
    while dest is the same file (size, time, inode); a dest replaced since is read."""
    first = host_scan.run(params(tmp_path), False)
    other = host_scan.run(params(tmp_path, dest=str(tmp_path / "other" / "r.jsonl.gz"), state_dir=str(
        tmp_path / "state2"), roots=["/etc"]), False)
    inflated = []
    real = scan_module.read_report
    monkeypatch.setattr(scan_module, "read_report", lambda *a: inflated.append(a) or real(*a))
    assert host_scan.run(params(tmp_path), False)["changed"] is False and inflated == []
    os.replace(other["report"], first["report"])  # another report put at dest
    again = host_scan.run(params(tmp_path), False)
    assert len(inflated) == 1 and again["changed"] is True and again["content_sha256"] == first["content_sha256"]


def test_check_mode_writes_nothing_and_predicts(tmp_path, prepared):
    predicted = host_scan.run(params(tmp_path), True)
    assert predicted["changed"] is True and predicted["sha256"] is None
    assert not (tmp_path / "out").exists() and not (tmp_path / "state").exists()
    done = host_scan.run(params(tmp_path), False)
    assert predicted["content_sha256"] == done["content_sha256"] and predicted["counts"]["files"] == done[
        "counts"]["files"]
    cache = Journal(str(tmp_path / "state")).step("host_scan").beside(".statcache")
    cached = os.stat(cache).st_mtime_ns
    again = host_scan.run(params(tmp_path), True)
    assert again["changed"] is False and again["sha256"] == done["sha256"] and again["counts"]["hashed"] == 0
    assert os.stat(cache).st_mtime_ns == cached
    os.chmod(os.path.join(str(tmp_path / "root"), "opt/app/bin/run.sh"), 0o700)
    assert host_scan.run(params(tmp_path), True)["changed"] is True


def test_the_stop_file_stops_between_batches_and_leaves_dest_alone(tmp_path, prepared):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "STOP").write_text("")
    with pytest.raises(Stopped, match="file record"):
        host_scan.run(params(tmp_path), False)
    assert not os.path.exists(params(tmp_path)["dest"]) and os.listdir(str(tmp_path / "out")) == []
    record = Journal(str(tmp_path / "state")).step("host_scan").record()
    assert record["status"] == "failed"
    cache = Journal(str(tmp_path / "state")).step("host_scan").beside(".statcache")
    assert not os.path.exists(cache) and os.path.exists(walk_module.partial_name(cache))
    (tmp_path / "state" / "STOP").unlink()
    resumed = host_scan.run(params(tmp_path), False)  # what the stopped scan hashed is not read again
    assert resumed["counts"]["cached"] > 0 and resumed["counts"]["hashed"] + resumed["counts"]["cached"] == \
        host_scan.run(params(tmp_path, force=True), False)["counts"]["hashed"]
    assert sorted(os.listdir(os.path.dirname(cache))) == [
        "host_scan.json", "host_scan.lock", "host_scan.md5cache", "host_scan.statcache"]


def test_dest_and_state_dir_inside_root_are_left_out(tmp_path, prepared):
    inside = params(tmp_path, dest=str(tmp_path / "root" / "srv" / "state" / "scan" / "r.jsonl.gz"),
                    state_dir=str(tmp_path / "root" / "srv" / "state"))
    host_scan.run(inside, False)
    result = host_scan.run(inside, False)
    assert result["changed"] is False
    found = files_of(inside["dest"])
    assert b"srv" in found and not [path for path in found if path.startswith(b"srv/state")]


@pytest.mark.parametrize("where", ["r.jsonl.gz", "srv/scan/r.jsonl.gz"])
def test_dest_inside_root_and_not_excluded_is_refused(tmp_path, prepared, where):
    """The report would change the tree it describes at every scan (itself, its directory's time): refused, rather
    than a whole directory of the host silently left out of the scan."""
    dest = str(tmp_path / "root" / where)
    with pytest.raises(FerryError, match="dest %s is inside the scanned root .* and not excluded" % dest):
        host_scan.run(params(tmp_path, dest=dest), False)
    assert not os.path.exists(dest)
    # excluded: its directory, or itself and its temporary names (.r.jsonl.gz.<random>) when it is at the top
    patterns = ["/" + os.path.dirname(where)] if "/" in where else ["/" + where, "/." + where + "*"]
    excluded = params(tmp_path, dest=dest, excludes=patterns)
    host_scan.run(excluded, False)
    assert host_scan.run(excluded, False)["changed"] is False


def test_without_packages_every_file_is_added(tmp_path, prepared):
    result = host_scan.run(params(tmp_path, packages=False, default_excludes=False, roots=["/var/lib/dpkg"]), False)
    found = files_of(result["report"])
    assert result["counts"]["packages"] == 0 and found[b"var/lib/dpkg/status"]["change"] == "added"
    assert all(path.startswith(b"var/lib/dpkg") for path in found)


@pytest.mark.parametrize("extra, message", [
    ({"hash_workers": 0}, "hash_workers=0 is out of range: it must be from 1 to 64"),
    ({"hash_workers": 65}, "hash_workers=65 is out of range"),
    ({"roots": ["/etc/../.."]}, "roots: /etc/../.. must be a path inside root, without '..'"),
    ({"roots": ["/nothing-here"]}, "roots: /nothing-here does not exist in root"),
    ({"root": "/nonexistent-root"}, "root, /nonexistent-root, is not a directory"),
    ({"dest": ""}, "dest is an empty string"),
    ({"excludes": ["/"]}, "would exclude the whole root"),
])
def test_bad_options_are_refused_before_anything_is_written(tmp_path, prepared, extra, message):
    with pytest.raises(FerryError, match=message.replace("(", "\\(")):
        host_scan.run(params(tmp_path, **extra), False)
    assert not (tmp_path / "out").exists()


def test_dest_that_is_a_directory_is_refused(tmp_path, prepared):
    (tmp_path / "out" / "report.jsonl.gz").mkdir(parents=True)
    with pytest.raises(FerryError, match="is a directory"):
        host_scan.run(params(tmp_path), False)


def test_the_module_runs_as_ansible_runs_it(tmp_path, prepared):
    args = tmp_path / "args.json"
    module_params = {k: v for k, v in params(tmp_path).items() if v is not None}
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": module_params}))
    env = dict(os.environ, PYTHONPATH=str(ROOT / ".run" / "collections"))
    done = subprocess.run([sys.executable, str(ROOT / "plugins" / "modules" / "host_scan.py"), str(args)],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    result = json.loads(done.stdout)
    assert result["changed"] is True and result["counts"]["files"] > 10, done.stdout[-2000:]
    assert os.path.exists(result["report"])
    assert scan_module.STEP == "host_scan"
