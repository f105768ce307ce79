"""services.web.asgi: routes served as plain ASGI (the worker's hot path) answer as Starlette's
would, errors included, and an event stream stops its source when the client leaves."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from services.errors import RateLimited
from services.web.asgi import (
    App,
    EventStream,
    Exchange,
    JSONBytesResponse,
    Plain,
    install_error_handlers,
    read_body,
)

seen: list[Exchange] = []


async def echo(exchange: Exchange) -> Response:
    seen.append(exchange)
    body = await read_body(exchange, 64)
    if body == b"limited":
        raise RateLimited("slow down", headers={"retry-after": "3"})
    if body == b"bug":
        raise RuntimeError("secret detail")
    return JSONBytesResponse({"body": body.decode(), "auth": exchange.headers.get("x-auth")})


async def ordinary(request: Request) -> Response:
    return PlainTextResponse("routed")


def app() -> App:
    built = App(
        routes=[
            Route("/plain", Plain(echo), methods=["POST"]),
            Route("/ordinary", ordinary, methods=["GET"]),
        ]
    )
    install_error_handlers(built)
    return built


@pytest.fixture
def client() -> TestClient:
    seen.clear()
    return TestClient(app(), raise_server_exceptions=False)


def test_a_plain_route_gets_its_headers_and_body(client: TestClient) -> None:
    response = client.post(
        "/plain", content=b"hello", headers=[("X-Auth", "first"), ("x-auth", "second")]
    )
    assert response.status_code == 200
    assert response.json() == {"body": "hello", "auth": "first"}  # as Headers.get gives
    assert isinstance(seen[0], Exchange)  # served directly, not through Starlette's Request


def test_other_methods_and_paths_still_go_through_the_router(client: TestClient) -> None:
    assert client.get("/ordinary").text == "routed"
    wrong = client.get("/plain")
    assert wrong.status_code == 405 and wrong.json()["error"]["type"] == "invalid_request_error"
    missing = client.post("/nowhere")
    assert (
        missing.status_code == 404 and "Unknown request URL" in missing.json()["error"]["message"]
    )
    assert seen == []


def test_errors_are_answered_in_the_openai_shape(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    limited = client.post("/plain", content=b"limited")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
    assert limited.json()["error"]["message"] == "slow down"
    bug = client.post("/plain", content=b"bug")
    assert bug.status_code == 500
    assert "secret" not in bug.text and bug.json()["error"]["type"] == "server_error"
    assert "unhandled error on POST /plain" in caplog.text


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_limit_is_413(client: TestClient, chunked: bool) -> None:
    payload = b"x" * 65
    content: Any = iter([payload[:40], payload[40:]]) if chunked else payload
    response = client.post("/plain", content=content)
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "invalid_request_error"


# -- EventStream ------------------------------------------------------------------------------


class Source:
    """Frames that come one at a time when `release` is set, recording how they ended."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.ended: str | None = None

    async def frames(self) -> AsyncIterator[bytes]:
        try:
            yield b"data: 1\n\n"
            await self.release.wait()
            yield b"data: 2\n\n"
            self.ended = "finished"
        except BaseException as exc:
            self.ended = type(exc).__name__
            raise


async def serve(stream: EventStream, disconnect_after_first: bool) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    first_sent = asyncio.Event()
    client_left = asyncio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await client_left.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message.get("body"):
            first_sent.set()

    scope = {"type": "http", "method": "POST", "path": "/", "headers": []}
    await receive()  # the endpoint read the request body before answering
    task = asyncio.create_task(stream(scope, receive, send))
    await first_sent.wait()
    if disconnect_after_first:
        client_left.set()
    await asyncio.wait_for(task, 5)  # returns, without an error, either way
    client_left.set()
    return sent


def test_an_event_stream_sends_each_frame_then_ends() -> None:
    source = Source()
    source.release.set()
    sent = asyncio.run(serve(EventStream(source.frames(), {"cache-control": "no-cache"}), False))
    start = sent[0]
    assert start["status"] == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in start["headers"]
    assert (b"cache-control", b"no-cache") in start["headers"]
    assert [m["body"] for m in sent[1:]] == [b"data: 1\n\n", b"data: 2\n\n", b""]
    assert sent[-1]["more_body"] is False and source.ended == "finished"


def test_a_client_that_leaves_stops_the_source_at_once() -> None:
    """The source is waiting for its next frame (an upstream that is thinking) when the
    client disconnects: it is cancelled there, not left to run to the end."""
    source = Source()
    sent = asyncio.run(serve(EventStream(source.frames(), {}), True))
    assert source.ended == "CancelledError"
    assert [m.get("body") for m in sent[1:]] == [b"data: 1\n\n"]


def test_a_cancelled_server_task_is_not_swallowed() -> None:
    """Cancellation from elsewhere (the server shutting down) still propagates."""
    source = Source()

    async def main() -> None:
        async def receive() -> dict[str, Any]:
            await asyncio.Event().wait()
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            return None

        scope = {"type": "http", "method": "POST", "path": "/", "headers": []}
        task = asyncio.create_task(EventStream(source.frames(), {})(scope, receive, send))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert source.ended == "CancelledError"


class Gauge:
    def __init__(self) -> None:
        self.open = 0
        self.seen: list[int] = []

    def opened(self) -> None:
        self.open += 1
        self.seen.append(self.open)

    def closed(self) -> None:
        self.open -= 1
        self.seen.append(self.open)


def test_a_silent_stream_sends_heartbeats_and_never_more_often() -> None:
    """Nothing for 0.35 s between two frames, heartbeat 0.1 s: comment lines fill the gap,
    and frames that come often enough get none between them."""
    gaps = [0.35, 0.02, 0.02, 0.02, 0.02]

    async def frames() -> AsyncIterator[bytes]:
        yield b"data: 0\n\n"
        for i, gap in enumerate(gaps, 1):
            await asyncio.sleep(gap)
            yield b"data: %d\n\n" % i

    gauge = Gauge()

    async def main() -> list[tuple[float, bytes]]:
        loop = asyncio.get_running_loop()
        stamped: list[tuple[float, bytes]] = []
        stream = EventStream(frames(), {}, heartbeat=0.1, gauge=gauge)

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                stamped.append((loop.time(), message["body"]))

        async def receive() -> dict[str, Any]:
            await asyncio.Event().wait()
            raise AssertionError

        await stream({"type": "http", "method": "GET", "path": "/", "headers": []}, receive, send)
        return stamped

    stamped = asyncio.run(main())
    bodies = [b for _, b in stamped]
    assert [b for b in bodies if b.startswith(b"data")] == [b"data: %d\n\n" % i for i in range(6)]
    beats = bodies[1 : bodies.index(b"data: 1\n\n")]
    assert beats and set(beats) == {b": keep-alive\n\n"} and 2 <= len(beats) <= 3
    assert b": keep-alive\n\n" not in bodies[bodies.index(b"data: 1\n\n") :]
    times = [t for t, _ in stamped]
    assert max(b - a for a, b in itertools.pairwise(times)) < 0.16  # never silent long
    assert gauge.seen == [1, 0]


def test_a_stream_without_heartbeats_sends_only_its_frames() -> None:
    source = Source()
    source.release.set()
    gauge = Gauge()
    sent = asyncio.run(serve(EventStream(source.frames(), {}, gauge=gauge), False))
    assert [m["body"] for m in sent[1:]] == [b"data: 1\n\n", b"data: 2\n\n", b""]
    assert gauge.seen == [1, 0]


def test_an_exchange_reads_a_body_sent_in_parts() -> None:
    parts = [
        {"type": "http.request", "body": b'{"a":', "more_body": True},
        {"type": "http.request", "body": b"1}", "more_body": False},
    ]

    async def receive() -> dict[str, Any]:
        return parts.pop(0)

    exchange = Exchange({"headers": [(b"Content-Type", b"application/json")]}, receive)
    assert exchange.headers == {"content-type": "application/json"}
    assert orjson.loads(asyncio.run(read_body(exchange, 100))) == {"a": 1}
