"""The publishing gate (`validate_scores`): each rule passes a row at its edge and stops a row that breaks it,
naming the benchmark; rows of other benchmarks do not hide or cause a failure."""

import pandas as pd
import pytest

from assets.scoring.quality import validate_scores

pytestmark = pytest.mark.unit

GOOD = {"benchmark": "gsm8k", "pass_at_1": 0.5, "pass_at_1_low": 0.4, "pass_at_1_high": 0.6, "cons_at_k": 0.5,
        "n_samples": 20, "expected_samples": 20, "graded_samples": 20, "items_without_k_samples": 0}
RULES = {"pass_at_1 in [0, 1]", "cons_at_k in [0, 1]", "interval low in [0, 1]", "interval high in [0, 1]",
         "interval brackets score", "samples = items x k", "no ungraded rows", "k samples for every item",
         "scores not null"}


@pytest.mark.parametrize(("change", "failed"), [
    # pass_at_1 in [0, 1] (a score outside cannot be bracketed by an interval inside as well)
    ({"pass_at_1": 1.0, "pass_at_1_high": 1.0}, set()),
    ({"pass_at_1": 0.0, "pass_at_1_low": 0.0}, set()),
    ({"pass_at_1": 1.2, "pass_at_1_high": 1.0}, {"pass_at_1 in [0, 1]", "interval brackets score"}),
    ({"pass_at_1": -0.1, "pass_at_1_low": 0.0}, {"pass_at_1 in [0, 1]", "interval brackets score"}),
    # cons_at_k in [0, 1]
    ({"cons_at_k": 1.0}, set()),
    ({"cons_at_k": 0.0}, set()),
    ({"cons_at_k": 1.5}, {"cons_at_k in [0, 1]"}),
    # interval low and high in [0, 1]
    ({"pass_at_1_low": 0.0}, set()),
    ({"pass_at_1_low": -0.01}, {"interval low in [0, 1]"}),
    ({"pass_at_1_high": 1.0}, set()),
    ({"pass_at_1_high": 1.01}, {"interval high in [0, 1]"}),
    # the interval brackets the score
    ({"pass_at_1_low": 0.5, "pass_at_1_high": 0.5}, set()),
    ({"pass_at_1_low": 0.55}, {"interval brackets score"}),
    ({"pass_at_1_high": 0.45}, {"interval brackets score"}),
    # samples = items × k
    ({"n_samples": 21, "expected_samples": 21, "graded_samples": 21}, set()),
    ({"n_samples": 19, "graded_samples": 19}, {"samples = items x k"}),
    # nothing left ungraded
    ({"graded_samples": 19}, {"no ungraded rows"}),
    # k samples for every item
    ({"items_without_k_samples": 1}, {"k samples for every item"}),
    # a score at all (a missing one brackets nothing either)
    ({"pass_at_1": 0.0, "pass_at_1_low": 0.0, "pass_at_1_high": 0.0}, set()),
    ({"pass_at_1": None}, {"scores not null", "interval brackets score"}),
])
def test_each_rule_of_the_gate(change, failed):
    report = validate_scores(pd.DataFrame([GOOD, {**GOOD, "benchmark": "arith", **change}]))
    assert set(report.results) == RULES
    assert {rule for rule, passed in report.results.items() if not passed} == failed
    assert report.success == (not failed)
    assert set(report.failures) == failed
    for rule in failed:
        assert [row["benchmark"] for row in report.failures[rule]] == ["arith"], rule
