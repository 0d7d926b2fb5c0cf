# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The store over the HTTP client: streamed PUT (chunked or sized, cut when the body fails), streamed GET (its
connection not reused before the end), HEAD, JSON, the content index read as it arrives, instance names, and the
messages of a refused login."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import json

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.httpclient import (
    ConnectionFailed,
    HttpClient,
    HttpError,
)
from ansible_collections.ferry.migrate.plugins.module_utils.scan.store import (
    Missing,
    Store,
    check_instance,
    gz_lines,
    jsonl_gz,
)
from tests.support.dav_standin import DavStandin

PARAMS = dict(url_username="ferry", url_password="s3cret", bearer_token=None, ca_path=None, validate_certs=True,
              timeout=10, retries=0)


@pytest.fixture
def dav():
    with DavStandin(user="ferry", password="s3cret") as standin:
        yield standin


def store_at(dav, **params):
    return Store(dav.url + "/base", "web01", dict(PARAMS, **params))


# -- instance names ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["web01", "a", "A.b_c-9", "9" * 128])
def test_instance_names_accepted(name):
    assert check_instance(name) == name


@pytest.mark.parametrize("name", ["", ".hidden", "-x", "a/b", "..", "a\n", "a b", "é", "9" * 129, None, "a\0"])
def test_instance_names_refused(name):
    with pytest.raises(FerryError, match="invalid instance"):
        check_instance(name)


# -- PUT, GET, HEAD --------------------------------------------------------------------------------------------
def test_put_and_get_bytes_json_and_sizes(dav):
    store = store_at(dav)
    assert store.head(store.latest_path()) is None and store.latest() is None
    store.put_json(store.latest_path(), {"scan": "0123456789abcdef"})
    assert store.latest() == {"scan": "0123456789abcdef"}
    assert dav.files["/base/web01/latest.json"] == b'{"scan":"0123456789abcdef"}\n'
    store.put_bytes(store.part_path("0123456789abcdef", "part-00001.tar"), b"x" * 1000)
    assert store.head("/web01/scans/0123456789abcdef/part-00001.tar") == 1000
    assert store.exists(store.part_path("0123456789abcdef", "part-00001.tar"))


@pytest.mark.parametrize("length", [None, "exact"])
def test_a_streamed_put_sends_every_chunk(dav, length):
    chunks = [b"a" * (1 << 20), b"", b"b", b"c" * 70000]
    body = b"".join(chunks)
    store = store_at(dav)
    store.put_stream("/web01/x", lambda: iter(chunks), len(body) if length else None)
    assert dav.files["/base/web01/x"] == body
    headers = dav.requests[-1][2]
    if length:
        assert headers["Content-Length"] == str(len(body)) and "Transfer-Encoding" not in headers
    else:
        assert headers["Transfer-Encoding"] == "chunked"


@pytest.mark.parametrize("length", [None, 1 << 22])
def test_a_body_that_fails_half_way_is_cut_and_the_store_keeps_nothing(dav, length):
    def chunks():
        yield b"a" * (1 << 20)
        raise FerryError("etc/x changed since the scan")

    store = store_at(dav)
    with pytest.raises(FerryError, match="changed since the scan"):
        store.put_stream("/web01/part", chunks, length)
    store.put_json("/web01/after", {})  # the client goes on, on a new connection
    assert "/base/web01/part" not in dav.files and "/base/web01/after" in dav.files


def test_a_streamed_get_reads_in_chunks_and_reuses_the_connection_once_drained(dav):
    dav.files["/base/web01/big"] = bytes(range(256)) * 8192
    store = store_at(dav)
    with store.get_stream("/web01/big") as stream:
        assert stream.length == 256 * 8192
        got = b"".join(iter(lambda: stream.read(100000), b""))
    assert got == dav.files["/base/web01/big"]
    store.head("/web01/big")
    assert dav.connections == 1
    stream = store.get_stream("/web01/big")
    assert stream.read(10) == bytes(range(10))
    store.head("/web01/big")  # the unread rest cannot precede another answer: a new connection
    assert dav.connections == 2
    with pytest.raises(FerryError, match="big: the answer was abandoned after 10 bytes"):
        stream.read(10)  # never a short read that would pass for the end
    with pytest.raises(Missing, match=r"http://127.0.0.1:\d+/base/web01/none is not in the store \(404\)"):
        store.get_stream("/web01/none")
    store.head("/web01/big")
    assert dav.connections == 2  # a 404 page read whole: the connection stays


def test_a_get_cut_short_is_an_error_naming_the_request(dav):
    client = HttpClient(dav.url, "ferry", "s3cret")
    dav.files["/short"] = b"x" * 100
    stream = client.open("/short")
    stream.length = 200  # as if the server had promised more than it sent
    assert stream.read(100) == b"x" * 100
    with pytest.raises(ConnectionFailed, match="GET http://127.0.0.1:\\d+/short failed: the answer ended after 100 of"):
        stream.read(100)


def test_the_content_index_is_read_as_it_arrives_and_absent_means_empty(dav):
    store = store_at(dav)
    assert list(store.content_index()) == []
    lines = [{"sha256": "%064x" % n, "size": n, "scan": "0123456789abcdef", "part": "part-00001.tar"}
             for n in range(30000)]
    store.put_stream(store.content_path(), lambda: jsonl_gz(iter(lines)))
    assert list(store.content_index()) == lines
    assert len(dav.methods("PUT")) == 1
    dav.files["/base/web01/content.jsonl.gz"] = gzip.compress(b'{"sha256": 1}\nnot json\n')
    with pytest.raises(FerryError, match="content.jsonl.gz line 2: not JSON"):
        list(store.content_index())
    dav.files["/base/web01/content.jsonl.gz"] = gzip.compress(b'{"a": 1}\n' * 1000)[:-20]
    with pytest.raises(FerryError, match="truncated"):
        list(store.content_index())


def test_gz_lines_cut_lines_across_chunks():
    class Drip:
        def __init__(self, data):
            self.data = data

        def read(self, size):
            piece, self.data = self.data[:7], self.data[7:]
            return piece

    text = b"".join(json.dumps({"n": n, "s": "x" * n}).encode() + b"\n" for n in range(100)) + b"last"
    lines = [line for _n, line in gz_lines(Drip(gzip.compress(text)), "t")]
    assert lines == text.split(b"\n")


# -- credentials -----------------------------------------------------------------------------------------------
def test_a_refused_login_says_so_without_the_password(dav):
    store = store_at(dav, url_password="wrong-pw")
    with pytest.raises(HttpError) as info:
        store.latest()
    message = str(info.value)
    assert info.value.status == 401 and "wrong url_username/url_password or bearer_token" in message
    assert "401 Authorization Required" in message and "wrong-pw" not in message and "<html>" not in message
    assert len(dav.requests) == 1  # not retried
    with pytest.raises(HttpError, match="the server asks for credentials"):
        store_at(dav, url_username=None, url_password=None).latest()


def test_a_bearer_token_is_sent_as_such(dav):
    with DavStandin(token="t0ken") as bearer:
        store = Store(bearer.url, "web01", dict(PARAMS, url_username=None, url_password=None, bearer_token="t0ken"))
        assert store.latest() is None
        assert bearer.requests[0][2]["Authorization"] == "Bearer t0ken"
        wrong = Store(bearer.url, "web01", dict(PARAMS, url_username=None, bearer_token="nope"))
        with pytest.raises(HttpError, match="wrong url_username/url_password or bearer_token") as info:
            wrong.latest()
        assert "nope" not in str(info.value)
    with pytest.raises(FerryError, match="mutually exclusive"):
        HttpClient(dav.url, "ferry", "pw", bearer_token="t0ken")
    for bad in ("", "a b", "a\nb"):
        with pytest.raises(FerryError, match="bearer_token is empty or holds"):
            HttpClient(dav.url, bearer_token=bad)


def test_a_ca_path_that_cannot_be_loaded_is_named(tmp_path):
    (tmp_path / "ca.pem").write_text("not a certificate")
    for path in (str(tmp_path / "ca.pem"), str(tmp_path / "missing.pem")):
        with pytest.raises(FerryError, match="ca_path %s: cannot load CA certificates" % path):
            HttpClient("https://127.0.0.1:1", ca_path=path)
    HttpClient("http://127.0.0.1:1", ca_path=str(tmp_path / "missing.pem"))  # not used over http


def test_paths_are_checked():
    store = Store("http://127.0.0.1:1/base", "web01", PARAMS)
    assert store.report_path("0123456789abcdef") == "/web01/scans/0123456789abcdef/report.jsonl.gz"
    for scan in ("0123456789ABCDEF", "../x", "0123456789abcde", None):
        with pytest.raises(FerryError, match="invalid scan id"):
            store.report_path(scan)
    for part in ("../part-00001.tar", "part-1.tar", "part-00001.tar/x"):
        with pytest.raises(FerryError, match="invalid part name"):
            store.part_path("0123456789abcdef", part)
    assert Store("http://u:pw@127.0.0.1:1/base/", "web01", PARAMS).url == "http://127.0.0.1:1/base"
