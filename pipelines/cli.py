"""The `yardstick` command: the parts that stand alone, without the Dagster UI."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipelines.matrix import MatrixError, load_matrix


def _variants(args: argparse.Namespace) -> int:
    for name in load_matrix(args.matrix).variants:
        print(name)
    return 0


def _leaderboard(args: argparse.Namespace) -> int:
    from resources.warehouse import WarehouseResource, default_warehouse_path

    warehouse = WarehouseResource(path=args.warehouse or default_warehouse_path())
    with warehouse.connect(read_only=True) as connection:
        table = connection.execute("SELECT * FROM leaderboard ORDER BY benchmark, pass_at_1 DESC, variant").df()
    print(f"warehouse: {warehouse.resolved_path}")
    print(table.to_markdown(index=False) if len(table) else "(the leaderboard is empty: run `make run` first)")
    return 0


GRADE_BENCHMARKS = ("math500", "aime24", "aime25", "amc23", "gsm8k", "mmlu_stem", "aqua_rat", "gpqa_diamond",
                    "arith")


def _grade(args: argparse.Namespace) -> int:
    """Grade model outputs made anywhere, with the same code the pipeline grades with."""
    from assets.benchmarks.catalog import benchmark_spec
    from assets.grading.equivalence import GradeInput, Grader

    spec = benchmark_spec(args.benchmark)
    rows, inputs = [], []
    with open(args.input, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise InputError(f"{args.input} line {number} is not valid JSON: {error}") from error
            if not isinstance(row, dict):
                raise InputError(f"{args.input} line {number} is not a JSON object")
            missing = [name for name in ("gold", "response") if row.get(name) is None]
            if missing:
                raise InputError(f"{args.input} line {number} lacks {missing}; each line needs 'gold' and 'response'")
            if not isinstance(row["response"], str):
                raise InputError(f"{args.input} line {number}: 'response' must be a string")
            try:
                gold = spec.normalise_gold(row["gold"])
            except ValueError as error:
                raise InputError(f"{args.input} line {number}: gold answer not valid for {spec.name}: {error}") from None
            rows.append(row)
            inputs.append(GradeInput(gold, spec.answer_format, row["response"], row.get("reasoning_content"),
                                     row.get("finish_reason"), reasoning_prefilled=not args.no_think_prefill))
    with Grader(workers=args.workers, timeout_s=args.timeout) as grader:
        grades = grader.grade_many(inputs)
    with open(args.output, "w", encoding="utf-8") as out:
        for row, grade in zip(rows, grades):
            out.write(json.dumps({**row, "extracted": grade.extracted, "correct": grade.correct,
                                  "reason": grade.reason}, ensure_ascii=False) + "\n")
    correct = sum(grade.correct for grade in grades)
    print(f"graded {len(grades)} responses: {correct} correct ({correct / max(len(grades), 1):.1%}); "
          f"wrote {args.output}", file=sys.stderr)
    return 0


class InputError(ValueError):
    """A line of the input file is not what the command needs."""


def _build_tiny_model(args: argparse.Namespace) -> int:
    from assets.models.tiny import build_tiny_model

    print(build_tiny_model(Path(args.output), seed=args.seed))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="yardstick", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    variants = commands.add_parser("variants", help="list the variants of the evaluation matrix")
    variants.add_argument("--matrix", help="matrix YAML (default: $YARDSTICK_MATRIX or pipelines/matrix.yaml)")
    variants.set_defaults(handler=_variants)

    leaderboard = commands.add_parser("leaderboard", help="print the leaderboard view of the warehouse")
    leaderboard.add_argument("--warehouse", help="DuckDB file (default: $YARDSTICK_WAREHOUSE or .yardstick/)")
    leaderboard.set_defaults(handler=_leaderboard)

    grade = commands.add_parser("grade", help="grade model outputs (JSONL with 'gold' and 'response')")
    grade.add_argument("--benchmark", required=True, choices=GRADE_BENCHMARKS,
                       help="the benchmark the outputs answer; it fixes the answer format")
    grade.add_argument("--input", required=True, help="JSONL: gold, response, optional reasoning_content")
    grade.add_argument("--output", required=True, help="JSONL: the input fields plus extracted, correct, reason")
    grade.add_argument("--workers", type=int, default=None, help="grading processes (default: one per core)")
    grade.add_argument("--timeout", type=float, default=5.0, help="seconds allowed per equivalence check")
    grade.add_argument("--no-think-prefill", action="store_true",
                       help="responses did not start inside <think> (models without a reasoning block)")
    grade.set_defaults(handler=_grade)

    tiny = commands.add_parser("build-tiny-model", help="write the offline tiny R1-style qwen2 model to a folder")
    tiny.add_argument("output")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(handler=_build_tiny_model)

    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (MatrixError, FileNotFoundError, InputError) as error:
        print(f"yardstick: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
