"""The definitions (pipelines/definitions.py): loadable, served by the Dagster webserver, and end to end through
dg.materialize with the real CPU engine and the real tiny model, offline.

Each test owns its warehouse. The module's first run (a module fixture, on the session's tiny model) fills one;
every test that builds on that finished work (the rerun, the quantized twin, the corrupted score, the API
baseline) gets a private copy of it, so what one test writes or breaks is never seen by another and no test
depends on another having run before it.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import httpx
import pandas as pd
import pytest
import yaml

from assets.engine.requests import sample_seed
from assets.grading.defs import graded_answers
from assets.matrix import load_matrix
from assets.scoring import defs as scoring_defs
from assets.scoring.metrics import BenchmarkScore
from pipelines.definitions import ALL_ASSETS, defs
from resources.launchers.readiness import free_port
from resources.matrix import MatrixResource
from resources.warehouse import WarehouseResource
from tests.conftest import ROOT, STATE, engine_processes, live_processes, needs_shared

MATRIX = load_matrix()

TABLES = ["benchmark_items", "model_snapshots", "quantized_models", "benchmark_generations", "graded_answers",
          "benchmark_scores", "serving_load_levels", "serving_request_timings", "cost_rollup"]


def materialize(variant: str, warehouse: WarehouseResource, raise_on_error: bool = True,
                **resources) -> dg.ExecuteInProcessResult:
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(partition_key=variant, raise_on_error=raise_on_error,
                                  resources={**defs.resources, "warehouse": warehouse, **resources})


def counts(warehouse: WarehouseResource, variant: str) -> dict[str, int]:
    return {table: int(warehouse.query(f"SELECT count(*) AS n FROM {table} WHERE variant = ?",
                                       [variant]).iloc[0]["n"]) for table in TABLES}


def expected_samples(variant: str) -> int:
    spec = MATRIX.variant(variant)
    return sum(items * spec.protocol.samples_for(name) for name, items in spec.benchmarks.items())


@dataclass(frozen=True)
class FirstRun:
    result: dg.ExecuteInProcessResult
    warehouse: WarehouseResource


@pytest.fixture(scope="module")
def first_run(tiny_model, tmp_path_factory) -> FirstRun:
    """The whole chain for tiny-test, once for the module, into a warehouse of its own."""
    warehouse = WarehouseResource(path=str(tmp_path_factory.mktemp("first-run") / "warehouse.duckdb"))
    return FirstRun(materialize("tiny-test", warehouse), warehouse)


@pytest.fixture
def warehouse(first_run, tmp_path) -> WarehouseResource:
    """This test's own warehouse: a copy of the first run's (its connections are closed), so the test builds on
    that finished work without writing to it."""
    source, copy = first_run.warehouse.resolved_path, tmp_path / "warehouse.duckdb"
    for suffix in ("", ".wal"):   # a write-ahead log, where DuckDB left one, belongs with its file
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", f"{copy}{suffix}")
    return WarehouseResource(path=str(copy))


@pytest.mark.integration
@needs_shared
def test_whole_chain_fills_the_warehouse(first_run):
    result, warehouse = first_run.result, first_run.warehouse
    assert result.success
    found = counts(warehouse, "tiny-test")
    spec = MATRIX.variant("tiny-test")
    assert found["benchmark_items"] == sum(spec.benchmarks.values())
    assert found["benchmark_generations"] == expected_samples("tiny-test")
    assert found["graded_answers"] == expected_samples("tiny-test")
    assert found["benchmark_scores"] == len(spec.benchmarks)
    assert found["serving_load_levels"] == len(spec.serving.concurrency) + len(spec.serving.request_rates)
    assert found["serving_request_timings"] == found["serving_load_levels"] * spec.serving.requests_per_level
    telemetry = warehouse.query("SELECT gpu_telemetry, gpu_energy_j FROM serving_load_levels WHERE variant = ?",
                                [spec.name])
    assert telemetry["gpu_telemetry"].str.startswith("not measured: ").all()   # no GPU here: it says why
    assert telemetry["gpu_energy_j"].isna().all()
    assert found["cost_rollup"] == 1
    checks = result.get_asset_check_evaluations()
    assert checks and all(check.passed for check in checks)
    assert {check.check_name for check in checks} == {"benchmark_scores_are_valid", "accuracy_did_not_regress",
                                                      "serving_did_not_regress"}
    runs = warehouse.query("SELECT * FROM evaluation_runs")
    assert runs[["run_id", "variant", "status", "run_trigger"]].values.tolist() == [
        [result.run_id, "tiny-test", "published", "manual"]]
    assert runs["model_sha"].notna().all() and runs["grader_version"].notna().all() and runs["seeded"].all()
    assert (warehouse.query("SELECT run_id FROM leaderboard")["run_id"] == result.run_id).all()
    assert len(warehouse.query("SELECT * FROM published_samples")) == expected_samples("tiny-test")
    scores = warehouse.query("SELECT * FROM benchmark_scores WHERE variant = 'tiny-test'")
    assert ((scores.pass_at_1_low <= scores.pass_at_1) & (scores.pass_at_1 <= scores.pass_at_1_high)).all()
    tokens = warehouse.query("SELECT count(*) AS n FROM benchmark_generations WHERE variant = 'tiny-test' "
                             "AND (reasoning_tokens IS NULL OR reasoning_tokens + answer_tokens <> completion_tokens)")
    assert tokens.iloc[0]["n"] == 0
    seeds = warehouse.query("SELECT benchmark, item_id, sample_index, seed FROM benchmark_generations "
                            "WHERE variant = 'tiny-test'")
    assert [row.seed for row in seeds.itertuples()] == [
        sample_seed(row.benchmark, row.item_id, row.sample_index) for row in seeds.itertuples()]
    by_k = warehouse.query("SELECT benchmark, max(k) AS k FROM benchmark_pass_at_k WHERE variant = 'tiny-test' "
                           "GROUP BY ALL ORDER BY ALL")
    assert (dict(zip(by_k["benchmark"], by_k["k"], strict=True))
            == {name: spec.protocol.samples_for(name) for name in spec.benchmarks})
    difficulty = warehouse.query("SELECT count(*) AS n FROM item_difficulty WHERE variant = 'tiny-test'")
    assert difficulty.iloc[0]["n"] == sum(spec.benchmarks.values())
    board = warehouse.query("SELECT * FROM leaderboard WHERE variant = 'tiny-test'")
    assert len(board) == len(spec.benchmarks) and board["usd_per_million_output_tokens"].notna().all()
    assert board["ttft_ms_p99"].notna().all() and board["tpot_ms_p99"].notna().all() and board["meets_slo"].all()
    serving = {m.asset_key.to_user_string(): m.metadata for m in result.asset_materializations_for_node("engine_step")}
    assert serving["serving_benchmark"]["throughput_against_latency"].value.startswith("![chart](data:image/png")
    board_metadata = result.asset_materializations_for_node("leaderboard")[0].metadata
    assert {f"pareto_{name}" for name in spec.benchmarks} <= set(board_metadata)
    deployment = warehouse.query("SELECT memory_plan, peak_rss_bytes FROM engine_deployments "
                                 "WHERE variant = 'tiny-test' ORDER BY started_at DESC LIMIT 1").iloc[0]
    assert deployment["peak_rss_bytes"] > 50 * 2**20   # a real server process: torch alone is more than that
    plan = json.loads(deployment["memory_plan"])
    snapshot = warehouse.query("SELECT * FROM model_snapshots WHERE variant = 'tiny-test'").iloc[0]
    assert plan["weight_source"] == "checkpoint" and plan["kv_bytes_per_token"] == (
        snapshot["num_layers"] * snapshot["num_kv_heads"] * snapshot["head_dim"] * 2 * 2)   # bf16
    assert engine_processes(str(STATE)) == []


@pytest.mark.integration
@needs_shared
def test_second_run_reuses_finished_work(warehouse):
    before = counts(warehouse, "tiny-test")
    result = materialize("tiny-test", warehouse)
    assert result.success
    assert counts(warehouse, "tiny-test") == before
    generations = result.asset_materializations_for_node("engine_step")
    reused = {m.asset_key.to_user_string(): m.metadata for m in generations}["benchmark_generations"]
    assert reused["generated_this_run"].value == 0
    assert reused["reused"].value == expected_samples("tiny-test")
    assert engine_processes(str(STATE)) == []


@pytest.mark.integration
@needs_shared
def test_a_new_grader_version_regrades_once_without_generating(warehouse, monkeypatch):
    sample = ("SELECT benchmark, item_id, sample_index FROM graded_answers WHERE variant = 'tiny-test' "
              "ORDER BY ALL LIMIT 1")
    # As if the grader that graded it had judged one sample the other way:
    warehouse.query(f"UPDATE graded_answers SET correct = NOT correct WHERE variant = 'tiny-test' AND "
                    f"(benchmark, item_id, sample_index) IN ({sample})")
    generations = "SELECT count(*) AS n, max(created_at) AS last FROM benchmark_generations"
    before = warehouse.query(generations).iloc[0].tolist()
    monkeypatch.setattr("assets.grading.defs.GRADER_VERSION", "rules of a test")
    def grade() -> dict:
        result = dg.materialize([graded_answers], partition_key="tiny-test",
                                resources={"matrix": defs.resources["matrix"], "warehouse": warehouse})
        return {key: value.value for key, value in result.asset_materializations_for_node("graded_answers")[0]
                .metadata.items()}

    regraded = grade()
    samples = expected_samples("tiny-test")
    assert regraded["graded_this_run"] == regraded["regraded"] == samples
    assert regraded["verdicts_changed"] == 1
    assert warehouse.query("SELECT DISTINCT grader_version FROM graded_answers")["grader_version"].tolist() == [
        "rules of a test"]
    assert warehouse.query(generations).iloc[0].tolist() == before   # nothing generated again
    assert grade()["graded_this_run"] == 0                           # once


@pytest.mark.integration
@needs_shared
def test_killed_engine_resumes_without_duplicates(warehouse):   # holds the first run: the unquantized twin
    """Kill the engine while it generates; the run fails, keeps what finished, and a rerun completes."""
    variant = "tiny-test-w8a16"
    killed = threading.Event()

    def kill_engine_mid_generation():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed.is_set():
            stored = warehouse.query("SELECT count(*) AS n FROM benchmark_generations WHERE variant = ?",
                                     [variant]).iloc[0]["n"]
            pids = engine_processes(str(STATE))
            if stored >= 1 and pids:
                for pid in pids:
                    os.killpg(pid, signal.SIGKILL)
                killed.set()
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_engine_mid_generation, daemon=True)
    killer.start()
    failed = materialize(variant, warehouse, raise_on_error=False)
    killer.join()
    assert killed.is_set(), "the engine was never seen generating"
    assert not failed.success
    kept = counts(warehouse, variant)["benchmark_generations"]
    assert 0 < kept < expected_samples(variant)
    assert engine_processes(str(STATE)) == []

    rerun = materialize(variant, warehouse)
    assert rerun.success
    generations = warehouse.query(
        "SELECT benchmark, item_id, sample_index, count(*) AS n FROM benchmark_generations WHERE variant = ? "
        "GROUP BY ALL", [variant])
    assert len(generations) == expected_samples(variant)
    assert (generations["n"] == 1).all()
    metadata = {m.asset_key.to_user_string(): m.metadata for m in rerun.asset_materializations_for_node("engine_step")}
    assert metadata["benchmark_generations"]["reused"].value == kept
    assert engine_processes(str(STATE)) == []

    # its load test sent the arith items' prompts, as the evaluation renders them
    levels = warehouse.query("SELECT prompts, input_len, completed FROM serving_load_levels WHERE variant = ?",
                             [variant])
    assert (levels["prompts"] == "arith").all() and (levels["completed"] > 0).all()
    assert (levels["input_len"] > 10).all()   # the mean the engine counted, not the synthetic target

    # the quantized variant is compared with its unquantized twin on the same items
    loss = warehouse.query("SELECT * FROM quantization_loss WHERE variant = ?", [variant])
    spec = MATRIX.variant(variant)
    assert sorted(loss["benchmark"]) == sorted(spec.benchmarks) and (loss["baseline"] == "tiny-test").all()
    assert (loss["n_items"] == [spec.benchmarks[b] for b in loss["benchmark"]]).all()
    assert ((loss["delta_low"] <= loss["delta"]) & (loss["delta"] <= loss["delta_high"])).all()
    assert (loss["delta"] - (loss["pass_at_1"] - loss["baseline_pass_at_1"])).abs().max() < 1e-12
    board = warehouse.query("SELECT delta_vs_baseline FROM leaderboard WHERE variant = ?", [variant])
    assert board["delta_vs_baseline"].notna().all()


@pytest.mark.integration
@needs_shared
def test_corrupted_score_fails_the_check_and_stops_the_cost_rollup(warehouse, monkeypatch):
    real = scoring_defs.score_benchmark

    def corrupted(grades, same):
        score, by_k, items = real(grades, same)
        return BenchmarkScore(**{**score.__dict__, "pass_at_1": 1.7}), by_k, items

    published = warehouse.query("SELECT * FROM leaderboard ORDER BY ALL")
    assert len(published) and published["superseded_by_failed_run"].isna().all()
    monkeypatch.setattr(scoring_defs, "score_benchmark", corrupted)
    warehouse.replace_partition("cost_rollup", "tiny-test", warehouse.query("SELECT * FROM cost_rollup LIMIT 0"))
    result = materialize("tiny-test", warehouse, raise_on_error=False)
    assert not result.success
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 1 and not checks[0].passed
    assert checks[0].metadata["failures"].value.keys() >= {"pass_at_1 in [0, 1]", "interval brackets score"}
    assert result.asset_materializations_for_node("cost_rollup") == []
    assert result.asset_materializations_for_node("published_evaluation") == []
    assert counts(warehouse, "tiny-test")["cost_rollup"] == 0
    assert engine_processes(str(STATE)) == []

    # Written, audited, not published: the corrupted 1.7 is in the staging table only. The leaderboard view and
    # `yardstick leaderboard` show what the last passing run published, marked superseded by the failed run.
    assert (warehouse.query("SELECT pass_at_1 FROM benchmark_scores WHERE variant = 'tiny-test'")["pass_at_1"]
            == 1.7).all()
    after = warehouse.query("SELECT * FROM leaderboard ORDER BY ALL")
    columns = [name for name in after.columns if name != "superseded_by_failed_run"]
    assert after[columns].equals(published[columns])
    assert (after["superseded_by_failed_run"] == result.run_id).all()
    failed = warehouse.query("SELECT status, evidence FROM evaluation_runs WHERE run_id = ?", [result.run_id])
    assert failed["status"].tolist() == ["failed_check"] and "pass_at_1 in [0, 1]" in failed["evidence"].iloc[0]
    out = subprocess.run([str(Path(sys.executable).parent / "yardstick"), "leaderboard", "--warehouse",
                          str(warehouse.resolved_path)], capture_output=True, text=True, timeout=120, check=True)
    assert "tiny-test" in out.stdout and not re.search(r"\|\s*1\.7\s*\|", out.stdout)
    assert f"evaluation run {result.run_id[:8]}" in out.stderr and "failed the scores check" in out.stderr


@pytest.mark.integration
@needs_shared
def test_history_and_regressions_over_three_runs(tiny_model, tmp_path, monkeypatch):
    """Three simulated evaluation runs of one variant (60 arithmetic items, k = 2). The engine generates the samples
    first; they are then rewritten to the gold answers, standing for a model that gets everything right (the
    tiny model's own accuracy is not what is tested). Run one publishes them. Run two changes nothing: its samples
    are reused, every pair agrees, and no accuracy regression is flagged. Run three stands for a worse model served
    under the same name: every answer is rewritten wrong and graded again (a new grader version): the paired test
    flags the drop and lists the items that flipped; the history shows the three runs."""
    body = yaml.safe_load((ROOT / "tests" / "matrix.test.yaml").read_text())
    body["defaults"]["benchmarks"] = {"arith": 60}
    body["defaults"]["protocol"] = {**body["defaults"]["protocol"], "k_by_benchmark": {}}
    body["variants"] = {"tiny-test": body["variants"]["tiny-test"]}
    (tmp_path / "matrix.yaml").write_text(yaml.safe_dump(body))
    matrix = MatrixResource(path=str(tmp_path / "matrix.yaml"),
                            benchmark_mirror=defs.resources["matrix"].benchmark_mirror)
    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    resources = {**defs.resources, "warehouse": warehouse, "matrix": matrix}
    generated = dg.materialize(ALL_ASSETS, partition_key="tiny-test", resources=resources, selection=dg.AssetSelection
                               .assets("engine_deployment", "benchmark_generations", "serving_benchmark").upstream())
    assert generated.success

    def answer_all(answer_sql: str) -> None:
        warehouse.query(f"UPDATE benchmark_generations g SET response = '</think>\\boxed{{' || ({answer_sql}) || '}}' "
                        "FROM benchmark_items i WHERE i.variant = g.variant AND i.benchmark = g.benchmark "
                        "AND i.item_id = g.item_id AND g.variant = 'tiny-test'")

    def run_and_checks() -> tuple[str, dict]:
        result = materialize("tiny-test", warehouse, matrix=matrix)
        assert result.success
        return result.run_id, {check.check_name: check for check in result.get_asset_check_evaluations()}

    answer_all("i.gold")
    first, checks = run_and_checks()
    assert checks["accuracy_did_not_regress"].passed and "first published run" in str(
        checks["accuracy_did_not_regress"].metadata["compared_with"].value)
    assert warehouse.query("SELECT bool_and(correct) AS all_right, count(*) AS n FROM published_samples WHERE "
                           "run_id = ?", [first]).iloc[0].tolist() == [True, 120]

    second, checks = run_and_checks()
    assert checks["accuracy_did_not_regress"].passed
    found = warehouse.query("SELECT * FROM regression_findings WHERE run_id = ? AND kind = 'accuracy'", [second])
    assert len(found) == 1 and not found["regressed"].any() and found["value_before"].equals(found["value_after"])

    answer_all("'-' || i.gold || '1'")   # a wrong answer for every item
    monkeypatch.setattr("assets.grading.defs.GRADER_VERSION", "rules of a worse model's test")
    third, checks = run_and_checks()
    accuracy = checks["accuracy_did_not_regress"]
    assert not accuracy.passed and accuracy.severity == dg.AssetCheckSeverity.WARN
    evidence = accuracy.metadata["evidence"].value["accuracy arith"]
    assert (evidence["right_to_wrong"], evidence["wrong_to_right"]) == (120, 0) and evidence["p_value"] < 1e-30
    items = warehouse.query("SELECT item_id FROM benchmark_items WHERE variant = 'tiny-test'")["item_id"]
    assert evidence["flipped_to_wrong"] == sorted(items)[:20]
    view = warehouse.query("SELECT * FROM regressions WHERE kind = 'accuracy'")
    assert view[["variant", "subject", "run_id", "previous_run_id", "value_before", "value_after"]].values.tolist() == [
        ["tiny-test", "arith", third, second, 1.0, 0.0]]

    command = [str(Path(sys.executable).parent / "yardstick")]
    flagged = subprocess.run([*command, "regressions", "--fail-on-regression", "--warehouse",
                              str(warehouse.resolved_path)], capture_output=True, text=True, timeout=120)
    assert flagged.returncode == 1 and "accuracy" in flagged.stdout
    history = subprocess.run([*command, "history", "tiny-test", "--warehouse", str(warehouse.resolved_path)],
                             capture_output=True, text=True, timeout=120, check=True).stdout
    lines = [line for line in history.splitlines() if line.startswith("|") and "published" in line]
    assert len(lines) == 3
    assert "first run" in lines[0] and "nothing" in lines[1] and "grader_version" in lines[2]
    assert [line.split("|")[6].strip() for line in lines] == ["1", "1", "0"]   # pass@1 arith


@pytest.mark.integration
@needs_shared
def test_api_baseline_is_an_external_variant_priced_from_its_token_use(warehouse, monkeypatch, tmp_path):
    """An endpoint that already runs (here the CPU engine serving the tiny model, started outside the
    pipeline) evaluated as a variant with no weights of its own, and billed at an API's list prices."""
    model_path = warehouse.query("SELECT local_path FROM model_snapshots WHERE variant = 'tiny-test'").iloc[0, 0]
    spec = MATRIX.variant("tiny-test")
    endpoint = defs.resources["engine"].deploy(spec.engine, model_path, served_name="tiny-endpoint",
                                               log_name="already-running-endpoint",
                                               warmup_sampling={"temperature": spec.protocol.temperature,
                                                                "top_p": spec.protocol.top_p})
    with endpoint as running:
        # The endpoint serves the model under its path (transformers serve pins one); the variant names it so.
        matrix = tmp_path / "matrix.yaml"
        matrix.write_text(MATRIX.path.read_text().replace("model: tiny-endpoint", f"model: {running.served_model}"))
        monkeypatch.setenv("YARDSTICK_TEST_ENDPOINT", running.base_url)
        mirror = defs.resources["matrix"].benchmark_mirror   # the wired matrix's offline benchmark mirror
        result = materialize("tiny-test-api", warehouse,
                             matrix=MatrixResource(path=str(matrix), benchmark_mirror=mirror))
        assert result.success
        assert engine_processes(str(STATE)) == [running.pid]   # the pipeline started no engine of its own
    found = counts(warehouse, "tiny-test-api")
    assert found["benchmark_generations"] == expected_samples("tiny-test-api")
    assert found["serving_load_levels"] == 0   # an API is not load-tested unless its serving levels ask for it
    snapshot = warehouse.query("SELECT source, repo, local_path FROM model_snapshots WHERE variant = 'tiny-test-api'")
    assert snapshot.iloc[0].to_dict() == {"source": "external", "repo": model_path, "local_path": None}

    # The bill, computed here from the stored token counts at deepseek-reasoner's list prices per million.
    usage = warehouse.query(
        "SELECT benchmark, sum(prompt_tokens) AS p, sum(completion_tokens) AS c, "
        "count(*) FILTER (WHERE prompt_tokens IS NULL OR completion_tokens IS NULL) AS unreported "
        "FROM benchmark_generations WHERE variant = 'tiny-test-api' GROUP BY ALL")
    assert usage["unreported"].sum() == 0 and (usage["p"] > 0).all()
    rollup = warehouse.query("SELECT * FROM cost_rollup WHERE variant = 'tiny-test-api'").iloc[0]
    assert rollup["pricing"] == "api" and rollup["api_model"] == "deepseek-reasoner"
    assert rollup["usd_per_million_output_tokens"] == pytest.approx(0.42)
    # Its cache-hit price is on record; this endpoint reports no prompt cache, so every prompt token is a miss.
    assert rollup["usd_per_million_cached_input_tokens"] == pytest.approx(0.028)
    assert rollup["cached_prompt_tokens_spent"] == 0
    expected = (usage["p"].sum() * 0.28 + usage["c"].sum() * 0.42) / 1e6
    assert rollup["usd_spent"] == pytest.approx(expected, rel=1e-9)
    per_benchmark = warehouse.query("SELECT benchmark, usd_spent, correct_answers, usd_per_correct_answer "
                                    "FROM benchmark_costs WHERE variant = 'tiny-test-api'")
    assert per_benchmark["usd_spent"].sum() == pytest.approx(expected, rel=1e-9)
    answered = per_benchmark[per_benchmark["correct_answers"] > 0]
    assert (answered["usd_per_correct_answer"] * answered["correct_answers"]).to_numpy() == pytest.approx(
        answered["usd_spent"].to_numpy())
    board = warehouse.query("SELECT * FROM leaderboard WHERE variant = 'tiny-test-api'")
    assert (board["priced_as"] == "api:deepseek-reasoner").all() and board["engine"].eq("external").all()
    assert engine_processes(str(STATE)) == []


@pytest.mark.integration
@needs_shared
def test_the_chain_through_vllm(tiny_model, tmp_path):
    """The same assets with vLLM's CPU build as the engine: recorded with the version that ran, every sample
    seeded, the load levels at exact output lengths, and nothing left running."""
    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    variant, spec = "tiny-test-vllm", MATRIX.variant("tiny-test-vllm")
    result = materialize(variant, warehouse)
    assert result.success
    found = counts(warehouse, variant)
    assert found["benchmark_generations"] == found["graded_answers"] == expected_samples(variant)
    deployment = warehouse.query("SELECT * FROM engine_deployments WHERE variant = ?", [variant]).iloc[0]
    assert deployment["engine"] == "vllm" and deployment["status"] == "stopped"
    assert deployment["engine_version"] and deployment["engine_version"][0].isdigit()
    assert "--reasoning-parser deepseek_r1" in deployment["argv"]
    seeds = warehouse.query("SELECT benchmark, item_id, sample_index, seed FROM benchmark_generations "
                            "WHERE variant = ?", [variant])
    assert [row.seed for row in seeds.itertuples()] == [
        sample_seed(row.benchmark, row.item_id, row.sample_index) for row in seeds.itertuples()]
    timings = warehouse.query("SELECT ok, output_tokens FROM serving_request_timings WHERE variant = ?", [variant])
    assert len(timings) == found["serving_load_levels"] * spec.serving.requests_per_level
    assert timings["ok"].all() and (timings["output_tokens"] == spec.serving.output_len).all()
    levels = warehouse.query("SELECT engine_preemptions, engine_queue_time_ms_mean FROM serving_load_levels "
                             "WHERE variant = ?", [variant])
    assert levels.notna().all().all()   # vLLM's own counters, read around every level
    assert live_processes(str(STATE), "vllm") == []


@pytest.mark.integration
@needs_shared
def test_the_chain_through_llamacpp(tiny_model, tmp_path):
    """The same assets with llama.cpp as the engine, on a Q4_K_M file llama-quantize made: the file's tensors of
    the type asked, the quantization and the deployment recorded with llama.cpp's version and commit, every sample
    seeded, the reasoning split by the engine, exact output lengths, the memory plan stored
    beside the measured RSS, and nothing left running."""
    from gguf import GGUFReader

    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    variant, spec = "tiny-test-llamacpp", MATRIX.variant("tiny-test-llamacpp")
    assert materialize(variant, warehouse).success
    found = counts(warehouse, variant)
    assert found["benchmark_generations"] == found["graded_answers"] == expected_samples(variant)
    made = warehouse.query("SELECT * FROM quantized_models WHERE variant = ?", [variant]).iloc[0]
    assert made["scheme"] == "Q4_K_M" and made["tool"] == "llama.cpp" and "commit" in made["tool_version"]
    assert made["bytes_after"] < made["bytes_before"] and made["local_path"].endswith(".gguf")
    weights = {t.name: t.tensor_type.name for t in GGUFReader(made["local_path"]).tensors if len(t.shape) == 2}
    assert set(weights.values()) <= {"Q4_K", "Q6_K"} and list(weights.values()).count("Q4_K") > len(weights) / 2
    deployment = warehouse.query("SELECT * FROM engine_deployments WHERE variant = ?", [variant]).iloc[0]
    assert deployment["engine"] == "llamacpp" and deployment["status"] == "stopped"
    assert deployment["engine_version"] == made["tool_version"]
    assert "--reasoning-format deepseek" in deployment["argv"]
    planned = json.loads(deployment["memory_plan"])["planned_bytes"]
    assert abs(planned - deployment["peak_rss_bytes"]) <= 0.25 * deployment["peak_rss_bytes"], (
        planned, deployment["peak_rss_bytes"])
    samples = warehouse.query("SELECT benchmark, item_id, sample_index, seed, response, reasoning_content "
                              "FROM benchmark_generations WHERE variant = ?", [variant])
    assert [row.seed for row in samples.itertuples()] == [
        sample_seed(row.benchmark, row.item_id, row.sample_index) for row in samples.itertuples()]
    # Split by the engine at the first </think>: what the model wrote after it (even another one) is the answer.
    assert samples["reasoning_content"].notna().all()
    assert not samples["reasoning_content"].str.contains("</think>", regex=False).any()
    timings = warehouse.query("SELECT ok, output_tokens FROM serving_request_timings WHERE variant = ?", [variant])
    assert len(timings) == found["serving_load_levels"] * spec.serving.requests_per_level
    assert timings["ok"].all() and (timings["output_tokens"] == spec.serving.output_len).all()
    assert live_processes(str(STATE), "llama-server") == []


EXPECTED_ASSETS = {"benchmark_items", "model_snapshot", "quantized_model", "engine_deployment",
                   "benchmark_generations", "serving_benchmark", "graded_answers", "benchmark_scores",
                   "quantization_loss", "cost_rollup", "published_evaluation", "leaderboard"}


@pytest.mark.unit
def test_definitions_load():
    dg.Definitions.validate_loadable(defs)
    assert {key.to_user_string() for key in defs.resolve_all_asset_keys()} == EXPECTED_ASSETS
    assert defs.resolve_schedule_def("nightly_eval")
    assert defs.resolve_sensor_def("dead_runs")


@pytest.mark.integration
def test_webserver_serves_the_asset_graph(tmp_path):
    port = free_port()
    webserver = Path(sys.executable).with_name("dagster-webserver")
    own_state = {"DAGSTER_HOME": str(tmp_path), "YARDSTICK_WAREHOUSE": str(tmp_path / "warehouse.duckdb")}
    process = subprocess.Popen(
        [str(webserver), "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT, env={**os.environ, **own_state}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        query = {"query": "{ assetNodes { assetKey { path } } }"}
        deadline = time.monotonic() + 120
        nodes = None
        while time.monotonic() < deadline:
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}/graphql", json=query, timeout=5).json()
                nodes = answer.get("data", {}).get("assetNodes")
                if nodes:
                    break
            except (httpx.HTTPError, ValueError):
                pass
            assert process.poll() is None, "dagster-webserver exited"
            time.sleep(1)
        assert nodes, "the webserver never answered with asset nodes"
        assert {node["assetKey"]["path"][-1] for node in nodes} == EXPECTED_ASSETS
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


# The test matrix's tiny-test, smaller: two benchmarks, one load level.
SMALL_MATRIX = """
variants:
  tiny-test:
    model: {{generate: tiny-r1-qwen2}}
    engine: {{kind: transformers, device: cpu, concurrency: 4, startup_timeout_s: 120,
             cb_num_blocks: 128, cb_block_size: 32, cb_max_batch_tokens: 512}}
    hardware: cpu-2vcpu
    protocol: {{preset: deepseek-r1, k: {k}, k_by_benchmark: {k_by_benchmark}, max_tokens: 16}}
    benchmarks: {{arith: 2, gsm8k: 1}}
    serving: {{concurrency: [1], requests_per_level: 1, input_len: 8, output_len: 4}}
"""


@pytest.mark.integration
@needs_shared
def test_changing_k_through_the_pipeline_keeps_every_sample_and_counts_the_first_k(tiny_model, tmp_path):
    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    job = defs.resolve_implicit_global_asset_job_def()
    mirror = defs.resources["matrix"].benchmark_mirror

    def run_with(k: int, k_by_benchmark: str) -> dict:
        matrix = tmp_path / f"matrix-{k}-{len(k_by_benchmark)}.yaml"
        matrix.write_text(SMALL_MATRIX.format(k=k, k_by_benchmark=k_by_benchmark))
        result = job.execute_in_process(partition_key="tiny-test", resources={
            **defs.resources, "warehouse": warehouse,
            "matrix": MatrixResource(path=str(matrix), benchmark_mirror=mirror)})
        # the blocking check passes; the regression checks (WARN) compare serving figures, which vary run to run
        assert result.success and all(check.passed for check in result.get_asset_check_evaluations()
                                      if check.check_name == "benchmark_scores_are_valid")
        return {m.asset_key.to_user_string(): m.metadata
                for m in result.asset_materializations_for_node("engine_step")}["benchmark_generations"]

    def stored() -> pd.DataFrame:
        return warehouse.query("SELECT benchmark, item_id, sample_index, run_id FROM benchmark_generations "
                               "ORDER BY ALL")

    def scored() -> dict:
        scores = warehouse.query("SELECT benchmark, k, n_samples FROM benchmark_scores ORDER BY ALL")
        return {row.benchmark: (row.k, row.n_samples) for row in scores.itertuples()}

    first = run_with(2, "{}")
    drawn_first = stored()
    assert first["generated_this_run"].value == 6 and scored() == {"arith": (2, 4), "gsm8k": (2, 2)}

    raised = run_with(2, "{arith: 3}")   # k 3 after k 2 for arith alone: one new sample per arith item
    assert (raised["generated_this_run"].value, raised["reused"].value) == (2, 6)
    after = stored()
    assert len(after.merge(drawn_first)) == len(drawn_first)   # the first run's samples, kept as drawn
    new = after[~after["run_id"].isin(drawn_first["run_id"])]
    assert new[["benchmark", "sample_index"]].values.tolist() == [["arith", 2], ["arith", 2]]
    assert scored() == {"arith": (3, 6), "gsm8k": (2, 2)}

    lowered = run_with(1, "{}")   # nothing drawn, nothing deleted; only the first sample of each item counts
    assert lowered["generated_this_run"].value == 0 and len(stored()) == 8
    assert scored() == {"arith": (1, 2), "gsm8k": (1, 1)}
    difficulty = warehouse.query("SELECT samples FROM item_difficulty")
    assert (difficulty["samples"] == 1).all()
    assert warehouse.query("SELECT sum(samples) AS n FROM benchmark_costs").iloc[0]["n"] == 3
