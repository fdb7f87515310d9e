"""quantization_loss: what quantizing cost in accuracy, per benchmark, against the same model unquantized on
the same items."""

import dagster as dg
import pandas as pd

from assets.scoring.metrics import paired_difference
from assets.variants import config_hash, variant_named
from pipelines.matrix import Variant, load_matrix
from pipelines.partitions import variant_partitions
from resources.warehouse import WarehouseResource
from warehouse import utc_now

# Mean correctness per item over the items the matrix names now (as benchmark_scores counts them).
PER_ITEM_SQL = """
SELECT a.benchmark, a.item_id, avg(CASE WHEN a.correct THEN 1.0 ELSE 0.0 END) AS accuracy, count(*) AS samples
FROM graded_answers a JOIN benchmark_items i USING (variant, benchmark, item_id)
WHERE a.variant = ? AND a.config_hash = ? GROUP BY ALL
"""


def baseline_of(variant: Variant) -> Variant | None:
    """The variant's unquantized twin: the matrix's explicit `baseline`, else the variant with the same model,
    engine kind and protocol and no quantization."""
    matrix = load_matrix()
    if variant.baseline:
        return matrix.variant(variant.baseline)
    if variant.quantization.scheme == "none":
        return None
    for other in matrix.variants.values():
        if (other.quantization.scheme == "none" and other.model == variant.model
                and other.engine.kind == variant.engine.kind and other.protocol == variant.protocol):
            return other
    return None


@dg.asset(partitions_def=variant_partitions, group_name="scoring", kinds={"python", "duckdb"},
          deps=["benchmark_scores"])
def quantization_loss(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Per benchmark: pass@1 of a quantized variant minus its unquantized baseline's on the same items, with a
    paired bootstrap interval over items and whether the difference is significant. Empty for a variant with
    no baseline (or whose baseline has not been scored yet)."""
    variant = variant_named(context.partition_key)
    baseline = baseline_of(variant)
    if baseline is None:
        warehouse.replace_partition("quantization_loss", variant.name, pd.DataFrame())
        return dg.MaterializeResult(metadata={"dagster/row_count": 0, "skipped": "no unquantized baseline"})
    try:
        baseline_config = config_hash(warehouse, baseline)
    except LookupError:
        baseline_config = None
    theirs = warehouse.query(PER_ITEM_SQL, [baseline.name, baseline_config]) if baseline_config else pd.DataFrame()
    if theirs.empty:
        warehouse.replace_partition("quantization_loss", variant.name, pd.DataFrame())
        message = f"baseline '{baseline.name}' has no graded answers yet; materialize it, then this asset again"
        context.log.warning(message)
        return dg.MaterializeResult(metadata={"dagster/row_count": 0, "skipped": message})
    ours = warehouse.query(PER_ITEM_SQL, [variant.name, config_hash(warehouse, variant)])
    rows = []
    for benchmark, group in ours.groupby("benchmark"):
        other = theirs[theirs["benchmark"] == benchmark]
        if not set(other["item_id"]) & set(group["item_id"]):
            context.log.warning(f"{benchmark}: no item scored by both {variant.name} and {baseline.name}")
            continue
        paired = paired_difference(group.set_index("item_id")["accuracy"], other.set_index("item_id")["accuracy"])
        rows.append({"variant": variant.name, "baseline": baseline.name, "benchmark": benchmark,
                     "n_items": paired.n_items, "pass_at_1": paired.score,
                     "baseline_pass_at_1": paired.baseline_score, "delta": paired.delta,
                     "delta_low": paired.delta_low, "delta_high": paired.delta_high,
                     "significant": paired.significant, "computed_at": utc_now()})
    table = pd.DataFrame(rows)
    warehouse.replace_partition("quantization_loss", variant.name, table)
    shown = table.drop(columns=["variant", "computed_at"]).round(4) if len(table) else table
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(table), "baseline": baseline.name,
        "loss": dg.MetadataValue.md(shown.to_markdown(index=False) if len(shown) else "(no shared benchmark)"),
    })
