"""One partition per variant of the evaluation matrix, shared by every asset of the chain.

The partition keys are read once, when the definitions load; a run's settings come from the `matrix`
resource, so every step of one run sees the same file.
"""

import dagster as dg

from assets.matrix import load_matrix

variant_partitions = dg.StaticPartitionsDefinition(sorted(load_matrix().variants))
