"""benchmark_scores and the blocking data-quality check that guards them."""


import dagster as dg
import pandas as pd

from assets.grading.equivalence import Grader, answer_equivalence
from assets.scoring.metrics import score_benchmark
from assets.scoring.quality import validate_scores
from assets.variants import config_hash, variant_named
from pipelines.partitions import variant_partitions
from resources.warehouse import WarehouseResource
from warehouse import utc_now

GRADES_SQL = """
SELECT a.benchmark, a.item_id, a.sample_index, a.correct, a.extracted, g.completion_tokens, i.answer_format
FROM graded_answers a
JOIN benchmark_generations g USING (variant, config_hash, benchmark, item_id, sample_index)
JOIN benchmark_items i USING (variant, benchmark, item_id)
WHERE a.variant = ? AND a.config_hash = ?
"""

CHECK_SQL = """
SELECT s.*, i.n_items * s.k AS expected_samples,
       (SELECT count(*) FROM item_difficulty d WHERE d.variant = s.variant AND d.benchmark = s.benchmark
          AND d.samples <> s.k) AS items_without_k_samples,
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
    """Per benchmark: pass@1 as the mean over k samples with a 95% bootstrap interval over items, unbiased
    pass@k for the k's the samples allow, cons@k (majority vote over equivalence classes of answers) and a
    per-item difficulty table, tagged with the protocol and k they were produced under."""
    variant = variant_named(context.partition_key)
    sample_config = config_hash(warehouse, variant)
    grades = warehouse.query(GRADES_SQL, [variant.name, sample_config])
    if grades.empty:
        raise dg.Failure(f"no graded answers for variant '{variant.name}'; materialize graded_answers first")
    rows, pass_at_k, difficulty = [], [], []
    keys = {"variant": variant.name, "config_hash": sample_config}
    with Grader() as grader:
        for benchmark, group in grades.groupby("benchmark"):
            wrong = group[~group["correct"] & group["extracted"].notna()]
            wrong_answers_by_item = [list(answers) for _, answers in wrong.groupby("item_id")["extracted"]]
            same = answer_equivalence(grader, wrong_answers_by_item, group["answer_format"].iloc[0])
            score, by_k, items = score_benchmark(group, same)
            rows.append({**keys, "benchmark": benchmark, "protocol": variant.protocol.name,
                         "k": variant.protocol.samples_for(benchmark), **score.__dict__,
                         "output_tokens": int(group["completion_tokens"].fillna(0).sum()),
                         "scored_at": utc_now()})
            pass_at_k.append(by_k.assign(**keys, benchmark=benchmark))
            difficulty.append(items.assign(**keys, benchmark=benchmark))
    frame = pd.DataFrame(rows)
    warehouse.replace_partition("benchmark_scores", variant.name, frame)
    warehouse.replace_partition("benchmark_pass_at_k", variant.name, pd.concat(pass_at_k))
    warehouse.replace_partition("item_difficulty", variant.name, pd.concat(difficulty))
    shown = frame[["benchmark", "k", "n_items", "pass_at_1", "pass_at_1_low", "pass_at_1_high", "cons_at_k"]]
    hardest = pd.concat(difficulty).head(10)[["benchmark", "item_id", "samples", "correct", "majority_answer"]]
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(frame),
        "scores": dg.MetadataValue.md(shown.round(4).to_markdown(index=False)),
        "pass_at_k": dg.MetadataValue.md(pd.concat(pass_at_k)[["benchmark", "k", "estimate", "low", "high"]]
                                         .round(4).to_markdown(index=False)),
        "hardest_items": dg.MetadataValue.md(hardest.to_markdown(index=False)),
    })


@dg.asset_check(asset=benchmark_scores, blocking=True,
                description="Great Expectations: scores and intervals in [0, 1], the interval brackets the "
                            "score, samples = items × k, k samples for every item, no ungraded rows. Failing it "
                            "stops the cost rollup.")
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
