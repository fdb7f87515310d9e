"""The `yardstick` command's package (pipelines/cli/): each command where its group's module says, the console
script and `python -m pipelines.cli` reaching the same `main`, and what a refused command prints and returns.

Tiers per test: parsing and refusals are `unit`; the command run as a process of its own is `integration`.
"""

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from pipelines.cli import main, parser

ROOT = Path(__file__).resolve().parents[2]
TEST_MATRIX = str(ROOT / "tests" / "matrix.test.yaml")


@pytest.mark.unit
@pytest.mark.parametrize(("argv", "module"), [
    (["variants"], "runs"),
    (["materialize", "v"], "runs"),
    (["recover"], "runs"),
    (["k8s-config"], "runs"),
    (["report"], "results"),
    (["leaderboard"], "results"),
    (["history", "v"], "results"),
    (["regressions"], "results"),
    (["compact"], "results"),
    (["grade", "--benchmark", "arith", "--input", "in", "--output", "out"], "grade"),
    (["bench", "--base-url", "http://x/v1", "--model", "m", "--output", "out"], "bench"),
    (["plan"], "models"),
    (["build-tiny-model", "folder"], "models"),
])
def test_each_command_is_handled_in_its_groups_module(argv, module):
    assert parser().parse_args(argv).handler.__module__ == f"pipelines.cli.{module}"


@pytest.mark.unit
def test_help_lists_every_command_in_its_order(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert ("{variants,history,report,regressions,compact,recover,materialize,leaderboard,grade,bench,plan,"
            "build-tiny-model,k8s-config}") in capsys.readouterr().out


@pytest.mark.unit
def test_the_console_script_is_main():
    (script,) = [point for point in entry_points(group="console_scripts") if point.name == "yardstick"]
    assert script.load() is main


@pytest.mark.unit
@pytest.mark.parametrize(("argv", "message"), [
    (["variants", "nosuch", "--matrix", TEST_MATRIX], "yardstick: unknown variant nosuch; the matrix "),
    (["variants", "--matrix", "/nonexistent/matrix.yaml"], "yardstick: "),
    (["plan", "--gpu", "nosuch", "--matrix", TEST_MATRIX], "yardstick: unknown GPU 'nosuch'; known: "),
    (["bench", "--base-url", "http://x/v1", "--model", "m", "--output", "out", "--concurrency", "one"],
     "yardstick: expected comma-separated numbers, got 'one'"),
])
def test_a_refused_command_says_why_and_exits_2(argv, message, capsys):
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(message)


@pytest.mark.integration
def test_python_dash_m_runs_the_command():
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "variants", "--matrix", TEST_MATRIX],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.split()[:2] == ["tiny-test", "tiny-test-w8a16"]
