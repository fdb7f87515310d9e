"""GuideLLM and yardstick's load generator, side by side, against the reference server's known timing.

GuideLLM lives in its own environment (it pins other torch/transformers versions):

    python3 -m venv /tmp/glvenv && /tmp/glvenv/bin/pip install guidellm
    .venv/bin/python -m tests.measure.guidellm_side_by_side --guidellm /tmp/glvenv/bin/guidellm \\
        --tokenizer .yardstick/models/tiny-r1-qwen2 [--levels 1:64,16:64,256:1024]

GuideLLM needs a tokenizer for its synthetic prompts; offline, the tiny model's is the one at hand. Both
tools run one level at a time (concurrency:requests) against the same server. The truth, for a closed loop of
c clients, S slots and n output tokens with cycle = ttft + (n - 1) * tpot: at c <= S, TTFT = ttft,
TPOT = ITL = tpot, E2E = cycle and c / cycle requests/s; above S, the server's capacity S / cycle.
GuideLLM's own TPOT is (last token - start) / n, the first token included (E2E / n); the table also gives
both tools' TPOT by vLLM's definition, (E2E - TTFT) / (n - 1), computed from GuideLLM's per-request records.
"""

import argparse
import asyncio
import json
import os
import subprocess
import tempfile
from pathlib import Path

from assets.engine.loadtest import Endpoint, Load, run_level, summarise_level
from tests.instruments.reference_server import running_reference_server


def guidellm_level(command: str, tokenizer: str, base_url: str, concurrency: int, requests: int,
                   input_len: int, output_len: int, folder: Path) -> dict:
    result = folder / f"guidellm-c{concurrency}.json"
    subprocess.run(
        [command, "run",
         # GuideLLM sends max_completion_tokens; max_tokens is added for servers that read only that.
         "--backend", (f"kind=openai_http,target={base_url},model=reference,"
                      f"request_format=/v1/chat/completions,extras.body.max_tokens={output_len}"),
         "--profile", f"kind=concurrent,streams={concurrency}",
         "--constraint", f"kind=max_requests,count={requests}",
         "--data", f"kind=synthetic_text,prompt_tokens={input_len},output_tokens={output_len}",
         "--tokenizer", f"kind=huggingface_auto,model={tokenizer}",
         "--output", f"kind=json,path={result}", "--disable-console"],
        cwd=folder, check=True, stdout=subprocess.DEVNULL, stderr=(folder / "guidellm.log").open("a"),
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    benchmark = json.loads(result.read_text())["benchmarks"][0]
    metrics = benchmark["metrics"]

    def mean(name: str) -> float:
        return metrics[name]["successful"]["mean"]

    records = [r for r in benchmark["requests"]["successful"] if r.get("output_tokens", 0) > 1]
    vllm_tpot = sum((r["request_latency"] * 1000 - r["time_to_first_token_ms"]) / (r["output_tokens"] - 1)
                    for r in records) / len(records)
    return {"done": metrics["request_totals"]["successful"], "ttft": mean("time_to_first_token_ms"),
            "tpot_own": mean("time_per_output_token_ms"), "tpot_vllm": vllm_tpot,
            "itl": mean("inter_token_latency_ms"), "e2e": mean("request_latency") * 1000,
            "rps": mean("requests_per_second")}


def yardstick_level(base_url: str, concurrency: int, requests: int, input_len: int, output_len: int) -> dict:
    load = Load(concurrency=concurrency, num_requests=requests, input_len=input_len, output_len=output_len)
    level = summarise_level(load, *asyncio.run(run_level(Endpoint(base_url, "reference"), load)))
    return {"done": level["completed"], "ttft": level["ttft_ms"]["mean"], "tpot_own": level["tpot_ms"]["mean"],
            "tpot_vllm": level["tpot_ms"]["mean"], "itl": level["itl_ms"]["mean"], "e2e": level["e2el_ms"]["mean"],
            "rps": level["request_throughput"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--guidellm", required=True, help="the guidellm command, in its own environment")
    parser.add_argument("--tokenizer", required=True, help="a local tokenizer folder for GuideLLM's prompts")
    parser.add_argument("--levels", default="1:64,16:64,256:1024", help="concurrency:requests,...")
    parser.add_argument("--ttft-ms", type=float, default=100.0)
    parser.add_argument("--tpot-ms", type=float, default=20.0)
    parser.add_argument("--slots", type=int, default=64)
    parser.add_argument("--input-len", type=int, default=64)
    parser.add_argument("--output-len", type=int, default=16)
    args = parser.parse_args()
    cycle_ms = args.ttft_ms + (args.output_len - 1) * args.tpot_ms
    capacity = args.slots / cycle_ms * 1000
    folder = Path(tempfile.mkdtemp(prefix="guidellm-side-by-side-"))
    print(f"reference server: TTFT {args.ttft_ms:g} ms, TPOT {args.tpot_ms:g} ms, {args.slots} slots, "
          f"{args.output_len} tokens: capacity {capacity:.1f} requests/s\n")
    print("| tool | concurrency | done | TTFT ms | TPOT ms (own) | TPOT ms (vLLM) | ITL ms | E2E ms | req/s "
          "| of ideal |\n|---|---|---|---|---|---|---|---|---|---|")
    tokenizer = str(Path(args.tokenizer).resolve())
    with running_reference_server(args.ttft_ms, args.tpot_ms, args.slots) as base_url:
        for level in args.levels.split(","):
            concurrency, requests = (int(part) for part in level.split(":"))
            ideal = min(concurrency, args.slots) / cycle_ms * 1000
            e2e = cycle_ms if concurrency <= args.slots else concurrency / capacity * 1000
            truth = {"done": requests, "ttft": e2e - (args.output_len - 1) * args.tpot_ms,
                     "tpot_own": args.tpot_ms, "tpot_vllm": args.tpot_ms, "itl": args.tpot_ms, "e2e": e2e,
                     "rps": ideal}
            measured = {
                "truth": truth,
                "guidellm": guidellm_level(args.guidellm, tokenizer, base_url, concurrency, requests,
                                           args.input_len, args.output_len, folder),
                "yardstick": yardstick_level(base_url, concurrency, requests, args.input_len, args.output_len),
            }
            for tool, row in measured.items():
                print(f"| {tool} | {concurrency} | {row['done']} | {row['ttft']:.1f} | {row['tpot_own']:.2f} | "
                      f"{row['tpot_vllm']:.2f} | {row['itl']:.2f} | {row['e2e']:.1f} | {row['rps']:.1f} | "
                      f"{row['rps'] / ideal:.1%} |", flush=True)
    print(f"\nGuideLLM's JSON and log: {folder}")


if __name__ == "__main__":
    main()
