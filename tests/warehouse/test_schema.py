"""The warehouse's schema and migrations (warehouse/): applied any number of times, older files migrated."""

import threading

import duckdb
import pytest

from pipelines.cli import main as yardstick
from resources.warehouse import WarehouseResource
from warehouse import PUBLISHED_TABLES, SCHEMA_FILE, apply_schema, migrations

pytestmark = pytest.mark.unit


def test_schema_applies_twice_and_readers_open_read_only(tmp_path):
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as connection:
        apply_schema(connection)
        apply_schema(connection)
    with WarehouseResource(path=str(path)).connect(read_only=True) as reader:
        assert reader.execute("SELECT count(*) FROM leaderboard").fetchone() == (0,)


def _table_columns(connection: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], tuple[str, bool]]:
    """(table, column) -> (type, nullable) for every base table; views left out."""
    rows = connection.execute(
        "SELECT c.table_name, c.column_name, c.data_type, c.is_nullable FROM duckdb_columns() c "
        "JOIN duckdb_tables() t USING (database_name, schema_name, table_name) "
        "WHERE c.database_name = current_database()").fetchall()
    return {(table, column): (kind, nullable) for table, column, kind, nullable in rows}


def _recorded(connection: duckdb.DuckDBPyConnection) -> list[tuple]:
    return connection.execute("SELECT version, name, applied_at FROM schema_migrations ORDER BY version").fetchall()


def _fresh_columns(tmp_path) -> dict[tuple[str, str], tuple[str, bool]]:
    with duckdb.connect(str(tmp_path / "fresh.duckdb")) as connection:
        apply_schema(connection)
        return _table_columns(connection)


def test_schema_file_declares_every_column_once_without_alters():
    text = SCHEMA_FILE.read_text()
    assert "ALTER TABLE" not in text.upper()
    with duckdb.connect() as connection:   # a column declared twice in one CREATE TABLE fails here
        connection.execute(text)


def test_migrations_are_numbered_one_to_n():
    assert [migration.version for migration in migrations()] == list(range(1, len(migrations()) + 1))


def test_fresh_warehouse_records_every_migration_and_has_exactly_the_schema_file_columns(tmp_path):
    with duckdb.connect() as reference:
        reference.execute(SCHEMA_FILE.read_text())
        declared = _table_columns(reference)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as connection:
        apply_schema(connection)
        recorded = _recorded(connection)
        columns = _table_columns(connection)
    copies = {f"published_{table}": table for table in PUBLISHED_TABLES}
    assert {key: value for key, value in columns.items() if key[0] not in copies} == declared
    for copy, table in copies.items():   # each published copy: run_id, then its table's columns and types
        have = {column: kind for (name, column), (kind, _) in columns.items() if name == copy}
        assert have == {"run_id": "VARCHAR", **{column: kind for (name, column), (kind, _) in declared.items()
                                                if name == table}}, copy
    assert [(version, name) for version, name, _ in recorded] == [(m.version, m.name) for m in migrations()]


# Tables as versions before the migrations made them: columns that came later missing, columns that became
# optional NOT NULL, tables since replaced. A row in each shows what survives.
OLD_GENERATIONS = """
CREATE TABLE benchmark_generations (
    variant VARCHAR NOT NULL, config_hash VARCHAR NOT NULL, benchmark VARCHAR NOT NULL, item_id VARCHAR NOT NULL,
    sample_index INTEGER NOT NULL, response VARCHAR NOT NULL, reasoning_content VARCHAR, finish_reason VARCHAR,
    prompt_tokens INTEGER, completion_tokens INTEGER, latency_seconds DOUBLE NOT NULL, sampling VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (variant, config_hash, benchmark, item_id, sample_index));
INSERT INTO benchmark_generations VALUES ('v', 'h', 'b', '1', 0, 'answer', NULL, 'stop', 10, 20, 0.5, '{}', 'r',
                                          TIMESTAMP '2026-01-01');
CREATE TABLE model_snapshots (
    variant VARCHAR PRIMARY KEY, source VARCHAR NOT NULL, repo VARCHAR, revision VARCHAR, commit_sha VARCHAR,
    local_path VARCHAR NOT NULL, fingerprint VARCHAR NOT NULL, bytes BIGINT NOT NULL, parameters BIGINT NOT NULL,
    architecture VARCHAR, model_type VARCHAR, torch_dtype VARCHAR, num_layers INTEGER, hidden_size INTEGER,
    num_attention_heads INTEGER, num_kv_heads INTEGER, head_dim INTEGER, max_position_embeddings INTEGER,
    vocab_size INTEGER, recorded_at TIMESTAMP NOT NULL);
CREATE TABLE engine_deployments (
    variant VARCHAR NOT NULL, run_id VARCHAR NOT NULL, engine VARCHAR NOT NULL, engine_version VARCHAR,
    argv VARCHAR, base_url VARCHAR NOT NULL, served_model VARCHAR NOT NULL, startup_seconds DOUBLE,
    peak_rss_bytes BIGINT, started_at TIMESTAMP NOT NULL, stopped_at TIMESTAMP, status VARCHAR NOT NULL,
    PRIMARY KEY (variant, run_id));
CREATE TABLE serving_levels (variant VARCHAR NOT NULL, concurrency INTEGER NOT NULL);
"""

# cost_rollup before API pricing (no `pricing`; at first priced at a concurrency level), and after it but
# before cached prompt tokens were counted.
COST_ROLLUP_PRICED_AT_A_CONCURRENCY = """
CREATE TABLE cost_rollup (
    variant VARCHAR PRIMARY KEY, hardware VARCHAR NOT NULL, usd_per_hour DOUBLE NOT NULL, price_date DATE NOT NULL,
    price_source VARCHAR NOT NULL, best_concurrency INTEGER NOT NULL, output_tokens_per_s DOUBLE NOT NULL,
    usd_per_million_output_tokens DOUBLE NOT NULL, output_tokens_spent BIGINT NOT NULL,
    correct_answers INTEGER NOT NULL, usd_per_correct_answer DOUBLE, computed_at TIMESTAMP NOT NULL);
INSERT INTO cost_rollup VALUES ('v', 'cpu', 1.0, DATE '2026-01-01', 's', 4, 10.0, 27.8, 20, 1, 0.1,
                                TIMESTAMP '2026-01-01');
"""

COST_ROLLUP_PRICED_BY_INSTANCE_OR_API = """
CREATE TABLE cost_rollup (
    variant VARCHAR PRIMARY KEY, pricing VARCHAR NOT NULL, hardware VARCHAR, api_model VARCHAR, usd_per_hour DOUBLE,
    price_date DATE NOT NULL, price_source VARCHAR NOT NULL, best_profile VARCHAR, best_load DOUBLE,
    meets_slo BOOLEAN, output_tokens_per_s DOUBLE, usd_per_million_output_tokens DOUBLE NOT NULL,
    usd_per_million_input_tokens DOUBLE, usd_per_million_reasoning_tokens DOUBLE, owned_usd_per_hour DOUBLE,
    owned_usd_per_million_output_tokens DOUBLE, ownership_terms VARCHAR, prompt_tokens_spent BIGINT NOT NULL,
    output_tokens_spent BIGINT NOT NULL, reasoning_tokens_spent BIGINT NOT NULL, usd_spent DOUBLE NOT NULL,
    correct_answers INTEGER NOT NULL, usd_per_correct_answer DOUBLE, computed_at TIMESTAMP NOT NULL);
INSERT INTO cost_rollup (variant, pricing, api_model, price_date, price_source, usd_per_million_output_tokens,
                         prompt_tokens_spent, output_tokens_spent, reasoning_tokens_spent, usd_spent,
                         correct_answers, computed_at)
VALUES ('v', 'api', 'some-api', DATE '2026-01-01', 's', 2.19, 10, 20, 5, 0.001, 1, TIMESTAMP '2026-01-01');
"""


@pytest.mark.parametrize(("cost_rollup", "cost_rows_kept"), [
    (COST_ROLLUP_PRICED_AT_A_CONCURRENCY, 0),   # the asset prices it again on its next run
    (COST_ROLLUP_PRICED_BY_INSTANCE_OR_API, 1),
])
def test_older_warehouse_is_migrated_in_place_to_the_fresh_columns_once(tmp_path, cost_rollup, cost_rows_kept):
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute(OLD_GENERATIONS + cost_rollup)
        apply_schema(connection)
        assert _table_columns(connection) == _fresh_columns(tmp_path)
        recorded = _recorded(connection)
        assert [version for version, _, _ in recorded] == [migration.version for migration in migrations()]
        generation = connection.execute(
            "SELECT response, completion_tokens, reasoning_tokens, cached_prompt_tokens FROM benchmark_generations"
        ).fetchall()
        assert generation == [("answer", 20, None, None)]
        assert connection.execute("SELECT count(*) FROM cost_rollup").fetchone() == (cost_rows_kept,)
    with duckdb.connect(str(path)) as connection:   # opened again: nothing left to apply
        apply_schema(connection)
        assert _recorded(connection) == recorded


def test_threads_opening_an_older_file_migrate_it_once(tmp_path):
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute(OLD_GENERATIONS + COST_ROLLUP_PRICED_AT_A_CONCURRENCY)
    warehouse = WarehouseResource(path=str(path))
    errors: list[Exception] = []

    def open_and_count() -> None:
        try:
            warehouse.query("SELECT count(*) FROM benchmark_generations")
        except duckdb.Error as error:
            errors.append(error)

    threads = [threading.Thread(target=open_and_count) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    recorded = warehouse.query("SELECT version, count(*) AS times FROM schema_migrations GROUP BY ALL")
    assert len(recorded) == len(migrations()) and (recorded["times"] == 1).all()


# What an older yardstick's leaderboard view looked like: its interval and load level were strings.
OLD_LEADERBOARD_VIEW = """
CREATE VIEW leaderboard AS SELECT variant, '[0.0, 0.1]' AS delta_interval, 'concurrency=4' AS priced_load
FROM cost_rollup;
"""


def test_the_leaderboard_command_upgrades_an_older_file_before_reading_it(tmp_path, capsys):
    """`yardstick leaderboard` reads read-only, so it would meet the older view; it migrates first."""
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute(OLD_GENERATIONS + COST_ROLLUP_PRICED_AT_A_CONCURRENCY + OLD_LEADERBOARD_VIEW)
    assert yardstick(["leaderboard", "--warehouse", str(path)]) == 0
    captured = capsys.readouterr()
    assert f"brought up to the current schema ({len(migrations())} migrations)" in captured.err
    assert "the leaderboard is empty" in captured.out
    assert WarehouseResource(path=str(path)).upgrade() == 0   # nothing pending the second time


def test_an_older_warehouse_publishes_what_it_held_as_a_migrated_run(tmp_path):
    """A file from before write-audit-publish (its scores and costs in the tables, no evaluation run): migration
    013 records one migrated run per variant with a cost rollup, and the results it held are published and shown."""
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as connection:
        apply_schema(connection)
        connection.execute(
            "INSERT INTO benchmark_scores (variant, benchmark, config_hash, protocol, k, n_items, n_samples, "
            "pass_at_1, pass_at_1_low, pass_at_1_high, cons_at_k, correct_samples, output_tokens, scored_at) "
            "VALUES ('v', 'gsm8k', 'cfg', 'deepseek-r1', 2, 10, 20, 0.5, 0.3, 0.7, 0.6, 10, 2000, "
            "TIMESTAMP '2026-01-01')")
        connection.execute(
            "INSERT INTO cost_rollup (variant, pricing, hardware, usd_per_hour, price_date, price_source, "
            "usd_per_million_output_tokens, prompt_tokens_spent, output_tokens_spent, reasoning_tokens_spent, "
            "usd_spent, correct_answers, computed_at) VALUES ('v', 'instance', 'cpu-2vcpu', 0.08, "
            "DATE '2026-01-01', 's', 1.5, 100, 2000, 0, 0.003, 10, TIMESTAMP '2026-01-02')")
        # As an older file: the migrations from 013 on not yet had.
        connection.execute("DELETE FROM schema_migrations WHERE version >= 13")
        apply_schema(connection)
        runs = connection.execute("SELECT run_id, status, run_trigger, config_hash FROM evaluation_runs").fetchall()
        assert runs == [("migrated-v", "published", "migrated", "cfg")]
        published = connection.execute("SELECT run_id, pass_at_1 FROM published_benchmark_scores").fetchall()
        assert published == [("migrated-v", 0.5)]
        shown = connection.execute("SELECT variant, benchmark, pass_at_1, run_id FROM leaderboard").fetchall()
        assert shown == [("v", "gsm8k", 0.5, "migrated-v")]
        apply_schema(connection)   # again: nothing published twice
        assert connection.execute("SELECT count(*) FROM published_benchmark_scores").fetchone() == (1,)


# quantization_loss before migration 019: one row per (variant, benchmark), against the twin, with no relation.
QUANTIZATION_LOSS_BEFORE_019 = """
CREATE TABLE quantization_loss (
    variant VARCHAR NOT NULL, baseline VARCHAR NOT NULL, benchmark VARCHAR NOT NULL, n_items INTEGER NOT NULL,
    pass_at_1 DOUBLE NOT NULL, baseline_pass_at_1 DOUBLE NOT NULL, delta DOUBLE NOT NULL, delta_low DOUBLE NOT NULL,
    delta_high DOUBLE NOT NULL, significant BOOLEAN, computed_at TIMESTAMP NOT NULL, PRIMARY KEY (variant, benchmark));
INSERT INTO quantization_loss VALUES ('q', 'bf16', 'arith', 10, 0.5, 0.75, -0.25, -0.5, 0.0, false,
                                      TIMESTAMP '2026-01-01');
"""


def _key(connection: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return connection.execute("SELECT constraint_column_names FROM duckdb_constraints() "
                              "WHERE table_name = ? AND constraint_type = 'PRIMARY KEY'", [table]).fetchone()[0]


def test_quantization_loss_made_before_is_against_the_twin_and_keyed_by_baseline_after(tmp_path):
    """Migration 019: a variant is compared with each of its baselines, so the key takes the baseline; the rows made
    before, and those published, were against the twin."""
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as connection:
        apply_schema(connection)
        # As a file from before 019: the table of that shape, a run published from it, the migration not had.
        connection.execute("DROP TABLE quantization_loss")
        connection.execute(QUANTIZATION_LOSS_BEFORE_019)
        connection.execute("ALTER TABLE published_quantization_loss DROP COLUMN relation")
        connection.execute("INSERT INTO published_quantization_loss SELECT 'run-q', * FROM quantization_loss")
        connection.execute("DELETE FROM schema_migrations WHERE version >= 19")
        apply_schema(connection)
        assert _table_columns(connection) == _fresh_columns(tmp_path)
        assert _key(connection, "quantization_loss") == ["variant", "baseline", "benchmark"]
        assert connection.execute("SELECT variant, baseline, relation, delta FROM quantization_loss").fetchall() == [
            ("q", "bf16", "twin", -0.25)]
        assert connection.execute("SELECT run_id, relation FROM published_quantization_loss").fetchall() == [
            ("run-q", "twin")]
        connection.execute("INSERT INTO quantization_loss BY NAME SELECT * REPLACE ('ref' AS baseline, "
                           "'reference' AS relation) FROM quantization_loss")   # a second baseline fits the key
        assert connection.execute("SELECT count(*) FROM quantization_loss").fetchone() == (2,)
