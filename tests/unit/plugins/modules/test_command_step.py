# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""command_step: an application's command as a journalled step (the Zenoss roles' zenmigrate, zenpack --install):
run once, skipped by a rerun with the same inputs, its output logged and counted, failures named."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import sys

import pytest
import yaml

from ansible_collections.ferry.migrate.plugins.module_utils.core.common import FerryError
from ansible_collections.ferry.migrate.plugins.module_utils.core.journal import Journal
from ansible_collections.ferry.migrate.plugins.modules import command_step

PY = sys.executable


def params(tmp_path, **values):
    base = dict((name, option.get("default")) for name, option in command_step.argument_spec().items())
    base.update(state_dir=str(tmp_path / "state"), step="app_cmd")
    base.update(values)
    return base


def counter_script(tmp_path):
    """A command that appends a line to runs.txt each time it runs and prints its stdin and two 'ok' lines."""
    script = tmp_path / "cmd.py"
    script.write_text("import sys\nopen(sys.argv[1], 'a').write('ran\\n')\nprint(sys.stdin.read().strip())\n"
                      "print('ok one')\nprint('ok two')\nsys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)\n")
    return [PY, str(script), str(tmp_path / "runs.txt")]


def test_runs_once_then_skips_with_the_recorded_result(tmp_path):
    argv = counter_script(tmp_path)
    first = command_step.run(params(tmp_path, argv=argv, stdin="hello\n", count_pattern="^ok"), False)
    assert (first["decision"], first["changed"], first["rc"], first["count"]) == ("run", True, 0, 2)
    assert first["stdout_lines"] == ["hello", "ok one", "ok two"]
    assert open(first["log"], "rb").read() == b"hello\nok one\nok two\n"
    again = command_step.run(params(tmp_path, argv=argv, stdin="hello\n", count_pattern="^ok"), False)
    assert (again["decision"], again["changed"], again["count"]) == ("skip", False, 2)
    assert (tmp_path / "runs.txt").read_text() == "ran\n"
    record = Journal(str(tmp_path / "state")).step("app_cmd").record()
    assert record["status"] == "complete" and record["counts"] == {"matched": 2}
    # other inputs: runs again
    other = command_step.run(params(tmp_path, argv=argv, stdin="hello\n", inputs={"bundle": "2"}), False)
    assert other["decision"] == "run" and (tmp_path / "runs.txt").read_text() == "ran\nran\n"


def test_check_mode_predicts_and_runs_nothing(tmp_path):
    argv = counter_script(tmp_path)
    predicted = command_step.run(params(tmp_path, argv=argv), True)
    assert (predicted["decision"], predicted["changed"]) == ("run", True)
    assert not (tmp_path / "runs.txt").exists() and not (tmp_path / "state").exists()
    command_step.run(params(tmp_path, argv=argv), False)
    assert command_step.run(params(tmp_path, argv=argv), True)["changed"] is False


def test_a_failing_command_fails_the_step_naming_status_and_output_then_runs_again(tmp_path):
    argv = counter_script(tmp_path) + ["3"]
    with pytest.raises(FerryError, match=r"exited with status 3 \(last lines: .*ok two\)"):
        command_step.run(params(tmp_path, argv=argv), False)
    assert Journal(str(tmp_path / "state")).step("app_cmd").record()["status"] == "failed"
    with pytest.raises(FerryError):
        command_step.run(params(tmp_path, argv=argv), False)
    assert (tmp_path / "runs.txt").read_text() == "ran\nran\n"  # a failed step is not skipped


def test_expect_count_mismatch_fails(tmp_path):
    with pytest.raises(FerryError, match=r"printed 2 line\(s\) matching '\^ok', expected 1"):
        command_step.run(params(tmp_path, argv=counter_script(tmp_path), count_pattern="^ok", expect_count=1), False)


def test_timeout_kills_the_command(tmp_path):
    argv = [PY, "-c", "import time; print('started', flush=True); time.sleep(30)"]
    with pytest.raises(FerryError, match="ran longer than 1 s and was killed"):
        command_step.run(params(tmp_path, argv=argv, timeout=1), False)


def test_non_utf8_output_and_a_missing_command(tmp_path):
    argv = [PY, "-c", "import sys; sys.stdout.buffer.write(b'caf\\xe9\\nline\\n')"]
    result = command_step.run(params(tmp_path, argv=argv), False)
    assert result["stdout_lines"] == ["caf\ufffd", "line"]
    assert open(result["log"], "rb").read() == b"caf\xe9\nline\n"  # the log keeps the bytes
    with pytest.raises(FerryError, match="cannot run /nonexistent/tool"):
        command_step.run(params(tmp_path, argv=["/nonexistent/tool"], step="other"), False)


def test_environment_reaches_the_command_and_output_lines_bounds_the_tail(tmp_path):
    argv = [PY, "-c", "import os\nfor n in range(5): print(os.environ['FERRY_X'], n)"]
    result = command_step.run(params(tmp_path, argv=argv, environment={"FERRY_X": "v"}, output_lines=2), False)
    assert result["stdout_lines"] == ["v 3", "v 4"]


@pytest.mark.parametrize("bad, message", [
    ({"argv": []}, "argv must name a command"),
    ({"expect_count": 1}, "expect_count needs count_pattern"),
    ({"count_pattern": "("}, "count_pattern is no regular expression"),
    ({"timeout": 0}, "timeout=0 is out of range"),
    ({"output_lines": 10001}, "output_lines=10001 is out of range"),
])
def test_bad_options_are_refused_before_anything_is_recorded(tmp_path, bad, message):
    values = dict({"argv": [PY, "-c", "pass"]}, **bad)
    with pytest.raises(FerryError, match=message):
        command_step.run(params(tmp_path, **values), False)
    assert not (tmp_path / "state").exists()


def test_the_documentation_matches_the_spec():
    doc = yaml.safe_load(command_step.DOCUMENTATION)
    spec = command_step.argument_spec()
    own = dict((name, option) for name, option in doc["options"].items())
    assert set(own) | {"state_dir", "step", "force"} == set(spec)
    for name, option in own.items():
        assert option["type"] == spec[name]["type"], name
        assert option.get("default") == spec[name].get("default"), name
    assert spec["environment"]["no_log"] is True  # environment values are kept out of the output
