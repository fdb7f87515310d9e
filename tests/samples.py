"""Rows of stored samples for the tests of what reads them (grading, scoring, sample keys): one variant 'v' of the
test matrix's tiny-test, arith items, and samples of which only the third of each item is right."""

from dataclasses import replace

import pandas as pd

from assets.grading.version import GRADER_VERSION
from assets.matrix import Variant, load_matrix
from assets.variants import counted_samples
from resources.warehouse import WarehouseResource

BASE = load_matrix().variant("tiny-test")   # k 2, aime24 3


def with_protocol(**changes) -> Variant:
    return replace(BASE, protocol=replace(BASE.protocol, **changes))


def item_row(item_id: str) -> dict:
    return {"variant": "v", "benchmark": "arith", "item_id": item_id, "position": int(item_id[1:]),
            "problem": "?", "gold": "1", "gold_raw": "1", "answer_format": "integer", "source": "test",
            "loaded_at": pd.Timestamp("2026-01-01")}


def sample_key(item_id: str, sample: int, config: str = "h") -> dict:
    return {"variant": "v", "config_hash": config, "benchmark": "arith", "item_id": item_id, "sample_index": sample}


def generation_row(item_id: str, sample: int, config: str = "h") -> dict:
    return {**sample_key(item_id, sample, config), "response": "\\boxed{1}", "completion_tokens": 10,
            "prompt_tokens": 5, "latency_seconds": 0.1, "sampling": "{}", "run_id": "r",
            "created_at": pd.Timestamp("2026-01-01")}


def grade_row(item_id: str, sample: int, config: str = "h") -> dict:
    # only the third sample of each item is right: a score that counts it is told apart from one that does not
    correct = sample == 2
    return {**sample_key(item_id, sample, config), "extracted": "1" if correct else "0", "correct": correct,
            "reason": "correct" if correct else "wrong", "graded_at": pd.Timestamp("2026-01-01"),
            "grader_version": GRADER_VERSION}


def count_k(warehouse: WarehouseResource, k: int) -> None:
    """Record the k the matrix has now, as graded_answers does."""
    variant = replace(BASE, name="v", benchmarks={"arith": 2}, protocol=replace(BASE.protocol, k=k,
                                                                                 k_by_benchmark={}))
    warehouse.replace_partition("benchmark_k", "v", counted_samples(variant))
