"""How the grader does on the reference solutions of MATH-500 and GSM8K.

Each solution is graded against its own item's answer (should be correct) and against the answer of the
nearest following item whose answer is different (should be wrong); "different" means the grader itself
does not judge the two gold answers equal, so two items that share an answer do not count as a miss.

    .venv/bin/python -m tests.measure.grader_reference [../shared/data/benchmarks]
"""

import sys
import time
from pathlib import Path

from assets.benchmarks.items import load_items
from assets.benchmarks.sources import read_jsonl
from assets.grading.equivalence import GradeInput, Grader


def different_item(golds: list[str], index: int, same_gold: dict[tuple[int, int], bool]) -> int:
    other = (index + 1) % len(golds)
    while same_gold[(index, other)]:
        other = (other + 1) % len(golds)
    return other


def measure(grader: Grader, name: str, solutions: list[str], golds: list[str], answer_format: str) -> None:
    responses = [f"</think>{solution}" for solution in solutions]
    started = time.perf_counter()
    own = grader.grade_many([GradeInput(gold, answer_format, response)
                             for gold, response in zip(golds, responses, strict=True)])
    candidates = {(i, (i + step) % len(golds)) for i in range(len(golds)) for step in range(1, 6)}
    verdicts = grader.equal_many([(golds[j], golds[i], answer_format) for i, j in sorted(candidates)])
    same_gold = {pair: verdict is True for pair, verdict in zip(sorted(candidates), verdicts, strict=True)}
    others = [different_item(golds, i, same_gold) for i in range(len(golds))]
    crossed = grader.grade_many([GradeInput(golds[j], answer_format, responses[i]) for i, j in enumerate(others)])
    seconds = time.perf_counter() - started
    right = sum(g.correct for g in own)
    wrong = sum(not g.correct for g in crossed)
    print(f"{name}: {len(golds)} solutions; own answer correct {right}/{len(golds)} = {right / len(golds):.2%}; "
          f"another item's answer wrong {wrong}/{len(golds)} = {wrong / len(golds):.2%}; {seconds:.1f} s")
    for i, grade in enumerate(own):
        if not grade.correct:
            print(f"  own miss  item {i}: gold {golds[i]!r} extracted {grade.extracted!r} ({grade.reason})")
    for i, grade in enumerate(crossed):
        if grade.correct:
            print(f"  cross hit item {i}: gold {golds[others[i]]!r} extracted {grade.extracted!r}")


def main() -> None:
    mirror = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/benchmarks")
    math = load_items("math500", mirror, None)
    math_solutions = [row["solution"] for row in read_jsonl(mirror / "math500.jsonl")]
    gsm8k = load_items("gsm8k", mirror, None)
    gsm8k_solutions = [row["answer"] for row in read_jsonl(mirror / "gsm8k_test.jsonl")]
    with Grader() as grader:
        measure(grader, "MATH-500", math_solutions, [item["gold"] for item in math], "latex")
        measure(grader, "GSM8K", gsm8k_solutions, [item["gold"] for item in gsm8k], "number")


if __name__ == "__main__":
    main()
