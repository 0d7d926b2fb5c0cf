"""A test oracle doing what Zenoss Import4's ``check`` step does with an export bundle (ZenPacks.zenoss.Import4,
bin/imp4_check.sh, then ``import4 model check``, ``events check`` and ``perf --skip-scan check``), with the same
tools: GNU tar to extract, an md5 compared on its first 32 characters, gunzip, a search for ``INSERT INTO``.

In order, each failure raising :class:`Import4CheckFailed` with the exit code the original would end with:

1. ``tar -xf <bundle>`` in an empty work directory.
2. When ``backup.md5`` exists: its first 32 bytes must equal the first 32 of ``md5sum -b zenbackup_*.tgz``
   (a missing file is only noted).
3. ``tar -zxf zenbackup_*.tgz``.
4. ``dmd_uuid.txt`` must exist.
5. In ``zenbackup/``: ``zodb.sql.gz`` must gunzip, and (the model check) the SQL must hold a line starting with
   ``INSERT INTO``; ``ZenPacks.tar`` must extract.
6. Optional: ``zep.sql.gz`` gunzips (then ``zep.tar`` extracts if present), ``zencatalogservice.tar`` extracts.
7. ``perf.tar`` and ``perf.tar.gz`` together are an error; the one present extracts into a staging directory
   and must give ``zenbackup/perf/Devices`` (the perf check's RRD tree).

Usage from a test: ``result = import4_check(bundle_path, work_dir)``; the result tells what was found.
"""

import glob
import gzip
import hashlib
import os
import subprocess

FAILURE = 2  # utils.sh err_exit, Import4's ExitCode.FAILURE
INVALID = 3  # ExitCode.INVALID: the model check's errors


class Import4CheckFailed(Exception):
    def __init__(self, code, message):
        Exception.__init__(self, message)
        self.code = code


def _tar(args, cwd, what):
    proc = subprocess.run(["tar"] + args, cwd=cwd, capture_output=True, check=False)
    if proc.returncode != 0:
        raise Import4CheckFailed(FAILURE, "%s failed: %s" % (what, proc.stderr.decode(errors="replace")[-500:]))


def _gunzip(path):
    """Inflate ``path`` next to itself, as ``gunzip -f`` does (CRC and length checked); returns the SQL's path."""
    target = path[:-3]
    try:
        with gzip.open(path, "rb") as source, open(target, "wb") as out:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                out.write(chunk)
    except (OSError, EOFError) as exc:
        raise Import4CheckFailed(FAILURE, "Uncompressing (gunzip) %s failed: %s" % (os.path.basename(path), exc))
    os.unlink(path)
    return target


def _insert_lines(path, prefix=b"INSERT INTO"):
    """``egrep "^INSERT INTO" <sql> | wc -l``."""
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.startswith(prefix))


def import4_check(bundle, work):
    """Check ``bundle`` in the empty directory ``work``; return what was found, or raise Import4CheckFailed."""
    os.makedirs(work, exist_ok=True)
    found = {"md5_checked": False}
    _tar(["-xf", os.path.abspath(bundle)], work, "Extracting zenbackup (tar -xf)")
    tgzs = sorted(glob.glob(os.path.join(work, "zenbackup_*.tgz")))
    if not tgzs:
        raise Import4CheckFailed(FAILURE, "no zenbackup_*.tgz in the bundle")
    md5_file = os.path.join(work, "backup.md5")
    if os.path.isfile(md5_file):
        with open(md5_file, "rb") as handle:
            recorded = handle.read(32)
        with open(tgzs[0], "rb") as handle:
            actual = hashlib.md5(handle.read()).hexdigest().encode()  # md5sum -b's line starts with it
        if recorded != actual:
            raise Import4CheckFailed(FAILURE, "md5sum failed: zenbackup_*.tgz")
        found["md5_checked"] = True
    _tar(["-zxf", tgzs[0]], work, "Extracting (tar -zxf) zenbackup_*.tgz")
    if not os.path.isfile(os.path.join(work, "dmd_uuid.txt")):
        raise Import4CheckFailed(FAILURE, "dmd_uuid.txt is missing in the backup file, cannot continue")
    with open(os.path.join(work, "dmd_uuid.txt"), "rb") as handle:
        found["dmd_uuid"] = handle.read().decode().strip()
    zenbackup = os.path.join(work, "zenbackup")
    if not os.path.isdir(zenbackup):
        raise Import4CheckFailed(FAILURE, "Missing zenbackup directory! Invalid backup file.")
    found.update(_model(zenbackup))
    found.update(_events(zenbackup))
    if os.path.isfile(os.path.join(zenbackup, "zencatalogservice.tar")):
        _tar(["-xf", "zencatalogservice.tar"], zenbackup, "Extracting zencatalogservice.tar")
        found["catalog"] = os.path.isdir(os.path.join(zenbackup, "zencatalogservice", "global_catalog", "index"))
    found.update(_perf(zenbackup, os.path.join(work, "staging", "zenbackup")))
    return found


def _model(zenbackup):
    gz = os.path.join(zenbackup, "zodb.sql.gz")
    if not os.path.isfile(gz):
        raise Import4CheckFailed(INVALID, "Failed to find zodb.sql")
    inserts = _insert_lines(_gunzip(gz))
    if inserts <= 0:
        raise Import4CheckFailed(INVALID, "Cannot find any INSERT statement in zodb.sql")
    if not os.path.isfile(os.path.join(zenbackup, "ZenPacks.tar")):
        raise Import4CheckFailed(FAILURE, "Extracting (tar -xf) ZenPack.tar failed! Invalid backup file.")
    _tar(["-xf", "ZenPacks.tar"], zenbackup, "Extracting (tar -xf) ZenPack.tar")
    return {"model_inserts": inserts, "zenpacks": sorted(os.listdir(os.path.join(zenbackup, "ZenPacks")))}


def _events(zenbackup):
    gz = os.path.join(zenbackup, "zep.sql.gz")
    if not os.path.isfile(gz):
        return {"events": False}
    sql = _gunzip(gz)
    found = {"events": True, "event_inserts": _insert_lines(sql, b"INSERT INTO `event_")}
    if os.path.isfile(os.path.join(zenbackup, "zep.tar")):
        _tar(["-xf", "zep.tar"], zenbackup, "Extracting (tar -xf) Zeneventserver indexes")
        found["event_index"] = os.path.isdir(os.path.join(zenbackup, "zeneventserver", "index"))
    return found


def _perf(zenbackup, staging):
    archives = [name for name in ("perf.tar", "perf.tar.gz") if os.path.isfile(os.path.join(zenbackup, name))]
    if len(archives) > 1:
        raise Import4CheckFailed(FAILURE, "Multiple perf data tarballs found! Invalid backup file.")
    if not archives:
        return {"perf": None}
    os.makedirs(staging, exist_ok=True)
    flags = "-xf" if archives[0] == "perf.tar" else "-xzf"
    _tar(["-C", staging, flags, os.path.join(zenbackup, archives[0])], zenbackup,
         "Extracting performance data from %s" % archives[0])
    devices = os.path.join(staging, "perf", "Devices")
    if not os.path.isdir(devices):
        raise Import4CheckFailed(FAILURE, "%s does not exist. Need to extract the backup file first." % devices)
    rrds = [os.path.join(top, name) for top, _dirs, files in os.walk(devices) for name in files
            if name.endswith(".rrd")]
    return {"perf": archives[0], "rrd_files": len(rrds), "perf_root": os.path.join(staging, "perf")}
