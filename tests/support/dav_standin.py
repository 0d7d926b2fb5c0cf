"""An in-process stand-in for the WebDAV store (nginx's PUT/GET/HEAD as scan_upload uses them), for unit tests.

Like nginx with ``create_full_put_path``: a PUT body (Content-Length or chunked) is kept only once it arrived
whole; a cut body leaves nothing. Basic auth with one user, or a bearer token; every request is recorded.
"""
import base64
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class DavStandin:
    """``with DavStandin(user="ferry", password="pw") as dav:`` -> ``dav.url``, ``dav.files`` (path -> bytes),
    ``dav.requests`` ((method, path, headers dict)), ``dav.connections`` (connections accepted), ``dav.cut``
    (PUTs whose body was cut)."""

    def __init__(self, user=None, password=None, token=None):
        self.files = {}
        self.requests = []
        self.cut = []
        self.connections = 0
        self.auth = set()
        if user is not None:
            self.auth.add("Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode())
        if token is not None:
            self.auth.add("Bearer " + token)
        self.lock = threading.Lock()
        standin = self

        class Handler(DavHandler):
            dav = standin

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.httpd.shutdown()
        self.httpd.server_close()

    def methods(self, method):
        return [path for seen, path, _headers in self.requests if seen == method]

    def wait_cut(self, timeout=10.0):
        """The PUTs whose body was cut, once there is one: the server's thread sees the end of a connection the
        client dropped a little after the client has gone on (on a loaded machine, well after)."""
        deadline = time.monotonic() + timeout
        while not self.cut and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.cut


class DavHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    dav = None

    def setup(self):
        super().setup()
        with self.dav.lock:
            self.dav.connections += 1

    def log_message(self, *args):
        pass

    def _allowed(self):
        self.dav.requests.append((self.command, self.path, dict(self.headers.items())))
        if self.dav.auth and self.headers.get("Authorization") not in self.dav.auth:
            self._answer(401, b"<html><head><title>401 Authorization Required</title></head></html>")
            return False
        return True

    def _answer(self, status, body=b"", length=None):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):  # noqa: N802 - http.server's naming
        if not self._allowed():
            return
        data = self.dav.files.get(self.path)
        if data is None:
            self._answer(404, b"<html><head><title>404 Not Found</title></head></html>")
        else:
            self._answer(200, data)

    def do_HEAD(self):  # noqa: N802
        if not self._allowed():
            return
        data = self.dav.files.get(self.path)
        if data is None:
            self._answer(404, length=0)
        else:
            self._answer(200, length=len(data))

    def do_PUT(self):  # noqa: N802
        if not self._allowed():
            self.close_connection = True
            return
        body = self._body()
        if body is None:
            self.dav.cut.append(self.path)
            self.close_connection = True
            return
        created = self.path not in self.dav.files
        self.dav.files[self.path] = body
        self._answer(201 if created else 204)

    def _body(self):
        """The whole body, or None when the connection ended first."""
        try:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                parts = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"x", 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(parts)
                    data = self.rfile.read(size)
                    if len(data) < size or self.rfile.readline() != b"\r\n":
                        return None
                    parts.append(data)
            length = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(length)
            return data if len(data) == length else None
        except (OSError, ValueError):
            return None
