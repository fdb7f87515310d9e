"""cost_rollup: what a million output tokens and a correct answer cost, rented, owned, or bought from an API.

- A variant that runs its own engine on `hardware` is priced from the instance catalog at the fastest measured
  load level that met the SLOs: $/M output tokens = $/h ÷ (output tok/s × 3600) × 10^6. When the ownership
  catalog has a purchase price for that hardware, the owned figure is computed beside the rented one.
- An external API with `api_price` is priced from its actual token use on the benchmarks: prompt tokens at
  the input price, completion tokens (reasoning included) at the output price, reasoning at its own price
  where the provider has one.
"""

import dagster as dg
import pandas as pd

from assets.cost.pricing import (
    CONTENDED,
    ApiPrice,
    Electricity,
    api_alternative,
    api_costs,
    benchmark_spend,
    instance_costs,
    priced_level,
    spend_totals,
)
from assets.matrix import Variant
from assets.models.defs import sample_key_of
from assets.partitions import variant_partitions
from resources.matrix import MatrixResource
from resources.prices import PriceCatalogResource
from resources.warehouse import WarehouseResource
from warehouse import utc_now

# Tokens and correct answers per benchmark, over the samples of the variant's current configuration.
USAGE_SQL = """
SELECT g.benchmark,
       coalesce(sum(g.prompt_tokens), 0)     AS prompt_tokens,
       coalesce(sum(g.cached_prompt_tokens) FILTER (WHERE g.prompt_tokens IS NOT NULL), 0) AS cached_prompt_tokens,
       coalesce(sum(g.completion_tokens), 0) AS output_tokens,
       coalesce(sum(g.reasoning_tokens) FILTER (WHERE g.completion_tokens IS NOT NULL), 0) AS reasoning_tokens,
       count(*) FILTER (WHERE g.reasoning_tokens IS NULL) AS samples_without_reasoning_count,
       count(*) FILTER (WHERE g.completion_tokens IS NULL OR g.prompt_tokens IS NULL) AS samples_without_usage,
       coalesce(sum(CASE WHEN g.correct THEN 1 ELSE 0 END), 0) AS correct_answers,
       count(*) AS samples
FROM current_graded_answers g   -- the items the matrix names now, as scores count them
WHERE g.variant = ? AND g.config_hash = ?
GROUP BY g.benchmark ORDER BY g.benchmark
"""


def _priced_level(variant: Variant, warehouse: WarehouseResource) -> tuple[dict, bool, dict]:
    """The serving_load_levels row a variant's hour is priced at, whether it met the SLOs and its host condition
    (priced_level)."""
    levels = warehouse.query("SELECT * FROM serving_load_levels WHERE variant = ?", [variant.name])
    if levels.empty:
        raise dg.Failure(f"variant '{variant.name}' is priced by the hour on '{variant.hardware}', which needs a "
                         "measured throughput, but serving_benchmark stored no load level (its serving "
                         "concurrency and request_rates are empty, or it was not materialized)")
    bound = variant.serving.max_failed_share
    try:
        return priced_level(levels.to_dict("records"), bound)
    except ValueError as error:
        raise dg.Failure(f"variant '{variant.name}': {error}; rerun serving_benchmark, or raise serving "
                         f"max_failed_share (now {bound:.1%}) if failures are what this endpoint does") from None


def _instance_costs(variant: Variant, warehouse: WarehouseResource, prices: PriceCatalogResource) -> dict:
    price = prices.instance_price(variant.hardware)
    nodes = variant.engine.settings.node_count   # a multi-node deployment rents the instance n times
    level, meets_slo, condition = _priced_level(variant, warehouse)
    return {**instance_costs(price, level, meets_slo, nodes, Electricity(prices.usd_per_kwh, prices.pue),
                             prices.ownership(variant.hardware)), **condition}


def _api_alternatives(context: dg.AssetExecutionContext, matrix: MatrixResource, prices: PriceCatalogResource,
                      variant: Variant, spent: dict, computed_at: object) -> pd.DataFrame:
    """What this variant's samples would have cost, token for token, at each API it is compared with: the
    prices resource's compare_apis and the API baselines of the matrix."""
    names = dict.fromkeys([*prices.compare_apis, *(other.api_price for other in matrix.matrix.variants.values()
                                                    if other.api_price)])
    known = set(prices.api_prices()["model"])
    missing = [name for name in names if name not in known]
    if missing:
        context.log.warning(f"no API price for {', '.join(missing)} in {prices.api_prices_path}; not compared")
    return pd.DataFrame([{"variant": variant.name, **api_alternative(prices.api_price(name), spent),
                          "computed_at": computed_at} for name in names if name in known])


def _warn_of_missing_usage(context: dg.AssetExecutionContext, variant: Variant, usage: pd.DataFrame,
                           api_price: ApiPrice | None) -> None:
    unpriced = int(usage["samples_without_usage"].sum())
    if unpriced:
        context.log.warning(f"{unpriced} samples came back without token usage; they count as 0 tokens, so the "
                            "spend is understated")
    if api_price and int(usage["samples_without_reasoning_count"].sum()) and api_price.reasoning is not None:
        context.log.warning(f"{variant.api_price} prices reasoning apart, but some samples did not report their "
                            "reasoning tokens; those were priced at the output price")


def _metadata(variant: Variant, row: dict, costs: pd.DataFrame, api_price: ApiPrice | None) -> dict:
    basis = (f"${row['usd_per_hour']}/h for {row['hardware']}" if not api_price
             else f"{variant.api_price}: ${api_price.input}/M in, ${api_price.output}/M out")
    metadata = {
        "dagster/row_count": 1,
        "pricing": row["pricing"],
        "usd_per_million_output_tokens": round(row["usd_per_million_output_tokens"], 4),
        "usd_spent": round(row["usd_spent"], 6),
        "price": f"{basis} ({row['price_date']}, {row['price_source']})",
        "per_benchmark": dg.MetadataValue.md(costs.drop(columns="variant").round(6).to_markdown(index=False)),
    }
    if row.get("priced_host_condition") == CONTENDED:
        metadata["measured_on_a_busy_host"] = row["priced_host_contention"]
    if row.get("priced_failed_share"):
        metadata["priced_failed_share"] = round(row["priced_failed_share"], 4)
    if row.get("output_tokens_per_s"):
        metadata["output_tokens_per_s"] = round(row["output_tokens_per_s"], 2)
    if row.get("owned_usd_per_million_output_tokens"):
        metadata["owned_usd_per_million_output_tokens"] = round(row["owned_usd_per_million_output_tokens"], 4)
    return metadata


@dg.asset(partitions_def=variant_partitions, group_name="cost", kinds={"python", "duckdb"},
          deps=["benchmark_scores", "serving_benchmark"])
def cost_rollup(context: dg.AssetExecutionContext, matrix: MatrixResource, warehouse: WarehouseResource,
                prices: PriceCatalogResource) -> dg.MaterializeResult:
    """$ per million output tokens (rented and, where the hardware's purchase price is known, owned; or an
    API's list price) and $ per correct answer over the tokens each benchmark actually spent."""
    variant = matrix.variant(context.partition_key)
    api_price = prices.api_price(variant.api_price) if variant.api_price else None
    priced = api_costs(api_price) if api_price else _instance_costs(variant, warehouse, prices)

    usage = warehouse.query(USAGE_SQL, [variant.name, sample_key_of(warehouse, variant.name)])
    if usage.empty:
        raise dg.Failure(f"no graded generations for variant '{variant.name}'; materialize graded_answers first")
    benchmarks = benchmark_spend(usage.to_dict("records"), api_price, priced["usd_per_million_output_tokens"])
    _warn_of_missing_usage(context, variant, usage, api_price)
    costs = pd.DataFrame([{"variant": variant.name, **bench} for bench in benchmarks])
    spent = spend_totals(benchmarks)
    row = {**priced, "variant": variant.name, **spent, "computed_at": utc_now()}
    alternatives = (pd.DataFrame() if api_price
                    else _api_alternatives(context, matrix, prices, variant, spent, row["computed_at"]))
    warehouse.replace_partition("cost_rollup", variant.name, pd.DataFrame([row]))
    warehouse.replace_partition("benchmark_costs", variant.name, costs.assign(computed_at=row["computed_at"]))
    warehouse.replace_partition("api_alternatives", variant.name, alternatives)
    if row.get("priced_host_condition") == CONTENDED:
        context.log.warning(f"NOT TRUSTWORTHY: every serving level of '{variant.name}' was measured on a busy host, "
                            f"so its $/M tokens are priced from a contended level ({row['best_profile']} "
                            f"{row['best_load']:g}: {row['priced_host_contention']}); rerun serving_benchmark on a "
                            "quiet host")
    if row.get("priced_failed_share"):
        context.log.warning(f"the priced load level ({row['best_profile']} {row['best_load']:g}) had "
                            f"{row['priced_failed_share']:.1%} of its requests fail, within the bound of "
                            f"{variant.serving.max_failed_share:.1%}; its throughput counts only the requests "
                            "that finished")
    return dg.MaterializeResult(metadata=_metadata(variant, row, costs, api_price))
