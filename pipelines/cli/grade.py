"""`yardstick grade`: grade model outputs made anywhere, with the same code the pipeline grades with."""

from __future__ import annotations

import argparse
import os
import sys

from assets.benchmarks.registry import BENCHMARKS
from pipelines.cli.common import InputError


def grade(args: argparse.Namespace) -> int:
    """Grade model outputs made anywhere, with the same code the pipeline grades with."""
    from assets.benchmarks.registry import benchmark_named
    from assets.grading.equivalence import Grader
    from assets.grading.files import check_output_path, read_grade_inputs, write_graded

    check_output_path(args.output)   # before the grading, which may take a while
    rows, inputs = read_grade_inputs(args.input, benchmark_named(args.benchmark),
                                     reasoning_prefilled=args.think_prefill,
                                     mirror_dir=os.environ.get("YARDSTICK_BENCHMARK_MIRROR"))
    if not rows:
        raise InputError(f"{args.input} has no lines to grade; nothing was written")
    with Grader(workers=args.workers, timeout_s=args.timeout) as grader:
        grades = grader.grade_many(inputs)
    try:
        write_graded(args.output, rows, grades)
    except OSError as error:
        raise InputError(f"cannot write {args.output} ({error.strerror or error}); it was left as it was") from None
    correct = sum(verdict.correct for verdict in grades)
    print(f"graded {len(grades)} responses: {correct} correct ({correct / max(len(grades), 1):.1%}); "
          f"wrote {'standard output' if args.output == '-' else args.output}", file=sys.stderr)
    return 0


def add_grade(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("grade", help="grade model outputs (JSONL with 'gold' and 'response')")
    parser.add_argument("--benchmark", required=True, choices=sorted(BENCHMARKS),
                        help="the benchmark the outputs answer; it fixes the answer format")
    parser.add_argument("--input", required=True, help="JSONL: gold, response, optional reasoning_content")
    parser.add_argument("--output", required=True,
                        help="JSONL: the input fields plus extracted, correct, reason (- for standard output); a "
                             "link, FIFO or device is refused, never replaced")
    parser.add_argument("--workers", type=int, default=None, help="grading processes (default: one per core)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds allowed per equivalence check")
    parser.add_argument("--think-prefill", action="store_true",
                        help="every response started inside <think> (R1's template prefills it): text without "
                             "</think> is unfinished reasoning. Without it the response decides: </think> splits "
                             "reasoning from answer, an unclosed <think> is truncated, neither is all answer")
    # Earlier versions' way to ask for what is now the default.
    parser.add_argument("--no-think-prefill", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(handler=grade)
