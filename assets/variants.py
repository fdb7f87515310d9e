"""The identity of a variant's samples (its matrix settings and the exact weights they ran on) and which of them
count now (those of the items the variant names, up to its k per benchmark)."""

from __future__ import annotations

import hashlib

import pandas as pd

from assets.matrix import Variant

# The tables whose rows are samples, keyed by (variant, config_hash, benchmark, item_id, sample_index).
SAMPLE_TABLES = ("graded_answers", "benchmark_generations")

# Re-keys one table's samples from the hash that covered k to the current one, except where the current hash
# already has that sample. Grades go first and only with a generation that moves too: a grade never lands beside
# a generation it was not made from, even if the process stops between the two tables.
_ADOPT_SQL = """
UPDATE {table} SET config_hash = ?
WHERE variant = ? AND config_hash = ?
  AND NOT EXISTS (SELECT 1 FROM {table} n WHERE n.variant = {table}.variant AND n.config_hash = ?
                  AND n.benchmark = {table}.benchmark AND n.item_id = {table}.item_id
                  AND n.sample_index = {table}.sample_index)
  AND NOT EXISTS (SELECT 1 FROM benchmark_generations n WHERE n.variant = {table}.variant AND n.config_hash = ?
                  AND n.benchmark = {table}.benchmark AND n.item_id = {table}.item_id
                  AND n.sample_index = {table}.sample_index)
"""


def config_hash(warehouse: object, variant: Variant) -> str:
    """What makes two samples comparable: the variant's settings (not its k, nor its items) and the exact weights
    they ran on.

    A variant with `resample: daily` keys its samples by the UTC day its model snapshot was taken on as well: each
    night's run draws its own, and a rerun the same day reuses them.

    Samples stored under the hash of an older yardstick, which covered k, are re-keyed to this one the first time
    it is asked for, when the matrix still has the k they were drawn with: they are the same samples, and
    drawing them again would cost a whole generation.
    """
    snapshot = warehouse.query("SELECT fingerprint, recorded_at FROM model_snapshots WHERE variant = ?",
                               [variant.name])
    if snapshot.empty:
        raise LookupError(f"no model_snapshot for variant '{variant.name}'; materialize model_snapshot first")
    fingerprint = snapshot.iloc[0]["fingerprint"]
    if variant.resample == "daily":
        # The day the snapshot was taken, which every asset of one run reads alike, even past midnight.
        return drawn_on(variant, fingerprint, pd.Timestamp(snapshot.iloc[0]["recorded_at"]).strftime("%Y-%m-%d"))
    current = _digest(variant.settings_hash, fingerprint)
    with_k = _digest(variant.settings_hash_with_k, fingerprint)
    for table in SAMPLE_TABLES:
        warehouse.query(_ADOPT_SQL.format(table=table), [current, variant.name, with_k, current, current])
    return current


def drawn_on(variant: Variant, fingerprint: str, day: str) -> str:
    """The config hash of a variant resampled daily, for the samples drawn on `day` (YYYY-MM-DD, UTC)."""
    return _digest(variant.settings_hash, f"{fingerprint}:drawn {day}")


def counted_samples(variant: Variant) -> pd.DataFrame:
    """The `benchmark_k` rows of a variant: how many samples per item each of its benchmarks counts now."""
    return pd.DataFrame({"variant": variant.name, "benchmark": list(variant.benchmarks),
                         "k": [variant.protocol.samples_for(benchmark) for benchmark in variant.benchmarks]})


def _digest(settings_hash: str, fingerprint: str) -> str:
    return hashlib.sha256(f"{settings_hash}:{fingerprint}".encode()).hexdigest()[:16]
