# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scan store: a WebDAV (or any PUT/GET/HEAD) server holding scan reports and overlay parts, per instance.

Layout under the base URL (docs/scan.md)::

    <instance>/content.jsonl.gz                     every object the store holds for the instance
    <instance>/latest.json                          the last complete scan, written last
    <instance>/scans/<scan_id>/report.jsonl.gz      the report as uploaded
    <instance>/scans/<scan_id>/part-00001.tar ...   overlay parts: objects/<sha256>[.<offset>] members
    <instance>/scans/<scan_id>/overlay.jsonl.gz     the objects this scan uploaded, by part
    <instance>/scans/<scan_id>/complete.json        the scan is whole (then latest.json names it)

nginx's WebDAV writes a PUT body to a temporary file and renames it into place when the body is complete, and
makes the parent directories (``create_full_put_path``): a name is either absent or whole, so a part HEAD finds
with its expected size is complete.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import zlib

from ansible_collections.ferry.migrate.plugins.module_utils.core.archive import CHUNK, Gunzip
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.httpclient import (
    HttpError,
    client_from_params,
    redact_url,
    request_attempts,
    with_retries,
)

INSTANCE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")  # \Z: "$" would let a final newline in
SCAN_ID = re.compile(r"\A[0-9a-f]{16}\Z")
PART_NAME = re.compile(r"\Apart-[0-9]{5,}\.tar\Z")
REPORT = "report.jsonl.gz"
OVERLAY_INDEX = "overlay.jsonl.gz"
CONTENT_INDEX = "content.jsonl.gz"
COMPLETE = "complete.json"
LATEST = "latest.json"
_ENCODE = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


class Missing(FerryError):
    """The store holds nothing at a path (404)."""


def check_instance(instance):
    if not isinstance(instance, str) or not INSTANCE.match(instance):
        raise FerryError("invalid instance %r: 1 to 128 letters, digits, '.', '_' or '-', starting with a letter "
                         "or a digit" % (instance,))
    return instance


def scan_id_of(report_sha256):
    """A scan's id: the first 16 hex digits of its report's SHA-256."""
    return report_sha256[:16]


def part_name(number):
    return "part-%05d.tar" % number


class Store:
    """The store of one ``instance`` under ``url``; ``params`` holds the endpoint options (url_username,
    url_password or bearer_token, validate_certs, ca_path, timeout, retries). Every request is retried as the
    options say (connection failures, 5xx); a 404 reads as absent. Not thread-safe (one connection), and one
    stream at a time: another request abandons a stream still being read (use a second Store to read two)."""

    def __init__(self, url, instance, params):
        self.instance = check_instance(instance)
        self.url = redact_url(url).rstrip("/")
        self.params = params
        self.client = client_from_params(url, params)
        self.attempts = request_attempts(params)

    def close(self):
        self.client.close()

    # -- paths (relative to the base URL) ------------------------------------------------------------------
    def path(self, *names):
        return "/" + "/".join((self.instance,) + names)

    def scan_path(self, scan, name):
        if not SCAN_ID.match(scan or ""):
            raise FerryError("invalid scan id %r: 16 lower-case hex digits" % (scan,))
        return self.path("scans", scan, name)

    def report_path(self, scan):
        return self.scan_path(scan, REPORT)

    def part_path(self, scan, part):
        if not PART_NAME.match(part or ""):
            raise FerryError("invalid part name %r (part-NNNNN.tar)" % (part,))
        return self.scan_path(scan, part)

    def overlay_index_path(self, scan):
        return self.scan_path(scan, OVERLAY_INDEX)

    def complete_path(self, scan):
        return self.scan_path(scan, COMPLETE)

    def content_path(self):
        return self.path(CONTENT_INDEX)

    def latest_path(self):
        return self.path(LATEST)

    def where(self, path):
        """The URL of ``path``, for messages (no credentials)."""
        return self.url + path

    # -- requests --------------------------------------------------------------------------------------
    def _retried(self, call):
        return with_retries(call, attempts=self.attempts)

    def head(self, path):
        """The size of what the store holds at ``path``, or None when it holds nothing there."""
        return self._retried(lambda: self.client.head(path))

    def exists(self, path):
        return self.head(path) is not None

    def put_bytes(self, path, data):
        self._retried(lambda: self.client.request("PUT", path, data, ok=(200, 201, 204)))

    def put_stream(self, path, chunks, length=None):
        """PUT the body ``chunks()`` yields (a callable: a retry starts it again); ``length`` the exact size when
        known (else chunked). An exception from the chunks aborts the PUT: the store keeps nothing of it."""
        self._retried(lambda: self.client.upload("PUT", path, chunks, length))

    def put_file(self, path, local, progress=None):
        def chunks():
            with open(local, "rb") as handle:
                for chunk in iter(lambda: handle.read(CHUNK), b""):
                    yield chunk
                    if progress is not None:
                        progress(len(chunk))
        self.put_stream(path, chunks, _file_size(local))

    def get_stream(self, path):
        """What the store holds at ``path`` as a readable stream (``read(size)``, ``close()``, ``length``; a
        context manager). Absent: a FerryError naming the URL."""
        try:
            return self._retried(lambda: self.client.open(path))
        except HttpError as exc:
            if exc.status == 404:
                raise Missing("%s is not in the store (404)" % self.where(path))
            raise

    def get_json(self, path):
        """The JSON value at ``path``, or None when absent."""
        status, data = self._retried(lambda: self.client.request("GET", path, ok=(200, 404)))
        if status == 404:
            return None
        try:
            return json.loads(data.decode("utf-8"))
        except ValueError as exc:
            raise FerryError("%s is not JSON (%s)" % (self.where(path), exc))

    def put_json(self, path, value):
        self.put_bytes(path, (_ENCODE(value) + "\n").encode("utf-8"))

    # -- the store's own files -----------------------------------------------------------------------------
    def latest(self):
        """``latest.json`` (``scan``, ``report_sha256``, ``created``, ``objects``, ``bytes``), None before the
        first complete upload."""
        return self.get_json(self.latest_path())

    def complete(self, scan):
        """The scan's ``complete.json`` (as latest.json), None while the scan is not whole in the store."""
        return self.get_json(self.complete_path(scan))

    def content_index(self):
        """The lines of ``content.jsonl.gz`` (dicts: sha256, size, scan, part, pieces), streamed; nothing before
        the first upload."""
        return self.jsonl(self.content_path(), missing_ok=True)

    def overlay_index(self, scan):
        return self.jsonl(self.overlay_index_path(scan))

    def open_report(self, scan):
        return self.get_stream(self.report_path(scan))

    def open_part(self, scan, part):
        """A part of a scan as a readable stream (a tar of ``objects/<sha256>[.<offset>]`` members)."""
        return self.get_stream(self.part_path(scan, part))

    def jsonl(self, path, missing_ok=False):
        """The JSON lines of the gzip file at ``path``, read as they arrive."""
        try:
            stream = self.get_stream(path)
        except Missing:
            if missing_ok:
                return
            raise
        with stream:
            for number, line in gz_lines(stream, self.where(path)):
                try:
                    value = json.loads(line)
                except ValueError:
                    raise FerryError("%s line %d: not JSON" % (self.where(path), number))
                if not isinstance(value, dict):
                    raise FerryError("%s line %d: not a JSON object" % (self.where(path), number))
                yield value


def gz_lines(handle, name):
    """(number, bytes) of each non-empty line of the gzip stream read from ``handle``; a truncated or corrupt
    stream is an error naming ``name``."""
    gunzip = Gunzip(name)
    rest = b""
    number = 0
    for chunk in iter(lambda: handle.read(CHUNK), b""):
        for piece in gunzip.pieces(chunk):
            lines = (rest + piece).split(b"\n")
            rest = lines.pop()
            for line in lines:
                number += 1
                if line:
                    yield number, line
    gunzip.close()
    if rest:
        yield number + 1, rest


def jsonl_gz(values):
    """Gzip-compressed JSON lines of ``values`` (dicts), yielded in pieces of about 1 MiB (a streamed body)."""
    deflate = zlib.compressobj(6, zlib.DEFLATED, 31)
    pending = []
    size = 0
    for value in values:
        line = (_ENCODE(value) + "\n").encode("utf-8")
        pending.append(line)
        size += len(line)
        if size >= CHUNK:
            data = deflate.compress(b"".join(pending))
            pending, size = [], 0
            if data:
                yield data
    yield deflate.compress(b"".join(pending)) + deflate.flush()


def _file_size(path):
    return os.stat(path).st_size
