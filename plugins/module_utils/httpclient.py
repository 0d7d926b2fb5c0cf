# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one HTTP client of the engine: keep-alive connections, basic auth, retries with backoff.

Built on ``http.client`` so a managed host needs nothing beyond the standard library, and so a
worker thread can hold one persistent connection (a fresh TCP connection per request would cost
more than the request on loopback).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import http.client
import json
import socket
import ssl
import time
from urllib.parse import urlencode, urlsplit

from ansible_collections.ferry.migrate.plugins.module_utils.common import FerryError

RETRY_STATUSES = (429, 500, 502, 503, 504)
CONNECTION_ERRORS = (OSError, http.client.HTTPException)


class HttpError(FerryError):
    """An HTTP answer that is not a success; ``message`` is the server's own words when it gave any."""

    def __init__(self, method, url, status, body, message=None):
        self.status = status
        self.body = body
        self.server_message = message or _server_message(body)
        FerryError.__init__(self, "%s %s answered %s: %s" % (method, url, status, self.server_message))


class HttpClient:
    """A client for one base URL. Not thread-safe: give each worker thread its own."""

    def __init__(self, url, username=None, password=None, timeout=60.0, validate_certs=True):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FerryError("invalid URL %r: expected http(s)://host[:port][/path]" % url)
        self.base = url.rstrip("/")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.validate_certs = validate_certs
        self._auth = None
        if username is not None:
            token = base64.b64encode(("%s:%s" % (username, password or "")).encode("utf-8")).decode("ascii")
            self._auth = "Basic " + token
        self._conn = None

    def request(self, method, path, body=None, query=None, headers=None, ok=(200, 204)):
        """Send one request; returns (status, body bytes). A status outside ``ok`` raises HttpError."""
        target = self.prefix + path + ("?" + urlencode(query, doseq=True) if query else "")
        send_headers = {"Accept": "application/json"}
        if self._auth:
            send_headers["Authorization"] = self._auth
        send_headers.update(headers or {})
        try:
            status, data = self._send(method, target, body, send_headers)
        except CONNECTION_ERRORS as exc:
            self.close()
            raise ConnectionFailed("%s %s%s failed: %s" % (method, self.base, path, _describe(exc)))
        if status not in ok:
            raise HttpError(method, self.base + path, status, data)
        return status, data

    def json(self, method, path, payload=None, query=None, ok=(200,)):
        body = None
        headers = {}
        if payload is not None:
            body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
            headers["Content-Type"] = "application/json"
        data = self.request(method, path, body=body, query=query, headers=headers, ok=ok)[1]
        if not data:
            return None
        try:
            return json.loads(data.decode("utf-8"))
        except ValueError as exc:
            raise FerryError("%s %s%s returned invalid JSON (%s): %r" % (method, self.base, path, exc, data[:200]))

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _send(self, method, target, body, headers):
        try:
            return self._exchange(method, target, body, headers)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # A kept-alive connection the server closed meanwhile fails on first use: once more, on a new one.
            self.close()
            return self._exchange(method, target, body, headers)

    def _exchange(self, method, target, body, headers):
        conn = self._connection()
        conn.request(method, target, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        return response.status, data

    def _connection(self):
        if self._conn is None:
            if self.scheme == "https":
                context = ssl.create_default_context()
                if not self.validate_certs:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                self._conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=context)
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn


class ConnectionFailed(FerryError):
    """The server could not be reached or dropped the connection."""


def http_argument_spec():
    """The options of the ``ferry.migrate.endpoint`` doc fragment, for a module's argument spec."""
    return dict(
        url_username=dict(type="str"),
        url_password=dict(type="str", no_log=True),
        validate_certs=dict(type="bool", default=True),
        timeout=dict(type="float", default=120.0),
    )


def client_from_params(url, params):
    return HttpClient(url, params.get("url_username"), params.get("url_password"), params["timeout"],
                      params["validate_certs"])


def with_retries(call, attempts=5, backoff=0.5, max_backoff=30.0, sleep=time.sleep, on_retry=None):
    """Run ``call()``, retrying connection failures, 5xx and 429 with exponential backoff.

    Other HTTP errors (a 400 for bad data, a 401 for a wrong password) are not retried: trying again
    cannot fix them, and the server's message is what the operator needs.
    """
    delay = backoff
    attempt = 1
    while True:
        try:
            return call()
        except (HttpError, ConnectionFailed) as exc:
            retryable = not isinstance(exc, HttpError) or exc.status in RETRY_STATUSES
            if not retryable or attempt >= attempts:
                raise
            if on_retry is not None:
                on_retry(attempt, exc)
        sleep(min(delay, max_backoff))
        delay *= 2
        attempt += 1


def _server_message(body):
    """OpenTSDB and Prometheus-style error bodies carry the reason; fall back to the raw text."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    try:
        parsed = json.loads(text)
    except ValueError:
        return text.strip()[:500] or "(empty body)"
    if isinstance(parsed, dict) and isinstance(parsed.get("errors"), list) and parsed["errors"]:
        return _put_details(parsed)
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return text.strip()[:500]


def _put_details(answer):
    """OpenTSDB's ``/api/put?details`` answer, as the count and the first rejected points."""
    first = "; ".join("%s: %s" % (json.dumps(item.get("datapoint"), sort_keys=True), item.get("error"))
                      for item in answer["errors"][:3])
    failed = answer.get("failed", len(answer["errors"]))
    return "%s of %s points failed, first: %s" % (failed, failed + answer.get("success", 0), first)


def _describe(exc):
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running and the port right?)"
    return str(exc) or exc.__class__.__name__
