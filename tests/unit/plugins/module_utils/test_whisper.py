# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whisper files written directly, checked against graphite's own ``whisper`` package."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fcntl
import os
import re
import struct
import threading
import time

import pytest
import whisper

from ansible_collections.ferry.migrate.plugins.module_utils.rrd import whisper as ferry_whisper
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError

T0 = 1735689600  # 2025-01-01T00:00:00Z: a multiple of every step used here
NAV_SCHEMAS = """\
[carbon]
pattern = ^carbon\\.
retentions = 60:90d

[nav-ports]
pattern = \\.ports\\.
retentions = 5m:30d,30m:90d,2h:1y

[nav]
pattern = ^nav\\.
retentions = 60s:1d,5m:30d

[default]
pattern = .*
retentions = 60s:1d
"""
NAV_AGGREGATION = """\
[nav-count]
pattern = -count$
xFilesFactor = 0
aggregationMethod = sum

[nav-ports]
pattern = \\.ports\\.
xFilesFactor = 0
aggregationMethod = last

[default]
pattern = .*
xFilesFactor = 0.5
aggregationMethod = average
"""


# -- helpers ---------------------------------------------------------------------------------------------------
def stepped(spp, values, start=T0):
    """(times, values) of a contiguous series starting at ``start``."""
    return range(start, start + len(values) * spp, spp), list(values)


def known(times, values):
    return dict((t, v) for t, v in zip(times, values) if v is not None)


def write_file(tmp_path, archives, series, aggregation="average", xff=0.5, name="ferry.wsp"):
    path = str(tmp_path / name)
    with open(path, "wb") as handle:
        handle.write(ferry_whisper.build(ferry_whisper.Layout(archives, aggregation, xff), series)[0])
    return path


def whisper_file(tmp_path, archives, points=(), now=None, name="whisper.wsp"):
    """A file made by graphite's whisper (update_many's ``now`` decides which points fit)."""
    path = str(tmp_path / name)
    whisper.create(path, archives, xFilesFactor=0.5, aggregationMethod="average")
    if points:
        whisper.update_many(path, list(points), now=now)
    return path


def slots(path, index=0):
    """Every raw (timestamp, value) slot of one archive, located through whisper.info."""
    archive = whisper.info(path)["archives"][index]
    with open(path, "rb") as handle:
        handle.seek(archive["offset"])
        data = handle.read(archive["size"])
    return [struct.unpack_from("!Ld", data, position * 12) for position in range(archive["points"])]


def stored(path, index=0):
    """{timestamp: value} of the points whisper considers valid in one archive."""
    archive = whisper.info(path)["archives"][index]
    spp, points = archive["secondsPerPoint"], archive["points"]
    raw = slots(path, index)
    base = raw[0][0]
    if not base:
        return {}  # whisper reads an archive whose first slot is empty as empty
    return dict((stamp, value) for position, (stamp, value) in enumerate(raw)
                if stamp and stamp % spp == 0 and ((stamp - base) // spp) % points == position)


def minutes(*ranges, **kwargs):
    """{T0 + k minutes: offset + k} for k in the ranges."""
    offset = kwargs.get("offset", 0)
    return dict((T0 + k * 60, float(offset + k)) for r in ranges for k in r)


def constant_series(series):
    """A ``series_for`` giving the same (times, values) for any archive, recording its calls."""
    calls = []

    def series_for(spp, points, *_rest):
        calls.append((spp, points))
        return series
    series_for.calls = calls
    return series_for


# -- header and layout -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("aggregation, xff", [("average", 0.5), ("sum", 0.0), ("last", 1.0), ("max", 0.25),
                                              ("min", 0.3), ("avg_zero", 0.5), ("absmax", 0.1), ("absmin", 0.9)])
def test_header_reads_back_like_whisper_create(tmp_path, aggregation, xff):
    archives = [(60, 1440), (300, 2016), (3600, 8760)]
    ours = write_file(tmp_path, archives, [stepped(spp, []) for spp, _points in archives], aggregation, xff)
    theirs = str(tmp_path / "theirs.wsp")
    whisper.create(theirs, archives, xFilesFactor=xff, aggregationMethod=aggregation)

    info = whisper.info(ours)
    assert info == whisper.info(theirs)
    assert info["aggregationMethod"] == aggregation
    assert info["xFilesFactor"] == pytest.approx(xff)
    assert info["maxRetention"] == 3600 * 8760
    assert [(a["secondsPerPoint"], a["points"], a["retention"]) for a in info["archives"]] == \
        [(60, 1440, 86400), (300, 2016, 604800), (3600, 8760, 31536000)]
    assert [a["offset"] for a in info["archives"]] == [52, 52 + 1440 * 12, 52 + (1440 + 2016) * 12]


def test_layout_size_is_the_file_size(tmp_path):
    archives = [(10, 7), (60, 5)]
    layout = ferry_whisper.Layout(archives)
    path = write_file(tmp_path, archives, [stepped(10, [1.0]), stepped(60, [2.0])])
    assert os.path.getsize(path) == layout.size == 16 + 2 * 12 + (7 + 5) * 12


def test_all_unknown_gives_the_empty_file_whisper_creates(tmp_path):
    archives = [(60, 10), (300, 10)]
    ours = write_file(tmp_path, archives, [stepped(60, [None] * 4), stepped(300, [None] * 12)])
    theirs = whisper_file(tmp_path, archives)
    assert stored(ours, 0) == stored(ours, 1) == {}
    with open(ours, "rb") as mine, open(theirs, "rb") as reference:
        assert mine.read() == reference.read()


# -- point placement -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("values", [
    [1.0, 2.0, 3.0],
    [None, None, 1.5, None, -2.0, 0.0, None],
    [7.0] + [None] * 8 + [8.0],
    [float(v) for v in range(10)],
])
def test_points_are_where_whisper_reads_them(tmp_path, values):
    times, values = stepped(60, values)
    path = write_file(tmp_path, [(60, 10)], [(times, values)])
    assert stored(path) == known(times, values)
    first = min(known(times, values))
    assert slots(path)[0][0] == first  # the first known point is the archive's base


def test_series_longer_than_the_archive_keeps_the_newest_points(tmp_path):
    times, values = stepped(60, [float(v) for v in range(25)])
    path = write_file(tmp_path, [(60, 10)], [(times, values)])
    assert stored(path) == known(times[-10:], values[-10:])


def test_longer_series_with_gaps_keeps_the_newest_slots_only(tmp_path):
    values = [float(v) for v in range(20)] + [None, None, 22.0, None, 24.0]
    times, values = stepped(300, values)
    path = write_file(tmp_path, [(300, 8)], [(times, values)])
    assert stored(path) == {times[22]: 22.0, times[24]: 24.0, times[17]: 17.0, times[18]: 18.0, times[19]: 19.0}


def test_each_archive_gets_its_own_series(tmp_path):
    fine = stepped(60, [1.0, None, 3.0])
    coarse = stepped(300, [10.0, 20.0], start=T0 - 600)
    path = write_file(tmp_path, [(60, 5), (300, 4)], [fine, coarse])
    assert stored(path, 0) == known(*fine)
    assert stored(path, 1) == known(*coarse)


def test_whisper_fetch_returns_the_series(tmp_path):
    values = [1.0, None, 3.5, -4.0, None, None, 7.0, 8.0]
    times, values = stepped(60, values)
    path = write_file(tmp_path, [(60, 20), (300, 10)], [(times, values), stepped(300, [])])
    (start, end, step), fetched = whisper.fetch(path, times[0] - 60, times[-1], now=times[-1] + 30)
    assert (start, end, step) == (times[0], times[-1] + 60, 60)
    assert fetched == values


def test_whisper_fetch_reads_a_coarser_archive(tmp_path):
    coarse = stepped(300, [5.0, None, 6.0, 7.0], start=T0 + 3000)
    path = write_file(tmp_path, [(60, 10), (300, 100)], [stepped(60, [1.0]), coarse])
    times, values = coarse
    (start, _end, step), fetched = whisper.fetch(path, times[0] - 300, times[-1], now=times[-1] + 600)
    assert (start, step) == (times[0], 300)
    assert fetched == values


# -- point records ---------------------------------------------------------------------------------------------
def test_pack_points_is_whispers_record_format():
    times, values = [T0, T0 + 60, T0 + 120, 4294967295], [1.5, -2.25, 1e300, 0.0]
    data = ferry_whisper.pack_points(times, values)[0]
    assert [struct.unpack_from("!Ld", data, i * 12) for i in range(4)] == list(zip(times, values))


@pytest.mark.parametrize("count", [1, 2, 7, 600, 797])
def test_range_timestamps_pack_like_a_list(count):
    """The big-integer shortcut for a range gives the same records as packing each timestamp."""
    times = range(4294967295 - 300 * count, 4294967295, 300)
    values = [float(i) for i in range(count)]
    values[count // 2] = None
    fast, known = ferry_whisper.pack_points(times, values)
    slow, known_too = ferry_whisper.pack_points(list(times), values)
    assert fast == slow and known == known_too == count - 1


def test_pack_unpack_round_trip():
    times, values = [T0 + 60 * i for i in range(50)], [i * 0.5 - 7 for i in range(50)]
    stamps, numbers = ferry_whisper.unpack_points(ferry_whisper.pack_points(times, values)[0])
    assert list(stamps) == times
    assert list(numbers) == values


def test_unknown_value_packs_as_an_empty_slot():
    times, values = [T0, T0 + 60, T0 + 120, T0 + 180], [None, 2.0, None, 4.0]
    data = ferry_whisper.pack_points(times, values)[0]
    assert [struct.unpack_from("!L", data, i * 12)[0] for i in range(4)] == [0, T0 + 60, 0, T0 + 180]
    stamps, numbers = ferry_whisper.unpack_points(data)
    assert list(stamps) == [0, T0 + 60, 0, T0 + 180]
    assert [numbers[1], numbers[3]] == [2.0, 4.0]


def test_unpack_points_reads_what_whisper_wrote(tmp_path):
    points = [(T0 + 60 * k, float(k) * 1.25) for k in range(6)]
    path = whisper_file(tmp_path, [(60, 6)], points, now=T0 + 300)
    archive = whisper.info(path)["archives"][0]
    with open(path, "rb") as handle:
        handle.seek(archive["offset"])
        stamps, numbers = ferry_whisper.unpack_points(handle.read(archive["size"]))
    assert list(zip(stamps, numbers)) == slots(path)
    assert sorted(zip(stamps, numbers)) == points


# -- backfill --------------------------------------------------------------------------------------------------
def test_backfill_fills_empty_slots_and_keeps_existing_points(tmp_path):
    existing = [(T0 + k * 60, 100.0 + k) for k in list(range(10, 20)) + list(range(50, 60))]
    path = whisper_file(tmp_path, [(60, 100)], existing, now=T0 + 60 * 60)
    ours = minutes(range(41), offset=1000)

    written = ferry_whisper.backfill(path, constant_series((list(ours), list(ours.values()))))

    expected = minutes(range(10), range(20, 41), offset=1000)
    expected.update(existing)  # same timestamps as ours for 10..19: theirs are kept; 50..59 untouched
    assert written == len(expected) - len(existing) == 31
    assert stored(path) == expected


def test_second_backfill_writes_nothing(tmp_path):
    path = whisper_file(tmp_path, [(60, 50)], [(T0 + 600, 1.0)], now=T0 + 3000)
    ours = minutes(range(30), offset=5)
    series_for = constant_series((list(ours), list(ours.values())))
    assert ferry_whisper.backfill(path, series_for) == 29
    with open(path, "rb") as handle:
        before = handle.read()
    assert ferry_whisper.backfill(path, series_for) == 0
    with open(path, "rb") as handle:
        assert handle.read() == before


def test_backfill_skips_points_older_than_the_files_window(tmp_path):
    existing = [(T0 + k * 60, -float(k)) for k in range(140, 151)]
    path = whisper_file(tmp_path, [(60, 100)], existing, now=T0 + 150 * 60)
    ours = minutes(range(81))  # the window of 100 points ending at minute 150 starts at minute 51

    written = ferry_whisper.backfill(path, constant_series((list(ours), list(ours.values()))))

    expected = minutes(range(51, 81))
    expected.update(existing)
    assert written == 30
    assert stored(path) == expected


def test_backfill_of_an_empty_file_keeps_the_window_of_our_newest_point(tmp_path):
    path = whisper_file(tmp_path, [(60, 100)])
    ours = minutes(range(151))

    written = ferry_whisper.backfill(path, constant_series((list(ours), list(ours.values()))))

    assert written == 100
    assert stored(path) == minutes(range(51, 151))
    _info, fetched = whisper.fetch(path, T0 + 50 * 60, T0 + 150 * 60, now=T0 + 150 * 60)
    assert fetched == [float(k) for k in range(51, 151)]


def test_backfill_ignores_unknown_values(tmp_path):
    path = whisper_file(tmp_path, [(60, 20)])
    times, values = stepped(60, [None, 1.0, None, 3.0, None])
    assert ferry_whisper.backfill(path, constant_series((times, values))) == 2
    assert stored(path) == known(times, values)


def test_backfill_asks_for_each_archive_and_skips_none(tmp_path):
    archives = [(60, 30), (300, 30)]
    path = whisper_file(tmp_path, archives)
    fine = stepped(60, [1.0, 2.0, 3.0])
    asked = []

    def series_for(spp, points, *_rest):
        asked.append((spp, points))
        return fine if spp == 60 else None

    assert ferry_whisper.backfill(path, series_for) == 3
    assert asked == archives
    assert stored(path, 0) == known(*fine)
    assert stored(path, 1) == {}


@pytest.mark.parametrize("content", [
    b"",
    b"this is not a whisper file at all, just some text",
    b"\x00" * 64,
])
def test_backfill_of_a_non_whisper_file_names_it(tmp_path, content):
    path = tmp_path / "bad.wsp"
    path.write_bytes(content)
    with pytest.raises(FerryError, match=re.escape(str(path))):
        ferry_whisper.backfill(str(path), constant_series(stepped(60, [1.0])))


def test_backfill_of_a_truncated_file_names_it(tmp_path):
    path = whisper_file(tmp_path, [(60, 100), (300, 100)])
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) - 12)
    with open(path, "rb") as handle:
        before = handle.read()
    with pytest.raises(FerryError, match=re.escape(path)):
        ferry_whisper.backfill(path, constant_series(stepped(60, [1.0])))
    with open(path, "rb") as handle:
        assert handle.read() == before


def test_backfill_waits_for_carbons_lock(tmp_path):
    path = whisper_file(tmp_path, [(60, 10)])
    outcome = []
    with open(path, "rb") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        worker = threading.Thread(target=lambda: outcome.append(
            ferry_whisper.backfill(path, constant_series(stepped(60, [1.0, 2.0])))))
        worker.daemon = True
        worker.start()
        worker.join(0.3)
        assert worker.is_alive() and not outcome
        assert stored(path) == {}
        fcntl.flock(holder.fileno(), fcntl.LOCK_UN)
        worker.join(5)
    assert outcome == [2]
    assert stored(path) == known(*stepped(60, [1.0, 2.0]))


# -- aggregation -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", sorted(ferry_whisper.AGGREGATIONS))
@pytest.mark.parametrize("values", [[3.0, -7.5, 2.0, 0.5], [4.0], [-1.0, -1.0, 2.0]])
def test_aggregate_matches_whisper(method, values):
    # all values known: avg_zero is whisper's mean over the slot's neighbours
    assert ferry_whisper.aggregate(method, values) == pytest.approx(whisper.aggregate(method, values, values))


def test_aggregate_rejects_an_unknown_method():
    with pytest.raises(FerryError, match="median"):
        ferry_whisper.aggregate("median", [1.0])


# -- durations and retentions ----------------------------------------------------------------------------------
@pytest.mark.parametrize("text, seconds", [
    ("60", 60), (60, 60), ("60s", 60), ("5m", 300), ("10min", 600), ("2h", 7200), ("1d", 86400), ("1w", 604800),
    ("1y", 31536000),
])
def test_parse_seconds(text, seconds):
    assert ferry_whisper.parse_seconds(text) == seconds


@pytest.mark.parametrize("text", ["60s:1d,5m:30d", "60:1440", "1h:1y", "10min:7d", "1d:5y,1h:30d,10s:6h",
                                  "15s:7d,1m:21d,15m:5y", "60s:1d,"])
def test_parse_retentions_agrees_with_whisper_finest_first(text):
    expected = sorted(whisper.parseRetentionDef(part) for part in text.split(",") if part)
    assert ferry_whisper.parse_retentions(text) == expected
    whisper.validateArchiveList(list(expected))


@pytest.mark.parametrize("text", [
    "60x:1d", "60s:1q", "60s", "60s:1d:2", "s:1d", "-60s:1d", "60s:0", "60s:30s", "abc", "1.5h:1d",
    "1mo:1y", "60s:1month", "1hr:1d",  # not units of Carbon's (whisper rejects them)
])
def test_parse_retentions_rejects_what_whisper_rejects(text):
    with pytest.raises(FerryError):
        ferry_whisper.parse_retentions(text)


# -- Carbon's rules --------------------------------------------------------------------------------------------
def rules(tmp_path, schemas=None, aggregation=None):
    paths = {}
    for name, text in (("schemas", schemas), ("aggregation", aggregation)):
        if text is not None:
            paths[name] = str(tmp_path / ("storage-%s.conf" % name))
            with open(paths[name], "w") as handle:
                handle.write(text)
    return ferry_whisper.Rules(paths.get("schemas"), paths.get("aggregation"))


@pytest.mark.parametrize("metric, expected", [
    ("nav.devices.sw1.ports.Gi1_0_1.ifInOctets", [(300, 8640), (1800, 4320), (7200, 4380)]),
    ("nav.devices.sw1.system.cpu", [(60, 1440), (300, 8640)]),
    ("carbon.agents.a.cpuUsage", [(60, 129600)]),
    ("other.metric", [(60, 1440)]),
])
def test_first_matching_schema_wins(tmp_path, metric, expected):
    assert rules(tmp_path, schemas=NAV_SCHEMAS).retentions(metric) == expected


def test_schema_order_is_the_files_not_the_most_specific(tmp_path):
    text = "[all]\npattern = .*\nretentions = 1h:1d\n\n" + NAV_SCHEMAS
    assert rules(tmp_path, schemas=text).retentions("nav.devices.sw1.ports.x") == [(3600, 24)]


def test_schema_sections_without_pattern_are_skipped(tmp_path):
    text = "[no-pattern]\nretentions = 1s:1h\n\n[nav]\npattern = ^nav\\.\nretentions = 60s:1d\n"
    loaded = rules(tmp_path, schemas=text)
    assert loaded.retentions("nav.x") == [(60, 1440)]
    assert loaded.retentions("other.x") is None


def test_no_rules_at_all():
    loaded = ferry_whisper.Rules()
    assert loaded.retentions("nav.x") is None
    assert loaded.aggregation_for("nav.x", "last") == ("last", 0.5)
    assert loaded.aggregation_for("nav.x", "average", 0.25) == ("average", 0.25)


@pytest.mark.parametrize("metric, expected", [
    ("nav.devices.sw1.ports.Gi1.ifInErrors-count", ("sum", 0.0)),  # file order: nav-count before nav-ports
    ("nav.devices.sw1.ports.Gi1.ifInOctets", ("last", 0.0)),
    ("nav.devices.sw1.cpu", ("average", 0.5)),
])
def test_first_matching_aggregation_wins(tmp_path, metric, expected):
    assert rules(tmp_path, aggregation=NAV_AGGREGATION).aggregation_for(metric, "max", 0.9) == expected


def test_aggregation_defaults_without_a_match_or_a_setting(tmp_path):
    text = ("[no-pattern]\naggregationMethod = sum\n\n"
            "[method-only]\npattern = ^a\\.\naggregationMethod = MAX\n\n"
            "[xff-only]\npattern = ^b\\.\nxFilesFactor = 0.1\n")
    loaded = rules(tmp_path, aggregation=text)
    assert loaded.aggregation_for("a.x", "last", 0.7) == ("max", 0.7)
    assert loaded.aggregation_for("b.x", "last", 0.7) == ("last", 0.1)
    assert loaded.aggregation_for("c.x", "last", 0.7) == ("last", 0.7)


@pytest.mark.parametrize("setting", ["aggregationMethod = median", "xFilesFactor = lots"])
def test_bad_aggregation_setting_names_the_section(tmp_path, setting):
    loaded = rules(tmp_path, aggregation="[odd-one]\npattern = ^nav\\.\n%s\n" % setting)
    assert loaded.aggregation_for("other.x", "average") == ("average", 0.5)
    with pytest.raises(FerryError, match=r"\[odd-one\]"):
        loaded.aggregation_for("nav.x", "average")


@pytest.mark.parametrize("xff", ["1.5", "-0.1", "nan"])
def test_xfilesfactor_outside_0_to_1_is_refused(tmp_path, xff):
    # whisper refuses to read a header whose xFilesFactor is outside [0, 1] (CorruptWhisperFile)
    loaded = rules(tmp_path, aggregation="[odd-one]\npattern = .*\nxFilesFactor = %s\n" % xff)
    with pytest.raises(FerryError, match=r"\[odd-one\]"):
        loaded.aggregation_for("nav.x", "average")


@pytest.mark.parametrize("kind", ["schemas", "aggregation"])
def test_bad_pattern_names_the_section(tmp_path, kind):
    text = "[broken]\npattern = ([a-z\nretentions = 60s:1d\naggregationMethod = sum\n"
    with pytest.raises(FerryError, match=r"\[broken\]"):
        rules(tmp_path, **{kind: text})


@pytest.mark.parametrize("kind", ["schemas", "aggregation"])
@pytest.mark.parametrize("problem", ["missing", "directory", "no section header"])
def test_unreadable_rules_file(tmp_path, kind, problem):
    path = tmp_path / "storage.conf"
    if problem == "directory":
        path.mkdir()
    elif problem == "no section header":
        path.write_text("pattern = .*\n")
    with pytest.raises(FerryError, match=re.escape(str(path))):
        ferry_whisper.Rules(**{kind: str(path)})


# -- paths -----------------------------------------------------------------------------------------------------
def test_whisper_path_makes_dots_directories(tmp_path):
    assert ferry_whisper.whisper_path(str(tmp_path), "a.b.c") == os.path.join(str(tmp_path), "a", "b", "c.wsp")
    assert ferry_whisper.whisper_path("/var/lib/graphite/whisper", "nav") == "/var/lib/graphite/whisper/nav.wsp"


@pytest.mark.parametrize("metric, reason", [
    ("x/../../../PWNED", "holds '/'"), ("/etc/PWNED", "holds '/'"), ("a\0b", "holds '/' or NUL"),
    ("a..b", "empty element"), (".a", "empty element"), ("a.", "empty element"), ("..", "empty element"),
    ("", "empty element"), ("a.b\nc", "control character"), ("caf\udce9", "not valid UTF-8"),
])
def test_whisper_path_refuses_what_carbon_would_not_keep_in_its_storage(metric, reason):
    """Carbon's getFilesystemPath makes each dot a directory and escapes nothing: such a name is refused."""
    with pytest.raises(FerryError, match="invalid metric name .*: it .*%s" % re.escape(reason)):
        ferry_whisper.whisper_path("/var/lib/graphite/whisper", metric)


def test_check_inside_follows_symlinks(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(str(tmp_path / "elsewhere"), str(tmp_path / "root" / "link"))
    ferry_whisper.check_inside(str(tmp_path / "root"), str(tmp_path / "root" / "a" / "b.wsp"))
    with pytest.raises(FerryError, match="leads outside .*root .*elsewhere"):
        ferry_whisper.check_inside(str(tmp_path / "root"), str(tmp_path / "root" / "link" / "b.wsp"))


def test_layout_refuses_archives_past_whispers_32_bit_fields():
    """Before, the header packing failed with struct.error, unnamed."""
    with pytest.raises(ValueError, match="32-bit"):
        ferry_whisper.Layout([(86400, 50000 + 1)])  # a retention of 4.3e9 s
    with pytest.raises(ValueError, match="32-bit"):
        ferry_whisper.Layout([(1, 360000000)])  # 4.3 GB of points: offsets past 2**32


# -- whisper to whisper: merge and install -----------------------------------------------------------------------
def converted(tmp_path, name="src.wsp", minutes_back=600):
    """A file as rrd_to_whisper writes it: 60 s for 10 h and 300 s for 20 h, full, ending at T0 + 10 h."""
    end = T0 + 36000
    fine = stepped(60, [float(k) for k in range(minutes_back)], end - minutes_back * 60)
    coarse = stepped(300, [1000.0 + k for k in range(240)], end - 240 * 300)
    return write_file(tmp_path, [(60, 600), (300, 240)], [fine, coarse], name=name)


def test_merge_fills_each_archive_exactly_and_keeps_what_is_there(tmp_path):
    src = converted(tmp_path)
    # Carbon's file: a third, coarser archive, and the last 30 minutes already written (propagated down)
    newer = [(T0 + 36000 - k * 60, 5000.0 + k) for k in range(1, 31)]
    dest = whisper_file(tmp_path, [(60, 600), (300, 240), (3600, 24)], newer, now=T0 + 36000)
    before = [stored(dest, index) for index in range(3)]

    written = ferry_whisper.merge(src, dest)

    after = [stored(dest, index) for index in range(3)]
    for index in range(3):
        assert all(after[index][t] == v for t, v in before[index].items())  # nothing there changed
    theirs = [stored(src, index) for index in range(2)]
    for index in range(2):  # the twins' points, exactly, wherever the slot was free
        assert dict((t, v) for t, v in after[index].items() if t not in before[index]) == \
            dict((t, v) for t, v in theirs[index].items() if t not in before[index])
    hours = dict((t, v) for t, v in after[2].items() if t not in before[2])
    assert hours and all(v == sum(theirs[1][t + k * 300] for k in range(12)) / 12 for t, v in hours.items())
    assert written == sum(len(after[i]) - len(before[i]) for i in range(3))
    with open(dest, "rb") as handle:
        data = handle.read()
    assert ferry_whisper.merge(src, dest) == 0
    with open(dest, "rb") as handle:
        assert handle.read() == data


def test_merge_dry_run_counts_without_writing(tmp_path):
    src = converted(tmp_path)
    dest = whisper_file(tmp_path, [(60, 600), (300, 240)])
    with open(dest, "rb") as handle:
        data = handle.read()
    would = ferry_whisper.merge(src, dest, dry_run=True)
    with open(dest, "rb") as handle:
        assert handle.read() == data
    assert would == ferry_whisper.merge(src, dest) == 600 + 240


def tree_of(root, files):
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return str(root)


def test_install_tree_creates_fills_and_then_has_nothing_to_do(tmp_path):
    made = open(converted(tmp_path), "rb").read()
    src = tree_of(tmp_path / "received", {"sw/ports/a.wsp": made, "sw/cpu.wsp": made, "bad.wsp": b"not whisper",
                                          ".ferry-staging/x.wsp": made})
    dest = tmp_path / "storage"
    carbon = dest / "sw" / "cpu.wsp"
    carbon.parent.mkdir(parents=True)
    whisper.create(str(carbon), [(60, 600), (300, 240)])

    counts, failures = ferry_whisper.install_tree(src, str(dest), dry_run=True)
    assert not (dest / "sw" / "ports").exists() and stored(str(carbon)) == {}
    assert counts == {"files": 3, "created": 1, "merged": 1, "up_to_date": 0, "already_installed": 0, "points": 840,
                      "failed": 1}

    counts, failures = ferry_whisper.install_tree(src, str(dest))
    assert counts == {"files": 3, "created": 1, "merged": 1, "up_to_date": 0, "already_installed": 0, "points": 840,
                      "failed": 1}
    assert len(failures) == 1 and "bad.wsp is not a whisper file" in failures[0]
    assert (dest / "sw" / "ports" / "a.wsp").read_bytes() == made
    assert sorted(p.name for p in dest.rglob("*")) == ["a.wsp", "cpu.wsp", "ports", "sw"]  # no temporary left

    counts, _failures = ferry_whisper.install_tree(src, str(dest))
    assert (counts["created"], counts["merged"], counts["points"], counts["up_to_date"]) == (0, 0, 0, 2)
    assert not os.path.exists(os.path.join(src, ".ferry-installed"))  # bad.wsp failed: look at all again


def test_install_reads_again_only_what_arrived_since_the_last_complete_install(tmp_path):
    made = open(converted(tmp_path), "rb").read()
    src = tree_of(tmp_path / "received", {"a.wsp": made, "b.wsp": made})
    dest = str(tmp_path / "storage")
    time.sleep(0.05)  # file times tick coarsely: a file as old as the mark counts as new (read again)
    assert ferry_whisper.install_tree(src, dest)[0]["created"] == 2
    assert ferry_whisper.install_tree(src, dest)[0]["already_installed"] == 2
    time.sleep(0.05)
    os.utime(os.path.join(src, "b.wsp"))  # received again: its ctime is newer than the mark
    counts = ferry_whisper.install_tree(src, dest)[0]
    assert (counts["already_installed"], counts["up_to_date"]) == (1, 1)
    assert ferry_whisper.install_tree(src, dest, everything=True)[0]["up_to_date"] == 2


def test_install_never_replaces_a_file_carbon_created_meanwhile(tmp_path):
    src = converted(tmp_path)
    target = str(tmp_path / "storage.wsp")
    temp = str(tmp_path / ".storage.wsp.ferry-tmp")
    with open(src, "rb") as handle, open(temp, "wb") as out:
        out.write(handle.read())
    newer = [(T0 + 36000 - 60, 42.0)]
    whisper_file(tmp_path, [(60, 600), (300, 240)], newer, now=T0 + 36000, name="storage.wsp")
    counts, failures = {"created": 1, "failed": 0}, []
    staged = [("storage.wsp", temp, target)]
    ferry_whisper._commit_staged(str(tmp_path), staged, counts, failures)  # pylint: disable=protected-access
    assert not failures and counts["failed"] == 0
    assert stored(target)[T0 + 36000 - 60] == 42.0 and len(stored(target)) == 600
    assert not os.path.exists(temp)


def test_install_removes_the_temporary_name_a_killed_run_left(tmp_path):
    made = open(converted(tmp_path), "rb").read()
    src = tree_of(tmp_path / "received", {"a.wsp": made})
    dest = tmp_path / "storage"
    dest.mkdir()
    (dest / "a.wsp").write_bytes(made)  # linked into place, then killed before the unlink
    (dest / ".a.wsp.ferry-tmp").write_bytes(made)
    assert ferry_whisper.install_tree(src, str(dest))[0]["up_to_date"] == 1
    assert sorted(p.name for p in dest.iterdir()) == ["a.wsp"]


def test_install_never_follows_a_symlink_out_of_src_or_dest(tmp_path):
    made = open(converted(tmp_path), "rb").read()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.wsp").write_bytes(made)
    src = tree_of(tmp_path / "received", {"ok.wsp": made, "sw/ports/a.wsp": made, "t/x.wsp": made})
    os.symlink(str(outside / "secret.wsp"), os.path.join(src, "leak.wsp"))  # src: a file outside it
    dest = tmp_path / "storage"
    dest.mkdir()
    os.symlink(str(outside), str(dest / "sw"))  # dest: a directory leading out of it
    (dest / "t").mkdir()
    os.symlink(str(outside / "planted"), str(dest / "t" / ".x.wsp.ferry-tmp"))  # a planted temporary name
    counts, failures = ferry_whisper.install_tree(src, str(dest))
    assert (counts["created"], counts["failed"]) == (2, 2)
    assert sorted(failures) == sorted([
        "%s leads outside %s (to %s): refusing to follow it" % (dest / "sw" / "ports" / "a.wsp", dest,
                                                                outside / "ports" / "a.wsp"),
        "%s leads outside %s (to %s): refusing to follow it" % (os.path.join(src, "leak.wsp"), src,
                                                                outside / "secret.wsp")])
    assert sorted(os.listdir(str(outside))) == ["secret.wsp"]
    assert (dest / "t" / "x.wsp").read_bytes() == made and not os.path.lexists(str(dest / "t" / ".x.wsp.ferry-tmp"))
    assert not (dest / "leak.wsp").exists()
