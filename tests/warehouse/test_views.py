"""The views (warehouse/views.sql): the current graded answers, the leaderboard's numbers, and the analyses
views (overthinking, break-even volumes), against figures worked out by hand on small constructed warehouses:
every row below is written by the test, so each expected number follows from them alone."""

import json
from datetime import datetime

import duckdb
import pandas as pd
import pytest

from assets.plots import break_even_chart, reasoning_chart
from pipelines.cli import main as yardstick
from resources.warehouse import WarehouseResource
from warehouse import apply_schema

pytestmark = pytest.mark.unit


AT = datetime(2026, 12, 1, 2, 0)


def _warehouse(tmp_path) -> WarehouseResource:
    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    warehouse.query("SELECT 1")   # made from the schema, views included
    return warehouse


def _published_run(warehouse: WarehouseResource, variant: str, run_id: str, config: str) -> None:
    warehouse.query("INSERT INTO evaluation_runs (run_id, variant, evaluated_at, status, config_hash) "
                    "VALUES (?, ?, ?, 'published', ?)", [run_id, variant, AT, config])


# Reasoning tokens and verdicts per (item, sample) for variant A; B answers i1 and i2 right twice, i3 wrong twice.
A_SAMPLES = {("i1", 0): (100, True), ("i1", 1): (200, True), ("i2", 0): (300, True), ("i2", 1): (400, False),
             ("i3", 0): (500, False), ("i3", 1): (600, False)}

B_CORRECT = {"i1": True, "i2": True, "i3": False}


@pytest.fixture
def overthinking(tmp_path):
    warehouse = _warehouse(tmp_path)
    for variant, run_id in (("A", "run-a"), ("B", "run-b")):
        _published_run(warehouse, variant, run_id, f"cfg-{variant}")
        for item in ("i1", "i2", "i3"):
            verdicts = ([A_SAMPLES[(item, s)][1] for s in (0, 1)] if variant == "A" else [B_CORRECT[item]] * 2)
            warehouse.query("INSERT INTO published_item_difficulty (run_id, variant, benchmark, config_hash, item_id, "
                            "samples, correct, pass_rate, majority_correct) VALUES (?, ?, 'math', ?, ?, 2, ?, ?, ?)",
                            [run_id, variant, f"cfg-{variant}", item, sum(verdicts), sum(verdicts) / 2, verdicts[0]])
            for sample, correct in enumerate(verdicts):
                reasoning = A_SAMPLES[(item, sample)][0] if variant == "A" else 50
                finish = "length" if (variant, item, sample) == ("A", "i3", 0) else "stop"
                warehouse.query("INSERT INTO published_samples VALUES (?, ?, 'math', ?, ?, ?, NULL)",
                                [run_id, variant, item, sample, correct])
                warehouse.query(
                    "INSERT INTO benchmark_generations (variant, config_hash, benchmark, item_id, sample_index, "
                    "response, finish_reason, completion_tokens, reasoning_tokens, answer_tokens, latency_seconds, "
                    "sampling, run_id, created_at) VALUES (?, ?, 'math', ?, ?, '', ?, ?, ?, 10, 1.0, '{}', ?, ?)",
                    [variant, f"cfg-{variant}", item, sample, finish, reasoning + 10, reasoning, run_id, AT])
    return warehouse


def test_overthinking_by_difficulty_and_reasoning_length_by_hand(overthinking):
    rows = overthinking.query("SELECT * FROM overthinking WHERE variant = 'A' ORDER BY grouping, bucket_order")
    by = {(row["grouping"], row["bucket"]): row for row in rows.to_dict("records")}
    every = by[("all", "all")]
    # 6 samples, 3 right; 100 + ... + 600 = 2100 reasoning tokens: 350 a sample, 700 a correct answer.
    assert (every["samples"], every["correct_samples"], every["accuracy"]) == (6, 3, 0.5)
    assert every["reasoning_tokens_mean"] == 350 and every["reasoning_tokens_per_correct"] == 700
    assert every["truncated_share"] == pytest.approx(1 / 6) and every["answer_tokens_mean"] == 10
    # Difficulty is the item's mean pass rate over both variants: i1 (1 + 1) / 2, i2 (0.5 + 1) / 2 easy; i3 0 hard.
    easy, hard = by[("difficulty", "easy")], by[("difficulty", "hard")]
    assert (easy["samples"], easy["correct_samples"], easy["reasoning_tokens_mean"]) == (4, 3, 250)
    assert easy["reasoning_tokens_per_correct"] == pytest.approx(1000 / 3)
    assert (hard["samples"], hard["accuracy"], hard["reasoning_tokens_mean"]) == (2, 0.0, 550)
    assert pd.isna(hard["reasoning_tokens_per_correct"])   # NULL: no correct answer to divide by
    assert hard["truncated_share"] == 0.5 and ("difficulty", "medium") not in by
    # Quartiles of 6 chains by length: {100, 200}, {300, 400}, {500}, {600}; the longer, the more often wrong.
    quartiles = [by[("reasoning_quartile", f"Q{q}")] for q in range(1, 5)]
    assert [q["samples"] for q in quartiles] == [2, 2, 1, 1]
    assert [q["accuracy"] for q in quartiles] == [1.0, 0.5, 0.0, 0.0]
    assert [(q["reasoning_tokens_min"], q["reasoning_tokens_max"]) for q in quartiles] == [
        (100, 200), (300, 400), (500, 500), (600, 600)]


def test_overthinking_reads_the_latest_published_run_only(overthinking):
    # A later published run of B whose samples are not in the warehouse's generations: B now shows nothing.
    overthinking.query("INSERT INTO evaluation_runs (run_id, variant, evaluated_at, status, config_hash) "
                       "VALUES ('run-b2', 'B', ?, 'published', 'cfg-B2')", [datetime(2026, 12, 2)])
    shown = overthinking.query("SELECT DISTINCT variant FROM overthinking_samples")
    assert shown["variant"].tolist() == ["A"]


H100 = {"purchase_usd": 31250.0, "power_kw": 0.7, "years": 3.0, "usd_per_kwh": 0.15, "utilisation": 0.5,
        "pue": 1.0, "nodes": 1}


@pytest.fixture
def break_even(tmp_path):
    """One H100 rented at $2/h serving 1000 output tok/s, against an API whose prices make its samples cost
    $2 for 10^6 output tokens ($2 per million, prompts included)."""
    warehouse = _warehouse(tmp_path)
    _published_run(warehouse, "h", "run-h", "cfg-h")
    warehouse.query(
        "INSERT INTO published_cost_rollup (run_id, variant, pricing, hardware, usd_per_hour, price_date, "
        "price_source, output_tokens_per_s, usd_per_million_output_tokens, ownership_terms, prompt_tokens_spent, "
        "output_tokens_spent, reasoning_tokens_spent, usd_spent, correct_answers, computed_at) "
        "VALUES ('run-h', 'h', 'instance', 'h100-1x', 2.0, '2026-01-01', 'test', 1000.0, 0.5556, ?, 0, 1000000, 0, "
        "0.5556, 1, ?)", [json.dumps(H100), AT])
    warehouse.query(
        "INSERT INTO published_api_alternatives VALUES ('run-h', 'h', 'some-api', 1.0, 2.0, '2026-01-01', 'test', "
        "2.0, 1000000, ?)", [AT])
    return warehouse


def test_break_even_volumes_by_hand(break_even):
    row = break_even.query("SELECT * FROM break_even").iloc[0]
    assert row["capacity_tokens_per_month"] == pytest.approx(1000 * 3600 * 730)   # 2.628e9 tokens
    assert row["rented_usd_per_month"] == pytest.approx(1460)                      # $2 × 730 h
    assert row["api_usd_per_million_output_tokens"] == pytest.approx(2.0)
    # Renting beats the API where $2 per million × V = $1460: V = 730 million tokens a month.
    assert row["rented_beats_api_above"] == pytest.approx(730e6)
    # Owning: $31250 over 36 months = $868.06 a month, plus energy: 0.7 kW × $0.15 for 3.6 million tokens an
    # hour = $0.029167 per million. It beats the API where 868.06 + 0.029167e-6 V = 2e-6 V: V = 440.45 million.
    assert row["owned_usd_per_month_fixed"] == pytest.approx(868.0556, rel=1e-6)
    assert row["owned_energy_usd_per_million_tokens"] == pytest.approx(0.0291667, rel=1e-5)
    assert row["owned_beats_api_above"] == pytest.approx(440.4511e6, rel=1e-6)
    # At full capacity owning costs 868.06 + 2628 × 0.029167 = $944.71 a month against $1460 rented.
    assert row["owned_vs_rented_usd_per_month"] == pytest.approx(1460 - 944.7056, rel=1e-6)


def test_break_even_curve_steps_at_capacity_and_the_api_is_linear(break_even):
    curve = break_even.query("SELECT option, tokens_per_month, usd_per_month FROM break_even_curve")
    cost = {(row["option"], row["tokens_per_month"]): row["usd_per_month"] for row in curve.to_dict("records")}
    assert cost[("api:some-api", 1e9)] == pytest.approx(2000)
    assert cost[("rented", 1e9)] == pytest.approx(1460) and cost[("rented", 5e9)] == pytest.approx(2 * 1460)
    assert cost[("owned", 1e9)] == pytest.approx(868.0556 + 29.1667, rel=1e-5)
    assert cost[("rented", 1e5)] == pytest.approx(1460)   # an instance kept up costs the same at any volume
    assert len(curve) == 3 * 7 * 3 - 3 * 2   # 3 options × 10^5 ... 5×10^11, less 2×10^11 and 5×10^11


def test_no_crossover_when_the_api_is_cheaper_at_full_load(break_even):
    # $0.2 per million: a full month of the instance's 2.628e9 tokens costs $525.6 at the API, less than $1460.
    break_even.query("UPDATE published_api_alternatives SET usd_spent = 0.2")
    row = break_even.query("SELECT * FROM break_even").iloc[0]
    assert pd.isna(row["rented_beats_api_above"]) and pd.isna(row["owned_beats_api_above"])


def test_report_fits_a_terminal_and_says_the_break_even_volumes(break_even, capsys):
    break_even.query(
        "INSERT INTO published_benchmark_scores (run_id, variant, benchmark, config_hash, protocol, k, n_items, "
        "n_samples, pass_at_1, pass_at_1_low, pass_at_1_high, cons_at_k, correct_samples, output_tokens, scored_at) "
        "VALUES ('run-h', 'h', 'math', 'cfg-h', 'deepseek-r1', 4, 50, 200, 0.5, 0.4, 0.6, 0.55, 100, 50000, ?)",
        [AT])
    break_even.query("INSERT INTO published_benchmark_costs (run_id, variant, benchmark, samples, prompt_tokens, "
                     "output_tokens, reasoning_tokens, correct_answers, usd_spent, computed_at) "
                     "VALUES ('run-h', 'h', 'math', 200, 1000, 50000, 40000, 100, 0.03, ?)", [AT])
    path = str(break_even.resolved_path)
    assert yardstick(["report", "--warehouse", path]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("h  (")
    assert "pass@1 0.500 [0.400, 0.600]  n=50 k=4  500 tokens/correct" in out   # 50000 / 100
    assert "h100-1x $2/h" in out
    assert "some-api $2/M: renting wins above 730M tok/month, owning above 440M" in out
    assert max(len(line) for line in lines) <= 100
    assert yardstick(["report", "--warehouse", path, "nope"]) == 2
    assert "no published run of nope" in capsys.readouterr().err


def test_the_charts_draw_from_the_views(break_even, overthinking):
    crossovers = break_even.query("SELECT * FROM break_even")
    chart = break_even_chart(break_even.query("SELECT * FROM break_even_curve"), crossovers, "h")
    assert chart.startswith("![chart](data:image/png;base64,")
    assert reasoning_chart(overthinking.query("SELECT * FROM overthinking")).startswith("![chart](data:image/png")


def _generation(sample: int, response: str) -> dict:
    return {"variant": "v", "config_hash": "h", "benchmark": "b", "item_id": "1", "sample_index": sample,
            "response": response, "latency_seconds": 0.1, "sampling": "{}", "run_id": "r",
            "created_at": pd.Timestamp("2026-01-01")}


def test_current_graded_answers_are_those_of_the_items_benchmark_items_holds_now(tmp_path):
    warehouse = WarehouseResource(path=str(tmp_path / "w.duckdb"))
    graded = pd.DataFrame([{"variant": "v", "config_hash": "h", "benchmark": "b", "item_id": item,
                            "sample_index": 0, "extracted": "4", "correct": True, "reason": "correct",
                            "graded_at": pd.Timestamp("2026-01-01")} for item in ("1", "2")])
    generations = pd.DataFrame([{**_generation(0, "4"), "item_id": item, "completion_tokens": 7}
                                for item in ("1", "2")])
    items = pd.DataFrame([{"variant": "v", "benchmark": "b", "item_id": "1", "position": 0, "problem": "2+2",
                           "gold": "4", "gold_raw": "4", "answer_format": "integer", "source": "test",
                           "loaded_at": pd.Timestamp("2026-01-01")}])   # item 2 is no longer in the matrix
    warehouse.insert_new("graded_answers", graded)
    warehouse.insert_new("benchmark_generations", generations)
    warehouse.insert_new("benchmark_items", items)
    warehouse.insert_new("benchmark_k", pd.DataFrame([{"variant": "v", "benchmark": "b", "k": 1}]))
    rows = warehouse.query("SELECT item_id, correct, completion_tokens, answer_format FROM current_graded_answers")
    assert rows.values.tolist() == [["1", True, 7, "integer"]]


# The view's columns that are not numbers: labels and flags. Anything else it shows is a number.
LEADERBOARD_LABELS = {"variant", "benchmark", "protocol", "quantization", "engine", "engine_version", "engine_note",
                      "priced_as", "priced_profile", "host_condition", "run_id", "superseded_by_failed_run",
                      "published_at"}

LEADERBOARD_FLAGS = {"delta_significant", "meets_slo"}


def test_leaderboard_view_keeps_numbers_numeric(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as connection:
        apply_schema(connection)
        types = dict(connection.execute("SELECT column_name, data_type FROM information_schema.columns "
                                        "WHERE table_name = 'leaderboard'").fetchall())
    numbers = set(types) - LEADERBOARD_LABELS - LEADERBOARD_FLAGS
    assert {"pass_at_1", "delta_vs_baseline_low", "priced_load", "usd_per_correct_answer"} <= numbers
    assert {name: types[name] for name in numbers if types[name] not in ("INTEGER", "BIGINT", "DOUBLE")} == {}
    assert {types[name] for name in LEADERBOARD_FLAGS} == {"BOOLEAN"}


def _published_loss(warehouse: WarehouseResource, variant: str, baseline: str, relation: str, delta: float) -> None:
    warehouse.query("INSERT INTO published_quantization_loss (run_id, variant, baseline, relation, benchmark, n_items, "
                    "pass_at_1, baseline_pass_at_1, delta, delta_low, delta_high, significant, computed_at) "
                    "VALUES (?, ?, ?, ?, 'arith', 10, 0.5, ?, ?, ?, ?, true, ?)",
                    [f"run-{variant}", variant, baseline, relation, 0.5 - delta, delta, delta - 0.1, delta + 0.1,
                     AT])


@pytest.fixture
def losses(tmp_path) -> WarehouseResource:
    """The reference 'bf16' (vLLM), its twin on llama.cpp 'bf16-gguf' (compared with the reference alone), and two
    4-bit variants: 'w4' on vLLM (its twin is the reference) and 'q4' on llama.cpp (its twin, then the reference)."""
    warehouse = _warehouse(tmp_path)
    for variant in ("bf16", "bf16-gguf", "w4", "q4"):
        _published_run(warehouse, variant, f"run-{variant}", f"cfg-{variant}")
        warehouse.query(
            "INSERT INTO published_benchmark_scores (run_id, variant, benchmark, config_hash, protocol, k, n_items, "
            "n_samples, pass_at_1, pass_at_1_low, pass_at_1_high, cons_at_k, correct_samples, output_tokens, "
            "scored_at) VALUES (?, ?, 'arith', ?, 'deepseek-r1', 1, 10, 10, 0.5, 0.2, 0.8, 0.5, 5, 100, ?)",
            [f"run-{variant}", variant, f"cfg-{variant}", AT])
    _published_loss(warehouse, "bf16-gguf", "bf16", "reference", -0.05)
    _published_loss(warehouse, "w4", "bf16", "twin", -0.2)
    _published_loss(warehouse, "q4", "bf16-gguf", "twin", -0.1)
    _published_loss(warehouse, "q4", "bf16", "reference", -0.15)
    return warehouse


def test_the_leaderboard_shows_the_twins_delta_and_the_references_beside_it_once_per_benchmark(losses):
    board = losses.query("SELECT variant, delta_vs_baseline, delta_vs_baseline_low, delta_vs_reference, "
                         "delta_vs_reference_high FROM leaderboard ORDER BY variant")
    assert board.astype(object).where(board.notna(), None).values.tolist() == [
        ["bf16", None, None, None, None],
        ["bf16-gguf", None, None, pytest.approx(-0.05), pytest.approx(0.05)],
        ["q4", pytest.approx(-0.1), pytest.approx(-0.2), pytest.approx(-0.15), pytest.approx(-0.05)],
        ["w4", pytest.approx(-0.2), pytest.approx(-0.3), None, None]]


def test_the_report_says_each_variants_difference_from_its_twin_then_the_reference(losses, capsys):
    assert yardstick(["report", "--warehouse", str(losses.resolved_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    q4 = lines[lines.index(next(line for line in lines if line.startswith("q4  ("))):]
    assert q4[2:4] == ["  vs twin    bf16-gguf: arith -0.100 [-0.200, +0.000]",
                       "  vs ref     bf16: arith -0.150 [-0.250, -0.050]"]
    assert "  vs twin    bf16: arith -0.200 [-0.300, -0.100]" in lines
    assert not any(line.startswith("  vs ") for line in lines[:lines.index("")])   # bf16, the reference: none
