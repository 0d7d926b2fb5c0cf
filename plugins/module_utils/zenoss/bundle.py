# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check and extract a Zenoss 4 export bundle (the ``check`` step of Zenoss Import4, done right).

The bundle is an uncompressed tar made by export4 (members in its order)::

    componentList.txt rrdpath.map dmd_uuid.txt
    <hub>-<collector>-perf-backup-<ts>.tgz ...   a remote collector's zenbackup: zenbackup/{etc.tar, perf.tar}
    flexera/...                 licence files
    zenbackup_4x.tgz            (zenbackup_YYYYMMDD.tgz from toolbox 0.8) zenbackup/{zodb.sql.gz, ZenPacks.tar,
                                [backup.settings], [zep.sql.gz], [zep.tar], [etc.tar], [zodb_session.sql.gz],
                                [bin.tar], [zencatalogservice.tar], [perf.tar | perf.tar.gz]}
    backup.md5                  ``md5sum -b <absolute path of the tgz>``

One forward pass reads the bundle: the tgz is hashed while it is inflated and its members written,
perf archives are unpacked on the fly into ``perf/`` (remote collectors' into
``collectors/<name>/perf/``, the rest of their archive kept under ``collectors/<name>/zenbackup/``).
Everything lands in a temporary directory inside ``dest`` that is renamed to ``dest/<bundle name>``
only once every check has passed: a failure or a kill leaves no half-extracted tree.

RRD files under ``perf/Devices/<device>/`` are counted in ``rrd_files`` (what the converters take);
others, such as the daemons' own ``perf/Daemons/...``, in ``other_rrd_files``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import tarfile
import time

from ansible_collections.ferry.migrate.plugins.module_utils.core.archive import (
    CHUNK,
    Gunzip,
    GzipCheckingReader,
    GzipReader,
    HashingReader,
    SafeExtractor,
    iter_members,
    member_path,
    open_member,
    open_tar_stream,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import (
    FerryError,
    atomic_write_json,
    free_bytes,
    human_bytes,
    read_json,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.staging import StagedDir

MANIFEST = ".ferry-bundle.json"
# The extracted layout's version, in the inventory and the step's inputs: an extraction of an older layout (version 1
# left remote collectors' perf.tar packed) is redone rather than reused.
LAYOUT = 2
REQUIRED_INNER = ("zodb.sql.gz", "ZenPacks.tar")
MODEL_DUMP = "zodb.sql.gz"
OPTIONAL_INNER = ("zep.sql.gz", "zep.tar", "zencatalogservice.tar")
PERF_ARCHIVES = ("perf.tar", "perf.tar.gz")
SMALL_FILES = ("backup.md5", "dmd_uuid.txt")
TEXT_FILES = ("componentList.txt", "rrdpath.map")
TGZ_NAME = re.compile(r"^zenbackup_[^/]*\.tgz$")
COLLECTOR_NAME = re.compile(r"^(?P<name>[^/]+)-perf-backup-[^/]*\.(tgz|tar\.gz)$")
MD5_LINE = re.compile(r"^(?P<digest>[0-9a-fA-F]{32}) [ *](?P<name>.+)$")
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
SMALL_FILE_LIMIT = 64 * 1024


def extraction_dir(bundle_path, dest):
    """``dest/<bundle file name without .tar>``: where the bundle's content ends up."""
    name = os.path.basename(bundle_path)
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return os.path.join(os.path.abspath(dest), name)


def bundle_identity(bundle_path):
    """What identifies a bundle file without reading it: its real path, size and mtime."""
    try:
        info = os.stat(bundle_path)
    except OSError as exc:
        raise FerryError("cannot read bundle %s: %s" % (bundle_path, exc.strerror))
    if not os.path.isfile(bundle_path):
        raise FerryError("bundle %s is not a regular file" % bundle_path)
    return {"path": os.path.realpath(bundle_path), "size": info.st_size, "mtime_ns": info.st_mtime_ns}


def read_manifest(target):
    return read_json(os.path.join(target, MANIFEST))


class BundleChecker:
    """One check (and, unless ``dry_run``, extraction) of a bundle. Call :meth:`run`."""

    def __init__(self, bundle_path, dest, allow_missing_checksum=False, verify_dumps=True,
                 dry_run=False, min_free=64 << 20, progress=None):
        self.bundle_path = bundle_path
        self.dest = os.path.abspath(dest)
        self.target = extraction_dir(bundle_path, dest)
        self.allow_missing_checksum = allow_missing_checksum
        self.verify_dumps = verify_dumps
        self.dry_run = dry_run
        self.min_free = min_free
        self._progress = progress
        self.bundle_name = os.path.basename(bundle_path)
        self.warnings = []
        self._outer = None
        self._seen_outer = {}
        self._inner = {}
        self._small = {}
        self._tgz = None
        self._perf = _perf_counts()
        self._collectors = {}
        self._flexera_files = 0
        self._text_lines = {}
        self._unexpected = []
        self._last_report = 0.0
        self._extractor = None

    # -- entry point ----------------------------------------------------------------------------
    def run(self):
        """Check the bundle; extract it unless dry run. Returns the inventory."""
        identity = bundle_identity(self.bundle_path)
        self._size = identity["size"]
        work = self._prepare_workdir()
        try:
            with open(self.bundle_path, "rb") as raw:
                self._outer = raw
                self._read_outer(raw)
            inventory = self._finish_checks(identity)
            if not self.dry_run:
                atomic_write_json(os.path.join(work.temp, MANIFEST), inventory)
                work.commit()  # an older extraction is moved aside, then removed
            return inventory
        finally:
            if work is not None:
                work.abort()

    # -- outer tar ------------------------------------------------------------------------------
    def _read_outer(self, raw):
        try:
            outer = tarfile.open(fileobj=raw, mode="r:")
        except tarfile.TarError as exc:
            raise FerryError("%s is not a tar archive or is truncated (%s)" % (self.bundle_path, exc))
        for member in iter_members(outer, self.bundle_name):
            try:
                self._outer_member(outer, member)
            except (tarfile.TarError, EOFError) as exc:
                raise FerryError("%s: truncated or corrupt while reading %s (%s)"
                                 % (self.bundle_name, member.name, exc))
        self._report(force=True)

    def _outer_member(self, outer, member):
        name = member_path(member, self.bundle_name)
        if not name:
            return
        if name in self._seen_outer and not member.isdir():
            raise FerryError("%s: member %s appears twice" % (self.bundle_name, name))
        self._seen_outer[name] = member.size
        if TGZ_NAME.match(name) and member.isreg():
            self._read_tgz(outer, member, name)
        elif name in SMALL_FILES and member.isreg():
            self._keep_small_file(outer, member, name)
        elif name in TEXT_FILES and member.isreg():
            self._text_lines[name] = self._write_counting_lines(outer, member, name)
        elif name == "flexera" or name.startswith("flexera/"):
            self._extract(outer, member, self.bundle_name)
            self._flexera_files += int(member.isreg())
        elif COLLECTOR_NAME.match(name) and member.isreg():
            self._read_collector(outer, member, COLLECTOR_NAME.match(name).group("name"))
        else:
            self._unexpected.append(name)
            self.warnings.append("unexpected member %s in the bundle: extracted as is" % name)
            self._extract(outer, member, self.bundle_name)

    def _read_tgz(self, outer, member, name):
        if self._tgz is not None:
            raise FerryError("%s holds more than one zenbackup_*.tgz (%s and %s)"
                             % (self.bundle_name, self._tgz["name"], name))
        hashed = HashingReader(open_member(outer, member, self.bundle_name))
        inflated = GzipReader(hashed, name)
        self._tgz = {"name": name, "size": member.size}
        inner = open_tar_stream(inflated, name)
        try:
            for item in iter_members(inner, name):
                self._inner_member(inner, item, name)
        except (tarfile.TarError, EOFError) as exc:
            raise FerryError("%s: the tar inside is truncated or corrupt (%s)" % (name, exc))
        # Read past the tar's end marker to the gzip trailer (CRC check) and the member's end (md5).
        inflated.drain()
        hashed.drain()
        self._tgz.update(md5=hashed.hexdigest(), uncompressed_size=inflated.bytes_out)

    def _read_collector(self, outer, member, collector):
        """A remote collector's zenbackup archive: its perf.tar unpacked into collectors/<name>/perf/, the rest
        (zenbackup/etc.tar) kept as it is under collectors/<name>/; a bare perf/ tree is taken as it is too."""
        archive = member_path(member, self.bundle_name)
        if collector in (".", ".."):
            raise FerryError("%s: remote collector archive %s has no collector name" % (self.bundle_name, archive))
        if collector in self._collectors:
            raise FerryError("%s holds two archives of remote collector %s (%s and %s): remove the older one"
                             % (self.bundle_name, collector, self._collectors[collector]["archive"], archive))
        counts = self._collectors[collector] = dict(_perf_counts(), archive=archive, perf_archive=None)
        under = "collectors/" + collector
        inflated = GzipReader(open_member(outer, member, self.bundle_name), archive)
        tar = open_tar_stream(inflated, archive)
        try:
            for item in iter_members(tar, archive):
                relative = member_path(item, archive)
                if item.isreg() and _zenbackup_base(relative) in PERF_ARCHIVES:
                    self._read_perf(tar, item, archive, _zenbackup_base(relative), counts, under)
                    continue
                self._extract(tar, item, archive, under)
                if item.isreg() and relative.startswith("perf/"):
                    _count_perf_file(counts, relative, item.size)
        except (tarfile.TarError, EOFError) as exc:
            raise FerryError("%s: truncated or corrupt (%s)" % (archive, exc))
        inflated.drain()
        if not counts["files"]:
            self.warnings.append("remote collector archive %s holds no perf data" % archive)

    # -- inside zenbackup_*.tgz ------------------------------------------------------------------
    def _inner_member(self, tar, member, archive):
        relative = member_path(member, archive)
        base = _zenbackup_base(relative)
        if member.isreg() and base in PERF_ARCHIVES:
            self._read_perf(tar, member, archive, base, self._perf)
        elif member.isreg() and base.endswith(".sql.gz") and self.verify_dumps:
            self._write_checked_dump(tar, member, archive, relative)
        else:
            self._extract(tar, member, archive)
        if member.isreg() and "/" not in base:
            if base in self._inner:
                raise FerryError("%s: member %s appears twice" % (archive, relative))
            self._inner[base] = member.size

    def _read_perf(self, tar, member, archive, base, counts, under=""):
        """Unpack a perf.tar[.gz] (``perf/Devices/...``, ``perf/Daemons/...``) under ``under``, counting it. Its name
        goes to ``counts["archive"]`` of the main perf data, ``counts["perf_archive"]`` of a remote collector's."""
        slot = "perf_archive" if under else "archive"
        if counts[slot] is not None:
            raise FerryError("%s holds both perf.tar and perf.tar.gz: remove one of them and build the bundle again"
                             % archive)
        counts[slot] = base
        name = "%s in %s" % (base, archive) if under else base
        source = open_member(tar, member, archive)
        if base.endswith(".gz"):
            source = GzipReader(source, name)
        perf = open_tar_stream(source, name)
        try:
            for item in iter_members(perf, name):
                self._extract(perf, item, name, under)
                if item.isreg():
                    _count_perf_file(counts, member_path(item, name), item.size)
        except (tarfile.TarError, EOFError) as exc:
            raise FerryError("%s: truncated or corrupt (%s)" % (name, exc))
        if base.endswith(".gz"):
            source.drain()

    def _write_checked_dump(self, tar, member, archive, relative):
        """Write a SQL dump as is while inflating it, so a corrupt dump fails now, not at import. The model dump
        must hold a line starting with INSERT INTO, as Import4's check wants: an empty model is no migration."""
        model = _zenbackup_base(relative) == MODEL_DUMP
        checker = (_ModelDumpReader if model else GzipCheckingReader)(open_member(tar, member, archive), relative)
        self._extractor.write_file(relative, checker, member.size, 0o644, member.mtime, self._advance)
        if model and not checker.has_insert:
            raise FerryError("%s: %s holds no line starting with INSERT INTO: the model database dump is empty or "
                             "not a mysqldump (Import4 refuses it too); export the model again"
                             % (archive, relative))

    # -- small outer files ----------------------------------------------------------------------
    def _keep_small_file(self, outer, member, name):
        if member.size > SMALL_FILE_LIMIT:
            raise FerryError("%s: %s is %s, too large to be what export4 writes"
                             % (self.bundle_name, name, human_bytes(member.size)))
        data = open_member(outer, member, self.bundle_name).read()
        self._small[name] = data.decode("utf-8", "replace")
        self._extractor.write_file(name, _BytesSource(data), len(data), 0o644, member.mtime)

    def _write_counting_lines(self, outer, member, name):
        counter = _LineCounter(open_member(outer, member, self.bundle_name))
        self._extractor.write_file(name, counter, member.size, 0o644, member.mtime)
        return counter.lines

    def _extract(self, tar, member, archive, under=""):
        self._extractor.extract_member(tar, member, archive, under, self._advance)

    # -- final checks ---------------------------------------------------------------------------
    def _finish_checks(self, identity):
        if self._tgz is None:
            raise FerryError("%s holds no zenbackup_*.tgz: this is not a Zenoss 4 export bundle" % self.bundle_name)
        missing = [name for name in REQUIRED_INNER if name not in self._inner]
        if missing:
            raise FerryError("%s is missing required member(s): %s" % (self._tgz["name"], ", ".join(missing)))
        self._check_md5()
        uuid = self._dmd_uuid()
        return {
            "bundle": identity,
            "layout": LAYOUT,
            "extracted_path": self.target,
            "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "dmd_uuid": uuid,
            "tgz": self._tgz,
            "outer_members": [{"name": name, "size": size} for name, size in sorted(self._seen_outer.items())],
            "members": [{"name": name, "size": size} for name, size in sorted(self._inner.items())],
            "optional": self._optional_parts(),
            "perf": dict(self._perf),
            "rrd_files": self._perf["rrd_files"] + sum(c["rrd_files"] for c in self._collectors.values()),
            "other_rrd_files": (self._perf["other_rrd_files"]
                                + sum(c["other_rrd_files"] for c in self._collectors.values())),
            "remote_collectors": [dict(name=name, **counts) for name, counts in sorted(self._collectors.items())],
            "components": self._text_lines.get("componentList.txt"),
            "rrdpath_map_lines": self._text_lines.get("rrdpath.map"),
            "flexera_files": self._flexera_files,
            "unexpected_members": self._unexpected,
            "warnings": self.warnings,
        }

    def _check_md5(self):
        text = self._small.get("backup.md5")
        tgz = self._tgz
        tgz["md5_expected"] = None
        tgz["md5_verified"] = False
        if text is None:
            if not self.allow_missing_checksum:
                raise FerryError("%s has no backup.md5: the zenbackup archive cannot be verified "
                                 "(set allow_missing_checksum to accept it unverified)" % self.bundle_name)
            self.warnings.append("backup.md5 is missing: %s was not verified" % tgz["name"])
            return
        match = MD5_LINE.match(text.strip().splitlines()[0] if text.strip() else "")
        if not match:
            raise FerryError("backup.md5 is malformed: expected '<32 hex digits> *%s', found %r"
                             % (tgz["name"], text[:80]))
        if os.path.basename(match.group("name")) != tgz["name"]:
            raise FerryError("backup.md5 is for %s but the bundle holds %s" % (match.group("name"), tgz["name"]))
        tgz["md5_expected"] = match.group("digest").lower()
        if tgz["md5_expected"] != tgz["md5"]:
            raise FerryError("md5 mismatch for %s: backup.md5 says %s, the archive's is %s (the bundle is "
                             "damaged or was altered)" % (tgz["name"], tgz["md5_expected"], tgz["md5"]))
        tgz["md5_verified"] = True

    def _dmd_uuid(self):
        text = self._small.get("dmd_uuid.txt")
        if text is None:
            raise FerryError("%s is missing required member dmd_uuid.txt" % self.bundle_name)
        uuid = text.strip()
        if not uuid or "\n" in uuid:
            raise FerryError("dmd_uuid.txt must hold one identifier on one line, found %r" % text[:80])
        if not UUID.match(uuid):
            self.warnings.append("dmd_uuid.txt holds %r, which is not a UUID" % uuid)
        return uuid

    def _optional_parts(self):
        parts = dict((name, name in self._inner) for name in OPTIONAL_INNER)
        parts.update({
            "perf": self._perf["archive"],
            "rrdpath.map": "rrdpath.map" in self._seen_outer,
            "componentList.txt": "componentList.txt" in self._seen_outer,
            "flexera": self._flexera_files > 0,
            "remote_collectors": len(self._collectors),
        })
        return parts

    # -- work directory -------------------------------------------------------------------------
    def _prepare_workdir(self):
        if self.dry_run:
            self._extractor = SafeExtractor(self.target, dry_run=True)
            return None
        try:
            os.makedirs(self.dest, exist_ok=True)
        except OSError as exc:
            raise FerryError("cannot create destination %s: %s" % (self.dest, exc.strerror))
        work = StagedDir(self.target)  # .<name>.ferry-tmp-<pid>, beside the target
        work.clean()  # what killed runs left
        self._check_space()
        self._extractor = SafeExtractor(work.create(0o755), min_free=self.min_free)
        return work

    def _check_space(self):
        """An early, optimistic gate: the content takes at least the bundle's own size."""
        free = free_bytes(self.dest)
        if free - self.min_free < self._size:
            raise FerryError("not enough free space in %s: the bundle is %s and only %s are free"
                             % (self.dest, human_bytes(self._size), human_bytes(free)))

    # -- progress -------------------------------------------------------------------------------
    def _advance(self, _count):
        self._report()

    def _report(self, force=False):
        if self._progress is None:
            return
        now = time.time()
        if force or now - self._last_report >= 0.5:
            self._last_report = now
            self._progress(self._outer.tell(), self._size)


def _zenbackup_base(relative):
    """A zenbackup archive member's path below ``zenbackup/``."""
    return relative[len("zenbackup/"):] if relative.startswith("zenbackup/") else relative


def _perf_counts():
    return {"archive": None, "rrd_files": 0, "other_rrd_files": 0, "files": 0, "bytes": 0}


def is_device_rrd(relative):
    """``perf/Devices/<device>/.../x.rrd``: a file the converters take (they skip the rest, e.g. perf/Daemons)."""
    parts = relative.split("/")
    return relative.endswith(".rrd") and len(parts) >= 4 and parts[:2] == ["perf", "Devices"]


def _count_perf_file(counts, relative, size):
    counts["files"] += 1
    counts["bytes"] += size
    if relative.endswith(".rrd"):
        counts["rrd_files" if is_device_rrd(relative) else "other_rrd_files"] += 1


class InsertWatcher(Gunzip):
    """Gunzip that also notes whether the inflated text has a line starting with ``INSERT INTO``, wherever the
    read chunks cut it (Import4: ``egrep "^INSERT INTO"``)."""

    MARK = b"\nINSERT INTO"

    def __init__(self, name):
        Gunzip.__init__(self, name)
        self.found = False
        self._tail = b"\n"  # the first line counts too

    def pieces(self, data, limit=CHUNK):
        for piece in Gunzip.pieces(self, data, limit):
            if not self.found:
                self._watch(piece)
            yield piece

    def _watch(self, piece):
        keep = len(self.MARK) - 1
        head = self._tail + piece[:keep]  # a mark straddling the previous piece and this one
        if self.MARK in head or self.MARK in piece:
            self.found = True
        self._tail = head[-keep:] if len(piece) < keep else piece[-keep:]


class _ModelDumpReader(GzipCheckingReader):
    """GzipCheckingReader of the model dump, also watching for its first INSERT INTO line."""

    def __init__(self, raw, name):
        GzipCheckingReader.__init__(self, raw, name)
        self._gunzip = InsertWatcher(name)

    @property
    def has_insert(self):
        return self._gunzip.found


class _BytesSource:
    def __init__(self, data):
        self._data = data

    def read(self, size=-1):
        data, self._data = (self._data, b"") if size < 0 else (self._data[:size], self._data[size:])
        return data


class _LineCounter:
    def __init__(self, raw):
        self.raw = raw
        self.lines = 0

    def read(self, size=-1):
        data = self.raw.read(size)
        self.lines += data.count(b"\n")
        return data
