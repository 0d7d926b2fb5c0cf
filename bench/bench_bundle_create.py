"""bundle_create against export4's own commands, side by side on the same Zenoss 4 home and dumps.

Baseline (what export4 + zenbackup run once zenbackup has staged its files; the staging itself is not timed):
    tar czfC <tmp>/backups/zenbackup_4x.tgz <tmp> zenbackup          (ZenBackup.packageStagingBackups)
    md5sum -b <tmp>/backups/zenbackup_4x.tgz > <tmp>/backup.md5       (export4 genmd5)
    tar -C <dir> -rf <bundle> <name>  for each member, in export4's order   (export4 add_to_tar)
  The staged zenbackup/ directory is the one bundle_create's tgz holds (extracted once, untimed): the same bytes.
ferry:
    the bundle_create module, run as Ansible runs it (python bundle_create.py ARGS.json), from $ZENHOME and the
    dumps: it also builds the nested tars (etc, ZenPacks, bin, zep, zencatalogservice, perf) that zenbackup
    stages before the baseline starts, and the bundle's sha256.
  and the same with tmp_dir (the tgz staged, then copied in, as export4 does), to measure what writing the tgz in
  place saves.
Rounds alternate the order; a warm-up round of each is not counted.
"""

import json
import os
import subprocess
import sys

from common import BENCH_DIR, ROOT, collection_env, fresh_dir, median, save_result, timed

GENERATOR = os.path.join(ROOT, "tools", "gen_zenoss_home.py")
MODULE = os.path.join(ROOT, "plugins", "modules", "bundle_create.py")
OUTER_BEFORE = ("componentList.txt", "rrdpath.map", "dmd_uuid.txt")


def home(size_mb):
    """The benchmark's Zenoss home, built once and kept in .run/bench."""
    out = os.path.join(BENCH_DIR, "zenhome-%dm" % size_mb)
    info_path = out + ".json"
    if os.path.exists(info_path):
        with open(info_path) as handle:
            info = json.load(handle)
        if os.path.isdir(info["zenhome"]):
            return info
    fresh_dir(out)
    print("building a %d MiB Zenoss home (once)..." % size_mb, file=sys.stderr)
    command = [sys.executable, GENERATOR, out, "--pad-mb", str(size_mb), "--devices", "40", "--rrds-per-device",
               "10", "--remote-collectors", "1", "--days", "30", "--seed", "5"]
    text = timed(command)[2]
    with open(info_path, "w") as handle:
        handle.write(text)
    return json.loads(text)


def params(info, dest, state, tmp_dir=None):
    return {"zenhome": info["zenhome"], "dest": dest, "zodb_dump": info["zodb_dump"],
            "zodb_session_dump": info["zodb_session_dump"], "zep_dump": info["zep_dump"],
            "dmd_uuid": info["dmd_uuid"], "component_list": info["component_list"],
            "rrdpath_map": info["rrdpath_map"], "collector_archives": info["collector_archives"],
            "tmp_dir": tmp_dir, "state_dir": state, "force": True, "min_free_mb": 0}


def run_ferry(info, env, staged=False):
    work = fresh_dir(os.path.join(BENCH_DIR, "create-ferry"))
    tmp_dir = fresh_dir(os.path.join(work, "tmp")) if staged else None
    args = os.path.join(BENCH_DIR, "bundle_create_args.json")
    with open(args, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": params(info, os.path.join(work, "4x-export.tar"),
                                                 os.path.join(work, ".state"), tmp_dir)}, handle)
    seconds, rss, out = timed([sys.executable, MODULE, args], env=env)
    result = json.loads(out)
    if result.get("failed"):
        raise RuntimeError("bundle_create failed: %s" % out[-2000:])
    return seconds, rss, result


def stage_baseline(info, env):
    """export4's temporary directory as it is when zenbackup has staged its files: tmp/zenbackup/ (the same files
    as bundle_create's tgz), tmp/backups/, the model files and the collector archives beside them."""
    stage = fresh_dir(os.path.join(BENCH_DIR, "create-stage"))
    result = run_ferry(info, env)[2]
    subprocess.run(["tar", "-xf", result["dest"], "-C", stage, "zenbackup_4x.tgz"], check=True)
    subprocess.run(["tar", "-xzf", "zenbackup_4x.tgz"], cwd=stage, check=True)
    os.unlink(os.path.join(stage, "zenbackup_4x.tgz"))
    for name, option in zip(OUTER_BEFORE, ("component_list", "rrdpath_map", None)):
        target = os.path.join(stage, name)
        if option:
            subprocess.run(["cp", "-p", info[option], target], check=True)
        else:
            with open(target, "w") as handle:
                handle.write(info["dmd_uuid"] + "\n")
    for path in info["collector_archives"]:
        subprocess.run(["cp", "-p", path, stage], check=True)
    return stage, result


def baseline_command(info, stage, bundle):
    tgz = os.path.join(stage, "backups", "zenbackup_4x.tgz")
    steps = ["rm -rf %s/backups && mkdir %s/backups" % (stage, stage),
             "tar czfC %s %s zenbackup" % (tgz, stage),
             "md5sum -b %s > %s/backup.md5" % (tgz, stage)]
    members = [(stage, name) for name in OUTER_BEFORE]
    members += [(stage, os.path.basename(path)) for path in info["collector_archives"]]
    members += [(os.path.join(info["zenhome"], "var"), "flexera"), (os.path.dirname(tgz), "zenbackup_4x.tgz"),
                (stage, "backup.md5")]
    steps += ["tar -C %s -rf %s %s" % (directory, bundle, name) for directory, name in members]
    return " && ".join(steps)


def run_baseline(info, stage):
    work = fresh_dir(os.path.join(BENCH_DIR, "create-baseline"))
    return timed(baseline_command(info, stage, os.path.join(work, "4x-export.tar")), shell=True)


def main(size_mb=400, rounds=3):
    info = home(size_mb)
    env = collection_env()
    stage, first = stage_baseline(info, env)
    runs = {"baseline": lambda: run_baseline(info, stage), "ferry": lambda: run_ferry(info, env),
            "ferry_tmp_dir": lambda: run_ferry(info, env, staged=True)}
    for run in runs.values():  # warm-up: page cache and .pyc files
        run()
    times = dict((label, []) for label in runs)
    labels = list(runs)
    for index in range(rounds):
        for label in labels if index % 2 == 0 else reversed(labels):
            seconds, rss = runs[label]()[:2]
            times[label].append((seconds, rss))
    for path in ("create-baseline", "create-ferry", "create-stage"):
        fresh_dir(os.path.join(BENCH_DIR, path))
    result = {
        "input_bytes": first["tgz"]["uncompressed_size"],
        "bundle_bytes": first["size"],
        "rounds": rounds,
        "target_ratio_max": 1.1,
    }
    for label, values in times.items():
        result[label + "_s"] = [round(seconds, 2) for seconds, rss in values]
        result[label + "_median_s"] = round(median([seconds for seconds, rss in values]), 2)
    result["ferry_peak_rss_mib"] = round(max(rss for seconds, rss in times["ferry"]), 1)
    result["ratio"] = round(result["ferry_median_s"] / result["baseline_median_s"], 3)
    result["ratio_tmp_dir"] = round(result["ferry_tmp_dir_median_s"] / result["baseline_median_s"], 3)
    result["ok"] = result["ratio"] <= result["target_ratio_max"]
    save_result("bundle_create", result)
    return result


if __name__ == "__main__":
    print(json.dumps(main(*[int(arg) for arg in sys.argv[1:]]), indent=2))
