"""published_evaluation: a run's checked results published as one evaluation run; leaderboard: accuracy, speed and
cost per variant and benchmark, one view over the published results."""

import dagster as dg
import pandas as pd

from assets.cost.defs import cost_rollup
from assets.leaderboard.history import (
    PRICED_LEVEL_SQL,
    SAMPLES_SQL,
    previous_run,
    publish,
    record_findings,
    run_trigger,
)
from assets.leaderboard.printing import LEADERBOARD_SQL, engine_notes, printed_leaderboard
from assets.leaderboard.regressions import NOT_COMPARABLE, accuracy_findings, serving_findings
from assets.partitions import variant_partitions
from assets.plots import break_even_chart, pareto_chart, reasoning_chart
from assets.scoring.defs import quantization_loss
from resources.matrix import MatrixResource
from resources.warehouse import WarehouseResource
from warehouse import utc_now


@dg.asset(partitions_def=variant_partitions, group_name="leaderboard", kinds={"duckdb"},
          deps=[cost_rollup, quantization_loss])
def published_evaluation(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """This run's scores, pass@k, difficulty, quantization loss, serving levels and costs, which passed the blocking
    check upstream, published as one evaluation run with what it evaluated (model sha, quantization, engine and
    its version, grader version, seeds, price date). Readers see only published runs; each stays in history."""
    run = context.run
    with warehouse.connect() as connection:
        what = publish(connection, run.run_id, context.partition_key, run_trigger(run.tags), utc_now())
    return dg.MaterializeResult(metadata={
        "dagster/row_count": 1, "run_id": run.run_id, "trigger": run_trigger(run.tags),
        **{name: str(value) for name, value in what.items() if value is not None},
    })


def _regression_result(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, kind: str,
                       compare) -> dg.AssetCheckResult:
    """Compare this run's published results with the variant's previous published run; WARN on a regression,
    with the evidence in the metadata and in the regression_findings table."""
    run_id, variant = context.op_execution_context.run.run_id, context.partition_key
    with warehouse.connect() as connection:
        previous = previous_run(connection, variant, run_id)
        if previous is None:
            return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.WARN,
                                       metadata={"compared_with": "nothing: the variant's first published run"})
        findings = compare(connection, previous, run_id, variant)
        record_findings(connection, run_id, variant, previous, findings, utc_now())
    regressed = [finding for finding in findings if finding.regressed]
    apart = [finding for finding in findings if finding.kind == NOT_COMPARABLE]
    table = pd.DataFrame([{"subject": f.subject, "kind": f.kind, "before": f.before, "after": f.after,
                           "regressed": f.regressed, **{k: v for k, v in f.evidence.items() if not isinstance(v, list)}}
                          for f in findings])
    return dg.AssetCheckResult(
        passed=not regressed, severity=dg.AssetCheckSeverity.WARN,
        description=(f"{len(regressed)} {kind} regression(s) against run {previous[:8]}" if regressed
                     else f"{kind} not comparable with run {previous[:8]}: {apart[0].evidence['why']}" if apart
                     else f"no {kind} regression against run {previous[:8]}"),
        metadata={"compared_with": previous, "run": run_id,
                  "findings": dg.MetadataValue.md(table.round(4).to_markdown(index=False) if len(table) else "(none)"),
                  "evidence": dg.MetadataValue.json({f"{f.kind} {f.subject}": f.evidence for f in regressed})})


@dg.asset_check(asset=published_evaluation,
                description="Accuracy against the variant's previous published run: a paired exact test (McNemar) on "
                            "the samples both graded; a significant drop warns, listing the items that flipped.")
def accuracy_did_not_regress(context: dg.AssetCheckExecutionContext,
                             warehouse: WarehouseResource) -> dg.AssetCheckResult:
    def compare(connection, previous, run_id, variant):
        before = connection.execute(SAMPLES_SQL, [previous, variant]).df()
        after = connection.execute(SAMPLES_SQL, [run_id, variant]).df()
        return accuracy_findings(before, after)
    return _regression_result(context, warehouse, "accuracy", compare)


@dg.asset_check(asset=published_evaluation,
                description="Serving against the variant's previous published run: output throughput down, p99 "
                            "TTFT or TPOT up, or $/M output tokens up beyond the serving block's regression_ "
                            "thresholds warns, with the before/after figures.")
def serving_did_not_regress(context: dg.AssetCheckExecutionContext, matrix: MatrixResource,
                            warehouse: WarehouseResource) -> dg.AssetCheckResult:
    serving = matrix.variant(context.partition_key).serving

    def compare(connection, previous, run_id, variant):
        levels = [connection.execute(PRICED_LEVEL_SQL, [run, variant]).df() for run in (previous, run_id)]
        if any(level.empty for level in levels):
            return []
        before, after = (level.iloc[0].to_dict() for level in levels)
        return serving_findings(before, after, serving.regression_throughput_drop, serving.regression_latency_rise,
                                serving.regression_cost_rise, serving.regression_latency_floor_ms)
    return _regression_result(context, warehouse, "serving", compare)


@dg.asset(group_name="leaderboard", kinds={"duckdb"}, deps=[published_evaluation])
def leaderboard(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """The `leaderboard` view (accuracy with intervals, throughput, latency, $/M tokens, $/correct answer) of
    every variant's latest published run. One asset for all variants (it depends on every variant's published
    evaluation), refreshed by each run of a variant; its full table is shown here, with a chart of accuracy
    against cost (Pareto front dashed) per benchmark."""
    table = warehouse.query(LEADERBOARD_SQL)
    charts = {f"pareto_{benchmark}": dg.MetadataValue.md(pareto_chart(table, benchmark))
              for benchmark in sorted(table["benchmark"].unique())}
    overthinking = warehouse.query("SELECT * FROM overthinking")
    if len(overthinking):
        charts["accuracy_against_reasoning"] = dg.MetadataValue.md(reasoning_chart(overthinking))
    crossovers = warehouse.query("SELECT * FROM break_even")
    curve = warehouse.query("SELECT * FROM break_even_curve")
    # The three cheapest variants to rent per output token: a chart each (the curves of every variant are in SQL).
    cheapest = crossovers.groupby("variant")["rented_usd_per_month"].first() / crossovers.groupby("variant")[
        "capacity_tokens_per_month"].first()
    for variant in cheapest.sort_values().index[:3]:
        charts[f"break_even_{variant}"] = dg.MetadataValue.md(break_even_chart(curve, crossovers, variant))
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(table),
        "variants": int(table["variant"].nunique()) if len(table) else 0,
        "leaderboard": dg.MetadataValue.md("\n\n".join([printed_leaderboard(table).to_markdown(index=False),
                                                         *(f"- {note}" for note in engine_notes(table))])),
        **charts,
    })
