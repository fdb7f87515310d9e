"""A reference OpenAI-compatible server with known timing: the ruler the load generator is checked against.

Each request waits for one of `slots` slots (queueing counts towards its TTFT, as in a real engine), then
sleeps `ttft_ms` before its first token and `tpot_ms` before each later one, and streams exactly
`max_tokens` tokens: the first alone, the rest `tokens_per_chunk` to a chunk, each chunk sent when its last token
is due (with usage on every chunk when the request asks for vLLM's `continuous_usage_stats`). Its capacity is
therefore known: slots / (ttft + (max_tokens - 1) * tpot) requests per
second. It is a test instrument, not an engine.

`GET /stats` reports what the server itself saw, so that a client can be judged against the capacity the server
really had rather than its nominal one (on a loaded machine the server's own event loop takes a few
milliseconds to hand a freed slot to the next waiting request):

- `completed`, `window_s` (first request in to last reply out), and so `delivered_rps`;
- `mean_service_s`: how long a request held its slot;
- `starved_fraction`: the share of slot-time, from the first request's arrival to the last one's, in which a
  slot was free and no request was waiting for it, i.e. the server waited on its client.

`POST /stats/reset` starts the counts afresh (between load levels).

    python -m tests.instruments.reference_server --port 8000 --ttft-ms 100 --tpot-ms 10 --slots 32

From Python (the tests and the measure scripts), `running_reference_server(...)` starts it as a process and
yields its OpenAI base URL; `served_stats(base_url)` reads its `/stats`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

MODEL = "reference"


class ReferenceServer:
    def __init__(self, ttft_ms: float, tpot_ms: float, slots: int, model: str = MODEL, tokens_per_chunk: int = 1):
        self.model = model
        self.tokens_per_chunk = max(1, tokens_per_chunk)
        self.ttft_s = ttft_ms / 1000
        self.tpot_s = tpot_ms / 1000
        self.slot_count = slots
        self.slots = asyncio.Semaphore(slots)
        self.waiting = self.holding = 0
        self.reset()

    def reset(self) -> None:
        self.completed = 0
        self.service_s = self.starved_slot_s = self.starved_by_last_arrival = 0.0
        self.first_arrival = self.last_arrival = self.last_reply = self.last_event = None

    def _tick(self) -> float:
        """Account the time since the last event: free slots with nobody waiting are starved slot-time."""
        now = time.monotonic()
        if self.last_event is not None and self.waiting == 0:
            self.starved_slot_s += (self.slot_count - self.holding) * (now - self.last_event)
        self.last_event = now
        return now

    def stats(self) -> dict:
        if not self.completed:
            return {"slots": self.slot_count, "completed": 0}
        window = self.last_reply - self.first_arrival
        arrivals = self.last_arrival - self.first_arrival
        return {"slots": self.slot_count, "completed": self.completed, "window_s": window,
                "delivered_rps": self.completed / window, "mean_service_s": self.service_s / self.completed,
                "starved_fraction": (self.starved_by_last_arrival / (self.slot_count * arrivals)
                                     if arrivals > 0 else 0.0)}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        path = scope["path"]
        if path == "/health":
            await _respond(send, 200, b"{}")
        elif path == "/stats/reset" and scope["method"] == "POST":
            self.reset()
            await _respond(send, 200, b"{}")
        elif path == "/stats":
            await _respond(send, 200, json.dumps(self.stats()).encode())
        elif path == "/v1/models":
            models = {"object": "list", "data": [{"id": self.model, "object": "model"}]}
            await _respond(send, 200, json.dumps(models).encode())
        elif path == "/v1/chat/completions" and scope["method"] == "POST":
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            await self._complete(json.loads(body), send)
        else:
            await _respond(send, 404, b'{"error": "not found"}')

    async def _complete(self, request: dict, send) -> None:
        tokens = max(1, int(request.get("max_tokens") or request.get("max_completion_tokens") or 16))
        prompt_tokens = sum(len(_text(m.get("content")).split()) for m in request.get("messages", []))
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": tokens, "total_tokens": prompt_tokens + tokens}
        arrived = self._tick()
        self.first_arrival = self.first_arrival or arrived
        self.last_arrival = arrived
        self.starved_by_last_arrival = self.starved_slot_s  # after the last arrival, idle slots are the drain
        self.waiting += 1
        async with self.slots:
            held = self._tick()
            self.waiting -= 1
            self.holding += 1
            try:
                await self._serve(request, tokens, usage, send)
            finally:
                self.last_reply = self._tick()
                self.holding -= 1
            self.service_s += self.last_reply - held
            self.completed += 1

    async def _serve(self, request: dict, tokens: int, usage: dict, send) -> None:
        if not request.get("stream"):
            await asyncio.sleep(self.ttft_s + (tokens - 1) * self.tpot_s)
            body = {"id": "ref", "object": "chat.completion", "model": self.model, "usage": usage,
                    "choices": [{"index": 0, "finish_reason": "length",
                                 "message": {"role": "assistant", "content": " tok" * tokens}}]}
            await _respond(send, 200, json.dumps(body).encode())
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        started = time.monotonic()
        per_chunk_usage = bool((request.get("stream_options") or {}).get("continuous_usage_stats"))
        sent = 0
        for index in range(tokens):
            if index and index % self.tokens_per_chunk and index < tokens - 1:
                continue   # this token goes out with the chunk's last one
            # Sleep to an absolute schedule so timer jitter does not accumulate over a long reply.
            due = started + self.ttft_s + index * self.tpot_s
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            chunk = {"id": "ref", "object": "chat.completion.chunk", "model": self.model,
                     "choices": [{"index": 0, "delta": {"content": " tok" * (index + 1 - sent)},
                                  "finish_reason": None}]}
            sent = index + 1
            if per_chunk_usage:
                chunk["usage"] = {**usage, "completion_tokens": sent, "total_tokens": usage["prompt_tokens"] + sent}
            await send({"type": "http.response.body", "body": f"data: {json.dumps(chunk)}\n\n".encode(),
                        "more_body": True})
        final = {"id": "ref", "object": "chat.completion.chunk", "model": self.model, "usage": usage,
                 "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
        await send({"type": "http.response.body",
                    "body": f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n".encode(), "more_body": False})


def _text(content: object) -> str:
    """A message's text: a string, or OpenAI's list of content parts."""
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


async def _respond(send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def running_reference_server(ttft_ms: float, tpot_ms: float, slots: int,
                             tokens_per_chunk: int = 1) -> Iterator[str]:
    """The reference server as a process of its own (its own event loop, as a real engine has); yields
    its OpenAI base URL once /health answers, and stops the process on exit."""
    # Here, so that the server process itself starts without Dagster.
    from resources.launchers.readiness import free_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.instruments.reference_server", "--port", str(port), "--ttft-ms", str(ttft_ms),
         "--tpot-ms", str(tpot_ms), "--slots", str(slots), "--tokens-per-chunk", str(tokens_per_chunk)],
        cwd=Path(__file__).resolve().parents[2], start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"the reference server on port {port} did not answer /health within 10 s")
        yield f"{base}/v1"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def served_stats(base_url: str) -> dict:
    """What the reference server itself saw (its GET /stats), given the base URL `running_reference_server`
    yielded."""
    return httpx.get(base_url.removesuffix("/v1") + "/stats", timeout=5).json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--ttft-ms", type=float, default=100.0)
    parser.add_argument("--tpot-ms", type=float, default=10.0)
    parser.add_argument("--slots", type=int, default=32)
    parser.add_argument("--tokens-per-chunk", type=int, default=1)
    args = parser.parse_args()
    app = ReferenceServer(args.ttft_ms, args.tpot_ms, args.slots, tokens_per_chunk=args.tokens_per_chunk)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", loop="uvloop", http="httptools",
                backlog=4096, limit_concurrency=10000)


if __name__ == "__main__":
    main()
