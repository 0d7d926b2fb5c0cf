"""scan_upload against the real nginx WebDAV (http and https): credentials and certificates refused clearly, a
store that dies mid-upload and the rerun that completes it (the store then as a clean upload makes it), a second
run that sends nothing, a rescan that sends exactly the changed contents, and nothing in the store but its
layout."""
import gzip
import json
import os
import re
import secrets
import socket
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.httpclient import ConnectionFailed, HttpError
from ansible_collections.ferry.migrate.plugins.modules import host_scan, scan_upload
from tests.support.module_docs import with_defaults
from tests.support.scan_objects import sha
from tests.support.scan_tree import make_prepared_root

MiB = 1 << 20
LAYOUT = re.compile(r"\A(content\.jsonl\.gz|latest\.json|scans/[0-9a-f]{16}/"
                    r"(report\.jsonl\.gz|part-[0-9]{5}\.tar|overlay\.jsonl\.gz|complete\.json))\Z")


@pytest.fixture
def store(servers):
    return {"url": servers["FERRY_WEBDAV_URL"], "tls_url": servers["FERRY_WEBDAV_TLS_URL"],
            "ca": servers["FERRY_WEBDAV_CA"], "user": servers["FERRY_WEBDAV_USER"],
            "password": servers["FERRY_WEBDAV_PASSWORD"], "root": Path(servers["FERRY_WEBDAV_ROOT"])}


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    """A prepared root with a few MiB of unpackaged files (several parts of 1 MiB) and its host_scan report."""
    base = tmp_path_factory.mktemp("upload-live")
    root = base / "root"
    root.mkdir()
    make_prepared_root(str(root))
    data = root / "srv" / "data"
    data.mkdir(parents=True)
    for number in range(12):
        (data / ("blob%02d" % number)).write_bytes(os.urandom(300000 + number * 97000))
    (data / "big").write_bytes(os.urandom(3 * MiB + 12345))  # pieces
    report = base / "report.jsonl.gz"
    result = scan(root, report, base / "scan-state")
    return {"base": base, "root": root, "report": report, "sha256": result["sha256"]}


def scan(root, report, state):
    params = with_defaults(host_scan, root=str(root), dest=str(report), state_dir=str(state), hash_workers=2)
    return host_scan.run(params, False)


def upload(scanned, store, instance, state, check_mode=False, **values):
    params = with_defaults(scan_upload, report=str(scanned["report"]), url=store["url"], instance=instance,
                           url_username=store["user"], url_password=store["password"], part_size=MiB, retries=1,
                           timeout=20, state_dir=str(state))
    params.update(values)
    return scan_upload.run(params, check_mode)


def instance_files(store, instance):
    top = store["root"] / instance
    return {str(path.relative_to(top)): path.read_bytes() for path in top.rglob("*") if path.is_file()}


def unique():
    return "live-upload-" + secrets.token_hex(5)


def test_wrong_credentials_fail_clearly(scanned, store, tmp_path):
    with pytest.raises(HttpError) as info:
        upload(scanned, store, unique(), tmp_path, url_password="not-the-password")
    message = str(info.value)
    assert info.value.status == 401 and "wrong url_username/url_password or bearer_token" in message
    assert "not-the-password" not in message and store["password"] not in message
    with pytest.raises(HttpError, match="401 Authorization Required: wrong url_username/url_password or bearer_token"):
        upload(scanned, store, unique(), tmp_path / "b", url_username=None, url_password=None, bearer_token="t0k3n")


def test_tls_needs_the_ca_and_works_with_it(scanned, store, tmp_path):
    instance = unique()
    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as info:
        upload(scanned, store, instance, tmp_path, url=store["tls_url"], retries=3)
    message = str(info.value)
    assert time.monotonic() - started < 5 and not info.value.retryable  # no backoff on an untrusted certificate
    assert store["tls_url"].rstrip("/") in message and "certificate verify failed" in message
    assert "ca_path" in message and "validate_certs" in message
    done = upload(scanned, store, instance, tmp_path / "b", url=store["tls_url"], ca_path=store["ca"])
    assert done["changed"] and done["objects"] > 0
    assert instance_files(store, instance)["latest.json"]


class CuttingProxy:
    """A TCP proxy to the store that, after ``limit`` bytes from the client, cuts every connection and stops
    listening (the store is gone); ``limit`` None forwards everything."""

    def __init__(self, target_port, port=0, limit=None):
        self.target = ("127.0.0.1", target_port)
        self.limit = limit
        self.forwarded = 0
        self.lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.sockets = []
        self.cut = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.cut.is_set():
            try:
                client, _address = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source, sink, counted):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if counted and self.limit is not None:
                    with self.lock:
                        room = self.limit - self.forwarded
                        self.forwarded += len(data)
                    if room <= len(data):
                        sink.sendall(data[:max(room, 0)])
                        self.close()
                        return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.cut.set()
        self.listener.close()
        for sock in list(self.sockets):
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")  # RST, as a crash
                sock.close()
            except OSError:
                pass


def test_a_store_that_dies_mid_upload_then_a_rerun_completes_it(scanned, store, tmp_path):
    clean = unique()
    first = upload(scanned, store, clean, tmp_path / "clean")
    assert first["parts"] >= 5 and first["parts_skipped"] == 0
    stored = instance_files(store, clean)
    report_in_store = stored["scans/%s/report.jsonl.gz" % first["scan_id"]]
    assert sha(report_in_store) == scanned["sha256"] == json.loads(stored["latest.json"])["report_sha256"]
    assert report_in_store == scanned["report"].read_bytes()
    assert all(LAYOUT.match(name) for name in stored), sorted(stored)

    cut = unique()
    port = int(store["url"].rsplit(":", 1)[1].strip("/"))
    proxy = CuttingProxy(port, limit=len(report_in_store) + int(2.5 * MiB))
    proxied = "http://127.0.0.1:%d/" % proxy.port
    with pytest.raises(ConnectionFailed, match="127.0.0.1:%d/%s/scans/" % (proxy.port, cut)):
        upload(scanned, store, cut, tmp_path / "cut", url=proxied)
    proxy.close()
    time.sleep(0.5)  # nginx drops the cut body
    partial = instance_files(store, cut)
    assert "latest.json" not in partial and "content.jsonl.gz" not in partial
    parts = [name for name in partial if "part-" in name]
    assert parts and all(partial[name] == stored[name] for name in partial)  # whole parts only, never a piece of one
    record = json.loads((tmp_path / "cut" / "steps" / "scan_upload.json").read_text())
    assert record["status"] == "failed" and record["progress"]["unit"] == "bytes"

    again = CuttingProxy(port, port=proxy.port)  # the store is back, at the same address
    try:
        resumed = upload(scanned, store, cut, tmp_path / "cut", url=proxied)
    finally:
        again.close()
    assert resumed["decision"] == "resume" and resumed["parts_skipped"] == len(parts)
    assert resumed["parts"] + resumed["parts_skipped"] == first["parts"]
    assert instance_files(store, cut) == stored  # byte for byte what a clean upload made

    second = upload(scanned, store, clean, tmp_path / "clean")
    assert second["changed"] is False and second["objects"] == second["bytes"] == second["parts"] == 0
    assert instance_files(store, clean) == stored


def test_a_rescan_after_changing_two_files_uploads_exactly_those(scanned, store, tmp_path):
    instance = unique()
    first = upload(scanned, store, instance, tmp_path / "s")
    root = scanned["root"]
    base = tmp_path / "rescan"
    base.mkdir()
    originals = {}
    changed = {"srv/data/blob03": os.urandom(1000), "srv/data/blob07": os.urandom(2 * MiB)}
    try:
        for name, data in changed.items():
            originals[name] = (root / name).read_bytes()
            (root / name).write_bytes(data)
        report = base / "report.jsonl.gz"
        rescan = scan(root, report, base / "scan-state")
        predicted = upload(dict(scanned, report=report), store, instance, tmp_path / "s", check_mode=True)
        second = upload(dict(scanned, report=report), store, instance, tmp_path / "s")
    finally:
        for name, data in originals.items():
            (root / name).write_bytes(data)
    assert second["scan_id"] == rescan["sha256"][:16] != first["scan_id"]
    assert second["objects"] == predicted["objects"] == 2
    assert second["bytes"] == predicted["bytes"] == sum(map(len, changed.values()))
    assert second["known"] == first["objects"] - 2 + (first["known"])  # the rest was there
    files = instance_files(store, instance)
    overlay = [json.loads(line) for line in
               gzip.decompress(files["scans/%s/overlay.jsonl.gz" % second["scan_id"]]).splitlines()]
    assert sorted(line["sha256"] for line in overlay) == sorted(sha(data) for data in changed.values())
    content = [json.loads(line) for line in gzip.decompress(files["content.jsonl.gz"]).splitlines()]
    assert len(content) == first["objects"] + 2
    assert json.loads(files["latest.json"])["scan"] == second["scan_id"]
    assert all(LAYOUT.match(name) for name in files), sorted(files)
