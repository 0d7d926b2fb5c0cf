# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options of the modules refused before anything happens (numbers out of range, unusable URLs, empty paths),
a target that is down failing in seconds, and credentials in a URL: used, never shown (issue 10: 4, 8, 10, 11)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import os
import re
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.tsdb.points import BatchWriter, batch_name
from ansible_collections.ferry.migrate.plugins.modules import (
    bundle_check,
    migration_status,
    rrd_to_tsdb,
    rrd_to_whisper,
    tsdb_dump,
    tsdb_restore,
    whisper_install,
)

HOUR = 3600000
SECRET = "s3cr3t-pw"


class PutHandler(BaseHTTPRequestHandler):
    """Accepts every /api/put and remembers it (path, Authorization header)."""
    protocol_version = "HTTP/1.1"
    seen = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def target():
    """A put target that records what reaches it: ``(url, seen)``."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), PutHandler)
    PutHandler.seen = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % httpd.server_address[1], PutHandler.seen
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def batches(tmp_path):
    """One finished batch of 5000 points: more requests than the writer's queue holds."""
    directory = tmp_path / "batches"
    directory.mkdir()
    writer = BatchWriter(str(directory), batch_name(0, HOUR))
    for index in range(5000):
        writer.add("m.x", (("h", "a"),), 1000 + index, index)
    writer.end_frame()
    writer.finish()
    return str(directory)


def params(module, **values):
    base = dict((name, option.get("default")) for name, option in module.argument_spec().items())
    base.update(values)
    return base


def restore_params(src, url, state, **values):
    base = dict(src=src, url=url, state_dir=str(state), verify=False, points_per_request=100)
    base.update(values)
    return params(tsdb_restore, **base)


def dump_params(url, tmp_path, **values):
    return params(tsdb_dump, url=url, start="0", stop=str(HOUR), dest=str(tmp_path / "d"),
                  state_dir=str(tmp_path / "s"), **values)


def within(seconds, call):
    """``call()``'s result, or its exception raised here; fails when it has not ended after ``seconds``
    (a hung write would otherwise hang the test run)."""
    outcome = {}

    def run():
        try:
            outcome["result"] = call()
        except BaseException as exc:  # noqa: B902 - handed to the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "still running after %s s" % seconds
    outcome["seconds"] = time.monotonic() - started
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def recorded_steps(state):
    steps = os.path.join(str(state), "steps")
    return sorted(os.listdir(steps)) if os.path.isdir(steps) else []


# -- 4. numeric options: ranges enforced before anything happens -------------------------------------

RESTORE_BAD = [
    ("batch_attempts", 0, "from 1 to 100"),
    ("batch_attempts", -2, "from 1 to 100"),
    ("connections", 0, "from 1 to 64"),
    ("points_per_request", 0, "from 1 to 1000000"),
    ("request_size_limit", 0, "from 1024 to 1073741824"),
    ("throttle", -1, "0 or more"),
    ("timeout", 0.0, "from 1 to 86400"),
    ("retries", -1, "from 0 to 20"),
    ("retries", 21, "from 0 to 20"),
    ("verify_timeout", -1.0, "from 0 to 86400"),
    ("poll_interval", 0.0, "from 0.1 to 3600"),
    ("wait_timeout", float("nan"), "from 0 to 604800"),
]


@pytest.mark.parametrize("name,value,allowed", RESTORE_BAD, ids=["%s=%s" % (n, v) for n, v, _a in RESTORE_BAD])
def test_restore_refuses_an_option_out_of_range_before_sending(target, batches, tmp_path, name, value, allowed):
    """Before: batch_attempts 0 recorded every batch as restored without sending one."""
    url, seen = target
    with pytest.raises(FerryError, match=r"^%s=%s is out of range: it must be %s" % (name, value, allowed)):
        within(30, lambda: tsdb_restore.run(restore_params(batches, url, tmp_path / "s", **{name: value}),
                                            False))
    assert seen == [] and recorded_steps(tmp_path / "s") == []


DUMP_BAD = [
    ("points_per_query", 0, "from 1 to 10000000"),
    ("min_free_mb", -1, "0 or more"),
    ("min_free_inodes", -5, "0 or more"),
    ("space_wait_timeout", -1.0, "from 0 to 604800"),
    ("timeout", 100000.0, "from 1 to 86400"),
    ("retries", -1, "from 0 to 20"),
]


@pytest.mark.parametrize("name,value,allowed", DUMP_BAD, ids=["%s=%s" % (n, v) for n, v, _a in DUMP_BAD])
def test_dump_refuses_an_option_out_of_range(closed_port, tmp_path, name, value, allowed):
    args = dump_params("http://127.0.0.1:%d" % closed_port, tmp_path, **{name: value})
    with pytest.raises(FerryError, match=r"^%s=%s is out of range: it must be %s" % (name, value, allowed)):
        within(30, lambda: tsdb_dump.run(args, False))
    assert recorded_steps(tmp_path / "s") == [] and not (tmp_path / "d").exists()


def test_rrd_to_tsdb_refuses_put_options_out_of_range(tmp_path, target):
    (tmp_path / "perf").mkdir()
    args = params(rrd_to_tsdb, src=str(tmp_path / "perf"), dest=str(tmp_path / "p"), state_dir=str(tmp_path / "s"),
                  tenant_id="t", url=target[0], batch_attempts=0)
    with pytest.raises(FerryError, match=r"^batch_attempts=0 is out of range: it must be from 1 to 100"):
        rrd_to_tsdb.run(args, False)
    assert recorded_steps(tmp_path / "s") == []


def test_bundle_check_refuses_a_negative_free_space_margin(tmp_path):
    (tmp_path / "b.tar").write_bytes(b"")
    args = params(bundle_check, path=str(tmp_path / "b.tar"), dest=str(tmp_path / "x"), state_dir=str(tmp_path / "s"),
                  min_free_mb=-1)
    with pytest.raises(FerryError, match=r"^min_free_mb=-1 is out of range: it must be 0 or more"):
        bundle_check.run(args, False)


# -- 8. URLs checked up front; a target that is down fails in seconds ----------------------------------

BAD_URLS = [
    ("", "it is empty"),
    ("ftp://127.0.0.1:4242", "the scheme must be http or https"),
    ("localhost:4242", "the scheme must be http or https"),
    ("127.0.0.1:4242", "it has no http:// or https:// scheme"),
    ("victoria", "it has no http:// or https:// scheme"),
    ("http://127.0.0.1:99999", "the port is not a number from 1 to 65535"),
    ("http://127.0.0.1:0", "the port is not a number from 1 to 65535"),
    ("http://", "it names no host"),
    ("http://victoria:4242/api put", "it holds a space or a control character"),
    ("http://victoria:4242/?db=x", "a base URL has no query or fragment"),
]


@pytest.mark.parametrize("url,reason", BAD_URLS, ids=[u or "empty" for u, _r in BAD_URLS])
def test_restore_refuses_an_unusable_url_before_recording_anything(batches, tmp_path, url, reason):
    """Before: ok, changed false, requests 0, points 0, with nothing sent (the worker died silently)."""
    with pytest.raises(FerryError, match="^" + re.escape("invalid url %r: %s" % (url, reason))):
        within(30, lambda: tsdb_restore.run(restore_params(batches, url, tmp_path / "s"), False))
    assert recorded_steps(tmp_path / "s") == []


def test_restore_refuses_an_unusable_verify_url_before_sending(target, batches, tmp_path):
    url, seen = target
    args = restore_params(batches, url, tmp_path / "s", verify=True, verify_url="ftp://victoria:8428")
    with pytest.raises(FerryError, match=r"^invalid verify_url 'ftp://victoria:8428': the scheme must be http"):
        within(30, lambda: tsdb_restore.run(args, False))
    assert seen == [] and recorded_steps(tmp_path / "s") == []


def test_dump_and_rrd_to_tsdb_refuse_an_unusable_url(tmp_path):
    with pytest.raises(FerryError, match=r"^invalid url 'http://127.0.0.1:99999': the port"):
        within(30, lambda: tsdb_dump.run(dump_params("http://127.0.0.1:99999", tmp_path), False))
    (tmp_path / "perf").mkdir()
    args = params(rrd_to_tsdb, src=str(tmp_path / "perf"), dest=str(tmp_path / "p"), state_dir=str(tmp_path / "s"),
                  tenant_id="t", url="ftp://opentsdb:4242")
    with pytest.raises(FerryError, match=r"^invalid url 'ftp://opentsdb:4242': the scheme must be http or https"):
        within(30, lambda: rrd_to_tsdb.run(args, False))
    assert recorded_steps(tmp_path / "s") == []


def test_a_target_down_at_the_start_fails_in_seconds_naming_it(batches, tmp_path, closed_port):
    """Before: about 200 s (8 tries with backoff, 3 batch attempts); defaults here."""
    url = "http://127.0.0.1:%d" % closed_port
    with pytest.raises(FerryError) as info:
        within(5, lambda: tsdb_restore.run(restore_params(batches, url, tmp_path / "s"), False))
    message = str(info.value)
    assert "127.0.0.1:%d/api/put failed: connection refused" % closed_port in message
    assert "not retried" in message and "failed after 1 attempt(s)" in message


def test_a_source_down_at_the_start_fails_in_seconds(tmp_path, closed_port):
    url = "http://127.0.0.1:%d" % closed_port
    with pytest.raises(FerryError, match=r"127.0.0.1:%d/api/suggest failed: connection refused" % closed_port):
        within(3, lambda: tsdb_dump.run(dump_params(url, tmp_path), False))


# -- 10. empty path options refused, never the working directory ----------------------------------------

def run_with_empty(module_name, option, tmp_path):
    """Run a module's entry with ``option`` set to "", the other paths good ones."""
    (tmp_path / "src").mkdir()
    (tmp_path / "b.tar").write_bytes(b"")
    state, src = str(tmp_path / "s"), str(tmp_path / "src")
    args = {
        "tsdb_dump": dump_params("http://127.0.0.1:9", tmp_path),
        "tsdb_restore": restore_params(src, "http://127.0.0.1:9", state),
        "bundle_check": params(bundle_check, path=str(tmp_path / "b.tar"), dest=str(tmp_path / "x"), state_dir=state),
        "whisper_install": params(whisper_install, src=src, dest=str(tmp_path / "w"), record_dir=state),
        "rrd_to_whisper": params(rrd_to_whisper, src=src, dest=str(tmp_path / "w"), state_dir=state, workers=1),
        "rrd_to_tsdb": params(rrd_to_tsdb, src=src, dest=str(tmp_path / "p"), state_dir=state, tenant_id="t",
                              workers=1),
    }.get(module_name, {})
    args[option] = ""
    calls = {
        "tsdb_dump": lambda: tsdb_dump.run(args, False),
        "tsdb_restore": lambda: tsdb_restore.run(args, False),
        "bundle_check": lambda: bundle_check.run(args, False),
        "migration_status": lambda: migration_status.run(params(migration_status, **args), False),
        "whisper_install": lambda: whisper_install.run(args, False),
        "rrd_to_whisper": lambda: rrd_to_whisper.run(args, False),
        "rrd_to_tsdb": lambda: rrd_to_tsdb.run(args, False),
    }
    return calls[module_name]()


EMPTY_PATHS = [
    ("tsdb_dump", "dest"), ("tsdb_dump", "state_dir"),
    ("tsdb_restore", "src"), ("tsdb_restore", "state_dir"),
    ("bundle_check", "path"), ("bundle_check", "dest"), ("bundle_check", "state_dir"),
    ("migration_status", "state_dir"),
    ("whisper_install", "src"), ("whisper_install", "dest"), ("whisper_install", "record_dir"),
    ("rrd_to_whisper", "src"), ("rrd_to_whisper", "dest"), ("rrd_to_whisper", "state_dir"),
    ("rrd_to_whisper", "mapping_file"),
    ("rrd_to_tsdb", "src"), ("rrd_to_tsdb", "dest"), ("rrd_to_tsdb", "state_dir"), ("rrd_to_tsdb", "rrdpath_map"),
]


@pytest.mark.parametrize("module_name,option", EMPTY_PATHS, ids=["%s-%s" % pair for pair in EMPTY_PATHS])
def test_an_empty_path_is_refused_naming_the_option(tmp_path, monkeypatch, module_name, option):
    """Before: "" became the module's working directory (the journal, batches or whisper files went there)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    with pytest.raises(FerryError, match=r"^%s is an empty string: give a path" % option):
        within(30, lambda: run_with_empty(module_name, option, tmp_path))
    assert os.listdir(str(cwd)) == []


def test_an_empty_element_of_files_is_refused(tmp_path):
    (tmp_path / "src").mkdir()
    args = params(rrd_to_whisper, src=str(tmp_path / "src"), dest=str(tmp_path / "w"), state_dir=str(tmp_path / "s"),
                  files=["a.rrd", ""])
    with pytest.raises(FerryError, match=r"^files\[1\] is an empty string"):
        rrd_to_whisper.run(args, False)


# -- 11. credentials in a URL: used for basic auth, shown nowhere; journal files 0600 --------------------

def journal_texts(state):
    steps = os.path.join(str(state), "steps")
    return dict((name, open(os.path.join(steps, name), "rb").read().decode("utf-8", "replace"))
                for name in os.listdir(steps))


def test_a_password_in_the_url_reaches_no_message_and_no_journal_file(batches, tmp_path, closed_port):
    old = os.umask(0o022)  # the usual umask: the journal's modes must not rely on a stricter one
    try:
        url = "http://ferry:%s@127.0.0.1:%d" % (SECRET, closed_port)
        with pytest.raises(FerryError) as info:
            within(10, lambda: tsdb_restore.run(restore_params(batches, url, tmp_path / "s"), False))
    finally:
        os.umask(old)
    assert SECRET not in str(info.value)
    assert "http://127.0.0.1:%d/api/put failed" % closed_port in str(info.value)
    files = journal_texts(tmp_path / "s")
    assert sorted(files) == ["tsdb_restore.json", "tsdb_restore.lock"]
    for name, text in files.items():
        assert SECRET not in text, name
        assert stat.S_IMODE(os.stat(str(tmp_path / "s" / "steps" / name)).st_mode) == 0o600, name


def test_credentials_in_the_url_serve_as_basic_auth_and_stay_out_of_the_result(target, batches, tmp_path):
    url, seen = target
    with_credentials = url.replace("http://", "http://ferry:%s@" % SECRET)
    result = tsdb_restore.run(restore_params(batches, with_credentials, tmp_path / "s"), False)
    assert result["counts"]["points"] == 5000
    token = "Basic " + base64.b64encode(("ferry:%s" % SECRET).encode()).decode()
    assert seen and all(auth == token for _path, auth in seen)
    assert SECRET not in repr(result)
    assert all(SECRET not in text for text in journal_texts(tmp_path / "s").values())


def test_url_passwords_are_found_for_ansible_to_mask():
    """Ansible echoes the options back (invocation); a password in a URL is masked like url_password."""
    from ansible_collections.ferry.migrate.plugins.module_utils.core.common import url_passwords
    found = url_passwords({"url": "https://ferry:p%40ss@victoria:4242", "verify_url": None, "user": "a@b"})
    assert found == {"p%40ss", "p@ss"}


# -- the step lifecycle: STOP, check mode, rerun ------------------------------------------------------

def test_restore_stops_on_request_then_resumes_and_then_skips(target, batches, tmp_path):
    url, seen = target
    state = tmp_path / "s"
    state.mkdir()
    (state / "STOP").write_text("")
    args = restore_params(batches, url, state)
    with pytest.raises(FerryError, match=r"^stopped on request \(%s\) after 0 restored batch\(es\); remove the file "
                                         r"and run again to go on$" % re.escape(str(state / "STOP"))):
        tsdb_restore.run(args, False)
    assert seen == []
    assert migration_status.run(params(migration_status, state_dir=str(state)), False)["steps"][0]["status"] == "failed"
    (state / "STOP").unlink()
    checked = tsdb_restore.run(args, True)
    assert checked["decision"] == "resume" and checked["changed"] and seen == []
    restored = tsdb_restore.run(args, False)
    assert restored["decision"] == "resume" and restored["counts"]["points"] == 5000
    again = tsdb_restore.run(args, False)
    assert again["decision"] == "skip" and not again["changed"]


def test_whisper_install_takes_its_former_option_names(tmp_path):
    """state_dir and force, aliases of record_dir and reread (what a module_defaults group gives), run as Ansible
    runs the module."""
    spec = whisper_install.argument_spec()
    assert spec["record_dir"]["aliases"] == ["state_dir"] and spec["reread"]["aliases"] == ["force"]
    (tmp_path / "src").mkdir()
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"src": str(tmp_path / "src"), "dest": str(tmp_path / "w"),
                                                        "state_dir": str(tmp_path / "s"), "force": True}}))
    path = whisper_install.__file__  # <path>/ansible_collections/ferry/migrate/plugins/modules/whisper_install.py
    for _level in range(6):
        path = os.path.dirname(path)
    env = dict(os.environ, PYTHONPATH=path)
    proc = subprocess.run([sys.executable, whisper_install.__file__, str(args)], capture_output=True, env=env,
                          check=False)
    result = json.loads(proc.stdout)
    assert not result.get("failed") and result["counts"]["files"] == 0, result
    assert not result.get("warnings")
    assert os.path.exists(str(tmp_path / "s" / "steps" / "whisper_install.json"))
