"""tsdb_dump from the OpenTSDB emulator: queries sent by density-sized frames against OpenKilda's
fixed 180-second frames, for the same >= 1M points, and the dump's speed and peak memory.

kilda's tool sends one query per metric per 180 s frame over the whole range, whatever the data;
that count is computed from the range (sending 67k+ real requests would only measure the emulator).
ferry's count is what the emulator received. The emulator runs in this process (a thread), so the
points/s figure is a lower bound. Also timed: 200 keep-alive queries with a 10-point answer, the
emulator's own cost per request (a small answer used to wait ~40 ms for the client's delayed ACK).
"""

import json
import math
import os
import resource
import shutil
import sys
import time

from common import BENCH_DIR, ROOT, collection_env, save_result

POINTS = int(os.environ.get("FERRY_BENCH_POINTS", "1000000"))
METRICS, SERIES_PER_METRIC, DAYS = 20, 5, 7
DAY = 86400000


def main():
    collection_env()
    sys.path.insert(0, ROOT)
    # pylint: disable=import-outside-toplevel
    from tests.support.otsdb_emulator import OpenTSDBEmulator
    from ansible_collections.ferry.migrate.plugins.module_utils.core import httpclient
    from ansible_collections.ferry.migrate.plugins.module_utils.tsdb import points as tsdb
    from ansible_collections.ferry.migrate.plugins.module_utils.tsdb import remote as tsdb_remote
    from ansible_collections.ferry.migrate.plugins.module_utils.tsdb import transfer as tsdb_transfer
    start = (int(time.time() * 1000) // DAY - DAYS - 1) * DAY
    stop = start + DAYS * DAY
    per_series = POINTS // (METRICS * SERIES_PER_METRIC)
    step = (stop - start) // per_series
    dest = os.path.join(BENCH_DIR, "dump")
    shutil.rmtree(dest, ignore_errors=True)
    with OpenTSDBEmulator() as emulator:
        emulator.add_points(("bench.m%02d" % m, {"switchid": "00:00:%02x" % s, "port": str(s)}, start + i * step, i)
                            for m in range(METRICS) for s in range(SERIES_PER_METRIC) for i in range(per_series))
        source = tsdb_remote.OpenTSDBSource(httpclient.HttpClient(emulator.url))
        plan = tsdb_transfer.dump_plan(source, start, stop, tsdb.batch_interval_ms("day"))
        before = dict(emulator.requests)
        started = time.perf_counter()
        counts = tsdb_transfer.dump(source, dest, plan)
        seconds = time.perf_counter() - started
        queries = emulator.requests.get("/api/query", 0) - before.get("/api/query", 0)
        largest = max(emulator.answer_points)
        small_query_ms = small_query_time(emulator, httpclient.HttpClient(emulator.url), start)
    shutil.rmtree(dest, ignore_errors=True)
    kilda_queries = METRICS * math.ceil((stop - start) / 180000.0)
    result = {
        "points": counts["points"], "metrics": METRICS, "days": DAYS,
        "ferry_queries": queries, "kilda_180s_frame_queries": kilda_queries,
        "query_ratio": round(kilda_queries / float(queries), 1),
        "ferry_seconds": round(seconds, 2), "ferry_points_per_s": round(counts["points"] / seconds),
        "small_query_ms": small_query_ms, "largest_answer_points": largest, "points_per_query": source.target_points,
        "peak_rss_mib_incl_emulator": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    }
    result["ok"] = (counts["points"] == per_series * METRICS * SERIES_PER_METRIC and queries < kilda_queries
                    and largest <= source.target_points)
    save_result("tsdb_dump", result)
    return result


def small_query_time(emulator, client, start, count=200):
    """Milliseconds per keep-alive POST /api/query answering 10 points."""
    emulator.add_points(("bench.small", {"host": "a"}, start + i, i) for i in range(10))
    body = {"start": start, "end": start + 999, "msResolution": True,
            "queries": [{"aggregator": "none", "metric": "bench.small"}]}
    started = time.perf_counter()
    for _request in range(count):
        client.json("POST", "/api/query", body)
    return round((time.perf_counter() - started) * 1000.0 / count, 2)


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
