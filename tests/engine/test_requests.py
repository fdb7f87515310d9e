"""What the engine step asks of an engine: which samples, with which seeds."""

from dataclasses import replace

import pandas as pd
import pytest

from assets.engine.requests import pending_requests, sample_seed
from assets.matrix import MatrixError, load_matrix
from tests.samples import BASE, with_protocol

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


def test_reasoning_apis_get_the_parameters_they_accept(tmp_path):
    from assets.engine.requests import request_sampling

    matrix = load_matrix("pipelines/matrix.gpu.yaml")
    sampling = {"temperature": 0.6, "top_p": 0.95, "max_tokens": 32768}
    assert request_sampling(matrix.variant("o4-mini-api"), sampling) == {"max_completion_tokens": 32768}
    assert request_sampling(matrix.variant("deepseek-reasoner-api"), sampling) == sampling
    bad = tmp_path / "matrix.yaml"
    bad.write_text("variants:\n  v1:\n    model: null\n    engine: {kind: external, base_url: 'http://x/v1', "
                   "model: m, token_limit_param: max_new_tokens}\n    api_price: o4-mini\n    benchmarks: [gsm8k]\n")
    with pytest.raises(MatrixError, match="token_limit_param is max_tokens or max_completion_tokens"):
        load_matrix(bad)


ARITH_ITEMS = pd.DataFrame([{"benchmark": "arith", "item_id": f"a{n}", "problem": f"What is {n} + 1?"}
                            for n in range(3)]
                     + [{"benchmark": "aime24", "item_id": "x1", "problem": "Find x."}])

SAMPLE_KEY = ["benchmark", "item_id", "sample_index"]


def drawn(variant, items=ARITH_ITEMS, finished=None) -> pd.DataFrame:
    """The samples the engine step would ask for, as the rows it would store."""
    finished = pd.DataFrame(columns=SAMPLE_KEY) if finished is None else finished
    requests = pending_requests(variant, items, finished)
    return pd.DataFrame([(r.benchmark, r.item_id, r.sample_index) for r in requests], columns=SAMPLE_KEY)


def test_raising_k_of_one_benchmark_draws_only_its_new_sample_indices():
    stored = drawn(BASE)
    raised = with_protocol(k_by_benchmark={**BASE.protocol.k_by_benchmark, "arith": 3})
    assert raised.settings_hash == BASE.settings_hash   # so the stored samples are found under the same key
    new = drawn(raised, finished=stored)
    assert new.values.tolist() == [["arith", f"a{n}", 2] for n in range(3)]   # indices 0 and 1 are reused
    assert drawn(with_protocol(k=1), finished=stored).empty                   # lowering k draws nothing


def test_more_items_draw_only_the_new_items():
    stored = drawn(BASE)
    more = pd.concat([ARITH_ITEMS,
                      pd.DataFrame([{"benchmark": "arith", "item_id": "a9", "problem": "What is 9 + 1?"}])])
    assert drawn(BASE, items=more, finished=stored).values.tolist() == [["arith", "a9", 0], ["arith", "a9", 1]]
