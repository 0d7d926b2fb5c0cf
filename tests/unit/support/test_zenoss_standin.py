"""tests/support/zenoss5_standin: the stand-ins for Zenoss's commands record every call in order and keep the live
model the roles' verification reads."""
import json
import os
import subprocess
import sys

STANDIN = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                       "support", "zenoss5_standin", "zenoss_standin.py")


def call(state, *args, stdin="", env=None):
    return subprocess.run([sys.executable, STANDIN, "--state", str(state), *args], input=stdin, text=True,
                          capture_output=True, timeout=60, env=dict(os.environ, **(env or {})), check=False)


def test_calls_are_logged_in_order_and_the_model_follows(tmp_path):
    state = tmp_path / "z5"
    components = tmp_path / "componentList.txt"
    components.write_text("### components for /zport/dmd/Devices/Server/Linux/devices/web01\n"
                          "/zport/dmd/Devices/Server/Linux/devices/web01/os/interfaces/eth0\n")
    assert call(state, "model", "--components", str(components)).returncode == 0
    assert call(state, "zeneventserver-create-db", "--update_schema_only").returncode == 0
    removed = call(state, "zendmd", "--commit", "--script=/dev/stdin",
                   stdin="for name in [\"ZenPacks.zenoss.AutoTune\"]:\n    pass\n")
    assert removed.stdout == "Removed ZenPacks.zenoss.AutoTune\n"
    assert call(state, "zenmigrate").returncode == 0
    installed = call(state, "zenpack", "--install", "ZenPacks.zenoss.LinuxMonitor")
    assert "Successfully Installed ZenPack ZenPacks.zenoss.LinuxMonitor" in installed.stdout
    listed = call(state, "zenpack", "--list").stdout.splitlines()
    assert listed[1].split()[0] == "ZenPacks.zenoss.LinuxMonitor"
    lister = call(state, "zendmd", "--script=/dev/stdin", stdin="d.getMonitoredComponents()")
    assert lister.stdout.splitlines() == ["/zport/dmd/Devices/Server/Linux/devices/web01/os/interfaces/eth0"]
    tools = [json.loads(line)["tool"] for line in (state / "calls.jsonl").read_text().splitlines()]
    assert tools == ["model", "zeneventserver-create-db", "zendmd", "zenmigrate", "zenpack", "zenpack", "zendmd"]


def test_refusals_and_injected_failures(tmp_path):
    state = tmp_path / "z5"
    assert call(state, "zeneventserver-create-db").returncode == 2  # would drop the events database
    assert call(state, "zendmd", stdin="ZenPacks.zenoss.X").returncode == 2  # no --commit
    assert call(state, "--fail", "zenmigrate:2", "zenmigrate").returncode == 0
    failed = call(state, "--fail", "zenmigrate:2", "zenmigrate")
    assert failed.returncode == 3 and "failing as asked" in failed.stderr
    assert call(state, "nosuchtool").returncode == 2


def test_zenoss4_model_files_from_the_perf_tree_or_a_model_dir(tmp_path):
    zenhome = tmp_path / "zenhome"
    (zenhome / "perf" / "Devices" / "web01" / "os" / "interfaces" / "eth0").mkdir(parents=True)
    (zenhome / "perf" / "Devices" / "web01" / "os" / "interfaces" / "eth0" / "ifInOctets.rrd").write_bytes(b"")
    (zenhome / "perf" / "Devices" / "web01" / "laLoadInt5.rrd").write_bytes(b"")
    out = tmp_path / "model"
    result = call(tmp_path / "z4", "zendmd4", "--zenhome", str(zenhome), env={"FERRY_ZENOSS_MODEL_DIR": str(out)})
    assert result.returncode == 0, result.stderr
    assert (out / "rrdpath.map").read_text().splitlines() == [
        "Devices/web01|/zport/dmd/Devices/Server/Linux/devices/web01",
        "Devices/web01/os/interfaces/eth0|/zport/dmd/Devices/Server/Linux/devices/web01/os/interfaces/eth0"]
    assert (out / "componentList.txt").read_text().splitlines()[1].endswith("/web01/os/interfaces/eth0")
    copied = tmp_path / "copied"
    result = call(tmp_path / "z4", "zendmd4", "--model", str(out), env={"FERRY_ZENOSS_MODEL_DIR": str(copied)})
    assert result.returncode == 0 and (copied / "rrdpath.map").read_text() == (out / "rrdpath.map").read_text()
    assert call(tmp_path / "z4", "zendmd4", "--zenhome", str(zenhome)).returncode == 2  # no output directory
