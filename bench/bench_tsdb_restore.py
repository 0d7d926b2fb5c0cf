"""tsdb_restore into VictoriaMetrics against OpenKilda's restore strategy, side by side, same points.

Baseline: kilda's strategy, 4096-byte requests, no gzip, one connection (the same writer with those
limits, so only the strategy differs). ferry: the module's defaults. Both into the project's test
VictoriaMetrics (scripts/test-servers), each round on fresh metric names so no point is a duplicate.
Points: >= 1M, 3 tags each (~110 B of JSON), built once into .run/bench/points.
"""

import json
import os
import resource
import subprocess
import sys
import time

from common import BENCH_DIR, ROOT, collection_env, save_result

POINTS = int(os.environ.get("FERRY_BENCH_POINTS", "1000000"))
SERIES = 250
HOUR = 3600000


def servers():
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "test-servers"), "up", "vm"], check=True,
                   stdout=subprocess.DEVNULL)
    with open(os.path.join(os.environ.get("FERRY_RUN_DIR", os.path.join(ROOT, ".run")), "servers",
                           "servers.json")) as handle:
        return json.load(handle)


def build_points(tsdb, directory, round_name):
    """POINTS points over 4 hourly batches, metric names unique to this round."""
    base = (int(time.time() * 1000) // 86400000 - 3) * 86400000
    per_series = POINTS // SERIES // 4
    os.makedirs(directory, exist_ok=True)
    for hour in range(4):
        writer = tsdb.BatchWriter(directory, tsdb.batch_name(base + hour * HOUR, base + (hour + 1) * HOUR))
        for series in range(SERIES):
            tags = (("dc", "dc%d" % (series % 3)), ("port", str(series % 48)), ("switchid", "00:00:%04x" % series))
            metric = "bench.%s.metric-%d" % (round_name, series % 10)
            for index in range(per_series):
                writer.add(metric, tags, base + hour * HOUR + index * (HOUR // per_series), index * 7 + series)
            writer.end_frame()
        writer.finish()


def run(label, limits, env_urls, tsdb, transfer, remote):
    directory = os.path.join(BENCH_DIR, "points-" + label)
    subprocess.run(["rm", "-rf", directory], check=True)
    build_points(tsdb, directory, "%s%d" % (label, int(time.time())))
    writer = remote.PutWriter(env_urls["FERRY_VM_OPENTSDB_URL"], connections=limits["connections"],
                              use_gzip=limits["compress"], details=False)
    started = time.perf_counter()
    stats, plan = transfer.restore(directory, writer, limits["request_size_limit"], limits["points_per_request"])
    seconds = time.perf_counter() - started
    client = remote.HttpClient(env_urls["FERRY_VM_URL"])
    report = transfer.verify("victoriametrics", client, plan, timeout=60)
    subprocess.run(["rm", "-rf", directory], check=True)
    return {"points": plan["points"], "seconds": round(seconds, 2), "points_per_s": round(plan["points"] / seconds),
            "requests": stats["requests"], "verified_points": report["found_points"]}


def main():
    collection_env()
    # pylint: disable=import-outside-toplevel
    from ansible_collections.ferry.migrate.plugins.module_utils import tsdb, tsdb_remote, tsdb_transfer
    urls = servers()
    kilda = {"connections": 1, "compress": False, "request_size_limit": 4096, "points_per_request": 10 ** 6}
    ferry = {"connections": 4, "compress": False, "request_size_limit": 524288, "points_per_request": 2000}
    baseline = run("kilda", kilda, urls, tsdb, tsdb_transfer, tsdb_remote)
    ours = run("ferry", ferry, urls, tsdb, tsdb_transfer, tsdb_remote)
    result = {"baseline_kilda": baseline, "ferry": ours,
              "ratio": round(ours["points_per_s"] / float(baseline["points_per_s"]), 2),
              "target_ratio_min": 10, "target_points_per_s_min": 250000,
              "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)}
    result["ok"] = result["ratio"] >= 10 and ours["points_per_s"] >= 250000
    save_result("tsdb_restore", result)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
