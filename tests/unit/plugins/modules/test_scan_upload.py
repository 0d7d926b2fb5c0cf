# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""scan_upload through its entry point, against the in-process store stand-in: docs and spec agree, check mode
predicts the run, a second run sends nothing, a failed run resumes skipping the whole parts, STOP, the upload
order, the local archive, and the options refused."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import io
import json
import os
import random

import pytest

from ansible_collections.ferry.migrate.plugins.doc_fragments.endpoint import ModuleDocFragment as Endpoint
from ansible_collections.ferry.migrate.plugins.doc_fragments.state import ModuleDocFragment as State
from ansible_collections.ferry.migrate.plugins.module_utils.core.archive import iter_members, open_tar_stream
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import Stopped
from ansible_collections.ferry.migrate.plugins.modules import scan_upload
from tests.support.dav_standin import DavStandin
from tests.support.module_docs import assert_documentation_matches_the_spec
from tests.support.scan_objects import sha, write_tree_and_report

MiB = 1 << 20


class StoreFragment:  # pylint: disable=too-few-public-methods
    DOCUMENTATION = Endpoint.STORE


def test_documentation_matches_the_spec():
    returned = assert_documentation_matches_the_spec(
        scan_upload, {"ferry.migrate.state": State, "ferry.migrate.endpoint": Endpoint,
                      "ferry.migrate.endpoint.store": StoreFragment},
        secrets=("url_password", "bearer_token"))
    assert set(returned) >= {"scan_id", "objects", "bytes", "parts", "parts_skipped", "known", "url", "changed"} - {
        "changed"}


def params(tmp_path, dav=None, **values):
    base = dict((name, option.get("default")) for name, option in scan_upload.argument_spec().items())
    base.update(report=str(tmp_path / "report.jsonl.gz"), state_dir=str(tmp_path / "state"), part_size=MiB,
                retries=0, timeout=10)
    if dav is not None:
        base.update(url=dav.url.replace("http://", "http://ferry:s3cret@") + "/store", instance="web01")
    base.update(values)
    return base


FILES = {b"etc/a": b"alpha\n", b"etc/b": random.Random(1).randbytes(2 * MiB + 5), b"etc/c": b"c" * 700000,
         b"etc/d": b"d" * 600000, b"etc/same": b"alpha\n", b"etc/new\nline": b"nl", b"etc/caf\xe9": b"latin"}


@pytest.fixture
def scanned(tmp_path):
    write_tree_and_report(tmp_path / "root", tmp_path / "report.jsonl.gz", FILES)
    return tmp_path


@pytest.fixture
def dav():
    with DavStandin(user="ferry", password="s3cret") as standin:
        yield standin


def test_check_mode_predicts_and_writes_nothing_then_the_run_uploads_it_once(scanned, dav):
    predicted = scan_upload.run(params(scanned, dav), True)
    assert dav.methods("PUT") == [] and not (scanned / "state").exists()
    done = scan_upload.run(params(scanned, dav), False)
    for key in ("scan_id", "objects", "bytes", "parts", "known"):
        assert predicted[key] == done[key], key
    objects = set(FILES.values())
    assert done["objects"] == len(objects) and done["bytes"] == sum(map(len, objects)) and done["known"] == 0
    assert done["parts"] == 4 and done["parts_skipped"] == 0 and done["changed"] is True
    assert done["url"] == dav.url + "/store" and "s3cret" not in json.dumps(done)
    scan = done["scan_id"]
    assert scan == sha((scanned / "report.jsonl.gz").read_bytes())[:16]
    prefix = "/store/web01/scans/%s/" % scan
    assert dav.methods("PUT") == [prefix + "report.jsonl.gz"] + [prefix + "part-%05d.tar" % n for n in range(1, 5)] + [
        prefix + "overlay.jsonl.gz", "/store/web01/content.jsonl.gz", prefix + "complete.json",
        "/store/web01/latest.json"]
    assert dav.files[prefix + "report.jsonl.gz"] == (scanned / "report.jsonl.gz").read_bytes()
    latest = json.loads(dav.files["/store/web01/latest.json"])
    assert latest == json.loads(dav.files[prefix + "complete.json"])
    assert latest["scan"] == scan and latest["objects"] == len(objects)
    stored = {}
    for n in range(1, 5):
        data = dav.files[prefix + "part-%05d.tar" % n]
        tar = open_tar_stream(io.BytesIO(data), "part")
        for member in iter_members(tar, "part"):
            stored.setdefault(member.name[8:72], []).append(tar.extractfile(member).read())
    assert {d: b"".join(p) for d, p in stored.items()} == {sha(c): c for c in objects}
    content = [json.loads(line) for line in gzip.decompress(dav.files["/store/web01/content.jsonl.gz"]).splitlines()]
    assert sorted(line["sha256"] for line in content) == sorted(map(sha, objects))
    assert {line["scan"] for line in content} == {scan}
    puts = len(dav.methods("PUT"))
    again = scan_upload.run(params(scanned, dav), False)
    assert again["changed"] is False and again["decision"] == "skip" and again["objects"] == 0
    assert len(dav.methods("PUT")) == puts
    fresh_journal = scan_upload.run(params(scanned, dav, state_dir=str(scanned / "other")), False)
    assert fresh_journal["changed"] is False and len(dav.methods("PUT")) == puts  # the store knows it is whole


def test_a_second_scan_sends_only_the_changed_contents(scanned, dav):
    first = scan_upload.run(params(scanned, dav), False)
    changed = dict(FILES)
    changed[b"etc/c"] = b"C" * 10
    changed[b"etc/z"] = b"zzz"
    write_tree_and_report(scanned / "root", scanned / "report.jsonl.gz", changed, created="2026-12-06T11:00:00Z")
    predicted = scan_upload.run(params(scanned, dav), True)
    second = scan_upload.run(params(scanned, dav), False)
    assert second["scan_id"] != first["scan_id"]
    assert (second["objects"], second["bytes"], second["parts"]) == (2, 13, 1) == (
        predicted["objects"], predicted["bytes"], predicted["parts"])
    assert second["known"] == len(set(changed.values())) - 2
    content = [json.loads(line) for line in gzip.decompress(dav.files["/store/web01/content.jsonl.gz"]).splitlines()]
    assert len(content) == first["objects"] + 2
    assert json.loads(dav.files["/store/web01/latest.json"])["scan"] == second["scan_id"]


def test_a_failed_upload_resumes_and_skips_the_whole_parts(scanned, dav):
    victim = scanned / "root" / "etc" / "d"
    victim.write_bytes(b"D" * 600000)  # changed since the scan: the part holding it fails
    with pytest.raises(FerryError, match="etc/d changed since the scan"):
        scan_upload.run(params(scanned, dav), False)
    assert dav.wait_cut() and not any(path.endswith("latest.json") for path in dav.files)
    sent = [path for path in dav.files if "part-" in path]
    assert sent  # the parts before it are whole in the store
    victim.write_bytes(FILES[b"etc/d"])
    resumed = scan_upload.run(params(scanned, dav), False)
    assert resumed["decision"] == "resume" and resumed["parts_skipped"] == len(sent)
    assert resumed["parts"] + resumed["parts_skipped"] == 4
    record = json.loads((scanned / "state" / "steps" / "scan_upload.json").read_text())
    assert record["status"] == "complete" and record["progress"]["unit"] == "bytes"
    assert record["progress"]["done"] == record["progress"]["total"] == resumed["bytes"]


def test_stop_is_honoured_between_parts(scanned, dav):
    (scanned / "state").mkdir()
    (scanned / "state" / "STOP").write_text("")
    with pytest.raises(Stopped, match="0 of 4 part"):
        scan_upload.run(params(scanned, dav), False)
    assert not any("part-" in path for path in dav.files)
    os.unlink(scanned / "state" / "STOP")
    assert scan_upload.run(params(scanned, dav), False)["parts"] == 4


def test_a_local_archive_instead_of_a_store(scanned):
    dest = scanned / "overlay.tar"
    predicted = scan_upload.run(params(scanned, dest=str(dest)), True)
    assert not dest.exists()
    done = scan_upload.run(params(scanned, dest=str(dest)), False)
    assert predicted["objects"] == done["objects"] == len(set(FILES.values())) and done["url"] is None
    tar = open_tar_stream(open(dest, "rb"), str(dest))
    names = [member.name for member in iter_members(tar, str(dest))]
    assert names[0] == "report.jsonl.gz" and names[1:] == sorted("objects/" + sha(c) for c in set(FILES.values()))
    assert scan_upload.run(params(scanned, dest=str(dest)), False)["changed"] is False
    os.unlink(dest)
    assert scan_upload.run(params(scanned, dest=str(dest)), False)["changed"] is True  # lost: made again


@pytest.mark.parametrize("values,message", [
    ({"url": None, "dest": None}, "exactly one of url"),
    ({"dest": "/tmp/x.tar"}, "exactly one of url"),
    ({"instance": None}, "instance is required with url"),
    ({"instance": "../x"}, "invalid instance"),
    ({"part_size": MiB - 1}, "part_size=1048575 is out of range"),
    ({"part_size": (16 << 30) + 1}, "part_size=17179869185 is out of range"),
    ({"url": "ftp://x"}, "invalid url"),
    ({"report": ""}, "report is an empty string"),
    ({"src_root": "/nonexistent/root"}, "src_root /nonexistent/root is not a directory"),
])
def test_bad_options_are_refused_before_anything_is_sent(scanned, dav, values, message):
    with pytest.raises(FerryError, match=message):
        scan_upload.run(params(scanned, dav, **values), False)
    assert dav.requests == []


def test_a_truncated_report_is_refused(scanned, dav):
    data = (scanned / "report.jsonl.gz").read_bytes()
    (scanned / "report.jsonl.gz").write_bytes(gzip.compress(gzip.decompress(data).rsplit(b"\n", 2)[0] + b"\n"))
    with pytest.raises(FerryError, match="truncated"):
        scan_upload.run(params(scanned, dav), False)
    assert dav.requests == []
