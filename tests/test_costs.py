"""Cost formulas against hand calculations, and the price catalogs' promise: every row dated and sourced."""

import json
import os

import pytest
from openai.types import CompletionUsage

from assets.cost.pricing import (
    ApiPrice,
    Ownership,
    benchmark_spend,
    usd_for_tokens,
    usd_per_correct,
    usd_per_million_tokens,
)
from assets.engine.generation import reported_cached_prompt_tokens
from resources.prices import (
    PriceCatalogError,
    PriceCatalogResource,
    read_catalog,
    read_litellm_prices,
)

pytestmark = pytest.mark.unit


def test_rented_hour_priced_per_million_tokens_as_in_the_seeds():
    # $40/h for 8xA100 at ~300 tok/s: 40 / (300 * 3600) * 1e6 = 37.037...
    assert usd_per_million_tokens(40.0, 300.0) == pytest.approx(37.037037, rel=1e-6)
    # p5.48xlarge at the seed's $98.32/h serving 1,000 tok/s: 98.32 / 3.6 = 27.3111...
    assert usd_per_million_tokens(98.32, 1000.0) == pytest.approx(27.311111, rel=1e-6)
    # 2M output tokens at $37.037/M for 10 correct answers: $74.07 / 10
    assert usd_per_correct(usd_for_tokens(2_000_000, 37.037037), 10) == pytest.approx(7.4074074, rel=1e-6)


def test_spend_and_spend_per_correct_answer():
    # 2M output tokens at $37.037037/M cost $74.074074; over 10 correct answers, $7.4074074 each
    assert usd_for_tokens(2_000_000, 37.037037) == pytest.approx(74.074074)
    assert usd_per_correct(74.074074, 10) == pytest.approx(7.4074074)
    assert usd_per_correct(0.5, 0) is None


def test_owned_hour_writes_off_the_purchase_over_the_busy_hours_and_adds_power():
    card = Ownership(purchase_usd=1599, power_kw=0.45, years=3, usd_per_kwh=0.15, utilisation=0.5)
    # 1599 / (3 * 8760 * 0.5) = 0.121689...; 0.45 kW * $0.15 = 0.0675
    assert card.capital_usd_per_hour == pytest.approx(0.1216895, rel=1e-6)
    assert card.power_usd_per_hour == pytest.approx(0.0675)
    assert card.usd_per_hour == pytest.approx(0.1891895, rel=1e-6)
    # An 8-GPU server busy all the time in a room with PUE 1.5: 375000 / 26280 + 5.6 * 1.5 * 0.10
    server = Ownership(purchase_usd=375_000, power_kw=5.6, years=3, usd_per_kwh=0.10, utilisation=1.0, pue=1.5)
    assert server.usd_per_hour == pytest.approx(14.269406 + 0.84, rel=1e-6)
    # ... and at the seeds' 300 tok/s that hour buys 1.08 M tokens: 15.109406 / 1.08
    assert usd_per_million_tokens(server.usd_per_hour, 300) == pytest.approx(13.990191, rel=1e-6)


@pytest.mark.parametrize("terms", [{"utilisation": 0}, {"utilisation": 1.2}, {"years": 0}, {"pue": 0.9},
                                   {"purchase_usd": -1}])
def test_impossible_ownership_terms_are_refused(terms):
    with pytest.raises(ValueError):
        Ownership(**{"purchase_usd": 1000, "power_kw": 0.3, **terms})


def test_api_calls_are_priced_from_their_token_use_reasoning_included():
    reasoner = ApiPrice("deepseek-reasoner", input=0.28, output=0.42)
    # 1,000 prompt tokens; 5,000 completion tokens of which 4,000 reasoning, all at the output price:
    # 1000 * 0.28e-6 + 5000 * 0.42e-6 = 0.00028 + 0.0021
    assert reasoner.usd(1000, 5000, 4000) == pytest.approx(0.00238)
    assert reasoner.usd(1000, 5000, 4000) == pytest.approx(reasoner.usd(1000, 5000, 0))
    # A provider that prices reasoning apart: 1000 * 0.3 + 1000 * 2.5 + 4000 * 3.5, per million
    split = ApiPrice("split", input=0.3, output=2.5, reasoning=3.5)
    assert split.usd(1000, 5000, 4000) == pytest.approx(0.0168)
    with pytest.raises(ValueError, match="impossible token usage"):
        split.usd(10, 5, 6)
    # Prompt tokens served from the cache: 200 at the input price, 800 at deepseek-reasoner's cache-hit price:
    # 200 * 0.28 + 800 * 0.028 + 5000 * 0.42, per million
    cached = ApiPrice("deepseek-reasoner", input=0.28, output=0.42, cached_input=0.028)
    assert cached.usd(1000, 5000, 4000, cached_prompt_tokens=800) == pytest.approx(0.0021784)
    assert reasoner.usd(1000, 5000, 4000, cached_prompt_tokens=800) == pytest.approx(0.00238)  # no cache price
    with pytest.raises(ValueError, match="impossible token usage"):
        cached.usd(10, 5, 0, cached_prompt_tokens=11)


def test_every_shipped_catalog_row_has_a_date_and_a_source():
    prices = PriceCatalogResource()
    for frame in (prices.instances(), prices.ownership_rows(), prices.api_prices()):
        assert len(frame)
        assert frame["price_date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
        assert (frame["source"].str.len() > 10).all()
    # the seeds' hardware and the offline default are all priced
    for hardware in ("cpu-2vcpu", "a100-8x", "h100-8x", "h200-8x", "rtx3090-1x", "rtx4090-1x"):
        assert prices.instance(hardware)["usd_per_hour"] > 0
    reasoner = prices.api_price("deepseek-reasoner")[0]
    assert reasoner.output > 0 and 0 < reasoner.cached_input < reasoner.input


def test_an_undated_or_unknown_price_is_refused_with_the_fix(tmp_path):
    catalog = tmp_path / "instances.csv"
    catalog.write_text("hardware,usd_per_hour,price_date,source\nbox,1.0,,somewhere\n")
    with pytest.raises(PriceCatalogError, match=r"without a value, date or source: \['box'\]"):
        read_catalog(str(catalog), "hardware", ("hardware", "usd_per_hour", "price_date", "source"))
    catalog.write_text("hardware,usd_per_hour,price_date,source\nbox,1.0,June 2026,somewhere\n")
    with pytest.raises(PriceCatalogError, match="is not a date written YYYY-MM-DD"):
        PriceCatalogResource(instances_path=str(catalog)).instances()
    with pytest.raises(PriceCatalogError, match="has no price .* known: cpu-2vcpu"):
        PriceCatalogResource().instance("tpu-v9")


HEADER = "hardware,usd_per_hour,gpus,price_date,source\n"


@pytest.mark.parametrize(("row", "refusal"), [
    ("box,-0.08,1,2026-06-01,somewhere", "row 2 \\(hardware 'box'\\): usd_per_hour -0.08 is not a finite, non-neg"),
    ("box,inf,1,2026-06-01,somewhere", "usd_per_hour inf is not a finite"),
    ("box,cheap,1,2026-06-01,somewhere", "usd_per_hour 'cheap' is not a finite"),
    ("box,1.0,-2,2026-06-01,somewhere", "gpus -2 is not a finite"),
    ("box,1.0,many,2026-06-01,somewhere", "gpus 'many' is not a finite"),
])
def test_a_price_that_is_not_a_finite_non_negative_number_is_refused_naming_its_row(tmp_path, row, refusal):
    catalog = tmp_path / "instances.csv"
    catalog.write_text(HEADER + "ok,1.0,1,2026-06-01,somewhere\n".replace("ok", "fine") + row + "\n")
    with pytest.raises(PriceCatalogError, match=refusal):
        PriceCatalogResource(instances_path=str(catalog)).instances()


def test_numbers_written_as_text_are_read_as_numbers(tmp_path):
    catalog = tmp_path / "api.csv"
    catalog.write_text("model,input_usd_per_million,output_usd_per_million,reasoning_usd_per_million,price_date,"
                       "source\nm,\" 0.5\",2,,2026-06-01,somewhere\n")
    price, _ = PriceCatalogResource(api_prices_path=str(catalog)).api_price("m")
    assert (price.input, price.output, price.reasoning) == (0.5, 2.0, None)


def test_litellm_price_table_is_read_when_a_copy_is_on_disk(tmp_path):
    # The shape of LiteLLM's model_prices_and_context_window.json: a sample_spec template, models keyed by
    # name with prices per token, and non-model entries without prices.
    table = {
        "sample_spec": {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0, "litellm_provider": "..."},
        "reasoner-x": {"input_cost_per_token": 5.5e-07, "output_cost_per_token": 2.19e-06,
                       "cache_read_input_token_cost": 1.4e-07, "litellm_provider": "acme", "mode": "chat"},
        "flash-y": {"input_cost_per_token": 3e-07, "output_cost_per_token": 2.5e-06,
                    "output_cost_per_reasoning_token": 3.5e-06, "litellm_provider": "acme", "mode": "chat"},
        "embedder": {"input_cost_per_token": 1e-08, "litellm_provider": "acme", "mode": "embedding"},
        "fallback_generalizations": {"rules": []},
    }
    path = tmp_path / "model_prices_and_context_window.json"
    path.write_text(json.dumps(table))
    os.utime(path, (1_780_000_000, 1_780_000_000))   # 2026-05-28 UTC
    frame = read_litellm_prices(str(path))
    assert sorted(frame["model"]) == ["flash-y", "reasoner-x"]
    prices = PriceCatalogResource(api_prices_path=str(path))
    reasoner, row = prices.api_price("reasoner-x")
    assert (reasoner.input, reasoner.output, reasoner.reasoning) == pytest.approx((0.55, 2.19, None))
    assert row["price_date"] == "2026-05-28" and "LiteLLM" in row["source"]
    assert prices.api_price("flash-y")[0].reasoning == pytest.approx(3.5)
    table["broken-z"] = {"input_cost_per_token": -1e-6, "output_cost_per_token": 1e-6, "litellm_provider": "acme"}
    path.write_text(json.dumps(table))
    with pytest.raises(PriceCatalogError, match=r"LiteLLM price file .* \(model 'broken-z'\): input_usd_per_mil"):
        read_litellm_prices(str(path))


def test_cached_prompt_tokens_are_read_as_each_api_reports_them():
    openai_style = CompletionUsage.model_validate({"prompt_tokens": 1000, "completion_tokens": 50, "total_tokens": 1050,
                                                   "prompt_tokens_details": {"cached_tokens": 768}})
    deepseek_style = CompletionUsage.model_validate({"prompt_tokens": 1000, "completion_tokens": 50,
                                                     "total_tokens": 1050, "prompt_cache_hit_tokens": 640,
                                                     "prompt_cache_miss_tokens": 360})
    silent = CompletionUsage.model_validate({"prompt_tokens": 1000, "completion_tokens": 50, "total_tokens": 1050})
    assert reported_cached_prompt_tokens(openai_style) == 768
    assert reported_cached_prompt_tokens(deepseek_style) == 640
    assert reported_cached_prompt_tokens(silent) is None and reported_cached_prompt_tokens(None) is None


def test_benchmark_spend_prices_an_api_by_its_tokens_and_an_instance_by_its_output():
    usage = [{"benchmark": "arith", "samples": 4, "prompt_tokens": 1000, "cached_prompt_tokens": 800,
              "output_tokens": 5000, "reasoning_tokens": 4000, "correct_answers": 2},
             {"benchmark": "gsm8k", "samples": 4, "prompt_tokens": 10, "cached_prompt_tokens": 0,
              "output_tokens": 20, "reasoning_tokens": 0, "correct_answers": 0}]
    deepseek = ApiPrice("deepseek-reasoner", input=0.28, output=0.42, cached_input=0.028)
    api = benchmark_spend(usage, deepseek, usd_per_million_output=0.42)
    # by hand: 200 × 0.28 + 800 × 0.028 + 5000 × 0.42 per million = $0.0021784
    assert api[0]["usd_spent"] == pytest.approx(0.0021784)
    assert api[0]["usd_per_correct_answer"] == pytest.approx(0.0010892)
    assert api[1]["usd_per_correct_answer"] is None   # nothing correct: no price per correct answer
    rented = benchmark_spend(usage, None, usd_per_million_output=2.0)
    assert [row["usd_spent"] for row in rented] == pytest.approx([0.01, 0.00004])
    assert {key: rented[0][key] for key in ("benchmark", "samples", "output_tokens", "correct_answers")} == {
        "benchmark": "arith", "samples": 4, "output_tokens": 5000, "correct_answers": 2}
