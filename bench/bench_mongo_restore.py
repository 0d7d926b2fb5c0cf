"""mongo_restore on >= 100k MVI-like documents against the original tool's restore algorithm and against
insert_one per document, side by side in one run, into the SecantusDB test server ``mongo-target``.

Baselines (bench/mvi_baselines.py, re-implemented from docs/design/mvi-issue14.md §1.4, each in its own process
as the original runs): the original algorithm on the original-format zip (whole member json.loads, slices of
1000, ordered insert_many while >= 50 consecutive single successes, the whole slice redone with insert_one on
BulkWriteError); and insert_one for every document of the same zip.
ferry: the mongo_restore module run as Ansible runs it (python mongo_restore.py ARGS.json), defaults
(on_duplicate skip, verify sample, indexes), on the ferry zip mongo_backup wrote (the original-format zip when
mongo_backup is missing; the result says which).

Scenarios: ``clean`` (an empty database) and ``present10`` (the same random 10 % of the documents loaded,
untimed, into both runs' databases first). Each run gets a fresh database; rounds alternate which goes first;
medians of 3, fewer when a baseline round takes longer than FERRY_BENCH_SLOW_S (default 240 s; the result's
``<scenario>_rounds`` says how many ran). insert_one (about 70 s on 100k documents at 1.5k docs/s, much more on
a busy target) runs once, on a clean database. Docs/s counts every
document of the zip, duplicates included. The last round's databases are compared with the source (count and
an order-free digest of the raw BSON of every collection).

FERRY_BENCH_MVI_DOCS sets the document count (default 100000); FERRY_BENCH_MONGO_PARTS a subset of
``clean,present10,insert_one`` for a quick rerun (``ok`` needs all three); FERRY_BENCH_PROFILE=1 adds one
cProfile'd ferry run per scenario (untimed; stats in .run/bench/mongo_restore-<scenario>.prof, the top lines on
stderr).

Wiring into bench/run.py: ``import bench_mongo_restore`` and ``"mongo_restore": bench_mongo_restore.main``.
"""

import json
import os
import pstats
import sys
import uuid

from common import BENCH_DIR, fresh_dir, median, save_result
import mvi_data

TARGETS = {"clean": 1.0, "present10": 5.0, "insert_one": 5.0}
# A round whose baseline took longer than this is the scenario's last (the original singly on a slow target).
SLOW_S = float(os.environ.get("FERRY_BENCH_SLOW_S", "240"))
# Which parts run (a quick rerun of one part); the result is ``ok`` only when all three ran and met their targets.
PARTS = os.environ.get("FERRY_BENCH_MONGO_PARTS", "clean,present10,insert_one").split(",")


class Target:
    """The restore target: a fresh database per run, the present share loaded first, dropped when replaced."""

    def __init__(self, ctx):
        import pymongo  # pylint: disable=import-outside-toplevel
        self.ctx = ctx
        self.uri = ctx["env"]["FERRY_MONGO_TARGET_URI"]
        self.client = pymongo.MongoClient(self.uri)
        self.kept = {}

    def fresh(self, label, present):
        self.drop(label)
        name = "bench_mvi_%s_%s" % (label, uuid.uuid4().hex[:8])
        if present:
            mvi_data.load_present(self.ctx["source"], self.ctx["source_db"], self.client, name, present)
        self.kept[label] = name
        return name

    def counts(self, database):
        return {name: self.client[database][name].count_documents({})
                for name in self.client[database].list_collection_names()}

    def drop(self, label):
        name = self.kept.pop(label, None)
        if name:
            self.client.drop_database(name)

    def close(self):
        for label in list(self.kept):
            self.drop(label)
        self.client.close()


def expected_counts(ctx):
    return ctx["counts"]


def run_original(ctx, target, database, mode="original"):
    seconds, rss, summary = mvi_data.run_baseline(mode, target.uri, database, ctx["original_zip"], "restore_" + mode)
    if summary["read"] != ctx["documents"]:
        raise RuntimeError("%s read %d documents, not %d" % (mode, summary["read"], ctx["documents"]))
    return seconds, rss, summary


def run_ferry(ctx, target, database, src, label="ferry", profile=None):
    args = mvi_data.restore_args(ctx["env"], database, src, label)
    fresh_dir(args["state_dir"])
    seconds, rss, result = mvi_data.run_module("mongo_restore", args, "mongo_restore_" + label, profile)
    if result.get("inserted", 0) + result.get("duplicates", 0) != ctx["documents"]:
        raise RuntimeError("mongo_restore: inserted %s + duplicates %s != %d documents" % (
            result.get("inserted"), result.get("duplicates"), ctx["documents"]))
    return seconds, rss, result


def scenario(ctx, target, name, present, rounds):
    """Rounds alternating original / ferry on fresh databases; returns the figures and the last round's DBs."""
    times = {"original": [], "ferry": []}
    rss, details = [], {}
    have_ferry = os.path.exists(mvi_data.module_path("mongo_restore"))
    order = ["original", "ferry"] if have_ferry else ["original"]
    for index in range(rounds):
        for label in order if index % 2 == 0 else reversed(order):
            database = target.fresh("%s_%s" % (name, label), present)
            if label == "original":
                seconds, _rss, details[label] = run_original(ctx, target, database)
            else:
                seconds, peak, details[label] = run_ferry(ctx, target, database, ctx["ferry_src"])
                rss.append(peak)
            if target.counts(database) != expected_counts(ctx):
                raise RuntimeError("%s/%s: target counts %s" % (name, label, target.counts(database)))
            times[label].append(seconds)
        if max(times["original"]) > SLOW_S:
            break
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
    return figures


def profiled(ctx, target, name, present):
    """One ferry run under cProfile (not timed in the figures); the top of the profile goes to stderr."""
    path = os.path.join(BENCH_DIR, "mongo_restore-%s.prof" % name)
    database = target.fresh("%s_profile" % name, present)
    run_ferry(ctx, target, database, ctx["ferry_src"], "profile", profile=path)
    target.drop("%s_profile" % name)
    print("--- mongo_restore %s, cProfile (cumulative) ---" % name, file=sys.stderr)
    pstats.Stats(path, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
    return path


def insert_one(ctx, target, result):
    """insert_one per document, once (~70 s on 100k documents at 1.5k docs/s), on a clean database."""
    database = target.fresh("insert_one", None)
    seconds = run_original(ctx, target, database, "insert_one")[0]
    if target.counts(database) != expected_counts(ctx):
        raise RuntimeError("insert_one: target counts %s" % target.counts(database))
    figures = {"insert_one_s": round(seconds, 2), "insert_one_rounds": 1,
               "insert_one_docs_s": round(ctx["documents"] / seconds, 1),
               "insert_one_target_ratio_min": TARGETS["insert_one"]}
    if "clean_ferry_docs_s" in result:
        figures["insert_one_ratio"] = round(result["clean_ferry_docs_s"] / figures["insert_one_docs_s"], 3)
    return figures


def same_as_source(ctx, target, labels):
    """Every kept database (by label) holds exactly the source's documents, byte for byte."""
    want = mvi_data.digest(ctx["source"], ctx["source_db"])
    return {label: mvi_data.digest(target.client, target.kept[label]) == want for label in labels
            if label in target.kept}


def main(rounds=3):
    ctx = mvi_data.prepared()
    ctx["ferry_src"] = ctx["ferry_zip"] or ctx["original_zip"]
    have_ferry = os.path.exists(mvi_data.module_path("mongo_restore"))
    target = Target(ctx)
    result = {"documents": ctx["documents"], "avg_json_bytes": round(ctx["doc_bytes"] / ctx["documents"]),
              "rounds": rounds, "ferry_src": "ferry zip" if ctx["ferry_zip"] else "original zip (no mongo_backup)",
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
                result.update(scenario(ctx, target, name, present if name == "present10" else None, rounds))
                checks.update(same_as_source(ctx, target, [name + "_original", name + "_ferry"]))
        result["same_documents_as_source"] = checks
        if have_ferry and os.environ.get("FERRY_BENCH_PROFILE"):
            result["profiles"] = [profiled(ctx, target, "clean", None), profiled(ctx, target, "present10", present)]
        if have_ferry and ctx["ferry_zip"] and "clean" in PARTS:  # the original's zip through mongo_restore, once
            database = target.fresh("ferry_original_zip", None)
            seconds = run_ferry(ctx, target, database, ctx["original_zip"], "ferry_original_zip")[0]
            result["ferry_on_original_zip_docs_s"] = round(ctx["documents"] / seconds, 1)
            target.drop("ferry_original_zip")
        if "insert_one" in PARTS:
            result.update(insert_one(ctx, target, result))
    finally:
        target.close()
    result["ok"] = have_ferry and all(result.get("%s_ratio" % name, 0) >= minimum
                                      for name, minimum in TARGETS.items()) and all(checks.values())
    save_result("mongo_restore", result)
    return result


if __name__ == "__main__":
    print(json.dumps(main(*(int(arg) for arg in sys.argv[1:])), indent=2))
