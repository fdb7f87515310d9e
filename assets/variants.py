"""The identity of a variant's samples (its matrix settings and the exact weights they ran on), the keys older
yardsticks gave the same samples, and which of them count now (those of the items the variant names, up to its k
per benchmark)."""

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


def sample_key(variant: Variant, fingerprint: str, recorded_at: pd.Timestamp) -> str:
    """What makes two samples comparable: the variant's settings (not its k, nor its items) and the exact weights
    they ran on, the snapshot's `fingerprint`. Worked out once, when the snapshot is recorded (`recorded_at`), and
    stored with it: every later step reads it from there.

    A variant with `resample: daily` keys its samples by the UTC day its model snapshot was taken on as well: each
    night's run draws its own, and a rerun the same day reuses them.
    """
    if variant.resample == "daily":
        return drawn_on(variant, fingerprint, pd.Timestamp(recorded_at).strftime("%Y-%m-%d"))
    return _digest(variant.settings_hash, fingerprint)


def former_sample_keys(variant: Variant, fingerprint: str) -> tuple[str, ...]:
    """The keys older yardsticks stored the same samples under (`Variant.former_settings_hashes`): adopted when the
    snapshot is recorded, since drawing them again would cost a whole generation. None for a variant drawn daily:
    a day's samples are that day's."""
    if variant.resample == "daily":
        return ()
    return tuple(_digest(former, fingerprint) for former in variant.former_settings_hashes)


def adoption_statements(variant: str, former_keys: tuple[str, ...], current: str) -> list[tuple[str, list]]:
    """The statements that re-key a variant's samples stored under `former_keys` to `current`, grades first, each
    sample only where `current` does not have it yet (see _ADOPT_SQL)."""
    return [(_ADOPT_SQL.format(table=table), [current, variant, former, current, current])
            for former in former_keys for table in SAMPLE_TABLES]


def drawn_on(variant: Variant, fingerprint: str, day: str) -> str:
    """The config hash of a variant resampled daily, for the samples drawn on `day` (YYYY-MM-DD, UTC)."""
    return _digest(variant.settings_hash, f"{fingerprint}:drawn {day}")


def counted_samples(variant: Variant) -> pd.DataFrame:
    """The `benchmark_k` rows of a variant: how many samples per item each of its benchmarks counts now."""
    return pd.DataFrame({"variant": variant.name, "benchmark": list(variant.benchmarks),
                         "k": [variant.protocol.samples_for(benchmark) for benchmark in variant.benchmarks]})


def _digest(settings_hash: str, fingerprint: str) -> str:
    return hashlib.sha256(f"{settings_hash}:{fingerprint}".encode()).hexdigest()[:16]
