"""Sample keys (assets/variants.py): samples an older yardstick keyed with k are adopted, not drawn again."""

import hashlib
import json
from dataclasses import asdict, replace

import pandas as pd
import pytest

from assets.models.defs import record_snapshot, sample_key_of
from resources.warehouse import WarehouseResource
from tests.samples import BASE, generation_row, grade_row


def hash_with_k(variant) -> str:
    """The config hash an older yardstick stored the variant's samples under (on weights "weights-1"), written out
    as it made it: that history is fixed, whatever the current hash becomes."""
    runtime_only = {"concurrency", "startup_timeout_s", "port", "cpu_kvcache_space_gib", "retry"}
    identity = {"model": asdict(variant.model), "quantization": variant.quantization.identity(),
                "engine": {"kind": variant.engine.kind,
                           "options": {k: v for k, v in variant.engine.options.items() if k not in runtime_only}},
                "protocol": asdict(variant.protocol)}
    settings = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return hashlib.sha256(f"{settings}:weights-1".encode()).hexdigest()[:16]


def _snapshot(warehouse: WarehouseResource, variant) -> str:
    """The variant's snapshot recorded as model_snapshot records it; the key of its samples."""
    record_snapshot(warehouse, variant, {"variant": variant.name, "source": "local", "fingerprint": "weights-1"})
    return sample_key_of(warehouse, variant.name)


@pytest.mark.unit
def test_samples_an_older_yardstick_keyed_with_k_are_adopted_not_drawn_again(tmp_path):
    """An older yardstick keyed samples by a hash that covered k; under the same k, they are the current hash's."""
    warehouse = WarehouseResource(path=str(tmp_path / "w.duckdb"))
    variant = replace(BASE, name="v")
    with_k = hash_with_k(variant)
    keys = [("a0", 0), ("a0", 1), ("a1", 0)]
    warehouse.insert_new("benchmark_generations", pd.DataFrame([generation_row(*key, with_k) for key in keys]))
    warehouse.insert_new("graded_answers", pd.DataFrame([grade_row(*key, with_k) for key in keys]))
    other_k = pd.DataFrame([generation_row("a0", 0, "drawn-under-another-k")])   # not this matrix's: left alone
    warehouse.insert_new("benchmark_generations", other_k)

    current = _snapshot(warehouse, variant)
    assert current != with_k and _snapshot(warehouse, variant) == current   # the same on every snapshot
    for table in ("benchmark_generations", "graded_answers"):
        rows = warehouse.query(f"SELECT config_hash, item_id, sample_index FROM {table} ORDER BY ALL")
        expected = [[current, *key] for key in keys]
        if table == "benchmark_generations":
            expected = [*expected, ["drawn-under-another-k", "a0", 0]]
        assert sorted(rows.values.tolist()) == sorted(expected)


@pytest.mark.unit
def test_an_adopted_grade_always_comes_with_its_generation(tmp_path):
    """Where the current hash already has a sample, the older one stays where it is, grade included."""
    warehouse = WarehouseResource(path=str(tmp_path / "w.duckdb"))
    variant = replace(BASE, name="v")
    current = _snapshot(warehouse, variant)
    with_k = hash_with_k(variant)
    warehouse.insert_new("benchmark_generations", pd.DataFrame([generation_row("a0", 0, current),
                                                                generation_row("a0", 0, with_k)]))
    warehouse.insert_new("graded_answers", pd.DataFrame([grade_row("a0", 0, with_k)]))   # current's is ungraded
    _snapshot(warehouse, variant)
    assert warehouse.query("SELECT config_hash FROM graded_answers")["config_hash"].tolist() == [with_k]
    assert sorted(warehouse.query("SELECT config_hash FROM benchmark_generations")["config_hash"]) == sorted(
        [current, with_k])
