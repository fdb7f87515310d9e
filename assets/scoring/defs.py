"""benchmark_scores, the blocking data-quality check that guards them, and quantization_loss."""

import dagster as dg
import pandas as pd

from assets.grading.code import RUNNABLE_REASONS
from assets.grading.equivalence import Grader, answer_equivalence
from assets.grading.formats import answer_format
from assets.leaderboard.history import record_failed_check, run_trigger
from assets.models.defs import sample_key_of
from assets.partitions import variant_partitions, with_baselines
from assets.scoring.metrics import quantization_loss_rows, score_benchmark
from assets.scoring.quality import validate_scores
from resources.matrix import MatrixResource
from resources.warehouse import WarehouseResource
from warehouse import utc_now

# The samples that count now: of the items the matrix names, the first k of each (see current_graded_answers).
GRADES_SQL = """
SELECT benchmark, item_id, sample_index, correct, extracted, completion_tokens, answer_format, reason
FROM current_graded_answers
WHERE variant = ? AND config_hash = ?
"""

CHECK_SQL = """
SELECT s.*, i.n_items * s.k AS expected_samples,
       (SELECT count(*) FROM item_difficulty d WHERE d.variant = s.variant AND d.benchmark = s.benchmark
          AND d.samples <> s.k) AS items_without_k_samples,
       (SELECT count(*) FROM current_graded_answers a
          WHERE a.variant = s.variant AND a.config_hash = s.config_hash AND a.benchmark = s.benchmark
       ) AS graded_samples
FROM benchmark_scores s
JOIN (SELECT variant, benchmark, count(*) AS n_items FROM benchmark_items GROUP BY ALL) i USING (variant, benchmark)
WHERE s.variant = ?
"""


@dg.asset(partitions_def=variant_partitions, group_name="scoring", kinds={"python", "duckdb"},
          deps=["graded_answers"])
def benchmark_scores(context: dg.AssetExecutionContext, matrix: MatrixResource,
                     warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Per benchmark: pass@1 as the mean over k samples with a 95% bootstrap interval over items, unbiased
    pass@k for the k's the samples allow, cons@k (majority vote over equivalence classes of answers) and a
    per-item difficulty table, tagged with the protocol and k they were produced under."""
    variant = matrix.variant(context.partition_key)
    sample_config = sample_key_of(warehouse, variant.name)
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
            code = answer_format(group["answer_format"].iloc[0]).runs_tests
            rows.append({**keys, "benchmark": benchmark, "protocol": variant.protocol.name,
                         "k": variant.protocol.samples_for(benchmark), **score.__dict__,
                         "runnable_rate": float(group["reason"].isin(RUNNABLE_REASONS).mean()) if code else None,
                         "output_tokens": int(group["completion_tokens"].fillna(0).sum()),
                         "scored_at": utc_now()})
            pass_at_k.append(by_k.assign(**keys, benchmark=benchmark))
            difficulty.append(items.assign(**keys, benchmark=benchmark))
    frame = pd.DataFrame(rows)
    warehouse.replace_partition("benchmark_scores", variant.name, frame)
    warehouse.replace_partition("benchmark_pass_at_k", variant.name, pd.concat(pass_at_k))
    warehouse.replace_partition("item_difficulty", variant.name, pd.concat(difficulty))
    shown = frame[["benchmark", "k", "n_items", "pass_at_1", "pass_at_1_low", "pass_at_1_high", "cons_at_k",
                   "runnable_rate"]]
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
    if not report.success:
        # Audit failed: nothing of this run is published; the run is recorded with the evidence, so readers of
        # the published results see that a later evaluation failed.
        run = context.op_execution_context.run
        with warehouse.connect() as connection:
            record_failed_check(connection, run.run_id, partition, run_trigger(run.tags), utc_now(), report.failures)
    return dg.AssetCheckResult(
        passed=report.success,
        metadata={
            "expectations": dg.MetadataValue.json(report.results),
            "failures": dg.MetadataValue.json(report.failures),
            "rows": len(frame),
        },
    )


# Mean correctness per item over the samples that count now (as benchmark_scores counts them).
PER_ITEM_SQL = """
SELECT benchmark, item_id, avg(CASE WHEN correct THEN 1.0 ELSE 0.0 END) AS accuracy, count(*) AS samples
FROM current_graded_answers
WHERE variant = ? AND config_hash = ? GROUP BY ALL
"""


def _per_item(warehouse: WarehouseResource, variant: str) -> pd.DataFrame:
    """A baseline's accuracy per item (PER_ITEM_SQL); empty where it has no samples yet."""
    try:
        sample_config = sample_key_of(warehouse, variant)
    except LookupError:
        return pd.DataFrame()
    return warehouse.query(PER_ITEM_SQL, [variant, sample_config])


@dg.asset(partitions_def=variant_partitions, group_name="scoring", kinds={"python", "duckdb"},
          deps=[dg.AssetDep("benchmark_scores", partition_mapping=with_baselines())])
def quantization_loss(context: dg.AssetExecutionContext, matrix: MatrixResource,
                      warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Per benchmark and baseline: pass@1 of a variant minus the baseline's on the same items, with a paired
    bootstrap interval over items and whether the difference is significant. The baselines (`Matrix.baselines_of`):
    its unquantized twin on the same engine (relation 'twin'), and the matrix's common reference where that is
    another variant ('reference'): an unquantized variant on another engine is compared with the reference alone.
    Empty for a variant with no baseline (the reference itself); a baseline not scored yet is left out."""
    variant = matrix.variant(context.partition_key)
    baselines = matrix.matrix.baselines_of(variant)
    if not baselines:
        warehouse.replace_partition("quantization_loss", variant.name, pd.DataFrame())
        return dg.MaterializeResult(metadata={"dagster/row_count": 0, "skipped": "no baseline: no unquantized "
                                              "twin, and the variant is its model's reference (or an endpoint)"})
    ours = warehouse.query(PER_ITEM_SQL, [variant.name, sample_key_of(warehouse, variant.name)])
    tables, skipped = [], []
    for relation, baseline in baselines.items():
        theirs = _per_item(warehouse, baseline.name)
        if theirs.empty:
            skipped.append(f"{relation} '{baseline.name}' has no graded answers yet; materialize it, then this "
                           "asset again")
            context.log.warning(skipped[-1])
            continue
        rows, unshared = quantization_loss_rows(ours, theirs)
        for benchmark in unshared:
            context.log.warning(f"{benchmark}: no item scored by both {variant.name} and its {relation} "
                                f"{baseline.name}")
        tables.append(pd.DataFrame(rows).assign(relation=relation, baseline=baseline.name))
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    if len(table):
        table = table.assign(variant=variant.name, computed_at=utc_now())
    warehouse.replace_partition("quantization_loss", variant.name, table)
    shown = table.drop(columns=["variant", "computed_at"]).round(4) if len(table) else table
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(table), **{relation: baseline.name for relation, baseline in baselines.items()},
        **({"skipped": "; ".join(skipped)} if skipped else {}),
        "loss": dg.MetadataValue.md(shown.to_markdown(index=False) if len(shown) else "(nothing compared)"),
    })
