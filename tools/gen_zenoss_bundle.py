"""Build a realistic Zenoss 4 export bundle (what Zenoss's ``export4.py`` writes) for the demo, tests and benchmarks.

Layout of the bundle, an uncompressed tar whose members come in export4.py's order (make_export_tar: one
`tar -C <dir> -rf <bundle> <name>` each; zenoss/zenoss.toolbox src/zenoss/toolbox/import4tools/export4.py)::

    4x-export-YYYYmmdd-HHMMSS.tar
      componentList.txt          "### components for <device path>", then one component path a line
      rrdpath.map                "<rrdPath()>|<primary path>" for every device and monitored component
                                 (always written by export4; --no-rrdpath-map makes an older-style bundle)
      dmd_uuid.txt               the dmd UUID and a newline
      <hub>-<collector>-perf-backup-<ts>.tgz    one per remote collector (not with --perf none): the
                                 collector's `zenbackup --no-eventsdb --no-zodb`, zenbackup/{etc.tar, perf.tar}
                                 (--remote-layout bare: a gzip'd perf/ tree, what this tool made before)
      flexera/                   directory entry, then the licence files                   (optional)
      zenbackup_4x.tgz           `tar czfC <out> <tmp> zenbackup` (--tgz-name dated: zenbackup_YYYYMMDD.tgz, the
                                 name export4 0.8.x left to zenbackup), members in ZenBackup.makeBackup's order:
          zenbackup/               the directory (mode 0750)
          backup.settings          [zenbackup] ini of the DB settings (ZenBackup.saveSettings)
          zep.sql.gz               mysqldump --routines of ``zenoss_zep``, DEFINER comments stripped, written
                                   by Python's gzip (FNAME zep.sql)                       (optional)
          zep.tar                  zeneventserver/index/{summary,archive}/...             (optional)
          etc.tar                  etc/ ($ZENHOME/etc)
          zodb.sql.gz              mysqldump --hex-blob of the RelStorage model DB ``zodb`` (| gzip -c)
          zodb_session.sql.gz      the --no-data dump zenbackup 4.2 makes (of ``zodb``: ZenDB dumps its own DB)
          ZenPacks.tar             ZenPacks/ZenPacks.zenoss.<Name>-<ver>-py2.7.egg/...
          bin.tar                  bin/ ($ZENHOME/bin)
          zencatalogservice.tar    zencatalogservice/global_catalog/index/...             (optional)
          perf.tar | perf.tar.gz   `tar chfC perf.tar $ZENHOME perf`: perf/Daemons/<daemon>/<monitor>_<dp>.rrd and
                                   perf/Devices/<device>/[<component>/]<dp>.rrd, real RRDs  (optional)
      backup.md5                 `md5sum -b <tmp>/backups/zenbackup_4x.tgz`: "<md5> *<absolute path>"

The same arguments give the same content: data comes from PRNGs seeded with ``seed`` and every timestamp
derives from ``end`` (default 2018-06-01 12:00 UTC), the time the export is supposed to have been taken.
Without perf data the bytes are the same too; RRD files are not byte-identical, because rrdtool starts each
archive at a random row (their data, as rrdtool fetch returns it, is the same).

``pad_bytes`` adds that many bytes of incompressible bulk so a benchmark can get a bundle of any size:
a quarter goes into zep.sql.gz as event_archive rows with hex payloads, the rest into the event index
(zep.tar), or all of it into whichever of the two exists (the catalog index stands in for zep.tar when
there are no events).

Bad bundles, ``build_bundle(..., variant=NAME)``, each with exactly one defect:

    md5_mismatch          backup.md5 holds a wrong digest
    missing_md5           no backup.md5 member
    missing_zenpacks      the tgz has no zenbackup/ZenPacks.tar (a required member)
    missing_zodb          the tgz has no zenbackup/zodb.sql.gz (a required member)
    both_perf             the tgz has both perf.tar and perf.tar.gz
    zodb_no_insert        zodb.sql.gz holds the schema only, no INSERT INTO (Import4 refuses it)
    truncated             the outer tar is cut in half (inside a 512-byte block)
    corrupt_gzip          bytes flipped mid-stream in the tgz; backup.md5 has the digest from before,
                          so the md5 check fails first
    corrupt_gzip_md5_ok   the same corruption, but backup.md5 matches the corrupt tgz, so only
                          decompressing it finds the damage
    traversal             outer member "../../tmp/ferry-evil.txt"
    absolute_path         outer member "/tmp/ferry-evil.txt"
    symlink_outside       outer symlink "passwd" -> "../../etc/passwd"
    hardlink_outside      outer hard link "shadow" -> "../../etc/passwd"
    device_file           outer character device "mem" (1, 1)
    fifo                  outer FIFO "zenhub.fifo"
    setuid                outer regular file "zensocket" with mode 04755
    tgz_<one of the seven above>   the same hostile member inside the tgz, under zenbackup/ (the
                          absolute path stays absolute)

Usage: python tools/gen_zenoss_bundle.py OUT_DIR [--devices N] [--rrds-per-device N] [--perf tar|tar.gz|none]
       [--pad-mb N] [--seed N] [--remote-collectors N] [--remote-layout zenbackup|bare] [--tgz-name 4x|dated]
       [--days N] [--variant NAME] [--no-daemons] ... (see --help);
       prints the info dict returned by build_bundle() as JSON.
"""

import argparse
import contextlib
import dataclasses
import functools
import hashlib
import io
import itertools
import json
import math
import os
import pickle
import random
import re
import shutil
import struct
import sys
import tarfile
import tempfile
import time
import uuid
import zlib

import rrdtool

__all__ = ["build_bundle", "VARIANTS", "DEFAULT_END"]

DEFAULT_END = 1527854400  # 2018-06-01 12:00:00 UTC, during Zenoss 4's last years
STEP = 300
HEARTBEAT = 3 * STEP
# Zenoss 4's default RRD create command: the archives of every datapoint's RRD.
RRAS = (
    "RRA:AVERAGE:0.5:1:600",
    "RRA:AVERAGE:0.5:6:600",
    "RRA:AVERAGE:0.5:24:600",
    "RRA:AVERAGE:0.5:288:600",
    "RRA:MAX:0.5:6:600",
    "RRA:MAX:0.5:24:600",
    "RRA:MAX:0.5:288:600",
)
GZIP_LEVEL = 6
EVENTS_PAD_SHARE = 0.25
PAD_ROW_HEX = 32768  # hex characters of payload per padding event row: big rows keep Python overhead low
INDEX_SEGMENT_MAX = 256 << 20
COPY_BUFSIZE = 1 << 20
ZENOSS_UID = 1337
EVENTS_PER_DEVICE = 24
PERF_FORMATS = ("tar", "tar.gz", "none")
LOCAL_COLLECTOR = "localhost"
HUB = "localhost"

# (device class, device id prefix); devices take them in turn: web01, db01, rtr01, win01, web02, ...
DEVICE_CLASSES = (
    ("Server/Linux", "web"),
    ("Server/Linux", "db"),
    ("Network/Router/Cisco", "rtr"),
    ("Server/Windows", "win"),
)


@dataclasses.dataclass(frozen=True)
class _Datapoint:
    """One RRD: its path under perf/Devices/<device>/ (without .rrd) and a rough signal shape."""

    path: str
    dstype: str
    base: float  # GAUGE level, or counter rate per second for DERIVE/COUNTER
    swing: float  # relative daily swing
    noise: float  # relative gaussian noise

    def for_component(self, index):
        """This datapoint on interface eth<index> / the index-th filesystem."""
        cycle, fs_index = divmod(index, len(FILESYSTEMS))
        filesystem = FILESYSTEMS[fs_index] + (str(cycle) if cycle else "")
        return dataclasses.replace(self, path=self.path.format(eth=f"eth{index}", fs=filesystem))


FILESYSTEMS = ("boot", "var", "home", "opt", "srv", "tmp")
# Hand-ordered so that even a few RRDs per device mix device-level and component datapoints.
FIRST_DATAPOINTS = (
    _Datapoint("laLoadInt5_laLoadInt5", "GAUGE", 1.2, 0.6, 0.15),
    _Datapoint("os/interfaces/eth0/ifHCInOctets_ifHCInOctets", "DERIVE", 2.5e6, 0.7, 0.1),
    _Datapoint("os/interfaces/eth0/ifHCOutOctets_ifHCOutOctets", "DERIVE", 1.1e6, 0.7, 0.1),
    _Datapoint("memAvailReal_memAvailReal", "GAUGE", 2.1e9, 0.2, 0.02),
    _Datapoint("os/filesystems/boot/usedBlocks_usedBlocks", "GAUGE", 4.2e5, 0.01, 0.001),
    _Datapoint("ssCpuRawIdle_ssCpuRawIdle", "DERIVE", 380.0, 0.1, 0.03),
    _Datapoint("os/interfaces/eth0/ifInErrors_ifInErrors", "COUNTER", 0.02, 0.5, 0.5),
    _Datapoint("os/interfaces/eth0/ifOperStatus_ifOperStatus_GAUGE", "GAUGE", 1.0, 0.0, 0.0),
)
# Repeated for eth1/var, eth2/home, ... once FIRST_DATAPOINTS is used up.
COMPONENT_DATAPOINTS = (
    _Datapoint("os/interfaces/{eth}/ifHCInOctets_ifHCInOctets", "DERIVE", 8e5, 0.7, 0.1),
    _Datapoint("os/interfaces/{eth}/ifHCOutOctets_ifHCOutOctets", "DERIVE", 4e5, 0.7, 0.1),
    _Datapoint("os/filesystems/{fs}/usedBlocks_usedBlocks", "GAUGE", 2.6e6, 0.01, 0.001),
    _Datapoint("os/interfaces/{eth}/ifInErrors_ifInErrors", "COUNTER", 0.01, 0.5, 0.5),
    _Datapoint("os/interfaces/{eth}/ifOperStatus_ifOperStatus_GAUGE", "GAUGE", 1.0, 0.0, 0.0),
)
BASE_COMPONENTS = ("os/interfaces/eth0", "os/filesystems/boot")  # every device has these, RRDs or not
# The collector daemons' own statistics (Products.ZenUtils.DaemonStats): perf/Daemons/<daemon>/<monitor>_<name>.rrd.
# Zenoss 5 does not take them: the converters skip them and bundle_check counts them apart.
DAEMON_DATAPOINTS = (
    _Datapoint("zenperfsnmp/{monitor}_cycleTime", "GAUGE", 42.0, 0.2, 0.1),
    _Datapoint("zenperfsnmp/{monitor}_dataPoints", "DERIVE", 30.0, 0.1, 0.05),
    _Datapoint("zenping/{monitor}_cycleTime", "GAUGE", 3.5, 0.2, 0.1),
    _Datapoint("zenping/{monitor}_eventCount", "DERIVE", 0.01, 0.5, 0.5),
)

ZENPACKS = (("LinuxMonitor", "1.2.1"), ("PySamba", "1.0.2"), ("WindowsMonitor", "1.1.6"), ("CiscoMonitor", "5.1.1"))

# (event class, severity, summary, component relation the event is about or None for the device)
EVENT_TEMPLATES = (
    ("/Perf/CPU", 4, "threshold of high load exceeded: current value {value:.2f}", None),
    ("/Perf/Memory", 3, "memory threshold exceeded: {value:.0f}% used", None),
    ("/Net/Link", 4, "Interface {component} is down", "interfaces"),
    ("/Perf/Interface", 3, "threshold of {component} utilization exceeded: current value {value:.1f}%", "interfaces"),
    ("/Perf/Filesystem", 3, "disk space threshold: {value:.1f}% used on {component}", "filesystems"),
    ("/Status/Snmp", 4, "SNMP agent down", None),
    ("/Status/Ping", 5, "{device} is DOWN!", None),
    ("/Change/Set/UnknownClass", 2, "Device {device} remodeled", None),
)
PAD_EVENT_TEMPLATE = ("/Unknown", 2, "snmp trap enterprises.9.9.41.2.0.1 from {device}", None)
AGENTS = ("zenperfsnmp", "zenping", "zenmodeler", "zentrap", "zenprocess")
SUMMARY_STATUSES = (0, 0, 1)  # NEW, NEW, ACKNOWLEDGED
ARCHIVE_STATUSES = (3, 4, 4, 6)  # CLOSED, CLEARED, CLEARED, AGED


# --- streams ---------------------------------------------------------------------------------------------


class _GzipWriter:
    """Single-member gzip stream whose deflate level can change along the way.

    A change ends the current deflate segment with a full flush and starts a fresh compressor, the way pigz
    joins blocks: the result is one ordinary gzip member, yet random bulk can be stored (level 0) at disk
    speed while everything else stays compressed. Deflate stores random data anyway, only much slower.
    """

    def __init__(self, raw, level, mtime, fname=None):
        self._raw = raw
        self._crc = 0
        self._size = 0
        self.compressed_size = 0
        self._mode = None
        self._deflate = None
        if fname is None:  # gzip -c of a pipe: no name, OS Unix
            self._emit(b"\x1f\x8b\x08\x00" + struct.pack("<I", mtime) + b"\x00\x03")
        else:  # Python 2's gzip.open(): FNAME, XFL 2 (level 9), OS 255
            self._emit(b"\x1f\x8b\x08\x08" + struct.pack("<I", mtime) + b"\x02\xff" + fname.encode() + b"\x00")
        self.set_level(level)

    def set_level(self, level, strategy=zlib.Z_DEFAULT_STRATEGY):
        if (level, strategy) == self._mode:
            return
        if self._deflate is not None:
            self._emit(self._deflate.flush(zlib.Z_FULL_FLUSH))
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, 8, strategy)
        self._mode = (level, strategy)

    def write(self, data):
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self._emit(self._deflate.compress(data))
        return len(data)

    def tell(self):
        """Uncompressed offset: what tarfile expects of its file object."""
        return self._size

    def close(self):
        self._emit(self._deflate.flush(zlib.Z_FINISH))
        self._emit(struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))

    def _emit(self, data):
        if data:
            self._raw.write(data)
            self.compressed_size += len(data)


class _ByteSource:
    """Cheap incompressible-ish bytes: slices of a seeded random pool taken at random offsets.

    Deflate only looks 32 KiB back, so a pool of a few MiB reused at random offsets defeats it while costing
    a memcpy per chunk instead of PRNG work per byte; the output still depends on the seed only.
    """

    def __init__(self, rng, pool_size):
        self._rng = rng
        self._pool = rng.randbytes(pool_size)
        self._hex_pool = None

    def read(self, size):
        return b"".join(self._slices(self._pool, size))

    def hex(self, size):
        if self._hex_pool is None:
            self._hex_pool = self._pool.hex()
        return "".join(self._slices(self._hex_pool, size))

    def stream(self, size):
        """A file-like object yielding `size` bytes, for tarfile.addfile."""
        return _SizedReader(self, size)

    def _slices(self, pool, size):
        limit = len(pool) // 2
        while size > 0:
            take = min(size, limit)
            offset = self._rng.randrange(len(pool) - take + 1)
            yield pool[offset:offset + take]
            size -= take


class _SizedReader:
    def __init__(self, source, size):
        self._source = source
        self._left = size

    def read(self, size=-1):
        size = self._left if size < 0 else min(size, self._left)
        self._left -= size
        return self._source.read(size)

    def close(self):
        pass


class _Sink:
    """Write-through wrapper counting (and optionally hashing) one member's content as it is produced."""

    def __init__(self, out, digest=None):
        self._out = out
        self.offset = out.tell()  # where the content starts in `out`
        self.size = 0
        self.digest = digest

    def write(self, data):
        self._out.write(data)
        self.size += len(data)
        if self.digest is not None:
            self.digest.update(data)
        return len(data)

    def tell(self):
        """Offset within the member: a tar written into it pads itself relative to its own start."""
        return self.size


@dataclasses.dataclass(frozen=True)
class _Entry:
    """A file to put in a tar: member name, size, and a callable returning a readable object with its content."""

    name: str
    size: int
    open: object

    @classmethod
    def of_bytes(cls, name, data):
        return cls(name, len(data), lambda: io.BytesIO(data))

    @classmethod
    def of_file(cls, name, path):
        return cls(name, os.path.getsize(path), lambda: open(path, "rb"))  # pylint: disable=consider-using-with

    @classmethod
    def of_random(cls, name, size, source):
        return cls(name, size, lambda: source.stream(size))


def _tarinfo(name, mtime=0, kind=tarfile.REGTYPE, mode=0o644, size=0):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime = kind, mode, size, mtime
    info.uid = info.gid = ZENOSS_UID
    info.uname = info.gname = "zenoss"
    return info


def _header(info):
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


def _dirname(name):
    return name.rpartition("/")[0]


def _parents(name):
    """"a/b/c" -> ["a", "a/b"]: the directories `tar cf` lists before a file."""
    parts = [part for part in name.split("/")[:-1] if part]
    return ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]


def _round_up(size, unit):
    return -(-size // unit) * unit


def _tar_size(entries):
    """The exact size of the tar _TarWriter makes of `entries`, so that it can be streamed into its parent."""
    seen, size = set(), 0
    for entry in entries:
        for directory in _parents(entry.name):
            if directory not in seen:
                seen.add(directory)
                size += len(_header(_tarinfo(directory, kind=tarfile.DIRTYPE)))
        size += len(_header(_tarinfo(entry.name, size=entry.size))) + _round_up(entry.size, tarfile.BLOCKSIZE)
    return _round_up(size + 2 * tarfile.BLOCKSIZE, tarfile.RECORDSIZE)


class _TarWriter:
    """Tar writer giving members zenoss ownership, a fixed mtime and their parent directories, like `tar cf`."""

    def __init__(self, fileobj, mtime):
        self.fileobj = fileobj
        self.tar = tarfile.open(  # pylint: disable=consider-using-with  # closed by close()
            fileobj=fileobj, mode="w", format=tarfile.GNU_FORMAT, encoding="utf-8")
        self.tar.copybufsize = COPY_BUFSIZE
        self.names = []
        self._mtime = mtime
        self._dirs = set()

    def add(self, entry):
        self.add_dirs(entry.name)
        with contextlib.closing(entry.open()) as content:
            self.add_member(self.info(entry.name, size=entry.size), content)

    def add_bytes(self, name, data):
        self.add(_Entry.of_bytes(name, data))

    def add_dirs(self, name):
        """Add the parent directories of `name` that are not there yet."""
        for directory in _parents(name):
            if directory not in self._dirs:
                self._dirs.add(directory)
                self.add_member(self.info(directory, tarfile.DIRTYPE, 0o755))

    def add_dir(self, name, mode=0o755):
        """A directory entry of its own mode, after its parents."""
        self.add_dirs(name)
        if name not in self._dirs:
            self._dirs.add(name)
            self.add_member(self.info(name, tarfile.DIRTYPE, mode))

    def add_member(self, info, fileobj=None):
        """Add `info` as given: the hostile members of the bad variants come through here."""
        self.tar.addfile(info, fileobj)
        self.names.append(info.name)

    @contextlib.contextmanager
    def member(self, name, size=None, digest=None):
        """Yield a _Sink taking the content of member `name` as it is produced, instead of staging it in a file.

        Given `size`, the header goes first and any stream will do (a tar inside the gzip of a tgz). Without,
        the header is written last over a placeholder, which needs a seekable file: the outer tar.
        """
        self.add_dirs(name)
        start = self.fileobj.tell()
        placeholder = _header(self.info(name, size=size or 0))
        if size is None and len(placeholder) != tarfile.BLOCKSIZE:
            raise ValueError(f"name too long for a header written afterwards: {name}")
        self.fileobj.write(placeholder)
        sink = _Sink(self.fileobj, digest)
        yield sink
        if size is None:
            end = self.fileobj.tell()
            self.fileobj.seek(start)
            self.fileobj.write(_header(self.info(name, size=sink.size)))
            self.fileobj.seek(end)
        elif sink.size != size:
            raise RuntimeError(f"{name}: {sink.size} bytes written, {size} announced")
        self.fileobj.write(tarfile.NUL * (-sink.size % tarfile.BLOCKSIZE))
        self.tar.offset = self.fileobj.tell()  # tarfile pads the archive to whole records from there on close
        self.names.append(name)

    def info(self, name, kind=tarfile.REGTYPE, mode=0o644, size=0):
        return _tarinfo(name, self._mtime, kind, mode, size)

    def close(self):
        self.tar.close()


def _write_tar(out, entries, mtime, gzip_level=None):
    """Write `entries` as a tar into the file object `out`, gzip'd when gzip_level is given."""
    gz = _GzipWriter(out, gzip_level, mtime) if gzip_level is not None else None
    tar = _TarWriter(gz or out, mtime)
    for entry in entries:
        tar.add(entry)
    tar.close()
    if gz:
        gz.close()


@contextlib.contextmanager
def _gzip_file(path, mtime, level=GZIP_LEVEL, fname=None):
    with open(path, "wb") as raw:
        gz = _GzipWriter(raw, level, mtime, fname)
        yield gz
        gz.close()


def _md5_region(fileobj, offset, size):
    """MD5 of `size` bytes at `offset` of a read/write file, leaving its position as it was."""
    position = fileobj.tell()
    fileobj.seek(offset)
    digest = hashlib.md5()
    while size > 0:
        chunk = fileobj.read(min(size, 4 * COPY_BUFSIZE))
        digest.update(chunk)
        size -= len(chunk)
    fileobj.seek(position)
    return digest.hexdigest()


def _flip_bytes(fileobj, offset, count=16):
    """Invert `count` bytes at `offset` in place, leaving the file position as it was."""
    position = fileobj.tell()
    fileobj.seek(offset)
    damaged = bytes(byte ^ 0xFF for byte in fileobj.read(count))
    fileobj.seek(offset)
    fileobj.write(damaged)
    fileobj.seek(position)


# --- the model: devices, their components and RRDs -----------------------------------------------------


@dataclasses.dataclass
class _Device:
    id: str
    dclass: str
    collector: str
    datapoints: list

    @property
    def path(self):
        return f"/zport/dmd/Devices/{self.dclass}/devices/{self.id}"

    @functools.cached_property
    def components(self):
        found = {_dirname(dp.path) for dp in self.datapoints} | set(BASE_COMPONENTS)
        return sorted(found - {""})

    def rrd_members(self):
        return [f"perf/Devices/{self.id}/{dp.path}.rrd" for dp in self.datapoints]


def _datapoints(count):
    specs = list(FIRST_DATAPOINTS)
    index = 1
    while len(specs) < count:
        specs.extend(dp.for_component(index) for dp in COMPONENT_DATAPOINTS)
        index += 1
    return specs[:count]


def _plan_devices(count, rrds_per_device, remote_collectors):
    """Devices in turn over DEVICE_CLASSES, and over the collectors (the local one first)."""
    collectors = [LOCAL_COLLECTOR] + [f"collector{n}" for n in range(1, remote_collectors + 1)]
    datapoints = _datapoints(rrds_per_device)
    devices = []
    for index in range(count):
        dclass, prefix = DEVICE_CLASSES[index % len(DEVICE_CLASSES)]
        device_id = f"{prefix}{index // len(DEVICE_CLASSES) + 1:02d}"
        devices.append(_Device(device_id, dclass, collectors[index % len(collectors)], datapoints))
    return collectors, devices


# --- performance data ------------------------------------------------------------------------------------


def _update_times(rng, start, end):
    """Poll times from start to end, minus one collector outage of 30-90 minutes (RRDs show it as unknown)."""
    gap = rng.randrange(2, 6) * 3 * STEP
    gap_start = rng.randrange(start + gap, end - 2 * gap, STEP)
    return [t for t in range(start, end + 1, STEP) if not gap_start <= t < gap_start + gap]


def _samples(dp, rng, times):
    """Plausible values: a daily sine around a per-RRD level plus noise; counters integrate the rate."""
    level = dp.base * rng.uniform(0.6, 1.4)
    phase = rng.uniform(0, 2 * math.pi)
    counter = rng.randrange(1 << 40) if dp.dstype == "DERIVE" else rng.randrange(1 << 20)
    for t in times:
        value = level * (1 + dp.swing * math.sin(2 * math.pi * t / 86400 + phase)) * (1 + rng.gauss(0, dp.noise))
        value = max(value, 0.0)
        if dp.dstype == "GAUGE":
            yield f"{t}:{value:.4f}"
        else:
            counter += int(value * STEP)
            yield f"{t}:{counter}"


def _write_rrd(path, dp, rng, times):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    minimum = "U" if dp.dstype == "GAUGE" else "0"
    rrdtool.create(path, "--start", str(times[0] - STEP), "--step", str(STEP),
                   f"DS:ds0:{dp.dstype}:{HEARTBEAT}:{minimum}:U", *RRAS)
    rrdtool.update(path, *_samples(dp, rng, times))  # one call per file: far faster than one per value


def _daemon_rrds(build, collector):
    """(member, datapoint) of the daemons' RRDs of `collector` (none without opts.with_daemons)."""
    if not build.opts.with_daemons:
        return []
    return [(f"perf/Daemons/{dp.path.format(monitor=collector)}.rrd", dp) for dp in DAEMON_DATAPOINTS]


def _write_rrds(build):
    """RRDs under stage/perf/<collector>/perf/: Devices/<device>/... for every device, Daemons/... per collector."""
    start = build.end - build.opts.days * 86400
    for device in build.devices:
        rng = build.random(f"perf:{device.id}")
        times = _update_times(rng, start, build.end)
        for dp, member in zip(device.datapoints, device.rrd_members()):
            _write_rrd(os.path.join(build.perf_root(device.collector), member), dp, rng, times)
    for collector in build.collectors:
        rng = build.random(f"perf:daemons:{collector}")
        times = _update_times(rng, start, build.end)
        for member, dp in _daemon_rrds(build, collector):
            _write_rrd(os.path.join(build.perf_root(collector), member), dp, rng, times)


def _perf_entries(build, collector):
    """What `tar chfC perf.tar $ZENHOME perf` takes on `collector`: perf/Daemons/... then perf/Devices/... of the
    devices it polls (GNU tar lists a directory in readdir order; this is ls order)."""
    root = build.perf_root(collector)
    members = [member for member, _dp in _daemon_rrds(build, collector)]
    members += [member for device in build.devices if device.collector == collector
                for member in device.rrd_members()]
    return [_Entry.of_file(member, os.path.join(root, member)) for member in members]


# --- SQL dumps -------------------------------------------------------------------------------------------

_SQL_ESCAPES = str.maketrans({"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\0": "\\0", "\x1a": "\\Z"})


def _sql_literal(value):
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return "0x" + value.hex() if value else "''"  # mysqldump --hex-blob
    if isinstance(value, (int, float)):
        return repr(value)
    if any(char in value for char in "\\'\n\r\0\x1a"):  # a few fast scans spare translating long hex payloads
        value = value.translate(_SQL_ESCAPES)
    return "'" + value + "'"


# zenbackup's strip_definer (Products/ZenUtils/ZenBackup.py, ZEN-326): the DEFINER comment of short lines starting
# with "/*" goes, so the dump restores on a server without that user. (Its zodb pipe's perl filter is quoted into a
# no-op: zodb.sql.gz keeps any DEFINER; RelStorage's schema has none.)
DEFINER_PATTERN = re.compile(r"/\*((?!/\*).)*DEFINER.*?\*/")


def strip_definer(line):
    if not line.startswith("/*") or len(line) > 500:
        return line
    return DEFINER_PATTERN.sub("", line)


class _SqlDump:
    """Writes what `mysqldump --opt --hex-blob` prints: header, then per table DDL and extended INSERTs."""

    MAX_STATEMENT = 1 << 20  # mysqldump's default net_buffer_length cap for one extended INSERT

    def __init__(self, out, database, when):
        self._out = out
        self._when = when
        self._write(
            "-- MySQL dump 10.13  Distrib 5.5.40, for Linux (x86_64)\n--\n"
            f"-- Host: localhost    Database: {database}\n"
            "-- ------------------------------------------------------\n-- Server version\t5.5.40\n\n"
            "/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;\n"
            "/*!40101 SET @OLD_CHARACTER_SET_RESULTS=@@CHARACTER_SET_RESULTS */;\n"
            "/*!40101 SET @OLD_COLLATION_CONNECTION=@@COLLATION_CONNECTION */;\n"
            "/*!40101 SET NAMES utf8 */;\n"
            "/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;\n"
            "/*!40103 SET TIME_ZONE='+00:00' */;\n"
            "/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;\n"
            "/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;\n"
            "/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;\n"
            "/*!40111 SET @OLD_SQL_NOTES=@@SQL_NOTES, SQL_NOTES=0 */;\n"
        )

    def table(self, name, ddl, rows=None):
        """A table's DDL, then its rows unless `rows` is None (mysqldump --no-data)."""
        columns = ",\n  ".join(ddl)
        self._write(
            f"\n--\n-- Table structure for table `{name}`\n--\n\n"
            f"DROP TABLE IF EXISTS `{name}`;\n"
            "/*!40101 SET @saved_cs_client     = @@character_set_client */;\n"
            "/*!40101 SET character_set_client = utf8 */;\n"
            f"CREATE TABLE `{name}` (\n  {columns}\n) ENGINE=InnoDB DEFAULT CHARSET=utf8;\n"
            "/*!40101 SET character_set_client = @saved_cs_client */;\n"
        )
        if rows is None:
            return
        self._write(
            f"\n--\n-- Dumping data for table `{name}`\n--\n\n"
            f"LOCK TABLES `{name}` WRITE;\n/*!40000 ALTER TABLE `{name}` DISABLE KEYS */;\n"
        )
        batch, size = [], 0
        for row in rows:
            batch.append("(" + ",".join(map(_sql_literal, row)) + ")")
            size += len(batch[-1])
            if size >= self.MAX_STATEMENT:
                self._insert(name, batch)
                batch, size = [], 0
        if batch:
            self._insert(name, batch)
        self._write(f"/*!40000 ALTER TABLE `{name}` ENABLE KEYS */;\nUNLOCK TABLES;\n")

    def routines(self, database, procedures):
        """mysqldump --routines: each (name, body) a procedure, its DEFINER comment stripped as zenbackup does."""
        self._write(f"\n--\n-- Dumping routines for database '{database}'\n--\n")
        for name, body in procedures:
            self._write(
                f"/*!50003 DROP PROCEDURE IF EXISTS `{name}` */;\n"
                "/*!50003 SET @saved_cs_client      = @@character_set_client */ ;\n"
                "/*!50003 SET character_set_client  = utf8 */ ;\n"
                "/*!50003 SET @saved_sql_mode       = @@sql_mode */ ;\n"
                "/*!50003 SET sql_mode              = '' */ ;\n"
                "DELIMITER ;;\n"
                + "".join(strip_definer(line) for line in io.StringIO(
                    f"/*!50003 CREATE*/ /*!50020 DEFINER=`root`@`localhost`*/ /*!50003 PROCEDURE `{name}`()\n"
                    f"{body} */;;\n"))
                + "DELIMITER ;\n"
                "/*!50003 SET sql_mode              = @saved_sql_mode */ ;\n"
                "/*!50003 SET character_set_client  = @saved_cs_client */ ;\n"
            )

    def close(self):
        self._write(
            "/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;\n\n"
            "/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;\n"
            "/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;\n"
            "/*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;\n"
            "/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;\n"
            "/*!40101 SET CHARACTER_SET_RESULTS=@OLD_CHARACTER_SET_RESULTS */;\n"
            "/*!40101 SET COLLATION_CONNECTION=@OLD_COLLATION_CONNECTION */;\n"
            "/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;\n\n"
            f"-- Dump completed on {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(self._when))}\n"
        )

    def _insert(self, name, batch):
        self._write(f"INSERT INTO `{name}` VALUES {','.join(batch)};\n")

    def _write(self, text):
        self._out.write(text.encode("utf-8"))


# RelStorage's history-free MySQL schema, as Zenoss 4 used it for zodb.
ZODB_TABLES = {
    "new_oid": ["`zoid` bigint(20) NOT NULL AUTO_INCREMENT", "PRIMARY KEY (`zoid`)"],
    "object_state": ["`zoid` bigint(20) NOT NULL", "`tid` bigint(20) NOT NULL", "`state_size` bigint(20) NOT NULL",
                     "`state` longblob", "PRIMARY KEY (`zoid`)", "KEY `object_state_tid` (`tid`)"],
    "object_ref": ["`zoid` bigint(20) NOT NULL", "`to_zoid` bigint(20) NOT NULL", "`tid` bigint(20) NOT NULL",
                   "PRIMARY KEY (`zoid`,`to_zoid`)"],
    "object_refs_added": ["`tid` bigint(20) NOT NULL", "PRIMARY KEY (`tid`)"],
}
# Zope classes by position in the object tree: exact paths first, then by parent id, then by own id.
ZOPE_CLASSES_BY_PATH = {
    "/": ("persistent.mapping", "PersistentMapping"),
    "/zport": ("Products.ZenModel.ZentinelPortal", "ZentinelPortal"),
    "/zport/dmd": ("Products.ZenModel.DataRoot", "DataRoot"),
}
ZOPE_CLASSES_BY_PARENT = {
    "devices": ("Products.ZenModel.Device", "Device"),
    "interfaces": ("Products.ZenModel.IpInterface", "IpInterface"),
    "filesystems": ("Products.ZenModel.FileSystem", "FileSystem"),
}
ZOPE_CLASSES_BY_ID = {
    "os": ("Products.ZenModel.OperatingSystem", "OperatingSystem"),
    "devices": ("Products.ZenRelations.ToManyContRelationship", "ToManyContRelationship"),
    "interfaces": ("Products.ZenRelations.ToManyContRelationship", "ToManyContRelationship"),
    "filesystems": ("Products.ZenRelations.ToManyContRelationship", "ToManyContRelationship"),
}
DEVICE_CLASS = ("Products.ZenModel.DeviceClass", "DeviceClass")


def _zope_class(path):
    parts = path.strip("/").split("/")
    parent = parts[-2] if len(parts) > 1 else ""
    return (ZOPE_CLASSES_BY_PATH.get(path) or ZOPE_CLASSES_BY_PARENT.get(parent)
            or ZOPE_CLASSES_BY_ID.get(parts[-1]) or DEVICE_CLASS)


def _zodb_tid(epoch):
    """A ZODB transaction id: minutes since 1900 (31-day months) in the high word, second fraction below."""
    t = time.gmtime(epoch)
    minutes = ((((t.tm_year - 1900) * 12 + t.tm_mon - 1) * 31 + t.tm_mday - 1) * 24 + t.tm_hour) * 60 + t.tm_min
    return (minutes << 32) | int(t.tm_sec / 60 * (1 << 32))


def _zodb_record(path, guid):
    """A ZODB record: the class pickle then the state pickle, protocol 1 as Zope 2 on Python 2 wrote them."""
    module, name = _zope_class(path)
    leaf = path.rstrip("/").rpartition("/")[2]
    state = {"id": leaf, "title": leaf, "_guid": guid}
    return b"(c%s\n%s\nq\x01Nt." % (module.encode(), name.encode()) + pickle.dumps(state, protocol=1)


def _object_paths(devices):
    """Every object path of the model tree, parents before children."""
    paths = {"/"}
    for device in devices:
        for full in [device.path] + [f"{device.path}/{c}" for c in device.components]:
            parts = full.strip("/").split("/")
            paths.update("/" + "/".join(parts[:depth]) for depth in range(1, len(parts) + 1))
    return sorted(paths)


def _write_zodb_dump(build, path, no_data=False):
    """zodb.sql.gz; with no_data the schema alone: zenbackup's zodb_session.sql.gz (ZenDB.asynchronousDump with
    no_data=True dumps the database it was made for, zodb, not zodb_session) or the zodb_no_insert variant."""
    if no_data:
        with _gzip_file(path, build.end) as gz:
            dump = _SqlDump(gz, "zodb", build.end)
            for table, ddl in ZODB_TABLES.items():
                dump.table(table, ddl)
            dump.close()
        return
    paths = _object_paths(build.devices)
    zoids = {p: zoid for zoid, p in enumerate(paths)}
    rng = build.random("zodb")
    tids = {p: _zodb_tid(build.end - rng.randrange(build.opts.days * 86400)) for p in paths}
    states = []
    for p in paths:
        record = _zodb_record(p, build.guid(p))
        states.append((zoids[p], tids[p], len(record), record))
    refs = [(zoids[p.rpartition("/")[0] or "/"], zoids[p], tids[p]) for p in paths if p != "/"]
    with _gzip_file(path, build.end) as gz:
        dump = _SqlDump(gz, "zodb", build.end)
        dump.table("new_oid", ZODB_TABLES["new_oid"], [(len(paths) - 1,)])
        dump.table("object_state", ZODB_TABLES["object_state"], states)
        dump.table("object_ref", ZODB_TABLES["object_ref"], refs)
        dump.table("object_refs_added", ZODB_TABLES["object_refs_added"], [(t,) for t in sorted(set(tids.values()))])
        dump.close()


EVENT_COLUMNS = [
    "`uuid` binary(16) NOT NULL", "`fingerprint_hash` binary(20) NOT NULL", "`fingerprint` varchar(255) NOT NULL",
    "`status_id` tinyint(4) NOT NULL", "`event_class_id` int(11) NOT NULL", "`severity_id` tinyint(4) NOT NULL",
    "`element_uuid` binary(16) DEFAULT NULL", "`element_type_id` tinyint(4) NOT NULL",
    "`element_identifier` varchar(255) NOT NULL", "`element_sub_uuid` binary(16) DEFAULT NULL",
    "`element_sub_type_id` tinyint(4) DEFAULT NULL", "`element_sub_identifier` varchar(255) DEFAULT NULL",
    "`update_time` bigint(20) NOT NULL", "`first_seen` bigint(20) NOT NULL", "`status_change` bigint(20) NOT NULL",
    "`last_seen` bigint(20) NOT NULL", "`event_count` int(11) NOT NULL", "`monitor_id` int(11) DEFAULT NULL",
    "`agent_id` int(11) DEFAULT NULL", "`summary` varchar(255) NOT NULL", "`message` varchar(4096) NOT NULL",
    "`details_json` mediumtext", "`tags_json` mediumtext",
]
ZEP_TABLES = {
    "schema_version": ["`version` int(11) NOT NULL", "`installed_time` datetime NOT NULL", "PRIMARY KEY (`version`)"],
    "event_class": ["`id` int(11) NOT NULL AUTO_INCREMENT", "`name` varchar(255) NOT NULL", "PRIMARY KEY (`id`)"],
    "monitor": ["`id` int(11) NOT NULL AUTO_INCREMENT", "`name` varchar(255) NOT NULL", "PRIMARY KEY (`id`)"],
    "agent": ["`id` int(11) NOT NULL AUTO_INCREMENT", "`name` varchar(255) NOT NULL", "PRIMARY KEY (`id`)"],
    "event_summary": EVENT_COLUMNS + ["PRIMARY KEY (`uuid`)", "UNIQUE KEY `fingerprint_hash` (`fingerprint_hash`)",
                                      "KEY `event_class_id` (`event_class_id`)"],
    "event_archive": EVENT_COLUMNS + ["PRIMARY KEY (`uuid`,`last_seen`)", "KEY `event_class_id` (`event_class_id`)"],
}
# A stand-in for ZEP's stored routines (zenbackup dumps them with --routines): a body with ';' inside DELIMITER.
ZEP_ROUTINES = (("event_archive_purge", "BEGIN\n  DELETE FROM event_archive\n    WHERE last_seen < (UNIX_TIMESTAMP() - "
                 "90 * 86400) * 1000;\n  SELECT ROW_COUNT();\nEND"),)
EVENT_CLASSES = sorted({t[0] for t in EVENT_TEMPLATES + (PAD_EVENT_TEMPLATE,)})


def _event_subject(rng, devices, relation):
    """A random device, and one of its components on `relation` (e.g. "interfaces") if given."""
    device = rng.choice(devices)
    candidates = [c for c in device.components if relation and f"/{relation}/" in f"/{c}"]
    return device, rng.choice(candidates) if candidates else None


def _event_row(build, rng, template, status, details=None):
    """One event_summary/event_archive row, in EVENT_COLUMNS order."""
    event_class, severity, summary, relation = template
    device, component = _event_subject(rng, build.devices, relation)
    comp_id = component.rpartition("/")[2] if component else None
    summary = summary.format(device=device.id, component=comp_id, value=rng.uniform(50, 99))
    event_uuid = rng.randbytes(16)
    fingerprint = f"{device.id}|{comp_id or ''}|{event_class}||{severity}"
    last_seen = (build.end - rng.randrange(build.opts.days * 86400)) * 1000 + rng.randrange(1000)
    first_seen = last_seen - rng.randrange(6 * 3600 * 1000)
    element = uuid.UUID(build.guid(device.path))
    sub_element = uuid.UUID(build.guid(f"{device.path}/{component}")).bytes if component else None
    return (
        event_uuid, hashlib.sha1(fingerprint.encode() + event_uuid).digest(), fingerprint, status,
        EVENT_CLASSES.index(event_class) + 1, severity, element.bytes, 0, device.id, sub_element,
        1 if component else None, comp_id, last_seen, first_seen, last_seen, last_seen,
        rng.randint(1, 40), build.collectors.index(device.collector) + 1, rng.randrange(len(AGENTS)) + 1,
        summary, summary, details or _json({"zenoss.device.production_state": ["1000"]}),
        _json([{"k": "zenoss.device", "v": [str(element)]}]),
    )


def _json(value):
    return json.dumps(value, separators=(",", ":"))  # compact, as ZEP stores it


def _padding_events(build, rng, gz, pad_bytes):
    """event_archive rows of SNMP traps with big hex varbinds, until zep.sql.gz has grown by pad_bytes."""
    if pad_bytes <= 0:
        return
    stop = gz.compressed_size + pad_bytes
    # Random hex gives LZ77 nothing to match: Huffman coding alone shrinks it as well, about 3x faster.
    gz.set_level(1, zlib.Z_HUFFMAN_ONLY)
    while gz.compressed_size < stop:
        details = '{"snmp.varbinds":["' + build.source.hex(PAD_ROW_HEX) + '"]}'
        yield _event_row(build, rng, PAD_EVENT_TEMPLATE, rng.choice(ARCHIVE_STATUSES), details)


def _write_zep_dump(build, path, pad_bytes):
    count = EVENTS_PER_DEVICE * len(build.devices)
    rng = build.random("zep")
    statuses = [rng.choice(SUMMARY_STATUSES + ARCHIVE_STATUSES * 2) for index in range(count)]
    rows = [_event_row(build, rng, rng.choice(EVENT_TEMPLATES), status) for status in statuses]
    installed = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(build.end - 400 * 86400))
    with _gzip_file(path, build.end, fname="zep.sql") as gz:  # Python's gzip in zenbackup, not a gzip pipe
        dump = _SqlDump(gz, "zenoss_zep", build.end)
        dump.table("schema_version", ZEP_TABLES["schema_version"], [(v, installed) for v in range(1, 9)])
        dump.table("event_class", ZEP_TABLES["event_class"], list(enumerate(EVENT_CLASSES, 1)))
        dump.table("monitor", ZEP_TABLES["monitor"], list(enumerate(build.collectors, 1)))
        dump.table("agent", ZEP_TABLES["agent"], list(enumerate(AGENTS, 1)))
        dump.table("event_summary", ZEP_TABLES["event_summary"], [r for r in rows if r[3] in SUMMARY_STATUSES])
        archived = [r for r in rows if r[3] in ARCHIVE_STATUSES]
        dump.table("event_archive", ZEP_TABLES["event_archive"],
                   itertools.chain(archived, _padding_events(build, rng, gz, pad_bytes)))
        gz.set_level(GZIP_LEVEL)
        dump.routines("zenoss_zep", ZEP_ROUTINES)
        dump.close()


# --- other zenbackup members -----------------------------------------------------------------------------


def _lucene_entries(directory, size, source):
    """A Lucene 3 index directory: compound segments holding `size` bytes, then segments_N and segments.gen."""
    offsets = range(0, size, INDEX_SEGMENT_MAX)
    entries = [_Entry.of_random(f"{directory}/_{number}.cfs", min(INDEX_SEGMENT_MAX, size - offset), source)
               for number, offset in enumerate(offsets)]
    generation = len(offsets) + 1
    return entries + [
        _Entry.of_bytes(f"{directory}/segments_{generation}", struct.pack(">i", -11) + source.read(64)),
        _Entry.of_bytes(f"{directory}/segments.gen", struct.pack(">iqq", -2, generation, generation)),
    ]


def _zep_index_entries(build, pad_bytes):
    events = EVENTS_PER_DEVICE * len(build.devices)
    return (_lucene_entries("zeneventserver/index/summary", events * 512, build.source)
            + _lucene_entries("zeneventserver/index/archive", events * 1024 + pad_bytes, build.source))


def _catalog_entries(build, pad_bytes):
    size = len(_object_paths(build.devices)) * 2048 + pad_bytes
    return _lucene_entries("zencatalogservice/global_catalog/index", size, build.source)


def _zenpack_files(name, version):
    egg = f"ZenPacks/ZenPacks.zenoss.{name}-{version}-py2.7.egg"
    package = f"ZenPacks.zenoss.{name}"
    namespace = "__import__('pkg_resources').declare_namespace(__name__)\n"
    zenpack_class = "from Products.ZenModel.ZenPack import ZenPackBase\n\n\nclass ZenPack(ZenPackBase):\n    pass\n"
    yield f"{egg}/EGG-INFO/PKG-INFO", (f"Metadata-Version: 1.0\nName: {package}\nVersion: {version}\n"
                                       f"Summary: {name} ZenPack\nAuthor: Zenoss\nLicense: GPLv2\n")
    yield f"{egg}/EGG-INFO/entry_points.txt", f"[zenoss.zenpacks]\n{package} = {package}\n"
    yield f"{egg}/EGG-INFO/namespace_packages.txt", "ZenPacks\nZenPacks.zenoss\n"
    yield f"{egg}/ZenPacks/__init__.py", namespace
    yield f"{egg}/ZenPacks/zenoss/__init__.py", namespace
    yield f"{egg}/ZenPacks/zenoss/{name}/__init__.py", zenpack_class
    yield f"{egg}/ZenPacks/zenoss/{name}/objects/objects.xml", '<?xml version="1.0"?>\n<objects>\n</objects>\n'


def _zenpack_entries():
    """ZenPacks.tar as zenbackup makes it: $ZENHOME/ZenPacks with its installed eggs."""
    eggs = "".join(f"./ZenPacks.zenoss.{name}-{version}-py2.7.egg\n" for name, version in ZENPACKS)
    entries = [_Entry.of_bytes("ZenPacks/easy-install.pth", eggs.encode())]
    for name, version in ZENPACKS:
        entries.extend(_Entry.of_bytes(member, text.encode()) for member, text in _zenpack_files(name, version))
    return entries


def _etc_entries(collector):
    """etc.tar: $ZENHOME/etc as tarfile.add(zenPath('etc'), 'etc') takes it (a collector's points to its hub)."""
    hub = "localhost" if collector == LOCAL_COLLECTOR else f"{HUB}.example.com"
    files = {
        "etc/global.conf": (f"zodb-host {hub}\nzodb-port 3306\nzodb-db zodb\nzodb-user zenoss\n"
                            f"zodb-password zenoss\nzep-host {hub}\nzep-port 3306\nzep-db zenoss_zep\n"
                            "zep-user zenoss\nzep-password zenoss\n"),
        "etc/zenhub.conf": "monitor localhost\n" if collector == LOCAL_COLLECTOR else f"hubhost {hub}\n",
        "etc/zenperfsnmp.conf": f"monitor {collector}\n",
        "etc/hubpassword": "admin zenoss\n",
    }
    return [_Entry.of_bytes(name, text.encode()) for name, text in files.items()]


def _bin_entries():
    """bin.tar: $ZENHOME/bin, made when the model is backed up."""
    script = "#!/bin/bash\n. $ZENHOME/bin/zenfunctions\nexec python $ZENHOME/Products/ZenUtils/{0}.py \"$@\"\n"
    return [_Entry.of_bytes(f"bin/{name}", script.format(module).encode())
            for name, module in (("zenbackup", "ZenBackup"), ("zenrestore", "ZenRestore"), ("zenpack", "ZenPackCmd"),
                                 ("zenmigrate", "ZenMigrate"))]


def _backup_settings():
    """backup.settings: ZenBackup.saveSettings, an ini of the DB settings in Python 2 ConfigParser's format."""
    keys = (("zodb_host", "localhost"), ("zodb_port", "3306"), ("zodb_db", "zodb"), ("zodb_user", "zenoss"),
            ("zodb_password", "zenoss"), ("zepdbhost", "localhost"), ("zepdbport", "3306"),
            ("zepdbname", "zenoss_zep"), ("zepdbuser", "zenoss"), ("zepdbpass", "zenoss"))
    return ("[zenbackup]\n" + "".join(f"{key} = {value}\n" for key, value in keys) + "\n").encode()


# --- export members --------------------------------------------------------------------------------------


def _component_list(devices):
    lines = []
    for device in devices:
        lines.append(f"### components for {device.path}")
        lines.extend(f"{device.path}/{component}" for component in device.components)
    return ("\n".join(lines) + "\n").encode()


def _rrdpath_map(devices):
    """export4's export_map_list: "<rrdPath()>|<primary path>" for every device and monitored component, RRDs or not
    (Zenoss 4's rrdPath() is "Devices/" + the primary path below the device class's devices relation)."""
    lines = []
    for device in devices:
        lines.append(f"Devices/{device.id}|{device.path}")
        lines.extend(f"Devices/{device.id}/{component}|{device.path}/{component}" for component in device.components)
    return "".join(line + "\n" for line in lines).encode()


def _flexera_files(build):
    issued = time.strftime("%d-%b-%Y", time.gmtime(build.end - 300 * 86400)).lower()
    signature = build.source.read(32).hex().upper()
    licence = (f"INCREMENT zenoss_resource_manager zenoss 4.2 permanent uncounted HOSTID=ANY \\\n"
               f"\tISSUER=Zenoss ISSUED={issued} SIGN=\"{signature}\"\n")
    return [("zenoss_rm.lic", licence.encode()), ("tsf_zenoss.data", build.source.read(2048))]


# --- bad variants ----------------------------------------------------------------------------------------

# kind: (member name, below the tgz's zenbackup/ unless absolute; tar type; mode; link target)
HOSTILE_MEMBERS = {
    "traversal": ("../../tmp/ferry-evil.txt", tarfile.REGTYPE, 0o644, ""),
    "absolute_path": ("/tmp/ferry-evil.txt", tarfile.REGTYPE, 0o644, ""),
    "symlink_outside": ("passwd", tarfile.SYMTYPE, 0o777, "../../etc/passwd"),
    "hardlink_outside": ("shadow", tarfile.LNKTYPE, 0o644, "../../etc/passwd"),
    "device_file": ("mem", tarfile.CHRTYPE, 0o640, ""),
    "fifo": ("zenhub.fifo", tarfile.FIFOTYPE, 0o644, ""),
    "setuid": ("zensocket", tarfile.REGTYPE, 0o4755, ""),  # the real $ZENHOME/bin/zensocket is setuid root
}


def _add_hostile(tar, kind, prefix):
    name, member_type, mode, target = HOSTILE_MEMBERS[kind]
    payload = b"ferry.migrate test payload\n" if member_type == tarfile.REGTYPE else b""
    info = tar.info(name if name.startswith("/") else prefix + name, member_type, mode, len(payload))
    info.linkname = target
    info.devmajor, info.devminor = 1, 1  # /dev/mem; ignored by the other types
    tar.add_member(info, io.BytesIO(payload) if payload else None)


@dataclasses.dataclass(frozen=True)
class _Defects:
    md5: str = "good"  # backup.md5 holds: "good", "stale" (digest before corruption), "wrong" or "missing"
    missing: frozenset = frozenset()  # zenbackup/ members left out
    both_perf: bool = False
    corrupt_tgz: bool = False
    truncate: bool = False
    hostile: str = ""  # a HOSTILE_MEMBERS kind
    hostile_in_tgz: bool = False
    zodb_no_insert: bool = False  # zodb.sql.gz holds the schema only


_DEFECTS = {
    "md5_mismatch": _Defects(md5="wrong"),
    "missing_md5": _Defects(md5="missing"),
    "missing_zenpacks": _Defects(missing=frozenset({"ZenPacks.tar"})),
    "missing_zodb": _Defects(missing=frozenset({"zodb.sql.gz"})),
    "both_perf": _Defects(both_perf=True),
    "zodb_no_insert": _Defects(zodb_no_insert=True),
    "truncated": _Defects(truncate=True),
    "corrupt_gzip": _Defects(corrupt_tgz=True, md5="stale"),
    "corrupt_gzip_md5_ok": _Defects(corrupt_tgz=True),
    **{kind: _Defects(hostile=kind) for kind in HOSTILE_MEMBERS},
    **{f"tgz_{kind}": _Defects(hostile=kind, hostile_in_tgz=True) for kind in HOSTILE_MEMBERS},
}
VARIANTS = tuple(_DEFECTS)


def _seal_tgz(build, out, sink):
    """Corrupt the tgz written through `sink` if asked; return (its md5 as shipped, digest for backup.md5)."""
    original = shipped = sink.digest.hexdigest()
    if build.defects.corrupt_tgz:
        _flip_bytes(out, sink.offset + sink.size // 2)  # mid-stream: inflating or at least the CRC check fails
        shipped = _md5_region(out, sink.offset, sink.size)
    wrong = hashlib.md5(shipped.encode()).hexdigest()
    return shipped, {"good": shipped, "stale": original, "wrong": wrong, "missing": None}[build.defects.md5]


# --- assembly --------------------------------------------------------------------------------------------

TGZ_NAMES = ("4x", "dated")  # zenbackup_4x.tgz (toolbox 2.x export4), zenbackup_YYYYMMDD.tgz (0.8.x: zenbackup's own)
REMOTE_LAYOUTS = ("zenbackup", "bare")  # zenbackup --no-eventsdb --no-zodb archives; bare perf trees (old generator)


@dataclasses.dataclass(frozen=True)
class _Options:
    devices: int = 3
    rrds_per_device: int = 4
    seed: int = 1
    perf: str = "tar"
    with_events: bool = True
    with_indexes: bool = True
    with_flexera: bool = True
    with_rrdpath_map: bool = True
    with_daemons: bool = True
    remote_collectors: int = 0
    remote_layout: str = "zenbackup"
    tgz_name: str = "4x"
    export_dir: str = "/home/zenoss"
    pad_bytes: int = 0
    days: int = 3
    variant: str = None

    def __post_init__(self):
        if self.perf not in PERF_FORMATS:
            raise ValueError(f"perf must be one of {PERF_FORMATS}, not {self.perf!r}")
        if self.tgz_name not in TGZ_NAMES:
            raise ValueError(f"tgz_name must be one of {TGZ_NAMES}, not {self.tgz_name!r}")
        if self.remote_layout not in REMOTE_LAYOUTS:
            raise ValueError(f"remote_layout must be one of {REMOTE_LAYOUTS}, not {self.remote_layout!r}")
        if not self.export_dir.startswith("/"):
            raise ValueError(f"export_dir must be an absolute path, not {self.export_dir!r}")
        if self.variant is not None and self.variant not in _DEFECTS:
            raise ValueError(f"unknown variant {self.variant!r}; known: {', '.join(VARIANTS)}")
        if self.devices < 1 or self.days < 1:
            raise ValueError("devices and days must be at least 1")
        if min(self.rrds_per_device, self.remote_collectors, self.pad_bytes) < 0:
            raise ValueError("rrds_per_device, remote_collectors and pad_bytes cannot be negative")
        if self.pad_bytes and not (self.with_events or self.with_indexes):
            raise ValueError("pad_bytes goes into the events dump or the indexes: enable one of them")
        if self.defects.both_perf and self.perf == "none":
            raise ValueError("variant both_perf needs perf data")

    @property
    def defects(self):
        return _DEFECTS[self.variant] if self.variant else _Defects()

    @property
    def perf_formats(self):
        if self.defects.both_perf:
            return ["tar", "tar.gz"]
        return [] if self.perf == "none" else [self.perf]

    def pad_split(self):
        """(bytes for zep.sql.gz, bytes for the index tar)."""
        if not self.with_indexes:
            return self.pad_bytes, 0
        if not self.with_events:
            return 0, self.pad_bytes
        events = int(self.pad_bytes * EVENTS_PAD_SHARE)
        return events, self.pad_bytes - events


@dataclasses.dataclass
class _Build:
    """Everything the member writers share."""

    opts: _Options
    stage: str
    end: int
    dmd_uuid: str
    source: _ByteSource
    collectors: list
    devices: list
    _guids: dict = dataclasses.field(default_factory=dict)

    @property
    def defects(self):
        return self.opts.defects

    @property
    def stamp(self):
        return time.strftime("%Y%m%d-%H%M%S", time.gmtime(self.end))

    @property
    def tgz_name(self):
        if self.opts.tgz_name == "dated":
            return time.strftime("zenbackup_%Y%m%d.tgz", time.gmtime(self.end))
        return "zenbackup_4x.tgz"

    @property
    def md5_path(self):
        """The tgz's absolute path on the source host, as `md5sum -b` printed it into backup.md5: export4 2.x runs
        zenbackup into <tempfile.mkdtemp(dir=export dir)>/backups/, 0.8.x into $ZENHOME/backups/."""
        if self.opts.tgz_name == "dated":
            return f"/opt/zenoss/backups/{self.tgz_name}"
        rng = self.random("mkdtemp")
        token = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789_") for _i in range(6))
        return f"{self.opts.export_dir.rstrip('/')}/tmp{token}/backups/{self.tgz_name}"

    def random(self, label):
        """A PRNG per part, so that leaving a part out (variants) does not change the others."""
        return random.Random(f"{self.opts.seed}:{label}")

    def guid(self, path):
        """The stable UUID of the object at `path` (Zenoss's GUID), the same in the model and the events."""
        if path not in self._guids:
            self._guids[path] = str(uuid.uuid5(uuid.UUID(self.dmd_uuid), path))
        return self._guids[path]

    def perf_root(self, collector):
        return os.path.join(self.stage, "perf", collector)

    @classmethod
    def create(cls, opts, stage, end):
        rng = random.Random(opts.seed)
        dmd_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        source = _ByteSource(rng, (8 << 20) if opts.pad_bytes else (256 << 10))
        collectors, devices = _plan_devices(opts.devices, opts.rrds_per_device, opts.remote_collectors)
        return cls(opts, stage, int(end) // STEP * STEP, dmd_uuid, source, collectors, devices)


@dataclasses.dataclass(frozen=True)
class _Part:
    """A zenbackup/ member: its size up front (the tgz is a stream) and how to write it."""

    name: str
    size: int
    write: object  # write(fileobj) puts exactly `size` bytes
    store: bool  # already compressed or random: deflating it again would only cost time


def _file_part(build, name, write):
    """A member that must be staged because its size is only known once written: the gzip'd ones."""
    path = os.path.join(build.stage, name)
    write(path)
    return _Part(name, os.path.getsize(path), functools.partial(_copy_file, path), store=True)


def _tar_part(build, name, entries, store=False):
    """A nested tar, streamed into the tgz as it is made."""
    return _Part(name, _tar_size(entries), functools.partial(_write_tar, entries=entries, mtime=build.end), store)


def _bytes_part(name, data):
    return _Part(name, len(data), lambda out: out.write(data), store=False)


def _copy_file(path, out):
    with open(path, "rb") as fileobj:
        shutil.copyfileobj(fileobj, out, COPY_BUFSIZE)


def _zenbackup_parts(build):
    """The zenbackup/ members in the order ZenBackup.makeBackup (4.2) creates them in its staging directory, minus
    those the variant leaves out. (`tar czfC` then lists that directory in readdir order: creation order here.)"""
    opts = build.opts
    events_pad, index_pad = opts.pad_split()
    parts = [_bytes_part("backup.settings", _backup_settings())]  # saveSettings, before the events dump
    if opts.with_events:
        parts.append(_file_part(build, "zep.sql.gz", functools.partial(_write_zep_dump, build, pad_bytes=events_pad)))
        if opts.with_indexes:
            parts.append(_tar_part(build, "zep.tar", _zep_index_entries(build, index_pad), store=index_pad > 0))
            index_pad = 0  # taken by the event index; the catalog gets it only when there are no events
    parts.append(_tar_part(build, "etc.tar", _etc_entries(LOCAL_COLLECTOR)))
    parts.append(_file_part(build, "zodb.sql.gz", functools.partial(
        _write_zodb_dump, build, no_data=build.defects.zodb_no_insert)))
    parts.append(_file_part(build, "zodb_session.sql.gz", functools.partial(_write_zodb_dump, build, no_data=True)))
    parts.append(_tar_part(build, "ZenPacks.tar", _zenpack_entries()))
    parts.append(_tar_part(build, "bin.tar", _bin_entries()))
    if opts.with_indexes:  # the catalog ZenPack's backup hook, run after the ZenPacks' own backup
        parts.append(_tar_part(build, "zencatalogservice.tar", _catalog_entries(build, index_pad),
                               store=index_pad > 0))
    parts.extend(_perf_part(build, fmt) for fmt in opts.perf_formats)
    return [part for part in parts if part.name not in build.defects.missing]


def _remote_parts(build, collector):
    """A remote collector's `zenbackup --no-eventsdb --no-zodb`: no events, no model, no ZenPacks: etc and perf."""
    return [_tar_part(build, "etc.tar", _etc_entries(collector)),
            _tar_part(build, "perf.tar", _perf_entries(build, collector))]


def _perf_part(build, fmt):
    entries = _perf_entries(build, LOCAL_COLLECTOR)
    if fmt == "tar":
        return _tar_part(build, "perf.tar", entries)
    return _file_part(build, "perf.tar.gz", functools.partial(_write_tar_file, entries, build.end))


def _write_tar_file(entries, mtime, path):
    with open(path, "wb") as out:
        _write_tar(out, entries, mtime, GZIP_LEVEL)


def _write_zenbackup(out, parts, mtime, hostile=""):
    """Write a zenbackup archive (`tar czfC <out> <tmp> zenbackup`) into `out`, streaming each part; return its
    member names."""
    gz = _GzipWriter(out, GZIP_LEVEL, mtime)
    tar = _TarWriter(gz, mtime)
    tar.add_dir("zenbackup", 0o750)  # os.mkdir(tempDir, 0750)
    for part in parts:
        gz.set_level(0 if part.store else GZIP_LEVEL)
        with tar.member(f"zenbackup/{part.name}", part.size) as sink:
            part.write(sink)
    gz.set_level(GZIP_LEVEL)
    if hostile:
        _add_hostile(tar, hostile, "zenbackup/")
    tar.close()
    gz.close()
    return tar.names


def _write_remote_archive(build, tar, collector):
    """<hub>-<collector>-perf-backup-<ts>.tgz into the outer tar; return (its name, its member names)."""
    name = f"{HUB}-{collector}-perf-backup-{build.stamp}.tgz"
    with tar.member(name) as sink:
        if build.opts.remote_layout == "bare":
            _write_tar(sink, _perf_entries(build, collector), build.end, GZIP_LEVEL)
            members = [entry.name for entry in _perf_entries(build, collector)]
        else:
            members = _write_zenbackup(sink, _remote_parts(build, collector), build.end)
    return name, members


def _write_export(build, out, parts):
    """Write the outer tar into `out` in export4.py's member order (make_export_tar: one `tar -C <dir> -rf` each);
    return what _assemble reports of it."""
    tar = _TarWriter(out, build.end)
    tar.add_bytes("componentList.txt", _component_list(build.devices))
    if build.opts.with_rrdpath_map:
        tar.add_bytes("rrdpath.map", _rrdpath_map(build.devices))
    tar.add_bytes("dmd_uuid.txt", f"{build.dmd_uuid}\n".encode())
    remote = {}
    if build.opts.perf_formats:  # export4.py skips the remote collectors' backups with --no-perfdata
        for collector in build.collectors[1:]:
            name, members = _write_remote_archive(build, tar, collector)
            remote[name] = members
    if build.opts.with_flexera:  # `tar -rf` of $ZENHOME/var/flexera: the directory, then its files
        tar.add_dir("flexera")
        for name, data in _flexera_files(build):
            tar.add_bytes(f"flexera/{name}", data)
    tgz_name = build.tgz_name
    hostile_in_tgz = build.defects.hostile if build.defects.hostile_in_tgz else ""
    with tar.member(tgz_name, digest=hashlib.md5()) as sink:
        tgz_members = _write_zenbackup(sink, parts, build.end, hostile_in_tgz)
    md5, recorded = _seal_tgz(build, out, sink)
    if recorded is not None:
        tar.add_bytes("backup.md5", f"{recorded} *{build.md5_path}\n".encode())
    if build.defects.hostile and not build.defects.hostile_in_tgz:
        _add_hostile(tar, build.defects.hostile, "")
    tar.close()
    return {"tgz_name": tgz_name, "md5": md5, "md5_recorded": recorded, "md5_path": build.md5_path,
            "members": tar.names, "zenbackup_members": tgz_members, "remote_archives": list(remote),
            "remote_members": remote}


def _export_name(name, stamp):
    if name is None:
        return f"4x-export-{stamp}.tar"
    if "/" in name or name in ("", ".", ".."):
        raise ValueError(f"name must be a plain file name, not {name!r}")
    return name if name.endswith(".tar") else name + ".tar"  # as export4.py does


def _assemble(build, out_dir, name):
    """Write the bundle as a temporary file in out_dir, renamed when complete; return the info dict."""
    if build.opts.perf_formats:
        _write_rrds(build)
    parts = _zenbackup_parts(build)
    final = os.path.join(out_dir, name)
    partial = os.path.join(out_dir, f".{name}.part")
    try:
        with open(partial, "w+b") as out:  # w+: the tgz is read back when a variant corrupts it
            report = _write_export(build, out, parts)
        if build.defects.truncate:
            # An odd length: never on a 512-byte block boundary, where a tar reader could take the cut for the end.
            os.truncate(partial, os.path.getsize(partial) // 2 | 1)
        os.replace(partial, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(partial)
        raise
    with_perf = bool(build.opts.perf_formats)
    rrds = [(d.collector, len(d.datapoints) if with_perf else 0) for d in build.devices]
    daemons = {c: len(_daemon_rrds(build, c)) if with_perf else 0 for c in build.collectors}
    return {
        "path": final,
        "size": os.path.getsize(final),
        "dmd_uuid": build.dmd_uuid,
        "rrd_count": sum(count for member, count in rrds),
        "remote_rrd_count": sum(count for collector, count in rrds if collector != LOCAL_COLLECTOR),
        "daemon_rrd_count": sum(daemons.values()),
        "remote_daemon_rrd_count": sum(count for collector, count in daemons.items() if collector != LOCAL_COLLECTOR),
        **report,
        "devices": [_device_info(d, with_perf) for d in build.devices],
        "variant": build.opts.variant,
        "seed": build.opts.seed,
        "end": build.end,
    }


def _device_info(device, with_perf):
    return {
        "id": device.id,
        "path": device.path,
        "collector": device.collector,
        "components": [f"{device.path}/{c}" for c in device.components],
        "rrds": device.rrd_members() if with_perf else [],
    }


def build_bundle(out_dir, devices=3, rrds_per_device=4, seed=1, perf="tar", with_events=True, with_indexes=True,
                 with_flexera=True, with_rrdpath_map=True, with_daemons=True, remote_collectors=0,
                 remote_layout="zenbackup", tgz_name="4x", export_dir="/home/zenoss", pad_bytes=0, days=3, name=None,
                 variant=None, end=None):
    """Write a Zenoss 4 export bundle into `out_dir` and describe it.

    perf: "tar", "tar.gz" or "none" (no perf data, no remote collector archives). Devices are spread over
    the local collector and `remote_collectors` remote ones; the RRDs of remote devices go to their
    collector's archive, a zenbackup archive (zenbackup/etc.tar, zenbackup/perf.tar), or with
    remote_layout="bare" a gzip'd perf tree (what this generator wrote before; not what export4 makes).
    with_daemons: each collector's perf/Daemons/ RRDs. tgz_name: "4x" (zenbackup_4x.tgz) or "dated"
    (zenbackup_YYYYMMDD.tgz, toolbox 0.8.x). export_dir: where export4 ran (the tmp dir backup.md5 names is in it).
    pad_bytes: bulk to add (see the module docstring). days: RRD history length.
    name: outer file name (default 4x-export-<ts>.tar). variant: one of VARIANTS, for a bad bundle.
    end: epoch the export is dated, default DEFAULT_END.

    Returns a dict: path, size, tgz_name, md5 (of the tgz as shipped), md5_recorded (what backup.md5 says,
    None without one), md5_path (the path backup.md5 names), dmd_uuid, rrd_count (all RRDs under Devices/),
    remote_rrd_count (those in remote archives), daemon_rrd_count and remote_daemon_rrd_count (perf/Daemons/),
    members (outer tar member names in order), zenbackup_members, remote_archives, remote_members ({archive:
    member names}), devices (id, path, collector, components, rrds: member names), variant, seed, end.
    """
    opts = _Options(devices=devices, rrds_per_device=rrds_per_device, seed=seed, perf=perf, with_events=with_events,
                    with_indexes=with_indexes, with_flexera=with_flexera, with_rrdpath_map=with_rrdpath_map,
                    with_daemons=with_daemons, remote_collectors=remote_collectors, remote_layout=remote_layout,
                    tgz_name=tgz_name, export_dir=export_dir, pad_bytes=pad_bytes, days=days, variant=variant)
    os.makedirs(out_dir, exist_ok=True)
    stage = tempfile.mkdtemp(prefix=".gen-zenoss-", dir=out_dir)
    try:
        build = _Build.create(opts, stage, DEFAULT_END if end is None else end)
        return _assemble(build, out_dir, _export_name(name, build.stamp))
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Build a realistic Zenoss 4 export bundle (4x-export-*.tar).")
    parser.add_argument("out_dir")
    parser.add_argument("--devices", type=int, default=3)
    parser.add_argument("--rrds-per-device", type=int, default=4)
    parser.add_argument("--perf", choices=PERF_FORMATS, default="tar")
    parser.add_argument("--pad-mb", type=float, default=0, help="MiB of incompressible bulk to add")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--remote-collectors", type=int, default=0)
    parser.add_argument("--remote-layout", choices=REMOTE_LAYOUTS, default="zenbackup",
                        help="remote collector archives: zenbackup archives (export4) or bare perf trees")
    parser.add_argument("--tgz-name", choices=TGZ_NAMES, default="4x",
                        help="zenbackup_4x.tgz (export4 2.x) or zenbackup_YYYYMMDD.tgz (0.8.x)")
    parser.add_argument("--export-dir", default="/home/zenoss", help="where export4 ran (named in backup.md5)")
    parser.add_argument("--days", type=int, default=3, help="days of RRD history")
    parser.add_argument("--name", help="outer file name (default 4x-export-<timestamp>.tar)")
    parser.add_argument("--variant", choices=VARIANTS, help="build a bad bundle with this defect")
    parser.add_argument("--end", type=int, help=f"epoch the export is dated (default {DEFAULT_END})")
    for part in ("events", "indexes", "flexera", "rrdpath-map", "daemons"):
        parser.add_argument(f"--no-{part}", action="store_true", help=f"leave out the {part}")
    args = parser.parse_args(argv)
    started = time.monotonic()
    info = build_bundle(
        args.out_dir, devices=args.devices, rrds_per_device=args.rrds_per_device, seed=args.seed, perf=args.perf,
        with_events=not args.no_events, with_indexes=not args.no_indexes, with_flexera=not args.no_flexera,
        with_rrdpath_map=not args.no_rrdpath_map, with_daemons=not args.no_daemons,
        remote_collectors=args.remote_collectors, remote_layout=args.remote_layout, tgz_name=args.tgz_name,
        export_dir=args.export_dir, pad_bytes=int(args.pad_mb * (1 << 20)), days=args.days, name=args.name,
        variant=args.variant, end=args.end,
    )
    json.dump(info, sys.stdout, indent=2)
    print()
    print(f"built {info['path']} ({info['size']} bytes) in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
