"""Great Expectations suite that guards benchmark scores before anything is priced or published."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class QualityReport:
    success: bool
    results: dict[str, bool] = field(default_factory=dict)
    failures: dict[str, object] = field(default_factory=dict)


def validate_scores(scores: pd.DataFrame) -> QualityReport:
    """Scores in [0, 1], the interval brackets the score, samples = items × k, nothing left ungraded.

    `scores` carries, per benchmark, the score columns plus `expected_samples` (items × k) and
    `graded_samples` (grade rows found for the generations).
    """
    import great_expectations as gx
    import great_expectations.expectations as gxe

    frame = scores.assign(
        interval_brackets=(scores["pass_at_1_low"] <= scores["pass_at_1"])
        & (scores["pass_at_1"] <= scores["pass_at_1_high"]),
        samples_complete=scores["n_samples"] == scores["expected_samples"],
        fully_graded=scores["graded_samples"] == scores["n_samples"],
    )
    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas("warehouse")
        .add_dataframe_asset("benchmark_scores")
        .add_batch_definition_whole_dataframe("partition")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    expectations = {
        "pass_at_1 in [0, 1]": gxe.ExpectColumnValuesToBeBetween(column="pass_at_1", min_value=0, max_value=1),
        "cons_at_k in [0, 1]": gxe.ExpectColumnValuesToBeBetween(column="cons_at_k", min_value=0, max_value=1),
        "interval low in [0, 1]": gxe.ExpectColumnValuesToBeBetween(column="pass_at_1_low", min_value=0, max_value=1),
        "interval high in [0, 1]": gxe.ExpectColumnValuesToBeBetween(
            column="pass_at_1_high", min_value=0, max_value=1),
        "interval brackets score": gxe.ExpectColumnValuesToBeInSet(column="interval_brackets", value_set=[True]),
        "samples = items x k": gxe.ExpectColumnValuesToBeInSet(column="samples_complete", value_set=[True]),
        "no ungraded rows": gxe.ExpectColumnValuesToBeInSet(column="fully_graded", value_set=[True]),
        "scores not null": gxe.ExpectColumnValuesToNotBeNull(column="pass_at_1"),
    }
    report = QualityReport(success=True)
    for name, expectation in expectations.items():
        result = batch.validate(expectation)
        report.results[name] = bool(result.success)
        if not result.success:
            report.success = False
            failing = result.result.get("partial_unexpected_list") or result.result
            report.failures[name] = failing
    return report
