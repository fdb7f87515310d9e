"""benchmark_scores and the blocking data-quality check that guards them."""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from assets.scoring.metrics import score_benchmark
from assets.scoring.quality import validate_scores
from assets.variants import config_hash, variant_named
from pipelines.partitions import variant_partitions
from resources.warehouse import WarehouseResource

GRADES_SQL = """
SELECT a.benchmark, a.item_id, a.sample_index, a.correct, a.extracted, g.completion_tokens
FROM graded_answers a
JOIN benchmark_generations g USING (variant, config_hash, benchmark, item_id, sample_index)
JOIN benchmark_items i USING (variant, benchmark, item_id)
WHERE a.variant = ? AND a.config_hash = ?
"""

CHECK_SQL = """
SELECT s.*, i.n_items * s.k AS expected_samples,
       (SELECT count(*) FROM graded_answers a
          JOIN benchmark_items c USING (variant, benchmark, item_id)
          WHERE a.variant = s.variant AND a.config_hash = s.config_hash AND a.benchmark = s.benchmark
       ) AS graded_samples
FROM benchmark_scores s
JOIN (SELECT variant, benchmark, count(*) AS n_items FROM benchmark_items GROUP BY ALL) i USING (variant, benchmark)
WHERE s.variant = ?
"""


@dg.asset(partitions_def=variant_partitions, group_name="scoring", kinds={"python", "duckdb"},
          deps=["graded_answers"])
def benchmark_scores(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Per benchmark: pass@1 as the mean over k samples with a 95% bootstrap interval over items, and cons@k
    (majority vote over the extracted answers), tagged with the protocol and k they were produced under."""
    variant = variant_named(context.partition_key)
    sample_config = config_hash(warehouse, variant)
    grades = warehouse.query(GRADES_SQL, [variant.name, sample_config])
    if grades.empty:
        raise dg.Failure(f"no graded answers for variant '{variant.name}'; materialize graded_answers first")
    rows = []
    for benchmark, group in grades.groupby("benchmark"):
        score = score_benchmark(group)
        rows.append({
            "variant": variant.name, "benchmark": benchmark, "config_hash": sample_config,
            "protocol": variant.protocol.name, "k": variant.protocol.k, **score.__dict__,
            "output_tokens": int(group["completion_tokens"].fillna(0).sum()),
            "scored_at": datetime.now(UTC).replace(tzinfo=None),
        })
    frame = pd.DataFrame(rows)
    warehouse.replace_partition("benchmark_scores", variant.name, frame)
    shown = frame[["benchmark", "k", "n_items", "pass_at_1", "pass_at_1_low", "pass_at_1_high", "cons_at_k"]]
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(frame),
        "scores": dg.MetadataValue.md(shown.round(4).to_markdown(index=False)),
    })


@dg.asset_check(asset=benchmark_scores, blocking=True,
                description="Great Expectations: scores and intervals in [0, 1], the interval brackets the "
                            "score, samples = items × k, no ungraded rows. Failing it stops the cost rollup.")
def benchmark_scores_are_valid(context: dg.AssetCheckExecutionContext,
                               warehouse: WarehouseResource) -> dg.AssetCheckResult:
    partition = context.partition_key
    frame = warehouse.query(CHECK_SQL, [partition])
    if frame.empty:
        return dg.AssetCheckResult(passed=False, metadata={"error": f"no scores for variant '{partition}'"})
    report = validate_scores(frame)
    return dg.AssetCheckResult(
        passed=report.success,
        metadata={
            "expectations": dg.MetadataValue.json(report.results),
            "failures": dg.MetadataValue.json(report.failures),
            "rows": len(frame),
        },
    )
