# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The machine scan's round trip against the real nginx WebDAV: a prepared root is scanned (host_scan), uploaded
(scan_upload) and rebuilt into an empty root (overlay_apply); the rebuilt tree matches the scanned one for what
the scan covers (content, modes with setuid, owners, symlink targets, hard links, holes), the FIFO and devices
are not there; then two files change, the rescan uploads exactly two objects and the second apply brings exactly
those two changes."""
import os
import secrets
import shutil
import stat

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.scan.report import name_of, read_report
from ansible_collections.ferry.migrate.plugins.modules import host_scan, overlay_apply, scan_upload
from tests.support.module_docs import with_defaults
from tests.support.scan_tree import make_prepared_root
from tests.support.tree_compare import covered_differences

MiB = 1 << 20
# what useradd --prefix leaves beside passwd and group, and the timezone step's link
ACCOUNT_FILES = (b"etc/shadow", b"etc/gshadow", b"etc/passwd-", b"etc/group-", b"etc/shadow-", b"etc/gshadow-",
                 b"etc/localtime")


def oracle(source, target, facts):
    return covered_differences(str(source), str(target), facts, allow_extra=ACCOUNT_FILES)


@pytest.fixture
def store(servers):
    """A fresh instance in the store, removed afterwards."""
    instance = "live-rebuild-" + secrets.token_hex(5)
    yield {"url": servers["FERRY_WEBDAV_URL"], "user": servers["FERRY_WEBDAV_USER"],
           "password": servers["FERRY_WEBDAV_PASSWORD"], "instance": instance}
    shutil.rmtree(os.path.join(servers["FERRY_WEBDAV_ROOT"], instance), ignore_errors=True)


def scan(root, report, state):
    params = with_defaults(host_scan, root=str(root), dest=str(report), state_dir=str(state), hash_workers=2)
    return host_scan.run(params, False)


def upload(report, store, state):
    return scan_upload.run(with_defaults(scan_upload, report=str(report), url=store["url"], instance=store["instance"],
                                         url_username=store["user"], url_password=store["password"], part_size=MiB,
                                         retries=1, timeout=30, state_dir=str(state)), False)


def rebuild(root, store, state, **values):
    params = with_defaults(overlay_apply, root=str(root), url=store["url"], instance=store["instance"],
                           url_username=store["user"], url_password=store["password"], retries=1, timeout=30,
                           state_dir=str(state))
    params.update(values)
    return overlay_apply.run(params, False)


def at(root, relative):
    return os.path.join(os.fsencode(str(root)), relative)


def compare_trees(report, source, target):
    """Every record of the report: the rebuilt path as the scanned one (type, content, mode, owner, mtime, link
    target); deleted records absent. Returns the number of records compared."""
    count = 0
    for record in read_report(str(report)).files():
        path = name_of(record)
        count += 1
        if record["change"] == "deleted":
            assert not os.path.lexists(at(target, path)), path
            continue
        before, after = os.lstat(at(source, path)), os.lstat(at(target, path))
        assert stat.S_IFMT(before.st_mode) == stat.S_IFMT(after.st_mode), path
        assert (before.st_uid, before.st_gid) == (after.st_uid, after.st_gid), path
        if record["type"] == "symlink":
            assert os.readlink(at(source, path)) == os.readlink(at(target, path)), path
            continue
        assert stat.S_IMODE(before.st_mode) == stat.S_IMODE(after.st_mode), path
        assert before.st_mtime_ns == after.st_mtime_ns, path
        if record["type"] == "file":
            with open(at(source, path), "rb") as one, open(at(target, path), "rb") as other:
                assert one.read() == other.read(), path
    return count


def snapshot(root):
    """path -> lstat of every entry under root."""
    found = {}
    base = os.fsencode(str(root))
    for directory, dirs, files in os.walk(base):
        for name in dirs + files:
            path = os.path.join(directory, name)
            found[os.path.relpath(path, base)] = os.lstat(path)
    return found


def test_scan_upload_apply_round_trip_then_an_incremental_one(tmp_path, store):
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    target.mkdir()
    facts = make_prepared_root(str(source))
    scanned = scan(source, tmp_path / "report1.jsonl.gz", tmp_path / "scan-state")
    first_upload = upload(tmp_path / "report1.jsonl.gz", store, tmp_path / "upload-state")
    assert first_upload["changed"] and first_upload["objects"] > 0

    applied = rebuild(target, store, tmp_path / "apply-state")
    assert applied["drift_count"] == 0, applied["drift"]
    assert applied["scan"]["scan"] == first_upload["scan_id"]
    assert applied["users"]["failed"] == [], applied["users"]
    assert compare_trees(tmp_path / "report1.jsonl.gz", source, target) >= scanned["counts"]["files"] > 10
    # and by an oracle that does not read the report: what the users and timezone steps add may be there too
    assert oracle(source, target, facts) == []
    setuid = os.lstat(at(target, facts["setuid"]))
    assert setuid.st_mode & stat.S_ISUID
    for group in facts["hardlinks"]:
        assert len(set(os.lstat(at(target, path)).st_ino for path in group)) == 1, group
    sparse = os.lstat(at(target, facts["sparse"]))
    assert sparse.st_blocks * 512 < sparse.st_size
    assert sparse.st_size == os.lstat(at(source, facts["sparse"])).st_size
    for path, (uid, gid, _owner, _group) in facts["owners"].items():
        info = os.lstat(at(target, path))
        assert (info.st_uid, info.st_gid) == (uid, gid), path
    listed = set(name_of(record) for record in read_report(str(tmp_path / "report1.jsonl.gz")).files())
    for path, link in facts["symlinks"].items():  # lib -> usr/lib is a package's (dpkg lists /lib): not listed
        if path in listed:
            assert os.readlink(at(target, path)) == link, path
    assert len(listed & set(facts["symlinks"])) >= 4
    for kind, paths in facts["skipped"].items():
        for path in paths:
            assert not os.path.lexists(at(target, path)), (kind, path)
    assert (target / "etc/timezone").read_text() == facts["profile"]["timezone"] + "\n"

    # two files change; the rescan uploads exactly their two objects; the apply brings exactly them
    changed = [path for path in sorted(facts["added"]) if not any(path in group for group in facts["hardlinks"])][:2]
    for number, path in enumerate(changed):
        with open(at(source, path), "r+b") as handle:  # in place: the directories stay as they were
            handle.truncate(0)
            handle.write(b"changed %d\n" % number)
    before = snapshot(target)
    scan(source, tmp_path / "report2.jsonl.gz", tmp_path / "scan-state")
    second_upload = upload(tmp_path / "report2.jsonl.gz", store, tmp_path / "upload-state")
    assert second_upload["objects"] == 2 and second_upload["scan_id"] != first_upload["scan_id"]
    again = rebuild(target, store, tmp_path / "apply-state")
    assert again["changed"] is True and again["drift_count"] == 0, again["drift"]
    assert again["applied"]["files"] == 2 and again["applied"]["objects"] == 2
    assert again["applied"]["metadata"] == 0 and again["applied"]["deleted"] == 0
    for number, path in enumerate(changed):
        assert open(at(target, path), "rb").read() == b"changed %d\n" % number
    after = snapshot(target)
    assert sorted(after) == sorted(before)
    for path, info in before.items():
        if path in changed:
            continue
        if stat.S_ISDIR(info.st_mode):
            assert after[path].st_mtime_ns == info.st_mtime_ns, path
        else:
            assert (after[path].st_ino, after[path].st_ctime_ns) == (info.st_ino, info.st_ctime_ns), path
    compare_trees(tmp_path / "report2.jsonl.gz", source, target)
    assert oracle(source, target, facts) == []
    third = rebuild(target, store, tmp_path / "apply-state", force=True)
    assert third["changed"] is False


def test_a_symlinked_parent_in_the_target_is_refused(tmp_path, store):
    source, target, outside = tmp_path / "source", tmp_path / "target", tmp_path / "outside"
    for path in (source, target, outside):
        path.mkdir()
    make_prepared_root(str(source))
    scan(source, tmp_path / "report.jsonl.gz", tmp_path / "scan-state")
    upload(tmp_path / "report.jsonl.gz", store, tmp_path / "upload-state")
    os.symlink(str(outside), target / "etc")
    with pytest.raises(FerryError, match="is a symlink: refused"):
        rebuild(target, store, tmp_path / "apply-state")
    assert os.listdir(outside) == [] and os.listdir(target) == ["etc"]
