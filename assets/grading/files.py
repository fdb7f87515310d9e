"""Grading outputs made elsewhere: a JSONL file of `gold` and `response` lines in, the same lines with the
verdict added out. The `yardstick grade` command is this module and the pipeline's own grader.

A line's content never stops grading (any string is graded, with a reason); a line that is not what grading
needs stops it before anything is written, naming the file and line. The output is strict JSON in ASCII:
every non-ASCII character is a \\u escape, so a lone surrogate a model emitted reads back exactly as it was.
"""

from __future__ import annotations

import json
import math
import os
import stat
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from assets.benchmarks.benchmark import Benchmark
from assets.benchmarks.sources import utf8_lines
from assets.grading.equivalence import Grade, GradeInput


class GradeInputError(ValueError):
    """A line of the input file is not what grading needs; the message names the file and line."""


class _NotFiniteError(ValueError):
    """A NaN, Infinity or overflowing number in a line: strict JSON has none, so the output could not repeat it."""


def _refuse_constant(name: str) -> float:
    raise _NotFiniteError(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFiniteError(text)
    return value


def _strict_json(line: str, where: str) -> Any:
    try:
        return json.loads(line, parse_constant=_refuse_constant, parse_float=_finite_float)
    except _NotFiniteError as error:
        raise GradeInputError(f"{where} holds {error}, which is not a finite number (strict JSON has no NaN or "
                              "Infinity); write it as a string or null") from None
    except (ValueError, RecursionError) as error:
        raise GradeInputError(f"{where} is not valid JSON: {error}") from None


def _grade_input(row: Any, where: str, benchmark: Benchmark, reasoning_prefilled: bool,
                 code_golds: dict[str, str] | None = None) -> GradeInput:
    if not isinstance(row, dict):
        raise GradeInputError(f"{where} is not a JSON object")
    if code_golds is not None:   # a code benchmark: the tests come from the benchmark's data, by item
        return _code_input(row, where, benchmark, reasoning_prefilled, code_golds)
    missing = [name for name in ("gold", "response") if row.get(name) is None]
    if missing:
        raise GradeInputError(f"{where} lacks {missing}; each line needs 'gold' and 'response'")
    _check_response(row, where)
    if isinstance(row["gold"], bool) or not isinstance(row["gold"], str | int | float):
        raise GradeInputError(f"{where}: 'gold' must be a string or a number")
    try:
        gold = benchmark.normalise_gold(row["gold"])
    except ValueError as error:
        raise GradeInputError(f"{where}: gold answer not valid for {benchmark.name}: {error}") from None
    return GradeInput(gold, benchmark.answer_format.name, row["response"], row.get("reasoning_content"),
                      row.get("finish_reason"), reasoning_prefilled=reasoning_prefilled)


def _check_response(row: dict, where: str) -> None:
    if not isinstance(row["response"], str):
        raise GradeInputError(f"{where}: 'response' must be a string")
    for name in ("reasoning_content", "finish_reason"):
        if not isinstance(row.get(name), str | None):
            raise GradeInputError(f"{where}: '{name}' must be a string or null")


def _code_input(row: dict, where: str, benchmark: Benchmark, reasoning_prefilled: bool,
                golds: dict[str, str]) -> GradeInput:
    missing = [name for name in ("item_id", "response") if row.get(name) is None]
    if missing:
        raise GradeInputError(f"{where} lacks {missing}; each line of a {benchmark.name} file needs 'item_id' (e.g. "
                              f"{next(iter(golds))}) and 'response'; the tests come from the benchmark")
    _check_response(row, where)
    item = str(row["item_id"])
    if item not in golds:
        raise GradeInputError(f"{where}: item_id {item!r} is not an item of {benchmark.name} (its items are "
                              f"{next(iter(golds))} ... {list(golds)[-1]})")
    return GradeInput(golds[item], benchmark.answer_format.name, row["response"], row.get("reasoning_content"),
                      row.get("finish_reason"), reasoning_prefilled=reasoning_prefilled)


def read_grade_inputs(path: str | Path, benchmark: Benchmark, reasoning_prefilled: bool,
                      mirror_dir: str | None = None) -> tuple[list[dict], list[GradeInput]]:
    """Every non-blank line of `path` as it was, and what the grader needs of it. Each line is decoded on its
    own, so a byte that is not UTF-8 is reported with its line number like any other malformed line. For a code
    benchmark a line names its `item_id`, and the tests are the benchmark's (loaded as the pipeline loads them)."""
    golds = None
    if benchmark.answer_format.runs_tests:
        from assets.benchmarks.items import load_items

        golds = {item["item_id"]: item["gold"] for item in load_items(benchmark.name, mirror_dir, None)}
    rows, inputs = [], []
    for number, line in utf8_lines(path, GradeInputError):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        row = _strict_json(line, where)
        inputs.append(_grade_input(row, where, benchmark, reasoning_prefilled, golds))
        rows.append(row)
    return rows, inputs


def check_output_path(path: str | Path) -> None:
    """Raise GradeInputError unless `path` is `-` (standard output), absent, or a regular file: the output is moved
    into place, which would replace a symbolic link, a FIFO, a device or a folder rather than write through it."""
    if str(path) == "-":
        return
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISREG(mode):
        return
    kind = ("a symbolic link" if stat.S_ISLNK(mode) else "a FIFO" if stat.S_ISFIFO(mode)
            else "a folder" if stat.S_ISDIR(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file")
    raise GradeInputError(f"output {path} is {kind}; it would be replaced, not written through: name a regular file "
                          "(new or to overwrite), or - for standard output")


def _graded_lines(rows: Sequence[dict], grades: Sequence[Grade]) -> Iterator[str]:
    for row, grade in zip(rows, grades, strict=True):
        verdict = {"extracted": grade.extracted, "correct": grade.correct, "reason": grade.reason}
        if grade.detail is not None:
            verdict["detail"] = grade.detail
        yield json.dumps({**row, **verdict}, ensure_ascii=True, allow_nan=False) + "\n"


def write_graded(path: str | Path, rows: Sequence[dict], grades: Sequence[Grade]) -> None:
    """Each input line with `extracted`, `correct` and `reason` added, one strict JSON object per line, to `path`
    (`-`: standard output).

    The lines go to a temporary file beside `path`, moved into place only once complete: a failure part way
    leaves no partial output and an existing file as it was. A path that is not a regular file is refused."""
    if str(path) == "-":
        sys.stdout.writelines(_graded_lines(rows, grades))
        sys.stdout.flush()
        return
    check_output_path(path)
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(temporary, "x", encoding="ascii") as out:
            out.writelines(_graded_lines(rows, grades))
            out.flush()
            os.fsync(out.fileno())
        check_output_path(path)   # as it is now, after the grading took its time
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
