"""cost_rollup: what a million output tokens and a correct answer cost, rented, owned, or bought from an API.

- A variant that runs its own engine on `hardware` is priced from the instance catalog at the fastest measured
  load level that met the SLOs: $/M output tokens = $/h ÷ (output tok/s × 3600) × 10^6. When the ownership
  catalog has a purchase price for that hardware, the owned figure is computed beside the rented one.
- An external API with `api_price` is priced from its actual token use on the benchmarks: prompt tokens at
  the input price, completion tokens (reasoning included) at the output price, reasoning at its own price
  where the provider has one.
"""

import json
from dataclasses import replace
from datetime import date

import dagster as dg
import pandas as pd

from assets.cost.pricing import (
    ApiPrice,
    benchmark_spend,
    best_level,
    failed_share,
    usd_per_correct,
    usd_per_million_tokens,
)
from assets.matrix import Variant
from assets.partitions import variant_partitions
from assets.variants import config_hash
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


def _instance_costs(variant: Variant, warehouse: WarehouseResource, prices: PriceCatalogResource) -> dict:
    price = prices.instance(variant.hardware)
    nodes = int(variant.engine.options.get("nodes", 1))   # a multi-node deployment rents the instance n times
    usd_per_hour = float(price["usd_per_hour"]) * nodes
    levels = warehouse.query("SELECT * FROM serving_load_levels WHERE variant = ?", [variant.name])
    if levels.empty:
        raise dg.Failure(f"variant '{variant.name}' is priced by the hour on '{variant.hardware}', which needs a "
                         "measured throughput, but serving_benchmark stored no load level (its serving "
                         "concurrency and request_rates are empty, or it was not materialized)")
    bound = variant.serving.max_failed_share
    try:
        best, meets_slo = best_level(levels.to_dict("records"), bound)
    except ValueError as error:
        raise dg.Failure(f"variant '{variant.name}': {error}; rerun serving_benchmark, or raise serving "
                         f"max_failed_share (now {bound:.1%}) if failures are what this endpoint does") from None
    throughput = float(best["output_throughput"])
    row = {"pricing": "instance", "hardware": variant.hardware if nodes == 1 else f"{variant.hardware} x{nodes}",
           "usd_per_hour": usd_per_hour,
           "price_date": price["price_date"], "price_source": str(price["source"]),
           "best_profile": best["profile"], "best_load": float(best["load"]), "meets_slo": meets_slo,
           "priced_failed_share": failed_share(best),
           "output_tokens_per_s": throughput,
           "usd_per_million_output_tokens": usd_per_million_tokens(usd_per_hour, throughput)}
    energy = best.get("gpu_kwh_per_million_output_tokens")
    if energy is not None and not pd.isna(energy):   # measured by NVML: the tariff prices it
        row["energy_kwh_per_million_output_tokens"] = float(energy) * prices.pue
        row["energy_usd_per_million_output_tokens"] = float(energy) * prices.pue * prices.usd_per_kwh
    owned = prices.ownership(variant.hardware)
    if owned:
        terms, source = owned
        measured_kw = measured_power_kw(best)
        if measured_kw is not None:   # what the GPUs drew at the priced level, not the board's nameplate power
            terms = replace(terms, power_kw=measured_kw)
        owned_usd_per_hour = terms.usd_per_hour * nodes
        row.update(owned_usd_per_hour=owned_usd_per_hour,
                   owned_usd_per_million_output_tokens=usd_per_million_tokens(owned_usd_per_hour, throughput),
                   ownership_terms=json.dumps({
                       "purchase_usd": terms.purchase_usd, "power_kw": terms.power_kw, "years": terms.years,
                       "usd_per_kwh": terms.usd_per_kwh, "utilisation": terms.utilisation, "pue": terms.pue,
                       "nodes": nodes, "power_source": ("measured: NVML energy at the priced level"
                                                         if measured_kw is not None else "nameplate"),
                       "price_date": source["price_date"], "source": source["source"]}))
    return row


def _api_costs(variant: Variant, prices: PriceCatalogResource) -> tuple[dict, ApiPrice]:
    price, row = prices.api_price(variant.api_price)
    return {"pricing": "api", "api_model": variant.api_price, "price_date": row["price_date"],
            "price_source": str(row["source"]), "usd_per_million_input_tokens": price.input,
            "usd_per_million_output_tokens": price.output,
            "usd_per_million_reasoning_tokens": price.reasoning,
            "usd_per_million_cached_input_tokens": price.cached_input}, price


def measured_power_kw(level: dict) -> float | None:
    """The GPUs' mean power over a load level in kW, from the energy NVML measured; None where it was not."""
    energy, duration = level.get("gpu_energy_j"), level.get("duration_s")
    if energy is None or pd.isna(energy) or not duration or duration <= 0:
        return None
    return float(energy) / float(duration) / 1000


def _api_alternatives(context: dg.AssetExecutionContext, matrix: MatrixResource, prices: PriceCatalogResource,
                      variant: Variant, costs: pd.DataFrame, computed_at: object) -> pd.DataFrame:
    """What this variant's samples would have cost, token for token, at each API it is compared with: the
    prices resource's compare_apis and the API baselines of the matrix."""
    names = dict.fromkeys([*prices.compare_apis, *(other.api_price for other in matrix.matrix.variants.values()
                                                    if other.api_price)])
    known = set(prices.api_prices()["model"])
    missing = [name for name in names if name not in known]
    if missing:
        context.log.warning(f"no API price for {', '.join(missing)} in {prices.api_prices_path}; not compared")
    totals = {column: int(costs[column].sum()) for column in
              ("prompt_tokens", "cached_prompt_tokens", "output_tokens", "reasoning_tokens")}
    rows = []
    for name in (name for name in names if name in known):
        price, row = prices.api_price(name)
        rows.append({"variant": variant.name, "api_model": name, "usd_per_million_input_tokens": price.input,
                     "usd_per_million_output_tokens": price.output,
                     "price_date": date.fromisoformat(str(row["price_date"])), "price_source": str(row["source"]),
                     "usd_spent": price.usd(totals["prompt_tokens"], totals["output_tokens"],
                                            totals["reasoning_tokens"], totals["cached_prompt_tokens"]),
                     "output_tokens_spent": totals["output_tokens"], "computed_at": computed_at})
    return pd.DataFrame(rows)


@dg.asset(partitions_def=variant_partitions, group_name="cost", kinds={"python", "duckdb"},
          deps=["benchmark_scores", "serving_benchmark"])
def cost_rollup(context: dg.AssetExecutionContext, matrix: MatrixResource, warehouse: WarehouseResource,
                prices: PriceCatalogResource) -> dg.MaterializeResult:
    """$ per million output tokens (rented and, where the hardware's purchase price is known, owned; or an
    API's list price) and $ per correct answer over the tokens each benchmark actually spent."""
    variant = matrix.variant(context.partition_key)
    api_price = None
    if variant.api_price:
        row, api_price = _api_costs(variant, prices)
    else:
        row = _instance_costs(variant, warehouse, prices)
    per_million = row["usd_per_million_output_tokens"]

    usage = warehouse.query(USAGE_SQL, [variant.name, config_hash(warehouse, variant)])
    if usage.empty:
        raise dg.Failure(f"no graded generations for variant '{variant.name}'; materialize graded_answers first")
    benchmarks = [{"variant": variant.name, **row}
                  for row in benchmark_spend(usage.to_dict("records"), api_price, per_million)]
    unpriced = int(usage["samples_without_usage"].sum())
    if unpriced:
        context.log.warning(f"{unpriced} samples came back without token usage; they count as 0 tokens, so the "
                            "spend is understated")
    if api_price and int(usage["samples_without_reasoning_count"].sum()) and api_price.reasoning is not None:
        context.log.warning(f"{variant.api_price} prices reasoning apart, but some samples did not report their "
                            "reasoning tokens; those were priced at the output price")
    costs = pd.DataFrame(benchmarks)
    tokens, correct = int(costs["output_tokens"].sum()), int(costs["correct_answers"].sum())
    usd_spent = float(costs["usd_spent"].sum())
    row.update({
        "variant": variant.name, "price_date": date.fromisoformat(str(row["price_date"])),
        "prompt_tokens_spent": int(costs["prompt_tokens"].sum()),
        "cached_prompt_tokens_spent": int(costs["cached_prompt_tokens"].sum()), "output_tokens_spent": tokens,
        "reasoning_tokens_spent": int(costs["reasoning_tokens"].sum()), "usd_spent": usd_spent,
        "correct_answers": correct,
        "usd_per_correct_answer": usd_per_correct(usd_spent, correct),
        "computed_at": utc_now(),
    })
    alternatives = (pd.DataFrame() if api_price
                    else _api_alternatives(context, matrix, prices, variant, costs, row["computed_at"]))
    warehouse.replace_partition("cost_rollup", variant.name, pd.DataFrame([row]))
    warehouse.replace_partition("benchmark_costs", variant.name, costs.assign(computed_at=row["computed_at"]))
    warehouse.replace_partition("api_alternatives", variant.name, alternatives)
    basis = (f"${row['usd_per_hour']}/h for {row['hardware']}" if not api_price
             else f"{variant.api_price}: ${api_price.input}/M in, ${api_price.output}/M out")
    metadata = {
        "dagster/row_count": 1,
        "pricing": row["pricing"],
        "usd_per_million_output_tokens": round(per_million, 4),
        "usd_spent": round(row["usd_spent"], 6),
        "price": f"{basis} ({row['price_date']}, {row['price_source']})",
        "per_benchmark": dg.MetadataValue.md(costs.drop(columns="variant").round(6).to_markdown(index=False)),
    }
    if row.get("priced_failed_share"):
        failed = row["priced_failed_share"]
        metadata["priced_failed_share"] = round(failed, 4)
        context.log.warning(f"the priced load level ({row['best_profile']} {row['best_load']:g}) had {failed:.1%} of "
                            f"its requests fail, within the bound of {variant.serving.max_failed_share:.1%}; its "
                            "throughput counts only the requests that finished")
    if row.get("output_tokens_per_s"):
        metadata["output_tokens_per_s"] = round(row["output_tokens_per_s"], 2)
    if row.get("owned_usd_per_million_output_tokens"):
        metadata["owned_usd_per_million_output_tokens"] = round(row["owned_usd_per_million_output_tokens"], 4)
    return dg.MaterializeResult(metadata=metadata)
