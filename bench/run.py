"""`make bench`: run every benchmark, print a table of ratios against the issue's baselines.

Results also go to .run/bench/results.json. Usage: python bench/run.py [NAME ...]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_bundle_check  # noqa: E402  pylint: disable=wrong-import-position
import bench_bundle_create  # noqa: E402  pylint: disable=wrong-import-position
import bench_host_scan  # noqa: E402  pylint: disable=wrong-import-position
import bench_mongo_backup  # noqa: E402  pylint: disable=wrong-import-position
import bench_mongo_restore  # noqa: E402  pylint: disable=wrong-import-position
import bench_sql_import  # noqa: E402  pylint: disable=wrong-import-position
import bench_rrd  # noqa: E402  pylint: disable=wrong-import-position
import bench_scan_upload  # noqa: E402  pylint: disable=wrong-import-position
import bench_tsdb_dump  # noqa: E402  pylint: disable=wrong-import-position
import bench_tsdb_restore  # noqa: E402  pylint: disable=wrong-import-position

BENCHMARKS = {
    "bundle_check": bench_bundle_check.main,
    "bundle_create": bench_bundle_create.main,
    "host_scan": bench_host_scan.main,
    "mongo_backup": bench_mongo_backup.main,
    "mongo_restore": bench_mongo_restore.main,
    "sql_import": bench_sql_import.main,
    "rrd": bench_rrd.main,
    "scan_upload": bench_scan_upload.main,
    "tsdb_dump": bench_tsdb_dump.main,
    "tsdb_restore": bench_tsdb_restore.main,
}


def main(names):
    failed = []
    for name in names or sorted(BENCHMARKS):
        result = BENCHMARKS[name]()
        print("%-14s %s" % (name, "  ".join("%s=%s" % item for item in sorted(result.items()))))
        if not result.get("ok"):
            failed.append(name)
    if failed:
        print("below target: %s" % ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
