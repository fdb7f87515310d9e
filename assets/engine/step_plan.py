"""What one engine step does for a variant, worked out before its engine starts: the samples still to draw, how
many there are in all, the load test's prompts and the retry policy. Plain data from plain inputs: the step reads
the warehouse, this computes, the step writes."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from assets.engine.generation import SampleRequest
from assets.engine.requests import expected_samples, pending_requests, serving_prompts
from assets.engine.retry import RetryPolicy
from assets.matrix import Variant


@dataclass(frozen=True)
class StepPlan:
    variant: Variant
    checkpoint: str                     # what the engine loads (the quantized checkpoint, or the snapshot)
    sample_key: str                     # the key of the variant's samples (its model snapshot recorded it)
    requests: list[SampleRequest]       # the samples no earlier run stored
    expected: int                       # samples the variant's items need in all
    prompts: tuple[str, ...]            # the load test's prompts; empty for synthetic ones
    policy: RetryPolicy

    @property
    def reused(self) -> int:
        return self.expected - len(self.requests)


def plan_step(variant: Variant, checkpoint: str, sample_key: str, items: pd.DataFrame,
              finished: pd.DataFrame) -> StepPlan:
    """The step's plan from the variant's items (benchmark, item_id, problem, answer_format) and the samples already
    stored under its key (benchmark, item_id, sample_index). Raises ServingConfigError or RetrySettingsError when
    the variant's settings cannot be followed."""
    return StepPlan(variant=variant, checkpoint=checkpoint, sample_key=sample_key,
                    requests=pending_requests(variant, items, finished),
                    expected=expected_samples(variant, items["benchmark"]),
                    prompts=serving_prompts(variant, items),
                    policy=RetryPolicy.parse(variant.engine.settings.retry))
