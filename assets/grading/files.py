"""Grading outputs made elsewhere: a JSONL file of `gold` and `response` lines in, the same lines with the
verdict added out. The `yardstick grade` command is this module and the pipeline's own grader."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from assets.benchmarks.catalog import BenchmarkSpec
from assets.grading.equivalence import Grade, GradeInput


class GradeInputError(ValueError):
    """A line of the input file is not what grading needs; the message names the file and line."""


def read_grade_inputs(path: str | Path, spec: BenchmarkSpec,
                      reasoning_prefilled: bool) -> tuple[list[dict], list[GradeInput]]:
    """Every non-blank line of `path` as it was, and what the grader needs of it."""
    rows, inputs = [], []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path} line {number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise GradeInputError(f"{where} is not valid JSON: {error}") from error
            if not isinstance(row, dict):
                raise GradeInputError(f"{where} is not a JSON object")
            missing = [name for name in ("gold", "response") if row.get(name) is None]
            if missing:
                raise GradeInputError(f"{where} lacks {missing}; each line needs 'gold' and 'response'")
            if not isinstance(row["response"], str):
                raise GradeInputError(f"{where}: 'response' must be a string")
            try:
                gold = spec.normalise_gold(row["gold"])
            except ValueError as error:
                raise GradeInputError(f"{where}: gold answer not valid for {spec.name}: {error}") from None
            rows.append(row)
            inputs.append(GradeInput(gold, spec.answer_format, row["response"], row.get("reasoning_content"),
                                     row.get("finish_reason"), reasoning_prefilled=reasoning_prefilled))
    return rows, inputs


def write_graded(path: str | Path, rows: Sequence[dict], grades: Sequence[Grade]) -> None:
    """Each input line with `extracted`, `correct` and `reason` added, one JSON object per line."""
    with open(path, "w", encoding="utf-8") as out:
        for row, grade in zip(rows, grades, strict=True):
            out.write(json.dumps({**row, "extracted": grade.extracted, "correct": grade.correct,
                                  "reason": grade.reason}, ensure_ascii=False) + "\n")
