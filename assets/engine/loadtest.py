"""A closed-loop load test over the OpenAI streaming API: TTFT, TPOT, end-to-end latency and throughput per
concurrency level, with vLLM's definitions (TTFT counts the first token of content or reasoning)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np
import openai

SYNTHETIC_WORDS = ("the", "answer", "number", "sum", "of", "each", "value", "step", "so", "then")


@dataclass(frozen=True)
class RequestTiming:
    ok: bool
    error: str | None
    prompt_tokens: int | None
    output_tokens: int | None
    ttft_ms: float | None
    e2el_ms: float | None

    @property
    def tpot_ms(self) -> float | None:
        if not self.ok or not self.output_tokens or self.output_tokens < 2 or self.ttft_ms is None:
            return None
        return (self.e2el_ms - self.ttft_ms) / (self.output_tokens - 1)


def synthetic_prompt(approx_tokens: int) -> str:
    """A prompt of roughly `approx_tokens` tokens (one short word is about one token)."""
    return " ".join(SYNTHETIC_WORDS[i % len(SYNTHETIC_WORDS)] for i in range(max(1, approx_tokens)))


async def timed_request(client: openai.AsyncOpenAI, model: str, prompt: str, max_tokens: int,
                        sampling: dict) -> RequestTiming:
    started = time.perf_counter()
    first_token: float | None = None
    chunks = 0
    usage = None
    try:
        stream = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens, stream=True,
            stream_options={"include_usage": True}, **sampling,
        )
        async for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                delta = choice.delta
                extra = getattr(delta, "model_extra", None) or {}
                if delta.content or extra.get("reasoning_content") or extra.get("reasoning"):
                    chunks += 1
                    if first_token is None:
                        first_token = time.perf_counter()
    except openai.APIError as error:
        return RequestTiming(False, str(error)[:500], None, None, None, None)
    ended = time.perf_counter()
    if first_token is None:
        return RequestTiming(False, "no tokens streamed", None, None, None, (ended - started) * 1000)
    return RequestTiming(
        ok=True, error=None,
        prompt_tokens=usage.prompt_tokens if usage else None,
        output_tokens=usage.completion_tokens if usage else chunks,
        ttft_ms=(first_token - started) * 1000, e2el_ms=(ended - started) * 1000,
    )


async def run_level(client: openai.AsyncOpenAI, model: str, concurrency: int, num_requests: int,
                    input_len: int, output_len: int, sampling: dict, warmup: int = 1
                    ) -> tuple[list[RequestTiming], float]:
    """`num_requests` requests, `concurrency` in flight at a time, after `warmup` unmeasured ones."""
    prompt = synthetic_prompt(input_len)
    for _ in range(warmup):
        await timed_request(client, model, prompt, output_len, sampling)
    semaphore = asyncio.Semaphore(concurrency)

    async def bounded() -> RequestTiming:
        async with semaphore:
            return await timed_request(client, model, prompt, output_len, sampling)

    started = time.perf_counter()
    timings = await asyncio.gather(*(bounded() for _ in range(num_requests)))
    return list(timings), time.perf_counter() - started


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def summarise_level(concurrency: int, timings: list[RequestTiming], duration_s: float) -> dict:
    done = [t for t in timings if t.ok]
    ttft = [t.ttft_ms for t in done]
    tpot = [t.tpot_ms for t in done if t.tpot_ms is not None]
    e2el = [t.e2el_ms for t in done]
    output_tokens = sum(t.output_tokens or 0 for t in done)
    return {
        "concurrency": concurrency,
        "completed": len(done),
        "failed": len(timings) - len(done),
        "duration_s": duration_s,
        "request_throughput": len(done) / duration_s if duration_s else 0.0,
        "output_throughput": output_tokens / duration_s if duration_s else 0.0,
        "ttft_ms_p50": _percentile(ttft, 50), "ttft_ms_p99": _percentile(ttft, 99),
        "tpot_ms_p50": _percentile(tpot, 50), "tpot_ms_p99": _percentile(tpot, 99),
        "e2el_ms_p50": _percentile(e2el, 50), "e2el_ms_p99": _percentile(e2el, 99),
    }
