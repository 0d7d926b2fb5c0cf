"""A Zenoss 4 -> 5 migration checked from the servers and files themselves (nothing of the collection's engine):
the databases on the source MariaDB against the target's, and the RRD files' points on VictoriaMetrics.

    python tools/zenoss_compare.py dbs SERVERS_JSON PREFIX              the three databases on mariadb and
                                                                        mariadb-target (servers.json's keys)
    python tools/zenoss_compare.py perf VM_URL UUID ZENHOME ARCHIVE...  every RRD file of ZENHOME/perf/Devices and
                                                                        of each remote collector's archive

Prints a JSON report; exits 1 when something differs. Used by the molecule scenario zenoss_multihost and by
`make demo` (tools/zenoss_demo.py prints the same reports as tables).
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
sys.path.insert(0, ROOT)
from rrd_oracle import archives, fetch_archive  # noqa: E402  pylint: disable=wrong-import-position
from tools.gen_zenoss_db import describe  # noqa: E402  pylint: disable=wrong-import-position

__all__ = ["DATABASES", "connect", "compare_databases", "dbs", "perf"]

DATABASES = ("zenoss_zep", "zodb", "zodb_session")
SCHEMA_ONLY = ("zodb_session",)  # zenbackup dumps it --no-data: its tables arrive, its rows must not


def connect(servers, prefix, **options):
    """A PyMySQL connection to the server whose servers.json keys start with ``prefix`` (FERRY_MARIADB...)."""
    return pymysql.connect(host=servers[prefix + "_HOST"], port=int(servers[prefix + "_PORT"]),
                           user=servers[prefix + "_USER"], password=servers[prefix + "_PASSWORD"], charset="utf8mb4",
                           **options)


def compare_databases(source, target, prefix):
    """Each database: describe() on both connections and which parts are the same ({part: bool})."""
    found = {}
    for name in DATABASES:
        with source.cursor() as cursor:
            was = describe(cursor, prefix + name)
        with target.cursor() as cursor:
            now = describe(cursor, prefix + name)
        schema_only = name in SCHEMA_ONLY
        same = {
            "tables": sorted(was["tables"]) == sorted(now["tables"]) and len(now["tables"]) > 0,
            "rows": (all(count == 0 for count in now["tables"].values()) if schema_only
                     else was["tables"] == now["tables"]),
            "checksums": schema_only or was["checksums"] == now["checksums"],
            "triggers": was["triggers"] == now["triggers"],
            "routines": was["routines"] == now["routines"],
            "views": was["views"] == now["views"],
        }
        found[name] = {"source": was, "target": now, "same": same, "schema_only": schema_only}
    return found


def dbs(servers_json, prefix):
    with open(servers_json, encoding="utf-8") as handle:
        servers = json.load(handle)
    with connect(servers, "FERRY_MARIADB") as source, connect(servers, "FERRY_MARIADB_TARGET") as target:
        found = compare_databases(source, target, prefix)
    report, bad = {}, []
    for name, one in found.items():
        now = one["target"]
        report[name] = {"same": one["same"], "rows": sum(now["tables"].values()), "tables": len(now["tables"]),
                        "triggers": now["triggers"], "routines": now["routines"], "views": now["views"]}
        bad += ["%s %s" % (name, key) for key, ok in one["same"].items() if not ok]
    report["differences"] = bad
    return report, not bad


def _series(vm_url, uuid):
    """{(metric, key, device): {epoch seconds: value}} of every series VictoriaMetrics holds for the tenant."""
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


def _perf_roots(zenhome, archive_paths, tmp):
    """("local", $ZENHOME), then ("collector", the perf tree of each remote collector's zenbackup archive)."""
    yield "local", zenhome
    for number, archive in enumerate(archive_paths):
        root = os.path.join(tmp, str(number))
        with tarfile.open(archive) as outer:
            inner = outer.extractfile("zenbackup/perf.tar")
            with tarfile.open(fileobj=inner) as perf_tar:
                perf_tar.extractall(root, filter="data")
        yield "collector", root


def _check_file(path, relative, points, report):
    """Every non-NaN value of the finest AVERAGE archive of a GAUGE file against the series' points."""
    if rrdtool.info(path)["ds[ds0].type"] != "GAUGE":
        return
    finest = [rra for rra in archives(path) if rra["cf"] == "AVERAGE"][0]
    for stamp, values in fetch_archive(path, "AVERAGE", finest["step"], finest["rows"]):
        if values[0] is None:
            continue
        report["gauge_values_checked"] += 1
        got = points.get(stamp)
        if got is None or not math.isclose(got, values[0], rel_tol=1e-7, abs_tol=1e-12):
            report["differences"].append("%s at %d: %r on the target, %r in the RRD"
                                         % (relative, stamp, got, values[0]))


def _zenoss5_key(key):
    """Zenoss 5 reads a series by 'Devices/<path below the device class>', never the /zport/dmd object path."""
    return bool(key) and key.startswith("Devices/") and "zport" not in key


def perf(vm_url, uuid, zenhome, archive_paths):
    found = _series(vm_url, uuid)
    report = {"series": len(found), "points": sum(len(points) for points in found.values()), "files": 0,
              "gauge_values_checked": 0, "differences": [], "collector_series": 0, "key_samples": {}}
    bad_keys = sorted({series[1] for series in found if not _zenoss5_key(series[1])})
    report["bad_keys"] = bad_keys[:10]
    with tempfile.TemporaryDirectory() as tmp:
        for kind, root in _perf_roots(zenhome, archive_paths, tmp):
            for relative, path in _rrd_files(root):
                report["files"] += 1
                expected = _expected(relative)
                points = found.get(expected)
                if points is None:
                    report["differences"].append("no series for %s (%s)" % (relative, expected))
                    continue
                report["collector_series"] += kind == "collector"
                # one file of each kind, with the key Zenoss 5 reads it by (a device's and a component's)
                sample = "%s %s" % (kind, "component" if relative.count("/") > 1 else "device")
                report["key_samples"].setdefault(sample, {"file": relative, "metric": expected[0],
                                                          "key": expected[1], "points": len(points)})
                _check_file(path, relative, points, report)
    ok = (not bad_keys and not report["differences"] and report["gauge_values_checked"] > 0
          and report["collector_series"] > 0)
    report["differences"] = report["differences"][:20]
    return report, ok


def main(argv):
    if argv[:1] == ["dbs"] and len(argv) == 3:
        report, ok = dbs(*argv[1:3])
    elif argv[:1] == ["perf"] and len(argv) >= 4:
        report, ok = perf(argv[1], argv[2], argv[3], argv[4:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(report, sort_keys=True))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
