"""LiveCodeBench (code generation): problems from LeetCode, AtCoder and Codeforces, each dated by its contest, so a
window of contest dates after a model's training cut-off avoids contamination.

Rows are those of `livecodebench/code_generation_lite` on the hub (one JSONL file per release increment:
release_v2 is test.jsonl + test2.jsonl, ...), or of a mirror file in the same format. A row's tests are
`public_test_cases` and `private_test_cases`, each a list of {input, output, testtype}: `stdin` tests feed the
program its input and compare what it prints; `functional` tests (LeetCode) call `Solution().<func_name>` with
the input's lines as JSON arguments. The hub stores private tests as base64 of zlib of a pickled JSON string;
they are unpickled by an unpickler that refuses every global, so a pickle can only ever yield plain data.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import zlib
from dataclasses import dataclass
from datetime import date
from typing import Any

from assets.benchmarks.benchmark import Benchmark
from assets.benchmarks.sources import HubFiles
from assets.grading.formats import CODE

HUB_ID = "livecodebench/code_generation_lite"
RELEASES = {f"release_v{n}": [("test.jsonl" if k == 1 else f"test{k}.jsonl") for k in range(1, n + 1)]
            for n in range(1, 7)}
OPTION_KEYS = ("release", "since", "until")
DEFAULT_RELEASE = "release_v6"

INSTRUCTION_STDIN = ("Solve the following programming problem in Python. Reason step by step, then give the whole "
                     "program in one ```python code block at the end of your answer: it reads the input from "
                     "standard input and writes the answer to standard output.")
INSTRUCTION_FUNCTIONAL = ("Solve the following programming problem in Python. Reason step by step, then give the "
                          "whole solution, completing the starter code below, in one ```python code block at the "
                          "end of your answer.")


class _DataOnly(pickle.Unpickler):
    """Unpickles plain data only: any class or function reference is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"a test-case pickle may hold plain data only, not {module}.{name}")


def decode_tests(raw: Any) -> list[dict]:
    """A row's test cases: a list, a JSON string of one, or the hub's base64(zlib(pickle(JSON string)))."""
    if isinstance(raw, list):
        return raw
    text = str(raw).strip()
    if not text.startswith("["):
        try:
            unpickled = _DataOnly(io.BytesIO(zlib.decompress(base64.b64decode(text)))).load()
        except (ValueError, zlib.error, pickle.UnpicklingError, EOFError) as error:
            raise ValueError(f"test cases are neither JSON nor the hub's encoded form: {error}") from None
        text = unpickled if isinstance(unpickled, str) else json.dumps(unpickled)
    tests = json.loads(text)
    if not isinstance(tests, list):
        raise ValueError("test cases must be a list")
    return tests


def check_options(options: dict) -> dict:
    """The release and contest-date window, validated; defaults: the latest release, every date."""
    unknown = sorted(set(options) - set(OPTION_KEYS))
    if unknown:
        raise ValueError(f"livecodebench options {unknown} unknown; known: {', '.join(OPTION_KEYS)}")
    release = str(options.get("release", DEFAULT_RELEASE))
    if release not in RELEASES:
        raise ValueError(f"livecodebench release '{release}' unknown; known: {', '.join(RELEASES)}")
    window = {}
    for key in ("since", "until"):
        if options.get(key) is not None:
            try:
                window[key] = date.fromisoformat(str(options[key]))
            except ValueError:
                raise ValueError(f"livecodebench '{key}' is a date (YYYY-MM-DD), got {options[key]!r}") from None
    return {"release": release, **window}


def in_window(row: dict, options: dict) -> bool:
    """Whether the row's contest date falls in the options' window (since and until inclusive)."""
    window = check_options(options)
    day = date.fromisoformat(str(row.get("contest_date", ""))[:10])
    return window.get("since", date.min) <= day <= window.get("until", date.max)


def reader(row: dict, _: int) -> tuple[str, Any]:
    """The problem as asked (starter code for a functional problem) and the tests it is graded against."""
    metadata = row.get("metadata") or {}
    if isinstance(metadata, str):
        metadata = json.loads(metadata or "{}")
    starter = (row.get("starter_code") or "").strip()
    if starter:
        problem = f"{INSTRUCTION_FUNCTIONAL}\n\n{row['question_content'].strip()}\n\n```python\n{starter}\n```"
    else:
        problem = f"{INSTRUCTION_STDIN}\n\n{row['question_content'].strip()}"
    tests = decode_tests(row["public_test_cases"]) + decode_tests(row.get("private_test_cases") or "[]")
    return problem, {"tests": tests, "func_name": metadata.get("func_name")}


def gold(raw: Any) -> str:
    """The tests (and, for functional ones, the method they call), as JSON for assets.grading.code."""
    tests = raw.get("tests") if isinstance(raw, dict) else None
    if not tests:
        raise ValueError("a LiveCodeBench problem needs at least one test case")
    kinds = {case.get("testtype") for case in tests}
    if not kinds <= {"stdin", "functional"} or any(not isinstance(case.get("input"), str)
                                                    or not isinstance(case.get("output"), str) for case in tests):
        raise ValueError(f"test cases need string input and output and testtype stdin or functional, got {kinds}")
    if "functional" in kinds and not raw.get("func_name"):
        raise ValueError("functional test cases need metadata.func_name, the method they call")
    return json.dumps({"tests": tests, "func_name": raw.get("func_name")}, sort_keys=True)


def hub_rows(options: dict) -> tuple[list[dict], str]:
    """The rows of the options' release from the hub, at a commit sha recorded in the source."""
    from huggingface_hub import HfApi, hf_hub_download

    release = check_options(options)["release"]
    sha = HfApi().dataset_info(HUB_ID, revision="main").sha
    rows = []
    for name in RELEASES[release]:
        path = hf_hub_download(HUB_ID, name, repo_type="dataset", revision=sha)
        with open(path, encoding="utf-8") as handle:
            rows += [json.loads(line) for line in handle if line.strip()]
    return rows, f"hf://{HUB_ID}@{sha} {release}"


@dataclass(frozen=True)
class LiveCodeBench(Benchmark):
    """Takes options (the release and a contest-date window) and keeps the rows dated inside the window."""

    def item(self, row: dict, position: int) -> tuple[str, Any]:
        return reader(row, position)

    def checked_options(self, options: dict | None) -> dict:
        check_options(options or {})
        return dict(options or {})

    def keeps(self, row: dict, options: dict) -> bool:
        return in_window(row, options)


LIVECODEBENCH = LiveCodeBench("livecodebench", HubFiles(HUB_ID, "livecodebench.jsonl", hub_rows), CODE, gold,
                              fields=("question_content", "public_test_cases", "contest_date"),
                              id_field="question_id")
