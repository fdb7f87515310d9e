"""graded_answers: every generation that counts now graded, with a reason code for every miss."""


import dagster as dg

from assets.grading.equivalence import GradeInput, Grader
from assets.grading.version import GRADER_VERSION
from assets.models.defs import sample_key_of
from assets.partitions import variant_partitions
from assets.variants import counted_samples
from resources.matrix import MatrixResource
from resources.warehouse import WarehouseResource
from warehouse import utc_now

# The generations that count now (of the items benchmark_items holds, up to benchmark_k's k) not graded yet, or
# graded by another grader version (with that verdict, to count what the new grader changes).
UNGRADED_SQL = """
SELECT g.benchmark, g.item_id, g.sample_index, g.response, g.reasoning_content, g.finish_reason,
       i.gold, i.answer_format, a.correct AS previous_correct, a.item_id IS NOT NULL AS regrade
FROM benchmark_generations g
JOIN benchmark_items i ON i.variant = g.variant AND i.benchmark = g.benchmark AND i.item_id = g.item_id
JOIN benchmark_k k ON k.variant = g.variant AND k.benchmark = g.benchmark AND g.sample_index < k.k
LEFT JOIN graded_answers a ON a.variant = g.variant AND a.config_hash = g.config_hash
     AND a.benchmark = g.benchmark AND a.item_id = g.item_id AND a.sample_index = g.sample_index
WHERE g.variant = ? AND g.config_hash = ? AND (a.item_id IS NULL OR a.grader_version IS DISTINCT FROM ?)
"""
REASONS_SQL = """
SELECT benchmark, reason, count(*) AS samples FROM current_graded_answers WHERE variant = ? AND config_hash = ?
GROUP BY ALL ORDER BY ALL
"""


@dg.asset(partitions_def=variant_partitions, group_name="grading", kinds={"python", "duckdb"},
          deps=["benchmark_generations"], code_version=GRADER_VERSION)
def graded_answers(context: dg.AssetExecutionContext, matrix: MatrixResource,
                   warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Reasoning stripped, the final answer extracted per benchmark format, and checked for equivalence with
    the gold answer (math-verify in bounded worker processes). Samples graded before by this grader version are
    not graded again; those graded by another are, once, from their stored generation. The matrix's k per
    benchmark is recorded (benchmark_k), and only the first k samples of each item count."""
    variant = matrix.variant(context.partition_key)
    sample_config = sample_key_of(warehouse, variant.name)
    warehouse.replace_partition("benchmark_k", variant.name, counted_samples(variant))
    todo = warehouse.query(UNGRADED_SQL, [variant.name, sample_config, GRADER_VERSION])
    regraded = todo[todo["regrade"]] if len(todo) else todo
    context.log.info(f"{len(todo)} generations to grade ({len(regraded)} graded before by another grader version; "
                     f"this one is {GRADER_VERSION})")
    changed = 0
    if len(todo):
        inputs = [
            GradeInput(gold=row.gold, answer_format=row.answer_format, response=row.response,
                       reasoning_content=row.reasoning_content if isinstance(row.reasoning_content, str) else None,
                       finish_reason=row.finish_reason, reasoning_prefilled=variant.protocol.reasoning_prefilled)
            for row in todo.itertuples()
        ]
        with Grader() as grader:
            grades = grader.grade_many(inputs)
        frame = todo[["benchmark", "item_id", "sample_index"]].assign(
            variant=variant.name, config_hash=sample_config,
            extracted=[g.extracted for g in grades], correct=[g.correct for g in grades],
            reason=[g.reason for g in grades], detail=[g.detail for g in grades], graded_at=utc_now(),
            grader_version=GRADER_VERSION,
        )
        changed = int((todo["regrade"] & (todo["previous_correct"] != frame["correct"])).sum())
        if len(regraded):
            context.log.info(f"regraded {len(regraded)} samples with {GRADER_VERSION}: {changed} verdicts changed")
        warehouse.upsert("graded_answers", frame)
    reasons = warehouse.query(REASONS_SQL, [variant.name, sample_config])
    return dg.MaterializeResult(metadata={
        "dagster/row_count": int(reasons["samples"].sum()) if len(reasons) else 0,
        "graded_this_run": len(todo),
        "regraded": len(regraded),
        "verdicts_changed": changed,
        "grader_version": GRADER_VERSION,
        "reasons": dg.MetadataValue.md(reasons.to_markdown(index=False)),
    })
