"""Regressions between two evaluation runs of one variant: accuracy by a paired test on the samples both runs
graded, serving speed and cost by configured thresholds. Each finding carries its evidence.

Accuracy: the two runs' samples are paired by (benchmark, item, sample index). With seeded sampling an unchanged
configuration reproduces its samples (and a rerun reuses them), so a pair that disagrees is a real change. The
discordant pairs are tested with McNemar's exact test (a two-sided binomial test of right→wrong against
wrong→right at one half); a drop with p below `alpha` is a regression, and the items that flipped are listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import comb

import pandas as pd

ALPHA = 0.05
SHOWN_ITEMS = 20


def mcnemar_exact_p(worse: int, better: int) -> float:
    """Two-sided exact p-value of `worse` right→wrong against `better` wrong→right flips under no change."""
    n = worse + better
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(min(worse, better) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


@dataclass
class Finding:
    kind: str          # accuracy | throughput | latency | cost
    subject: str       # the benchmark, or the load level
    regressed: bool
    before: float | None
    after: float | None
    evidence: dict = field(default_factory=dict)


def accuracy_findings(before: pd.DataFrame, after: pd.DataFrame, alpha: float = ALPHA) -> list[Finding]:
    """Per benchmark, over the samples both runs graded (columns benchmark, item_id, sample_index, correct)."""
    keys = ["benchmark", "item_id", "sample_index"]
    paired = before[[*keys, "correct"]].merge(after[[*keys, "correct"]], on=keys, suffixes=("_before", "_after"))
    findings = []
    for benchmark, group in paired.groupby("benchmark"):
        worse = group[group["correct_before"] & ~group["correct_after"]]
        better = group[~group["correct_before"] & group["correct_after"]]
        p = mcnemar_exact_p(len(worse), len(better))
        accuracy_before, accuracy_after = group["correct_before"].mean(), group["correct_after"].mean()
        findings.append(Finding(
            "accuracy", str(benchmark), bool(len(worse) > len(better) and p < alpha),
            float(accuracy_before), float(accuracy_after), {
                "shared_samples": len(group), "right_to_wrong": len(worse), "wrong_to_right": len(better),
                "p_value": round(p, 6), "alpha": alpha,
                "flipped_to_wrong": sorted(set(worse["item_id"]))[:SHOWN_ITEMS],
                "flipped_to_right": sorted(set(better["item_id"]))[:SHOWN_ITEMS]}))
    return findings


def _relative(before: float | None, after: float | None) -> float | None:
    if before is None or after is None or pd.isna(before) or pd.isna(after) or before == 0:
        return None
    return (after - before) / before


NOT_COMPARABLE = "not comparable"


def busy_host_finding(before: dict, after: dict) -> Finding | None:
    """A finding that the two runs' serving figures are not comparable, where either run's priced level was
    measured on a busy host (priced_host_condition contended, with its priced_host_contention); else None."""
    busy = [(name, run) for name, run in (("before", before), ("after", after))
            if run.get("priced_host_condition") == "contended"]
    if not busy:
        return None
    why = "; ".join(f"the {name} run's priced level was measured on a busy host ({run.get('priced_host_contention')})"
                    for name, run in busy)
    return Finding(NOT_COMPARABLE, f"{after.get('best_profile')}={after.get('best_load')}", False,
                   before.get("output_tokens_per_s"), after.get("output_tokens_per_s"), {"why": why})


def serving_findings(before: dict, after: dict, throughput_drop: float, latency_rise: float,
                     cost_rise: float, latency_floor_ms: float = 0.0) -> list[Finding]:
    """From each run's priced level (output_tokens_per_s, ttft_ms_p99, tpot_ms_p99, usd_per_million_output_tokens,
    best_profile, best_load, priced_host_condition): throughput down, p99 latency up (by the share and by
    `latency_floor_ms`), or $/M up beyond the thresholds. Levels that differ between the runs are compared as they
    are, and said so; a run whose priced level was measured on a busy host is not compared at all, and the one
    finding says why."""
    busy = busy_host_finding(before, after)
    if busy:
        return [busy]
    level = f"{after.get('best_profile')}={after.get('best_load')}"
    same_level = (before.get("best_profile"), before.get("best_load")) == (after.get("best_profile"),
                                                                          after.get("best_load"))
    note = {"level": level, "same_level": same_level,
            "level_before": f"{before.get('best_profile')}={before.get('best_load')}"}
    findings = []
    change = _relative(before.get("output_tokens_per_s"), after.get("output_tokens_per_s"))
    if change is not None:
        findings.append(Finding("throughput", level, change < -throughput_drop, before["output_tokens_per_s"],
                                after["output_tokens_per_s"], {**note, "change": round(change, 4),
                                                               "threshold": -throughput_drop}))
    for metric in ("ttft_ms_p99", "tpot_ms_p99"):
        change = _relative(before.get(metric), after.get(metric))
        if change is not None:
            rise_ms = after[metric] - before[metric]
            findings.append(Finding(f"latency {metric}", level, change > latency_rise and rise_ms > latency_floor_ms,
                                    before[metric], after[metric], {**note, "change": round(change, 4),
                                    "threshold": latency_rise, "rise_ms": round(rise_ms, 2),
                                    "floor_ms": latency_floor_ms}))
    change = _relative(before.get("usd_per_million_output_tokens"), after.get("usd_per_million_output_tokens"))
    if change is not None:
        findings.append(Finding("cost", level, change > cost_rise, before["usd_per_million_output_tokens"],
                                after["usd_per_million_output_tokens"], {**note, "change": round(change, 4),
                                                                          "threshold": cost_rise}))
    return findings
