# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""scan_upload: a scan report and the contents the store lacks, to the store (or to one local overlay archive).

To a store, in this order (a reader trusts a scan only once ``complete.json`` / ``latest.json`` name it)::

    report.jsonl.gz -> part-00001.tar ... -> overlay.jsonl.gz -> content.jsonl.gz -> complete.json -> latest.json

What the store lacks is read from its ``content.jsonl.gz`` at the start; the parts follow from it and the report
alone (:func:`overlay.plan_parts`), so a rerun after a kill or a failure plans the same parts and skips those the
store holds whole (HEAD gives their exact size). The content index is rewritten as a stream: the old one read
while the new one is sent.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import itertools
import os

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import (
    FerryError,
    check_paths,
    check_ranges,
    file_sha256,
)
from ansible_collections.ferry.migrate.plugins.module_utils.core.httpclient import check_http_params
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import RUN, SKIP, attempt_step
from ansible_collections.ferry.migrate.plugins.module_utils.scan.overlay import (
    PART_SIZE_RANGE,
    ObjectReader,
    archive_chunks,
    archive_length,
    index_lines,
    plan_parts,
    report_objects,
    write_archive,
)
from ansible_collections.ferry.migrate.plugins.module_utils.scan.report import read_report
from ansible_collections.ferry.migrate.plugins.module_utils.scan.store import (
    Store,
    check_instance,
    jsonl_gz,
    scan_id_of,
)

STEP = "scan_upload"
RANGES = {"part_size": PART_SIZE_RANGE}


def check_options(params):
    check_paths(params, ("report", "src_root", "dest", "ca_path"))
    check_ranges(params, RANGES)
    if (params.get("url") is None) == (params.get("dest") is None):
        raise FerryError("give exactly one of url (a store) and dest (a local overlay archive)")
    if params.get("url") is not None:
        check_http_params(params, ("url",))
        if params.get("instance") is None:
            raise FerryError("instance is required with url")
        check_instance(params["instance"])


class Scan:
    """The report to upload: its SHA-256, scan id, header, objects and where their files are read."""

    def __init__(self, params):
        path = params["report"]
        try:
            self.sha256 = file_sha256(path)
        except OSError as exc:
            raise FerryError("cannot read the report %s: %s" % (path, exc.strerror))
        self.path = path
        self.id = scan_id_of(self.sha256)
        report = read_report(path)
        self.header = report.header
        self.objects = report_objects(report)  # a whole pass: a truncated report fails here
        self.bytes = sum(obj.size for obj in self.objects.values())
        self.src_root = params.get("src_root") or report.header.get("root") or "/"
        if not os.path.isdir(self.src_root):
            raise FerryError("src_root %s is not a directory" % self.src_root)


def run(params, check_mode):
    check_options(params)
    scan = Scan(params)
    if params.get("dest") is not None:
        return to_archive(params, scan, check_mode)
    return to_store(params, scan, check_mode)


def _result(scan, **values):
    result = {"scan_id": scan.id, "report_sha256": scan.sha256, "objects": 0, "bytes": 0, "parts": 0,
              "parts_skipped": 0, "known": 0, "url": None, "dest": None}
    result.update(values)
    return result


# -- to a store -----------------------------------------------------------------------------------------------

def to_store(params, scan, check_mode):
    store = Store(params["url"], params["instance"], params)
    attempt = attempt_step(params, STEP, {
        "report_sha256": scan.sha256, "url": store.url, "instance": store.instance,
        "part_size": params["part_size"], "src_root": scan.src_root}, check_mode)
    base = _result(scan, url=store.url, instance=store.instance)
    summary = store.complete(scan.id)
    if summary is not None:  # the store holds the whole scan (this run's journal may not know it)
        fixed = not check_mode and _point_latest(store, summary)
        return dict(base, decision=attempt.decision if fixed else SKIP, known=len(scan.objects), changed=fixed)
    if attempt.decision == SKIP:
        attempt.decision = RUN  # complete in the journal, not in the store (another store, or removed)
    known = known_objects(store, scan)
    parts = plan_parts(scan.objects, known, params["part_size"])
    result = dict(base, decision=attempt.decision, known=len(known), parts=len(parts),
                  objects=len(scan.objects) - len(known), bytes=sum(part.bytes for part in parts), changed=True)
    if not attempt.runs:
        return result
    with attempt.running(total=result["bytes"], unit="bytes") as step:
        result["parts_skipped"] = Upload(store, scan, step).run(parts)
        result["parts"] -= result["parts_skipped"]
        step.complete(counts={key: result[key] for key in ("objects", "bytes", "parts", "parts_skipped", "known")},
                      result={"scan_id": scan.id, "url": store.url})
    return result


def known_objects(store, scan):
    """The report's objects the store's content index lists, from scans other than this one (the lines this
    scan added, when an earlier run got that far, do not count: the plan stays the first run's)."""
    known = set()
    for line in store.content_index():
        sha = line.get("sha256")
        if sha in scan.objects and line.get("scan") != scan.id:
            known.add(sha)
    return known


def _point_latest(store, summary):
    """Write latest.json for a complete scan when a killed run wrote complete.json but not latest.json (unless
    latest.json names a scan made later). True when written."""
    latest = store.latest()
    if latest is not None and (latest.get("scan") == summary.get("scan")
                               or str(latest.get("created")) >= str(summary.get("created"))):
        return False
    store.put_json(store.latest_path(), summary)
    return True


class Upload:
    """One run of an upload: the report, the parts the store does not hold, the indexes, the marks."""

    def __init__(self, store, scan, step):
        self.store = store
        self.scan = scan
        self.step = step
        self.done = 0  # object bytes of finished parts
        self.sent = 0  # object bytes of the part being sent (restarts with a retry)
        self.reader = ObjectReader(scan.src_root, progress=self._advance)

    def _advance(self, count):
        self.sent += count
        self.step.progress(self.done + self.sent)

    def run(self, parts):
        """Upload; returns the number of parts the store held already."""
        store, scan = self.store, self.scan
        report = store.report_path(scan.id)
        if store.head(report) != os.stat(scan.path).st_size:
            store.put_file(report, scan.path)
        skipped = 0
        for number, part in enumerate(parts):
            self.step.check_stop("%d of %d part(s)" % (number, len(parts)))
            if store.head(store.part_path(scan.id, part.name)) == part.length:
                skipped += 1
            else:
                store.put_stream(store.part_path(scan.id, part.name), lambda part=part: self._part_chunks(part),
                                 part.length)
            self.done += part.bytes
            self.sent = 0
            self.step.progress(self.done)
        self.step.check_stop("%d part(s)" % len(parts))
        store.put_stream(store.overlay_index_path(scan.id), lambda: jsonl_gz(index_lines(parts)))
        store.put_stream(store.content_path(), lambda: jsonl_gz(self._content_lines(parts)))
        summary = {"scan": scan.id, "report_sha256": scan.sha256, "created": scan.header.get("created"),
                   "objects": len(scan.objects), "bytes": scan.bytes}
        store.put_json(store.complete_path(scan.id), summary)
        store.put_json(store.latest_path(), summary)
        return skipped

    def _part_chunks(self, part):
        self.sent = 0
        return self.reader.part_chunks(part.members)

    def _content_lines(self, parts):
        """The store's content index as it was (read on a second connection while this one sends), less what an
        earlier run of this scan added, then this scan's objects."""
        other = Store(self.store.params["url"], self.store.instance, self.store.params)
        try:
            old = (line for line in other.content_index() if line.get("scan") != self.scan.id)
            yield from itertools.chain(old, index_lines(parts, self.scan.id))
        finally:
            other.close()


# -- to a local archive ---------------------------------------------------------------------------------------

def to_archive(params, scan, check_mode):
    dest = params["dest"]
    length = archive_length(os.stat(scan.path).st_size, scan.objects)
    attempt = attempt_step(params, STEP, {"report_sha256": scan.sha256, "dest": dest, "src_root": scan.src_root},
                           check_mode)
    if attempt.decision == SKIP and _size(dest) != length:
        attempt.decision = RUN  # the archive was removed or replaced
    result = _result(scan, dest=dest, decision=attempt.decision, objects=len(scan.objects), bytes=scan.bytes,
                     changed=attempt.decision != SKIP)
    if not attempt.runs:
        return result
    if not os.path.isdir(os.path.dirname(os.path.abspath(dest))):
        raise FerryError("the directory of dest %s does not exist" % dest)
    with attempt.running(total=scan.bytes, unit="bytes") as step:
        progress = [0]

        def advance(count):
            progress[0] += count
            step.progress(progress[0])

        reader = ObjectReader(scan.src_root, progress=advance)
        write_archive(dest, archive_chunks(scan.path, scan.sha256, scan.objects, reader,
                                           between=lambda done: step.check_stop("%d object(s)" % done)))
        step.complete(counts={"objects": len(scan.objects), "bytes": scan.bytes}, result={"dest": dest})
    return result


def _size(path):
    try:
        return os.stat(path).st_size
    except OSError:
        return None
