"""The busy-host rule at work: one variant's serving levels measured on a quiet host and again beside CPU hogs, as
the serving_benchmark asset measures them, with what the cost rollup would price and what the serving regression
check would say; and before that, the noise an idle host shows over the rule's windows, which the thresholds
(host_load.Thresholds) must stay well above.

    .venv/bin/python -m tests.measure.busy_host [--variants tiny-bf16-cpu,tiny-bf16-transformers-cpu]
        [--concurrency 1,4,16] [--requests 64] [--hogs 1] [--idle-windows 10] [--window-s 2] [--model PATH]
        [--no-split]

Each variant named of the default matrix (pipelines/matrix.yaml, whatever YARDSTICK_MATRIX says) is served by its
engine on the tiny model (built here if missing; a llama.cpp variant is not taken: it needs its GGUF file, which
the pipeline makes). `--hogs` busy processes (tests/instruments/cpu_hog.py) run beside the second measurement.
Prints per level: output tok/s, TPOT p50, the cores other processes used, the engine's and the load generator's,
and the verdict.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

from assets.cost.pricing import priced_level
from assets.engine import serving
from assets.engine.host_load import Thresholds, host_now
from assets.engine.loadtest import Endpoint
from assets.engine.requests import shared_sampling
from assets.engine.serving import serving_rows
from assets.leaderboard.regressions import serving_findings
from assets.matrix import load_matrix
from assets.models.tiny import ensure_tiny_model
from resources.engines import EngineResource
from resources.launchers import vllm
from resources.ports import port_listeners
from tests.instruments.cpu_hog import cpu_hogs

TINY_MODEL_DIR = Path(".yardstick/models/tiny-r1-qwen2")
DEFAULT_MATRIX = Path(__file__).resolve().parents[2] / "pipelines" / "matrix.yaml"


def idle_noise(windows: int, window_s: float) -> None:
    seen = [host_now(window_s) for _ in range(windows)]
    others = [conditions.host_other_cores or 0.0 for conditions in seen]
    steal = [conditions.host_steal_cores or 0.0 for conditions in seen]
    print(f"idle host, {windows} windows of {window_s:g} s: other processes' CPU median "
          f"{statistics.median(others):.3f} cores, max {max(others):.3f}; steal max {max(steal):.3f} cores; "
          f"thresholds {Thresholds()}")


def _level_line(variant: str, condition: str, level: dict) -> str:
    tpot = level["tpot_ms_p50"]
    return (f"| {variant} | {condition} | {level['profile']} {level['load']:g} | {level['output_throughput']:.0f} | "
            f"{'n/a' if tpot is None else f'{tpot:.2f}'} | {level['host_other_cores']:.2f} | "
            f"{level['host_engine_cores']:.2f} | {level['host_loadgen_cores']:.2f} | {level['host_condition']} |")


def _priced(levels: list[dict]) -> dict:
    chosen, _, condition = priced_level(levels)
    return {"best_profile": chosen["profile"], "best_load": chosen["load"], "ttft_ms_p99": chosen["ttft_ms_p99"],
            "tpot_ms_p99": chosen["tpot_ms_p99"], "output_tokens_per_s": chosen["output_throughput"],
            "usd_per_million_output_tokens": 1.0, **condition}


def measure(name: str, args: argparse.Namespace, model: Path, folder: Path) -> None:
    variant = load_matrix(DEFAULT_MATRIX).variant(name)
    variant = replace(variant, serving=replace(variant.serving, concurrency=args.concurrency, request_rates=(),
                                               requests_per_level=args.requests))
    engine = EngineResource(log_dir=str(folder))
    runs = {}
    with engine.deploy(variant.engine, str(model), name, f"busy-host-{name}",
                       warmup_sampling=shared_sampling(variant)) as deployment:
        endpoint = Endpoint(deployment.base_url, deployment.served_model)
        for condition in ("quiet", f"{args.hogs} hog(s)"):
            with cpu_hogs(args.hogs if condition != "quiet" else 0):
                runs[condition], _ = serving_rows(endpoint, variant, (), dict(os.environ), lambda _: None,
                                                  port_listeners)
            for level in runs[condition]:
                print(_level_line(name, condition, level), flush=True)
    quiet, hogged = runs.values()
    both = _priced(quiet + hogged)
    alone = _priced(hogged)
    print(f"{name}: priced from both runs' levels: {both['best_profile']} {both['best_load']:g} at "
          f"{both['output_tokens_per_s']:.0f} tok/s, {both['priced_host_condition']}; from the hogged run alone: "
          f"{alone['priced_host_condition']} ({alone['priced_host_contention']})")
    findings = serving_findings(_priced(quiet), alone, 0.15, 0.30, 0.15)
    print(f"{name}: regression check, quiet run then hogged run: {findings[0].kind}: "
          f"{findings[0].evidence.get('why', findings[0].evidence)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="tiny-bf16-cpu,tiny-bf16-transformers-cpu",
                        help="comma-separated; empty: the idle host's noise only")
    parser.add_argument("--no-split", action="store_true",
                        help="no core split (host_load.CpuSplit): vLLM binds by its own `auto`, the load generator "
                             "goes wherever the kernel puts it, as before the split was made")
    parser.add_argument("--model", type=Path, default=None, help="a checkpoint (default: the tiny model)")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--hogs", type=int, default=1)
    parser.add_argument("--idle-windows", type=int, default=10)
    parser.add_argument("--window-s", type=float, default=2.0)
    args = parser.parse_args()
    args.concurrency = tuple(int(value) for value in args.concurrency.split(","))
    if args.no_split:
        serving.cpu_split = vllm.cpu_split = lambda: None
    idle_noise(args.idle_windows, args.window_s)
    if not args.variants:
        return
    model = (args.model or ensure_tiny_model(TINY_MODEL_DIR)).resolve()
    print("| variant | host | level | output tok/s | TPOT p50 ms | others (cores) | engine | load generator | "
          "verdict |\n|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.variants.split(","):
            measure(name, args, model, Path(folder))


if __name__ == "__main__":
    main()
