"""cost_rollup: dollars per million output tokens and per correct answer, from measured throughput."""

from datetime import date

import dagster as dg
import pandas as pd

from assets.cost.pricing import best_level, usd_per_correct_answer, usd_per_million_tokens
from assets.variants import variant_named
from pipelines.partitions import variant_partitions
from resources.prices import PriceCatalogResource
from resources.warehouse import WarehouseResource
from warehouse import utc_now


@dg.asset(partitions_def=variant_partitions, group_name="cost", kinds={"python", "duckdb"},
          deps=["benchmark_scores", "serving_benchmark"])
def cost_rollup(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                prices: PriceCatalogResource) -> dg.MaterializeResult:
    """$ per million output tokens at the fastest measured load level that met the SLOs, priced from the
    dated, sourced instance catalog; and $ per correct answer over the tokens the benchmarks actually spent."""
    variant = variant_named(context.partition_key)
    price = prices.instance(variant.hardware)
    levels = warehouse.query("SELECT * FROM serving_load_levels WHERE variant = ?", [variant.name])
    if levels.empty:
        raise dg.Failure(f"no serving_benchmark rows for variant '{variant.name}'; materialize it first")
    best, meets_slo = best_level(levels.to_dict("records"))
    per_million = usd_per_million_tokens(float(price["usd_per_hour"]), float(best["output_throughput"]))
    totals = warehouse.query(
        "SELECT coalesce(sum(output_tokens), 0) AS tokens, coalesce(sum(correct_samples), 0) AS correct "
        "FROM benchmark_scores WHERE variant = ?", [variant.name]).iloc[0]
    row = {
        "variant": variant.name, "hardware": variant.hardware, "usd_per_hour": float(price["usd_per_hour"]),
        "price_date": date.fromisoformat(str(price["price_date"])), "price_source": str(price["source"]),
        "best_profile": best["profile"], "best_load": float(best["load"]), "meets_slo": meets_slo,
        "output_tokens_per_s": float(best["output_throughput"]),
        "usd_per_million_output_tokens": per_million, "output_tokens_spent": int(totals["tokens"]),
        "correct_answers": int(totals["correct"]),
        "usd_per_correct_answer": usd_per_correct_answer(int(totals["tokens"]), per_million, int(totals["correct"])),
        "computed_at": utc_now(),
    }
    warehouse.replace_partition("cost_rollup", variant.name, pd.DataFrame([row]))
    return dg.MaterializeResult(metadata={
        "dagster/row_count": 1,
        "usd_per_million_output_tokens": round(per_million, 4),
        "output_tokens_per_s": round(row["output_tokens_per_s"], 2),
        "price": f"${row['usd_per_hour']}/h for {variant.hardware} ({price['price_date']}, {price['source']})",
    })
