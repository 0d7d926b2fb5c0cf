# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.httpclient import (
    ConnectionFailed,
    HttpClient,
    HttpError,
    with_retries,
)


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


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Handler.answers, Handler.seen = [], []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


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


def test_server_down_names_the_url():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    client = HttpClient("http://127.0.0.1:%d" % port, timeout=2)
    with pytest.raises(ConnectionFailed, match="127.0.0.1:%d/api/put failed: connection refused" % port):
        with_retries(lambda: client.request("POST", "/api/put", b"[]"), attempts=2, sleep=lambda s: None)


def test_invalid_url_is_refused():
    with pytest.raises(Exception, match="invalid URL"):
        HttpClient("opentsdb:4242")
