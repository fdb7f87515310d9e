"""Grading throughput on a k = 64-style workload against plain single-threaded math-verify, same responses.

Each MATH-500 item gets k responses whose final answers repeat, as sampled answers do: about half the gold
answer, the rest a few wrong answers (other items' answers). Both graders see the same responses; the
verdicts are compared one by one.

    .venv/bin/python -m tests.measure.grader_throughput [--items 100] [--k 64]
"""

import argparse
import random
import time
from pathlib import Path

from assets.benchmarks.items import load_items
from assets.grading.equivalence import GradeInput, Grader

REASONING = "Let me work through this carefully, checking each step.\n</think>\n\n"


def workload(items: list[dict], k: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    golds = [item["gold"] for item in items]
    pairs = []
    for _index, gold in enumerate(golds):
        wrong = rng.sample([g for g in golds if g != gold], 3)
        for _ in range(k):
            answer = gold if rng.random() < 0.5 else rng.choice(wrong)
            pairs.append((gold, f"{REASONING}So the final answer is $\\boxed{{{answer}}}$."))
    return pairs


def plain_math_verify(pairs: list[tuple[str, str]]) -> list[bool]:
    from math_verify import parse, verify

    return [bool(verify(parse(f"${gold}$"), parse(response.split("</think>")[-1]))) for gold, response in pairs]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--mirror", default="../shared/data/benchmarks")
    args = parser.parse_args()
    pairs = workload(load_items("math500", Path(args.mirror), args.items), args.k)

    started = time.perf_counter()
    baseline = plain_math_verify(pairs)
    baseline_s = time.perf_counter() - started

    started = time.perf_counter()
    with Grader() as grader:
        grades = grader.grade_many([GradeInput(gold, "latex", response) for gold, response in pairs])
    ours_s = time.perf_counter() - started

    same = sum(grade.correct == verdict for grade, verdict in zip(grades, baseline, strict=True))
    print(f"{len(pairs)} responses ({args.items} items x k={args.k})")
    print(f"plain math-verify, one thread: {baseline_s:.1f} s = {len(pairs) / baseline_s:.0f} answers/s")
    print(f"yardstick grader (workers + cache, pool start included): {ours_s:.1f} s = "
          f"{len(pairs) / ours_s:.0f} answers/s; {baseline_s / ours_s:.1f}x")
    print(f"identical verdicts: {same}/{len(pairs)}")
    for (gold, _response), grade, verdict in zip(pairs, grades, baseline, strict=True):
        if grade.correct != verdict:
            print(f"  differs: gold {gold!r} answer {grade.extracted!r}: ours {grade.correct}, plain {verdict}")


if __name__ == "__main__":
    main()
