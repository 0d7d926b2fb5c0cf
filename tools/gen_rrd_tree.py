"""Build trees of realistic RRD files for the tests and benchmarks of the RRD -> whisper / OpenTSDB converter.

Styles, ``build_tree(out_dir, style=...)``::

    nav        NAV 3 / Cricket: <sysname>/<file>.rrd, sysnames like "sw-01.oslo.example.org"
                 <sysname>/ports/<interface>.rrd       DERIVE min 0 ds0..ds3: octets in/out, errors in/out
                 <sysname>/cpu.rrd                     GAUGE ds0: % busy
                 <sysname>/ping.rrd                    GAUGE ds0: roundtrip (s), ds1: packet loss (%)
                 <sysname>/sensors (chassis 1, slot 0)/temperature.rrd   GAUGE ds0, ds1: inlet, outlet (C)
               Interface file names are ifDescr with "/" made "_", as Cricket stored them ("Gi0_3", "ge-0_0_2");
               the first ones of each device hold characters NAV escapes in metric names: "Port-channel 1
               (uplink)", "Gi0_1.100", "xe-1_0_0 (core, uplink)", "DEFAULT_VLAN, 1". Step 300, heartbeat
               1800, the archives NAV 3 shipped: AVERAGE and MAX, each 1:600, 6:700, 24:775 and 288:797.
    zenoss     Zenoss 4 perf tree: Devices/<device id>/[<component>/]<dp>.rrd with one DS ds0, GAUGE or DERIVE
               min 0, Zenoss's archives (see gen_zenoss_bundle.RRAS), and next to Devices/: dmd_uuid.txt (a
               UUID and a newline) and rrdpath.map ("Devices/<dir>|/zport/dmd/Devices/<class>/devices/<id>/<rest>"
               per directory holding RRDs). Interface status RRDs are <dp>_GAUGE.rrd; every third device also
               keeps the <dp>.rrd its _GAUGE file superseded (its data stops where the _GAUGE data starts,
               Zenoss skips X.rrd when X_GAUGE.rrd exists: info "superseded_by"). Device "sw 01+core" has
               characters outside [0-9a-zA-Z-_./].
    fidelity   one file per entry of VARIANTS, flat in out_dir, each stressing one thing a converter must get
               right (one DS "value", step 300, heartbeat 2 steps, AVERAGE and MAX 1:600 6:700 24:775 288:797
               unless said):
                 gauge                      GAUGE
                 derive_resets              DERIVE min U; the counter drops to 0 twice (the second time in
                                            the last day): two negative rates
                 derive_min0_resets         DERIVE min 0; the same drops: two unknown PDPs
                 counter32_wraps            COUNTER wrapping past 2**32 about five times
                 counter64                  COUNTER between 2**63 and 2**64, wrapping past 2**64 once
                 absolute                   ABSOLUTE: each reading counts the events since the previous one
                 gaps                       outages of 6 h and 3 days, then 1 h and 15 min in the last day
                 late_start                 created and updated only in the last 2 days
                 stopped_long_ago           last update 200 days before `end`
                 many_archives              AVERAGE, MAX and MIN with pdp 1 2 3 4 6 8 12 24 48 96 288 576, 200 rows
                 min_max                    AVERAGE, MAX and MIN, each 1:600 6:700 24:775 288:797
                 non_dividing               AVERAGE pdp 1 3 4 10 7: 300, 900, 1200, 3000 and 2100 s
                 equal_resolutions          AVERAGE 1:300 and 1:1000 (same resolution), 12:400
                 coarse_longer_than_needed  AVERAGE 1:600 and 12:8760: the hourly archive spans a year
                 fine_longer                AVERAGE 1:14400 (50 days) reaches further back than 12:600
                                            (25 days); 288:60
                 multi_ds                   DS temp GAUGE, octets COUNTER, packets DERIVE min 0, events ABSOLUTE
                 step60                     step 60, heartbeat 120
                 last_update_unaligned      polled 137 s past the step boundary: last update mid-step
               and the bad files listed in info["corrupt"] (not in info["files"]):
                 corrupt_header.rrd         a valid file whose header after the "RRD" cookie is overwritten
                 truncated.rrd              a valid file cut to half its size
                 empty.rrd                  0 bytes
                 not_rrd.rrd                text

Polling, nav and zenoss: every 300 s at a per-device offset of 7..293 s past the step boundary plus -3..3 s of
jitter, so that rrdtool interpolates the PDPs as it does with real data. One or two collector outages hit every
device at once and about half of the devices have one of their own; all last longer than the heartbeat and show
as unknown. Counters are integers growing by rate * dt, the rate swinging daily with some noise; a quarter of
the interface files see a reboot that resets their counters. The fidelity files are polled exactly on the
step boundaries (except last_update_unaligned), so GAUGE readings are the PDPs.

The same arguments give the same data: every random choice comes from PRNGs seeded with ``seed`` and the file's
path, every timestamp derives from ``end`` (default 2018-06-01 12:00 UTC). The files are not byte-identical
because rrdtool starts each archive at a random row; what rrdtool fetch returns is identical.

Usage: python tools/gen_rrd_tree.py OUT_DIR [--style nav|zenoss|fidelity] [--files N] [--seed N] [--days N]
       [--end EPOCH] [--workers N]; prints the info dict returned by build_tree() as JSON.
"""

import argparse
import dataclasses
import itertools
import json
import math
import multiprocessing
import operator
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import uuid

import rrdtool

if __package__ in (None, ""):  # run as a script: make `tools` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.gen_zenoss_bundle import (  # noqa: E402  pylint: disable=wrong-import-position
    DEVICE_CLASSES, HEARTBEAT as ZENOSS_HEARTBEAT, RRAS as ZENOSS_RRAS, STEP as ZENOSS_STEP,
    FIRST_DATAPOINTS, _datapoints, _Device, _rrdpath_map,
)

__all__ = ["build_tree", "dump_xml", "STYLES", "VARIANTS", "GOOD_VARIANTS", "CORRUPT_VARIANTS", "DEFAULT_END"]

DEFAULT_END = 1527854400  # 2018-06-01 12:00:00 UTC, a multiple of 300
STYLES = ("nav", "zenoss", "fidelity")
DEFAULT_DAYS = {"nav": 365, "zenoss": 365, "fidelity": 40}
DEFAULT_FILES = 24
DAY = 86400
# rrdtool.update() with ~100k arguments crashes the interpreter (segfault): feed it in slices.
UPDATE_CHUNK = 5000
FILES_PER_DEVICE = 12  # nav and zenoss trees grow by devices of about this many files
POLL_OFFSETS = (7, 293)  # seconds past the step boundary a device is polled at
POLL_JITTER = 3

NAV_STEP = 300
NAV_HEARTBEAT = 1800  # Cricket's default rrd-heartbeat
NAV_ARCHIVE_SHAPE = ((1, 600), (6, 700), (24, 775), (288, 797))
NAV_SENSORS_DIR = "sensors (chassis 1, slot 0)"
NAV_SITES = ("oslo", "bergen", "trondheim")

FIDELITY_STEP = 300
ALIGN = 300  # `end` is rounded down to this, which every step divides

# The quantiles of 256 equally likely outcomes of a standard normal: random bytes index them, which keeps
# drawing noise in C (randbytes) instead of a Python call per value.
NORMAL_QUANTILES = tuple(statistics.NormalDist().inv_cdf((b + 0.5) / 256) for b in range(256))


# --- what a file is made of ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DataSource:
    name: str
    type: str  # GAUGE, COUNTER, DERIVE or ABSOLUTE
    heartbeat: int
    min: str = "U"
    max: str = "U"

    def definition(self):
        return f"DS:{self.name}:{self.type}:{self.heartbeat}:{self.min}:{self.max}"

    def describe(self):
        return {"name": self.name, "type": self.type, "heartbeat": self.heartbeat, "min": self.min, "max": self.max}


@dataclasses.dataclass(frozen=True)
class Archive:
    cf: str
    pdp: int
    rows: int

    def definition(self):
        return f"RRA:{self.cf}:0.5:{self.pdp}:{self.rows}"

    @classmethod
    def parse(cls, text):
        """From an "RRA:CF:xff:pdp:rows" argument."""
        parts = text.split(":")
        return cls(parts[1], int(parts[3]), int(parts[4]))


def _archives(cfs, shape):
    return tuple(Archive(cf, pdp, rows) for cf in cfs for pdp, rows in shape)


NAV_ARCHIVES = _archives(("AVERAGE", "MAX"), NAV_ARCHIVE_SHAPE)
FIDELITY_ARCHIVES = NAV_ARCHIVES
ZENOSS_ARCHIVES = tuple(Archive.parse(text) for text in ZENOSS_RRAS)


@dataclasses.dataclass(frozen=True)
class Signal:
    """How the readings of one DS are made: a level with a daily sine swing and noise, both relative.

    kind "gauge": the reading is that value; "counter": an integer growing by value * dt, starting at
    `initial`, wrapping at `modulo` (0: never) and dropping to 0 at the `resets` (fractions of the poll span);
    "absolute": the counter's growth since the previous reading.
    """

    kind: str = "gauge"
    level: float = 1.0
    swing: float = 0.0
    noise: float = 0.0
    decimals: int = 2  # gauges
    sparse: int = 1  # only one noise outcome in `sparse` is non-zero: rare events such as packet loss
    initial: int = 0
    modulo: int = 0
    resets: tuple = ()

    def factors(self):
        """256 noise factors, one per random byte value."""
        return [max(0.0, 1 + self.noise * z) if b % self.sparse == 0 else 0.0 for b, z in enumerate(NORMAL_QUANTILES)]


@dataclasses.dataclass(frozen=True)
class Polls:
    """When a file is updated: the grid first..last (inclusive, `step` apart) plus offset and jitter, except in
    the outages, (start, end) grid times with no poll in [start, end)."""

    first: int
    last: int
    step: int
    offset: int = 0
    jitter: int = 0
    outages: tuple = ()

    @property
    def count(self):
        return (self.last - self.first) // self.step + 1


@dataclasses.dataclass(frozen=True)
class RrdSpec:
    """One RRD to write: everything a worker process needs, picklable."""

    path: str  # relative to the tree's root, "/"-separated
    kind: str
    step: int
    sources: tuple
    archives: tuple
    signals: tuple  # one per source
    polls: Polls
    seed: str  # of the PRNG the readings come from
    extra: tuple = ()  # (key, value) pairs for the info

    @property
    def cost(self):
        return self.polls.count * (len(self.sources) + 1) * len(self.archives)

    def create_args(self):
        return ("--start", str(self.polls.first - self.step), "--step", str(self.step),
                *(ds.definition() for ds in self.sources), *(rra.definition() for rra in self.archives))

    def describe(self, times, resets):
        info = {
            "path": self.path,
            "kind": self.kind,
            "ds": [ds.describe() for ds in self.sources],
            "step": self.step,
            "rras": [{"cf": rra.cf, "pdp_per_row": rra.pdp, "rows": rra.rows} for rra in self.archives],
            "first_update": times[0],
            "last_update": times[-1],
            "updates": len(times),
        }
        if resets:
            info["resets"] = resets
        info.update(self.extra)
        return info


# --- readings and writing --------------------------------------------------------------------------------
# Whole columns at a time with map/accumulate/compress, which loop in C: a Python loop per value would cost
# more than rrdtool's own work on a year of 5-minute data. Formatting the update strings (one %-format per
# row) is the biggest cost left.

FLOAT_EXACT = 2 ** 53  # counters below this can be summed as floats without losing a unit


def _poll_times(polls, rng):
    grid = range(polls.first + polls.offset, polls.last + polls.offset + 1, polls.step)
    if not polls.jitter:
        return list(grid)
    span = 2 * polls.jitter + 1
    jitter = [b % span - polls.jitter for b in range(256)]
    return list(map(operator.add, grid, map(jitter.__getitem__, rng.randbytes(len(grid)))))


def _keep_mask(polls):
    """1 for each grid point polled, 0 in the outages."""
    keep = bytearray(b"\x01") * polls.count
    for start, end in polls.outages:
        first = min(polls.count, max(0, -(-(start - polls.first) // polls.step)))
        stop = min(polls.count, max(first, -(-(end - polls.first) // polls.step)))
        keep[first:stop] = bytes(stop - first)
    return keep


def _values(signal, polls, rng):
    """The level with its daily swing and noise at each grid point (an iterator)."""
    phase = rng.uniform(0, 2 * math.pi)
    slots = DAY // polls.step
    daily = [signal.level * (1 + signal.swing * math.sin(2 * math.pi * slot / slots + phase)) for slot in range(slots)]
    first = polls.first % DAY // polls.step
    daily = daily[first:] + daily[:first]
    factors = signal.factors()
    return map(operator.mul, itertools.cycle(daily), map(factors.__getitem__, rng.randbytes(polls.count)))


def _counts(signal, values, intervals):
    """Integer counter readings: growth by rate * (time since the previous poll), from `initial`, with resets."""
    growth = map(operator.mul, itertools.islice(values, 1, None), intervals)
    if signal.initial + 10 * signal.level * sum(intervals) < FLOAT_EXACT:  # 10: room for swing and noise
        counts = list(map(int, itertools.accumulate(growth, initial=float(signal.initial))))
    else:  # a 64-bit counter: whole integers, floats would lose the low digits
        counts = list(map(signal.initial.__add__, map(int, itertools.accumulate(growth, initial=0.0))))
    for fraction in signal.resets:
        index = int(fraction * len(counts))
        base = counts[index]
        counts[index:] = [count - base for count in counts[index:]]
    if signal.modulo:
        counts = list(map(signal.modulo.__rmod__, counts))
    return counts


def _template(signals):
    """The %-format of an update string: time, then each DS."""
    fields = ["%d"]
    for signal in signals:
        fields.append(f"%.{signal.decimals}f" if signal.kind == "gauge" else "%d")
    return ":".join(fields)


def _readings(spec):
    """(poll times, "time:value:..." update arguments, times of the counter resets) of a file."""
    rng = random.Random(spec.seed)
    polls = spec.polls
    times = _poll_times(polls, rng)
    intervals = list(map(operator.sub, itertools.islice(times, 1, None), times))
    columns = []
    for signal in spec.signals:
        values = _values(signal, polls, rng)
        columns.append(values if signal.kind == "gauge" else _counts(signal, values, intervals))
    resets = sorted({times[int(f * len(times))] for signal in spec.signals for f in signal.resets})
    keep = _keep_mask(polls)
    if keep.count(0):
        resets = [t for t in resets if keep[times.index(t)]]
        times = list(itertools.compress(times, keep))
        columns = [itertools.compress(column, keep) for column in columns]
    for index, signal in enumerate(spec.signals):
        if signal.kind == "absolute":  # after the outages: a reading counts everything since the previous one
            counts = list(columns[index])
            columns[index] = map(operator.sub, counts, [counts[0]] + counts[:-1])
    return times, list(map(_template(spec.signals).__mod__, zip(times, *columns))), resets


def _write_rrd(root, spec):
    """Create and fill one RRD; return its info."""
    path = os.path.join(root, *spec.path.split("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    times, updates, resets = _readings(spec)
    rrdtool.create(path, *spec.create_args())
    for index in range(0, len(updates), UPDATE_CHUNK):
        rrdtool.update(path, *updates[index:index + UPDATE_CHUNK])
    return spec.describe(times, resets)


def _write_indexed(job):
    root, index, spec = job
    return index, _write_rrd(root, spec)


def _write_all(root, specs, workers):
    """Write the files, in `workers` processes when above 1; infos in the order of `specs`."""
    if workers <= 1 or len(specs) <= 1:
        return [_write_rrd(root, spec) for spec in specs]
    # The biggest files first, one at a time, so that no worker is left with a big one at the end.
    jobs = sorted(((root, index, spec) for index, spec in enumerate(specs)), key=lambda job: -job[2].cost)
    infos = [None] * len(specs)
    with multiprocessing.Pool(min(workers, len(specs))) as pool:
        for index, info in pool.imap_unordered(_write_indexed, jobs, chunksize=1):
            infos[index] = info
    return infos


# --- shared planning helpers ------------------------------------------------------------------------------


def _outage(rng, first, last, step, heartbeat, max_slots):
    """(start, end) of an outage of heartbeat/step+1 .. max_slots polls, so the poll gap beats the heartbeat;
    None when the span is too short."""
    count = (last - first) // step + 1
    slots = rng.randint(heartbeat // step + 1, max(heartbeat // step + 1, max_slots))
    if count < slots + 3:
        return None
    start = first + rng.randrange(1, count - slots - 1) * step
    return (start, start + slots * step)


def _outages(rng, first, last, step, heartbeat, max_slots, count):
    found = (_outage(rng, first, last, step, heartbeat, max_slots) for index in range(count))
    return tuple(outage for outage in found if outage)


def _split(files, per_device):
    """Files per device: at least two devices once there are two files, about `per_device` files each."""
    devices = 1 if files == 1 else max(2, math.ceil(files / per_device))
    return [files // devices + (index < files % devices) for index in range(devices)]


@dataclasses.dataclass(frozen=True)
class _Tree:
    """What every planner needs."""

    seed: int
    end: int
    days: int

    def random(self, label):
        return random.Random(f"{self.seed}:{label}")

    def readings_seed(self, path):
        return f"{self.seed}:readings:{path}"

    def device_polls(self, first, last, step, heartbeat, collector_outages, label):
        """Polls of one device: its own offset and maybe an outage of its own, besides the collector's."""
        rng = self.random(f"device:{label}")
        own = _outages(rng, first, last, step, heartbeat, 24, rng.randrange(2))
        return Polls(first, last, step, rng.randint(*POLL_OFFSETS), POLL_JITTER, collector_outages + own)

    def collector_outages(self, first, last, step, heartbeat):
        rng = self.random("collector")
        return _outages(rng, first, last, step, heartbeat, 36, rng.randint(1, 2))


# --- nav ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Vendor:
    role: str  # sysname prefix
    port: str  # interface file name, numbered by {n}
    specials: tuple  # interface names with characters NAV escapes; each device's first ones


NAV_VENDORS = (
    _Vendor("sw", "Gi0_{n}", ("Port-channel 1 (uplink)", "Gi0_1.100", "Port-channel 2 (sw-02.oslo, lacp)")),
    _Vendor("gw", "ge-0_0_{n}", ("ae0.0", "xe-1_0_0 (core, uplink)", "lo0.16384")),
    _Vendor("hp", "A{n}", ("Trk1 (lacp)", "DEFAULT_VLAN, 1")),
)


def _nav_sysname(index):
    vendor = NAV_VENDORS[index % len(NAV_VENDORS)]
    site = NAV_SITES[index // len(NAV_VENDORS) % len(NAV_SITES)]
    return vendor, f"{vendor.role}-{index // len(NAV_VENDORS) + 1:02d}.{site}.example.org"


def _nav_names(vendor, count):
    """(kind, file) of a device's first `count` files: a special interface, the device files, then interfaces
    with the other specials between ordinary ones."""
    specials = iter(vendor.specials[1:])
    ordinary = (vendor.port.format(n=n) for n in itertools.count(1))
    names = [("interface", f"ports/{vendor.specials[0]}.rrd"), ("cpu", "cpu.rrd"), ("ping", "ping.rrd"),
             ("temperature", f"{NAV_SENSORS_DIR}/temperature.rrd")]
    while len(names) < count:
        port = next(specials, None) if len(names) % 2 else None
        names.append(("interface", f"ports/{port or next(ordinary)}.rrd"))
    return names[:count]


def _nav_signals(kind, rng):
    """The DS and readings of a NAV file of `kind`."""
    if kind == "interface":
        octets = 10 ** rng.uniform(3.5, 7.5)
        errors = 10 ** rng.uniform(-4, -1.5)
        resets = (rng.uniform(0.1, 0.9),) if rng.random() < 0.25 else ()  # a reboot zeroes every counter
        signals = (
            Signal("counter", octets, 0.6, 0.15, initial=rng.randrange(1 << 40), resets=resets),
            Signal("counter", octets * rng.uniform(0.2, 1.5), 0.6, 0.15, initial=rng.randrange(1 << 40), resets=resets),
            Signal("counter", errors, 0.3, 1.0, initial=rng.randrange(1000), resets=resets),
            Signal("counter", errors / 4, 0.3, 1.0, initial=rng.randrange(100), resets=resets),
        )
        return "DERIVE", "0", signals
    if kind == "cpu":
        return "GAUGE", "U", (Signal("gauge", rng.uniform(4, 35), 0.5, 0.2),)
    if kind == "ping":
        return "GAUGE", "U", (Signal("gauge", rng.uniform(0.0004, 0.02), 0.2, 0.3, decimals=6),
                              Signal("gauge", 25, 0, 1.0, decimals=0, sparse=64))
    inlet = rng.uniform(19, 27)
    return "GAUGE", "U", (Signal("gauge", inlet, 0.05, 0.01, decimals=1),
                          Signal("gauge", inlet + rng.uniform(5, 15), 0.05, 0.01, decimals=1))


def _nav_specs(tree, files):
    first = tree.end - tree.days * DAY
    last = tree.end - NAV_STEP  # polled at offset + jitter past it: the last poll comes before `end`
    collector = tree.collector_outages(first, last, NAV_STEP, NAV_HEARTBEAT)
    specs, devices = [], []
    for index, count in enumerate(_split(files, FILES_PER_DEVICE)):
        vendor, sysname = _nav_sysname(index)
        devices.append({"id": sysname, "role": vendor.role})
        polls = tree.device_polls(first, last, NAV_STEP, NAV_HEARTBEAT, collector, sysname)
        for kind, name in _nav_names(vendor, count):
            path = f"{sysname}/{name}"
            dstype, minimum, signals = _nav_signals(kind, tree.random(path))
            sources = tuple(DataSource(f"ds{n}", dstype, NAV_HEARTBEAT, minimum) for n in range(len(signals)))
            specs.append(RrdSpec(path, kind, NAV_STEP, sources, NAV_ARCHIVES, signals, polls,
                                 tree.readings_seed(path), (("device", sysname),)))
    return specs, {"devices": devices}


# --- zenoss ------------------------------------------------------------------------------------------------

ZENOSS_ODD_DEVICE = ("Network/Switch", "sw 01+core")  # device index 1: an id Zenoss paths must carry as is
GAUGE_SUFFIX = "_GAUGE"


def _zenoss_datapoints(count, with_superseded):
    """A device's first `count` datapoints, the eth0 status X_GAUGE third (so that small trees have one), and
    with_superseded the X it replaced right after it."""
    points = [dataclasses.replace(dp, dstype="DERIVE") if dp.dstype == "COUNTER" else dp
              for dp in _datapoints(max(count, len(FIRST_DATAPOINTS)))]
    gauge = next(dp for dp in points if dp.path.endswith(GAUGE_SUFFIX))
    points.remove(gauge)
    points[2:2] = [gauge, dataclasses.replace(gauge, path=gauge.path[:-len(GAUGE_SUFFIX)])][:1 + with_superseded]
    return points[:count]


def _zenoss_devices(files):
    devices = []
    for index, count in enumerate(_split(files, FILES_PER_DEVICE)):
        dclass, prefix = DEVICE_CLASSES[index % len(DEVICE_CLASSES)]
        device_id = f"{prefix}{index // len(DEVICE_CLASSES) + 1:02d}"
        if index == 1:
            dclass, device_id = ZENOSS_ODD_DEVICE
        devices.append(_Device(device_id, dclass, "localhost", _zenoss_datapoints(count, index % 3 == 0)))
    return devices


def _zenoss_signal(dp, rng):
    level = dp.base * rng.uniform(0.6, 1.4) if dp.swing or dp.noise else dp.base  # a status stays 1 (up)
    if dp.dstype == "GAUGE":
        return "U", Signal("gauge", level, dp.swing, dp.noise, decimals=4)
    return "0", Signal("counter", level, dp.swing, dp.noise, initial=rng.randrange(1 << 40))


def _zenoss_file(dp, device, polls, paths, switch):
    """(kind, polls, extra info) of a datapoint's RRD: X.rrd superseded by X_GAUGE.rrd stops polling at
    `switch`, where its X_GAUGE.rrd starts."""
    extra = [("device", device.id), ("object_path", device.path)]
    if dp.path + GAUGE_SUFFIX in paths:
        extra.append(("superseded_by", f"Devices/{device.id}/{dp.path}{GAUGE_SUFFIX}.rrd"))
        return "superseded", dataclasses.replace(polls, last=switch - polls.step), extra
    if dp.path.endswith(GAUGE_SUFFIX):
        replaced = dp.path[:-len(GAUGE_SUFFIX)] in paths
        return "gauge_suffix", dataclasses.replace(polls, first=switch) if replaced else polls, extra
    return dp.dstype.lower(), polls, extra


def _zenoss_specs(tree, files):
    first = tree.end - tree.days * DAY
    last = tree.end - ZENOSS_STEP
    collector = tree.collector_outages(first, last, ZENOSS_STEP, ZENOSS_HEARTBEAT)
    devices = _zenoss_devices(files)
    specs = []
    for device in devices:
        polls = tree.device_polls(first, last, ZENOSS_STEP, ZENOSS_HEARTBEAT, collector, device.id)
        paths = {dp.path for dp in device.datapoints}
        switch = first + int(polls.count * tree.random(f"switch:{device.id}").uniform(0.3, 0.7)) * ZENOSS_STEP
        for dp in device.datapoints:
            path = f"Devices/{device.id}/{dp.path}.rrd"
            minimum, signal = _zenoss_signal(dp, tree.random(path))
            kind, file_polls, extra = _zenoss_file(dp, device, polls, paths, switch)
            source = DataSource("ds0", dp.dstype, ZENOSS_HEARTBEAT, minimum)
            specs.append(RrdSpec(path, kind, ZENOSS_STEP, (source,), ZENOSS_ARCHIVES, (signal,), file_polls,
                                 tree.readings_seed(path), tuple(extra)))
    return specs, devices


def _write_zenoss_extras(tree, out_dir, devices):
    """dmd_uuid.txt and rrdpath.map next to Devices/, as Zenoss 4's export leaves them."""
    dmd_uuid = str(uuid.UUID(int=tree.random("dmd_uuid").getrandbits(128), version=4))
    with open(os.path.join(out_dir, "dmd_uuid.txt"), "w", encoding="utf-8") as out:
        out.write(dmd_uuid + "\n")
    map_path = os.path.join(out_dir, "rrdpath.map")
    with open(map_path, "wb") as out:
        out.write(_rrdpath_map(devices))
    return {"dmd_uuid": dmd_uuid, "rrdpath_map": map_path,
            "devices": [{"id": d.id, "class": d.dclass, "path": d.path} for d in devices]}


# --- fidelity ----------------------------------------------------------------------------------------------

GOOD_VARIANTS = (
    "gauge", "derive_resets", "derive_min0_resets", "counter32_wraps", "counter64", "absolute", "gaps", "late_start",
    "stopped_long_ago", "many_archives", "min_max", "non_dividing", "equal_resolutions", "coarse_longer_than_needed",
    "fine_longer", "multi_ds", "step60", "last_update_unaligned",
)
CORRUPT_VARIANTS = ("corrupt_header", "truncated", "empty", "not_rrd")
VARIANTS = GOOD_VARIANTS + CORRUPT_VARIANTS
MANY_PDPS = (1, 2, 3, 4, 6, 8, 12, 24, 48, 96, 288, 576)


@dataclasses.dataclass(frozen=True)
class _Variant:
    """A fidelity file: (DS name, type, min) and a Signal per DS, its archives and its polls (heartbeat: 2 steps)."""

    sources: tuple
    signals: tuple
    polls: Polls
    archives: tuple = FIDELITY_ARCHIVES

    def spec(self, tree, name):
        sources = tuple(DataSource(ds, dstype, 2 * self.polls.step, minimum) for ds, dstype, minimum in self.sources)
        return RrdSpec(f"{name}.rrd", name, self.polls.step, sources, self.archives, self.signals, self.polls,
                       tree.readings_seed(name))


def _single(dstype, signal, polls, archives=FIDELITY_ARCHIVES, minimum="U"):
    return _Variant((("value", dstype, minimum),), (signal,), polls, archives)


def _gauge(polls, archives=FIDELITY_ARCHIVES):
    return _single("GAUGE", Signal("gauge", 50.0, 0.4, 0.1), polls, archives)


def _gap(polls, fraction, slots):
    """An outage of `slots` polls from `fraction` of the span on."""
    start = polls.first + int((polls.last - polls.first) * fraction) // polls.step * polls.step
    return (start, start + slots * polls.step)


def _fidelity_variants(tree):
    """{name: _Variant} of the good fidelity files, in GOOD_VARIANTS order."""
    step, end, span = FIDELITY_STEP, tree.end, tree.days * DAY
    polls = Polls(end - span, end, step)
    wraps32 = Signal("counter", 5 * 2 ** 32 / span, 0.3, 0.1, initial=2 ** 32 - 10 ** 6, modulo=2 ** 32)
    rate64 = 1.25e9  # a busy 10GbE port in octets: the counter passes 2**64 at about 60 % of the span
    counter64 = Signal("counter", rate64, 0.3, 0.1, initial=2 ** 64 - int(rate64 * span * 0.6), modulo=2 ** 64)
    # The second reset and two gaps fall within the last 2 days, which the finest archives keep.
    recent = 1 - DAY / span / 2
    resets = Signal("counter", 1000.0, 0.3, 0.1, initial=1 << 35, resets=(0.3, max(0.5, recent)))
    gap_shapes = ((0.1, 72), (0.3, max(3, min(3 * DAY, span // 5) // step)), (recent - 0.25 * DAY / span, 12),
                  (recent + 0.25 * DAY / span, 3))
    gaps = tuple(_gap(polls, fraction, slots) for fraction, slots in gap_shapes)
    multi = _Variant(
        (("temp", "GAUGE", "U"), ("octets", "COUNTER", "U"), ("packets", "DERIVE", "0"), ("events", "ABSOLUTE", "U")),
        (Signal("gauge", 40.0, 0.2, 0.05), Signal("counter", 2e5, 0.5, 0.1, initial=1 << 30, modulo=2 ** 32),
         Signal("counter", 300.0, 0.5, 0.2, initial=1 << 20), Signal("absolute", 40.0, 0.5, 0.3)),
        polls)
    variants = {
        "gauge": _gauge(polls),
        "derive_resets": _single("DERIVE", resets, polls),
        "derive_min0_resets": _single("DERIVE", resets, polls, minimum="0"),
        "counter32_wraps": _single("COUNTER", wraps32, polls),
        "counter64": _single("COUNTER", counter64, polls),
        "absolute": _single("ABSOLUTE", Signal("absolute", 50.0, 0.5, 0.3), polls),
        "gaps": _gauge(dataclasses.replace(polls, outages=gaps)),
        "late_start": _gauge(dataclasses.replace(polls, first=end - min(span, 2 * DAY))),
        "stopped_long_ago": _gauge(Polls(end - 200 * DAY - span, end - 200 * DAY, step)),
        "many_archives": _gauge(polls, _archives(("AVERAGE", "MAX", "MIN"), [(pdp, 200) for pdp in MANY_PDPS])),
        "min_max": _gauge(polls, _archives(("AVERAGE", "MAX", "MIN"), NAV_ARCHIVE_SHAPE)),
        "non_dividing": _gauge(polls, _archives(("AVERAGE",), ((1, 600), (3, 400), (4, 400), (10, 300), (7, 300)))),
        "equal_resolutions": _gauge(polls, _archives(("AVERAGE",), ((1, 300), (1, 1000), (12, 400)))),
        "coarse_longer_than_needed": _gauge(polls, _archives(("AVERAGE",), ((1, 600), (12, 8760)))),
        "fine_longer": _gauge(polls, _archives(("AVERAGE",), ((1, 14400), (12, 600), (288, 60)))),
        "multi_ds": multi,
        "step60": _gauge(Polls(end - span, end, 60),
                         _archives(("AVERAGE", "MAX"), ((1, 1440), (5, 2016), (60, 1000), (1440, 400)))),
        "last_update_unaligned": _gauge(Polls(end - span, end - step, step, offset=137)),
    }
    return {name: variants[name] for name in GOOD_VARIANTS}


def _fidelity_specs(tree):
    return [variant.spec(tree, name) for name, variant in _fidelity_variants(tree).items()]


def _write_corrupt(out_dir):
    """The bad files, from good ones already written; their names relative to out_dir."""
    header = os.path.join(out_dir, "corrupt_header.rrd")
    shutil.copyfile(os.path.join(out_dir, "gauge.rrd"), header)
    with open(header, "r+b") as out:
        out.seek(16)  # past the "RRD" cookie and the version: the float cookie and the counts are gone
        out.write(b"\xff" * 48)
    truncated = os.path.join(out_dir, "truncated.rrd")
    shutil.copyfile(os.path.join(out_dir, "multi_ds.rrd"), truncated)
    os.truncate(truncated, os.path.getsize(truncated) // 2)
    with open(os.path.join(out_dir, "empty.rrd"), "wb"):
        pass
    with open(os.path.join(out_dir, "not_rrd.rrd"), "w", encoding="utf-8") as out:
        out.write("This is not an RRD file but a note someone left in the RRD directory.\n")
    return [f"{name}.rrd" for name in CORRUPT_VARIANTS]


# --- entry points ------------------------------------------------------------------------------------------


def build_tree(out_dir, style="nav", files=DEFAULT_FILES, seed=0, days=None, end=DEFAULT_END, workers=1):
    """Write a tree of RRD files of `style` (one of STYLES) into `out_dir` and describe it.

    files: how many RRDs (nav and zenoss; fidelity makes one per variant). days: history length, by default
    365 (nav, zenoss) or 40 (fidelity). end: the epoch the data ends at, rounded down to a multiple of 300.
    workers: processes writing files in parallel.

    Returns a dict: root, style, seed, end, days, files (one dict per RRD: path relative to root, kind, ds
    [{name, type, heartbeat, min, max}], step, rras [{cf, pdp_per_row, rows}], first_update, last_update,
    updates, and resets, device, object_path, superseded_by where they apply), corrupt (relative paths of
    the bad files, fidelity only); nav and zenoss add devices [{id, ...}], zenoss dmd_uuid and rrdpath_map
    (path of the map file).
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, not {style!r}")
    days = DEFAULT_DAYS[style] if days is None else days
    if days < 1 or (style != "fidelity" and files < 1) or workers < 1:
        raise ValueError("days, files and workers must be at least 1")
    tree = _Tree(seed, int(end) // ALIGN * ALIGN, days)
    os.makedirs(out_dir, exist_ok=True)
    info = {"root": out_dir, "style": style, "seed": seed, "end": tree.end, "days": days}
    if style == "nav":
        specs, extra = _nav_specs(tree, files)
    elif style == "zenoss":
        specs, devices = _zenoss_specs(tree, files)
        extra = _write_zenoss_extras(tree, out_dir, devices)
    else:
        specs, extra = _fidelity_specs(tree), {}
    info["files"] = _write_all(out_dir, specs, workers)
    info["corrupt"] = _write_corrupt(out_dir) if style == "fidelity" else []
    info.update(extra)
    return info


def dump_xml(path, out_path):
    """`rrdtool dump` of `path` into `out_path`: the portable XML form, as another architecture would hand it over."""
    subprocess.run(["rrdtool", "dump", path, out_path], check=True, capture_output=True)
    return out_path


def main(argv=None):
    parser = argparse.ArgumentParser(description="Build a tree of realistic RRD files (NAV, Zenoss or fidelity cases).")
    parser.add_argument("out_dir")
    parser.add_argument("--style", choices=STYLES, default="nav")
    parser.add_argument("--files", type=int, default=DEFAULT_FILES, help="number of RRDs (nav, zenoss)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--days", type=int, help="days of history (default 365, fidelity 40)")
    parser.add_argument("--end", type=int, default=DEFAULT_END, help=f"epoch the data ends at (default {DEFAULT_END})")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    started = time.monotonic()
    info = build_tree(args.out_dir, style=args.style, files=args.files, seed=args.seed, days=args.days,
                      end=args.end, workers=args.workers)
    json.dump(info, sys.stdout, indent=2)
    print()
    print(f"built {len(info['files'])} RRDs in {info['root']} in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
