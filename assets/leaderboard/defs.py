"""leaderboard: accuracy, speed and cost per variant and benchmark, one view over the warehouse."""

import dagster as dg

from assets.cost.defs import cost_rollup
from assets.leaderboard.printing import LEADERBOARD_SQL, printed_leaderboard
from assets.partitions import variant_partitions
from assets.plots import pareto_chart
from assets.scoring.defs import quantization_loss
from resources.warehouse import WarehouseResource


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
        "leaderboard": dg.MetadataValue.md(printed_leaderboard(table).to_markdown(index=False)),
        **charts,
    })
