# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""host_scan: a machine's report (``report.jsonl.gz``): system, install profile, packages, files.

The step always runs (a host changes between two scans with the same options); what makes a rescan cheap is the
stat cache (``scan/walk.py``): an unchanged file is not read again. The report is written staged and replaces
``dest`` only when its content differs from the report there (the summary's ``content_sha256``: header without
its time, every package and file line): a rescan of an unchanged host reports ``changed: false`` and leaves
``dest`` as it was (same file, same sha256, so an upload of it has nothing to send). Check mode walks and hashes
the same way, writes neither the report nor the cache, and predicts ``changed`` by the same comparison.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import itertools
import os
import stat

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import (
    FerryError,
    check_dest_file,
    check_paths,
    check_ranges,
    file_sha256,
    readable,
    remove_quietly,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import RUN, SKIP, attempt_step
from ansible_collections.ferry.migrate.plugins.module_utils.core.tree import default_workers
from ansible_collections.ferry.migrate.plugins.module_utils.scan import packages as packages_module
from ansible_collections.ferry.migrate.plugins.module_utils.scan import system as system_module
from ansible_collections.ferry.migrate.plugins.module_utils.scan.report import ReportWriter, name_of, read_report
from ansible_collections.ferry.migrate.plugins.module_utils.scan.walk import (
    SKIPPED,
    Excludes,
    Walk,
    partial_name,
    relative_name,
    resume_name,
)

STEP = "host_scan"
RANGES = {"hash_workers": (1, 64)}
DEFAULT_EXCLUDES = ("/proc", "/sys", "/dev", "/run", "/tmp", "/var/tmp", "/var/cache", "/var/run", "/var/lock",
                    "/var/lib/dpkg", "/var/lib/apt/lists", "/var/lib/rpm", "/lost+found", "/media", "/mnt")
TYPE_COUNTS = {"file": "files", "dir": "dirs", "symlink": "symlinks"}


def check_options(params):
    check_paths(params, ["root", "dest", "roots", "excludes", "state_dir"])
    check_ranges(params, RANGES)
    if not os.path.isdir(params["root"]):
        raise FerryError("root, %s, is not a directory" % params["root"])
    check_dest_file(params["dest"], "report")
    for name in params["roots"] or ["/"]:
        relative_name(name)
        if not os.path.lexists(os.path.join(params["root"], os.fsdecode(relative_name(name)))):
            raise FerryError("roots: %s does not exist in root %s" % (name, params["root"]))


def excludes(params):
    """The exclude patterns of a scan: the user's, the defaults and the state directory when it is inside root."""
    patterns = list(params["excludes"] or [])
    if params["default_excludes"]:
        patterns.extend(DEFAULT_EXCLUDES)
        state = _inside(os.path.realpath(params["root"]), os.path.realpath(params["state_dir"]))
        if state:
            patterns.append(state)
    return patterns


def check_dest_outside(params, excluded):
    """A report written inside the tree it describes would change that tree (itself, its directory's time) at every
    scan, so no rescan could ever come out unchanged: dest must be outside root or under an excluded path."""
    dest = _inside(os.path.realpath(params["root"]), os.path.join(
        os.path.realpath(os.path.dirname(params["dest"])), os.path.basename(params["dest"])))
    if dest and not excluded.covers(os.fsencode(dest.lstrip("/"))):
        raise FerryError("dest %s is inside the scanned root %s and not excluded: put the report under state_dir "
                         "or outside root, or exclude its directory" % (params["dest"], params["root"]))


def _inside(root, path):
    """``path`` as ``/relative`` to ``root`` when it is inside it (not root itself), else None."""
    if path != root and path.startswith(root.rstrip("/") + "/"):
        return "/" + os.path.relpath(path, root)
    return None


def run(params, check_mode):
    check_options(params)
    params = dict(params, root=os.path.abspath(params["root"]), dest=os.path.abspath(params["dest"]),
                  roots=list(params["roots"] or ["/"]), hash_workers=params["hash_workers"] or default_workers())
    patterns = excludes(params)
    excluded = Excludes(patterns)  # refused before anything is recorded
    check_dest_outside(params, excluded)
    inputs = {"root": params["root"], "dest": params["dest"], "roots": params["roots"], "excludes": patterns,
              "packages": params["packages"], "one_file_system": params["one_file_system"]}
    attempt = attempt_step(params, STEP, inputs, check_mode)
    if attempt.decision == SKIP:
        attempt.decision = RUN  # the same options, another day: the host may have changed
    previous, previous_sha256 = previous_report(params["dest"], attempt.record)
    cache = attempt.step.beside(".statcache")
    cache_in = None if params["force"] else cache  # force: every file read again
    md5_cache = attempt.step.beside(".md5cache")  # the package files' (dpkg's md5sums)
    md5_in = None if params["force"] else md5_cache
    if check_mode:
        return scan(params, excluded, None, (cache_in, partial_name(cache)), None, attempt.step, previous,
                    previous_sha256, (md5_in, None))
    os.makedirs(os.path.dirname(params["dest"]), exist_ok=True)
    with attempt.running(unit="files") as step:
        resume = take_partial(cache)
        result = scan(params, excluded, params["dest"], (cache_in, resume), cache, step, previous, previous_sha256,
                      (md5_in, md5_cache))
        if resume:
            remove_quietly(resume)
        step.complete(counts=_flat(result["counts"]), result={
            "report": result["report"], "sha256": result["sha256"], "changed": result["changed"],
            "content_sha256": result["content_sha256"], "identity": file_identity(params["dest"])})
    return result


def previous_report(dest, record=None):
    """(content digest, sha256) of the report at ``dest`` ((None, None): none there, or not a complete report): those
    the last scan recorded when ``dest`` is still the file it wrote (same size, time and inode); else the content
    digest read from its summary line (inflating the whole report) and no sha256 (computed when needed)."""
    try:
        identity = file_identity(dest)
    except OSError:
        return None, None
    known = (record or {}).get("result") or {}
    if known.get("content_sha256") and known.get("identity") == identity:
        return known["content_sha256"], known.get("sha256")
    try:
        return (read_report(dest).summary or {}).get("content_sha256"), None
    except (FerryError, OSError):
        return None, None


def file_identity(path):
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise OSError("not a regular file")
    return [info.st_size, info.st_mtime_ns, info.st_ino]


def take_partial(cache):
    """The cache an interrupted scan left (its files are not read again), moved aside to be read while this scan
    writes its own; None when there is none."""
    try:
        os.replace(partial_name(cache), resume_name(cache))
    except FileNotFoundError:
        pass
    return resume_name(cache) if os.path.exists(resume_name(cache)) else None


def scan(params, excluded, dest, caches_in, cache_out, step, previous, previous_sha256=None,
         md5_caches=(None, None)):
    """Write the report (``dest`` None: only its digest) and return the module's result. ``caches_in``: the last
    complete scan's stat cache and an interrupted one's (either None)."""
    root = params["root"]
    counts = {"packages": 0, "files": 0, "dirs": 0, "symlinks": 0, "modified": 0, "deleted": 0, "bytes": 0,
              "hashed": 0, "cached": 0, "skipped": dict((kind, 0) for kind in SKIPPED)}
    system = system_module.system_info(root)
    writer = ReportWriter(dest, unless_content=previous)
    with writer:
        writer.header({"created": _now(), "root": root, "system": system,
                       "install_profile": system_module.install_profile(root),
                       "options": {"roots": params["roots"], "excludes": excluded.patterns}})
        owned = frozenset()
        if params["packages"]:
            owned = write_packages(writer, root, excluded, params["hash_workers"], counts, md5_caches)
        walk = Walk(root, params["roots"], excluded, params["one_file_system"], owned,
                    system_module.read_passwd(root).by_id, system_module.read_group(root).by_id,
                    cache_in=caches_in[0], cache_resume=caches_in[1], cache_out=cache_out,
                    hash_workers=params["hash_workers"])
        for batch in walk.batches():
            writer.file_lines(batch.lines, batch.records)
            done = writer.records - counts["packages"]
            step.check_stop("%d file record(s)" % done)
            if dest is not None:
                step.progress(done)
        _add_walk(counts, walk.counts)
        sha256 = writer.close(counts)
    changed = writer.content_sha256 != previous
    if not changed:
        sha256 = previous_sha256 or file_sha256(params["dest"])  # the report there stays: same content
    elif dest is None:
        sha256 = None  # check mode: a new report's digest depends on the time it is written
    return {"changed": changed, "report": params["dest"], "sha256": sha256, "content_sha256": writer.content_sha256,
            "counts": counts, "system": system, "warnings": [readable(text) for text in walk.warnings]}


def write_packages(writer, root, excluded, workers, counts, md5_caches=(None, None)):
    """The package lines, then the modified and deleted package files (``scan/packages.py`` finds them; the
    excludes apply to them too); returns the paths the packages own, which the walk leaves out. ``md5_caches``: the
    package files' md5 cache to read and the one to write (either None)."""
    for package in itertools.chain(packages_module.dpkg_packages(root), packages_module.rpm_packages(root)):
        writer.package(package)
        counts["packages"] += 1
    found, owned = {}, set()
    for record in packages_module.package_file_changes(root, workers=workers, counts=found, cache_in=md5_caches[0],
                                                       cache_out=md5_caches[1], owned=owned):
        if not excluded.covers(name_of(record)):
            writer.file(record)
            _count_change(counts, record)
    counts["skipped"]["unreadable"] += found.get("unreadable", 0)
    return owned


def _count_change(counts, record):
    change = record.get("change")
    if change == "deleted":
        counts["deleted"] += 1
        return
    counts["modified"] += 1
    kind = TYPE_COUNTS.get(record.get("type"))
    if kind:
        counts[kind] += 1
    if record.get("type") == "file":
        counts["bytes"] += record.get("size") or 0


def _add_walk(counts, walked):
    for key, value in walked.items():
        if key == "skipped":
            for kind, number in value.items():
                counts["skipped"][kind] += number
        else:
            counts[key] += value


def _flat(counts):
    flat = dict((key, value) for key, value in counts.items() if key != "skipped")
    flat.update(("skipped_" + key, value) for key, value in counts["skipped"].items())
    return flat


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
