"""Great Expectations suite that guards benchmark scores before anything is priced or published."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class QualityReport:
    success: bool
    results: dict[str, bool] = field(default_factory=dict)
    failures: dict[str, object] = field(default_factory=dict)


def _plain(value: object) -> object:
    """numpy scalars to Python ones, so the evidence can go into check metadata as JSON."""
    return value.item() if hasattr(value, "item") else value


def validate_scores(scores: pd.DataFrame) -> QualityReport:
    """Scores in [0, 1], the interval brackets the score, samples = items × k with k for every item, nothing
    left ungraded.

    `scores` carries, per benchmark, the score columns plus `expected_samples` (items × k) and
    `graded_samples` (grade rows found for the generations) and `items_without_k_samples`.
    """
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    frame = scores.assign(
        interval_brackets=(scores["pass_at_1_low"] <= scores["pass_at_1"])
        & (scores["pass_at_1"] <= scores["pass_at_1_high"]),
        samples_complete=scores["n_samples"] == scores["expected_samples"],
        fully_graded=scores["graded_samples"] == scores["n_samples"],
    )
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("warehouse")
        .add_dataframe_asset("benchmark_scores")
        .add_batch_definition_whole_dataframe("partition")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    checks = {
        "pass_at_1 in [0, 1]": gxe.ExpectColumnValuesToBeBetween(column="pass_at_1", min_value=0, max_value=1),
        "cons_at_k in [0, 1]": gxe.ExpectColumnValuesToBeBetween(column="cons_at_k", min_value=0, max_value=1),
        "interval low in [0, 1]": gxe.ExpectColumnValuesToBeBetween(column="pass_at_1_low", min_value=0, max_value=1),
        "interval high in [0, 1]": gxe.ExpectColumnValuesToBeBetween(
            column="pass_at_1_high", min_value=0, max_value=1),
        "interval brackets score": gxe.ExpectColumnValuesToBeInSet(column="interval_brackets", value_set=[True]),
        "samples = items x k": gxe.ExpectColumnValuesToBeInSet(column="samples_complete", value_set=[True]),
        "no ungraded rows": gxe.ExpectColumnValuesToBeInSet(column="fully_graded", value_set=[True]),
        "k samples for every item": gxe.ExpectColumnValuesToBeBetween(column="items_without_k_samples",
                                                                      min_value=0, max_value=0),
        "scores not null": gxe.ExpectColumnValuesToNotBeNull(column="pass_at_1"),
    }
    for name, expectation in checks.items():
        expectation.meta = {"check": name}
    suite = gx.ExpectationSuite(name="benchmark_scores", expectations=list(checks.values()))
    report = QualityReport(success=True)
    result_format = {"result_format": "COMPLETE", "unexpected_index_column_names": ["benchmark"]}
    for result in batch.validate(suite, result_format=result_format).results:
        name = result.expectation_config.meta["check"]
        report.results[name] = bool(result.success)
        if not result.success:
            report.success = False
            rows = result.result.get("unexpected_index_list") or [result.result]
            report.failures[name] = [{key: _plain(value) for key, value in row.items()} for row in rows]
    return report
