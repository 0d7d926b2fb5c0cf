"""bundle_check on a >= 1 GB Zenoss 4 bundle against what an operator would type, side by side.

Baseline: tar -xf bundle.tar && md5sum zenbackup_*.tgz && tar -xzf zenbackup_*.tgz
ferry:    the bundle_check module (run as Ansible runs it: python bundle_check.py ARGS.json), which
          also verifies the md5, checks every gzip stream and unpacks the perf archives.
Both start from a warm page cache (a warm-up round is not counted) and rounds alternate.
"""

import json
import os
import sys

from common import BENCH_DIR, ROOT, collection_env, fresh_dir, median, save_result, timed

GENERATOR = os.path.join(ROOT, "tools", "gen_zenoss_bundle.py")
MODULE = os.path.join(ROOT, "plugins", "modules", "bundle_check.py")
BASELINE = "tar -xf %s && md5sum zenbackup_*.tgz && tar -xzf zenbackup_*.tgz"


def bundle(size_mb):
    """The benchmark bundle, built once and kept in .run/bench."""
    name = "bench-%dm.tar" % size_mb
    info_path = os.path.join(BENCH_DIR, name + ".json")
    if os.path.exists(info_path):
        with open(info_path) as handle:
            info = json.load(handle)
        if os.path.exists(info["path"]) and os.path.getsize(info["path"]) == info["size"]:
            return info
    os.makedirs(BENCH_DIR, exist_ok=True)
    print("building a %d MiB bundle (once)..." % size_mb, file=sys.stderr)
    command = [sys.executable, GENERATOR, BENCH_DIR, "--name", name, "--pad-mb", str(size_mb),
               "--devices", "20", "--rrds-per-device", "10", "--perf", "tar.gz", "--seed", "5"]
    out = timed(command)[2]
    with open(info_path, "w") as handle:
        handle.write(out)
    return json.loads(out)


def run_baseline(info):
    work = fresh_dir(os.path.join(BENCH_DIR, "baseline"))
    return timed(BASELINE % os.path.abspath(info["path"]), cwd=work, shell=True)


def run_ferry(info, env):
    work = fresh_dir(os.path.join(BENCH_DIR, "ferry"))
    args = os.path.join(BENCH_DIR, "bundle_check_args.json")
    with open(args, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": {"path": os.path.abspath(info["path"]), "dest": work, "force": True,
                                           "state_dir": os.path.join(work, ".state")}}, handle)
    seconds, rss, out = timed([sys.executable, MODULE, args], env=env)
    result = json.loads(out)
    if result.get("failed") or result["inventory"]["tgz"]["md5"] != info["md5"]:
        raise RuntimeError("bundle_check did not verify the bundle: %s" % out[-2000:])
    return seconds, rss, out


def main(size_mb=1100, rounds=3):
    info = bundle(size_mb)
    env = collection_env()
    run_baseline(info)
    run_ferry(info, env)  # warm-up: page cache and .pyc files
    base, ferry = [], []
    for index in range(rounds):
        order = [("baseline", run_baseline), ("ferry", run_ferry)]
        for label, func in order if index % 2 == 0 else reversed(order):
            seconds, rss = (func(info) if label == "baseline" else func(info, env))[:2]
            (base if label == "baseline" else ferry).append((seconds, rss))
    for path in ("baseline", "ferry"):
        fresh_dir(os.path.join(BENCH_DIR, path))
    result = {
        "bundle_bytes": info["size"],
        "rrd_files": info["rrd_count"],
        "rounds": rounds,
        "baseline_s": [round(seconds, 2) for seconds, rss in base],
        "ferry_s": [round(seconds, 2) for seconds, rss in ferry],
        "baseline_median_s": round(median([seconds for seconds, rss in base]), 2),
        "ferry_median_s": round(median([seconds for seconds, rss in ferry]), 2),
        "ferry_peak_rss_mib": round(max(rss for seconds, rss in ferry), 1),
        "target_ratio_max": 1.25,
    }
    result["ratio"] = round(result["ferry_median_s"] / result["baseline_median_s"], 3)
    result["ok"] = result["ratio"] <= result["target_ratio_max"]
    save_result("bundle_check", result)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
