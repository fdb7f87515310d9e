"""`yardstick bench`: load-test any OpenAI-compatible endpoint through the serving loop the `serving_benchmark`
asset measures with (assets.engine.serving), and write every level's measurements to a JSON file."""

from __future__ import annotations

import argparse
import json
import os
import sys

from pipelines.cli.common import InputError


def _numbers(text: str, kind: type) -> list:
    try:
        return [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(f"expected comma-separated numbers, got {text!r}") from None


def _describe(level: dict, load_name: str) -> str:
    ttft, tpot = level["ttft_ms"]["p50"], level["tpot_ms"]["p50"]
    return (f"{load_name}: {level['completed']} done, {level['failed']} failed, "
            f"{level['output_throughput']:.1f} tok/s, TTFT p50 {'n/a' if ttft is None else f'{ttft:.1f} ms'}, "
            f"TPOT p50 {'n/a' if tpot is None else f'{tpot:.2f} ms'}"
            + (f"; first error: {level['errors'][0]}" if level["errors"] else "")
            + (f"; BUSY HOST, not to be trusted: {level['host']['host_contention']}"
               if level["host"]["host_condition"] == "contended" else ""))


def bench(args: argparse.Namespace) -> int:
    """Load-test any OpenAI-compatible endpoint and write every level's measurements to a JSON file: each level's
    summary, what the engine reported about itself (`engine`, where it did), what this host's GPUs did (`gpu`,
    with why where they were not read: the endpoint is elsewhere, or no NVML here) and what else this host did
    (`host`: clean, or contended and why)."""
    from assets.engine.engine_metrics import NOT_REPORTED
    from assets.engine.loadtest import Endpoint, Slo, describe_load, load_levels, summarise_level
    from assets.engine.requests import gpu_columns
    from assets.engine.serving import endpoint_gpus, engine_groups, measure_levels
    from resources.ports import port_listeners

    api_key = os.environ.get(args.api_key_env, "") if args.api_key_env else "not-needed"
    if args.api_key_env and not api_key:
        raise InputError(f"environment variable {args.api_key_env} (the API key) is not set")
    endpoint = Endpoint(args.base_url.rstrip("/"), args.model, api_key)
    common = {"num_requests": args.num_requests, "input_len": args.input_len, "output_len": args.output_len,
              "warmup": args.warmup, "exact_output_len": args.exact_output_len,
              "per_chunk_usage": args.per_chunk_usage}
    loads = load_levels(_numbers(args.concurrency, int), _numbers(args.request_rate or "", float), **common)
    slo = Slo(args.slo_ttft_ms, args.slo_tpot_ms)
    levels = []
    gpus, groups = endpoint_gpus(endpoint.base_url, os.environ), engine_groups(endpoint.base_url, port_listeners)
    for measured in measure_levels(endpoint, loads, gpus, lambda _: None, groups):
        level = summarise_level(measured.load, measured.timings, measured.duration_s, slo)
        if measured.engine != NOT_REPORTED:
            level["engine"] = measured.engine.row()
        level["gpu"] = gpu_columns(measured.gpus, measured.timings)
        level["host"] = measured.host.row()
        levels.append(level)
        print(_describe(level, describe_load(measured.load)), file=sys.stderr)
    result = {"base_url": endpoint.base_url, "model": endpoint.model, "input_len": args.input_len,
              "output_len": args.output_len, "slo": {"ttft_ms": slo.ttft_ms, "tpot_ms": slo.tpot_ms},
              "levels": levels}
    with open(args.output, "w", encoding="utf-8") as out:
        json.dump(result, out, indent=2)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0 if all(level["completed"] for level in levels) else 1


def add_bench(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("bench", help="load-test an OpenAI-compatible endpoint")
    parser.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--model", required=True, help="the model name the endpoint serves")
    parser.add_argument("--concurrency", default="1,4,16", help="closed-loop levels, comma-separated")
    parser.add_argument("--request-rate", default="", help="Poisson levels in requests/s, comma-separated")
    parser.add_argument("--input-len", type=int, default=512, help="synthetic prompt length in tokens")
    parser.add_argument("--output-len", type=int, default=1024, help="max tokens per reply")
    parser.add_argument("--exact-output-len", action="store_true",
                        help="also send ignore_eos and min_tokens so every reply has exactly --output-len tokens "
                             "(vLLM honours them; servers that reject unknown fields answer 422)")
    parser.add_argument("--per-chunk-usage", action="store_true",
                        help="ask for token usage on every streamed chunk (vLLM's continuous_usage_stats), so a "
                             "chunk of several tokens weighs ITL by its tokens; without it a chunk counts as one")
    parser.add_argument("--num-requests", type=int, default=64, help="measured requests per level")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured requests before each level")
    parser.add_argument("--api-key-env", default=None, help="environment variable holding the API key")
    parser.add_argument("--slo-ttft-ms", type=float, default=2000.0)
    parser.add_argument("--slo-tpot-ms", type=float, default=100.0)
    parser.add_argument("--output", required=True, help="RESULT.json")
    parser.set_defaults(handler=bench)
