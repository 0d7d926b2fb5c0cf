"""Helpers shared by the benchmarks: timing a command side by side, peak memory, result files."""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_DIR = os.environ.get("FERRY_RUN_DIR", os.path.join(ROOT, ".run"))
BENCH_DIR = os.path.join(RUN_DIR, "bench")
COLLECTIONS = os.path.join(RUN_DIR, "collections")


def collection_env():
    """Environment in which the collection imports in place (the root conftest.py makes the link)."""
    sys.path.insert(0, ROOT)
    import conftest  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([COLLECTIONS, ROOT, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def timed(argv, cwd=None, env=None, shell=False):
    """Run a command to completion; returns (seconds, peak RSS of it and its children in MiB, stdout)."""
    subprocess.run(["sync"], check=True)  # write back the previous run's dirty pages first
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, shell=shell, stdout=out, stderr=err,
                                executable="/bin/bash" if shell else None)
        status, usage = os.wait4(proc.pid, 0)[1:]
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError("%s failed (%d): %s" % (argv, proc.returncode, err.read().decode()[-2000:]))
        return elapsed, usage.ru_maxrss / 1024.0, out.read().decode()


def fresh_dir(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def median(values):
    return statistics.median(values)


def save_result(name, result):
    os.makedirs(BENCH_DIR, exist_ok=True)
    path = os.path.join(BENCH_DIR, "results.json")
    try:
        with open(path) as handle:
            results = json.load(handle)
    except (OSError, ValueError):
        results = {}
    results[name] = result
    with open(path + ".tmp", "w") as handle:
        json.dump(results, handle, indent=2)
    os.replace(path + ".tmp", path)
