"""benchmark_items: the items a variant is evaluated on, in the warehouse."""


import dagster as dg
import pandas as pd

from assets.benchmarks.items import load_items
from assets.partitions import variant_partitions
from resources.matrix import MatrixResource
from resources.warehouse import WarehouseResource
from warehouse import utc_now


@dg.asset(partitions_def=variant_partitions, group_name="benchmarks", kinds={"huggingface", "duckdb"})
def benchmark_items(context: dg.AssetExecutionContext, matrix: MatrixResource,
                    warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Benchmark problems with normalised gold answers, loaded from the hub at a recorded commit or from the
    offline mirror folder; the first N items of each benchmark the variant names."""
    variant = matrix.variant(context.partition_key)
    mirror = matrix.mirror_folder()
    context.log.info(f"loading {list(variant.benchmarks)} from {mirror or 'the Hugging Face hub'}")
    options = matrix.matrix.benchmark_options
    rows = [item for name, limit in variant.benchmarks.items()
            for item in load_items(name, mirror, limit, options.get(name))]
    frame = pd.DataFrame(rows).assign(variant=variant.name, loaded_at=utc_now())
    warehouse.replace_partition("benchmark_items", variant.name, frame)
    counts = frame.groupby("benchmark").size()
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(frame),
        "items_per_benchmark": dg.MetadataValue.md(counts.to_frame("items").to_markdown()),
        "sources": dg.MetadataValue.json(sorted(frame["source"].unique().tolist())),
    })
