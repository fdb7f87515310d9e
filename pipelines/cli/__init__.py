"""The `yardstick` command: the parts that stand alone, without the Dagster UI."""

from __future__ import annotations

import argparse
import os
import sys

from assets.benchmarks.sources import BenchmarkDataError
from assets.grading.files import GradeInputError
from assets.grading.sandbox import SandboxUnavailableError
from assets.matrix import MatrixError
from assets.models.memory import PlanError
from pipelines.cli import bench, grade, models, results, runs
from pipelines.cli.common import InputError
from resources.disk import DiskSpaceError

# Each command's subparser, in the order `yardstick --help` lists them; a module per group of commands.
COMMANDS = (runs.add_variants, results.add_history, results.add_report, results.add_regressions,
            results.add_compact, runs.add_recover, runs.add_materialize, results.add_leaderboard, grade.add_grade,
            bench.add_bench, models.add_plan, models.add_build_tiny_model, runs.add_k8s_config)

# What a command refuses with its reason and exit status 2, rather than a traceback.
REFUSALS = (MatrixError, FileNotFoundError, InputError, GradeInputError, PlanError, DiskSpaceError,
            SandboxUnavailableError, BenchmarkDataError, ConnectionError)


def parser() -> argparse.ArgumentParser:
    """The `yardstick` argument parser: every command, each with its handler."""
    command_parser = argparse.ArgumentParser(prog="yardstick", description=__doc__)
    commands = command_parser.add_subparsers(dest="command", required=True)
    for add_command in COMMANDS:
        add_command(commands)
    return command_parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except REFUSALS as error:
        print(f"yardstick: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`yardstick variants | head -1`): what it read is all it wanted.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
