"""Parses `vllm serve` command lines with the installed vLLM's own argument parser.

Run by the vLLM environment's Python (not the project's): reads {name: [arguments after `serve`]} as JSON on
stdin and prints {name: null when vLLM accepts them, else its error} as JSON. A flag renamed or dropped by a vLLM
release, a value it refuses, or a reasoning parser it does not know is reported here, not on a GPU host.
"""

import contextlib
import io
import json
import sys

from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
from vllm.reasoning import ReasoningParserManager
from vllm.utils.argparse_utils import FlexibleArgumentParser


def problem(arguments: list[str]) -> str | None:
    parser = make_arg_parser(FlexibleArgumentParser(prog="vllm serve"))
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            parsed = parser.parse_args(arguments)
        validate_parsed_serve_args(parsed)
    except SystemExit:
        return errors.getvalue().strip().splitlines()[-1] if errors.getvalue().strip() else "rejected"
    except (TypeError, ValueError) as error:
        return str(error)
    reasoning = getattr(parsed, "reasoning_parser", None)
    if reasoning and reasoning not in ReasoningParserManager.list_registered():
        return f"reasoning parser '{reasoning}' unknown to this vLLM"
    return None


if __name__ == "__main__":
    command_lines = json.load(sys.stdin)
    json.dump({name: problem(arguments) for name, arguments in command_lines.items()}, sys.stdout)
