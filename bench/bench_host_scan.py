"""host_scan on a tree of 50,000 files against what an operator would type to checksum it, side by side.

The tree (built once in .run/bench/host-scan-tree, kept): 50,000 regular files in 500 directories (50 top
directories of 10 each, 100 files a directory), sizes drawn once from a fixed seed:

- 45,000 small files, 0 to 16 KiB (configuration, scripts, small data: most files of a system);
- 4,500 medium files, 64 KiB to 1 MiB (libraries, documents);
- 500 large files, 4 to 24 MiB (archives, images, databases);

about 9.5 GiB (10.2 GB) in all, so that reading and hashing the content dominates a first scan as it does on a
real host.
Content: a random 1 MiB block, rotated per file, with the file's name first (every file has its own digest).

Baseline: ``find TREE -type f -print0 | xargs -0 sha256sum > /dev/null`` (one sha256sum process at a time, as
typed). ferry, first scan: the engine's ``host_scan`` run (``scan/scan.py``, the module's ``run``, in a fresh
interpreter) with an empty state directory, so every file is hashed, on the default ``hash_workers`` (the CPUs).
ferry, rescan: the same run again on the unchanged tree: the stat cache answers every file.

The page cache is not dropped (it needs root and is not portable): the tree is read once first (``cat``) so that
every run starts warm, and the rounds alternate. Targets: first scan / baseline <= 1.2, first scan / rescan >= 10.
"""

import json
import os
import random
import shutil
import sys

from common import BENCH_DIR, collection_env, median, save_result, timed

TREE = os.path.join(BENCH_DIR, "host-scan-tree")
INFO = TREE + ".json"
LAYOUT = {"top": 50, "sub": 10, "files": 100}
SEED = 15
BASELINE = "find %s -type f -print0 | xargs -0 sha256sum > /dev/null"
WARM = "find %s -type f -print0 | xargs -0 cat > /dev/null"
RUNNER = """
import json, sys
from ansible_collections.ferry.migrate.plugins.module_utils.scan.scan import run
params = json.load(open(sys.argv[1]))
print(json.dumps(run(params, False)))
"""


def sizes(count, rng):
    """The file sizes: 90 % small, 9 % medium, 1 % large, shuffled."""
    small = [int(rng.uniform(0, 16 << 10)) for _n in range(count * 90 // 100)]
    large = [int(rng.uniform(4 << 20, 24 << 20)) for _n in range(count // 100)]
    medium = [int(rng.uniform(64 << 10, 1 << 20)) for _n in range(count - len(small) - len(large))]
    found = small + medium + large
    rng.shuffle(found)
    return found


def build_tree():
    """The tree, built once (its description is kept beside it; a tree without it is built again)."""
    if os.path.exists(INFO) and os.path.isdir(TREE):
        with open(INFO) as handle:
            return json.load(handle)
    shutil.rmtree(TREE, ignore_errors=True)
    print("building the host_scan tree (once)...", file=sys.stderr)
    rng = random.Random(SEED)
    block = rng.randbytes(1 << 20)
    count = LAYOUT["top"] * LAYOUT["sub"] * LAYOUT["files"]
    all_sizes = sizes(count, rng)
    total = 0
    number = 0
    for top in range(LAYOUT["top"]):
        for sub in range(LAYOUT["sub"]):
            directory = os.path.join(TREE, "t%02d" % top, "s%02d" % sub)
            os.makedirs(directory)
            for _file in range(LAYOUT["files"]):
                size = all_sizes[number]
                name = "f%05d.dat" % number
                write_file(os.path.join(directory, name), size, block, number, name)
                total += size
                number += 1
    info = {"files": count, "bytes": total, "dirs": LAYOUT["top"] * (LAYOUT["sub"] + 1)}
    with open(INFO, "w") as handle:
        json.dump(info, handle)
    return info


def write_file(path, size, block, number, name):
    head = name.encode() + b"\n"
    shift = (number * 4099) % len(block)
    rotated = block[shift:] + block[:shift]
    with open(path, "wb") as handle:
        left = size
        handle.write(head[:left])
        left -= min(left, len(head))
        while left > 0:
            piece = rotated[:left]
            handle.write(piece)
            left -= len(piece)


def run_ferry(env, state, dest):
    args = os.path.join(BENCH_DIR, "host_scan_args.json")
    with open(args, "w") as handle:
        json.dump({"root": TREE, "dest": dest, "roots": ["/"], "excludes": [], "default_excludes": True,
                   "packages": True, "hash_workers": None, "one_file_system": True, "state_dir": state,
                   "step": None, "force": False}, handle)
    seconds, rss, out = timed([sys.executable, "-c", RUNNER, args], env=env)
    return seconds, rss, json.loads(out.strip().splitlines()[-1])


def main(rounds=2):
    info = build_tree()
    env = collection_env()
    work = os.path.join(BENCH_DIR, "host-scan-work")
    state, dest = os.path.join(work, "state"), os.path.join(work, "report.jsonl.gz")
    timed(WARM % TREE, shell=True)  # warm: every run reads from the page cache
    base, first, again = [], [], []
    for index in range(rounds):
        shutil.rmtree(work, ignore_errors=True)
        steps = [("baseline", lambda: timed(BASELINE % TREE, shell=True)),
                 ("first", lambda: run_ferry(env, state, dest))]
        for label, func in steps if index % 2 == 0 else reversed(steps):
            seconds, rss, out = func()
            if label == "first":
                if out["counts"]["hashed"] != info["files"]:
                    raise RuntimeError("the first scan did not hash every file: %s" % out["counts"])
                first.append((seconds, rss))
            else:
                base.append((seconds, rss))
        seconds, rss, out = run_ferry(env, state, dest)
        if out["counts"]["cached"] != info["files"] or out["changed"]:
            raise RuntimeError("the rescan read files again or changed the report: %s" % out["counts"])
        again.append((seconds, rss))
    shutil.rmtree(work, ignore_errors=True)
    result = {
        "files": info["files"],
        "tree_bytes": info["bytes"],
        "rounds": rounds,
        "baseline_s": [round(seconds, 2) for seconds, _rss in base],
        "first_s": [round(seconds, 2) for seconds, _rss in first],
        "rescan_s": [round(seconds, 3) for seconds, _rss in again],
        "baseline_median_s": round(median([seconds for seconds, _rss in base]), 2),
        "first_median_s": round(median([seconds for seconds, _rss in first]), 2),
        "rescan_median_s": round(median([seconds for seconds, _rss in again]), 3),
        "ferry_peak_rss_mib": round(max(rss for _seconds, rss in first + again), 1),
        "target_first_ratio_max": 1.2,
        "target_rescan_speedup_min": 10,
    }
    result["first_ratio"] = round(result["first_median_s"] / result["baseline_median_s"], 3)
    result["rescan_speedup"] = round(result["first_median_s"] / result["rescan_median_s"], 1)
    first_ok = result["first_ratio"] <= result["target_first_ratio_max"]
    result["ok"] = first_ok and result["rescan_speedup"] >= result["target_rescan_speedup_min"]
    save_result("host_scan", result)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
