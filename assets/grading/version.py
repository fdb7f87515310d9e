"""Which grader graded a row: the extraction and equivalence rules (RULES, dated, changed by hand whenever what a
response is graded as could change), the per-check timeout, and the math-verify that ran.

The pipeline records it with every graded row and gives it to the grading asset as its Dagster code version; a
row graded by another version is graded again (from its stored generation, never generated again).
"""

from __future__ import annotations

from assets.grading.equivalence import DEFAULT_TIMEOUT_S
from assets.versions import installed_version

# Bump on any change to assets/grading/ that can change a verdict or an extracted answer.
RULES = "2026-12-02"


def grader_version(timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
    """e.g. 'rules 2026-12-02, math-verify 0.8.0, timeout 5s'."""
    return f"rules {RULES}, math-verify {installed_version('math-verify') or 'absent'}, timeout {timeout_s:g}s"


GRADER_VERSION = grader_version()
