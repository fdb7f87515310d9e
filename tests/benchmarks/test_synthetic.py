"""The synthetic arithmetic set (assets/benchmarks/synthetic.py): fixed, and held out from the tiny model's training."""

import pytest

from assets.benchmarks.items import load_items

pytestmark = pytest.mark.unit


def test_synthetic_arithmetic_is_fixed_and_held_out_from_training():
    from assets.benchmarks.synthetic import training_examples

    items = load_items("arith", None, None)
    assert items == load_items("arith", None, None) and len(items) == 200
    assert len({item["problem"] for item in items}) == 200
    assert not {item["problem"] for item in items} & {problem for problem, _ in training_examples(5000)}
