"""Every archive of every whisper file of a converted NAV tree against rrdtool fetch of its RRD file.

    python compare.py REPO RRD_DIR WHISPER_DIR MAPPING_CSV REL_TOLERANCE

The reference is tests/support/rrd_oracle.py (rrdtool's own fetch, nothing of the converter) and the whisper
files are read raw. Names: the mapping file's (read with the csv module, absolute paths under RRD_DIR), else
NAV's escaping of the path elements and the data source. Each RRD's AVERAGE archives, one per resolution (the
longest of equals), must be the whisper file's archives, no more; gauges hold fetch's values times the mapping's
scale, stamped at interval starts (equal, or within REL_TOLERANCE relative for values read from dumps), rebuilt
counters rise by rate x step between consecutive known points. No whisper file may be there that no data source
accounts for. Prints {"files": ..., "whisper_files": ..., "archives": ..., "values": ...}.
"""

import csv
import json
import math
import os
import re
import struct
import sys

import rrdtool
import whisper

REPO, RRD_DIR, WHISPER_DIR, MAPPING, TOLERANCE = sys.argv[1:6]
sys.path.insert(0, REPO)
from tests.support import rrd_oracle  # noqa: E402  pylint: disable=wrong-import-position

COUNTERS = ("DERIVE", "COUNTER", "ABSOLUTE")
TOLERANCE = float(TOLERANCE)


def mapping():
    names = {}
    with open(MAPPING, newline="") as handle:
        rows = csv.reader(handle)
        next(rows)  # the header
        for path, ds, metric, scale in rows:
            names[(os.path.relpath(path, RRD_DIR), ds)] = (metric, float(scale) if scale else 1.0)
    return names


def default_metric(relative, ds):
    parts = relative[:-len(".rrd")].split("/") + [ds]
    return ".".join(re.sub(r"[./ (),]", "_", part) for part in parts)


def slots(path, spp):
    """{timestamp: value} of one archive, only the slots whisper finds its points in."""
    info = whisper.info(path)
    archive = next(a for a in info["archives"] if a["secondsPerPoint"] == spp)
    with open(path, "rb") as handle:
        handle.seek(archive["offset"])
        data = handle.read(archive["size"])
    records = [struct.unpack("!Ld", data[i:i + 12]) for i in range(0, len(data), 12)]
    base = records[0][0]
    return dict((stamp, value) for index, (stamp, value) in enumerate(records)
                if stamp and ((stamp - base) // spp) % archive["points"] == index)


def close(a, b, magnitude=0.0):
    return abs(a - b) <= max(TOLERANCE, 1e-9 if magnitude else 0.0) * max(abs(a), abs(b)) + 4 * math.ulp(magnitude)


def main():
    names = mapping()
    expected_files = set()
    counts = {"files": 0, "whisper_files": 0, "archives": 0, "values": 0}
    for root, _dirs, files in os.walk(RRD_DIR):
        for name in sorted(files):
            path = os.path.join(root, name)
            relative = os.path.relpath(path, RRD_DIR)
            info = rrdtool.info(path)
            sources = sorted({key[3:key.index("]")] for key in info if key.startswith("ds[")},
                             key=lambda ds: info["ds[%s].index" % ds])
            best = {}
            for rra in rrd_oracle.archives(path):
                if rra["cf"] == "AVERAGE" and rra["rows"] > best.get(rra["step"], {"rows": -1})["rows"]:
                    best[rra["step"]] = rra
            counts["files"] += 1
            for column, ds in enumerate(sources):
                metric, scale = names.get((relative, ds), (default_metric(relative, ds), 1.0))
                wsp = os.path.join(WHISPER_DIR, *metric.split(".")) + ".wsp"
                expected_files.add(wsp)
                layout = [(a["secondsPerPoint"], a["points"]) for a in whisper.info(wsp)["archives"]]
                assert layout == [(step, best[step]["rows"]) for step in sorted(best)], (wsp, layout)
                counter = info["ds[%s].type" % ds] in COUNTERS
                for step in sorted(best):
                    expected = dict((end - step, values[column] * scale)
                                    for end, values in rrd_oracle.fetch_archive(path, "AVERAGE", step, best[step]["rows"])
                                    if values[column] is not None)
                    got = slots(wsp, step)
                    assert set(got) == set(expected), (wsp, step, sorted(set(got) ^ set(expected))[:5])
                    stamps = sorted(got)
                    if counter:  # each interval adds rate x step: consecutive known points differ by that
                        for before, after in zip(stamps, stamps[1:]):
                            assert close(got[after] - got[before], expected[after] * step, got[after]), (wsp, step, after)
                    else:
                        for stamp in stamps:
                            assert got[stamp] == expected[stamp] or close(got[stamp], expected[stamp]), (wsp, step, stamp)
                    counts["archives"] += 1
                    counts["values"] += len(stamps)
                counts["whisper_files"] += 1
    found = set(os.path.join(root, name) for root, _dirs, files in os.walk(WHISPER_DIR) for name in files)
    assert found == expected_files, sorted(found ^ expected_files)[:10]
    print(json.dumps(counts))


main()
