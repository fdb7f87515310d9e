"""What transient faults cost a generation: the time to finish every sample with a share of requests faulted
against the same generation with none, and the retries that absorbed them.

    .venv/bin/python -m tests.measure.fault_tolerance [--items 100] [--k 2] [--share 0.1] [--rounds 2]

The tiny model is served by vLLM's CPU build (the `tiny-bf16-cpu` variant of pipelines/matrix.yaml, its
max_tokens cut to --max-tokens so a round takes a minute or two). Each round generates the same samples of the
synthetic arithmetic benchmark twice through the fault-injecting proxy of the tests (tests/instruments/
fault_proxy.py): once with no faults, once with --share of the generation requests answered with 429 (with
Retry-After: 1), 500, 503, a dropped connection or a stall of --stall-s seconds, drawn uniformly. Both go
through `generate` with the pipeline's retry policy (the default's backoff; the request deadline set by
--deadline-s, below the stall). The rounds alternate which condition goes first. Printed per round and
condition: wall time, samples finished, faults injected by kind, retries by error and samples retried; then the
median time ratio faulted / clean.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import replace
from pathlib import Path

import openai
import pandas as pd

from assets.benchmarks.items import load_items
from assets.engine.generation import generate
from assets.engine.requests import generation_sampling, pending_requests, shared_sampling
from assets.engine.retry import RetryPolicy
from assets.matrix import load_matrix
from assets.models.tiny import ensure_tiny_model
from pipelines.settings import vllm_command
from resources.engines import EngineResource
from tests.instruments.fault_proxy import running_fault_proxy

VARIANT = "tiny-bf16-cpu"
TINY_MODEL_DIR = Path(".yardstick/models/tiny-r1-qwen2")
MEASURE_DIR = Path(".yardstick/measure")
NOTHING_FINISHED = pd.DataFrame({"benchmark": [], "item_id": [], "sample_index": []})


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100, help="arithmetic items (default 100)")
    parser.add_argument("--k", type=int, default=2, help="samples per item (default 2)")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens per reply (default 64)")
    parser.add_argument("--share", type=float, default=0.1, help="share of requests faulted (default 0.1)")
    parser.add_argument("--stall-s", type=float, default=30.0, help="how long a stall holds (default 30)")
    parser.add_argument("--deadline-s", type=float, default=10.0,
                        help="the request deadline, after which a stall is retried (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of both conditions (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="the proxy's first seed; round r uses seed + r")
    parser.add_argument("--model-dir", type=Path, default=TINY_MODEL_DIR, help="the tiny model (built here if missing)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    variant = load_matrix(Path("pipelines/matrix.yaml")).variant(VARIANT)
    variant = replace(variant, benchmarks={"arith": args.items},
                      protocol=replace(variant.protocol, k=args.k, k_by_benchmark={}, max_tokens=args.max_tokens))
    items = pd.DataFrame(load_items("arith", None, args.items))
    requests = pending_requests(variant, items, NOTHING_FINISHED)
    policy = replace(RetryPolicy.parse(variant.engine.settings.retry), request_deadline_s=args.deadline_s)
    tiny = ensure_tiny_model(args.model_dir)
    engine = EngineResource(log_dir=str(MEASURE_DIR / "logs"), vllm_command=vllm_command(), cpu_threads=2)
    results = []
    with engine.deploy(variant.engine, str(tiny), variant.name, "fault-tolerance-" + variant.name,
                       warmup_sampling=shared_sampling(variant)) as deployment:
        print(f"{deployment.engine} {deployment.engine_version} ready after {deployment.startup_seconds:.1f} s; "
              f"{len(requests)} samples per condition, {args.share:.0%} faulted, stalls {args.stall_s:g} s, "
              f"deadline {args.deadline_s:g} s", flush=True)
        for round_number in range(args.rounds):
            shares = [0.0, args.share] if round_number % 2 == 0 else [args.share, 0.0]
            for share in shares:
                results.append(one_condition(deployment, variant, requests, policy, share, args,
                                             args.seed + round_number, round_number))
    table = pd.DataFrame(results)
    print(table.to_string(index=False))
    clean = table[table["share"] == 0].set_index("round")["seconds"]
    faulted = table[table["share"] > 0].set_index("round")["seconds"]
    ratios = (faulted / clean).tolist()
    print(f"time with {args.share:.0%} faults / without, per round: {', '.join(f'{r:.2f}' for r in ratios)}; "
          f"median {statistics.median(ratios):.2f}")


def one_condition(deployment, variant, requests, policy: RetryPolicy, share: float, args, seed: int,
                  round_number: int) -> dict:
    rows: list[dict] = []
    with running_fault_proxy(deployment.base_url, share=share, stall_s=args.stall_s, retry_after_s=1,
                             seed=seed) as proxy:
        async def run():
            async with openai.AsyncOpenAI(base_url=proxy.base_url, api_key=deployment.api_key,
                                          timeout=policy.request_deadline_s + 5, max_retries=0) as client:
                return await generate(client, deployment.served_model, requests, generation_sampling(variant),
                                      variant.engine.concurrency, rows.extend, policy=policy, url=proxy.base_url)

        started = time.perf_counter()
        report = asyncio.run(run())
        seconds = time.perf_counter() - started
        stats = proxy.stats()
    result = {"round": round_number, "share": share, "seconds": round(seconds, 1), "finished": report.finished,
              "distinct": len({(r["item_id"], r["sample_index"]) for r in rows}),
              "injected": stats["injected_total"], "retries": report.retries,
              "retried_samples": report.retried_samples,
              "injected_by_kind": ",".join(f"{k}:{v}" for k, v in sorted(stats["injected"].items())),
              "retries_by_error": ",".join(f"{k}:{v}" for k, v in sorted(report.retries_by_error.items()))}
    print(f"  round {round_number} share {share:.0%}: {result['finished']} samples in {seconds:.1f} s, "
          f"{result['retries']} retries ({result['retries_by_error'] or 'none'})", flush=True)
    return result


if __name__ == "__main__":
    main()
