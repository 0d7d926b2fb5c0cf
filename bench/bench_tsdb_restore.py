"""tsdb_restore into VictoriaMetrics against OpenKilda's restore strategy, side by side, same points,
and what verifying the transfer costs.

Baseline: kilda's strategy, 4096-byte requests, no gzip, one connection (the same writer with those
limits, so only the strategy differs). ferry: the module's defaults. Both into the project's test
VictoriaMetrics (scripts/test-servers), each round on fresh metric names so no point is a duplicate.
Points: >= 1M, 3 tags each (~110 B of JSON), built once into .run/bench/points.

Verification: right after each transfer, ``tsdb_transfer.verify`` as the module runs it, timed (counting
first asks VictoriaMetrics to make what it acknowledged searchable, ``/internal/force_flush``). After
ferry's, the same counts are also taken the two other ways, timed: the export counted without decoding
it, and the export decoded point by point. Another transfer is verified the way it was before issue 10
(every point read back from the export and decoded, no flush), timed. A last transfer withholds one
point of one series from what it sends (the manifests still count it) and must fail verification.
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


class Withholding:
    """A put writer that drops the first point of its first request: the target ends up one point short
    of what the manifests claim, as when a target loses an acknowledged point."""

    def __init__(self, writer):
        self.writer = writer
        self.stats = writer.stats
        self.dropped = None

    def write(self, bodies, on_done=None):
        return self.writer.write(self._drop_one(bodies), on_done)

    def _drop_one(self, bodies):
        for body, count, tag in bodies:
            if self.dropped is None:
                points = json.loads(body)
                self.dropped = points.pop(0)
                body = json.dumps(points).encode("utf-8")
            yield body, count, tag


def transfer(label, limits, urls, modules, withhold=False):
    """Build fresh points, send them; returns (plan, seconds, writer stats, the point withheld)."""
    tsdb, transfer_, remote = modules
    directory = os.path.join(BENCH_DIR, "points-" + label)
    subprocess.run(["rm", "-rf", directory], check=True)
    build_points(tsdb, directory, "%s%d" % (label, int(time.time())))
    writer = remote.PutWriter(urls["FERRY_VM_OPENTSDB_URL"], connections=limits["connections"],
                              use_gzip=limits["compress"], details=False)
    if withhold:
        writer = Withholding(writer)
    started = time.perf_counter()
    stats, plan = transfer_.restore(directory, writer, limits["request_size_limit"], limits["points_per_request"])[:2]
    seconds = time.perf_counter() - started
    subprocess.run(["rm", "-rf", directory], check=True)
    return plan, seconds, stats, writer.dropped if withhold else None


def timed(call):
    started = time.perf_counter()
    value = call()
    return value, round(time.perf_counter() - started, 3)


def metric_ranges(plan):
    ranges = {}
    for manifest in plan["batches"]:
        for metric in manifest["metrics"]:
            first, last = ranges.get(metric, (manifest["first_ts"], manifest["last_ts"]))
            ranges[metric] = (min(first, manifest["first_ts"]), max(last, manifest["last_ts"]))
    return ranges


def verification(plan, client, transfer_, remote):
    """verify() timed as the module runs it right after the transfer, then the same counts taken by
    reading the export two ways, timed."""
    report, verify_s = timed(lambda: transfer_.verify("victoriametrics", client, plan, timeout=60))
    ranges = metric_ranges(plan)
    source = remote.PrometheusSource(client)
    commas, commas_s = timed(lambda: sum(source.export_count(m, first, last) for m, (first, last) in ranges.items()))
    decoded, decoded_s = timed(lambda: sum(len(points) for m, (first, last) in ranges.items()
                                           for points in remote.target_frames("victoriametrics", client, m, first,
                                                                              last + 1)))
    return {"verify_s": verify_s, "verified_points": report["found_points"],
            "export_counted_without_decoding_s": commas_s, "export_counted_points": commas,
            "export_decoded_s": decoded_s, "export_decoded_points": decoded}


def count_as_before(remote):
    """Verification's counting before issue 10: every point of the range read back and decoded."""
    def count(kind, client, metric_ranges, retries=5):
        return dict((metric, sum(len(points) for points in remote.target_frames(kind, client, metric, first, last + 1,
                                                                                retries)))
                    for metric, (first, last) in metric_ranges.items())
    return count


def verified_as_before(urls, limits, modules):
    """A fresh transfer verified with the counting it had before issue 10, timed."""
    _tsdb, transfer_, remote = modules
    plan, seconds, _stats, _dropped = transfer("before", limits, urls, modules)
    current, transfer_.count_on_target = transfer_.count_on_target, count_as_before(remote)
    try:
        report, verify_s = timed(lambda: transfer_.verify("victoriametrics", remote.HttpClient(urls["FERRY_VM_URL"]),
                                                          plan, timeout=60))
    finally:
        transfer_.count_on_target = current
    return {"seconds": round(seconds, 2), "verify_s": verify_s, "verify_to_transfer": round(verify_s / seconds, 3),
            "verified_points": report["found_points"]}


def missing_point(urls, limits, modules):
    """A transfer one point short must fail verification, naming the metric one point short."""
    tsdb, transfer_, remote = modules
    plan, _seconds, _stats, dropped = transfer("withheld", limits, urls, modules, withhold=True)
    client = remote.HttpClient(urls["FERRY_VM_URL"])
    try:
        transfer_.verify("victoriametrics", client, plan, timeout=3)
    except transfer_.VerificationFailed as exc:
        short = exc.report["short"]
        caught = list(short) == [dropped["metric"]] and [want - got for want, got in short.values()] == [1]
        return {"withheld": dropped, "caught": caught, "message": str(exc)[:300]}
    return {"withheld": dropped, "caught": False, "message": "verification passed"}


def run(label, limits, urls, modules):
    plan, seconds, stats, _dropped = transfer(label, limits, urls, modules)
    return plan, {"points": plan["points"], "seconds": round(seconds, 2),
                  "points_per_s": round(plan["points"] / seconds), "requests": stats["requests"]}


def main():
    collection_env()
    # pylint: disable=import-outside-toplevel
    from ansible_collections.ferry.migrate.plugins.module_utils.tsdb import points as tsdb
    from ansible_collections.ferry.migrate.plugins.module_utils.tsdb import remote as tsdb_remote
    from ansible_collections.ferry.migrate.plugins.module_utils.tsdb import transfer as tsdb_transfer
    modules = (tsdb, tsdb_transfer, tsdb_remote)
    urls = servers()
    kilda = {"connections": 1, "compress": False, "request_size_limit": 4096, "points_per_request": 10 ** 6}
    ferry = {"connections": 4, "compress": False, "request_size_limit": 524288, "points_per_request": 2000}
    client = tsdb_remote.HttpClient(urls["FERRY_VM_URL"])
    baseline_plan, baseline = run("kilda", kilda, urls, modules)
    report, baseline["verify_s"] = timed(lambda: tsdb_transfer.verify("victoriametrics", client, baseline_plan,
                                                                      timeout=60))
    baseline["verified_points"] = report["found_points"]
    plan, ours = run("ferry", ferry, urls, modules)
    ours.update(verification(plan, client, tsdb_transfer, tsdb_remote))
    ours["verify_to_transfer"] = round(ours["verify_s"] / ours["seconds"], 3)
    result = {"baseline_kilda": baseline, "ferry": ours, "verified_as_before": verified_as_before(urls, ferry, modules),
              "missing_point": missing_point(urls, ferry, modules),
              "ratio": round(ours["points_per_s"] / float(baseline["points_per_s"]), 2),
              "target_ratio_min": 10, "target_points_per_s_min": 250000, "target_verify_to_transfer_max": 0.3,
              "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)}
    result["ok"] = (result["ratio"] >= 10 and ours["points_per_s"] >= 250000 and ours["verify_to_transfer"] <= 0.3
                    and ours["verified_points"] == ours["export_counted_points"] == ours["export_decoded_points"]
                    == ours["points"] and result["missing_point"]["caught"])
    save_result("tsdb_restore", result)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
