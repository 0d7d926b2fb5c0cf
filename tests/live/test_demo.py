"""`make demo` as a user runs it: the quickstart on a generated bundle, with a local VictoriaMetrics."""
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_demo(demo_dir):
    env = dict(os.environ, FERRY_DEMO_DIR=str(demo_dir))
    return subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh")], env=env, capture_output=True, text=True,
                          timeout=600, check=False)


def recap(output):
    return dict((key, int(value)) for key, value in re.findall(r"\b(ok|changed|failed)=(\d+)", output.split("PLAY RECAP")[-1]))


def test_demo_converts_sends_and_counts_the_performance_data_then_changes_nothing(servers, tmp_path):
    first = run_demo(tmp_path / "demo")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "verified      yes: md5, dmd uuid and RRD count match the generated bundle" in first.stdout
    counted = re.findall(r"(\d+)\s+points\s+sent\s+to\s+http://127\.0\.0\.1:\d+,\s+(\d+)\s+counted\s+there", first.stdout)
    assert len(counted) == 2 and all(sent == found and int(sent) > 0 for sent, found in counted)  # perf + collector
    assert recap(first.stdout)["changed"] > 0 and recap(first.stdout)["failed"] == 0
    again = run_demo(tmp_path / "demo")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert recap(again.stdout)["changed"] == 0
    assert len(re.findall(r"counted\s+there\s+by\s+an\s+earlier", again.stdout)) == 2
