"""A fault-injecting HTTP proxy: the instrument the retry logic is measured against. It stands in front of a real
engine and forwards each request to it, except a configurable share of the requests to the generation
endpoints (`/v1/chat/completions`, `/v1/completions`), which it answers with a fault instead:

- `429`: Too Many Requests, with `Retry-After` (seconds) as configured;
- `500`, `503`: a server error with a JSON error body;
- `drop`: the connection is closed without a reply;
- `stall`: nothing is sent for `stall_s` seconds, then the connection is closed.

A faulted request never reaches the engine, so every fault costs its client exactly one retry. What it did is
counted at `GET /proxy/stats` (`forwarded`, `injected` by kind); health and model-list requests always pass.
One request per connection (`Connection: close` both ways) keeps the forwarding a plain byte pipe, streaming
replies included. It is a test instrument, not part of yardstick.

    with running_fault_proxy("http://127.0.0.1:8000", share=0.1, seed=7) as proxy:
        ...  # point the client at proxy.base_url ("http://127.0.0.1:PORT/v1")
        proxy.stats()
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

FAULTS = ("429", "500", "503", "drop", "stall")
FAULTED_PATHS = ("/v1/chat/completions", "/v1/completions")
_REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable", 200: "OK"}


@dataclass
class FaultPlan:
    share: float                         # of generation requests, answered with a fault
    kinds: tuple[str, ...] = FAULTS      # drawn uniformly
    stall_s: float = 30.0
    retry_after_s: float | None = 0      # the 429's Retry-After; None sends none
    seed: int = 0
    clean_first: int = 0                 # generation requests passed through before any fault
    forwarded: int = 0
    injected: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(FAULTS)
        if unknown or not 0 <= self.share <= 1:
            raise ValueError(f"faults are {FAULTS} and the share is in [0, 1]; got {self.kinds}, {self.share}")
        self._rng = random.Random(self.seed)

    def draw(self, path: str) -> str | None:
        if path.split("?")[0] not in FAULTED_PATHS:
            return None
        if self.clean_first > 0:
            self.clean_first -= 1
            return None
        if self._rng.random() >= self.share:
            return None
        kind = self._rng.choice(self.kinds)
        self.injected[kind] = self.injected.get(kind, 0) + 1
        return kind

    def stats(self) -> dict:
        return {"forwarded": self.forwarded, "injected": dict(self.injected),
                "injected_total": sum(self.injected.values())}


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, list[tuple[str, str]], bytes] | None:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    request_line, headers = lines[0], []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    length = next((int(value) for name, value in headers if name.lower() == "content-length"), 0)
    body = await reader.readexactly(length) if length else b""
    return request_line, headers, body


def _response(status: int, body: dict, extra: dict[str, str] | None = None) -> bytes:
    payload = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Content-Length": str(len(payload)), "Connection": "close",
               **(extra or {})}
    head = f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    return head.encode("latin-1") + payload


class _Proxy:
    def __init__(self, upstream: str, plan: FaultPlan) -> None:
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname, parts.port or 80
        self.plan = plan

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await _read_request(reader)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            writer.close()
            return
        request_line, headers, body = request
        method, path, _ = request_line.split(" ", 2)
        try:
            if path == "/proxy/stats":
                writer.write(_response(200, self.plan.stats()))
                await writer.drain()
                return
            fault = self.plan.draw(path) if method == "POST" else None
            if fault is None:
                self.plan.forwarded += 1
                await self._forward(request_line, headers, body, writer)
            elif fault == "drop":
                writer.transport.abort()
            elif fault == "stall":
                await asyncio.sleep(self.plan.stall_s)
                writer.transport.abort()
            else:
                status = int(fault)
                extra = ({"Retry-After": f"{self.plan.retry_after_s:g}"}
                         if status == 429 and self.plan.retry_after_s is not None else {})
                writer.write(_response(status, {"error": {"message": f"injected {status}", "type": "fault_proxy",
                                                          "code": status}}, extra))
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if not writer.is_closing():
                writer.close()

    async def _forward(self, request_line: str, headers: list[tuple[str, str]], body: bytes,
                       writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        kept = [(name, value) for name, value in headers if name.lower() not in ("connection", "keep-alive")]
        head = request_line + "\r\n" + "".join(f"{name}: {value}\r\n" for name, value in kept)
        up_writer.write((head + "Connection: close\r\n\r\n").encode("latin-1") + body)
        await up_writer.drain()
        try:
            while chunk := await up_reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        finally:
            up_writer.close()


@dataclass
class RunningProxy:
    base_url: str   # the OpenAI base URL through the proxy
    plan: FaultPlan

    def stats(self) -> dict:
        return self.plan.stats()


@contextmanager
def running_fault_proxy(upstream: str, share: float, kinds: tuple[str, ...] = FAULTS, stall_s: float = 30.0,
                        retry_after_s: float | None = 0, seed: int = 0,
                        clean_first: int = 0) -> Iterator[RunningProxy]:
    """Serve the proxy on a free local port from a thread of its own for the life of the block. `upstream` is the
    engine's root URL (`http://host:port`, a trailing `/v1` is ignored)."""
    upstream = upstream.removesuffix("/").removesuffix("/v1")
    plan = FaultPlan(share, kinds, stall_s, retry_after_s, seed, clean_first)
    proxy = _Proxy(upstream, plan)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict = {}

    async def serve() -> None:
        holder["stop"] = asyncio.Event()
        server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
        holder["port"] = server.sockets[0].getsockname()[1]
        started.set()
        await holder["stop"].wait()
        server.close()
        # Requests still open (a stall, a reply being streamed) are cancelled and awaited, so none outlives the loop.
        # A connection accepted just before the close starts its handler a moment later: repeat until none is left.
        await asyncio.sleep(0)
        while others := [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]:
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            await asyncio.sleep(0)

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the fault proxy did not start")
    try:
        yield RunningProxy(f"http://127.0.0.1:{holder['port']}/v1", plan)
    finally:
        loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(30)
        loop.close()
