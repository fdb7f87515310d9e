"""leaderboard: accuracy, speed and cost per variant and benchmark, one view over the warehouse."""

import dagster as dg
import pandas as pd

from assets.cost.defs import cost_rollup
from assets.partitions import variant_partitions
from assets.plots import pareto_chart
from assets.scoring.defs import quantization_loss
from resources.warehouse import WarehouseResource

LEADERBOARD_SQL = "SELECT * FROM leaderboard ORDER BY benchmark, pass_at_1 DESC, variant"
# The decimals each of the view's numbers is printed with; the view keeps them unrounded.
PRINTED_DECIMALS = {"pass_at_1": 4, "pass_at_1_low": 4, "pass_at_1_high": 4, "cons_at_k": 4,
                    "delta_vs_baseline": 4, "output_tokens_per_s": 2, "ttft_ms_p99": 1, "tpot_ms_p99": 2,
                    "usd_per_million_output_tokens": 4, "owned_usd_per_million_output_tokens": 4,
                    "usd_per_correct_answer": 6}


def printed_leaderboard(board: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard view as people read it: numbers rounded, the paired difference's interval in one
    column as `[low, high]`, and the priced load level as `profile=load`."""
    shown = board.round(PRINTED_DECIMALS)
    shown["delta_interval"] = [
        None if pd.isna(low) else f"[{low:.3f}, {high:.3f}]"
        for low, high in zip(board["delta_vs_baseline_low"], board["delta_vs_baseline_high"], strict=True)]
    shown["priced_load"] = [None if pd.isna(profile) else f"{profile}={load:g}"
                            for profile, load in zip(board["priced_profile"], board["priced_load"], strict=True)]
    columns = [name for name in board.columns if name not in ("delta_vs_baseline_high", "priced_profile")]
    columns[columns.index("delta_vs_baseline_low")] = "delta_interval"
    return shown[columns]


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
