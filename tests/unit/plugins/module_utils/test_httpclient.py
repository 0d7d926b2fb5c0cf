# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core import httpclient
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb import remote as tsdb_remote
from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.httpclient import (
    ConnectionFailed,
    HttpClient,
    HttpError,
    check_url,
    redact_url,
    with_retries,
)
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.remote import PutWriter, Rejected


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    answers = []
    seen = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        self.seen.append((self.path, self.headers.get("Authorization"), self.rfile.read(length)))
        status, body = self.answers.pop(0) if self.answers else (200, b'{"ok": true}')
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST

    def log_message(self, *args):
        pass


def start_server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Handler.answers, Handler.seen = [], []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return httpd, "http://127.0.0.1:%d" % httpd.server_address[1]


def stop_server(httpd):
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def server():
    httpd, url = start_server()
    yield url
    stop_server(httpd)


def outcome_within(seconds, call):
    """The exception ``call()`` raised (None if none); fails when it has not ended after ``seconds``."""
    box = {}

    def run():
        try:
            call()
        except BaseException as exc:  # noqa: B902 - handed to the test's thread
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "still running after %s s" % seconds
    return box.get("error")


def test_json_request_with_basic_auth_and_query(server):
    client = HttpClient(server + "/base", "ferry", "s3cret")
    assert client.json("POST", "/api/x", {"a": 1}, query={"details": ""}) == {"ok": True}
    path, auth, body = Handler.seen[0]
    assert path == "/base/api/x?details="
    assert auth == "Basic ZmVycnk6czNjcmV0"
    assert json.loads(body) == {"a": 1}


def test_error_carries_the_servers_message_and_no_secret(server):
    Handler.answers = [(400, b'{"error": {"code": 400, "message": "No such name for \'metrics\': \'x\'"}}')]
    client = HttpClient(server, "ferry", "s3cret")
    with pytest.raises(HttpError) as info:
        client.json("GET", "/api/query")
    assert info.value.status == 400
    assert "No such name for 'metrics'" in str(info.value)
    assert "s3cret" not in str(info.value)


def test_retries_on_5xx_and_429_but_not_on_4xx(server):
    Handler.answers = [(503, b"busy"), (429, b"slow down"), (200, b"{}")]
    client = HttpClient(server)
    retries = []
    assert with_retries(lambda: client.json("GET", "/x"), sleep=lambda s: None,
                        on_retry=lambda n, e: retries.append(e.status)) == {}
    assert retries == [503, 429]
    Handler.answers = [(401, b"Unauthorized")]
    with pytest.raises(HttpError, match="401: Unauthorized"):
        with_retries(lambda: client.json("GET", "/x"), sleep=lambda s: None)
    assert len(Handler.seen) == 4


def test_server_down_names_the_url(closed_port):
    port = closed_port
    client = HttpClient("http://127.0.0.1:%d" % port, timeout=2)
    with pytest.raises(ConnectionFailed, match="127.0.0.1:%d/api/put failed: connection refused" % port):
        with_retries(lambda: client.request("POST", "/api/put", b"[]"), attempts=2, sleep=lambda s: None)


def test_invalid_url_is_refused():
    with pytest.raises(Exception, match="invalid URL"):
        HttpClient("opentsdb:4242")


# -- URLs: checked up front, credentials used and never shown (issue 10: 8, 11) ---------------------------

@pytest.mark.parametrize("url,reason", [
    ("", "it is empty"),
    ("ftp://opentsdb:4242", "the scheme must be http or https"),
    ("opentsdb.example.net", "it has no http:// or https:// scheme"),
    ("http://opentsdb:99999", "the port is not a number from 1 to 65535"),
    ("http://opentsdb:http", "the port is not a number from 1 to 65535"),
    ("https://:4242", "it names no host"),
    ("http://opentsdb:4242/a b", "it holds a space or a control character"),
    ("http://opentsdb:4242#top", "a base URL has no query or fragment"),
])
def test_unusable_urls_are_refused_naming_the_option(url, reason):
    with pytest.raises(FerryError) as info:
        check_url(url, "verify_url")
    assert str(info.value) == "invalid verify_url %r: %s; expected http(s)://host[:port][/path]" % (url, reason)


def test_a_refused_url_shows_no_password():
    for url in ("ftp://ferry:s3cret@host", "ferry:s3cret@host:4242", "http://ferry:s3cret@host:99999",
                "http://ferry:s3/cret@host:4242"):
        with pytest.raises(FerryError) as info:
            check_url(url)
        assert "s3cret" not in str(info.value) and "cret" not in str(info.value)


def test_redact_url_drops_user_and_password():
    assert redact_url("https://ferry:s3cret@victoria:8428/base") == "https://victoria:8428/base"
    assert redact_url("http://ferry:s3@cret@victoria") == "http://victoria"
    assert redact_url("http://victoria:4242") == "http://victoria:4242"


def test_credentials_in_the_url_are_basic_auth_and_stay_out_of_errors(server, closed_port):
    client = HttpClient(server.replace("http://", "http://ferry:s3%40cret@") + "/base")
    assert client.json("POST", "/api/x", {"a": 1}) == {"ok": True}
    assert Handler.seen[0][1] == "Basic " + base64.b64encode(b"ferry:s3@cret").decode()
    assert client.base == server + "/base"
    Handler.answers = [(400, b"bad")]
    with pytest.raises(HttpError) as info:
        client.json("GET", "/api/query")
    assert "s3" not in str(info.value) and server + "/base/api/query answered 400" in str(info.value)
    down = HttpClient("http://ferry:s3cret@127.0.0.1:%d" % closed_port)
    with pytest.raises(ConnectionFailed) as info:
        down.request("POST", "/api/put", b"[]")
    assert "s3cret" not in str(info.value) and "http://127.0.0.1:%d/api/put failed" % closed_port in str(info.value)
    HttpClient(server.replace("http://", "http://other:pw@"), "ferry", "s3cret").json("GET", "/x")
    assert Handler.seen[-1][1] == "Basic ZmVycnk6czNjcmV0"  # url_username wins


# -- retries: a server that never answered fails at once, one that did is retried ------------------------

def test_a_server_that_never_answered_is_not_retried_one_that_answered_is():
    """Before: a target down at the start was retried with backoff (minutes, with the batch attempts)."""
    httpd, url = start_server()
    port = httpd.server_address[1]
    stop_server(httpd)
    sleeps = []
    fresh = HttpClient(url)
    with pytest.raises(ConnectionFailed, match="127.0.0.1:%d/x failed: connection refused.*not retried" % port):
        with_retries(lambda: fresh.request("GET", "/x"), attempts=5, sleep=sleeps.append)
    assert sleeps == []
    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)  # the same port, up again
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    client = HttpClient(url)
    client.request("GET", "/x")
    stop_server(httpd)  # down mid-run: a passing failure, retried with backoff
    client.close()  # the kept-alive connection would still reach the handler thread
    with pytest.raises(ConnectionFailed, match="connection refused"):
        with_retries(lambda: client.request("GET", "/x"), attempts=3, sleep=sleeps.append)
    assert sleeps == [0.5, 1.0]


def test_a_tls_handshake_that_never_ends_fails_after_the_connect_timeout(monkeypatch):
    """Before: each attempt waited the whole answer timeout (60 s by default here)."""
    monkeypatch.setattr(httpclient, "CONNECT_TIMEOUT", 0.3)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)  # the kernel completes TCP connections; nobody ever answers the TLS hello
    try:
        client = HttpClient("https://127.0.0.1:%d" % listener.getsockname()[1], timeout=60)
        started = time.monotonic()
        error = outcome_within(10, lambda: with_retries(lambda: client.request("GET", "/x"), sleep=lambda s: None))
        assert time.monotonic() - started < 8  # 3 attempts of 0.3 s; the bug took 60 s per attempt
        assert isinstance(error, ConnectionFailed) and "timed out" in str(error)
    finally:
        listener.close()


# -- the put writer: any worker failure ends the write, never a hang ---------------------------------

def many_bodies():
    return ((b'[{"metric":"m","timestamp":1,"value":1,"tags":{"h":"a"}}]', 1, n) for n in range(10 ** 6))


def test_a_worker_whose_client_cannot_be_built_ends_the_write(server, monkeypatch):
    """Before: the worker died silently and the producer blocked for ever on the full queue."""
    def no_client(*args, **kwargs):
        raise RuntimeError("no client today")

    monkeypatch.setattr(tsdb_remote, "HttpClient", no_client)
    error = outcome_within(10, lambda: PutWriter(server, connections=2).write(many_bodies()))
    assert isinstance(error, FerryError) and "RuntimeError: no client today" in str(error)


def test_a_failing_acknowledgement_ends_the_write(server):
    """An on_done that raises (a full disk under the journal) is a failure of the write, not a dead thread."""
    def on_done(tag, count):
        raise OSError(28, "No space left on device")

    error = outcome_within(10, lambda: PutWriter(server, connections=2).write(many_bodies(), on_done))
    assert isinstance(error, FerryError) and "No space left on device" in str(error)


def test_the_writer_refuses_no_connection_or_no_attempt(server):
    for args in ({"connections": 0}, {"attempts": 0}, {"attempts": -1}):
        with pytest.raises(FerryError, match="at least 1 connection and 1 attempt"):
            PutWriter(server, **args)


def test_a_target_still_busy_after_every_retry_is_not_a_rejection(server):
    """A 503 that outlasts the retries may pass on the batch's next attempt; a 400 will not."""
    Handler.answers = [(503, b"busy")] * 3
    error = outcome_within(10, lambda: PutWriter(server, connections=1, attempts=2, backoff=0.01).write(
        iter([(b"[]", 1, 0)])))
    assert isinstance(error, HttpError) and not isinstance(error, Rejected) and error.status == 503
    Handler.answers = [(400, b"bad point")]
    error = outcome_within(10, lambda: PutWriter(server, connections=1).write(iter([(b"[]", 1, 0)])))
    assert isinstance(error, Rejected) and "bad point" in str(error)
