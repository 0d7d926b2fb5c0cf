"""mongo_backup on >= 100k MVI-like documents against a plain find() loop writing nothing, side by side in one
run, from the SecantusDB test server ``mongo``.

Baseline (bench/mvi_baselines.py ``find``, its own process): ``for d in coll.find(): pass`` over every collection
of the database. ferry: the mongo_backup module run as Ansible runs it (python mongo_backup.py ARGS.json),
server scope, profile mvi, defaults (compress_level 6), into a fresh zip path: it also checks every document is
lossless, writes canonical Extended JSON lines, hashes every member and document (bson_digest, sample) and
writes the manifest. Rounds alternate which goes first; medians of 3. Once more at compress_level 1 (not in the
ratio). The source database is the one bench_mongo_restore uses (bench/mvi_data.py, loaded once per bench run).

FERRY_BENCH_PROFILE=1 adds one cProfile'd run (untimed; stats in .run/bench/mongo_backup.prof, top on stderr).

Wiring into bench/run.py: ``import bench_mongo_backup`` and ``"mongo_backup": bench_mongo_backup.main``.
"""

import json
import os
import pstats
import sys

from common import BENCH_DIR, fresh_dir, median, save_result
import mvi_data

TARGET = 0.5


def run_find(ctx):
    seconds, rss, summary = mvi_data.run_baseline("find", ctx["env"]["FERRY_MONGO_URI"], ctx["source_db"],
                                                  label="backup_find")
    if summary["documents"] != ctx["documents"]:
        raise RuntimeError("find saw %d documents, not %d" % (summary["documents"], ctx["documents"]))
    return seconds, rss, summary


def run_ferry(ctx, label="ferry", profile=None, **options):
    dest = os.path.join(fresh_dir(os.path.join(BENCH_DIR, "mongo_backup_" + label)), "mvi.zip")
    args = mvi_data.backup_args(ctx["env"], ctx["source_db"], dest, label)
    args.update(options)
    fresh_dir(args["state_dir"])
    seconds, rss, result = mvi_data.run_module("mongo_backup", args, "mongo_backup_" + label, profile)
    if result.get("documents") != ctx["documents"]:
        raise RuntimeError("mongo_backup wrote %s documents, not %d" % (result.get("documents"), ctx["documents"]))
    result["zip_bytes"] = os.path.getsize(dest)
    return seconds, rss, result


def main(rounds=3):
    ctx = mvi_data.prepared()
    have_ferry = os.path.exists(mvi_data.module_path("mongo_backup"))
    times = {"find": [], "ferry": []}
    rss, details = [], {}
    order = ["find", "ferry"] if have_ferry else ["find"]
    for index in range(rounds):
        for label in order if index % 2 == 0 else reversed(order):
            if label == "find":
                seconds = run_find(ctx)[0]
            else:
                seconds, peak, details = run_ferry(ctx)
                rss.append(peak)
            times[label].append(seconds)
    result = {"documents": ctx["documents"], "avg_json_bytes": round(ctx["doc_bytes"] / ctx["documents"]),
              "rounds": rounds, "find_s": [round(s, 2) for s in times["find"]],
              "find_docs_s": round(ctx["documents"] / median(times["find"]), 1),
              "target_throughput_ratio_min": TARGET}
    if have_ferry:
        result.update({
            "ferry_s": [round(s, 2) for s in times["ferry"]],
            "ferry_docs_s": round(ctx["documents"] / median(times["ferry"]), 1),
            "ferry_peak_rss_mib": round(max(rss), 1), "zip_bytes": details["zip_bytes"],
        })
        result["ratio"] = round(result["ferry_docs_s"] / result["find_docs_s"], 3)
        seconds, _rss, level1 = run_ferry(ctx, "level1", compress_level=1)
        result.update({"level1_docs_s": round(ctx["documents"] / seconds, 1), "level1_zip_bytes": level1["zip_bytes"]})
        if os.environ.get("FERRY_BENCH_PROFILE"):
            path = os.path.join(BENCH_DIR, "mongo_backup.prof")
            run_ferry(ctx, "profile", profile=path)
            print("--- mongo_backup, cProfile (cumulative) ---", file=sys.stderr)
            pstats.Stats(path, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
            result["profile"] = path
    else:
        result["missing"] = "plugins/modules/mongo_backup.py"
    result["ok"] = have_ferry and result["ratio"] >= TARGET
    save_result("mongo_backup", result)
    return result


if __name__ == "__main__":
    print(json.dumps(main(*(int(arg) for arg in sys.argv[1:])), indent=2))
