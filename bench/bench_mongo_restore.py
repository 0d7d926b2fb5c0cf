"""mongo_restore on >= 100k MVI-like documents against the original tool's restore algorithm and against
insert_one per document, side by side in one run, each run into a SecantusDB of the bench's own started afresh
(class Target says why).

Baselines (bench/mvi_baselines.py, re-implemented from docs/design/mvi-issue14.md §1.4, each in its own process
as the original runs): the original algorithm on the original-format zip (whole member json.loads, slices of
1000, ordered insert_many while >= 50 consecutive single successes, the whole slice redone with insert_one on
BulkWriteError); and insert_one for every document of the same zip.
ferry: the mongo_restore module run as Ansible runs it (python mongo_restore.py ARGS.json), defaults
(on_duplicate skip, verify sample, indexes), on the ferry zip mongo_backup wrote (the original-format zip when
mongo_backup is missing; the result says which).

Scenarios: ``clean`` (an empty database) and ``present10`` (the same random 10 % of the documents loaded,
untimed, into both runs' databases first). Each run gets a fresh server; rounds alternate which goes first;
medians of 5 rounds (clean) and 3 (present10; FERRY_BENCH_MONGO_ROUNDS sets both), fewer when a baseline round
takes longer than FERRY_BENCH_SLOW_S (default 240 s; the result's ``<scenario>_rounds`` says how many ran).
insert_one (about 70 s on 100k documents at 1.5k docs/s, much more on a busy target) runs once, on a clean
server. Docs/s counts every document of the zip, duplicates included. Every run's database is compared with the
source (counts, and an order-free digest of the raw BSON of every collection): ``same_documents_as_source``.

FERRY_BENCH_MVI_DOCS sets the document count (default 100000); FERRY_BENCH_MONGO_PARTS a subset of
``clean,present10,insert_one`` for a quick rerun (``ok`` needs all three); FERRY_BENCH_PROFILE=1 adds one
cProfile'd ferry run per scenario (untimed; stats in .run/bench/mongo_restore-<scenario>.prof, the top lines on
stderr).

Wiring into bench/run.py: ``import bench_mongo_restore`` and ``"mongo_restore": bench_mongo_restore.main``.
"""

import json
import os
import pstats
import shutil
import socket
import subprocess
import sys
import time
import uuid

from common import BENCH_DIR, fresh_dir, median, save_result
import mvi_data

TARGETS = {"clean": 1.0, "present10": 5.0, "insert_one": 5.0}
# Rounds per scenario: more where the margin is thin (clean, ~1x) than where it is wide (present10, ~50x).
ROUNDS = {"clean": 5, "present10": 3}
if os.environ.get("FERRY_BENCH_MONGO_ROUNDS"):
    ROUNDS = dict.fromkeys(ROUNDS, int(os.environ["FERRY_BENCH_MONGO_ROUNDS"]))
# A round whose baseline took longer than this is the scenario's last (the original singly on a slow target).
SLOW_S = float(os.environ.get("FERRY_BENCH_SLOW_S", "240"))
# Which parts run (a quick rerun of one part); the result is ``ok`` only when all three ran and met their targets.
PARTS = os.environ.get("FERRY_BENCH_MONGO_PARTS", "clean,present10,insert_one").split(",")


class Target:
    """The restore target: a SecantusDB of the bench's own, started on a fresh copy of an empty data directory
    (which holds only the user) before every run, so that every run meets the same server state.

    The test suite's ``mongo-target`` keeps an oplog filled by earlier runs (capped at 100,000 entries), and a
    full oplog prunes as it inserts: 20-50 % slower inserts, and noise between runs as large as the 5-10 % this
    bench has to tell apart. One server runs at a time: each run's database is compared with the source before
    the next run's server starts, so no idle server shares the CPU with a timed run."""

    USER = "ferry"
    DATABASE = "bench_mvi"

    def __init__(self, ctx):
        self.ctx = ctx
        self.root = fresh_dir(os.path.join(BENCH_DIR, "mongo-target"))
        self.password = uuid.uuid4().hex
        self.server = None
        template = OwnServer(os.path.join(self.root, "template"), auth=False)
        try:
            template.client.admin.command("createUser", self.USER, pwd=self.password, roles=["root"],
                                          mechanisms=["SCRAM-SHA-256"])
        finally:
            template.stop()
        self.template = template.data

    def fresh(self, present):
        """A new server (the previous one stopped and removed) with the present share loaded; the database name."""
        self.stop()
        run_dir = os.path.join(self.root, "run")
        shutil.copytree(self.template, os.path.join(run_dir, "data"))
        self.server = OwnServer(run_dir, auth=True, user=self.USER, password=self.password)
        if present:
            mvi_data.load_present(self.ctx["source"], self.ctx["source_db"], self.server.client, self.DATABASE,
                                  present)
        return self.DATABASE

    @property
    def uri(self):
        return self.server.uri

    def env(self):
        """The FERRY_MONGO_TARGET_* variables of the server, as the test servers' environment names them."""
        return {"FERRY_MONGO_TARGET_HOST": "127.0.0.1", "FERRY_MONGO_TARGET_PORT": str(self.server.port),
                "FERRY_MONGO_TARGET_USER": self.USER, "FERRY_MONGO_TARGET_PASSWORD": self.password,
                "FERRY_MONGO_TARGET_AUTH_SOURCE": "admin", "FERRY_MONGO_TARGET_URI": self.server.uri}

    def check(self, what):
        """The run's database holds exactly the source's documents (counts, then a digest of the raw BSON)."""
        database = self.server.client[self.DATABASE]
        counts = {name: database[name].count_documents({}) for name in database.list_collection_names()}
        if counts != self.ctx["counts"]:
            raise RuntimeError("%s: target counts %s, source %s" % (what, counts, self.ctx["counts"]))
        return mvi_data.digest(self.server.client, self.DATABASE) == self.ctx["digest"]

    def stop(self):
        if self.server:
            self.server.stop()
            shutil.rmtree(self.server.dir, ignore_errors=True)
            self.server = None

    def close(self):
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class OwnServer:
    """secantusd-py on a free loopback port over ``<run_dir>/data``, as scripts/test-servers starts it."""

    def __init__(self, run_dir, auth, user=None, password=None):
        import pymongo  # pylint: disable=import-outside-toplevel
        self.dir = run_dir
        self.data = os.path.join(run_dir, "data")
        os.makedirs(self.data, exist_ok=True)
        config = os.path.join(run_dir, "secantusd.toml")
        with open(config, "w") as handle:  # our own (empty) file: no auto-discovered configuration
            handle.write("# all settings are given on the command line\n")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        credentials = "%s:%s@" % (user, password) if auth else ""
        self.uri = ("mongodb://%s127.0.0.1:%d/?directConnection=true" % (credentials, self.port)
                    + ("&authSource=admin&authMechanism=SCRAM-SHA-256" if auth else ""))
        binary = os.path.join(os.path.dirname(sys.executable), "secantusd-py")
        argv = [binary if os.path.exists(binary) else "secantusd-py", "--config", config, "--host", "127.0.0.1",
                "--port", str(self.port), "--storage-path", self.data, "--cache-size", "256M"]
        self.log = open(os.path.join(run_dir, "server.log"), "ab")
        self.proc = subprocess.Popen(argv + (["--auth"] if auth else []), stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.client = pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=500)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.client.admin.command("ping")
                return
            except pymongo.errors.PyMongoError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("secantusd-py on port %d did not start (see %s)" % (self.port, self.log.name))
                time.sleep(0.2)

    def stop(self):
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def run_original(ctx, target, database, mode="original"):
    seconds, rss, summary = mvi_data.run_baseline(mode, target.uri, database, ctx["original_zip"], "restore_" + mode)
    if summary["read"] != ctx["documents"]:
        raise RuntimeError("%s read %d documents, not %d" % (mode, summary["read"], ctx["documents"]))
    return seconds, rss, summary


def run_ferry(ctx, target, database, src, label="ferry", profile=None):
    args = mvi_data.restore_args(target.env(), database, src, label)
    fresh_dir(args["state_dir"])
    seconds, rss, result = mvi_data.run_module("mongo_restore", args, "mongo_restore_" + label, profile)
    if result.get("inserted", 0) + result.get("duplicates", 0) != ctx["documents"]:
        raise RuntimeError("mongo_restore: inserted %s + duplicates %s != %d documents" % (
            result.get("inserted"), result.get("duplicates"), ctx["documents"]))
    return seconds, rss, result


def scenario(ctx, target, name, present, rounds):
    """Rounds alternating original / ferry, each run on a fresh server; returns the figures and, per side,
    whether every run left exactly the source's documents."""
    times = {"original": [], "ferry": []}
    rss, details, same = [], {}, {}
    have_ferry = os.path.exists(mvi_data.module_path("mongo_restore"))
    order = ["original", "ferry"] if have_ferry else ["original"]
    for index in range(rounds):
        for label in order if index % 2 == 0 else reversed(order):
            database = target.fresh(present)
            if label == "original":
                seconds, _rss, details[label] = run_original(ctx, target, database)
            else:
                seconds, peak, details[label] = run_ferry(ctx, target, database, ctx["ferry_src"])
                rss.append(peak)
            key = "%s_%s" % (name, label)
            same[key] = same.get(key, True) and target.check(key)
            times[label].append(seconds)
        if max(times["original"]) > SLOW_S:
            break
    target.stop()
    figures = {"%s_rounds" % name: len(times["original"]),
               "%s_original_s" % name: [round(s, 2) for s in times["original"]],
               "%s_original_docs_s" % name: round(ctx["documents"] / median(times["original"]), 1),
               "%s_original_counts" % name: details["original"]}
    if have_ferry:
        figures.update({
            "%s_ferry_s" % name: [round(s, 2) for s in times["ferry"]],
            "%s_ferry_docs_s" % name: round(ctx["documents"] / median(times["ferry"]), 1),
            "%s_ferry_peak_rss_mib" % name: round(max(rss), 1),
            "%s_ferry_counts" % name: {key: details["ferry"].get(key) for key in (
                "inserted", "duplicates", "replaced", "indexes_created", "verified", "docs_per_s")},
        })
        figures["%s_ratio" % name] = round(figures["%s_ferry_docs_s" % name] / figures["%s_original_docs_s" % name], 3)
    figures["%s_target_ratio_min" % name] = TARGETS[name]
    return figures, same


def profiled(ctx, target, name, present):
    """One ferry run under cProfile (not timed in the figures); the top of the profile goes to stderr."""
    path = os.path.join(BENCH_DIR, "mongo_restore-%s.prof" % name)
    database = target.fresh(present)
    run_ferry(ctx, target, database, ctx["ferry_src"], "profile", profile=path)
    target.stop()
    print("--- mongo_restore %s, cProfile (cumulative) ---" % name, file=sys.stderr)
    pstats.Stats(path, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
    return path


def insert_one(ctx, target, result):
    """insert_one per document, once (~70 s on 100k documents at 1.5k docs/s), on a clean database."""
    database = target.fresh(None)
    seconds = run_original(ctx, target, database, "insert_one")[0]
    same = target.check("insert_one")
    target.stop()
    figures = {"insert_one_s": round(seconds, 2), "insert_one_rounds": 1,
               "insert_one_docs_s": round(ctx["documents"] / seconds, 1),
               "insert_one_target_ratio_min": TARGETS["insert_one"]}
    if "clean_ferry_docs_s" in result:
        figures["insert_one_ratio"] = round(result["clean_ferry_docs_s"] / figures["insert_one_docs_s"], 3)
    return figures, {"insert_one": same}


def main():
    ctx = mvi_data.prepared()
    ctx["digest"] = mvi_data.digest(ctx["source"], ctx["source_db"])
    ctx["ferry_src"] = ctx["ferry_zip"] or ctx["original_zip"]
    have_ferry = os.path.exists(mvi_data.module_path("mongo_restore"))
    target = Target(ctx)
    result = {"documents": ctx["documents"], "avg_json_bytes": round(ctx["doc_bytes"] / ctx["documents"]),
              "rounds": ROUNDS, "ferry_src": "ferry zip" if ctx["ferry_zip"] else "original zip (no mongo_backup)",
              "original_zip_bytes": os.path.getsize(ctx["original_zip"])}
    if ctx["ferry_zip"]:
        result["ferry_zip_bytes"] = os.path.getsize(ctx["ferry_zip"])
    if not have_ferry:
        result["missing"] = "plugins/modules/mongo_restore.py"
    try:
        present = ctx["present"]
        result["present10_documents"] = sum(len(ids) for ids in present.values())
        checks = {}
        for name in ("clean", "present10"):
            if name in PARTS:
                figures, same = scenario(ctx, target, name, present if name == "present10" else None,
                                         ROUNDS[name])
                result.update(figures)
                checks.update(same)
        if have_ferry and os.environ.get("FERRY_BENCH_PROFILE"):
            result["profiles"] = [profiled(ctx, target, "clean", None), profiled(ctx, target, "present10", present)]
        if have_ferry and ctx["ferry_zip"] and "clean" in PARTS:  # the original's zip through mongo_restore, once
            database = target.fresh(None)
            seconds = run_ferry(ctx, target, database, ctx["original_zip"], "ferry_original_zip")[0]
            result["ferry_on_original_zip_docs_s"] = round(ctx["documents"] / seconds, 1)
            checks["ferry_original_zip"] = target.check("ferry_original_zip")
            target.stop()
        if "insert_one" in PARTS:
            figures, same = insert_one(ctx, target, result)
            result.update(figures)
            checks.update(same)
        result["same_documents_as_source"] = checks
    finally:
        target.close()
    result["ok"] = have_ferry and all(result.get("%s_ratio" % name, 0) >= minimum
                                      for name, minimum in TARGETS.items()) and all(checks.values())
    save_result("mongo_restore", result)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
