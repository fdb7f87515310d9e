"""One partition per variant of the evaluation matrix."""

import dagster as dg

from pipelines.matrix import load_matrix

variant_partitions = dg.StaticPartitionsDefinition(sorted(load_matrix().variants))
