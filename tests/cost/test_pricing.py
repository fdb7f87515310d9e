"""The cost formulas against hand calculations: rented, owned and API prices, each dated as its catalog quoted it,
with no warehouse and no Dagster. A price that came out wrong once becomes a row here."""

import json
import math
from datetime import date

import pytest

from assets.cost.pricing import (
    ApiPrice,
    Electricity,
    InstancePrice,
    OwnedHardwarePrice,
    Ownership,
    api_alternative,
    api_costs,
    benchmark_spend,
    best_level,
    energy_per_million_tokens,
    instance_costs,
    measured_power_kw,
    spend_totals,
    usd_for_tokens,
    usd_per_correct,
    usd_per_million_tokens,
)

pytestmark = pytest.mark.unit


QUOTED = {"price_date": date(2026, 1, 5), "source": "a hand-written test price"}

TARIFF = Electricity(usd_per_kwh=0.15, pue=1.0)


def serving_level(output_throughput: float, *, energy_j: float | None = None, duration_s: float = 3600,
                  gpu_kwh_per_million: float | None = None, completed: int = 100, failed: int = 0) -> dict:
    """A serving_load_levels row as the warehouse gives it: NaN where NVML measured nothing."""
    return {"profile": "concurrency", "load": 64.0, "completed": completed, "failed": failed,
            "duration_s": duration_s, "output_throughput": output_throughput,
            "gpu_energy_j": math.nan if energy_j is None else energy_j,
            "gpu_kwh_per_million_output_tokens": math.nan if gpu_kwh_per_million is None else gpu_kwh_per_million}


def h100(power_kw: float = 0.7, **assumptions: float) -> OwnedHardwarePrice:
    terms = Ownership(purchase_usd=31250, power_kw=power_kw, **{"years": 3, "utilisation": 0.5, **assumptions})
    return OwnedHardwarePrice("h100-1x", terms, price_date=date(2025, 3, 3), source="a reseller's listing")


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


@pytest.mark.parametrize(("hardware", "usd_per_hour", "nodes", "tokens_per_s", "label", "hour", "per_million"), [
    # $3.49/h at 1000 tok/s: 3.49 / 3.6
    ("h100-1x", 3.49, 1, 1000.0, "h100-1x", 3.49, 0.9694444),
    # two nodes rent the instance twice: $110.08/h over 1234.5 × 3600 tokens an hour
    ("h100-8x", 55.04, 2, 1234.5, "h100-8x x2", 110.08, 24.769362),
    # eight: $16/h over 1.8 M tokens an hour
    ("box", 2.0, 8, 500.0, "box x8", 16.0, 8.8888889),
])
def test_a_deployment_rents_its_instance_once_per_node(hardware, usd_per_hour, nodes, tokens_per_s, label, hour,
                                                        per_million):
    price = InstancePrice(hardware, usd_per_hour, **QUOTED)
    row = instance_costs(price, serving_level(tokens_per_s), True, nodes, TARIFF, None)
    assert (row["hardware"], row["usd_per_hour"]) == (label, pytest.approx(hour))
    assert row["usd_per_million_output_tokens"] == pytest.approx(per_million, rel=1e-6)
    assert (row["price_date"], row["price_source"]) == (date(2026, 1, 5), "a hand-written test price")
    assert "owned_usd_per_hour" not in row   # no purchase price: nothing owned to price


@pytest.mark.parametrize(("completed", "failed", "meets_slo", "failed_share"), [
    (100, 0, True, 0.0),
    (97, 3, True, 0.03),
    (50, 0, False, 0.0),   # flagged by best_level: the fastest level, though none met the SLOs
])
def test_the_rollup_says_what_the_priced_level_was(completed, failed, meets_slo, failed_share):
    level = serving_level(800.0, completed=completed, failed=failed)
    row = instance_costs(InstancePrice("h100-1x", 3.49, **QUOTED), level, meets_slo, 1, TARIFF, None)
    assert (row["best_profile"], row["best_load"], row["output_tokens_per_s"]) == ("concurrency", 64.0, 800.0)
    assert (row["meets_slo"], row["priced_failed_share"]) == (meets_slo, pytest.approx(failed_share))


@pytest.mark.parametrize(("gpu_kwh", "usd_per_kwh", "pue", "wall_kwh", "usd"), [
    (1 / 3.6, 0.15, 1.0, 0.2777778, 0.0416667),   # 1 kWh per 3.6 M tokens, at $0.15
    (0.5, 0.20, 1.4, 0.7, 0.14),                  # the room draws 40% on top of the GPUs
    (2.0, 0.10, 1.5, 3.0, 0.30),
])
def test_measured_energy_is_priced_at_the_wall(gpu_kwh, usd_per_kwh, pue, wall_kwh, usd):
    electricity = Electricity(usd_per_kwh=usd_per_kwh, pue=pue)
    assert energy_per_million_tokens(gpu_kwh, electricity) == (pytest.approx(wall_kwh), pytest.approx(usd))
    level = serving_level(1000.0, gpu_kwh_per_million=gpu_kwh)
    row = instance_costs(InstancePrice("h100-1x", 3.49, **QUOTED), level, True, 1, electricity, None)
    assert row["energy_kwh_per_million_output_tokens"] == pytest.approx(wall_kwh)
    assert row["energy_usd_per_million_output_tokens"] == pytest.approx(usd)


def test_energy_nvml_did_not_measure_is_not_priced():
    row = instance_costs(InstancePrice("cpu-2vcpu", 0.08, **QUOTED), serving_level(20.0), True, 1, TARIFF, None)
    assert "energy_kwh_per_million_output_tokens" not in row and "energy_usd_per_million_output_tokens" not in row


@pytest.mark.parametrize(("level", "kw"), [
    ({"gpu_energy_j": 3.6e6, "duration_s": 3600}, 1.0),   # 3.6 MJ over an hour: a mean draw of 1 kW
    ({"gpu_energy_j": 7.2e6, "duration_s": 1800}, 4.0),
    ({"gpu_energy_j": None, "duration_s": 10}, None),
    ({"gpu_energy_j": math.nan, "duration_s": 10}, None),   # a warehouse NULL
    ({"gpu_energy_j": 1e6, "duration_s": 0}, None),
    ({}, None),
])
def test_measured_power_is_the_energy_over_the_level_s_duration(level, kw):
    assert measured_power_kw(level) == (None if kw is None else pytest.approx(kw))


@pytest.mark.parametrize(("owned", "level", "nodes", "hour", "power_kw", "power_source"), [
    # The nameplate where NVML measured nothing: 31250 / (3 × 8760 × 0.5) + 0.7 kW × $0.15
    (h100(), serving_level(1000.0), 1, 2.3782344 + 0.105, 0.7, "nameplate"),
    # 3.6 MJ in an hour is a mean of 1 kW, not the 0.7 kW nameplate: 2.3782344 + 1 × 0.15
    (h100(), serving_level(1000.0, energy_j=3.6e6), 1, 2.3782344 + 0.15, 1.0, "measured"),
    # An HGX board busy all the time in a room with PUE 1.5, drawing 7 kW, on two nodes:
    # 2 × (270480 / 26280 + 7 × 1.5 × 0.10) = 2 × (10.2922374 + 1.05)
    (OwnedHardwarePrice("h100-8x", Ownership(270_480, 5.6, years=3, usd_per_kwh=0.10, utilisation=1.0, pue=1.5),
                        **QUOTED),
     serving_level(2000.0, energy_j=2.52e7), 2, 22.6844749, 7.0, "measured"),
])
def test_the_owned_hour_writes_off_the_purchase_and_pays_the_power_drawn(owned, level, nodes, hour, power_kw,
                                                                         power_source):
    row = instance_costs(InstancePrice(owned.hardware, 3.49, **QUOTED), level, True, nodes, TARIFF, owned)
    assert row["owned_usd_per_hour"] == pytest.approx(hour, rel=1e-6)
    tokens_an_hour = level["output_throughput"] * 3600
    assert row["owned_usd_per_million_output_tokens"] == pytest.approx(hour / tokens_an_hour * 1e6, rel=1e-6)
    terms = json.loads(row["ownership_terms"])
    assert terms["power_kw"] == pytest.approx(power_kw) and terms["power_source"].startswith(power_source)
    assert terms["nodes"] == nodes and terms["purchase_usd"] == owned.terms.purchase_usd
    assert (terms["price_date"], terms["source"]) == (owned.price_date.isoformat(), owned.source)


def test_the_owned_cost_uses_the_measured_power_and_prices_the_energy():
    """An H100 level that drew 3.6 MJ in an hour (a mean of 1 kW, against the catalog's 0.7 kW nameplate) at 1000
    output tok/s: 3.6 million tokens took 1 kWh, so 0.2778 kWh a million, $0.0417 at $0.15 a kWh."""
    level = serving_level(1000.0, energy_j=3.6e6, gpu_kwh_per_million=1 / 3.6)
    row = instance_costs(InstancePrice("h100-1x", 3.49, **QUOTED), level, True, 1, TARIFF, h100())
    terms = json.loads(row["ownership_terms"])
    assert terms["power_kw"] == pytest.approx(1.0) and terms["power_source"].startswith("measured")
    # Owned hour: $31250 / (3 × 8760 × 0.5) + 1 kW × $0.15 = $2.3782 + $0.15.
    assert row["owned_usd_per_hour"] == pytest.approx(31250 / (3 * 8760 * 0.5) + 0.15)
    assert row["energy_kwh_per_million_output_tokens"] == pytest.approx(0.27778, rel=1e-4)
    assert row["energy_usd_per_million_output_tokens"] == pytest.approx(0.27778 * 0.15, rel=1e-4)


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
    reasoner = ApiPrice("deepseek-reasoner", input=0.28, output=0.42, **QUOTED)
    # 1,000 prompt tokens; 5,000 completion tokens of which 4,000 reasoning, all at the output price:
    # 1000 * 0.28e-6 + 5000 * 0.42e-6 = 0.00028 + 0.0021
    assert reasoner.usd(1000, 5000, 4000) == pytest.approx(0.00238)
    assert reasoner.usd(1000, 5000, 4000) == pytest.approx(reasoner.usd(1000, 5000, 0))
    # A provider that prices reasoning apart: 1000 * 0.3 + 1000 * 2.5 + 4000 * 3.5, per million
    split = ApiPrice("split", input=0.3, output=2.5, reasoning=3.5, **QUOTED)
    assert split.usd(1000, 5000, 4000) == pytest.approx(0.0168)
    with pytest.raises(ValueError, match="impossible token usage"):
        split.usd(10, 5, 6)
    # Prompt tokens served from the cache: 200 at the input price, 800 at deepseek-reasoner's cache-hit price:
    # 200 * 0.28 + 800 * 0.028 + 5000 * 0.42, per million
    cached = ApiPrice("deepseek-reasoner", input=0.28, output=0.42, cached_input=0.028, **QUOTED)
    assert cached.usd(1000, 5000, 4000, cached_prompt_tokens=800) == pytest.approx(0.0021784)
    assert reasoner.usd(1000, 5000, 4000, cached_prompt_tokens=800) == pytest.approx(0.00238)  # no cache price
    with pytest.raises(ValueError, match="impossible token usage"):
        cached.usd(10, 5, 0, cached_prompt_tokens=11)


def test_an_api_variant_is_priced_at_its_dated_list_prices():
    price = ApiPrice("split", input=0.3, output=2.5, reasoning=3.5, **QUOTED)
    assert api_costs(price) == {
        "pricing": "api", "api_model": "split", "price_date": date(2026, 1, 5),
        "price_source": "a hand-written test price", "usd_per_million_input_tokens": 0.3,
        "usd_per_million_output_tokens": 2.5, "usd_per_million_reasoning_tokens": 3.5,
        "usd_per_million_cached_input_tokens": None}


USAGE = [{"benchmark": "arith", "samples": 4, "prompt_tokens": 1000, "cached_prompt_tokens": 800,
          "output_tokens": 5000, "reasoning_tokens": 4000, "correct_answers": 2},
         {"benchmark": "gsm8k", "samples": 4, "prompt_tokens": 10, "cached_prompt_tokens": 0,
          "output_tokens": 20, "reasoning_tokens": 0, "correct_answers": 0}]


def test_benchmark_spend_prices_an_api_by_its_tokens_and_an_instance_by_its_output():
    deepseek = ApiPrice("deepseek-reasoner", input=0.28, output=0.42, cached_input=0.028, **QUOTED)
    api = benchmark_spend(USAGE, deepseek, usd_per_million_output=0.42)
    # by hand: 200 × 0.28 + 800 × 0.028 + 5000 × 0.42 per million = $0.0021784
    assert api[0]["usd_spent"] == pytest.approx(0.0021784)
    assert api[0]["usd_per_correct_answer"] == pytest.approx(0.0010892)
    assert api[1]["usd_per_correct_answer"] is None   # nothing correct: no price per correct answer
    rented = benchmark_spend(USAGE, None, usd_per_million_output=2.0)
    assert [row["usd_spent"] for row in rented] == pytest.approx([0.01, 0.00004])
    assert {key: rented[0][key] for key in ("benchmark", "samples", "output_tokens", "correct_answers")} == {
        "benchmark": "arith", "samples": 4, "output_tokens": 5000, "correct_answers": 2}


@pytest.mark.parametrize(("usage", "usd_per_million_output", "totals"), [
    # 5020 output tokens at $2/M: $0.01004 over 2 correct answers
    (USAGE, 2.0, {"prompt_tokens_spent": 1010, "cached_prompt_tokens_spent": 800, "output_tokens_spent": 5020,
                  "reasoning_tokens_spent": 4000, "usd_spent": 0.01004, "correct_answers": 2,
                  "usd_per_correct_answer": 0.00502}),
    # nothing correct anywhere: no price per correct answer
    (USAGE[1:], 2.0, {"prompt_tokens_spent": 10, "cached_prompt_tokens_spent": 0, "output_tokens_spent": 20,
                      "reasoning_tokens_spent": 0, "usd_spent": 0.00004, "correct_answers": 0,
                      "usd_per_correct_answer": None}),
])
def test_a_variant_s_spend_is_the_sum_over_its_benchmarks(usage, usd_per_million_output, totals):
    spent = spend_totals(benchmark_spend(usage, None, usd_per_million_output))
    assert spent == {key: value if value is None or isinstance(value, int) else pytest.approx(value)
                     for key, value in totals.items()}


@pytest.mark.parametrize(("price", "usd_spent"), [
    # 210 × 0.28 + 800 × 0.028 + 1020 × 0.42 + 4000 × 0.42, per million
    (ApiPrice("deepseek-reasoner", input=0.28, output=0.42, cached_input=0.028, **QUOTED), 0.0021896),
    # 210 × 1.1 + 800 × 0.275 + 1020 × 4.4 + 4000 × 4.4, per million
    (ApiPrice("o4-mini", input=1.1, output=4.4, cached_input=0.275, **QUOTED), 0.022539),
    # no cache price, reasoning apart: 1010 × 0.3 + 1020 × 2.5 + 4000 × 3.5, per million
    (ApiPrice("split", input=0.3, output=2.5, reasoning=3.5, **QUOTED), 0.016853),
])
def test_a_self_hosted_variant_s_tokens_are_priced_at_each_api(price, usd_spent):
    alternative = api_alternative(price, spend_totals(benchmark_spend(USAGE, None, 2.0)))
    assert alternative["usd_spent"] == pytest.approx(usd_spent)
    assert alternative["output_tokens_spent"] == 5020
    assert (alternative["api_model"], alternative["price_date"], alternative["price_source"]) == (
        price.model, date(2026, 1, 5), "a hand-written test price")
    assert (alternative["usd_per_million_input_tokens"], alternative["usd_per_million_output_tokens"]) == (
        price.input, price.output)


def test_priced_load_level_is_the_fastest_that_met_the_slos():
    assert usd_per_correct(0.001, 0) is None
    with pytest.raises(ValueError):
        usd_per_million_tokens(1.0, 0)
    levels = [{"load": 1, "completed": 40, "failed": 0, "output_throughput": 10.0, "request_throughput": 1.0,
               "goodput": 1.0},
              {"load": 8, "completed": 38, "failed": 2, "output_throughput": 90.0, "request_throughput": 8.0,
               "goodput": 8.0},
              {"load": 16, "completed": 40, "failed": 0, "output_throughput": 60.0, "request_throughput": 6.0,
               "goodput": 3.0},
              {"load": 4, "completed": 40, "failed": 0, "output_throughput": 40.0, "request_throughput": 4.0,
               "goodput": 4.0}]
    assert best_level(levels) == (levels[3], True)   # 16 is faster but half its requests missed the SLOs
    assert best_level(levels[2:3]) == (levels[2], False)
    # 2 of 40 failed at 8: 5%, priced when the bound allows it, and only then.
    assert best_level(levels, max_failed_share=0.05) == (levels[1], True)
    assert best_level(levels, max_failed_share=0.049) == (levels[3], True)


def test_no_level_within_the_failure_bound_names_each_levels_failures():
    levels = [{"profile": "concurrency", "load": 1, "completed": 3, "failed": 1, "output_throughput": 10.0,
               "request_throughput": 1.0, "goodput": 1.0},
              {"profile": "rate", "load": 2.5, "completed": 0, "failed": 4, "output_throughput": 0.0,
               "request_throughput": 0.0, "goodput": 0.0}]
    with pytest.raises(ValueError, match=r"at most 5.0% .*concurrency 1: 1 of 4 failed, rate 2.5: 4 of 4 failed"):
        best_level(levels, max_failed_share=0.05)
    assert best_level(levels, max_failed_share=0.25) == (levels[0], True)
