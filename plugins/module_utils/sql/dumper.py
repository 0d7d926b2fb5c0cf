# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A consistent dump of one database, streamed to ``.sql.gz`` with its digests and per-table row counts.

``mariadb-dump`` (or ``mysqldump``) runs with ``--single-transaction`` (one snapshot of the InnoDB tables),
``--routines`` and ``--triggers``, reading the connection from a private option file. Its output goes through the
one statement splitter (:mod:`.dumpfile`) on its way to gzip: every byte is written back as read, except the
``DEFINER`` clauses removed with ``definer: strip``, and the rows of each ``INSERT`` are counted there, so the
counts are those of the snapshot the file holds. The file is written under a hidden temporary name, fsynced and
renamed into place (core staging): a failure or a kill never leaves a partial ``.sql.gz`` at ``dest``.

Binary columns are dumped as the server sends them (escaped bytes, no ``--hex-blob``), as zenbackup does:
sql_import reads bytes, never text.

zenbackup's own ``DEFINER`` stripping (prodbin ``ZenBackup.py`` / ``ZenDB.py``) differs between versions: a
regular expression removing each ``/*!50017 DEFINER=... */`` conditional comment of lines starting with ``/*``
and shorter than 500 characters (the events database), and ``perl -p -e 's/DEFINER=`\\w.*`@`\\d[0-3].*[0-3]`//g'``
for the model databases, which only matches numeric hosts and, quoted as it is passed there, changes nothing.
Here the clause of every trigger, view, routine and event is removed, wherever it is, and nothing else.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import hashlib
import os
import shutil
import subprocess
import tempfile

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError, readable
from ansible_collections.ferry.migrate.plugins.module_utils.core.staging import StagedFile
from ansible_collections.ferry.migrate.plugins.module_utils.sql import dumpfile
from ansible_collections.ferry.migrate.plugins.module_utils.sql.connection import ClientOptionFile

PROGRAMS = ("mariadb-dump", "mysqldump")
COMPRESS_LEVEL = 6  # gzip -c's default, as ZenDB's pipe into gzip
STDERR_SHOWN = 2000


def find_program():
    """The dump program on PATH: ``mariadb-dump``, else ``mysqldump``."""
    for name in PROGRAMS:
        path = shutil.which(name)
        if path:
            return path
    raise FerryError("neither mariadb-dump nor mysqldump is installed on this host (install the MariaDB or MySQL "
                     "client package)")


def dump_command(program, option_file, database, no_data=False):
    """The command line: the option file first (the client requires it there), never a password."""
    command = [program, "--defaults-file=%s" % option_file, "--single-transaction", "--routines", "--triggers",
               "--default-character-set=utf8mb4", "--max-allowed-packet=1G", "--skip-dump-date"]
    if no_data:
        command.append("--no-data")
    command += ["--", database]
    return command


class _HashingWriter:
    """A file object for gzip to write to: sha256 and md5 of every byte, on to ``handle``."""

    def __init__(self, handle):
        self.handle = handle
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5()
        self.size = 0

    def write(self, data):
        self.sha256.update(data)
        self.md5.update(data)
        self.size += len(data)
        self.handle.write(data)
        return len(data)

    def flush(self):
        self.handle.flush()


class Dump:
    """Dump ``database`` (connection ``params``) to ``dest``; ``strip`` removes ``DEFINER`` clauses. After
    :meth:`run`: ``size``, ``sha256``, ``md5``, ``tables`` ({table: rows}), ``routines``, ``triggers``, ``views``,
    ``events``, ``statements``."""

    def __init__(self, params, database, dest, no_data=False, strip=True, progress=None):
        self.params = params
        self.database = database
        self.dest = dest
        self.no_data = no_data
        self.strip = strip
        self.progress = progress
        self.tables = {}
        self.objects = {"view": [], "trigger": [], "procedure": [], "function": [], "event": []}
        self.statements = 0
        self.definers_stripped = 0
        self.size = self.sha256 = self.md5 = None

    def run(self):
        program = find_program()
        staged = StagedFile.create(self.dest)
        errors = tempfile.TemporaryFile()
        try:
            with ClientOptionFile(self.params) as option_file:
                # a pipe read as it comes (run_command would hold the whole dump in memory)
                process = subprocess.Popen(  # pylint: disable=ansible-bad-function
                    dump_command(program, option_file, self.database, self.no_data),
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors)
                try:
                    writer = self._write(process.stdout, staged)
                finally:
                    process.stdout.close()
                    status = process.wait()
            if status != 0:
                errors.seek(0)
                text = readable(errors.read()[-STDERR_SHOWN:].decode("utf-8", "replace")).strip()
                raise FerryError("%s of database %s failed (exit %d): %s" % (
                    os.path.basename(program), self.database, status, text or "no message"))
            if not self.statements:
                raise FerryError("the dump of %s holds no statement" % self.database)
            staged.set_mode(0o600)
            staged.commit()
        except BaseException:
            staged.abort()
            raise
        finally:
            errors.close()
        self.size, self.sha256, self.md5 = writer.size, writer.sha256.hexdigest(), writer.md5.hexdigest()
        return self

    def _write(self, stream, staged):
        writer = _HashingWriter(staged.handle)
        with gzip.GzipFile(filename="", mode="wb", compresslevel=COMPRESS_LEVEL, fileobj=writer, mtime=0) as out:
            splitter = dumpfile.Splitter(stream, "%s output" % self.database)
            for statement in splitter:
                sql = self._look(statement.sql)
                out.write(statement.prefix)
                out.write(sql)
                out.write(statement.suffix)
                self.statements = statement.number
                if self.progress is not None:
                    self.progress(splitter.bytes_read)
            out.write(splitter.tail)
        for name in self.objects["view"]:  # the stand-in table an older mysqldump writes first for each view
            self.tables.pop(name, None)
        return writer

    def _look(self, sql):
        """Count an INSERT's rows, note what a CREATE makes, strip its DEFINER; the statement to write."""
        if sql[:7].upper() in (b"INSERT ", b"REPLACE"):
            found = dumpfile.insert_rows(sql)
            if found:
                self.tables[found[0]] = self.tables.get(found[0], 0) + found[1]
            return sql
        made = dumpfile.created(sql)
        if made is None:
            return sql
        kind, name = made
        if kind == "table":
            self.tables.setdefault(name, 0)
        elif kind in self.objects:
            if name not in self.objects[kind]:
                self.objects[kind].append(name)
            if self.strip:
                stripped = dumpfile.rewrite_definer(sql, None)
                if stripped is not sql:
                    self.definers_stripped += 1
                return stripped
        return sql
