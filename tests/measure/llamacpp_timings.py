"""The engine's clock against the client's: llama-server's own `timings` of each request beside what the load
generator measured of the same request.

    .venv/bin/python -m tests.measure.llamacpp_timings [GGUF] [--concurrency 1,4,16] [--requests 48]
        [--input-len 64] [--output-len 64] [--parallel 4] [--device cpu] [--threads N]

Starts llama-server (the build `make llama.cpp` made, or YARDSTICK_LLAMACPP_SERVER) through the project's launcher
on the GGUF file (default: the tiny model, converted as the quantization stage converts it, both built here if
missing) with --parallel slots, and runs a closed-loop level per concurrency: streamed chat requests of about
--input-len words, exactly --output-len tokens out (ignore_eos), one warm-up request first, each timed by the load
generator's own `timed_request`. The default --parallel is below the highest concurrency on purpose: above the
slots, requests wait for one, and that wait is on the client's clock only.

llama-server puts its `timings` on the last chunks of each stream (server_slot_stats in its tools/server):
- prompt_ms runs from the moment a slot takes the request to the first token's logits. Client TTFT holds it plus
  the HTTP exchange, any wait for a free slot, and the first chunk's way to the client.
- predicted_ms runs from there to the last token, and predicted_per_token_ms = predicted_ms / (predicted_n - 1):
  TPOT's own definition, (E2E - TTFT) / (tokens - 1), on the engine's clock.

Per level, a table of medians: client against engine, the per-request difference (its median, not the
difference of the medians) and ratio, and what the difference is made of. Requests whose token counts differ
(the engine's predicted_n against the client's usage) are counted under the table.

Leave the client a core: where llama-server's --threads (or other work) fill every core, the client and the
server's HTTP thread wait for one, and the chunks reach the client in bursts (on two cores with --threads 2 the
client's ITL p50 fell to 0.01 ms at every level against the engine's 0.3 to 1.6 ms per token; with --threads 1,
0.26 to 0.77 ms against 0.25 to 0.88).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from assets.engine.http_stream import EventStreamClient
from assets.engine.loadtest import (
    Endpoint,
    Load,
    RequestTiming,
    distribution,
    level_prompts,
    request_body,
    timed_request,
)
from assets.matrix import EngineSpec, QuantizationSpec
from assets.models.gguf import GGUF_FILE, quantize_gguf
from assets.models.tiny import ensure_tiny_model
from resources.engines import EngineResource

TINY_MODEL_DIR = Path(".yardstick/models/tiny-r1-qwen2")
TINY_GGUF_DIR = TINY_MODEL_DIR.with_name(TINY_MODEL_DIR.name + "-gguf")


class TimingsKeepingClient(EventStreamClient):
    """The load generator's client, keeping the `timings` of each stream's last chunk that has them, by request
    body (the one object `timed_request` posts)."""

    def __init__(self, base_url: str):
        super().__init__(base_url)
        self.timings: dict[int, dict] = {}

    async def post_events(self, path: str, body: dict, headers: dict[str, str]) -> AsyncIterator[str]:
        async for data in super().post_events(path, body, headers):
            if '"timings"' in data:
                self.timings[id(body)] = json.loads(data)["timings"]
            yield data


@dataclass(frozen=True)
class Measured:
    """One request on both clocks."""

    client: RequestTiming
    engine: dict   # llama-server's `timings`


async def measure_level(endpoint: Endpoint, load: Load) -> list[Measured]:
    """The level's requests in a closed loop of `load.concurrency`, warm-up first and not kept."""
    prompts = level_prompts(load)
    bodies = [request_body(endpoint, prompt, load) for prompt in prompts]
    async with TimingsKeepingClient(endpoint.base_url) as client:
        for body in bodies[:load.warmup]:
            await timed_request(client, endpoint, body)
        await client.preconnect(load.concurrency)
        semaphore = asyncio.Semaphore(load.concurrency)

        async def bounded(body: dict) -> RequestTiming:
            async with semaphore:
                return await timed_request(client, endpoint, body)

        measured = bodies[load.warmup:]
        timings = await asyncio.gather(*(bounded(body) for body in measured))
        return [Measured(timing, client.timings[id(body)]) for body, timing in zip(measured, timings, strict=True)
                if timing.ok and id(body) in client.timings]


def _p50(values: list[float]) -> float | None:
    return distribution(values)["p50"]


# (what is compared, the client's figure, the engine's, what their difference is made of)
COMPARISONS = (
    ("TTFT vs prompt_ms", lambda m: m.client.ttft_ms, lambda m: m.engine["prompt_ms"],
     "HTTP in, the wait for a slot, the first chunk out"),
    ("TPOT vs predicted_per_token_ms", lambda m: m.client.tpot_ms, lambda m: m.engine["predicted_per_token_ms"],
     "the stream's end (last token, usage) on its way out less the first token's, over n - 1"),
    ("ITL p50 vs predicted_per_token_ms", None, lambda m: m.engine["predicted_per_token_ms"],
     "chunks reaching the client in bursts (gaps near 0, a few long ones)"),
    ("E2E vs prompt_ms + predicted_ms", lambda m: m.client.e2el_ms,
     lambda m: m.engine["prompt_ms"] + m.engine["predicted_ms"], "HTTP in, the wait for a slot, the last chunk out"),
)


def level_table(load: Load, parallel: int, measured: list[Measured]) -> str:
    """A markdown table of the level's medians, client against engine."""
    waits = "requests wait for a slot" if load.concurrency > parallel else "no request waits for a slot"
    lines = [f"### concurrency {load.concurrency}: {len(measured)} of {load.num_requests} requests on both clocks, "
             f"{parallel} slots ({waits})", "",
             "| client vs engine (p50, ms) | client | engine | client - engine | client / engine | the gap is |",
             "|---|---|---|---|---|---|"]
    for name, client_of, engine_of, gap in COMPARISONS:
        engine = [engine_of(m) for m in measured]
        if client_of is None:   # ITL is pooled over the level's tokens, not one figure per request
            client = [gap_ms for m in measured for gap_ms in m.client.itl_ms]
            differences = []
        else:
            pairs = [(client_of(m), engine_of(m)) for m in measured if client_of(m) is not None]
            client = [c for c, _ in pairs]
            differences = [c - e for c, e in pairs]
        client_p50, engine_p50 = _p50(client), _p50(engine)
        ratio = client_p50 / engine_p50 if client_p50 is not None and engine_p50 else None
        cells = [name, _cell(client_p50), _cell(engine_p50), _cell(_p50(differences)), _cell(ratio, 3), gap]
        lines.append("| " + " | ".join(cells) + " |")
    mismatched = sum(m.client.output_tokens != m.engine["predicted_n"] for m in measured)
    lines += ["", f"token counts that differ (client usage vs engine predicted_n): {mismatched}"]
    return "\n".join(lines)


def _cell(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def tiny_gguf() -> Path:
    """The tiny model as a GGUF file, made by the quantization stage's own code the first time."""
    if not (TINY_GGUF_DIR / GGUF_FILE).exists():
        quantize_gguf(ensure_tiny_model(TINY_MODEL_DIR).resolve(), TINY_GGUF_DIR.resolve(), QuantizationSpec())
    return TINY_GGUF_DIR / GGUF_FILE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("gguf", nargs="?", type=Path, help="the GGUF file to serve (default: the tiny model's)")
    parser.add_argument("--concurrency", type=lambda text: [int(c) for c in text.split(",")], default=[1, 4, 16],
                        help="closed-loop levels, comma-separated")
    parser.add_argument("--requests", type=int, default=48, help="measured requests per level")
    parser.add_argument("--input-len", type=int, default=64, help="prompt words (about a token each)")
    parser.add_argument("--output-len", type=int, default=64, help="tokens out, exactly")
    parser.add_argument("--parallel", type=int, default=4, help="llama-server's slots")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda with a CUDA build")
    parser.add_argument("--threads", type=int, help="llama-server's CPU threads (default: the engine resource's, "
                        "as the pipeline runs it)")
    args = parser.parse_args()
    gguf = (args.gguf or tiny_gguf()).resolve()
    folder = Path(tempfile.mkdtemp(prefix="llamacpp-timings-"))
    engine = EngineResource(log_dir=str(folder), **({"cpu_threads": args.threads} if args.threads else {}))
    spec = EngineSpec("llamacpp", {"device": args.device, "parallel": args.parallel,
                                   "max_model_len": 2 * args.input_len + args.output_len + 64})
    with engine.deploy(spec, str(gguf), "timed", "llamacpp-timings") as deployment:
        print(f"{gguf} on {deployment.engine_version}; {args.input_len} words in, {args.output_len} tokens out\n",
              flush=True)
        endpoint = Endpoint(deployment.base_url, deployment.served_model)
        for concurrency in args.concurrency:
            load = Load(concurrency=concurrency, num_requests=args.requests, input_len=args.input_len,
                        output_len=args.output_len, exact_output_len=True, seed=concurrency)
            print(level_table(load, args.parallel, asyncio.run(measure_level(endpoint, load))) + "\n", flush=True)
    print(f"llama-server's log: {folder}")


if __name__ == "__main__":
    main()
