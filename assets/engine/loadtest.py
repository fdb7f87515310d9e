"""A load generator for any OpenAI-compatible endpoint, with vLLM's definitions.

- TTFT: time to the first streamed token, content or reasoning (reasoning models stream reasoning first).
- TPOT: (E2E - TTFT) / (output tokens - 1), per request.
- ITL: the gaps between streamed chunks, pooled over all requests and token-weighted: a chunk that brings k
  tokens after a gap g adds k gaps of g/k, so each token counts once. The tokens per chunk are known when the
  engine reports usage on every chunk (vLLM's `continuous_usage_stats`, asked for with `per_chunk_usage`);
  otherwise a chunk counts as one token.
- E2E latency; request, output-token and total-token throughput; goodput: requests per second that met
  every SLO.

Profiles: a closed loop at fixed concurrency, or open-loop Poisson arrivals at a request rate. Warm-up
requests are sent first and not measured, and a closed loop opens its connections before its clock starts
(accepting 256 at once cost the reference server about 150 ms, 1% of a 16 s level). Streams are read by a
small keep-alive HTTP client of our own (`http_stream`): httpx's per-request CPU serialised bursts of
request starts and read as TTFT (measured with tests/measure/loadgen_fidelity.py).
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager, nullcontext
from dataclasses import dataclass, field

import numpy as np

from assets.engine.http_stream import EventStreamClient, HTTPStatusError

SYNTHETIC_WORDS = ("the", "answer", "number", "sum", "of", "each", "value", "step", "so", "then")
PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class Endpoint:
    base_url: str          # ends in /v1
    model: str
    api_key: str = "not-needed"


@dataclass(frozen=True)
class Load:
    """One load level: `concurrency` requests in flight (closed loop), or Poisson arrivals at `request_rate`."""

    num_requests: int
    input_len: int
    output_len: int
    concurrency: int | None = None
    request_rate: float | None = None
    warmup: int = 1
    sampling: dict = field(default_factory=dict)
    prompts: tuple[str, ...] = ()   # real prompts; empty means synthetic prompts of input_len tokens
    system_prompt: str | None = None  # sent before each prompt, as the evaluation's protocol sends it
    seed: int = 0
    exact_output_len: bool = False  # send ignore_eos/min_tokens (vLLM honours them; strict servers reject them)
    per_chunk_usage: bool = False   # ask for usage on every chunk (vLLM's continuous_usage_stats) to weight ITL

    def __post_init__(self) -> None:
        if (self.concurrency is None) == (self.request_rate is None):
            raise ValueError("a load level has either a concurrency or a request rate")


# Seeds of one sweep's levels: the sweep's own seed times this, plus the level's place in it.
LEVEL_SEEDS = 1_000


def load_levels(concurrency: Sequence[int], request_rates: Sequence[float], **common) -> list[Load]:
    """Closed-loop levels at each concurrency, then Poisson levels at each rate, all sharing `common` but their
    prompts: each level its own seed, so that no level sends a prompt an earlier one sent (an engine's prefix or
    prompt cache, such as llama.cpp's in RAM, would otherwise skip the prefill of every level after the first)."""
    seed = common.pop("seed", 0) * LEVEL_SEEDS
    levels = [{"concurrency": c} for c in concurrency] + [{"request_rate": r} for r in request_rates]
    return [Load(**level, **common, seed=seed + index) for index, level in enumerate(levels)]


def describe_load(load: Load) -> str:
    return f"concurrency {load.concurrency}" if load.concurrency else f"{load.request_rate} req/s"


@dataclass(frozen=True)
class Slo:
    ttft_ms: float = 2000.0
    tpot_ms: float = 100.0


@dataclass(frozen=True)
class RequestTiming:
    ok: bool
    error: str | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    ttft_ms: float | None = None
    e2el_ms: float | None = None
    itl_ms: tuple[float, ...] = ()  # token-weighted: one entry per token after the first chunk
    chunks: int = 0                 # streamed chunks that carried tokens

    @property
    def tpot_ms(self) -> float | None:
        if not self.ok or not self.output_tokens or self.output_tokens < 2 or self.ttft_ms is None:
            return None
        return (self.e2el_ms - self.ttft_ms) / (self.output_tokens - 1)


def synthetic_prompt(approx_tokens: int, seed: int = 0) -> str:
    """A prompt of roughly `approx_tokens` tokens (one short common word is one token in most vocabularies),
    its words drawn with `seed`: prompts with different seeds differ from their first word, so an engine's
    prefix cache cannot serve one request from another's."""
    rng = random.Random(seed)
    return " ".join(rng.choice(SYNTHETIC_WORDS) for _ in range(max(1, approx_tokens)))


def level_prompts(load: Load) -> list[str]:
    """One prompt per request, warm-up first: synthetic ones all different, or the real prompts in turn, each
    repeat numbered at its start so that no request is a cached copy of an earlier one."""
    total = load.warmup + load.num_requests
    if not load.prompts:
        return [synthetic_prompt(load.input_len, seed=load.seed * 1_000_003 + index) for index in range(total)]
    # Numbered on from where the levels before this one (seeds below it) stopped.
    first = load.seed * -(-total // len(load.prompts))
    rounds = [(first + index // len(load.prompts), load.prompts[index % len(load.prompts)]) for index in range(total)]
    return [prompt if turn == 0 else f"({turn}) {prompt}" for turn, prompt in rounds]


def request_body(endpoint: Endpoint, prompt: str, load: Load) -> dict:
    body = {
        "model": endpoint.model, "stream": True,
        "messages": ([{"role": "system", "content": load.system_prompt}] if load.system_prompt else [])
        + [{"role": "user", "content": prompt}],
        "stream_options": {"include_usage": True}, "max_tokens": load.output_len, **load.sampling,
    }
    if load.exact_output_len:
        body.update(min_tokens=load.output_len, ignore_eos=True)
    if load.per_chunk_usage:
        body["stream_options"] = {"include_usage": True, "continuous_usage_stats": True}
    return body


async def timed_request(client: EventStreamClient, endpoint: Endpoint, body: dict) -> RequestTiming:
    started = time.perf_counter()
    first = last = None
    gaps: list[float] = []
    chunks = counted = 0   # chunks with tokens; completion tokens accounted for so far
    usage = None
    try:
        async for data in client.post_events("/chat/completions", body,
                                             {"Authorization": f"Bearer {endpoint.api_key}"}):
            if data == "[DONE]":
                continue  # read on to the end of the stream so the connection can be reused
            event = json.loads(data)
            usage = event.get("usage") or usage
            if any(_carries_tokens(choice) for choice in event.get("choices") or []):
                now = time.perf_counter()
                so_far = (event.get("usage") or {}).get("completion_tokens")
                if not isinstance(so_far, int):   # no usage on this chunk: it counts as one token
                    so_far = counted + 1
                tokens, counted = max(1, so_far - counted), so_far
                if first is None:
                    first = now
                else:
                    gaps.extend([(now - last) * 1000 / tokens] * tokens)
                last = now
                chunks += 1
    except (OSError, asyncio.IncompleteReadError, HTTPStatusError, ValueError) as error:
        return RequestTiming(False, f"{type(error).__name__}: {error}"[:300])
    ended = time.perf_counter()
    if first is None:
        return RequestTiming(False, "no tokens streamed", e2el_ms=(ended - started) * 1000)
    return RequestTiming(
        ok=True,
        prompt_tokens=(usage or {}).get("prompt_tokens"),
        output_tokens=(usage or {}).get("completion_tokens") or chunks,
        ttft_ms=(first - started) * 1000, e2el_ms=(ended - started) * 1000, itl_ms=tuple(gaps), chunks=chunks,
    )


def _carries_tokens(choice: dict) -> bool:
    delta = choice.get("delta") or {}
    return bool(delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning"))


async def run_level(endpoint: Endpoint, load: Load,
                    watch: AbstractAsyncContextManager | None = None) -> tuple[list[RequestTiming], float]:
    """Send the warm-up, then the measured requests; returns their timings and the measured duration. `watch`
    is held around the measured requests only, the warm-up left out (engine_metrics.EngineMetricsWatch)."""
    rng = random.Random(load.seed)
    prompts = level_prompts(load)
    bodies = [request_body(endpoint, prompt, load) for prompt in prompts[load.warmup:]]
    async with EventStreamClient(endpoint.base_url) as client:
        for prompt in prompts[:load.warmup]:
            await timed_request(client, endpoint, request_body(endpoint, prompt, load))
        if load.concurrency is not None:
            await client.preconnect(load.concurrency)
        async with watch or nullcontext(), _objects_frozen():
            started = time.perf_counter()
            if load.concurrency is not None:
                semaphore = asyncio.Semaphore(load.concurrency)

                async def bounded(body: dict) -> RequestTiming:
                    async with semaphore:
                        return await timed_request(client, endpoint, body)

                timings = await asyncio.gather(*(bounded(body) for body in bodies))
            else:
                tasks = []
                for body in bodies:
                    tasks.append(asyncio.create_task(timed_request(client, endpoint, body)))
                    await asyncio.sleep(rng.expovariate(load.request_rate))
                timings = await asyncio.gather(*tasks)
            duration_s = time.perf_counter() - started
    return list(timings), duration_s


@asynccontextmanager
async def watching(*watches: AbstractAsyncContextManager) -> AsyncIterator[None]:
    """Several watches held as one (entered in order, left in reverse), for run_level's `watch`."""
    async with AsyncExitStack() as stack:
        for watch in watches:
            await stack.enter_async_context(watch)
        yield


@asynccontextmanager
async def _objects_frozen() -> AsyncIterator[None]:
    """Leaves the objects alive before a level out of the garbage collector's full passes during it: in a process
    that has loaded torch and Dagster a full pass over them pauses the client for a quarter of a second (measured),
    and a pause at a level's end is read as the server's slowness. Objects made during the level are collected as
    usual."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def distribution(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "std": None, **{f"p{q}": None for q in PERCENTILES}}
    array = np.asarray(values, dtype=float)
    return {"mean": float(array.mean()), "std": float(array.std()),
            **{f"p{q}": float(np.percentile(array, q)) for q in PERCENTILES}}


def summarise_level(load: Load, timings: Sequence[RequestTiming], duration_s: float, slo: Slo = Slo()) -> dict:
    done = [t for t in timings if t.ok]
    output_tokens = sum(t.output_tokens or 0 for t in done)
    prompt_tokens = sum(t.prompt_tokens or 0 for t in done)
    good = [t for t in done if t.ttft_ms <= slo.ttft_ms and (t.tpot_ms is None or t.tpot_ms <= slo.tpot_ms)]
    per_second = (lambda count: count / duration_s) if duration_s > 0 else (lambda count: 0.0)
    return {
        "concurrency": load.concurrency,
        "request_rate": load.request_rate,
        "completed": len(done),
        "failed": len(timings) - len(done),
        "duration_s": duration_s,
        "request_throughput": per_second(len(done)),
        "output_throughput": per_second(output_tokens),
        "total_token_throughput": per_second(output_tokens + prompt_tokens),
        "goodput": per_second(len(good)),
        "ttft_ms": distribution([t.ttft_ms for t in done]),
        "tpot_ms": distribution([t.tpot_ms for t in done if t.tpot_ms is not None]),
        "itl_ms": distribution([gap for t in done for gap in t.itl_ms]),
        "e2el_ms": distribution([t.e2el_ms for t in done]),
        "errors": sorted({t.error for t in timings if t.error})[:5],
    }


def flatten_level(level: dict) -> dict:
    """One warehouse row per level: ttft_ms_p99 and so on."""
    row = {key: value for key, value in level.items() if not isinstance(value, dict) and key != "errors"}
    for metric in ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms"):
        for stat, value in level[metric].items():
            row[f"{metric}_{stat}"] = value
    return row
