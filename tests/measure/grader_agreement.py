"""Agreement with recorded verdicts on real model answers (Qwen2.5-Math harness, MATH problems).

The reference verdicts are themselves automatic; the README of the data lists 9 known wrong ones. Every
disagreement is printed so a person can judge which side is right.

    .venv/bin/python -m tests.measure.grader_agreement [../shared/data/grading]
"""

import sys
from collections import Counter
from pathlib import Path

from assets.benchmarks.sources import read_jsonl
from assets.grading.equivalence import GradeInput, Grader


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/grading")
    rows = list(read_jsonl(folder / "math_cot_samples_qwen25.jsonl"))
    inputs = [GradeInput(row["ground_truth_answer"], "latex", row["model_solution_tail"], reasoning_prefilled=False)
              for row in rows]
    with Grader() as grader:
        grades = grader.grade_many(inputs)
    agree = sum(grade.correct == row["verdict"] for grade, row in zip(grades, rows, strict=True))
    print(f"{len(rows)} answers: agreement with the recorded verdicts {agree}/{len(rows)} = {agree / len(rows):.2%}")
    print("reasons:", dict(Counter(grade.reason for grade in grades)))
    disagreements = Counter()
    for grade, row in zip(grades, rows, strict=True):
        if grade.correct != row["verdict"]:
            key = (row["idx"], row["ground_truth_answer"], grade.extracted, row["model_answer"], row["verdict"],
                   grade.reason)
            disagreements[key] += 1
    print(f"{sum(disagreements.values())} disagreements in {len(disagreements)} distinct (item, answer) pairs:")
    for (idx, gold, ours, theirs, verdict, reason), count in sorted(disagreements.items()):
        print(f"  idx {idx} x{count}: gold {gold!r}; ours {ours!r} -> {reason}; "
              f"harness extracted {theirs!r} -> {'correct' if verdict else 'wrong'}")


if __name__ == "__main__":
    main()
