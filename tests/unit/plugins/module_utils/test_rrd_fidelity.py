"""RRD -> whisper / OpenTSDB points against rrdtool itself, on generated files covering every hard case.

The reference is tests/support/rrd_oracle.py (rrdtool fetch of each archive, nothing of the engine) and the
whisper files are read raw here, so neither side can hide a bug of the other.
"""

import math
import os
import re
import shutil
import struct
import subprocess

import pytest
import whisper

from ansible_collections.ferry.migrate.plugins.module_utils.rrd import convert as rrd_convert
from ansible_collections.ferry.migrate.plugins.module_utils.rrd import jobs as rrd_jobs
from ansible_collections.ferry.migrate.plugins.module_utils.rrd import naming as rrd_naming
from ansible_collections.ferry.migrate.plugins.module_utils.rrd import whisper as ferry_whisper
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.rrd.rrdfile import COUNTER_TYPES, RrdFile
from tests.support import rrd_oracle
from tools.gen_rrd_tree import build_tree, dump_xml

CFS = ("AVERAGE", "MAX", "MIN")


# -- helpers -------------------------------------------------------------------------------------------------
def wsp_points(path, spp):
    """{timestamp: value} of one archive of a whisper file, read raw; only slots where whisper would find them."""
    info = whisper.info(path)
    archive = next(a for a in info["archives"] if a["secondsPerPoint"] == spp)
    with open(path, "rb") as handle:
        handle.seek(archive["offset"])
        data = handle.read(archive["size"])
    records = [struct.unpack("!Ld", data[i:i + 12]) for i in range(0, len(data), 12)]
    base = records[0][0]
    points = {}
    for index, (stamp, value) in enumerate(records):
        if stamp and ((stamp - base) // spp) % archive["points"] == index:
            assert stamp not in points, "timestamp %d twice in %s" % (stamp, path)
            points[stamp] = value
    return points


def oracle_rows(path, cf, step, rows, column):
    """{interval start: value} of the known rows of an archive, from rrdtool fetch."""
    return dict((end - step, values[column]) for end, values in rrd_oracle.fetch_archive(path, cf, step, rows)
                if values[column] is not None)


def kept_archives(path, cf):
    """The archives of a cf the converter mirrors: one per resolution, the longest of equals."""
    best = {}
    for rra in rrd_oracle.archives(path):
        if rra["cf"] == cf and rra["rows"] > best.get(rra["step"], {"rows": -1})["rows"]:
            best[rra["step"]] = rra
    return [best[step] for step in sorted(best)]


def close(a, b, rel=1e-9, magnitude=0.0):
    """Equal to ``rel`` relative, allowing the rounding of a double of size ``magnitude`` (a counter's level)."""
    return abs(a - b) <= rel * max(abs(a), abs(b)) + 4 * math.ulp(magnitude)


def metric_file(dest, relative, ds, cf):
    names = rrd_naming.NavNames("")
    metric = names.metric(relative, ds) + ("" if cf == "AVERAGE" else "_" + cf.lower())
    return ferry_whisper.whisper_path(dest, metric)


def convert(src, dest, **options):
    job = rrd_jobs.WhisperJob(src, dest, rrd_naming.NavNames(""), consolidations=options.pop("cfs", CFS),
                              rules=options.pop("rules", None))
    return rrd_convert.convert_whisper_tree(job, state_path=os.path.join(str(dest) + ".state"), **options)


# -- fixtures -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fidelity(tmp_path_factory):
    root = tmp_path_factory.mktemp("fidelity")
    info = build_tree(str(root / "rrd"), "fidelity", workers=2)
    dest = root / "whisper"
    result = convert(str(root / "rrd"), str(dest), workers=2)
    return {"info": info, "src": str(root / "rrd"), "dest": str(dest), "result": result}


def good_files(fidelity):
    return [(entry["path"], entry) for entry in fidelity["info"]["files"]]


# -- whisper ---------------------------------------------------------------------------------------------------
def test_every_good_file_converts_and_every_bad_one_fails_naming_it(fidelity):
    result = fidelity["result"]
    corrupt = fidelity["info"]["corrupt"]
    assert result["counts"]["failed"] == len(corrupt)
    assert result["counts"]["files"] == len(fidelity["info"]["files"]) + len(corrupt)
    for name in corrupt:
        assert any(name in message for message in result["failed_files"]), name
    assert all("not a readable RRD file" in m or "not a usable RRD" in m for m in result["failed_files"])


def test_mirrored_archives_equal_rrdtool_fetch_at_interval_starts(fidelity):
    """Every value of every archive, every cf: gauges exactly, counters by their increments."""
    checked = 0
    for relative, entry in good_files(fidelity):
        path = os.path.join(fidelity["src"], relative)
        for column, ds in enumerate(entry["ds"]):
            for cf in CFS:
                counter = ds["type"] in COUNTER_TYPES and cf == "AVERAGE"
                wsp = metric_file(fidelity["dest"], relative, ds["name"], cf)
                archives = kept_archives(path, cf)
                assert os.path.exists(wsp) == bool(archives), wsp
                layout = dict((a["secondsPerPoint"], a["points"]) for a in whisper.info(wsp)["archives"]) if archives else {}
                for rra in archives:
                    if rra["step"] not in layout:
                        continue  # a resolution whisper cannot take: adjusted, checked below
                    expected = oracle_rows(path, cf, rra["step"], rra["rows"], column)
                    got = wsp_points(wsp, rra["step"])
                    assert set(got) == set(expected), (relative, ds["name"], cf, rra["step"])
                    if counter:
                        assert_increments(got, expected, rra["step"])
                    else:
                        assert got == expected, (relative, ds["name"], cf, rra["step"])
                    checked += 1
    assert checked > 150


def assert_increments(counter, rates, step):
    """Each interval adds rate x step, and unknown intervals nothing: across a gap the counter goes on from
    where it was (no fake reset), so any two consecutive known points differ by the later one's rate x step."""
    stamps = sorted(counter)
    gaps = 0
    for before, after in zip(stamps, stamps[1:]):
        increment = counter[after] - counter[before]
        assert close(increment, rates[after] * step, magnitude=counter[after]), (after, increment, rates[after])
        gaps += after - before > step
    return gaps


@pytest.mark.parametrize("name", ["derive_resets.rrd", "counter32_wraps.rrd", "counter64.rrd", "absolute.rrd",
                                  "derive_min0_resets.rrd", "multi_ds.rrd"])
def test_rebuilt_counters_follow_the_rates_in_every_archive(fidelity, name):
    path = os.path.join(fidelity["src"], name)
    rrd = RrdFile.open(path)
    for source in rrd.sources:
        if source.type not in COUNTER_TYPES:
            continue
        wsp = metric_file(fidelity["dest"], name, source.name, "AVERAGE")
        for rra in kept_archives(path, "AVERAGE"):
            rates = oracle_rows(path, "AVERAGE", rra["step"], rra["rows"], source.index)
            got = wsp_points(wsp, rra["step"])
            gaps = assert_increments(got, rates, rra["step"])
            if name == "derive_min0_resets.rrd" and rra["step"] == 300:
                assert gaps  # the resets left unknown rows, and the counter went on across them
            if name == "derive_resets.rrd" and rra["step"] == 300:
                assert any(r < 0 for r in rates.values())  # the resets are really in the data


def test_wrapping_counter_never_goes_backwards(fidelity):
    wsp = metric_file(fidelity["dest"], "counter32_wraps.rrd", "value", "AVERAGE")
    for spp in (300, 1800, 7200, 86400):
        values = [v for _t, v in sorted(wsp_points(wsp, spp).items())]
        assert values == sorted(values)


def test_archive_levels_agree_where_they_overlap(fidelity):
    """Coarse archives start at the level of the time line, so graphs do not jump between resolutions."""
    wsp = metric_file(fidelity["dest"], "absolute.rrd", "value", "AVERAGE")
    fine, coarse = wsp_points(wsp, 300), wsp_points(wsp, 1800)
    shared = [t for t in coarse if t + 1800 - 300 in fine]
    assert shared
    for stamp in shared[:50]:
        assert close(coarse[stamp], fine[stamp + 1500], rel=1e-6)


def test_non_dividing_resolutions_are_adjusted_with_warnings(fidelity):
    wsp = metric_file(fidelity["dest"], "non_dividing.rrd", "value", "AVERAGE")
    layout = [(a["secondsPerPoint"], a["points"]) for a in whisper.info(wsp)["archives"]]
    whisper.validateArchiveList(layout)
    steps = [spp for spp, _points in layout]
    assert steps[:2] == [300, 900]
    assert all(b % a == 0 for a, b in zip(steps, steps[1:]))
    assert any("non_dividing" in w and "does not divide" in w for w in fidelity["result"]["file_warnings"])
    # an adjusted archive takes, for each slot, the row of the source archive holding the slot's start
    path = os.path.join(fidelity["src"], "non_dividing.rrd")
    rows = next(a["rows"] for a in kept_archives(path, "AVERAGE") if a["step"] == 1200)
    source = oracle_rows(path, "AVERAGE", 1200, rows, 0)
    got = wsp_points(wsp, 1800)
    matched = 0
    for slot, value in got.items():
        holder = slot - slot % 1200
        if holder in source:
            assert value == source[holder]
            matched += 1
    assert matched > 10


def test_equal_resolutions_keep_the_longest_archive(fidelity):
    wsp = metric_file(fidelity["dest"], "equal_resolutions.rrd", "value", "AVERAGE")
    assert dict((a["secondsPerPoint"], a["points"]) for a in whisper.info(wsp)["archives"])[300] == 1000


def test_whisper_accepts_every_layout(fidelity):
    for dirpath, _dirs, files in os.walk(fidelity["dest"]):
        for name in files:
            info = whisper.info(os.path.join(dirpath, name))
            whisper.validateArchiveList([(a["secondsPerPoint"], a["points"]) for a in info["archives"]])


def test_stopped_files_keep_their_fine_data(fidelity):
    """Windows come from the RRD's last update, not from now (NAV's and graphite's tools lose this)."""
    wsp = metric_file(fidelity["dest"], "stopped_long_ago.rrd", "value", "AVERAGE")
    assert len(wsp_points(wsp, 300)) > 500


def test_xml_dumps_convert_like_the_binary_files(fidelity, tmp_path):
    src = tmp_path / "xml"
    src.mkdir()
    names = ["gauge.rrd", "counter32_wraps.rrd", "many_archives.rrd", "multi_ds.rrd"]
    for number, name in enumerate(names):
        xml = dump_xml(os.path.join(fidelity["src"], name), str(src / (name + ".xml")))
        if number % 2:  # shipped compressed
            subprocess.run(["gzip", xml], check=True)
    result = convert(str(src), str(tmp_path / "out"))
    assert result["counts"]["failed"] == 0
    for name in names:
        for ds in RrdFile.open(os.path.join(fidelity["src"], name)).sources:
            binary = metric_file(fidelity["dest"], name, ds.name, "AVERAGE")
            dumped = metric_file(str(tmp_path / "out"), name, ds.name, "AVERAGE")
            for archive in whisper.info(binary)["archives"]:
                spp = archive["secondsPerPoint"]
                a, b = wsp_points(binary, spp), wsp_points(dumped, spp)
                assert set(a) == set(b)
                # rrdtool dump prints 11 significant digits; a rebuilt counter adds them up
                assert all(close(a[t], b[t], rel=1e-9, magnitude=1e-6 * abs(a[t])) for t in a), (name, spp)


@pytest.mark.parametrize("pattern, replacement, reason", [
    (r"(<row>(<v>[^<]*</v>)+)</row>", r"\1<v>1</v></row>", r"archive 0 row 0 has 2 values for 1 data sources"),
    (r"<database>.*?</database>", "<database></database>", r"archive 0 has pdp_per_row 1 and 0 rows"),
])
def test_a_dump_whose_rows_do_not_fit_its_header_is_refused(fidelity, tmp_path, pattern, replacement, reason):
    """Before, a row with a value too many was read silently, and an archive without rows failed later."""
    xml = dump_xml(os.path.join(fidelity["src"], "gauge.rrd"), str(tmp_path / "gauge.rrd.xml"))
    with open(xml) as handle:
        text = re.sub(pattern, replacement, handle.read(), count=1, flags=re.S)
    with open(xml, "w") as handle:
        handle.write(text)
    with pytest.raises(FerryError, match=re.escape(xml) + ".*" + reason):
        RrdFile.open(xml)


def test_check_times_names_the_file_and_the_bound(fidelity):
    rrd = RrdFile.open(os.path.join(fidelity["src"], "gauge.rrd"))
    rrd.check_times(1, ferry_whisper.LAST_TIME, "whisper")
    with pytest.raises(FerryError, match="gauge.rrd: last update %d is outside the times OpenTSDB can store "
                                         r"\(1970-01-01T00:00:01Z to 2001-09-09T01:46:40Z\)" % rrd.last_update):
        rrd.check_times(1, 1000000000, "OpenTSDB")


# -- OpenTSDB time lines ------------------------------------------------------------------------------------------
def timeline(path, relative="Devices/d/x.rrd"):
    job = rrd_jobs.TsdbJob(os.path.dirname(path), rrd_naming.ZenossNames("t"))
    rrd = RrdFile.open(path)
    from ansible_collections.ferry.migrate.plugins.module_utils.rrd.rrdfile import SourceSeries  # noqa: E402
    return rrd, [SourceSeries(rrd, s, "AVERAGE").timeline() for s in rrd.sources], job


def test_time_lines_take_the_finest_covering_archive_once_per_timestamp(fidelity):
    for relative, entry in good_files(fidelity):
        path = os.path.join(fidelity["src"], relative)
        rrd, lines, _job = timeline(path)
        for source, (times, values) in zip(rrd.sources, lines):
            assert times == sorted(set(times)), relative  # each timestamp once, in order
            if source.type in COUNTER_TYPES:
                continue
            for stamp, value in list(zip(times, values))[::37]:
                assert rrd_oracle.covering_value(path, "AVERAGE", stamp)[source.index] == value, (relative, stamp)


def test_time_line_counters_add_rate_times_the_step_of_the_archive_used(fidelity):
    path = os.path.join(fidelity["src"], "absolute.rrd")
    rrd, [(times, values)], _job = timeline(path)
    steps = sorted(a.step for a in rrd.archives_of("AVERAGE"))
    checked = 0
    for (t0, v0), (t1, v1) in zip(zip(times, values), zip(times[1:], values[1:])):
        step = t1 - t0
        if step in steps:
            rate = rrd_oracle.covering_value(path, "AVERAGE", t1)[0]
            if rate is not None and rrd_oracle.covering_value(path, "AVERAGE", t1, step) is not None:
                assert close(v1 - v0, rate * step, magnitude=v1)
                checked += 1
    assert checked > 500


# -- backfill, schemas, kill and resume ---------------------------------------------------------------------------
def test_backfill_fills_gaps_and_never_touches_newer_points(fidelity, tmp_path):
    src = os.path.join(fidelity["src"], "gauge.rrd")
    work = tmp_path / "src"
    work.mkdir()
    shutil.copy(src, str(work / "gauge.rrd"))
    dest = tmp_path / "whisper"
    wsp = metric_file(str(dest), "gauge.rrd", "value", "AVERAGE")
    os.makedirs(os.path.dirname(wsp))
    end = rrd_oracle.last_update(src)
    # Carbon made this file when NAV 4 started: its own schema, a day of newer data, some of it overlapping
    whisper.create(wsp, [(60, 1440), (300, 12000)], xFilesFactor=0.5, aggregationMethod="average")
    newer = [(end - 3600 + 60 * i, 1000.0 + i) for i in range(120)]
    whisper.update_many(wsp, newer, now=end + 3600)
    before = wsp_points(wsp, 300)
    result = convert(str(work), str(dest), cfs=("AVERAGE",))
    assert result["counts"]["backfilled"] == 1
    after = wsp_points(wsp, 300)
    for stamp, value in before.items():
        assert after[stamp] == value  # newer data untouched
    rows = oracle_rows(src, "AVERAGE", 300, 600, 0)
    filled = [t for t in rows if t not in before]
    assert filled and all(after[t] == rows[t] for t in filled)
    again = convert(str(work), str(dest), cfs=("AVERAGE",))
    assert again["counts"]["up_to_date"] == 1 and again["counts"]["points"] == 0


def test_schema_adds_a_finer_archive_without_counter_spikes(fidelity, tmp_path):
    schemas = tmp_path / "storage-schemas.conf"
    schemas.write_text("[counters]\npattern = ^counter32\nretentions = 60s:1d,5m:30d\n")
    aggregation = tmp_path / "storage-aggregation.conf"
    aggregation.write_text("[count]\npattern = counter32\nxFilesFactor = 0\naggregationMethod = max\n")
    work = tmp_path / "src"
    work.mkdir()
    shutil.copy(os.path.join(fidelity["src"], "counter32_wraps.rrd"), str(work / "counter32_wraps.rrd"))
    rules = ferry_whisper.Rules(str(schemas), str(aggregation))
    result = convert(str(work), str(tmp_path / "out"), cfs=("AVERAGE",), rules=rules)
    assert result["counts"]["created"] == 1
    wsp = metric_file(str(tmp_path / "out"), "counter32_wraps.rrd", "value", "AVERAGE")
    info = whisper.info(wsp)
    assert info["aggregationMethod"] == "max" and info["xFilesFactor"] == 0
    assert info["archives"][0]["secondsPerPoint"] == 60 and info["archives"][0]["points"] == 1440
    fine, coarse = wsp_points(wsp, 60), wsp_points(wsp, 300)
    rates = oracle_rows(os.path.join(fidelity["src"], "counter32_wraps.rrd"), "AVERAGE", 300, 600, 0)
    stamps = sorted(fine)
    for before, after in zip(stamps, stamps[1:]):
        if after - before == 60:
            row = after - after % 300
            assert close(fine[after] - fine[before], rates[row] * 60, magnitude=fine[after])  # the rate, no spike
    for stamp in stamps:
        if stamp % 300 == 240:  # the last minute of a 5-minute row ends where the row does
            assert close(fine[stamp], coarse[stamp - 240], magnitude=fine[stamp])


def test_mapping_names_and_scales_sensor_values(fidelity, tmp_path):
    work = tmp_path / "src"
    work.mkdir()
    shutil.copy(os.path.join(fidelity["src"], "gauge.rrd"), str(work / "gauge.rrd"))
    (tmp_path / "map.csv").write_text("rrd_path,ds,metric,scale\n%s,value,nav.devices.sw1.sensor.temp,0.1\n"
                                      % (work / "gauge.rrd"))
    names = rrd_naming.NavNames("", rrd_naming.load_mapping(str(tmp_path / "map.csv"), str(work)))
    job = rrd_jobs.WhisperJob(str(work), str(tmp_path / "out"), names)
    result = rrd_convert.convert_whisper_tree(job, state_path=str(tmp_path / "state"))
    assert result["counts"]["created"] == 1
    wsp = ferry_whisper.whisper_path(str(tmp_path / "out"), "nav.devices.sw1.sensor.temp")
    rows = oracle_rows(str(work / "gauge.rrd"), "AVERAGE", 300, 600, 0)
    assert wsp_points(wsp, 300) == dict((t, v * 0.1) for t, v in rows.items())


def test_shards_split_a_tree_without_overlap(tmp_path):
    info = build_tree(str(tmp_path / "rrd"), "nav", files=14, days=3, workers=2)
    paths = {}
    for index in range(3):
        result = convert(str(tmp_path / "rrd"), str(tmp_path / "out"), cfs=("AVERAGE",), shard=(index, 3))
        assert result["counts"]["created"] > 0
        paths[index] = result["counts"]["files"]
    assert sum(paths.values()) == len(info["files"])


def test_killed_run_resumes_to_the_same_output(tmp_path):
    build_tree(str(tmp_path / "rrd"), "nav", files=40, days=20, workers=2)
    clean = tmp_path / "clean"
    convert(str(tmp_path / "rrd"), str(clean), cfs=("AVERAGE",))
    killed = tmp_path / "killed"
    # 0.1 s after each group of 2 (20 groups): the run outlasts the 10 ms polls below however fast the host is
    script = ("import sys, time; sys.path[:0] = %r; import conftest\n"
              "from tests.unit.plugins.module_utils.test_rrd_fidelity import convert\n"
              "convert(%r, %r, cfs=('AVERAGE',), files_per_group=2, stop_check=lambda done: time.sleep(0.1))\n"
              % ([os.getcwd()], str(tmp_path / "rrd"), str(killed)))
    proc = subprocess.Popen([os.sys.executable, "-c", script], cwd=os.getcwd())
    done_log = str(killed) + ".state.done"
    wait_for(lambda: os.path.exists(done_log) and os.path.getsize(done_log) > 200, proc)
    proc.kill()
    proc.wait()
    resumed = convert(str(tmp_path / "rrd"), str(killed), cfs=("AVERAGE",), resume=True)
    assert resumed["counts"]["already_done"] > 0
    assert snapshot(clean) == snapshot(killed)


def wait_for(condition, proc, timeout=60.0):
    import time  # noqa: E402
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "the conversion finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)


def snapshot(root):
    files = {}
    for dirpath, dirs, names in os.walk(str(root)):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            with open(os.path.join(dirpath, name), "rb") as handle:
                files[os.path.relpath(os.path.join(dirpath, name), str(root))] = handle.read()
    return files
