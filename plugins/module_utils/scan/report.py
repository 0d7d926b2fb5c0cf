# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scan report: gzip, JSON Lines, written and read in bounded memory.

Lines, in order: the header, the packages, the files (walk order), the summary. The summary is the
completeness mark: a report without it is truncated and every reader refuses it.

Names are bytes. A path (or a symlink's target) is ``"path": "<str>"`` when its bytes are strict UTF-8, else
``"path_b64": "<base64>"`` (:func:`name_fields`, :func:`name_of`).

The summary also carries ``content_sha256``: the SHA-256 of the header (without its ``created`` time) and of every
package and file line, as written. Two scans of an unchanged host have the same one, whatever the time and the
cache did (``hashed`` / ``cached`` counts differ, the content does not): ``host_scan`` keeps the report it has then.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import hashlib
import json
import os
import tempfile
import zlib

from ansible_collections.ferry.migrate.plugins.module_utils.core.archive import Gunzip
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.staging import BackgroundWriter, StagedFile

FORMAT = "ferry-scan"
VERSION = 1
COMPRESS_LEVEL = 1  # a report is written once per scan and read a few times: speed over size
FLUSH_BYTES = 1 << 18  # lines gathered before one compress call
# A writer that may keep the report there (a rescan) holds its lines back, uncompressed in a temporary file, up to
# this much: an unchanged report is then never deflated; a changed one is deflated at the end (or from here on).
SPOOL_MOST = 32 << 20
READ_CHUNK = 1 << 20
# The longest line a reader takes: a record is a few KiB (a path is at most 4 KiB, 5.4 KiB in base64); a longer
# line (a report from an untrusted store, say) is refused before it fills the memory.
MAX_LINE = 16 << 20
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


def name_fields(key, raw):
    """``{key: str}`` when the bytes ``raw`` are strict UTF-8, else ``{key + "_b64": base64}``."""
    try:
        return {key: raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {key + "_b64": base64.b64encode(raw).decode("ascii")}


def name_of(record, key="path"):
    """The bytes of the name ``key`` of a record (``path`` or ``target``), from either form."""
    if key in record:
        return record[key].encode("utf-8", "surrogatepass")
    encoded = record.get(key + "_b64")
    if encoded is None:
        raise FerryError("report record has no %s: %s" % (key, _ENCODE(record)[:200]))
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise FerryError("report record has a bad %s_b64: %r" % (key, encoded))


class ReportWriter:
    """A report written under a temporary name beside ``path`` and renamed into place by :meth:`close`.

    ``path`` None: nothing is written (check mode); the content digest is still computed. ``unless_content``: a
    content digest (the report at ``path`` now): a report of that same content is not published, the file there
    stays (``kept``); its first :data:`SPOOL_MOST` bytes are held back undeflated until that is known. Use as a
    context manager, or call :meth:`abort` on failure: nothing half-written stays.
    """

    def __init__(self, path, unless_content=None):
        self.path = path
        self.unless_content = unless_content
        self.kept = False
        self.records = 0
        self.sha256 = None
        self.content_sha256 = None
        self._content = hashlib.sha256()
        self._file_digest = hashlib.sha256()
        self._staged = StagedFile.create(path) if path is not None else None
        self._deflate = zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, 31)
        self._deflater = None  # a BackgroundWriter: the report is deflated beside the walk
        self._pending = []
        self._pending_bytes = 0
        self._spool = None
        self._spooling = path is not None and unless_content is not None
        self._state = "new"

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, _tb):
        if exc_type is not None or self._state != "closed":
            self.abort()

    def header(self, fields):
        if self._state != "new":
            raise ValueError("the header is the first line of a report")
        header = dict({"kind": "header", "format": FORMAT, "version": VERSION}, **fields)
        self._content.update(_ENCODE(dict((k, v) for k, v in header.items() if k != "created")).encode("ascii"))
        self._line(header, digest=False)
        self._state = "open"

    def package(self, record):
        self._record("package", record)

    def file(self, record):
        self._record("file", record)

    def file_lines(self, lines, count):
        """File records the walk made as JSON text (``scan/walk.py``): ``count`` lines in ``lines`` (bytes, ASCII;
        an item may hold several lines, each ending in a newline; empty ones are skipped)."""
        self._check_open()
        self.records += count
        data = b"".join(lines)
        self._content.update(data)
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= FLUSH_BYTES:
            self._flush()

    def _record(self, kind, record):
        self._check_open()
        self.records += 1
        self._line(dict({"kind": kind}, **record))

    def _check_open(self):
        if self._state != "open":
            raise ValueError("records go after the header and before the summary")

    def _line(self, value, digest=True):
        data = (_ENCODE(value) + "\n").encode("ascii")
        if digest:
            self._content.update(data)
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= FLUSH_BYTES:
            self._flush()

    def _flush(self, final=False):
        """Hand the gathered lines to the deflate thread (zlib and hashlib let go of the GIL: the walk goes on
        meanwhile); at most one batch waits, so memory stays a few batches. While spooling, into the spool."""
        data, self._pending, self._pending_bytes = b"".join(self._pending), [], 0
        if self._spooling:
            if self._spool is None:
                self._spool = tempfile.TemporaryFile(dir=os.path.dirname(self.path) or ".")
            self._spool.write(data)
            if self._spool.tell() < SPOOL_MOST:
                return
            self._unspool()
            data = b""
        self._hand_over(data, final)

    def _unspool(self):
        """What was held back, to the deflate thread; no spooling from now on."""
        self._spooling = False
        spool, self._spool = self._spool, None
        if spool is None:
            return
        with spool:
            spool.seek(0)
            for data in iter(lambda: spool.read(READ_CHUNK), b""):
                self._hand_over(data, False)

    def _drop_spool(self):
        self._spooling = False
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def _hand_over(self, data, final):
        if self._staged is None:
            return  # check mode: only the content digest is wanted
        if self._deflater is None:
            self._deflater = BackgroundWriter(self._deflate_and_write, name="ferry-report")
        self._deflater.put((data, final))
        if final:
            deflater, self._deflater = self._deflater, None
            deflater.close()  # a full disk, say: the writer stops here

    def _deflate_and_write(self, item):
        data, final = item
        data = self._deflate.compress(data)
        if final:
            data += self._deflate.flush()
        if data:
            self._file_digest.update(data)
            if self._staged is not None:
                self._staged.write(data)

    def close(self, counts):
        """Write the summary, publish the file (fsync, rename) and return its SHA-256; None when ``kept`` (the file
        there is the report) or nothing is written."""
        self._check_open()
        self.content_sha256 = self._content.hexdigest()
        self._line({"kind": "summary", "counts": counts, "records": self.records,
                    "content_sha256": self.content_sha256}, digest=False)
        if self.content_sha256 == self.unless_content and self._staged is not None:
            self._pending = []  # the report there stays: what was held back is never deflated
            self.abort()
            self.kept = True
            return None
        self._unspool()
        self._flush(final=True)
        if self._staged is not None:
            self.sha256 = self._file_digest.hexdigest()
            self._staged.set_mode(0o600)
            self._staged.commit()
        self._state = "closed"
        return self.sha256

    def abort(self):
        self._drop_spool()
        if self._deflater is not None:  # the batches handed over are written first: the file is then removed
            deflater, self._deflater = self._deflater, None
            deflater.abort()
        if self._staged is not None:
            self._staged.abort()
        self._state = "closed"


class LongLine(FerryError):
    """A line longer than :data:`MAX_LINE`."""


def read_report(source, name=None):
    """A :class:`Report` over a path or a readable binary file object (an HTTP body: read once, in order)."""
    return Report(source, name)


class Report:
    """A report read forward. ``header`` at once; :meth:`packages`, :meth:`files` and :meth:`records` iterate
    (from a path each is a fresh pass; from a file object the one pass goes on: packages before files);
    ``summary`` once a pass reached the end (from a path, reading it makes that pass when needed).

    Every pass that reaches the end refuses a report without its summary line, one whose ``records`` count
    differs from the lines read, and anything after the summary.
    """

    def __init__(self, source, name=None):
        self.path = source if isinstance(source, (str, bytes)) else None
        self.name = name or (source if self.path else getattr(source, "name", None) or "the scan report")
        if isinstance(self.name, bytes):
            self.name = self.name.decode("utf-8", "backslashreplace")
        self._stream = None if self.path else self._lines(source)
        self._held = None
        self._count = 0
        self._summary = None
        self.header = self._read_header(self._stream or self._open())

    # -- passes ---------------------------------------------------------------------------------------------
    def _open(self):
        handle = open(self.path, "rb")
        return self._lines(handle, handle)

    def _pass(self):
        if self.path is None:
            if self._summary is not None:
                raise FerryError("%s is read from a stream, once: its packages, then its files" % self.name)
            return self._stream
        lines = self._open()
        self._read_header(lines)
        self._count = 0
        return lines

    def records(self, kinds=("package", "file")):
        """Every package and file record (or those of ``kinds``), in order; ends with the summary checked."""
        lines = self._pass()
        if self._held is not None:
            held, self._held = self._held, None
            if held["kind"] in kinds:
                yield held
        if not kinds:  # the summary only: record lines are counted, not parsed
            self._skip_to_summary(lines)
            return
        for record in self._records(lines):
            if record["kind"] in kinds:
                yield record

    def packages(self):
        """The package records. From a file object, stops at the first file record (kept for :meth:`files`)."""
        if self.path is not None:
            yield from self.records(("package",))
            return
        for record in self.records():
            if record["kind"] != "package":
                self._held = record
                return
            yield record

    def files(self):
        yield from self.records(("file",))

    @property
    def summary(self):
        if self._summary is None and self.path is not None:
            for _record in self.records(()):
                pass
        return self._summary

    # -- lines ----------------------------------------------------------------------------------------------
    def _lines(self, handle, owned=None):
        """(number, bytes) of each line of the inflated stream; a truncated gzip stream is a truncated report."""
        gunzip = Gunzip(self.name)
        rest = b""
        number = 0
        try:
            while True:
                try:
                    chunk = handle.read(READ_CHUNK)
                except OSError as exc:
                    raise FerryError("cannot read %s: %s" % (self.name, exc))
                if not chunk:
                    try:
                        gunzip.close()
                    except FerryError:
                        raise self._truncated()
                    break
                try:
                    for piece in gunzip.pieces(chunk):
                        lines = (rest + piece).split(b"\n")
                        rest = lines.pop()
                        for line in lines:
                            number += 1
                            yield number, line
                        if len(rest) > MAX_LINE:
                            raise LongLine("%s line %d is longer than %d MiB: not a scan report"
                                           % (self.name, number + 1, MAX_LINE >> 20))
                except LongLine:
                    raise
                except FerryError as exc:
                    raise FerryError("%s is not a gzip scan report or is damaged: %s" % (self.name, exc))
            if rest:
                yield number + 1, rest
        finally:
            if owned is not None:
                owned.close()

    def _truncated(self):
        return FerryError("%s is truncated (no summary line): the scan that wrote it did not finish" % self.name)

    def _parse(self, number, line):
        try:
            value = json.loads(line)
        except ValueError:
            raise FerryError("%s line %d: not JSON" % (self.name, number))
        if not isinstance(value, dict) or not isinstance(value.get("kind"), str):
            raise FerryError("%s line %d: not a report record (no kind)" % (self.name, number))
        return value

    def _read_header(self, lines):
        number, line = next(lines, (1, None))
        if line is None:
            raise self._truncated()
        header = self._parse(number, line)
        if header["kind"] != "header" or header.get("format") != FORMAT:
            raise FerryError("%s is not a ferry scan report (its first line is not a %s header)" % (self.name, FORMAT))
        if header.get("version") != VERSION:
            raise FerryError("%s is a scan report of version %r: this collection reads version %d"
                             % (self.name, header.get("version"), VERSION))
        return header

    def _records(self, lines):
        for number, line in lines:
            record = self._parse(number, line)
            if record["kind"] == "summary":
                self._end(lines, record, self._count)
                return
            if record["kind"] not in ("package", "file"):
                raise FerryError("%s line %d: unknown kind %r" % (self.name, number, record["kind"]))
            self._count += 1
            yield record
        raise self._truncated()

    def _skip_to_summary(self, lines):
        for number, line in lines:
            if b'"summary"' in line:
                record = self._parse(number, line)
                if record["kind"] == "summary":
                    self._end(lines, record, self._count)
                    return
            self._count += 1
        raise self._truncated()

    def _end(self, lines, summary, count):
        if summary.get("records") != count:
            raise FerryError("%s is damaged: its summary counts %r records, %d were read"
                             % (self.name, summary.get("records"), count))
        for extra, _line in lines:
            raise FerryError("%s line %d: a line after the summary" % (self.name, extra))
        self._summary = summary
