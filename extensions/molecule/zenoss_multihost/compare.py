"""verify.yml's checks, read from the servers and files themselves (nothing of the collection's engine).

    compare.py dbs SERVERS_JSON PREFIX        Zenoss 4's databases on mariadb against Zenoss 5's on mariadb-target
    compare.py perf VM_URL UUID ZENHOME ARCHIVE...   the RRD files' points on VictoriaMetrics

Prints a JSON report; exits 1 when something differs.
"""
import json
import math
import os
import re
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request

import pymysql
import rrdtool

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tests", "support"))
from rrd_oracle import archives, fetch_archive  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
from tools.gen_zenoss_db import describe  # noqa: E402


def _connect(servers, prefix):
    return pymysql.connect(host=servers[prefix + "_HOST"], port=int(servers[prefix + "_PORT"]),
                           user=servers[prefix + "_USER"], password=servers[prefix + "_PASSWORD"], charset="utf8mb4")


def dbs(servers_json, prefix):
    servers = json.load(open(servers_json))
    report, bad = {}, []
    with _connect(servers, "FERRY_MARIADB") as source, _connect(servers, "FERRY_MARIADB_TARGET") as target:
        for name in ("zenoss_zep", "zodb", "zodb_session"):
            with source.cursor() as cursor:
                was = describe(cursor, prefix + name)
            with target.cursor() as cursor:
                now = describe(cursor, prefix + name)
            schema_only = name == "zodb_session"  # zenbackup dumps it --no-data
            same = {
                "tables": sorted(was["tables"]) == sorted(now["tables"]) and len(now["tables"]) > 0,
                "rows": (all(count == 0 for count in now["tables"].values()) if schema_only
                         else was["tables"] == now["tables"]),
                "checksums": schema_only or was["checksums"] == now["checksums"],
                "triggers": was["triggers"] == now["triggers"],
                "routines": was["routines"] == now["routines"],
                "views": was["views"] == now["views"],
            }
            report[name] = {"same": same, "rows": sum(now["tables"].values()), "tables": len(now["tables"]),
                            "triggers": now["triggers"], "routines": now["routines"], "views": now["views"]}
            bad += ["%s %s" % (name, key) for key, ok in same.items() if not ok]
    report["differences"] = bad
    return report, not bad


def _series(vm_url, uuid):
    query = urllib.parse.urlencode({"match[]": '{zenoss_tenant_id="%s"}' % uuid, "start": "0"})
    urllib.request.urlopen(urllib.request.Request(vm_url + "/internal/force_flush", method="POST")).read()
    body = urllib.request.urlopen(vm_url + "/api/v1/export?" + query, timeout=300).read().decode()
    found = {}
    for line in body.splitlines():
        series = json.loads(line)
        labels = series["metric"]
        key = (labels["__name__"], labels.get("key"), labels.get("device"))
        found.setdefault(key, {}).update(zip((stamp // 1000 for stamp in series["timestamps"]), series["values"]))
    return found


def _rrd_files(root):
    devices = os.path.join(root, "perf", "Devices")
    for directory, dirs, files in os.walk(devices):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".rrd"):
                yield os.path.relpath(os.path.join(directory, name), devices), os.path.join(directory, name)


def _escape(text):
    return re.sub(r"[^0-9a-zA-Z\-_./]", "-", text)


def _expected(relative):
    """(metric, key, device) of a file below perf/Devices, as Zenoss 5 names them (key: 'Devices/' + the path
    below Devices, which is the mapped path after 'devices/' for the generated rrdpath.map)."""
    parts = relative.split("/")
    device, base = parts[0], parts[-1][:-len(".rrd")]
    if base.endswith("_GAUGE"):
        base = base[:-len("_GAUGE")]
    return _escape(device + "/" + base), _escape("Devices/" + "/".join(parts[:-1])), _escape(device)


def perf(vm_url, uuid, zenhome, archive_paths):
    found = _series(vm_url, uuid)
    report = {"series": len(found), "points": sum(len(points) for points in found.values()), "files": 0,
              "gauge_values_checked": 0, "differences": [], "collector_series": 0}
    bad_keys = sorted({key for _, key, _ in found if not key or not key.startswith("Devices/") or "zport" in key})
    report["bad_keys"] = bad_keys[:10]
    with tempfile.TemporaryDirectory() as tmp:
        roots = [("local", zenhome)]
        for number, archive in enumerate(archive_paths):
            root = os.path.join(tmp, str(number))
            with tarfile.open(archive) as outer:
                inner = outer.extractfile("zenbackup/perf.tar")
                with tarfile.open(fileobj=inner) as perf_tar:
                    perf_tar.extractall(root, filter="data")
            roots.append(("collector", root))
        for kind, root in roots:
            for relative, path in _rrd_files(root):
                report["files"] += 1
                expected = _expected(relative)
                points = found.get(expected)
                if points is None:
                    report["differences"].append("no series for %s (%s)" % (relative, expected))
                    continue
                report["collector_series"] += kind == "collector"
                if rrdtool.info(path)["ds[ds0].type"] != "GAUGE":
                    continue
                finest = [rra for rra in archives(path) if rra["cf"] == "AVERAGE"][0]
                for stamp, values in fetch_archive(path, "AVERAGE", finest["step"], finest["rows"]):
                    if values[0] is None:
                        continue
                    report["gauge_values_checked"] += 1
                    got = points.get(stamp)
                    if got is None or not math.isclose(got, values[0], rel_tol=1e-7, abs_tol=1e-12):
                        report["differences"].append("%s at %d: %r on the target, %r in the RRD"
                                                     % (relative, stamp, got, values[0]))
    ok = (not bad_keys and not report["differences"] and report["gauge_values_checked"] > 0
          and report["collector_series"] > 0)
    report["differences"] = report["differences"][:20]
    return report, ok


def main(argv):
    if argv[0] == "dbs":
        report, ok = dbs(*argv[1:3])
    else:
        report, ok = perf(argv[1], argv[2], argv[3], argv[4:])
    print(json.dumps(report, sort_keys=True))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
