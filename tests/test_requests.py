"""What the engine step asks of an engine: which samples, with which seeds."""

from dataclasses import replace

import pandas as pd
import pytest

from assets.engine.requests import pending_requests, sample_seed
from assets.matrix import load_matrix

pytestmark = pytest.mark.unit

MATRIX = load_matrix()
ITEMS = pd.DataFrame([{"benchmark": "arith", "item_id": "a1", "problem": "What is 1 + 2?"},
                      {"benchmark": "gsm8k", "item_id": "g7", "problem": "How many?"}])
NOTHING_DONE = pd.DataFrame(columns=["benchmark", "item_id", "sample_index"])
GOLDEN_SEEDS = [1000749329, 1028399582]


def test_a_sample_seed_is_fixed_by_what_is_sampled():
    seeds = {(benchmark, item, sample): sample_seed(benchmark, item, sample)
             for benchmark in ("arith", "gsm8k") for item in ("1", "2", "10") for sample in range(8)}
    assert len(set(seeds.values())) == len(seeds)                    # no two samples share a seed
    assert all(0 <= seed < 2**31 for seed in seeds.values())          # what every engine's seed field takes
    assert seeds == {key: sample_seed(*key) for key in seeds}         # the same on every call
    # Pinned: stored samples were drawn with these; a change here breaks pairing with every warehouse's samples.
    assert [sample_seed("arith", "1", 0), sample_seed("gsm8k", "gsm8k-7", 3)] == GOLDEN_SEEDS


def test_every_variant_draws_a_sample_with_the_same_seed():
    """Common random numbers: the bf16 model and its quantized twin sample item i, sample j alike."""
    base, quantized = MATRIX.variant("tiny-test"), MATRIX.variant("tiny-test-w8a16")
    ours = pending_requests(base, ITEMS, NOTHING_DONE)
    theirs = pending_requests(quantized, ITEMS, NOTHING_DONE)
    assert [r.seed for r in ours] == [r.seed for r in theirs]
    assert [r.seed for r in ours] == [sample_seed(r.benchmark, r.item_id, r.sample_index) for r in ours]
    assert len(ours) == sum(base.protocol.samples_for(b) for b in ITEMS["benchmark"])


def test_finished_samples_are_not_asked_again_and_seeds_can_be_turned_off():
    variant = MATRIX.variant("tiny-test")
    done = pd.DataFrame([{"benchmark": "arith", "item_id": "a1", "sample_index": 0}])
    pending = pending_requests(variant, ITEMS, done)
    assert ("arith", "a1", 0) not in {(r.benchmark, r.item_id, r.sample_index) for r in pending}
    unseeded = replace(variant, engine=replace(variant.engine,
                                               options={**variant.engine.options, "per_request_seed": False}))
    assert {r.seed for r in pending_requests(unseeded, ITEMS, NOTHING_DONE)} == {None}


def test_a_reported_zero_beside_reasoning_text_is_counted():
    """vLLM reports reasoning_tokens 0 beside its reasoning_content; the tokenizer counts them then."""
    from assets.engine.generation import with_token_split

    words = lambda text: len(text.split())  # noqa: E731 (a stand-in tokenizer: one token a word)
    row = {"response": "The answer is 3.", "reasoning_content": "one plus two is three", "finish_reason": "stop",
           "completion_tokens": 9, "reasoning_tokens": 0}
    split = with_token_split(row, words, True)
    assert (split["reasoning_tokens"], split["answer_tokens"]) == (5, 4)
    assert with_token_split({**row, "reasoning_tokens": 7}, words, True)["reasoning_tokens"] == 7   # reported
    empty = with_token_split({**row, "reasoning_content": None, "response": "3"}, words, False)
    assert empty["reasoning_tokens"] == 0
