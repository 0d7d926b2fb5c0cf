"""A tree of files and the scan report that lists them (as host_scan writes it), for the upload tests."""
import hashlib
import os

from ansible_collections.ferry.migrate.plugins.module_utils.scan.report import ReportWriter, name_fields


def write_tree_and_report(root, report, files, created="2026-12-06T10:00:00Z"):
    """Write ``files`` ({relative bytes path: bytes content}) under ``root`` and a report of them (all ``added``
    regular files) at ``report``; returns the report's SHA-256."""
    root_b = os.fsencode(root)
    for path, data in files.items():
        full = os.path.join(root_b, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as handle:
            handle.write(data)
    with ReportWriter(str(report)) as writer:
        writer.header({"created": created, "root": str(root), "system": {}, "install_profile": {}, "options": {}})
        for path, data in sorted(files.items()):
            writer.file(dict(name_fields("path", path), type="file", mode=0o644, uid=0, gid=0, owner="root",
                             group="root", size=len(data), mtime_ns=0, sha256=hashlib.sha256(data).hexdigest(),
                             package=None, change="added"))
        return writer.close({"files": len(files)})


def sha(data):
    return hashlib.sha256(data).hexdigest()
