# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One pass of ``file_sync``: the file list, the rsync run (or its dry run in check mode) and the verification.

A pass is ``bulk`` (the source still in use: files vanishing are a warning, differences left are reported) or
``final`` (the source stopped: both are errors).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import SAMPLE_LIMIT, FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.sshcmd import ssh_command
from ansible_collections.ferry.migrate.plugins.module_utils.sync import filelist, rsync

PUSH, PULL = "push", "pull"
BULK, FINAL = "bulk", "final"
DIFFERENCES_SHOWN = 20


class Sync:
    """A pass from ``params`` (the module's options). :meth:`prepare` checks and writes the file list,
    :meth:`run`, :meth:`dry_run` and :meth:`verify` run rsync; :meth:`close` removes the list."""

    def __init__(self, params):
        self.params = params
        self.push = params["mode"] == PUSH
        self.local_root = params["src"] if self.push else params["dest"]
        self.sending_root = params["src"]
        self.reach = rsync.Reach(params["host"], params.get("ssh_port"), params.get("ssh_user"),
                                 params.get("ssh_key"), params.get("ssh_known_hosts"))
        self.files = None
        self.exclude = list(params.get("exclude") or [])
        self.rsync = None
        self.warnings = []

    def prepare(self):
        """Everything checked on this host before ssh is ever run: roots, key and known_hosts files, paths."""
        self.rsync = rsync.find_rsync()
        if self.push and not os.path.isdir(self.local_root):
            raise FerryError("src, %s, is not a directory on this host" % self.local_root)
        for name in ("ssh_key", "ssh_known_hosts"):
            value = self.params.get(name)
            if value and not os.path.isfile(value):
                raise FerryError("%s, %s, is not a file on this host" % (name, value))
        entries = None
        if self.params.get("manifest"):
            entries = filelist.manifest_entries(self.params["manifest"])
            self.exclude += filelist.manifest_excludes(self.params["manifest"])
        elif self.params.get("paths") is not None:
            entries = filelist.path_entries(self.params["paths"])
        if entries is not None:
            self.files = filelist.FileList(self.local_root if self.push else None).write(entries)
            if self.files.count == 0 and self.files.missing_count:
                # every listed path missing: a wrong src, not a pass with nothing to do
                self.close()
                raise FerryError("none of the %d listed path(s) exists under src %s (the first: %s): is src the "
                                 "data mount the list is relative to?" % (
                                     self.files.missing_count, self.local_root, ", ".join(self.files.missing[:3])))
        return self

    def close(self):
        if self.files is not None:
            self.files.remove()

    def identity(self):
        """What the pass does, for the journal's fingerprint: a rerun with the same identity is a skip."""
        params = self.params
        return {
            "mode": params["mode"], "host": params["host"], "port": params.get("ssh_port"),
            "user": params.get("ssh_user"), "src": params["src"], "dest": params["dest"],
            "files": None if self.files is None else {"count": self.files.count, "sha256": self.files.sha256},
            "sync_pass": params["sync_pass"], "delete": params["delete"], "exclude": self.exclude,
            "checksum": params["checksum"],
        }

    def argv(self, dry_run=False, verify=False):
        params = self.params
        ssh = ssh_command(params.get("ssh_port"), params.get("ssh_user"), params.get("ssh_key"),
                          params.get("ssh_args"), params.get("ssh_known_hosts"), strict=True)
        src, dest = params["src"].rstrip("/") + "/", params["dest"].rstrip("/") + "/"
        if self.push:
            dest = rsync.remote(params["host"], dest)
        else:
            src = rsync.remote(params["host"], src)
        return rsync.rsync_argv(
            self.rsync, ssh, src, dest, files_from=self.files and self.files.path, delete=params["delete"],
            bwlimit=0 if verify else params["bwlimit"], exclude=self.exclude, dry_run=dry_run or verify,
            checksum=verify and params["checksum"], progress=not (dry_run or verify))

    def run(self, step):
        """The pass itself; progress in bytes goes to the journal ``step``, its STOP file ends rsync."""
        if not self.push:
            os.makedirs(self.local_root, exist_ok=True)

        def progress(output):
            step.progress(output.done, output.total_estimate(), "bytes")

        output = rsync.Output(progress)
        rc, errors = rsync.run(self.argv(), output, step.stop_requested, self.sending_root)
        if rc is None:
            step.check_stop("%d byte(s)" % output.done)
        result = self._result(rc, output, errors)
        # rsync's percentage is of the whole tree, unchanged files included: the step ends at what it copied
        step.progress(output.done, max(output.done, result["bytes_transferred"]), "bytes")
        return result

    def dry_run(self):
        """Check mode: what the pass would copy and delete, nothing written."""
        output = rsync.Output()
        rc, errors = rsync.run(self.argv(dry_run=True), output, root=self.sending_root)
        return self._result(rc, output, errors)

    def verify(self):
        """A dry run after the pass: no change should be left (with ``checksum``, contents compared too)."""
        output = rsync.Output()
        rc, errors = rsync.run(self.argv(verify=True), output, root=self.sending_root)
        self._check(rc, errors)
        result = {"verified": output.changes == 0, "differences": output.changed[:DIFFERENCES_SHOWN],
                  "differences_count": output.changes}
        if output.changes:
            message = "%d difference(s) left after the %s pass: %s" % (
                output.changes, self.params["sync_pass"], ", ".join(output.changed[:DIFFERENCES_SHOWN]))
            if self.params["sync_pass"] == FINAL:
                error = FerryError(message)
                error.result = result
                raise error
            self.warnings.append(message + " (the source is still in use; the final pass copies them)")
        return result

    def _check(self, rc, errors):
        self.warnings += rsync.check_exit(rc, errors, self.reach, self.params["sync_pass"] == BULK)

    def _result(self, rc, output, errors):
        self._check(rc, errors)
        stats = output.stats
        missing = list(self.files.missing) if self.files is not None else []
        missing += errors.missing[:max(0, SAMPLE_LIMIT - len(missing))]
        return {
            "rc": rc, "files": stats.get("files", 0), "bytes": stats.get("bytes", 0),
            "files_transferred": stats.get("files_transferred", 0),
            "bytes_transferred": stats.get("bytes_transferred", 0), "deleted": stats.get("deleted", 0),
            "changes": output.changes, "listed": self.files.count if self.files is not None else None,
            "missing": missing,
            "missing_count": (self.files.missing_count if self.files is not None else 0) + errors.counts["missing"],
            "vanished": errors.vanished[:SAMPLE_LIMIT],
        }
