"""Regressions between two runs of a variant, against hand calculations: McNemar's exact test on paired samples,
and the serving thresholds."""

import dagster as dg
import pandas as pd
import pytest

from assets.leaderboard.history import what_changed
from assets.leaderboard.regressions import accuracy_findings, mcnemar_exact_p, serving_findings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("worse", "better", "p"), [
    (0, 0, 1.0),
    (6, 0, 2 / 64),             # every one of 6 discordant pairs the same way: 2 × (1/2)^6
    (5, 0, 2 / 32),
    (7, 1, 2 * (1 + 8) / 256),  # P(X ≤ 1) for X ~ Binomial(8, 1/2), doubled
    (3, 3, 1.0),
])
def test_mcnemar_exact_p_by_hand(worse, better, p):
    assert mcnemar_exact_p(worse, better) == pytest.approx(p)
    assert mcnemar_exact_p(better, worse) == pytest.approx(p)


def _samples(correct: dict[str, list[bool]]) -> pd.DataFrame:
    return pd.DataFrame([{"benchmark": "arith", "item_id": item, "sample_index": index, "correct": value}
                         for item, values in correct.items() for index, value in enumerate(values)])


def test_an_unchanged_run_flags_nothing_and_a_worse_one_names_the_flipped_items():
    first = {f"q{n}": [n % 3 != 0, n % 2 == 0] for n in range(12)}
    (same,) = accuracy_findings(_samples(first), _samples(first))
    assert not same.regressed and same.evidence["right_to_wrong"] == same.evidence["wrong_to_right"] == 0
    assert same.evidence["p_value"] == 1.0

    worse = {item: [False, False] if item in ("q1", "q2", "q4", "q5") else values for item, values in first.items()}
    (finding,) = accuracy_findings(_samples(first), _samples(worse))
    # q1: [T, F] → 1 flip; q2: [T, T] → 2; q4: [T, T] → 2; q5: [T, F] → 1; none the other way: p = 2 / 2^6
    assert finding.evidence["right_to_wrong"] == 6 and finding.evidence["wrong_to_right"] == 0
    assert finding.evidence["p_value"] == pytest.approx(2 / 64) and finding.regressed
    assert finding.evidence["flipped_to_wrong"] == ["q1", "q2", "q4", "q5"]
    assert finding.before == pytest.approx(sum(map(sum, first.values())) / 24)
    assert finding.after == pytest.approx((sum(map(sum, first.values())) - 6) / 24)


def test_a_small_drop_is_not_called_a_regression():
    first = {f"q{n}": [True, True] for n in range(10)}
    slightly = {**first, "q0": [False, True], "q1": [True, False]}
    (finding,) = accuracy_findings(_samples(first), _samples(slightly))
    assert finding.evidence["right_to_wrong"] == 2 and not finding.regressed   # p = 0.5


def test_samples_only_one_run_graded_are_not_compared():
    first = _samples({"q0": [True, True], "q1": [True, True]})
    later = _samples({"q0": [True, True], "q1": [True, True], "q2": [False, False]})
    (finding,) = accuracy_findings(first, later)
    assert finding.evidence["shared_samples"] == 4 and finding.after == 1.0


LEVEL = {"best_profile": "concurrency", "best_load": 4.0, "output_tokens_per_s": 1000.0, "ttft_ms_p99": 200.0,
         "tpot_ms_p99": 20.0, "usd_per_million_output_tokens": 2.0}


def test_serving_thresholds_by_hand():
    slower = {**LEVEL, "output_tokens_per_s": 800.0, "ttft_ms_p99": 260.0, "tpot_ms_p99": 27.0,
              "usd_per_million_output_tokens": 2.5}
    findings = {f.kind: f for f in serving_findings(LEVEL, slower, 0.15, 0.30, 0.15)}
    assert findings["throughput"].regressed and findings["throughput"].evidence["change"] == pytest.approx(-0.2)
    assert not findings["latency ttft_ms_p99"].regressed          # +30% is the threshold, not beyond it
    assert findings["latency tpot_ms_p99"].regressed              # +35%
    assert findings["cost"].regressed and findings["cost"].evidence["change"] == pytest.approx(0.25)
    assert all(f.evidence["same_level"] for f in findings.values())
    steady = serving_findings(LEVEL, {**LEVEL, "output_tokens_per_s": 900.0}, 0.15, 0.30, 0.15)
    assert not any(f.regressed for f in steady)


def test_a_latency_rise_under_the_floor_is_noise():
    """On a small machine the p99 of a few dozen requests jumps by tens of ms between identical runs (measured:
    TTFT p99 39 → 71 ms on two cores): a rise must pass both the share and the floor."""
    jitter = {**LEVEL, "ttft_ms_p99": 39.0}
    findings = {f.kind: f for f in serving_findings(jitter, {**jitter, "ttft_ms_p99": 71.0}, 0.15, 0.30, 0.15, 50.0)}
    assert not findings["latency ttft_ms_p99"].regressed and findings["latency ttft_ms_p99"].evidence["rise_ms"] == 32
    findings = {f.kind: f for f in serving_findings(LEVEL, {**LEVEL, "ttft_ms_p99": 400.0}, 0.15, 0.30, 0.15, 50.0)}
    assert findings["latency ttft_ms_p99"].regressed


def test_what_changed_between_runs():
    before = {"model_sha": "a1", "engine_version": "0.32.0", "grader_version": "g1", "seeded": True}
    assert what_changed(None, before) == ["first run"]
    assert what_changed(before, dict(before)) == []
    assert what_changed(before, {**before, "model_sha": "b2"}) == ["model_sha: a1 → b2"]


def test_a_run_records_the_engine_note_of_its_latest_deployment_even_when_there_is_none(tmp_path):
    """A variant served by its fallback, then (on a host whose vLLM has the kernel) by vLLM: the second run's
    evaluation has no engine note, and says what changed; a deployment that failed to start is not what served."""
    from assets.leaderboard.history import evaluated
    from resources.warehouse import WarehouseResource

    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    insert = ("INSERT INTO engine_deployments (variant, run_id, engine, base_url, served_model, started_at, status, "
              "engine_note) VALUES ('v', ?, ?, '', 'v', ?, ?, ?)")
    note = "served by transformers, its fallback"
    warehouse.query(insert, ["r1", "transformers", "2026-12-01 10:00", "stopped", note])
    with warehouse.connect() as connection:
        first = evaluated(connection, "v", "h")
    warehouse.query(insert, ["r2", "vllm", "2026-12-02 10:00", "stopped", None])
    warehouse.query(insert, ["r3", "transformers", "2026-12-03 10:00", "failed", note])
    with warehouse.connect() as connection:
        second = evaluated(connection, "v", "h")
    assert first["engine_note"] == note and second["engine_note"] is None
    assert f"engine_note: {note} → None" in what_changed(first, second)


def test_the_cross_variant_dependencies_are_in_the_asset_graph():
    """The leaderboard shows every variant, so it is one unpartitioned asset over every variant's published
    evaluation; a quantized variant's loss depends on its baseline's scores partition as well as its own."""
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    board = graph.get(dg.AssetKey("leaderboard"))
    assert board.partitions_def is None and dg.AssetKey("published_evaluation") in board.parent_keys
    upstream = graph.get_parent_partition_keys_for_child("tiny-test-w8a16", dg.AssetKey("benchmark_scores"),
                                                         dg.AssetKey("quantization_loss")).partitions_subset
    assert set(upstream.get_partition_keys()) == {"tiny-test-w8a16", "tiny-test"}   # its own and its baseline's
