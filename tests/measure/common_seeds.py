"""What common random numbers buy the paired quantization-loss interval, on the offline default.

    .venv/bin/python -m tests.measure.common_seeds [--k N] [--benchmarks arith,gsm8k]

The W4A16 variant of pipelines/matrix.yaml and its bf16 baseline (both vLLM's CPU build, the tiny model) each
answer every sample of their benchmarks twice in one deployment: `seeded`, every request carrying its
`sample_seed(benchmark, item, sample)` as the pipeline sends it, so both variants draw sample i of an item with
the same seed; and `unseeded`, the same requests without a seed, so vLLM draws independently. Both are graded as
`graded_answers` grades, and per condition and benchmark (and pooled over every item) the table gives the
accuracies, `paired_difference(w4a16, bf16)`'s delta and interval, its width, the share of samples whose reply
(answer and reasoning) is the same text under both variants, and on the unseeded row the width ratio
unseeded / seeded: how much wider the interval is without common seeds.

A few seeded requests are sent again at the end; their replies must repeat the first ones word for word, or the
engine does not honour per-request seeds and the seeded rows mean nothing.

--k sets the samples per item of every benchmark (default: the protocol's k, per benchmark); more samples make
the effect clearer and the run longer. The W4A16 checkpoint is made from the tiny model into .yardstick/measure/
and reused; the servers' logs go to .yardstick/measure/logs.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import replace
from pathlib import Path

import openai
import pandas as pd

from assets.benchmarks.items import load_items
from assets.engine.generation import SampleRequest, generate
from assets.engine.requests import generation_sampling, pending_requests, shared_sampling
from assets.grading.equivalence import GradeInput, Grader
from assets.matrix import Variant, load_matrix
from assets.models.quantize import quantize_checkpoint, quantized_path
from assets.models.tiny import ensure_tiny_model
from assets.scoring.metrics import paired_difference
from pipelines.settings import vllm_command
from resources.engines import EngineResource

VARIANT = "tiny-w4a16-cpu"   # its baseline is the matrix's, as the quantization-loss asset finds it
TINY_MODEL_DIR = Path(".yardstick/models/tiny-r1-qwen2")
MEASURE_DIR = Path(".yardstick/measure")
MIRROR = Path("../shared/data/benchmarks")
REQUEST_TIMEOUT_S = 1800.0
RERUNS_PER_BENCHMARK = 2
SEEDED, UNSEEDED, RERUN = "seeded", "unseeded", "seeded rerun"
NOTHING_FINISHED = pd.DataFrame({"benchmark": [], "item_id": [], "sample_index": []})
SAMPLE_KEY = ["benchmark", "item_id", "sample_index"]
POOLED = "all"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=None,
                        help="samples per item for every benchmark (default: the protocol's)")
    parser.add_argument("--benchmarks", default=None,
                        help="comma-separated benchmarks of the variant to run (default: all of them)")
    return parser.parse_args()


def measured_variant(variant: Variant, k: int | None, benchmarks: str | None) -> Variant:
    """The variant as this run asks for it: k samples of every benchmark, and only the named benchmarks."""
    if k is not None:
        if k < 1:
            raise SystemExit(f"--k must be at least 1, not {k}")
        variant = replace(variant, protocol=replace(variant.protocol, k=k, k_by_benchmark={}))
    if benchmarks:
        names = [name.strip() for name in benchmarks.split(",") if name.strip()]
        unknown = [name for name in names if name not in variant.benchmarks]
        if unknown:
            raise SystemExit(f"benchmarks {unknown} are not run by variant '{variant.name}'; "
                             f"known: {', '.join(variant.benchmarks)}")
        variant = replace(variant, benchmarks={name: variant.benchmarks[name] for name in names})
    return variant


def benchmark_items(variant: Variant, mirror: Path) -> pd.DataFrame:
    rows = [item for name, limit in variant.benchmarks.items() for item in load_items(name, mirror, limit)]
    return pd.DataFrame(rows)


def condition_requests(variant: Variant, items: pd.DataFrame) -> dict[str, list[SampleRequest]]:
    """Every sample as the pipeline requests it (seeded), the same without seeds, and a few seeded ones again."""
    seeded = pending_requests(variant, items, NOTHING_FINISHED)
    if any(request.seed is None for request in seeded):
        raise SystemExit(f"variant '{variant.name}' sends no per-request seeds (per_request_seed: false); "
                         "nothing to compare")
    reruns = [request for benchmark in variant.benchmarks
              for request in [r for r in seeded if r.benchmark == benchmark][:RERUNS_PER_BENCHMARK]]
    return {SEEDED: seeded, UNSEEDED: [replace(request, seed=None) for request in seeded], RERUN: reruns}


def checkpoint_of(variant: Variant, tiny_dir: Path) -> Path:
    """The weights the variant serves: the tiny model, or its quantization, made once into MEASURE_DIR."""
    if variant.quantization.scheme == "none":
        return tiny_dir.resolve()
    target = quantized_path(MEASURE_DIR, variant)
    if not (target / "config.json").exists():   # quantize_checkpoint renames a finished checkpoint into place
        started = time.perf_counter()
        quantize_checkpoint(tiny_dir, target, variant.quantization)
        print(f"quantized {variant.name} into {target} in {time.perf_counter() - started:.0f} s", flush=True)
    return target


def printed_progress(label: str):
    def progress(finished: int, total: int) -> None:
        if finished % max(1, total // 5) == 0 or finished == total:
            print(f"  {label}: {finished}/{total}", flush=True)
    return progress


def generations(variant: Variant, checkpoint: Path,
                requests: dict[str, list[SampleRequest]]) -> dict[str, pd.DataFrame]:
    """Every condition's replies from one deployment of the variant, one condition after the other."""
    engine = EngineResource(log_dir=str(MEASURE_DIR / "logs"), vllm_command=vllm_command(), cpu_threads=2)
    replies: dict[str, pd.DataFrame] = {}
    with engine.deploy(variant.engine, str(checkpoint), variant.name, "common-seeds-" + variant.name,
                       warmup_sampling=shared_sampling(variant)) as deployment:
        print(f"{variant.name}: {deployment.engine} {deployment.engine_version} ready after "
              f"{deployment.startup_seconds:.1f} s", flush=True)

        async def run() -> None:
            async with openai.AsyncOpenAI(base_url=deployment.base_url, api_key=deployment.api_key,
                                          timeout=REQUEST_TIMEOUT_S, max_retries=1) as client:
                for condition, batch in requests.items():
                    rows: list[dict] = []
                    started = time.perf_counter()
                    await generate(client, deployment.served_model, batch, generation_sampling(variant),
                                   variant.engine.concurrency, rows.extend,
                                   printed_progress(f"{variant.name} {condition}"))
                    print(f"  {variant.name} {condition}: {len(rows)} samples in "
                          f"{time.perf_counter() - started:.0f} s", flush=True)
                    replies[condition] = pd.DataFrame(rows)

        asyncio.run(run())
    return replies


def graded(replies: pd.DataFrame, items: pd.DataFrame, variant: Variant, grader: Grader) -> pd.DataFrame:
    """The replies with `correct`, graded as the graded_answers asset grades them."""
    frame = replies.merge(items[["benchmark", "item_id", "gold", "answer_format"]], on=["benchmark", "item_id"])
    inputs = [GradeInput(gold=row.gold, answer_format=row.answer_format, response=row.response,
                         reasoning_content=row.reasoning_content if isinstance(row.reasoning_content, str) else None,
                         finish_reason=row.finish_reason, reasoning_prefilled=variant.protocol.reasoning_prefilled)
              for row in frame.itertuples()]
    return frame.assign(correct=[grade.correct for grade in grader.grade_many(inputs)])


def item_rates(frame: pd.DataFrame) -> pd.Series:
    """Mean correctness per item, indexed by benchmark/item id so the pooled comparison keeps items apart."""
    rates = frame.groupby(["benchmark", "item_id"])["correct"].mean()
    rates.index = [f"{benchmark}/{item}" for benchmark, item in rates.index]
    return rates


def same_text_share(ours: pd.DataFrame, theirs: pd.DataFrame) -> float:
    """The share of samples whose answer and reasoning are the same text under both variants."""
    both = ours.merge(theirs, on=SAMPLE_KEY, suffixes=("_ours", "_theirs"))
    same = (both["response_ours"] == both["response_theirs"]) & (
        both["reasoning_content_ours"].fillna("") == both["reasoning_content_theirs"].fillna(""))
    return float(same.mean())


def interval_table(ours: dict[str, pd.DataFrame], theirs: dict[str, pd.DataFrame], variant: Variant) -> pd.DataFrame:
    rows = []
    scopes = [*variant.benchmarks, POOLED]
    for scope in scopes:
        seeded_width = None
        for condition in (SEEDED, UNSEEDED):
            mine, base = ours[condition], theirs[condition]
            if scope != POOLED:
                mine, base = mine[mine["benchmark"] == scope], base[base["benchmark"] == scope]
            paired = paired_difference(item_rates(mine), item_rates(base))
            width = paired.delta_high - paired.delta_low
            ratio = None
            if condition == SEEDED:
                seeded_width = width
            elif seeded_width:
                ratio = width / seeded_width
            elif width:
                ratio = float("inf")
            k = variant.protocol.samples_for(scope) if scope != POOLED else None
            rows.append({"benchmark": scope, "items": paired.n_items, "k": k, "condition": condition,
                         "bf16 acc": paired.baseline_score, "w4a16 acc": paired.score, "delta": paired.delta,
                         "low": paired.delta_low, "high": paired.delta_high, "width": width,
                         "unseeded/seeded": ratio, "same text": same_text_share(mine, base)})
    return pd.DataFrame(rows)


def rerun_mismatches(first: pd.DataFrame, again: pd.DataFrame) -> list[tuple]:
    both = first.merge(again, on=SAMPLE_KEY, suffixes=("", "_again"))
    differ = (both["response"] != both["response_again"]) | (
        both["reasoning_content"].fillna("") != both["reasoning_content_again"].fillna(""))
    return list(both.loc[differ, SAMPLE_KEY].itertuples(index=False, name=None))


def formatted(table: pd.DataFrame) -> str:
    shown = table.copy()
    shown["k"] = shown["k"].map(lambda k: "" if pd.isna(k) else str(int(k)))
    shown["unseeded/seeded"] = shown["unseeded/seeded"].map(lambda r: "" if pd.isna(r) else f"{r:.2f}")
    for column in ("bf16 acc", "w4a16 acc", "width", "same text"):
        shown[column] = shown[column].map("{:.3f}".format)
    for column in ("delta", "low", "high"):
        shown[column] = shown[column].map("{:+.3f}".format)
    return shown.to_string(index=False)


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    matrix = load_matrix()
    variant = measured_variant(matrix.variant(VARIANT), args.k, args.benchmarks)
    baseline = matrix.baseline_of(matrix.variant(VARIANT))
    if baseline is None:
        raise SystemExit(f"variant '{VARIANT}' has no baseline in {matrix.path}")
    baseline = measured_variant(baseline, args.k, ",".join(variant.benchmarks))
    if baseline.protocol != variant.protocol:
        raise SystemExit(f"'{variant.name}' and its baseline '{baseline.name}' differ in protocol; not paired")
    items = benchmark_items(variant, MIRROR.resolve())
    requests = condition_requests(variant, items)
    print(f"{variant.name} against {baseline.name}: {len(items)} items, {len(requests[SEEDED])} samples per "
          f"condition and variant, {len(requests[RERUN])} seeded reruns", flush=True)

    tiny_dir = ensure_tiny_model(TINY_MODEL_DIR)
    replies = {v.name: generations(v, checkpoint_of(v, tiny_dir), requests) for v in (baseline, variant)}
    generated_at = time.perf_counter()

    with Grader() as grader:
        scored = {name: {condition: graded(frame, items, variant, grader) for condition, frame in by.items()}
                  for name, by in replies.items()}
    print(f"graded in {time.perf_counter() - generated_at:.0f} s\n")

    table = interval_table(scored[variant.name], scored[baseline.name], variant)
    print(f"paired difference {variant.name} - {baseline.name} (95% paired bootstrap over items):")
    print(formatted(table))
    print()
    for name, by in replies.items():
        mismatches = rerun_mismatches(by[SEEDED], by[RERUN])
        verdict = "identical" if not mismatches else f"DIFFERENT for {mismatches}"
        print(f"{name}: {len(by[RERUN])} seeded requests sent again: {verdict}")
    print(f"\nwall time {time.perf_counter() - started:.0f} s (generation {generated_at - started:.0f} s)")


if __name__ == "__main__":
    main()
