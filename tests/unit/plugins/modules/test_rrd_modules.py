# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rrd_to_whisper and rrd_to_tsdb as tasks: check mode, the second run, bad files, Zenoss naming, a kill in the
middle of a point conversion, and sending to an OpenTSDB /api/put (the emulator)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core import staging
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb import points as tsdb
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import Journal
from ansible_collections.ferry.migrate.plugins.modules import (
    migration_status,
    rrd_to_tsdb,
    rrd_to_whisper,
    tsdb_restore,
    whisper_install,
)
from tests.support.otsdb_emulator import OpenTSDBEmulator
from tools.gen_rrd_tree import build_tree

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


def params(module, **values):
    base = dict((name, option.get("default")) for name, option in module.argument_spec().items())
    base.update(values)
    return base


def state_option(module):
    """The option naming the state directory: whisper_install's is record_dir (state_dir is its alias)."""
    return "record_dir" if module is whisper_install else "state_dir"


def batch_points(dest):
    """Every point line of the finished batches, and the files each batch says it holds."""
    lines, files = [], []
    for manifest in tsdb.finished_batches(str(dest)):
        lines.extend(tsdb.parse_line(line) for line in tsdb.read_batch_lines(manifest))
        files.extend(manifest["files"])
    return lines, files


@pytest.fixture(scope="module")
def nav(tmp_path_factory):
    root = tmp_path_factory.mktemp("nav")
    info = build_tree(str(root / "rrd"), "nav", files=16, days=4, workers=2)
    return info


@pytest.fixture(scope="module")
def zenoss(tmp_path_factory):
    root = tmp_path_factory.mktemp("zenoss")
    return build_tree(str(root / "perf"), "zenoss", files=30, days=4, workers=2)


# -- rrd_to_whisper --------------------------------------------------------------------------------------------
def test_whisper_check_mode_run_and_second_run(nav, tmp_path):
    args = params(rrd_to_whisper, src=nav["root"], dest=str(tmp_path / "wsp"), state_dir=str(tmp_path / "s"),
                  metric_prefix="nav.rrd", workers=2)
    checked = rrd_to_whisper.run(args, True)
    assert checked["changed"] and checked["files_pending"] == len(nav["files"])
    assert not (tmp_path / "wsp").exists() and not (tmp_path / "s").exists()
    first = rrd_to_whisper.run(args, False)
    assert first["changed"] and first["counts"]["failed"] == 0
    assert first["counts"]["files"] == len(nav["files"])
    assert first["counts"]["created"] == sum(len(f["ds"]) for f in nav["files"])
    escaped = [os.path.relpath(os.path.join(d, n), str(tmp_path / "wsp")) for d, _s, names in
               os.walk(str(tmp_path / "wsp")) for n in names]
    assert all(" " not in path and "(" not in path and "," not in path for path in escaped)
    assert any(path.startswith("nav/rrd/") for path in escaped)
    second = rrd_to_whisper.run(args, False)
    assert second["decision"] == "skip" and second["changed"] is False
    assert second["counts"] == first["counts"] and second["report"] == first["report"]
    record = Journal(str(tmp_path / "s")).step("rrd_to_whisper").record()
    assert record["status"] == "complete" and record["progress"]["done"] == len(nav["files"])


def test_whisper_new_and_changed_files_are_converted_on_the_next_run(nav, tmp_path):
    src = tmp_path / "rrd"
    src.mkdir()
    for entry in nav["files"][:3]:
        (src / os.path.basename(entry["path"])).write_bytes(open(os.path.join(nav["root"], entry["path"]), "rb").read())
    args = params(rrd_to_whisper, src=str(src), dest=str(tmp_path / "w"), state_dir=str(tmp_path / "s"))
    first = rrd_to_whisper.run(args, False)
    assert first["counts"]["files"] == 3
    extra = nav["files"][3]
    (src / "new.rrd").write_bytes(open(os.path.join(nav["root"], extra["path"]), "rb").read())
    changed = sorted(os.listdir(str(src)))[0]
    os.utime(str(src / changed), ns=(1, 1))
    assert rrd_to_whisper.run(args, True)["files_pending"] == 2
    update = rrd_to_whisper.run(args, False)
    assert update["decision"] == "update" and update["counts"]["files"] == 2
    assert update["counts"]["created"] == len(extra["ds"])  # the changed file's whisper files exist: backfilled
    record = Journal(str(tmp_path / "s")).step("rrd_to_whisper").record()
    assert record["counts"]["files"] == 5  # the journal adds the runs up
    assert rrd_to_whisper.run(args, False)["decision"] == "skip"


def test_whisper_mapping_file_names_binary_and_dumped_files(nav, tmp_path):
    src = tmp_path / "rrd"
    src.mkdir()
    entry = next(f for f in nav["files"] if len(f["ds"]) > 1)
    data = open(os.path.join(nav["root"], entry["path"]), "rb").read()
    (src / "a.rrd").write_bytes(data)
    (src / "b.rrd").write_bytes(data)
    subprocess.run(["rrdtool", "dump", str(src / "b.rrd"), str(src / "b.rrd.xml")], check=True)
    os.unlink(str(src / "b.rrd"))
    mapping = tmp_path / "map.csv"
    mapping.write_text("rrd_path,ds,metric\n%s,,nav.a\nb.rrd,%s,nav.b.first\n" % (src / "a.rrd", entry["ds"][0]["name"]))
    args = params(rrd_to_whisper, src=str(src), dest=str(tmp_path / "w"), state_dir=str(tmp_path / "s"),
                  mapping_file=str(mapping), unmapped="skip")
    result = rrd_to_whisper.run(args, False)
    assert result["counts"]["created"] == len(entry["ds"]) + 1
    assert os.path.exists(str(tmp_path / "w" / "nav" / "b" / "first.wsp"))  # the dump found its mapping
    assert len(result["skipped_files"]) == len(entry["ds"]) - 1
    assert rrd_to_whisper.run(args, False)["decision"] == "skip"
    mapping.write_text(mapping.read_text() + "b.rrd,%s,nav.b.second\n" % entry["ds"][1]["name"])
    assert rrd_to_whisper.run(args, False)["decision"] == "run"  # an edited mapping runs again


def test_whisper_mapping_root_names_files_converted_away_from_the_nav3_host(nav, tmp_path):
    """NAV's paths are absolute on the NAV 3 host: a tree shipped elsewhere (or its dumps) maps with mapping_root."""
    entry = next(f for f in nav["files"] if "sensors" in f["path"])
    src = tmp_path / "received"
    (src / os.path.dirname(entry["path"])).mkdir(parents=True)
    shutil.copy(os.path.join(nav["root"], entry["path"]), str(src / entry["path"]))
    mapping = tmp_path / "nav-metrics.csv"
    mapping.write_text('rrd_path,ds,metric,scale\n"/var/lib/nav/rrd/%s",%s,nav.devices.sw.sensors.inlet,0.1\n'
                       % (entry["path"], entry["ds"][0]["name"]))
    args = params(rrd_to_whisper, src=str(src), dest=str(tmp_path / "w"), state_dir=str(tmp_path / "s"),
                  mapping_file=str(mapping), mapping_root="/var/lib/nav/rrd", unmapped="skip")
    result = rrd_to_whisper.run(args, False)
    assert result["counts"]["created"] == 1 and result["counts"]["failed"] == 0
    assert os.path.exists(str(tmp_path / "w" / "nav" / "devices" / "sw" / "sensors" / "inlet.wsp"))
    assert rrd_to_whisper.run(args, False)["decision"] == "skip"
    # without it the absolute paths are taken under src, where nothing matches: every data source is skipped
    other = params(rrd_to_whisper, src=str(src), dest=str(tmp_path / "w2"), state_dir=str(tmp_path / "s2"),
                   mapping_file=str(mapping), unmapped="skip")
    assert rrd_to_whisper.run(other, False)["counts"]["created"] == 0


def test_whisper_validate_only_checks_the_options_before_any_tree_is_there(tmp_path):
    """What the role runs before moving any data: the mapping read whole, owner, mode, prefix; nothing written."""
    mapping = tmp_path / "map.csv"
    mapping.write_text('rrd_path,ds,metric,scale\n"/nav/rrd/a, b/c.rrd",ds0,nav.c,0.1\n/nav/rrd/d.rrd,ds0,nav.d\n')
    args = params(rrd_to_whisper, src=str(tmp_path / "not-yet"), dest=str(tmp_path / "w"), state_dir=str(tmp_path / "s"),
                  mapping_file=str(mapping), mapping_root="/nav/rrd", validate_only=True)
    result = rrd_to_whisper.run(args, False)
    assert result == {"changed": False, "decision": "validate", "mapping_entries": 2}
    assert os.listdir(str(tmp_path)) == ["map.csv"]
    mapping.write_text("rrd_path,ds,metric\na.rrd,ds0,nav.a\nb.rrd,ds0,nav.b,1,2\n")
    with pytest.raises(FerryError, match="map.csv line 3: expected rrd_path,metric or rrd_path,ds,metric"):
        rrd_to_whisper.run(args, False)
    for bad, message in ((dict(owner="_no_such_user_here"), "no user named _no_such_user_here"),
                         (dict(metric_prefix="a..b"), "invalid metric_prefix"),
                         (dict(mode="0999"), "mode"),
                         (dict(shard_index=2, shard_count=2), "shard_index")):
        with pytest.raises(FerryError, match=message):
            rrd_to_whisper.run(dict(args, mapping_file=None, **bad), False)
    assert os.listdir(str(tmp_path)) == ["map.csv"]


def test_whisper_bad_files_fail_the_task_naming_them(nav, tmp_path):
    src = tmp_path / "rrd"
    src.mkdir()
    good = nav["files"][0]["path"]
    (src / "good.rrd").write_bytes(open(os.path.join(nav["root"], good), "rb").read())
    (src / "broken.rrd").write_bytes(open(os.path.join(nav["root"], good), "rb").read()[:3000])
    (src / "text.rrd").write_text("not an rrd\n")
    args = params(rrd_to_whisper, src=str(src), dest=str(tmp_path / "wsp"), state_dir=str(tmp_path / "s"))
    result = rrd_to_whisper.run(args, False)
    assert result["counts"]["failed"] == 2 and result["counts"]["created"] == len(nav["files"][0]["ds"])
    assert "2 file(s) failed to convert" in result["msg"]
    assert sorted(m.split(" ")[0] for m in result["failed_files"]) == [str(src / "broken.rrd"), str(src / "text.rrd")]
    with open(result["report"]) as handle:
        report = [json.loads(line) for line in handle]
    assert sorted(r["file"] for r in report if "failed" in r) == ["broken.rrd", "text.rrd"]
    assert Journal(str(tmp_path / "s")).step("rrd_to_whisper").record()["status"] == "failed"
    # the next run resumes and retries only the failed files; allowing them lets the step complete
    again = rrd_to_whisper.run(dict(args, max_failed_files=2), False)
    assert again["decision"] == "resume" and "msg" not in again
    assert again["counts"]["files"] == 2 and again["counts"]["failed"] == 2


def test_whisper_resume_after_failure_retries_only_failed_files(nav, tmp_path):
    src = tmp_path / "rrd"
    src.mkdir()
    for entry in nav["files"][:3]:
        (src / os.path.basename(entry["path"])).write_bytes(open(os.path.join(nav["root"], entry["path"]), "rb").read())
    (src / "zz-bad.rrd").write_text("junk")
    args = params(rrd_to_whisper, src=str(src), dest=str(tmp_path / "wsp"), state_dir=str(tmp_path / "s"))
    assert rrd_to_whisper.run(args, False)["counts"]["failed"] == 1
    os.unlink(str(src / "zz-bad.rrd"))
    resumed = rrd_to_whisper.run(args, False)
    assert resumed["decision"] == "resume"
    assert resumed["counts"]["files"] == 0 and resumed["counts"]["already_done"] == 3
    assert "msg" not in resumed


@pytest.mark.parametrize("module", [rrd_to_whisper, rrd_to_tsdb])
def test_tolerated_failures_are_retried_only_once_the_file_changes(module, nav, zenoss, tmp_path):
    """A completed step with a failed file allowed by max_failed_files: the next run is a skip, not the same
    failure again; once the file is replaced, it is converted (decision update)."""
    tree = zenoss if module is rrd_to_tsdb else nav
    src = tmp_path / "src"
    shutil.copytree(tree["root"], str(src))
    bad = src / os.path.dirname(tree["files"][0]["path"]) / "bad.rrd"
    bad.write_text("junk")
    args = params(module, src=str(src), dest=str(tmp_path / "out"), state_dir=str(tmp_path / "s"), max_failed_files=1)
    first = module.run(args, False)
    assert first["counts"]["failed"] == 1 and "msg" not in first
    second = module.run(args, False)
    assert second["decision"] == "skip" and not second["changed"]
    bad.write_bytes(open(os.path.join(tree["root"], tree["files"][0]["path"]), "rb").read())
    third = module.run(args, False)
    assert third["decision"] == "update" and third["counts"]["files"] == 1 and third["counts"]["failed"] == 0


def test_whisper_stops_on_request_and_resumes(nav, tmp_path):
    state = tmp_path / "s"
    state.mkdir()
    (state / "STOP").write_text("")
    args = params(rrd_to_whisper, src=nav["root"], dest=str(tmp_path / "w"), state_dir=str(state), workers=1)
    with pytest.raises(FerryError, match="stopped on request"):
        rrd_to_whisper.run(args, False)
    assert Journal(str(state)).step("rrd_to_whisper").record()["status"] == "failed"
    os.unlink(str(state / "STOP"))
    resumed = rrd_to_whisper.run(args, False)
    assert resumed["decision"] == "resume" and "msg" not in resumed
    assert resumed["counts"]["files"] + resumed["counts"]["already_done"] == len(nav["files"])


def test_whisper_options_are_checked(nav, tmp_path):
    args = params(rrd_to_whisper, src=nav["root"], dest=str(tmp_path / "w"), state_dir=str(tmp_path / "s"))
    with pytest.raises(FerryError, match=r"shard_index=2 is out of range: it must be from 0 to shard_count - 1 \(1\)"):
        rrd_to_whisper.run(dict(args, shard_index=2, shard_count=2), False)
    with pytest.raises(FerryError, match="invalid mode"):
        rrd_to_whisper.run(dict(args, mode="rw-r"), False)
    with pytest.raises(FerryError, match="does not exist"):
        rrd_to_whisper.run(dict(args, src=str(tmp_path / "nowhere")), False)
    with pytest.raises(FerryError, match="no user named"):
        rrd_to_whisper.run(dict(args, owner="no-such-user-ferry"), False)


def test_whisper_files_get_owner_and_mode(nav, tmp_path):
    args = params(rrd_to_whisper, src=nav["root"], dest=str(tmp_path / "w"), state_dir=str(tmp_path / "s"),
                  files=[nav["files"][0]["path"]], owner=str(os.getuid()), group=str(os.getgid()), mode="0640")
    assert rrd_to_whisper.run(args, False)["counts"]["created"] >= 1
    for top, _dirs, names in os.walk(str(tmp_path / "w")):
        for name in names:
            assert os.stat(os.path.join(top, name)).st_mode & 0o777 == 0o640
        assert os.stat(top).st_mode & 0o777 in (0o750, 0o755)


# -- rrd_to_tsdb -------------------------------------------------------------------------------------------------
def test_tsdb_zenoss_naming_and_each_point_once(zenoss, tmp_path):
    args = params(rrd_to_tsdb, src=zenoss["root"], dest=str(tmp_path / "points"), state_dir=str(tmp_path / "s"),
                  files_per_batch=4, workers=2)
    result = rrd_to_tsdb.run(args, False)
    superseded = [f for f in zenoss["files"] if f.get("superseded_by")]
    assert superseded and result["counts"]["skipped"] == len(superseded)
    assert result["counts"]["files"] == len(zenoss["files"]) and result["counts"]["failed"] == 0
    assert result["tenant_id"] == zenoss["dmd_uuid"]
    lines, files = batch_points(tmp_path / "points")
    assert len(lines) == result["counts"]["points"]
    assert sorted(files) == sorted(f["path"] for f in zenoss["files"])  # skipped files are done too
    keys = [(metric, tags, stamp) for metric, tags, stamp, _value in lines]
    assert len(keys) == len(set(keys))  # no timestamp twice in any series
    tags = dict((metric, dict(t)) for metric, t, _s, _v in lines)
    assert all(t["zenoss_tenant_id"] == zenoss["dmd_uuid"] for t in tags.values())
    assert any(metric.startswith("sw-01-core/") for metric in tags)  # "sw 01+core" escaped
    assert not any(metric.endswith("_GAUGE") for metric in tags)
    # key in Zenoss 5's form (Devices/<path below the device class>), though rrdpath.map maps every directory
    assert all(re.fullmatch(r"Devices/%s(/[^/]+)*" % re.escape(t["device"]), t["key"]) for t in tags.values())
    assert any(t["key"].count("/") >= 2 for t in tags.values())  # component keys too
    assert rrd_to_tsdb.run(args, False)["decision"] == "skip"


def test_tsdb_killed_run_redoes_only_unfinished_batches(zenoss, tmp_path):
    clean = tmp_path / "clean"
    rrd_to_tsdb.run(params(rrd_to_tsdb, src=zenoss["root"], dest=str(clean), state_dir=str(tmp_path / "s1"),
                           files_per_batch=2, workers=1), False)
    dest, state = tmp_path / "killed", tmp_path / "s2"
    # 0.1 s at each batch's stop check: the run outlasts the 10 ms polls below however fast the host is
    script = ("import sys, time; sys.path[:0] = [%r]; import conftest\n"
              "from ansible_collections.ferry.migrate.plugins.module_utils.core import journal\n"
              "check_stop = journal.Step.check_stop\n"
              "journal.Step.check_stop = lambda step, done: (time.sleep(0.1), check_stop(step, done))[1]\n"
              "from tests.unit.plugins.modules.test_rrd_modules import params\n"
              "from ansible_collections.ferry.migrate.plugins.modules import rrd_to_tsdb\n"
              "rrd_to_tsdb.run(params(rrd_to_tsdb, src=%r, dest=%r, state_dir=%r, files_per_batch=2, workers=1),"
              " False)\n" % (ROOT, zenoss["root"], str(dest), str(state)))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    deadline = time.monotonic() + 60
    while len([n for n in os.listdir(str(dest)) if n.endswith(".json")] if dest.exists() else []) < 3:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    resumed = rrd_to_tsdb.run(params(rrd_to_tsdb, src=zenoss["root"], dest=str(dest), state_dir=str(state),
                                     files_per_batch=2, workers=1), False)
    assert resumed["decision"] == "resume" and resumed["counts"]["already_done"] >= 6
    assert not [n for n in os.listdir(str(dest)) if n.endswith(".partial")]
    lines, files = batch_points(dest)
    assert len(files) == len(set(files))  # no file in two batches
    assert sorted(lines) == sorted(batch_points(clean)[0])


def test_tsdb_check_mode_writes_nothing(zenoss, tmp_path):
    args = params(rrd_to_tsdb, src=zenoss["root"], dest=str(tmp_path / "p"), state_dir=str(tmp_path / "s"))
    result = rrd_to_tsdb.run(args, True)
    assert result["changed"] and result["files_pending"] == len(zenoss["files"])
    assert not (tmp_path / "p").exists() and not (tmp_path / "s").exists()


def test_tsdb_needs_a_tenant(zenoss, tmp_path):
    os.makedirs(str(tmp_path / "a" / "b" / "c" / "d" / "Devices"))
    args = params(rrd_to_tsdb, src=str(tmp_path / "a" / "b" / "c" / "d"), dest=str(tmp_path / "p"),
                  state_dir=str(tmp_path / "s"))
    with pytest.raises(FerryError, match="give tenant_id or dmd_uuid_file"):
        rrd_to_tsdb.run(args, False)
    with pytest.raises(FerryError, match="invalid naming template"):
        rrd_to_tsdb.run(dict(args, tenant_id="x", metric_template="{device}/{nope}"), False)


def test_tsdb_sends_to_opentsdb_through_the_put_writer(zenoss, tmp_path):
    with OpenTSDBEmulator() as emulator:
        args = params(rrd_to_tsdb, src=zenoss["root"], dest=str(tmp_path / "p"), state_dir=str(tmp_path / "s"),
                      url=emulator.url, kind="opentsdb", workers=2)
        result = rrd_to_tsdb.run(args, False)
        assert result["sent"]["points"] == result["counts"]["points"] > 0
        # the emulator refuses bodies over 8 KiB, as OpenTSDB does by default: none was
        stored = emulator.points()
        lines, _files = batch_points(tmp_path / "p")
        assert len(stored) == len(lines)
        again = rrd_to_tsdb.run(args, False)
        assert again["decision"] == "skip" and again["send_decision"] == "skip" and not again["changed"]


def test_tsdb_restore_follows_the_converter_step(zenoss, tmp_path):
    """The pipelined route to /api/put: tsdb_restore with wait_for_step naming the rrd_to_tsdb step."""
    state = str(tmp_path / "s")
    converted = rrd_to_tsdb.run(params(rrd_to_tsdb, src=zenoss["root"], dest=str(tmp_path / "p"),
                                       state_dir=state, step="perf-main", workers=2), False)
    with OpenTSDBEmulator() as emulator:
        restored = tsdb_restore.run(params(tsdb_restore, src=str(tmp_path / "p"), url=emulator.url,
                                           kind="opentsdb", state_dir=state, wait_for_step="perf-main",
                                           poll_interval=0.1, verify_timeout=10.0), False)
        assert restored["points"] == converted["counts"]["points"] == len(emulator.points())
        assert restored["verification"]["found_points"] == restored["points"] and not restored["verification"]["short"]


def test_a_file_failing_half_way_leaves_none_of_its_points_in_the_batch(tmp_path):
    """Its points would otherwise be sent now and again when the failed file is retried."""
    from ansible_collections.ferry.migrate.plugins.module_utils.rrd.jobs import PointBatchJob

    class Job:
        src = str(tmp_path)

        def skip_reason(self, relative):
            return None

        def series(self, relative):
            series = [("m." + relative, {"device": "d"}, [(range(1000, 1600, 300), [1.0, 2.0], None)])]
            if relative == "bad.rrd":
                series.append(("m2." + relative, {"device": "d"}, Broken()))
            return series, 0

    class Broken:
        def __iter__(self):
            raise FerryError("bad.rrd: broken in its second data source")

    (tmp_path / "points").mkdir()
    results = PointBatchJob(Job(), str(tmp_path / "points"))(["good.rrd", "bad.rrd"])
    assert [r.get("error") for r in results] == [None, "bad.rrd: broken in its second data source"]
    lines, files = batch_points(tmp_path / "points")
    assert files == ["good.rrd"] and [line[0] for line in lines] == ["m.good.rrd", "m.good.rrd"]


def test_tsdb_leaves_out_infinite_values_with_a_warning(tmp_path):
    """JSON has no infinity, and OpenTSDB refuses the point: an RRD GAUGE without a maximum stores one."""
    import rrdtool

    path = tmp_path / "perf" / "Devices" / "dev1" / "temp_temp.rrd"
    path.parent.mkdir(parents=True)
    rrdtool.create(str(path), "--start", "999999900", "--step", "300", "DS:temp:GAUGE:600:U:U",
                   "RRA:AVERAGE:0.5:1:20")
    rrdtool.update(str(path), *["%d:%s" % (999999900 + 300 * i, value) for i, value in
                                enumerate(["1", "2", "inf", "3", "-inf", "4", "5"], 1)])
    args = params(rrd_to_tsdb, src=str(tmp_path / "perf"), dest=str(tmp_path / "p"), state_dir=str(tmp_path / "s"),
                  tenant_id="t1", workers=1)
    result = rrd_to_tsdb.run(args, False)
    lines, _files = batch_points(tmp_path / "p")
    assert [value for _m, _t, _s, value in lines] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert result["counts"]["points"] == 5 and result["counts"]["warnings"] == 1
    assert result["file_warnings"] == ["Devices/dev1/temp_temp.rrd: 2 infinite value(s) left out (JSON and "
                                       "OpenTSDB have no infinity)"]
    assert rrd_to_tsdb.conversion_warnings(result)[0].startswith("1 conversion warning(s), the first: Devices/dev1")


# -- hardening (issue 10) --------------------------------------------------------------------------------------
def small_rrd(path, start=999999900, rows=20, values=7):
    """An RRD of one GAUGE data source ds0, step 300, ``values`` updates from ``start``."""
    import rrdtool

    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    rrdtool.create(str(path), "--start", str(start), "--step", "300", "DS:ds0:GAUGE:600:U:U",
                   "RRA:AVERAGE:0.5:1:%d" % rows)
    rrdtool.update(str(path), *["%d:%d" % (start + 300 * i, i) for i in range(1, values + 1)])
    return str(path)


def dump_text(path):
    return subprocess.run(["rrdtool", "dump", str(path)], check=True, capture_output=True).stdout.decode()


def files_under(root):
    return sorted(os.path.relpath(os.path.join(top, name), str(root)) for top, _dirs, names in os.walk(str(root))
                  for name in names)


def returnable(result):
    """What Ansible needs of a module result: JSON, valid UTF-8."""
    return json.dumps(result, ensure_ascii=False).encode("utf-8")


# Metrics that would leave dest. Carbon-style joining splits ".." on its dots, so "x/../../P" gives a "/"
# element and an absolute path (the issue's /PWNED_rel.wsp); those are checked in test_whisper.py, without
# writing. Here the escapes stay in tmp_path should the check ever be missing.
@pytest.mark.parametrize("metric", ["{outside}/PWNED", "x/{outside}/PWNED", "a..b", ".a", "a.b.", "a.b\tc"])
def test_whisper_refuses_mapped_metrics_that_are_no_carbon_path(metric, tmp_path):
    src = tmp_path / "rrd"
    small_rrd(src / "good.rrd")
    small_rrd(src / "bad.rrd")
    mapping = tmp_path / "map.csv"
    mapping.write_text('good.rrd,ds0,nav.good\nbad.rrd,ds0,"%s"\n' % metric.format(outside=tmp_path / "outside"))
    dest = tmp_path / "a" / "b" / "c" / "wsp"
    args = params(rrd_to_whisper, src=str(src), dest=str(dest), state_dir=str(tmp_path / "s"),
                  mapping_file=str(mapping), workers=1)
    result = rrd_to_whisper.run(args, False)
    assert result["counts"]["failed"] == 1 and result["counts"]["created"] == 1
    assert result["failed_files"][0].startswith("bad.rrd: invalid metric name")
    assert [path for path in files_under(tmp_path) if path.endswith(".wsp")] == ["a/b/c/wsp/nav/good.wsp"]


def test_whisper_metric_prefix_must_be_a_carbon_path(tmp_path):
    small_rrd(tmp_path / "rrd" / "a.rrd")
    prefix = str(tmp_path / "outside" / "P")
    args = params(rrd_to_whisper, src=str(tmp_path / "rrd"), dest=str(tmp_path / "x" / "y" / "wsp"),
                  state_dir=str(tmp_path / "s"), metric_prefix=prefix)
    with pytest.raises(FerryError, match="invalid metric_prefix '%s': it holds '/'" % prefix):
        rrd_to_whisper.run(args, False)
    assert [path for path in files_under(tmp_path) if path.endswith(".wsp")] == []


def test_whisper_never_writes_through_a_symlink_leading_out_of_dest(tmp_path):
    import whisper

    src = tmp_path / "rrd"
    small_rrd(src / "nav" / "a.rrd")
    small_rrd(src / "other" / "b.rrd")
    small_rrd(src / "c.rrd")
    dest, outside = tmp_path / "wsp", tmp_path / "outside"
    (dest / "c").mkdir(parents=True)
    outside.mkdir()
    os.symlink(str(outside), str(dest / "nav"))  # a directory leading out
    whisper.create(str(outside / "victim.wsp"), [(300, 20)])
    before = (outside / "victim.wsp").read_bytes()
    os.symlink(str(outside / "victim.wsp"), str(dest / "c" / "ds0.wsp"))  # a whisper file that is a symlink out
    args = params(rrd_to_whisper, src=str(src), dest=str(dest), state_dir=str(tmp_path / "s"), workers=1,
                  max_failed_files=2)
    result = rrd_to_whisper.run(args, False)
    assert result["counts"]["failed"] == 2 and result["counts"]["created"] == 1
    assert sorted(text.split(" ")[0] for text in result["failed_files"]) == ["c.rrd:", "nav/a.rrd:"]
    assert all("leads outside %s" % dest in text for text in result["failed_files"])
    assert os.listdir(str(outside)) == ["victim.wsp"] and (outside / "victim.wsp").read_bytes() == before
    assert os.path.exists(str(dest / "other" / "b" / "ds0.wsp"))


MODES = [(420, 0o644), ("0644", 0o644), ("644", 0o644), ("0o640", 0o640), (0o600, 0o600), ("u=rw,g=r,o=r", 0o644),
         ("a=r,u+w", 0o644), ("u=rwx,g=rx,o=", 0o750), ("ug=rw,o=r,g-w", 0o644)]


def test_mode_is_read_as_ansible_reads_it():
    """An unquoted ``mode: 0644`` arrives as the integer 420: its value, not the octal digits of 420 (0o420)."""
    assert [staging.parse_mode(mode) for mode, _expected in MODES] == [expected for _mode, expected in MODES]
    for mode in ["rw-r", "u=rwX", "0899", "", -1, 0o10000, "10000", True, 6.44, None]:
        with pytest.raises(FerryError, match="invalid mode"):
            staging.parse_mode(mode)


def test_integer_mode_gives_0644_files_and_0755_directories(tmp_path):
    small_rrd(tmp_path / "rrd" / "d" / "a.rrd")
    args = params(rrd_to_whisper, src=str(tmp_path / "rrd"), dest=str(tmp_path / "wsp"), state_dir=str(tmp_path / "s"),
                  mode=420)
    assert rrd_to_whisper.run(args, False)["counts"]["created"] == 1
    assert os.stat(str(tmp_path / "wsp" / "d" / "a" / "ds0.wsp")).st_mode & 0o7777 == 0o644
    assert os.stat(str(tmp_path / "wsp" / "d" / "a")).st_mode & 0o7777 == 0o755
    installed = whisper_install.run(params(whisper_install, src=str(tmp_path / "wsp"),
                                           dest=str(tmp_path / "carbon"), mode=420), False)
    assert installed["counts"]["created"] == 1
    assert os.stat(str(tmp_path / "carbon" / "d" / "a" / "ds0.wsp")).st_mode & 0o7777 == 0o644
    assert os.stat(str(tmp_path / "carbon" / "d" / "a")).st_mode & 0o7777 == 0o755


BAD_DUMPS = {
    "pdp_per_row 0": (r"<pdp_per_row>1</pdp_per_row>", "<pdp_per_row>0</pdp_per_row>", "pdp_per_row 0"),
    "pdp_per_row -2": (r"<pdp_per_row>1</pdp_per_row>", "<pdp_per_row>-2</pdp_per_row>", "pdp_per_row -2"),
    "step 0": (r"<step>300</step>", "<step>0</step>", "step 0"),
    "row without values": (r"<row><v>[^<]*</v></row>", "<row></row>", "has 0 values for 1 data sources"),
    "lastupdate -5": (r"<lastupdate>\d+</lastupdate>", "<lastupdate>-5</lastupdate>", "last update -5 is outside"),
    "lastupdate in 33658": (r"<lastupdate>\d+</lastupdate>", "<lastupdate>999999999999</lastupdate>",
                            "last update 999999999999 is outside"),
}


def edited_dump(path, pattern, replacement, **options):
    """``path`` (``x.rrd.xml``): the dump of a ``small_rrd`` with the first match of ``pattern`` replaced."""
    import re

    made = small_rrd(str(path)[:-4], **options)
    text = re.sub(pattern, replacement, dump_text(made), count=1)
    os.unlink(made)
    path.write_text(text)


@pytest.mark.parametrize("case", sorted(BAD_DUMPS))
@pytest.mark.parametrize("module", [rrd_to_whisper, rrd_to_tsdb])
def test_a_flawed_dump_fails_that_file_only(module, case, tmp_path):
    """Before: ZeroDivisionError, IndexError or struct.error failed the task on every run, or (rrd_to_tsdb)
    impossible timestamps were accepted."""
    src = tmp_path / "rrd"
    directory = src / "Devices" / "dev1"
    small_rrd(directory / "good.rrd")
    # updated last at 3000 s: its first 11 rows begin before 1970, all unknown; it converts
    edited_dump(directory / "early.rrd.xml", r"<lastupdate>\d+</lastupdate>", "<lastupdate>3000</lastupdate>")
    edited_dump(directory / "bad.rrd.xml", *BAD_DUMPS[case][:2])
    args = params(module, src=str(src), dest=str(tmp_path / "out"), state_dir=str(tmp_path / "s"), tenant_id="t1",
                  workers=1, max_failed_files=1)
    result = module.run(args, False)
    assert result["counts"]["failed"] == 1 and result["counts"]["points"] == 14  # good and early
    assert result["failed_files"][0].startswith(str(directory / "bad.rrd.xml"))
    assert BAD_DUMPS[case][2] in result["failed_files"][0]
    again = module.run(args, False)
    assert again["decision"] == "skip"


def test_known_values_before_1970_fail_that_file(tmp_path):
    src = tmp_path / "rrd"
    small_rrd(src / "good.rrd")
    # 5 rows, all known, the last ending at 900 s: the first three begin at -600, -300 and 0 s
    edited_dump(src / "bad.rrd.xml", r"<lastupdate>\d+</lastupdate>", "<lastupdate>900</lastupdate>", rows=5)
    args = params(rrd_to_whisper, src=str(src), dest=str(tmp_path / "wsp"), state_dir=str(tmp_path / "s"),
                  max_failed_files=1)
    result = rrd_to_whisper.run(args, False)
    assert result["counts"]["failed"] == 1 and result["counts"]["created"] == 1
    assert "archive 0 holds values of ds0 for intervals beginning before 1970-01-01T00:00:01Z" in \
        result["failed_files"][0]


def rrd_at(directory, name, tmp_path, dump=False):
    """``small_rrd`` (or its dump) at ``directory/name``, bytes that need not be UTF-8 (the rrdtool binding
    cannot take such a path: the file is made elsewhere and moved)."""
    made = small_rrd(tmp_path / "made.rrd")
    if dump:
        subprocess.run(["rrdtool", "dump", made, made + ".xml"], check=True)
        os.unlink(made)
        made += ".xml"
    os.makedirs(directory, exist_ok=True)
    os.rename(made, os.path.join(directory, name))


def test_whisper_file_names_that_are_not_utf8_fail_alone_and_readably(tmp_path):
    src = tmp_path / "rrd"
    small_rrd(src / "good.rrd")
    root = os.fsencode(str(src))
    rrd_at(root, b"\xff.rrd", tmp_path)  # the binding cannot open it
    rrd_at(root, b"caf\xe9.rrd.xml", tmp_path, dump=True)  # readable, but its metric is no text
    rrd_at(root, b"new\nline.rrd", tmp_path)
    rrd_at(os.path.join(root, b"dir\xfe"), b"in.rrd", tmp_path)
    args = params(rrd_to_whisper, src=str(src), dest=str(tmp_path / "wsp"), state_dir=str(tmp_path / "s"),
                  shard_count=1, workers=1, max_failed_files=10)
    result = rrd_to_whisper.run(args, False)
    returnable(result)
    assert result["counts"]["files"] == 5 and result["counts"]["failed"] == 4 and result["counts"]["created"] == 1
    reasons = "\n".join(result["failed_files"])
    assert "\\xff.rrd: the rrdtool binding cannot open a file whose name is not UTF-8" in reasons
    assert "caf\\xe9.rrd.xml: invalid metric name" in reasons and "not valid UTF-8" in reasons
    assert "new\\x0aline.rrd: invalid metric name" in reasons and "control character" in reasons
    assert "dir\\xfe/in.rrd" in reasons
    with open(result["report"], "rb") as handle:
        assert all(json.loads(line.decode("utf-8"))["file"] for line in handle)
    assert rrd_to_whisper.run(args, False)["decision"] == "skip"


def test_tsdb_file_names_that_are_not_utf8_convert_escaped_or_fail_alone(tmp_path):
    src = tmp_path / "perf"
    device = os.path.join(os.fsencode(str(src)), b"Devices", b"dev\xfe1")
    rrd_at(device, b"good.rrd.xml", tmp_path, dump=True)  # the binding could not open it here either
    rrd_at(device, b"\xff.rrd", tmp_path)  # the binding cannot open it
    rrd_at(device, b"caf\xe9.rrd.xml", tmp_path, dump=True)  # converted, its name escaped like Zenoss does
    args = params(rrd_to_tsdb, src=str(src), dest=str(tmp_path / "p"), state_dir=str(tmp_path / "s"),
                  tenant_id="t1", shard_count=2, workers=1, max_failed_files=1)
    results = [rrd_to_tsdb.run(dict(args, shard_index=index, step="s%d" % index), False) for index in (0, 1)]
    for result in results:
        returnable(result)
    assert sum(r["counts"]["files"] for r in results) == 3, results
    assert sum(r["counts"]["failed"] for r in results) == 1, [r["failed_files"] for r in results]
    failed = [text for r in results for text in r["failed_files"]]
    assert "dev\\xfe1/\\xff.rrd: the rrdtool binding cannot open" in failed[0]
    lines, _files = batch_points(tmp_path / "p")
    assert sorted(set(metric for metric, _t, _s, _v in lines)) == ["dev-1/caf-", "dev-1/good"]


def test_a_metric_element_too_long_for_the_file_system_fails_only_its_file(tmp_path):
    """Before, the rename failing in the group's commit failed all 16 files of the group."""
    src = tmp_path / "rrd"
    for index in range(16):
        small_rrd(src / ("f%02d.rrd" % index))
    mapping = tmp_path / "map.csv"
    mapping.write_text("f07.rrd,ds0,nav.%s.x\n" % ("L" * 300))
    args = params(rrd_to_whisper, src=str(src), dest=str(tmp_path / "wsp"), state_dir=str(tmp_path / "s"),
                  mapping_file=str(mapping), workers=1, max_failed_files=1)
    result = rrd_to_whisper.run(args, False)
    assert result["counts"]["failed"] == 1 and result["counts"]["created"] == 15
    assert result["failed_files"][0].startswith("f07.rrd: cannot place its whisper file")
    assert "ENAMETOOLONG" in result["failed_files"][0]
    assert not os.path.exists(str(tmp_path / "wsp" / ".ferry-staging"))


def test_migration_status_reports_an_unreadable_record_and_the_rest(tmp_path):
    journal = Journal(str(tmp_path / "s"))
    step = journal.step("good")
    with step.begin("x"):
        step.complete(counts={"files": 3})
    (tmp_path / "s" / "steps" / "torn.json").write_text('{"name": "torn", "status": "compl')
    (tmp_path / "s" / "steps" / "list.json").write_text("[1, 2]")
    (tmp_path / "s" / "steps" / "odd.json").write_text('{"name": "odd", "status": "failed", "started_epoch": 5, '
                                                       '"ended_epoch": "soon", "progress": 3}')
    result = migration_status.collect(str(tmp_path / "s"), [])
    returnable(result)
    rows = dict((row["name"], row) for row in result["steps"])
    assert rows["good"]["status"] == "complete" and rows["good"]["counts"] == {"files": 3}
    assert [rows[name]["status"] for name in ("list", "odd", "torn")] == ["unreadable"] * 3
    assert "torn.json is not valid JSON" in rows["torn"]["error"]
    assert "not a step record" in rows["list"]["error"]
    assert result["summary"] == {"complete": 1, "unreadable": 3} and not result["complete"]
    assert "unreadable" in result["table"]
    assert len(migration_status.unreadable_warnings(result)) == 3


def a_little_space(monkeypatch, min_free, spare):
    """Make the converters see ``min_free + spare`` bytes free."""
    monkeypatch.setattr(staging, "free_bytes", lambda _path: min_free + spare)


@pytest.mark.parametrize("module", [rrd_to_whisper, rrd_to_tsdb])
def test_min_free_mb_stops_the_run_before_the_disk_fills(module, nav, zenoss, tmp_path, monkeypatch):
    tree = zenoss if module is rrd_to_tsdb else nav
    dest = tmp_path / "out"
    args = params(module, src=tree["root"], dest=str(dest), state_dir=str(tmp_path / "s"), workers=1,
                  files_per_batch=4, min_free_mb=100)
    a_little_space(monkeypatch, 100 << 20, 4096)  # the start passes, the first file does not fit
    with pytest.raises(FerryError, match=r"not enough free space in %s: 100\.0 MiB free, 100\.0 MiB must stay free "
                                         r"\(min_free_mb\), and .* needs \d" % dest):
        module.run(args, False)
    assert files_under(dest) == []  # nothing half-written: no staged whisper file, no partial batch
    assert Journal(str(tmp_path / "s")).step(module.__name__.split(".")[-1]).record()["status"] == "failed"
    a_little_space(monkeypatch, 100 << 20, -1)
    with pytest.raises(FerryError, match=r"not enough free space in %s: 100\.0 MiB free, 100\.0 MiB must stay free "
                                         r"\(min_free_mb\)$" % dest):
        module.run(args, False)
    monkeypatch.undo()
    resumed = module.run(args, False)
    assert resumed["decision"] == "resume" and "msg" not in resumed
    assert resumed["counts"]["files"] == len(tree["files"])


@pytest.mark.parametrize("module, option, value", [
    (rrd_to_whisper, "workers", -1), (rrd_to_whisper, "workers", 1025), (rrd_to_whisper, "shard_count", 0),
    (rrd_to_whisper, "max_failed_files", -1), (rrd_to_whisper, "min_free_mb", -1), (rrd_to_tsdb, "workers", -2),
    (rrd_to_tsdb, "files_per_batch", 0), (rrd_to_tsdb, "files_per_batch", -5), (rrd_to_tsdb, "min_free_mb", -1),
    (whisper_install, "max_failed_files", -1),
])
def test_numeric_options_out_of_range_are_refused_naming_the_range(module, option, value, nav, tmp_path):
    args = params(module, src=nav["root"], dest=str(tmp_path / "out"), tenant_id="t",
                  **{state_option(module): str(tmp_path / "s")})
    with pytest.raises(FerryError, match=r"%s=%s is out of range: it must be (from|\d)" % (option, value)):
        module.run(dict(args, **{option: value}), False)
    assert not (tmp_path / "out").exists() and not (tmp_path / "s").exists()


@pytest.mark.parametrize("module", [rrd_to_whisper, rrd_to_tsdb, whisper_install])
@pytest.mark.parametrize("option", ["src", "dest", "state_dir"])
def test_empty_paths_are_refused(module, option, nav, tmp_path, monkeypatch):
    monkeypatch.chdir(str(tmp_path))
    option = state_option(module) if option == "state_dir" else option
    args = params(module, src=nav["root"], dest=str(tmp_path / "out"), tenant_id="t",
                  **{state_option(module): str(tmp_path / "s")})
    with pytest.raises(FerryError, match="%s is an empty string" % option):
        module.run(dict(args, **{option: ""}), False)
    assert os.listdir(str(tmp_path)) == []
