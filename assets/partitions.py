"""One partition per variant of the evaluation matrix, shared by every asset of the chain.

The partition keys are read once, when the definitions load; a run's settings come from the `matrix`
resource, so every step of one run sees the same file.
"""

import dagster as dg

from assets.matrix import load_matrix

_MATRIX = load_matrix()
variant_partitions = dg.StaticPartitionsDefinition(sorted(_MATRIX.variants))


def with_baselines() -> dg.StaticPartitionMapping:
    """Each variant's partition depends on its own upstream partition and on those of the variants its quantization
    loss is measured against, its twin and the common reference (see `Matrix.baselines_of`), so Dagster shows that a
    variant's loss is stale when a baseline's scores change."""
    downstream: dict[str, set[str]] = {name: {name} for name in _MATRIX.variants}
    for variant in _MATRIX.variants.values():
        for baseline in _MATRIX.baselines_of(variant).values():
            downstream[baseline.name].add(variant.name)
    return dg.StaticPartitionMapping({upstream: sorted(names) for upstream, names in downstream.items()})
