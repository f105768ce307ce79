"""The lean HTTP/1.1 client against the fake HTTP server (a real socket on loopback)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest

from services.web import http1
from tests.fakes.http import FakeHTTPServer, Request, Writer

SEEN: list[tuple[str, int]] = []


async def handler(request: Request, writer: Writer) -> None:
    SEEN.append((request.path, id(writer._writer)))
    if request.path == "/v1/whole":
        await writer.respond(200, b'{"ok": true}', {"content-type": "application/json"})
    elif request.path == "/v1/chunked":
        await writer.start(200, {"content-type": "text/event-stream"})
        for part in (b"data: 1\n\n", b"data: 2\n\n", b"data: 3\n\n"):
            await writer.write(part)
        await writer.end()
    elif request.path == "/v1/close-after":
        await writer.respond(200, b"bye", {"connection": "close"})
        writer.abort()
    elif request.path == "/v1/echo":
        echoed = f"{request.headers.get('x-a')}|{request.headers.get('x-b')}|{request.body!r}"
        await writer.respond(200, echoed.encode(), {})
    elif request.path == "/v1/reset":
        writer.abort()
    elif request.path == "/v1/garbage":
        writer._writer.write(b"this is not http\r\n\r\n")
        await writer._writer.drain()
        writer.abort()


@pytest.fixture
def server() -> Iterator[FakeHTTPServer]:
    SEEN.clear()
    fake = FakeHTTPServer(handler).start()
    yield fake
    fake.stop()


def test_reuses_a_kept_alive_connection(server: FakeHTTPServer) -> None:
    async def scenario() -> list[bytes]:
        pool = http1.ConnectionPool(server.url + "/v1")
        bodies = []
        for _ in range(3):
            response = await pool.request("GET", "/whole", {})
            assert response.status == 200 and response.headers["content-type"] == "application/json"
            bodies.append(await response.read())
        await pool.aclose()
        return bodies

    assert asyncio.run(scenario()) == [b'{"ok": true}'] * 3
    assert len({connection for _, connection in SEEN}) == 1


def test_headers_go_as_given_or_pre_encoded(server: FakeHTTPServer) -> None:
    async def scenario() -> list[bytes]:
        pool = http1.ConnectionPool(server.url + "/v1")
        answers = []
        for headers in ({"x-a": "1", "x-b": "2"}, http1.encode_headers({"x-a": "3"}), {}, b""):
            response = await pool.request("POST", "/echo", headers, b"hi")
            answers.append(await response.read())
        await pool.aclose()
        return answers

    bare = b"None|None|b'hi'"
    assert asyncio.run(scenario()) == [b"1|2|b'hi'", b"3|None|b'hi'", bare, bare]


def test_streams_chunks_as_they_arrive(server: FakeHTTPServer) -> None:
    async def scenario() -> list[bytes]:
        pool = http1.ConnectionPool(server.url + "/v1")
        response = await pool.request("POST", "/chunked", {}, b"{}")
        return [chunk async for chunk in response.chunks()]

    assert b"".join(asyncio.run(scenario())) == b"data: 1\n\ndata: 2\n\ndata: 3\n\n"


def test_a_connection_the_server_closed_is_not_reused(server: FakeHTTPServer) -> None:
    async def scenario() -> bytes:
        pool = http1.ConnectionPool(server.url + "/v1")
        first = await pool.request("GET", "/close-after", {})
        assert await first.read() == b"bye"
        await asyncio.sleep(0.05)
        second = await pool.request("GET", "/whole", {})
        return await second.read()

    assert asyncio.run(scenario()) == b'{"ok": true}'


@pytest.mark.parametrize(
    ("path", "error"), [("/reset", http1.ConnectionLost), ("/garbage", http1.ProtocolError)]
)
def test_failures_are_typed(server: FakeHTTPServer, path: str, error: type[Exception]) -> None:
    async def scenario() -> None:
        pool = http1.ConnectionPool(server.url + "/v1")
        response = await pool.request("GET", path, {})
        await response.read()

    with pytest.raises(error):
        asyncio.run(scenario())


def test_refused_connection_is_a_connect_error() -> None:
    from devstack.stack import free_port

    async def scenario() -> None:
        await http1.ConnectionPool(f"http://127.0.0.1:{free_port()}").request("GET", "/", {})

    with pytest.raises(http1.ConnectError):
        asyncio.run(scenario())


def test_a_request_cancelled_before_its_answer_closes_its_connection() -> None:
    """A timeout (or a caller that left) while the upstream works on the request: the
    upstream sees the connection close at once, and the pool keeps nothing of it."""

    async def scenario() -> tuple[bool, int]:
        closed = asyncio.Event()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            if await reader.read(1) == b"":  # EOF: the client closed the connection
                closed.set()
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pool = http1.ConnectionPool(f"http://127.0.0.1:{port}")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(pool.request("GET", "/slow", {}), 0.2)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closed.wait(), 2)
        await asyncio.sleep(0.05)
        left = len(pool._open) + len(pool._idle)
        await pool.aclose()
        server.close()
        return closed.is_set(), left

    assert asyncio.run(scenario()) == (True, 0)
