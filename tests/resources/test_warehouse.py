"""The WarehouseResource (resources/warehouse.py): writes idempotent on their natural keys, a damaged or
unreadable file named with what to do; and one warehouse, many writers: a DuckLake catalog in a real PostgreSQL
(started by the tests' set-up) with its Parquet files in a folder, and the embedded DuckDB file, which writers take
turns on.

Both kinds hold the same tables and views and give the same answers to the same writes; several processes
writing at once lose nothing and duplicate nothing; and the whole offline chain, for three variants run at once by
separate processes, lands in either with exact row counts, its checks passing, and `yardstick leaderboard` reading
it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from multiprocessing import get_context
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
import yaml

from resources.warehouse import WarehouseResource
from tests.conftest import ROOT, STATE, needs_shared
from warehouse import table_keys

BIN = Path(sys.executable).parent

KINDS = ("file", "lake")


@pytest.fixture(params=KINDS)
def warehouse_kind(request, tmp_path) -> tuple[str, dict[str, str]]:
    """(kind, WarehouseResource settings) of a new, empty warehouse of each kind."""
    if request.param == "file":
        return "file", {"path": str(tmp_path / "warehouse.duckdb")}
    server = request.getfixturevalue("postgres")
    dsn = server.create_database(f"lake_{request.node.name.split('[')[0][-40:]}_{time.monotonic_ns()}".lower())
    return "lake", {"path": f"ducklake:postgres:{dsn}", "lake_data": str(tmp_path / "lake-data")}


def _write_sequence(warehouse: WarehouseResource) -> None:
    """Every kind of keyed write, each once more with a change: what a step and its retry do."""
    items = pd.DataFrame([{"variant": "a", "benchmark": "arith", "item_id": str(i), "position": i, "problem": "p",
                           "gold": "1", "gold_raw": "1", "answer_format": "integer", "source": "s",
                           "loaded_at": pd.Timestamp("2026-01-01")} for i in range(5)])
    warehouse.replace_partition("benchmark_items", "a", items)
    warehouse.replace_partition("benchmark_items", "a", items.iloc[:3])          # a smaller partition replaces
    warehouse.replace_partition("benchmark_items", "b", items.assign(variant="b"))
    assert warehouse.insert_new("benchmark_items", items.assign(problem="new")) == 2   # keys 3, 4 only
    warehouse.upsert("benchmark_k", pd.DataFrame([{"variant": "a", "benchmark": "arith", "k": 2},
                                                  {"variant": "b", "benchmark": "arith", "k": 2}]))
    warehouse.upsert("benchmark_k", pd.DataFrame([{"variant": "a", "benchmark": "arith", "k": 4}]))


@pytest.mark.integration
def test_both_kinds_hold_the_same_schema_and_answer_writes_alike(warehouse_kind, tmp_path):
    kind, settings = warehouse_kind
    warehouse = WarehouseResource(**settings)
    _write_sequence(warehouse)
    reference = WarehouseResource(path=str(tmp_path / "reference.duckdb"))
    if kind == "lake":
        _write_sequence(reference)
    else:
        reference = warehouse
    for table in ("benchmark_items", "benchmark_k"):
        got = warehouse.query(f"SELECT * FROM {table} ORDER BY ALL")
        assert got.equals(reference.query(f"SELECT * FROM {table} ORDER BY ALL"))
    assert warehouse.query("SELECT k FROM benchmark_k ORDER BY variant")["k"].tolist() == [4, 2]
    assert warehouse.query("SELECT problem FROM benchmark_items WHERE variant = 'a' ORDER BY position")[
        "problem"].tolist() == ["p", "p", "p", "new", "new"]
    relations = ("SELECT table_name, table_type FROM information_schema.tables "
                 "WHERE table_catalog = current_database() ORDER BY ALL")
    assert warehouse.query(relations).equals(reference.query(relations))
    with warehouse.connect(read_only=True) as reader:   # the views run on either
        assert reader.execute("SELECT count(*) FROM leaderboard").fetchone()[0] == 0


@pytest.mark.integration
def test_a_lake_refuses_a_catalog_it_cannot_use_and_says_what_to_write():
    with pytest.raises(ValueError, match="ducklake:postgres:<libpq connection string>"):
        with WarehouseResource(path="ducklake:sqlite:lake.db").connect():
            pass


@pytest.mark.integration
def test_a_catalog_out_of_reach_is_named_with_what_to_check(tmp_path):
    unreachable = f"ducklake:postgres:host={tmp_path} dbname=lake user=yardstick password=hunter2"
    with pytest.raises(ConnectionError, match="check the connection string in YARDSTICK_WAREHOUSE") as raised:
        with WarehouseResource(path=unreachable).connect():
            pass
    assert "hunter2" not in str(raised.value) and "password=***" in str(raised.value)


WRITERS, BATCHES, ROWS = 4, 10, 500


def _writer(settings: dict[str, str], variant: str) -> None:
    warehouse = WarehouseResource(**settings)
    for batch in range(BATCHES):
        warehouse.insert_new("serving_request_timings", pd.DataFrame(
            [{"variant": variant, "profile": "concurrency", "load": float(batch), "request_index": index,
              "ok": True} for index in range(ROWS)]))
        warehouse.replace_partition("benchmark_k", variant, pd.DataFrame(
            [{"variant": variant, "benchmark": f"b{index}", "k": batch} for index in range(3)]))
        warehouse.upsert("benchmark_pass_at_k", pd.DataFrame(
            [{"variant": variant, "benchmark": "b0", "config_hash": "c", "k": 1, "estimate": batch / BATCHES,
              "low": 0.0, "high": 1.0}]))


def _live_files_per_table(warehouse: WarehouseResource) -> dict[str, int]:
    """What the lake's catalog says its current snapshot reads: data files per table."""
    files = warehouse.query(
        "SELECT t.table_name, count(*) AS n FROM __ducklake_metadata_lake.ducklake_data_file AS f "
        "JOIN __ducklake_metadata_lake.ducklake_table AS t USING (table_id) "
        "WHERE f.end_snapshot IS NULL AND t.end_snapshot IS NULL GROUP BY ALL")
    return dict(zip(files["table_name"], files["n"], strict=True))


def _parquet_files(settings: dict[str, str]) -> list[Path]:
    """The Parquet files in the lake's data folder, counted on disk rather than asked of the lake."""
    return sorted(Path(settings["lake_data"]).rglob("*.parquet"))


@pytest.mark.integration
def test_compaction_merges_a_lakes_small_files_and_deletes_the_old_ones(tmp_path, postgres):
    settings = {"path": f"ducklake:postgres:{postgres.create_database(f'lake_compact_{time.monotonic_ns()}')}",
                "lake_data": str(tmp_path / "lake-data")}
    warehouse = WarehouseResource(**settings)
    for batch in range(BATCHES):   # a file a batch; each replaced partition leaves its old file behind
        warehouse.insert_new("serving_request_timings", pd.DataFrame(
            [{"variant": "a", "profile": "concurrency", "load": float(batch), "request_index": index, "ok": True}
             for index in range(ROWS)]))
        warehouse.replace_partition("benchmark_k", "a", pd.DataFrame(
            [{"variant": "a", "benchmark": f"b{index}", "k": batch} for index in range(3)]))
    timings = warehouse.query("SELECT * FROM serving_request_timings ORDER BY ALL")
    assert _live_files_per_table(warehouse)["serving_request_timings"] == BATCHES
    files_before = len(_parquet_files(settings))
    assert files_before > 2 * BATCHES

    before, after = warehouse.compact(keep_days=0)

    files = _live_files_per_table(warehouse)
    assert set(files.values()) == {1}, files
    assert before > after == len(files) == len(_parquet_files(settings))
    assert warehouse.query("SELECT * FROM serving_request_timings ORDER BY ALL").equals(timings)
    assert warehouse.query("SELECT k FROM benchmark_k")["k"].tolist() == [BATCHES - 1] * 3


@pytest.mark.integration
def test_processes_writing_at_once_lose_and_duplicate_nothing(warehouse_kind):
    kind, settings = warehouse_kind
    WarehouseResource(**settings).query("SELECT 1")   # made by one process first, as a run's first step does
    spawn = get_context("spawn")
    writers = [spawn.Process(target=_writer, args=(settings, f"v{number}")) for number in range(WRITERS)]
    for writer in writers:
        writer.start()
    warehouse = WarehouseResource(**settings)
    compactions = 0
    while any(writer.is_alive() for writer in writers):   # maintenance while they write: `yardstick compact`
        warehouse.compact(keep_days=0)
        compactions += 1
    for writer in writers:
        writer.join(timeout=600)
    assert [writer.exitcode for writer in writers] == [0] * WRITERS
    assert compactions > 0
    before, after = warehouse.compact(keep_days=0)
    if kind == "lake":   # the writers' hundreds of small files, merged into one a table
        files = _live_files_per_table(warehouse)
        assert set(files.values()) == {1}, files
        assert before >= after == len(files)
    else:
        assert (before, after) == (0, 0)
    counts = warehouse.query("SELECT variant, count(*) AS n, count(DISTINCT (load, request_index)) AS keys "
                             "FROM serving_request_timings GROUP BY variant ORDER BY variant")
    assert counts["n"].tolist() == [BATCHES * ROWS] * WRITERS
    assert counts["keys"].tolist() == [BATCHES * ROWS] * WRITERS
    last = warehouse.query("SELECT variant, count(*) AS n, min(k) AS k FROM benchmark_k GROUP BY ALL ORDER BY 1")
    assert last["n"].tolist() == [3] * WRITERS and last["k"].tolist() == [BATCHES - 1] * WRITERS
    passes = warehouse.query("SELECT variant, count(*) AS n, max(estimate) AS p FROM benchmark_pass_at_k "
                             "GROUP BY ALL ORDER BY 1")
    assert passes["n"].tolist() == [1] * WRITERS
    assert passes["p"].tolist() == [(BATCHES - 1) / BATCHES] * WRITERS


# The whole chain, three variants at once, each in a process of its own.
CHAIN_VARIANTS = {"tiny-lake-a": {"quantization": "none"},
                  "tiny-lake-b": {"quantization": "W8A16"},
                  "tiny-lake-c": {"quantization": "none", "protocol": {"k": 1}}}

CHAIN_BENCHMARKS = {"arith": 4, "gsm8k": 2}

CHAIN_K = 2

CHAIN_LEVELS = 1

# What a lost race would print: a commit refused, the file's lock not granted.
LOCK_OR_CONFLICT = ("TransactionException", "write-write conflict", "Failed to commit", "Could not set lock")


def _chain_environment(tmp_path: Path, settings: dict[str, str], run_storage: str | None = None) -> dict[str, str]:
    """The matrix, and a Dagster instance of the project's settings; with `run_storage` (a PostgreSQL URL), its
    runs, events and schedules kept there, as a deployment shared by several processes or machines keeps them."""
    test_matrix = yaml.safe_load((ROOT / "tests" / "matrix.test.yaml").read_text())
    defaults = {**test_matrix["defaults"], "benchmarks": CHAIN_BENCHMARKS,
                "protocol": {**test_matrix["defaults"]["protocol"], "k": CHAIN_K, "k_by_benchmark": {}},
                "serving": {"concurrency": [1], "request_rates": [], "requests_per_level": 2, "input_len": 16,
                            "output_len": 8}}
    variants = {name: {**variant, "protocol": {**defaults["protocol"], **variant.get("protocol", {})}}
                for name, variant in CHAIN_VARIANTS.items()}
    (tmp_path / "matrix.yaml").write_text(yaml.safe_dump({"defaults": defaults, "variants": variants}))
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    instance = yaml.safe_load((ROOT / "pipelines" / "dagster.yaml").read_text())
    if run_storage:
        instance["storage"] = {"postgres": {"postgres_url": run_storage}}
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(instance))
    return {**os.environ, "YARDSTICK_MATRIX": str(tmp_path / "matrix.yaml"), "YARDSTICK_HOME": str(STATE),
            "YARDSTICK_WAREHOUSE": settings["path"], "YARDSTICK_LAKE_DATA": settings.get("lake_data", ""),
            "DAGSTER_HOME": str(dagster_home)}


def _expected_samples(variant: str) -> int:
    k = CHAIN_VARIANTS[variant].get("protocol", {}).get("k", CHAIN_K)
    return sum(CHAIN_BENCHMARKS.values()) * k


@pytest.mark.integration
@needs_shared
def test_three_variants_run_at_once_by_separate_processes_land_whole(warehouse_kind, tmp_path, tiny_model, request):
    kind, settings = warehouse_kind
    run_storage = None
    if kind == "lake":   # the deployment a lake belongs to: Dagster's own storage in PostgreSQL too
        server = request.getfixturevalue("postgres")
        database = f"dagster_{time.monotonic_ns()}"
        server.create_database(database)
        run_storage = server.url(database)
    env = _chain_environment(tmp_path, settings, run_storage)
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]):   # its storage made once, as `make run` does first
        pass
    started = time.monotonic()
    runs = {variant: subprocess.Popen([str(BIN / "yardstick"), "materialize", variant], cwd=ROOT, env=env,
                                      stdout=(tmp_path / f"{variant}.log").open("wb"), stderr=subprocess.STDOUT)
            for variant in CHAIN_VARIANTS}
    for variant, run in runs.items():
        log = (tmp_path / f"{variant}.log").read_text
        assert run.wait(timeout=1500) == 0, f"{variant}:\n{log()[-4000:]}"
        assert not [error for error in LOCK_OR_CONFLICT if error in log()], log()[-4000:]
    print(f"{len(runs)} variants at once into the {kind} warehouse: {time.monotonic() - started:.0f} s")

    warehouse = WarehouseResource(**settings)
    per_variant = {
        "benchmark_items": lambda variant: sum(CHAIN_BENCHMARKS.values()),
        "benchmark_generations": _expected_samples,
        "graded_answers": _expected_samples,
        "benchmark_scores": lambda variant: len(CHAIN_BENCHMARKS),
        "published_benchmark_scores": lambda variant: len(CHAIN_BENCHMARKS),
        "published_samples": _expected_samples,
        "evaluation_runs": lambda variant: 1,
        "engine_deployments": lambda variant: 1,
        "serving_load_levels": lambda variant: CHAIN_LEVELS,
        "cost_rollup": lambda variant: 1,
    }
    for table, expected in per_variant.items():
        counts = dict(warehouse.query(f"SELECT variant, count(*) FROM {table} GROUP BY variant").itertuples(
            index=False))
        assert counts == {variant: expected(variant) for variant in CHAIN_VARIANTS}, table
    for table, key in table_keys().items():   # nothing twice, in any table
        keys = ", ".join(key)
        duplicated = warehouse.query(f"SELECT count(*) - count(DISTINCT ({keys})) AS n FROM {table}")["n"][0]
        assert duplicated == 0, f"{table} holds {duplicated} rows twice"
    assert set(warehouse.query("SELECT variant FROM leaderboard")["variant"]) == set(CHAIN_VARIANTS)

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        if run_storage:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        runs_done = instance.get_runs()
        assert len(runs_done) == len(CHAIN_VARIANTS)
        evaluations = [entry.dagster_event.event_specific_data for run in runs_done for entry in instance.all_logs(
            run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)]
    assert evaluations and all(evaluation.passed for evaluation in evaluations), [
        (evaluation.asset_check_key.name, evaluation.passed) for evaluation in evaluations]

    board = subprocess.run([str(BIN / "yardstick"), "leaderboard"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=300)
    assert board.returncode == 0, board.stderr
    assert all(variant in board.stdout for variant in CHAIN_VARIANTS), board.stdout


def _warehouse_file(tmp_path):
    from resources.warehouse import WarehouseResource

    path = tmp_path / "warehouse.duckdb"
    WarehouseResource(path=str(path)).query("SELECT 1")
    return path


@pytest.mark.unit
def test_a_damaged_warehouse_is_named_with_what_to_do(tmp_path, capsys):
    from pipelines.cli import main as yardstick

    path = _warehouse_file(tmp_path)
    path.write_bytes(path.read_bytes()[:5000])   # cut short, as a full disk or a copy that stopped leaves it
    assert yardstick(["leaderboard", "--warehouse", str(path)]) == 2
    message = capsys.readouterr().err
    assert f"the warehouse {path} is damaged or not a DuckDB file" in message and "move it aside" in message
    path.write_bytes(b"not a database\n" * 100)
    assert yardstick(["report", "--warehouse", str(path)]) == 2
    assert "is damaged or not a DuckDB file" in capsys.readouterr().err


def _leaderboard_as_another_user(path) -> tuple[int, str]:
    """`yardstick leaderboard --warehouse PATH`'s exit status and stderr, run by a user other than the file's owner:
    as root, a forked child turned into the unprivileged `nobody` (forked, not started afresh, so that it needs
    nothing of the checkout, which `nobody` may not be allowed to read); else this user, the file made unreadable."""
    import contextlib
    import io
    import os

    import assets.leaderboard.printing  # noqa: F401 - imported before the fork: `nobody` may not read the checkout
    from pipelines.cli import main as yardstick

    def run() -> str:
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            status = yardstick(["leaderboard", "--warehouse", str(path)])
        return f"{status}\n{stderr.getvalue()}"

    if os.geteuid() != 0:
        path.chmod(0o000)
        status, _, stderr = run().partition("\n")
        return int(status), stderr
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:   # pragma: no cover - the child reports through the pipe
        try:
            os.close(reader)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            answer = run()
        except BaseException as error:   # noqa: BLE001 - whatever it is, the parent reports it
            answer = f"99\n{type(error).__name__}: {error}"
        os.write(writer, answer.encode())
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        answer = pipe.read()
    os.waitpid(child, 0)
    status, _, stderr = answer.partition("\n")
    return int(status), stderr


@pytest.mark.unit
def test_a_warehouse_this_user_may_not_read_is_named_with_what_to_do(tmp_path, capsys):
    path = _warehouse_file(tmp_path)
    path.chmod(0o600)
    status, stderr = _leaderboard_as_another_user(path)
    assert status == 2, stderr[-2000:]
    assert f"the warehouse {path} cannot be read here" in stderr and "Traceback" not in stderr


def _generation(sample: int, response: str) -> dict:
    return {"variant": "v", "config_hash": "h", "benchmark": "b", "item_id": "1", "sample_index": sample,
            "response": response, "latency_seconds": 0.1, "sampling": "{}", "run_id": "r",
            "created_at": pd.Timestamp("2026-01-01")}


@pytest.mark.unit
def test_insert_new_keeps_existing_rows_and_skips_duplicates(tmp_path):
    warehouse = WarehouseResource(path=str(tmp_path / "w.duckdb"))
    assert warehouse.insert_new("benchmark_generations", pd.DataFrame([_generation(0, "first")])) == 1
    added = warehouse.insert_new("benchmark_generations",
                                 pd.DataFrame([_generation(0, "second"), _generation(1, "other")]))
    assert added == 1
    rows = warehouse.query("SELECT sample_index, response FROM benchmark_generations ORDER BY 1")
    assert rows.values.tolist() == [[0, "first"], [1, "other"]]


@pytest.mark.unit
def test_replace_partition_touches_only_its_variant(tmp_path):
    warehouse = WarehouseResource(path=str(tmp_path / "w.duckdb"))
    timing = {"profile": "concurrency", "load": 1.0, "request_index": 0, "ok": True}
    warehouse.replace_partition("serving_request_timings", "a", pd.DataFrame([{**timing, "variant": "a"}]))
    warehouse.replace_partition("serving_request_timings", "b", pd.DataFrame([{**timing, "variant": "b"}]))
    warehouse.replace_partition("serving_request_timings", "a",
                                pd.DataFrame([{**timing, "variant": "a", "load": 2.0}]))
    rows = warehouse.query("SELECT variant, load FROM serving_request_timings ORDER BY 1")
    assert rows.values.tolist() == [["a", 2.0], ["b", 1.0]]


@pytest.mark.unit
def test_threads_reading_while_a_step_writes_never_collide(tmp_path):
    """A sensor or a test polling the file while a step writes: every open, schema and write succeeds."""
    warehouse = WarehouseResource(path=str(tmp_path / "w.duckdb"))
    row = {"variant": "a", "profile": "concurrency", "load": 1.0, "request_index": 0, "ok": True}
    errors, done = [], threading.Event()

    def poll() -> None:
        while not done.is_set():
            try:
                warehouse.query("SELECT count(*) FROM serving_request_timings")
            except duckdb.Error as error:
                errors.append(error)

    readers = [threading.Thread(target=poll) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        for _ in range(150):
            warehouse.replace_partition("serving_request_timings", "a", pd.DataFrame([row]))
    finally:
        done.set()
        for reader in readers:
            reader.join()
    assert errors == []
