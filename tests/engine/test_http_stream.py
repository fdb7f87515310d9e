"""The load generator's HTTP client (assets/engine/http_stream.py): keep-alive connections are reused only while a
server would still keep them open."""

import asyncio
import time

import pytest

from assets.engine import http_stream
from assets.engine.http_stream import EventStreamClient

pytestmark = pytest.mark.unit

REPLY = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"f\r\ndata: {\"a\":1}\n\n\r\n0\r\n\r\n")


async def serve_closing_idle_connections(idle_timeout_s: float, answered: list[int]):
    """A server that answers each request with one event and, like cpp-httplib and uvicorn, drops a keep-alive
    connection that was idle for `idle_timeout_s`: here at the worst moment, when the next request arrives on it (a
    real server's timer fires on its own, and a request sent just then meets the same fate)."""
    connections = iter(range(1000))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection, idle_since = next(connections), None
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                writer.close()
                return
            if idle_since is not None and time.monotonic() - idle_since > idle_timeout_s:
                writer.close()
                return
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            await reader.readexactly(length)
            answered.append(connection)
            writer.write(REPLY)
            await writer.drain()
            idle_since = time.monotonic()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_a_connection_idle_past_the_reuse_limit_is_not_used_again(monkeypatch):
    """Sent on a connection the server is closing, a request would fail unanswered: after the limit a new one is
    opened; within it the same connection serves again."""
    monkeypatch.setattr(http_stream, "IDLE_REUSE_S", 0.2)

    async def scenario() -> list[int]:
        answered: list[int] = []
        server = await serve_closing_idle_connections(0.3, answered)
        port = server.sockets[0].getsockname()[1]
        async with server, EventStreamClient(f"http://127.0.0.1:{port}/v1") as client:
            for pause in (0.0, 0.05, 0.35, 0.05):
                await asyncio.sleep(pause)
                events = [event async for event in client.post_events("/chat", {}, {})]
                assert events == ['{"a":1}']
        return answered

    answered = asyncio.run(scenario())
    assert len(answered) == 4
    assert answered[0] == answered[1] and answered[1] != answered[2] and answered[2] == answered[3]


async def serve_once_per_connection(answered: list[int], answer: bool = True):
    """A server that answers one request per connection (or none) and closes the connection without a word when
    the next request comes on it, as llama.cpp's server now and then does after a streamed reply."""
    connections = iter(range(1000))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = next(connections)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        await reader.readexactly(length)
        if answer:
            answered.append(connection)
            writer.write(REPLY)
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")   # the next request on this connection: dropped unanswered
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_a_kept_alive_connection_closed_before_answering_is_retried_once_on_a_new_one():
    async def scenario(answer: bool) -> tuple[list[list[str]], list[int], str | None]:
        answered: list[int] = []
        results, failure = [], None
        server = await serve_once_per_connection(answered, answer)
        port = server.sockets[0].getsockname()[1]
        async with server, EventStreamClient(f"http://127.0.0.1:{port}/v1") as client:
            try:
                for _ in range(3):
                    results.append([event async for event in client.post_events("/chat", {}, {})])
            except ConnectionError as error:
                failure = str(error)
        return results, answered, failure

    results, answered, failure = asyncio.run(scenario(answer=True))
    assert failure is None and results == [['{"a":1}']] * 3 and answered == [0, 1, 2]
    results, answered, failure = asyncio.run(scenario(answer=False))   # a new connection's failure is not retried
    assert results == [] and answered == [] and "closed the connection before answering" in failure
