# -*- coding: utf-8 -*-
# Copyright: ferry.migrate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one HTTP client of the engine: keep-alive connections, basic or bearer auth, retries with backoff.

URLs are checked before use (:func:`check_url`) and shown without their credentials
(:func:`redact_url`): a user and password in a URL serve as basic auth and never reach a message.

Built on ``http.client`` so a managed host needs nothing beyond the standard library, and so a
worker thread can hold one persistent connection (a fresh TCP connection per request would cost
more than the request on loopback).

Bodies and answers may be streams: :meth:`HttpClient.upload` sends an iterable of chunks (chunked, or with the
Content-Length given), :meth:`HttpClient.open` returns the answer as a file object to read in chunks.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import http.client
import json
import os
import re
import socket
import ssl
import time
from urllib.parse import unquote, urlencode, urlsplit

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError, check_ranges

RETRY_STATUSES = (429, 500, 502, 503, 504)
CONNECTION_ERRORS = (OSError, http.client.HTTPException)
# Connecting (TCP and the TLS handshake) waits at most this long: a server that does not accept a
# connection in 10 s is down or the URL is wrong, whatever the answer timeout.
CONNECT_TIMEOUT = 10.0
DEFAULT_RETRIES = 5
# What a 401 means to the operator; said in the message with the server's words.
WRONG_CREDENTIALS = "wrong url_username/url_password or bearer_token"
NO_CREDENTIALS = "the server asks for credentials: give url_username/url_password or bearer_token"


class HttpError(FerryError):
    """An HTTP answer that is not a success; ``message`` is the server's own words when it gave any."""

    def __init__(self, method, url, status, body, message=None):
        self.status = status
        self.body = body
        self.server_message = message or _server_message(body)
        FerryError.__init__(self, "%s %s answered %s: %s" % (method, url, status, self.server_message))


class Contact:
    """Whether a server has answered yet, shared by the clients that talk to it (one per worker thread).

    Before its first answer a connection error means the server is down or the URL is wrong: it is not
    retried, so such a run fails in seconds rather than after minutes of backoff.
    """

    def __init__(self):
        self.answered = False


class HttpClient:
    """A client for one base URL. Not thread-safe: give each worker thread its own.

    A user and password in the URL are the basic auth credentials when ``username`` is not given;
    ``base``, used in every message, is the URL without them. ``bearer_token`` is sent as
    ``Authorization: Bearer`` instead (not with a user). ``ca_path``: a PEM file (or an OpenSSL hashed
    directory) of the CAs to trust for an https URL, instead of the system's.
    """

    def __init__(self, url, username=None, password=None, timeout=60.0, validate_certs=True, contact=None,
                 ca_path=None, bearer_token=None):
        check_url(url, "URL")
        parts = urlsplit(url)
        if username is None and bearer_token is None and "@" in parts.netloc:
            username, password = unquote(parts.username or ""), unquote(parts.password or "")
        if username is not None and bearer_token is not None:
            raise FerryError("url_username and bearer_token are mutually exclusive: give one of them")
        self.base = redact_url(url).rstrip("/")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        self._context = self._tls_context() if parts.scheme == "https" else None
        self._auth = None
        if username is not None:
            token = base64.b64encode(("%s:%s" % (username, password or "")).encode("utf-8")).decode("ascii")
            self._auth = "Basic " + token
        elif bearer_token is not None:
            if not bearer_token or any(char.isspace() or ord(char) < 32 for char in bearer_token):
                raise FerryError("bearer_token is empty or holds a space or a control character")
            self._auth = "Bearer " + bearer_token
        self.contact = contact if contact is not None else Contact()
        self._conn = None
        self._streaming = None  # the answer open() returned, while it is being read

    def request(self, method, path, body=None, query=None, headers=None, ok=(200, 204)):
        """Send one request; returns (status, body bytes). A status outside ``ok`` raises HttpError."""
        return self._call(method, path, body, query, headers, ok)[:2]

    def head(self, path):
        """The size (Content-Length, an int) of what ``path`` holds, or None when the server has nothing there
        (404)."""
        status, _data, answer = self._call("HEAD", path, ok=(200, 404))
        if status == 404:
            return None
        length = answer.getheader("Content-Length")
        return int(length) if length and length.isdigit() else None

    def upload(self, method, path, chunks, length=None, headers=None, ok=(200, 201, 204)):
        """Send the body ``chunks()`` makes (a callable returning an iterable of bytes, called again when a
        kept-alive connection the server had closed must be replaced before anything was sent): with
        Content-Length ``length`` when given, else chunked. An exception from the iterable aborts the request
        (the connection is closed mid-body, so the server drops what it got). Returns (status, body)."""
        send_headers = dict(headers or {})
        if length is not None:
            send_headers["Content-Length"] = str(length)
        return self._call(method, path, _Body(chunks), headers=send_headers, ok=ok)[:2]

    def open(self, path, ok=(200,), headers=None):
        """GET ``path`` and return the answer as a :class:`Download` (``read(size)``, ``close()``, ``length``,
        ``status``), read by the caller. Until it is read to its end, the connection serves nothing else; closed
        before, the connection is dropped. A status outside ``ok`` raises HttpError."""
        return self._call("GET", path, headers=headers, ok=ok, stream=True)[2]

    def _call(self, method, path, body=None, query=None, headers=None, ok=(200, 204), stream=False):
        target = self.prefix + path + ("?" + urlencode(query, doseq=True) if query else "")
        send_headers = {"Accept": "application/json"}
        if self._auth:
            send_headers["Authorization"] = self._auth
        send_headers.update(headers or {})
        self._forget_stream()
        try:
            status, data, answer = self._send(method, target, body, send_headers, stream)
        except CONNECTION_ERRORS as exc:
            self.close()
            raise self._failure("%s %s%s failed: %s" % (method, self.base, path, _describe(exc)), exc)
        except BaseException:
            self.close()  # a body that failed half-way: the server must see the request cut, never complete
            raise
        if status not in ok:
            if stream:
                data = _drain_error(answer)
                if answer.isclosed():
                    self._finish(answer)
                else:
                    self.close()  # more than we read of an error page: the connection cannot be reused
            raise HttpError(method, self.base + path, status, data, self._auth_message(status, data))
        if stream:
            answer = Download(self, answer, "%s %s%s" % (method, self.base, path))
            self._streaming = answer
        return status, data, answer

    def _auth_message(self, status, data):
        if status != 401:
            return None
        return "%s: %s" % (_server_message(data), WRONG_CREDENTIALS if self._auth else NO_CREDENTIALS)

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

    def _failure(self, message, exc):
        """The ConnectionFailed for ``exc``; not retryable when trying again cannot help."""
        if isinstance(exc, ssl.SSLCertVerificationError):
            return ConnectionFailed(message + "; give the CA that signed the server's certificate with ca_path, "
                                    "or validate_certs: false to skip the check", retryable=False)
        if not self.contact.answered:
            return ConnectionFailed(message + "; not retried: this server has not answered yet", retryable=False)
        return ConnectionFailed(message)

    def close(self):
        self._streaming = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _forget_stream(self):
        """A streamed answer left unread: its connection cannot carry another request (reading it on is an
        error, never a short read)."""
        if self._streaming is not None:
            self._streaming.abandoned = True
            self._streaming.close()

    def _send(self, method, target, body, headers, stream=False):
        reused = self._conn is not None
        try:
            return self._exchange(method, target, body, headers, stream)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # A kept-alive connection the server closed meanwhile fails on first use: once more, on a new one.
            # Not a fresh connection cut (the server died), nor a stream that got under way.
            if not reused or (isinstance(body, _Body) and body.sent):
                raise
            self.close()
            return self._exchange(method, target, body, headers, stream)

    def _exchange(self, method, target, body, headers, stream=False):
        conn = self._connection()
        if isinstance(body, _Body):
            conn.request(method, target, body=body.fresh(), headers=headers,
                         encode_chunked="Content-Length" not in headers)
        else:
            conn.request(method, target, body=body, headers=headers)
        response = conn.getresponse()
        self.contact.answered = True
        if stream:
            return response.status, None, response
        data = response.read()
        self._finish(response)
        return response.status, data, response

    def _finish(self, response):
        """After an answer was read whole: drop a connection the server closes."""
        conn = self._conn
        if conn is None or conn.sock is None or response.getheader("Connection", "").lower() == "close":
            self.close()  # the next request connects again through _connection(), with its timeouts

    def _connection(self):
        if self._conn is None:
            conn = self._new_connection(min(self.timeout, CONNECT_TIMEOUT))
            try:
                conn.connect()
                conn.sock.settimeout(self.timeout)  # answers may take longer than connecting
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _new_connection(self, timeout):
        if self.scheme != "https":
            return http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self._context)

    def _tls_context(self):
        context = ssl.create_default_context()
        if self.ca_path is not None:
            try:
                if os.path.isdir(self.ca_path):
                    context.load_verify_locations(capath=self.ca_path)
                else:
                    context.load_verify_locations(cafile=self.ca_path)
            except (OSError, ssl.SSLError) as exc:
                raise FerryError("ca_path %s: cannot load CA certificates from it (%s)"
                                 % (self.ca_path, getattr(exc, "strerror", None) or exc))
        if not self.validate_certs:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


class _Body:
    """An upload's body: ``fresh()`` is the iterable of chunks to send; ``sent`` counts the bytes handed out."""

    def __init__(self, chunks):
        self.chunks = chunks
        self.sent = 0

    def fresh(self):
        for chunk in self.chunks():
            self.sent += len(chunk)
            yield chunk


class Download:
    """A streamed answer (:meth:`HttpClient.open`): ``read(size)`` until it gives b"", then ``close()`` (or use
    it as a context manager). ``length``: the Content-Length, None when the server sent none. A connection lost
    before the end, or a body shorter than its Content-Length, is a ConnectionFailed naming the request."""

    def __init__(self, client, response, what):
        self.client = client
        self.response = response
        self.what = what
        self.status = response.status
        length = response.getheader("Content-Length")
        self.length = int(length) if length and length.isdigit() else None
        self.bytes_read = 0
        self.closed = False
        self.abandoned = False

    def read(self, size=-1):
        if self.closed:
            if self.abandoned:
                raise FerryError("%s: the answer was abandoned after %d bytes (its client made another request "
                                 "before it was read)" % (self.what, self.bytes_read))
            return b""
        try:
            data = self.response.read(None if size is None or size < 0 else size)
        except CONNECTION_ERRORS as exc:
            self.close()
            raise ConnectionFailed("%s failed after %d bytes: %s" % (self.what, self.bytes_read, _describe(exc)))
        self.bytes_read += len(data)
        if not data and size != 0:
            if self.length is not None and self.bytes_read < self.length:
                self.close()
                raise ConnectionFailed("%s failed: the answer ended after %d of %d bytes"
                                       % (self.what, self.bytes_read, self.length))
            self._done()
        return data

    def _done(self):
        if not self.closed:
            self.closed = True
            if self.client._streaming is self:
                self.client._streaming = None
                self.client._finish(self.response)

    def close(self):
        """Stop reading: the connection is dropped unless the answer was read to its end."""
        if self.closed:
            return
        finished = self.response.isclosed() or self.length is not None and self.bytes_read >= self.length
        if finished:
            self._done()
            return
        self.closed = True
        if self.client._streaming is self:
            self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False


class ConnectionFailed(FerryError):
    """The server could not be reached or dropped the connection; ``retryable`` is False when trying
    again cannot help (the server never answered yet, or its certificate is not trusted)."""

    def __init__(self, message, retryable=True):
        FerryError.__init__(self, message)
        self.retryable = retryable


def redact_url(url):
    """``url`` without its user and password, for messages, logs, results and the journal.

    Everything between the scheme and the last ``@`` goes, so a password holding ``/`` or ``@`` does not
    survive either (a base URL has no ``@`` in its path).
    """
    text = "" if url is None else str(url)
    scheme, separator, rest = text.partition("://")
    if not separator:
        scheme, rest = "", text
    if "@" in rest:
        rest = rest.rsplit("@", 1)[1]
    return scheme + separator + rest


def check_url(url, option="url"):
    """Refuse a base URL the client cannot use, naming the option: the scheme http or https, a host, a
    port from 1 to 65535, no query or fragment, no space or control character."""
    problem = _url_problem(url)
    if problem:
        raise FerryError("invalid %s %r: %s; expected http(s)://host[:port][/path]"
                         % (option, redact_url(url), problem))


def _url_problem(url):
    if not isinstance(url, str) or not url.strip():
        return "it is empty"
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url):
        return "it holds a space or a control character"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # urlsplit's own message can quote a password: say it in our words
        return "the port is not a number from 1 to 65535"
    if parts.scheme not in ("http", "https"):
        return "the scheme must be http or https" if parts.scheme else "it has no http:// or https:// scheme"
    if not parts.hostname:
        return "it names no host"
    if port is not None and not 1 <= port <= 65535:
        return "the port is not a number from 1 to 65535"
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        return "a base URL has no query or fragment"
    return None


# Ranges of the endpoint fragment's numeric options (see doc_fragments/endpoint.py), both ends included.
HTTP_RANGES = {"timeout": (1, 86400), "retries": (0, 20)}


def http_argument_spec():
    """The options of the ``ferry.migrate.endpoint`` doc fragment, for a module's argument spec."""
    return dict(
        url_username=dict(type="str"),
        url_password=dict(type="str", no_log=True),
        validate_certs=dict(type="bool", default=True),
        timeout=dict(type="float", default=120.0),
        retries=dict(type="int", default=DEFAULT_RETRIES),
    )


def check_http_params(params, url_options=("url",)):
    """Validate the endpoint options and the URL options given, before anything happens."""
    check_ranges(params, HTTP_RANGES)
    for name in url_options:
        if params.get(name) is not None:
            check_url(params[name], name)


def request_attempts(params):
    """Tries of one request: the first and ``retries`` more."""
    retries = params.get("retries")
    return (DEFAULT_RETRIES if retries is None else retries) + 1


def client_from_params(url, params):
    return HttpClient(url, params.get("url_username"), params.get("url_password"), params["timeout"],
                      params["validate_certs"], ca_path=params.get("ca_path"),
                      bearer_token=params.get("bearer_token"))


def store_http_argument_spec():
    """The endpoint options and the ``ferry.migrate.endpoint.store`` fragment's (ca_path, bearer_token)."""
    spec = http_argument_spec()
    spec.update(ca_path=dict(type="path"), bearer_token=dict(type="str", no_log=True))
    return spec


def with_retries(call, attempts=5, backoff=0.5, max_backoff=30.0, sleep=time.sleep, on_retry=None):
    """Run ``call()``, retrying connection failures, 5xx and 429 with exponential backoff.

    ``attempts`` counts every try, the first included. Other HTTP errors (a 400 for bad data, a 401 for a
    wrong password) and connection failures marked not retryable (a server that never answered, an
    untrusted certificate) are not retried: trying again cannot fix them, and the message is what the
    operator needs.
    """
    delay = backoff
    attempt = 1
    while True:
        try:
            return call()
        except (HttpError, ConnectionFailed) as exc:
            retryable = exc.status in RETRY_STATUSES if isinstance(exc, HttpError) else exc.retryable
            if not retryable or attempt >= attempts:
                raise
            if on_retry is not None:
                on_retry(attempt, exc)
        sleep(min(delay, max_backoff))
        delay *= 2
        attempt += 1


def _server_message(body):
    """OpenTSDB and Prometheus-style error bodies carry the reason; an HTML page (nginx's) its title; fall back
    to the raw text."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    try:
        parsed = json.loads(text)
    except ValueError:
        title = _HTML_TITLE.search(text) if text.lstrip().startswith("<") else None
        return title.group(1).strip() if title else text.strip()[:500] or "(empty body)"
    if isinstance(parsed, dict) and isinstance(parsed.get("errors"), list) and parsed["errors"]:
        return _put_details(parsed)
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return text.strip()[:500]


_HTML_TITLE = re.compile(r"<title>([^<]{1,200})</title>", re.IGNORECASE)


def _drain_error(response):
    """The body of an error answer, at most 64 KiB of it (the rest left: the connection is then dropped)."""
    try:
        return response.read(65536)
    except CONNECTION_ERRORS:
        return b""


def _put_details(answer):
    """OpenTSDB's ``/api/put?details`` answer, as the count and the first rejected points."""
    first = "; ".join("%s: %s" % (json.dumps(item.get("datapoint"), sort_keys=True), item.get("error"))
                      for item in answer["errors"][:3])
    failed = answer.get("failed", len(answer["errors"]))
    return "%s of %s points failed, first: %s" % (failed, failed + answer.get("success", 0), first)


def _describe(exc):
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "certificate verify failed (%s)" % (exc.verify_message or exc.reason)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running and the port right?)"
    return str(exc) or exc.__class__.__name__
