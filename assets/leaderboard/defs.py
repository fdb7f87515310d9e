"""leaderboard: accuracy, speed and cost per variant and benchmark, one view over the warehouse."""

import dagster as dg

from assets.cost.defs import cost_rollup
from assets.plots import pareto_chart
from assets.scoring.defs import quantization_loss
from assets.partitions import variant_partitions
from resources.warehouse import WarehouseResource

LEADERBOARD_SQL = "SELECT * FROM leaderboard ORDER BY benchmark, pass_at_1 DESC, variant"


@dg.asset(partitions_def=variant_partitions, group_name="leaderboard", kinds={"duckdb"},
          deps=[cost_rollup, quantization_loss])
def leaderboard(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """The `leaderboard` view (accuracy with intervals, throughput, latency, $/M tokens, $/correct answer)
    refreshed after this variant's cost rollup; its full table is shown here, with a chart of accuracy
    against cost (Pareto front dashed) per benchmark."""
    table = warehouse.query(LEADERBOARD_SQL)
    charts = {f"pareto_{benchmark}": dg.MetadataValue.md(pareto_chart(table, benchmark))
              for benchmark in sorted(table["benchmark"].unique())}
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(table),
        "this_variant_rows": int((table["variant"] == context.partition_key).sum()),
        "leaderboard": dg.MetadataValue.md(table.to_markdown(index=False)),
        **charts,
    })
