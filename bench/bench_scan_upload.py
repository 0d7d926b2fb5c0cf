"""scan_upload of >= 1 GiB of file contents to nginx WebDAV on loopback, against tar piped into curl.

Tree:     a few hundred files of mixed sizes (64 KiB to 160 MiB, random bytes), built once in .run/bench, and
          its host_scan report (built once too).
Baseline: tar -cf - -C TREE . | curl -T - URL (one streamed PUT, chunked; no hashing, no index).
ferry:    the scan_upload module (run as Ansible runs it: python scan_upload.py ARGS.json) to a fresh instance each
          round, so every object is sent: parts of 256 MiB, each file hashed again while it is sent.
Both read a warm page cache (a warm-up round is not counted), rounds alternate, and what each round stored is
removed after it. The target is >= 150 MB/s for ferry; the ratio is ferry's time over the baseline's.
"""

import json
import os
import random
import secrets
import shutil
import subprocess
import sys

from common import BENCH_DIR, ROOT, collection_env, median, save_result, timed

MODULE = os.path.join(ROOT, "plugins", "modules", "scan_upload.py")
SCAN_MODULE = os.path.join(ROOT, "plugins", "modules", "host_scan.py")
SERVERS = os.path.join(os.environ.get("FERRY_RUN_DIR", os.path.join(ROOT, ".run")), "servers", "servers.json")
KiB, MiB = 1 << 10, 1 << 20
# (count, smallest, largest): ~1.1 GiB in ~330 files
SIZES = [(200, 64 * KiB, 1 * MiB), (100, 1 * MiB, 6 * MiB), (24, 8 * MiB, 24 * MiB), (3, 100 * MiB, 160 * MiB)]


def servers():
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "test-servers"), "up", "webdav"], check=True,
                   stdout=subprocess.DEVNULL)
    with open(SERVERS) as handle:
        return json.load(handle)


def tree():
    """The benchmark tree and its report, made once and kept in .run/bench."""
    base = os.path.join(BENCH_DIR, "scan-upload")
    info_path = os.path.join(base, "info.json")
    if os.path.exists(info_path):
        with open(info_path) as handle:
            return json.load(handle)
    shutil.rmtree(base, ignore_errors=True)
    root = os.path.join(base, "tree")
    rng = random.Random(15)
    total = files = 0
    print("building a %d-file tree of ~1.1 GiB (once)..." % sum(n for n, _a, _b in SIZES), file=sys.stderr)
    for group, (count, low, high) in enumerate(SIZES):
        directory = os.path.join(root, "srv", "group%d" % group)
        os.makedirs(directory)
        for number in range(count):
            size = rng.randint(low, high)
            with open(os.path.join(directory, "file%04d.bin" % number), "wb") as handle:
                left = size
                while left:
                    piece = min(left, 4 * MiB)
                    handle.write(rng.randbytes(piece))
                    left -= piece
            total += size
            files += 1
    report = os.path.join(base, "report.jsonl.gz")
    args = os.path.join(base, "scan_args.json")
    with open(args, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": {"root": root, "dest": report, "packages": False,
                                           "state_dir": os.path.join(base, "scan-state")}}, handle)
    out = json.loads(timed([sys.executable, SCAN_MODULE, args], env=collection_env())[2])
    if out.get("failed"):
        raise RuntimeError("host_scan failed: %s" % out.get("msg"))
    info = {"root": root, "report": report, "bytes": total, "files": files}
    with open(info_path, "w") as handle:
        json.dump(info, handle)
    return info


def store_root(env, name):
    return os.path.join(env["FERRY_WEBDAV_ROOT"], name)


def run_baseline(info, env):
    name = "bench-baseline-" + secrets.token_hex(4)
    url = "%s%s/tree.tar" % (env["FERRY_WEBDAV_URL"], name)
    command = "tar -cf - -C %s . | curl -sS -f -T - -u %s:%s %s" % (info["root"], env["FERRY_WEBDAV_USER"],
                                                                    env["FERRY_WEBDAV_PASSWORD"], url)
    try:
        return timed(command, shell=True)
    finally:
        shutil.rmtree(store_root(env, name), ignore_errors=True)


def run_ferry(info, env, module_env):
    name = "bench-ferry-" + secrets.token_hex(4)
    work = os.path.join(BENCH_DIR, "scan-upload", "state-" + name)
    args = os.path.join(BENCH_DIR, "scan-upload", "upload_args.json")
    with open(args, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": {
            "report": info["report"], "url": env["FERRY_WEBDAV_URL"], "instance": name,
            "url_username": env["FERRY_WEBDAV_USER"], "url_password": env["FERRY_WEBDAV_PASSWORD"],
            "state_dir": work}}, handle)
    try:
        seconds, rss, out = timed([sys.executable, MODULE, args], env=module_env)
        result = json.loads(out)
        if result.get("failed") or result["bytes"] != info["bytes"]:
            raise RuntimeError("scan_upload did not upload the tree: %s" % out[-2000:])
        return seconds, rss, result
    finally:
        shutil.rmtree(store_root(env, name), ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def main(rounds=3):
    env = servers()
    info = tree()
    module_env = collection_env()
    run_baseline(info, env)
    parts = run_ferry(info, env, module_env)[2]["parts"]  # warm-up: page cache and .pyc files
    base, ferry = [], []
    for index in range(rounds):
        order = [("baseline", lambda: run_baseline(info, env)), ("ferry", lambda: run_ferry(info, env, module_env))]
        for label, func in order if index % 2 == 0 else reversed(order):
            seconds, rss = func()[:2]
            (base if label == "baseline" else ferry).append((seconds, rss))
    ferry_s = median([seconds for seconds, _rss in ferry])
    base_s = median([seconds for seconds, _rss in base])
    result = {
        "object_bytes": info["bytes"],
        "files": info["files"],
        "parts": parts,
        "rounds": rounds,
        "baseline_s": [round(seconds, 2) for seconds, _rss in base],
        "ferry_s": [round(seconds, 2) for seconds, _rss in ferry],
        "baseline_median_s": round(base_s, 2),
        "ferry_median_s": round(ferry_s, 2),
        "baseline_mb_s": round(info["bytes"] / base_s / 1e6, 1),
        "ferry_mb_s": round(info["bytes"] / ferry_s / 1e6, 1),
        "ferry_peak_rss_mib": round(max(rss for _seconds, rss in ferry), 1),
        "target_mb_s_min": 150,
    }
    result["ratio"] = round(ferry_s / base_s, 3)
    result["ok"] = result["ferry_mb_s"] >= result["target_mb_s_min"]
    save_result("scan_upload", result)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
