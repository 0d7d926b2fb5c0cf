"""Tests for tools/gen_rrd_tree.py: each style has its layout, every fidelity variant has its quirk."""

import json
import os
import re
import subprocess
import sys
import uuid

import pytest
import rrdtool

from tests.support.rrd_oracle import archives, covering_value, fetch_archive, last_update
from tools.gen_rrd_tree import (
    CORRUPT_VARIANTS, DEFAULT_END, GOOD_VARIANTS, NAV_ARCHIVES, VARIANTS, build_tree, dump_xml,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DAY = 86400
NAV_ESCAPED = set(". (),")


def rrd_path(info, name):
    return os.path.join(info["root"], name)


def by_kind(info):
    return {f["kind"]: f for f in info["files"]}


def file_data(info):
    """Every archive of every file as the oracle reads it: {path: [(cf, step, rows), ...]}."""
    data = {}
    for entry in info["files"]:
        path = rrd_path(info, entry["path"])
        data[entry["path"]] = [(rra["cf"], rra["step"], fetch_archive(path, rra["cf"], rra["step"], rra["rows"]))
                               for rra in archives(path)]
    return data


def values(rows, ds=0):
    return [row[ds] for ts, row in rows]


def known(rows, ds=0):
    return [value for value in values(rows, ds) if value is not None]


def archive_rows(info, kind, cf="AVERAGE", pdp=1):
    path = rrd_path(info, by_kind(info)[kind]["path"])
    rra = next(rra for rra in archives(path) if rra["cf"] == cf and rra["pdp_per_row"] == pdp)
    return fetch_archive(path, cf, rra["step"], rra["rows"])


def unknown_runs(rows):
    """Lengths of the runs of unknown rows between known ones."""
    runs, current, seen_known = [], 0, False
    for value in values(rows):
        if value is None:
            current += 1
            continue
        if seen_known and current:
            runs.append(current)
        seen_known, current = True, 0
    return runs


@pytest.fixture(scope="module", name="fidelity")
def fixture_fidelity(tmp_path_factory):
    return build_tree(str(tmp_path_factory.mktemp("fidelity")), "fidelity", workers=2)


@pytest.fixture(scope="module", name="nav")
def fixture_nav(tmp_path_factory):
    return build_tree(str(tmp_path_factory.mktemp("nav")), "nav", files=10, days=3, seed=3)


@pytest.fixture(scope="module", name="zenoss")
def fixture_zenoss(tmp_path_factory):
    return build_tree(str(tmp_path_factory.mktemp("zenoss")), "zenoss", files=12, days=3, seed=3)


# --- fidelity ----------------------------------------------------------------------------------------------


def test_every_variant_present_and_flat(fidelity):
    assert [f["kind"] for f in fidelity["files"]] == list(GOOD_VARIANTS)
    assert [f["path"] for f in fidelity["files"]] == [f"{name}.rrd" for name in GOOD_VARIANTS]
    assert fidelity["corrupt"] == [f"{name}.rrd" for name in CORRUPT_VARIANTS]
    assert sorted(os.listdir(fidelity["root"])) == sorted(f"{name}.rrd" for name in VARIANTS)


def test_good_files_readable_as_described(fidelity):
    for entry in fidelity["files"]:
        path = rrd_path(fidelity, entry["path"])
        info = rrdtool.info(path)
        assert info["step"] == entry["step"]
        assert info["last_update"] == entry["last_update"]
        assert [(rra["cf"], rra["pdp_per_row"], rra["rows"]) for rra in archives(path)] == \
            [(rra["cf"], rra["pdp_per_row"], rra["rows"]) for rra in entry["rras"]]
        assert [(info[f"ds[{ds['name']}].type"], info[f"ds[{ds['name']}].min"]) for ds in entry["ds"]] == \
            [(ds["type"], None if ds["min"] == "U" else float(ds["min"])) for ds in entry["ds"]]
        for rra in archives(path):
            rows = fetch_archive(path, rra["cf"], rra["step"], rra["rows"])
            assert len(rows) == rra["rows"]
            assert known(rows), f"{entry['path']}: {rra} holds no data"


@pytest.mark.parametrize("name", CORRUPT_VARIANTS)
def test_corrupt_files_fail(fidelity, name):
    path = rrd_path(fidelity, f"{name}.rrd")
    with pytest.raises(rrdtool.OperationalError):
        rrdtool.info(path)
    with pytest.raises(rrdtool.OperationalError):
        rrdtool.fetch(path, "AVERAGE", "-s", str(DEFAULT_END - DAY), "-e", str(DEFAULT_END))


def test_counter32_wraps(fidelity):
    entry = by_kind(fidelity)["counter32_wraps"]
    path = rrd_path(fidelity, entry["path"])
    rates = known(archive_rows(fidelity, "counter32_wraps", pdp=24))  # 2-hour rows covering every poll
    growth = sum(rates) * 24 * 300
    last_ds = int(rrdtool.info(path)["ds[value].last_ds"])
    assert last_ds < 2 ** 32 < growth / 3  # the counter passed 2**32 several times and is read below it
    assert all(0 < rate < 3 * growth / (fidelity["days"] * DAY) for rate in rates)  # each wrap read as a wrap
    assert len(rates) == fidelity["days"] * 12


def test_counter64_wraps_past_2_64(fidelity):
    entry = by_kind(fidelity)["counter64"]
    rates = known(archive_rows(fidelity, "counter64", pdp=24))
    growth = sum(rates) * 24 * 300
    last_ds = int(rrdtool.info(rrd_path(fidelity, entry["path"]))["ds[value].last_ds"])
    assert last_ds < growth < 2 ** 63  # below what it grew by: it went past 2**64
    assert all(5e8 < rate < 5e9 for rate in rates)  # about 10 Gbit/s in octets, no 2**64-sized spike
    assert len(rates) == fidelity["days"] * 12


def test_derive_resets(fidelity):
    kinds = by_kind(fidelity)
    resets = kinds["derive_resets"]["resets"]
    assert len(resets) == 2 and resets == kinds["derive_min0_resets"]["resets"]
    signed = rrd_path(fidelity, "derive_resets.rrd")
    assert all(covering_value(signed, "AVERAGE", ts)[0] < 0 for ts in resets)  # min U: a drop is a negative rate
    unsigned = rrd_path(fidelity, "derive_min0_resets.rrd")
    fine = archive_rows(fidelity, "derive_min0_resets")
    assert [ts for ts, row in fine if row[0] is None] == [resets[1]]  # min 0: unknown instead, the second in
    assert dict(fine)[resets[1] - 300][0] > 0                         # the finest archive's last two days
    for rra in archives(unsigned):
        assert min(known(fetch_archive(unsigned, rra["cf"], rra["step"], rra["rows"]))) > 0


def test_absolute_rates(fidelity):
    rates = known(archive_rows(fidelity, "absolute", pdp=288))
    assert 40 < sum(rates) / len(rates) < 60  # level 50 events/s, as the counts per interval say


def test_gaps(fidelity):
    entry = by_kind(fidelity)["gaps"]
    assert entry["updates"] < by_kind(fidelity)["gauge"]["updates"]
    # 15 min and 1 h without polls in the last day: unknown from the poll before to the one after.
    assert sorted(unknown_runs(archive_rows(fidelity, "gaps"))) == [3 + 1, 12 + 1]
    two_hourly = unknown_runs(archive_rows(fidelity, "gaps", pdp=24))
    assert max(two_hourly) >= 3 * 12 - 1  # the 3-day outage, in 2-hour rows
    assert len(two_hourly) >= 2


def test_late_start_and_stopped_long_ago(fidelity):
    kinds = by_kind(fidelity)
    assert kinds["late_start"]["first_update"] >= DEFAULT_END - 2 * DAY
    assert len(known(archive_rows(fidelity, "late_start", pdp=288))) <= 3
    stopped = kinds["stopped_long_ago"]
    assert stopped["last_update"] == DEFAULT_END - 200 * DAY
    assert last_update(rrd_path(fidelity, stopped["path"])) == DEFAULT_END - 200 * DAY


def test_archive_layouts(fidelity):
    def steps(name, cf="AVERAGE"):
        return [rra["step"] for rra in archives(rrd_path(fidelity, f"{name}.rrd")) if rra["cf"] == cf]

    assert steps("non_dividing") == [300, 900, 1200, 3000, 2100]
    pdps = [1, 2, 3, 4, 6, 8, 12, 24, 48, 96, 288, 576]
    for cf in ("AVERAGE", "MAX", "MIN"):
        assert steps("many_archives", cf) == [300 * pdp for pdp in pdps]
        assert steps("min_max", cf) == [300, 1800, 7200, 86400]
    assert steps("equal_resolutions") == [300, 300, 3600]
    coarse = archives(rrd_path(fidelity, "coarse_longer_than_needed.rrd"))[1]
    assert coarse["rows"] * coarse["step"] > fidelity["days"] * DAY * 5
    fine, hourly = archives(rrd_path(fidelity, "fine_longer.rrd"))[:2]
    assert fine["rows"] * fine["step"] > hourly["rows"] * hourly["step"] and fine["step"] < hourly["step"]
    assert rrdtool.info(rrd_path(fidelity, "step60.rrd"))["step"] == 60
    assert by_kind(fidelity)["last_update_unaligned"]["last_update"] % 300 != 0
    multi = rrdtool.info(rrd_path(fidelity, "multi_ds.rrd"))
    assert [multi[f"ds[{ds}].type"] for ds in ("temp", "octets", "packets", "events")] == \
        ["GAUGE", "COUNTER", "DERIVE", "ABSOLUTE"]


def test_oracle_archives_of_equal_resolution_and_other_steps(fidelity):
    path = rrd_path(fidelity, "equal_resolutions.rrd")
    short, long_ = archives(path)[:2]
    short_rows = fetch_archive(path, "AVERAGE", 300, short["rows"])
    long_rows = fetch_archive(path, "AVERAGE", 300, long_["rows"])
    assert long_rows[-short["rows"]:] == short_rows
    with pytest.raises(ValueError, match="step"):
        fetch_archive(path, "AVERAGE", 600, 10)  # no such archive: rrdtool answers from another one
    fine_longer = rrd_path(fidelity, "fine_longer.rrd")
    for rra in archives(fine_longer):  # each archive answers for its own range, the coarse one included
        assert len(fetch_archive(fine_longer, "AVERAGE", rra["step"], rra["rows"])) == rra["rows"]


def test_covering_value(fidelity):
    path = rrd_path(fidelity, "gauge.rrd")
    end = last_update(path)
    fine = dict(fetch_archive(path, "AVERAGE", 300, 600))
    assert covering_value(path, "AVERAGE", end - 299) == fine[end]
    assert covering_value(path, "AVERAGE", end - 300) == fine[end - 300]
    half_hourly = dict(fetch_archive(path, "AVERAGE", 1800, 700))
    old = end - 5 * DAY + 1
    assert covering_value(path, "AVERAGE", old) == half_hourly[-(-old // 1800) * 1800]  # past the finest one
    assert covering_value(path, "AVERAGE", end + 300) is None


def test_dump_xml_restores_to_the_same_data(fidelity, tmp_path):
    source = rrd_path(fidelity, "multi_ds.rrd")
    xml = dump_xml(source, str(tmp_path / "multi_ds.xml"))
    with open(xml, encoding="utf-8") as dump:
        assert "<step>300</step>" in dump.read()
    restored = str(tmp_path / "restored.rrd")
    subprocess.run(["rrdtool", "restore", xml, restored], check=True)
    for rra in archives(source):
        got = fetch_archive(restored, rra["cf"], rra["step"], rra["rows"])
        want = fetch_archive(source, rra["cf"], rra["step"], rra["rows"])
        assert [ts for ts, row in got] == [ts for ts, row in want]
        for (ts, got_row), (ts, want_row) in zip(got, want):
            # rrdtool dump prints values with 10 significant digits ("%0.10e"): XML input is that precise only.
            assert [v is None for v in got_row] == [v is None for v in want_row]
            assert [v for v in got_row if v is not None] == pytest.approx([v for v in want_row if v is not None],
                                                                          rel=1e-9)


# --- determinism -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("style, files", [("nav", 6), ("zenoss", 6), ("fidelity", None)])
def test_same_arguments_same_data(tmp_path, style, files):
    kwargs = {"files": files, "days": 3, "seed": 7} if files else {"days": 3, "seed": 7}
    one = build_tree(str(tmp_path / "one"), style, workers=1, **kwargs)
    two = build_tree(str(tmp_path / "two"), style, workers=2, **kwargs)
    other = build_tree(str(tmp_path / "other"), style, **{**kwargs, "seed": 8})
    assert {**one, "root": None, "rrdpath_map": None} == {**two, "root": None, "rrdpath_map": None}
    assert file_data(one) == file_data(two)
    assert file_data(one) != file_data(other)


# --- nav ---------------------------------------------------------------------------------------------------


def test_nav_layout(nav):
    assert len(nav["files"]) == 10
    assert len(nav["devices"]) == 2
    on_disk = [os.path.relpath(os.path.join(d, f), nav["root"]) for d, dirs, fs in os.walk(nav["root"]) for f in fs]
    assert sorted(on_disk) == sorted(f["path"] for f in nav["files"])
    for entry in nav["files"]:
        sysname = entry["path"].split("/")[0]
        assert sysname == entry["device"] and re.fullmatch(r"[a-z]+-\d\d\.[a-z]+\.example\.org", sysname)
        assert entry["path"].endswith(".rrd")
    directories = {part for f in nav["files"] for part in f["path"].split("/")[:-1]}
    stems = {f["path"].rsplit("/", 1)[1][:-len(".rrd")] for f in nav["files"]}
    assert NAV_ESCAPED <= set("".join(directories))
    assert set(" ().") <= set("".join(stems))
    assert all("/" not in stem for stem in stems)


def test_nav_files(nav):
    kinds = {f["kind"] for f in nav["files"]}
    assert kinds == {"interface", "cpu", "ping", "temperature"}
    for entry in nav["files"]:
        path = rrd_path(nav, entry["path"])
        info = rrdtool.info(path)
        assert info["step"] == 300
        assert [(rra["cf"], rra["pdp_per_row"], rra["rows"]) for rra in archives(path)] == \
            [(rra.cf, rra.pdp, rra.rows) for rra in NAV_ARCHIVES]
        types = [ds["type"] for ds in entry["ds"]]
        if entry["kind"] == "interface":
            assert [ds["name"] for ds in entry["ds"]] == ["ds0", "ds1", "ds2", "ds3"]
            assert types == ["DERIVE"] * 4 and all(info[f"ds[ds{n}].min"] == 0.0 for n in range(4))
        else:
            assert types in (["GAUGE"], ["GAUGE", "GAUGE"])
        # Polled off the step boundaries; the outages leave unknown half-hours inside the data.
        assert all(4 <= ts % 300 <= 296 for ts in (entry["first_update"], entry["last_update"]))
        assert entry["updates"] < 3 * 288
        rows = fetch_archive(path, "AVERAGE", 1800, 700)
        inside = [row for ts, row in rows if entry["first_update"] + 1800 < ts < entry["last_update"] - 1800]
        assert any(value is None for row in inside for value in row)


# --- zenoss ------------------------------------------------------------------------------------------------


def test_zenoss_layout(zenoss):
    root = zenoss["root"]
    assert sorted(os.listdir(root)) == ["Devices", "dmd_uuid.txt", "rrdpath.map"]
    with open(os.path.join(root, "dmd_uuid.txt"), encoding="utf-8") as text:
        content = text.read()
    assert content == zenoss["dmd_uuid"] + "\n" and str(uuid.UUID(zenoss["dmd_uuid"])) == zenoss["dmd_uuid"]
    assert zenoss["rrdpath_map"] == os.path.join(root, "rrdpath.map")
    with open(zenoss["rrdpath_map"], encoding="utf-8") as text:
        lines = text.read().splitlines()
    mapped = {}
    for line in lines:
        directory, object_path = line.split("|")
        device, rest = re.fullmatch(r"Devices/([^/]+)(/.*)?", directory).groups()
        dclass = re.fullmatch(rf"/zport/dmd/Devices/(.+)/devices/{re.escape(device)}{re.escape(rest or '')}",
                              object_path).group(1)
        mapped[directory] = dclass
    # export4 maps every device and monitored component, holding RRDs or not: every directory with files is mapped
    assert set(mapped) >= {f["path"].rsplit("/", 1)[0] for f in zenoss["files"]}
    assert {d.split("/")[1] for d in mapped} == {d["id"] for d in zenoss["devices"]}
    assert len(zenoss["files"]) == 12
    ids = [d["id"] for d in zenoss["devices"]]
    assert any(re.search(r"[^0-9a-zA-Z\-_./]", device_id) for device_id in ids)
    assert "sw 01+core" in ids


def test_zenoss_files(zenoss):
    expected_rras = [("AVERAGE", 1, 600), ("AVERAGE", 6, 600), ("AVERAGE", 24, 600), ("AVERAGE", 288, 600),
                     ("MAX", 6, 600), ("MAX", 24, 600), ("MAX", 288, 600)]
    for entry in zenoss["files"]:
        path = rrd_path(zenoss, entry["path"])
        assert entry["path"].startswith(f"Devices/{entry['device']}/")
        assert [(rra["cf"], rra["pdp_per_row"], rra["rows"]) for rra in archives(path)] == expected_rras
        assert len(entry["ds"]) == 1 and entry["ds"][0]["name"] == "ds0"
        assert (entry["ds"][0]["type"], entry["ds"][0]["min"]) in (("GAUGE", "U"), ("DERIVE", "0"))
        assert known(fetch_archive(path, "AVERAGE", 300, 600))


def test_zenoss_gauge_suffix_pairs(zenoss):
    files = {f["path"]: f for f in zenoss["files"]}
    gauges = [p for p in files if p.endswith("_GAUGE.rrd")]
    superseded = [f for f in zenoss["files"] if f["kind"] == "superseded"]
    assert gauges and superseded and len(gauges) > len(superseded)  # not every _GAUGE file replaced one
    for old in superseded:
        new = files[old["superseded_by"]]
        assert old["path"] == new["path"][:-len("_GAUGE.rrd")] + ".rrd"
        assert old["last_update"] < new["first_update"]  # the data moved on to the _GAUGE file


# --- arguments and CLI -------------------------------------------------------------------------------------


def test_invalid_arguments(tmp_path):
    with pytest.raises(ValueError):
        build_tree(str(tmp_path), "cacti")
    with pytest.raises(ValueError):
        build_tree(str(tmp_path), "nav", files=0)
    with pytest.raises(ValueError):
        build_tree(str(tmp_path), "zenoss", days=0)


def test_cli(tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "gen_rrd_tree.py"), str(tmp_path / "tree"), "--style", "zenoss",
         "--files", "3", "--days", "1", "--workers", "1"],
        capture_output=True, text=True, check=True, cwd=str(tmp_path))
    info = json.loads(result.stdout)
    assert info["style"] == "zenoss" and len(info["files"]) == 3
    assert all(os.path.isfile(rrd_path(info, f["path"])) for f in info["files"])
