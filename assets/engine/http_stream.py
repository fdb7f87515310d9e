"""A small HTTP/1.1 client for one job: POST JSON and read the server-sent events that come back.

The load generator must not be what limits a benchmark. Building a request with httpx costs about a
millisecond of CPU; when hundreds of requests start together that serialises on the client and shows up as
TTFT (see tests/measure/loadgen_fidelity.py). This client writes pre-encoded bytes on pooled keep-alive
connections and parses only the SSE framing.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator
from typing import Self
from urllib.parse import urlsplit

# Servers close a keep-alive connection left idle for a few seconds (llama.cpp's cpp-httplib and uvicorn after 5):
# one idle for longer than this is not reused, or a request sent on it as the server closes it would fail unanswered.
IDLE_REUSE_S = 2.0


class HTTPStatusError(RuntimeError):
    def __init__(self, status: int, body: str):
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status


class EventStreamClient:
    """POSTs to paths under `base_url` and yields the `data:` payloads of the event stream."""

    def __init__(self, base_url: str):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"base URL must be http(s)://…, got {base_url!r}")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.tls = ssl.create_default_context() if parts.scheme == "https" else None
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []   # with when it went idle

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        while self._idle:
            _, writer, _ = self._idle.pop()
            writer.close()

    async def preconnect(self, count: int) -> int:
        """Open idle connections up to `count`, so that a measured load level does not pay for connection set-up
        (a server accepting 256 connections at once spends a noticeable fraction of a second on it). Failures are
        left for the requests to meet and report; returns the number of idle connections."""
        missing = count - len(self._idle)
        if missing > 0:
            opened = await asyncio.gather(*(self._open() for _ in range(missing)), return_exceptions=True)
            now = time.monotonic()
            self._idle.extend((*pair, now) for pair in opened if not isinstance(pair, BaseException))
        return len(self._idle)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        """An idle connection the server should still hold open (reused: True), else a new one."""
        while self._idle:
            reader, writer, since = self._idle.pop()
            if not writer.is_closing() and not reader.at_eof() and time.monotonic() - since < IDLE_REUSE_S:
                return reader, writer, True
            writer.close()
        return *await self._open(), False

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.host, self.port, ssl=self.tls, limit=2**20)

    async def _send(self, request: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int, dict[str, str]]:
        """Send the request and read the response's head. A kept-alive connection the server closed after its last
        response (llama.cpp's server does so now and then, at once) fails before any answer: the request is sent
        again once, on a new connection, as HTTP clients do; the server never saw it. A new connection's failure
        is the request's."""
        reader, writer, reused = await self._connect()
        try:
            writer.write(request)
            await writer.drain()
            return reader, writer, *await _read_head(reader)
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.close()
            if not reused:
                raise
        reader, writer = await self._open()
        try:
            writer.write(request)
            await writer.drain()
            return reader, writer, *await _read_head(reader)
        except BaseException:
            writer.close()
            raise

    async def post_events(self, path: str, body: dict, headers: dict[str, str]) -> AsyncIterator[str]:
        payload = json.dumps(body).encode()
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = (f"POST {self.prefix}{path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                   f"Content-Type: application/json\r\nAccept: text/event-stream\r\n"
                   f"Content-Length: {len(payload)}\r\n{head}\r\n").encode() + payload
        reader, writer, status, response_headers = await self._send(request)
        reusable = False
        try:
            if status != 200:
                body_text = b"".join([piece async for piece in _read_body(reader, response_headers)])
                raise HTTPStatusError(status, body_text.decode(errors="replace"))
            buffer = b""
            async for piece in _read_body(reader, response_headers):
                buffer += piece.replace(b"\r\n", b"\n")
                while b"\n\n" in buffer:
                    event, buffer = buffer.split(b"\n\n", 1)
                    for line in event.split(b"\n"):
                        if line.startswith(b"data:"):
                            yield line[5:].strip().decode()
            reusable = response_headers.get("connection", "").lower() != "close" and (
                "content-length" in response_headers or "chunked" in response_headers.get("transfer-encoding", ""))
        finally:
            if reusable:
                self._idle.append((reader, writer, time.monotonic()))
            else:
                writer.close()


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection before answering")
    status = int(status_line.split()[1])
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> AsyncIterator[bytes]:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                return
            yield await reader.readexactly(size)
            await reader.readexactly(2)
    elif "content-length" in headers:
        remaining = int(headers["content-length"])
        while remaining:
            piece = await reader.read(min(remaining, 65536))
            if not piece:
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining -= len(piece)
            yield piece
    else:
        while piece := await reader.read(65536):
            yield piece
