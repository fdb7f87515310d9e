"""Each benchmark's specifics in one place: where it lives, its fields, its gold format, how gold is normalised.

Items load through `datasets.load_dataset` at a revision resolved to a commit sha (and recorded), or from an
offline mirror folder of JSONL files for machines without the hub.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class BenchmarkDataError(ValueError):
    """A benchmark file or dataset is missing, or a row lacks what the benchmark needs."""


def gsm8k_gold(raw: Any) -> str:
    """GSM8K answers end in '#### n', sometimes with thousands separators."""
    text = str(raw)
    if "####" not in text:
        raise ValueError(f"GSM8K answer has no '####' marker: {text[-80:]!r}")
    return text.rsplit("####", 1)[1].strip().replace(",", "")


def integer_gold(raw: Any) -> str:
    """AIME writes zero-padded strings ('025'), AIME 2025 ints, AMC floats ('27.0'): all become '25'."""
    value = float(str(raw).strip())
    if not value.is_integer():
        raise ValueError(f"expected an integer answer, got {raw!r}")
    return str(int(value))


def latex_gold(raw: Any) -> str:
    return str(raw).strip()


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    hub_id: str
    hub_config: str | None
    split: str
    mirror_file: str
    problem_field: str
    answer_field: str
    id_field: str | None          # None: the item's position in the split is its id
    answer_format: str            # integer | number | latex
    normalise_gold: Callable[[Any], str]
    hub_revision: str | None = None   # None: resolve the branch head to a commit sha and record it
    hub_problem_field: str | None = None  # where the hub copy names the field differently


BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in (
        BenchmarkSpec("gsm8k", "openai/gsm8k", "main", "test", "gsm8k_test.jsonl",
                      "question", "answer", None, "number", gsm8k_gold),
        BenchmarkSpec("math500", "HuggingFaceH4/MATH-500", None, "test", "math500.jsonl",
                      "problem", "answer", "unique_id", "latex", latex_gold),
        BenchmarkSpec("aime24", "HuggingFaceH4/aime_2024", None, "train", "aime24.jsonl",
                      "problem", "answer", "id", "integer", integer_gold),
        BenchmarkSpec("aime25", "math-ai/aime25", None, "test", "aime25.jsonl",
                      "problem", "answer", "id", "integer", integer_gold),
        BenchmarkSpec("amc23", "math-ai/amc23", None, "test", "amc23.jsonl",
                      "problem", "answer", "id", "integer", integer_gold, hub_problem_field="question"),
    )
}


def benchmark_spec(name: str) -> BenchmarkSpec:
    if name not in BENCHMARKS:
        raise BenchmarkDataError(f"benchmark '{name}' unknown; known: {', '.join(sorted(BENCHMARKS))}")
    return BENCHMARKS[name]


def normalise_rows(
    spec: BenchmarkSpec, rows: Iterable[dict], source: str, limit: int | None, problem_field: str | None = None
) -> list[dict]:
    """Turn raw dataset rows into items; a row lacking a field is an error naming the row and the field."""
    problem_field = problem_field or spec.problem_field
    needed = [problem_field, spec.answer_field] + ([spec.id_field] if spec.id_field else [])
    items = []
    for position, row in enumerate(rows):
        if limit is not None and position >= limit:
            break
        missing = [name for name in needed if row.get(name) is None]
        if missing:
            raise BenchmarkDataError(
                f"{source} row {position + 1} lacks field(s) {missing} needed by benchmark '{spec.name}'; "
                f"fields present: {sorted(row)}"
            )
        try:
            gold = spec.normalise_gold(row[spec.answer_field])
        except ValueError as error:
            raise BenchmarkDataError(f"{source} row {position + 1}: bad gold answer: {error}") from error
        items.append({
            "benchmark": spec.name,
            "item_id": str(row[spec.id_field]) if spec.id_field else str(position),
            "position": position,
            "problem": str(row[problem_field]),
            "gold": gold,
            "gold_raw": str(row[spec.answer_field]),
            "answer_format": spec.answer_format,
            "source": source,
        })
    return items


def load_from_mirror(spec: BenchmarkSpec, mirror_dir: Path, limit: int | None) -> list[dict]:
    path = Path(mirror_dir) / spec.mirror_file
    if not path.exists():
        raise BenchmarkDataError(
            f"benchmark '{spec.name}' expects {spec.mirror_file} in the mirror folder {mirror_dir}, "
            "which has no such file; point YARDSTICK_BENCHMARK_MIRROR at a folder that has it, or unset it "
            "to load from the hub"
        )

    def rows() -> Iterable[dict]:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as error:
                    raise BenchmarkDataError(f"{path} line {number} is not valid JSON: {error}") from error

    return normalise_rows(spec, rows(), str(path), limit)


def load_from_hub(spec: BenchmarkSpec, limit: int | None) -> list[dict]:
    """`datasets.load_dataset` at a commit sha, so the source recorded with every item is exact."""
    import datasets
    from huggingface_hub import HfApi

    revision = spec.hub_revision or "main"
    sha = HfApi().dataset_info(spec.hub_id, revision=revision).sha
    dataset = datasets.load_dataset(spec.hub_id, spec.hub_config, split=spec.split, revision=sha)
    source = f"hf://{spec.hub_id}@{sha}"
    return normalise_rows(spec, dataset, source, limit, problem_field=spec.hub_problem_field)


def load_items(name: str, mirror_dir: str | Path | None, limit: int | None) -> list[dict]:
    """The first `limit` items (all when None) of a benchmark, from the mirror folder if given, else the hub."""
    spec = benchmark_spec(name)
    if mirror_dir:
        return load_from_mirror(spec, Path(mirror_dir), limit)
    return load_from_hub(spec, limit)
