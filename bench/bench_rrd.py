"""RRD conversion on 400 NAV-style and 400 Zenoss-style generated files, side by side in one run.

Baseline: graphite's rrd2whisper.py (PyPI whisper), one process per file, one file after the other, as users
          run it over a tree (a distinct --destinationPath per file, or Zenoss's same-named files collide).
ferry:    the rrd_to_whisper module run as Ansible runs it (python rrd_to_whisper.py ARGS.json), 2 workers;
          then rrd_to_tsdb (point files) on the Zenoss tree, with its optional accelerators (orjson, isal)
          and without them (hidden from the module's process).
Memory:   ferry again on a tree four times as large (the same files linked four times): the peak RSS must not
          grow with the number of files.

The trees end at the start of the current UTC day (rrd2whisper.py measures its windows from now, so data from
long ago would leave it nothing to do) and are kept in .run/bench for the day.
"""

import gzip
import json
import os
import shutil
import sys
import time
import zlib

from common import BENCH_DIR, ROOT, collection_env, fresh_dir, save_result, timed

ENV = collection_env()  # the modules run with it; the bench reads each step's own time from the journal
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import Journal, describe  # noqa: E402  pylint: disable=wrong-import-position

GENERATOR = os.path.join(ROOT, "tools", "gen_rrd_tree.py")
MODULES = os.path.join(ROOT, "plugins", "modules")
RRD2WHISPER = os.path.join(os.path.dirname(sys.executable), "rrd2whisper.py")
FILES = 400
WORKERS = 2
ROUNDS = 3  # ferry's runs are short and this kind of machine is noisy: the median of 3 is reported
TARGETS = {"ratio_min": 20, "files_per_s_min": 300, "points_per_s_min": 1000000}


def tree(style):
    """The benchmark tree of a style, built once a day."""
    end = int(time.time()) // 86400 * 86400
    root = os.path.join(BENCH_DIR, "rrd-%s-%d" % (style, end))
    info_path = root + ".json"
    if not os.path.exists(info_path):
        for stale in os.listdir(BENCH_DIR) if os.path.isdir(BENCH_DIR) else []:
            if stale.startswith("rrd-%s-" % style):
                shutil.rmtree(os.path.join(BENCH_DIR, stale), ignore_errors=True)
                if stale.endswith(".json"):
                    os.unlink(os.path.join(BENCH_DIR, stale))
        os.makedirs(BENCH_DIR, exist_ok=True)
        print("generating %d %s RRD files (once a day, a few minutes)..." % (FILES, style), file=sys.stderr)
        out = timed([sys.executable, GENERATOR, root, "--style", style, "--files", str(FILES), "--end", str(end),
                     "--workers", str(WORKERS)])[2]
        with open(info_path, "w") as handle:
            handle.write(out)
    with open(info_path) as handle:
        return json.load(handle)


def rrd_paths(info):
    return [os.path.join(info["root"], entry["path"]) for entry in info["files"]]


def run_baseline(paths):
    work = fresh_dir(os.path.join(BENCH_DIR, "rrd2whisper"))
    listing = os.path.join(work, "files.txt")
    with open(listing, "w") as handle:
        handle.write("".join(path + "\n" for path in paths))
    script = ('n=0; while IFS= read -r f; do n=$((n+1)); mkdir -p "%s/$n"; "%s" "%s" --destinationPath "%s/$n" "$f" '
              '>/dev/null || exit 1; done < "%s"' % (work, sys.executable, RRD2WHISPER, work, listing))
    seconds, rss, _out = timed(script, shell=True)
    shutil.rmtree(work, ignore_errors=True)
    return {"files": len(paths), "seconds": round(seconds, 2), "files_per_s": round(len(paths) / seconds, 2),
            "peak_rss_mib": round(rss, 1)}


# runs a module with the accelerators hidden: an import of a name set to None in sys.modules fails
WITHOUT_ACCELERATORS = ("import runpy, sys; sys.modules.update(orjson=None, isal=None); sys.argv = sys.argv[1:]; "
                        "runpy.run_path(sys.argv[0], run_name='__main__')")


def run_module(name, args, env, accelerators=True):
    """One module run as Ansible runs it; returns its result with seconds and peak RSS, and the seconds of
    the conversion step itself (what its journal records: start-up and argument checks excluded)."""
    args_path = os.path.join(BENCH_DIR, name + "-args.json")
    with open(args_path, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    head = [sys.executable] if accelerators else [sys.executable, "-c", WITHOUT_ACCELERATORS]
    seconds, rss, out = timed(head + [os.path.join(MODULES, name + ".py"), args_path], env=env)
    result = json.loads(out)
    if result.get("failed"):
        raise RuntimeError("%s failed: %s" % (name, result.get("msg")))
    step = describe(Journal(args["state_dir"]).step(name).record())
    result.update(seconds=round(seconds, 2), peak_rss_mib=round(rss, 1), step_s=step["elapsed_s"])
    return result


def rounds(run_once):
    """``run_once()`` ROUNDS times into fresh directories; the result of the median round, with all times."""
    results = sorted((run_once() for _round in range(ROUNDS)), key=lambda r: r["seconds"])
    median = dict(results[len(results) // 2])
    median["rounds_s"] = [r["seconds"] for r in results]
    return median


def run_whisper(src, env, label):
    def once():
        work = fresh_dir(os.path.join(BENCH_DIR, "ferry-" + label))
        result = run_module("rrd_to_whisper", {"src": src, "dest": os.path.join(work, "whisper"), "workers": WORKERS,
                                               "state_dir": os.path.join(work, "state")}, env)
        shutil.rmtree(work, ignore_errors=True)
        files = result["counts"]["files"]
        return {"files": files, "whisper_files": result["counts"]["created"], "seconds": result["seconds"],
                "files_per_s": round(files / result["seconds"], 1), "peak_rss_mib": result["peak_rss_mib"],
                "step_s": result["step_s"], "step_files_per_s": round(files / result["step_s"], 1)}
    return rounds(once)


def run_tsdb(src, env, accelerators=True):
    sample = os.path.join(BENCH_DIR, "floor-sample.jsonl.gz")

    def once():
        work = fresh_dir(os.path.join(BENCH_DIR, "ferry-points"))
        result = run_module("rrd_to_tsdb", {"src": src, "dest": os.path.join(work, "points"), "workers": WORKERS,
                                            "state_dir": os.path.join(work, "state")}, env, accelerators)
        if result["accelerators"] != {"orjson": accelerators, "isal": accelerators}:
            raise RuntimeError("rrd_to_tsdb ran with accelerators %s" % result["accelerators"])
        batches = sorted(entry for entry in os.listdir(os.path.join(work, "points")) if entry.endswith(".jsonl.gz"))
        shutil.copyfile(os.path.join(work, "points", batches[0]), sample)
        shutil.rmtree(work, ignore_errors=True)
        points = result["counts"]["points"]
        return {"files": result["counts"]["files"], "points": points, "seconds": result["seconds"],
                "points_per_s": round(points / result["seconds"]), "peak_rss_mib": result["peak_rss_mib"],
                "step_s": result["step_s"], "step_points_per_s": round(points / result["step_s"])}
    result = rounds(once)
    if not accelerators:
        os.unlink(sample)
        return result
    # in a process of its own: a child's peak RSS counts its parent's at the fork, so this one must stay small
    result["floor"] = json.loads(timed([sys.executable, os.path.abspath(__file__), "--floor", sample])[2])
    os.unlink(sample)
    return result


def formatting_floor(path):
    """The least a point costs here: its value's shortest exact text and its share of gzip, each a single C
    call over the values and bytes of a batch written, with Python alone (repr, zlib level 1) and with the
    accelerators (orjson, isal level 1). WORKERS cores divided by that cost bound the points/s of any
    converter writing this format on this machine."""
    import orjson  # pylint: disable=import-outside-toplevel
    from isal import isal_zlib  # pylint: disable=import-outside-toplevel
    with open(path, "rb") as handle:
        data = gzip.decompress(handle.read())
    values = [json.loads(line)["value"] for line in data.splitlines()]

    def best(function):
        times = []
        for _round in range(3):
            started = time.perf_counter()
            function()
            times.append(time.perf_counter() - started)
        return min(times) / len(values)

    def compress(library):
        member = library.compressobj(1, library.DEFLATED, 31)
        return member.compress(data) + member.flush()

    out = {"points": len(values), "bytes_per_point": round(len(data) / len(values), 1)}
    for way, text, deflate in (("plain", lambda: "".join(map(repr, values)), zlib),
                               ("accelerated", lambda: orjson.dumps(values), isal_zlib)):
        text_s, gzip_s = best(text), best(lambda library=deflate: compress(library))
        out[way] = {"text_us": round(text_s * 1e6, 3), "gzip_us": round(gzip_s * 1e6, 3),
                    "points_per_s_max": round(WORKERS / (text_s + gzip_s))}
    return out


def linked_tree(info, copies):
    """``copies`` times the tree, as symbolic links: many files, the same bytes."""
    root = fresh_dir(os.path.join(BENCH_DIR, "rrd-linked"))
    for copy in range(copies):
        for entry in info["files"]:
            path = os.path.join(root, "copy%d" % copy, entry["path"])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.symlink(os.path.join(info["root"], entry["path"]), path)
    return root


def main():
    env = ENV
    trees = {"nav": tree("nav"), "zenoss": tree("zenoss")}
    result = {"targets": TARGETS, "workers": WORKERS, "cpus": os.cpu_count()}
    paths = rrd_paths(trees["nav"]) + rrd_paths(trees["zenoss"])
    result["baseline_rrd2whisper"] = run_baseline(paths)
    for style, info in trees.items():
        result["ferry_whisper_" + style] = run_whisper(info["root"], env, style)
    both = [result["ferry_whisper_" + style] for style in trees]
    ferry_rate = sum(r["files"] for r in both) / sum(r["seconds"] for r in both)
    result["ferry_whisper_files_per_s"] = round(ferry_rate, 1)
    result["ratio"] = round(ferry_rate / result["baseline_rrd2whisper"]["files_per_s"], 1)
    big = linked_tree(trees["nav"], 4)
    result["ferry_whisper_4x_files"] = run_whisper(big, env, "4x")
    shutil.rmtree(big, ignore_errors=True)
    result["ferry_tsdb_zenoss"] = run_tsdb(trees["zenoss"]["root"], env)
    result["ferry_tsdb_zenoss_without_accelerators"] = run_tsdb(trees["zenoss"]["root"], env, accelerators=False)
    result["ferry_tsdb_points_per_s"] = result["ferry_tsdb_zenoss"]["points_per_s"]
    result["ok"] = (result["ratio"] >= TARGETS["ratio_min"] and ferry_rate >= TARGETS["files_per_s_min"]
                    and result["ferry_tsdb_points_per_s"] >= TARGETS["points_per_s_min"])
    save_result("rrd", result)
    return result


if __name__ == "__main__":
    if sys.argv[1:2] == ["--floor"]:
        print(json.dumps(formatting_floor(sys.argv[2])))
    else:
        print(json.dumps(main(), indent=2))
