"""The stream front door's relay (lambdas/stream): what it forwards, what it relays back,
chunk timing, disconnects, upstream failures and timeouts, and its routing by the route
table. The door runs under uvicorn as deployed (uvloop, httptools) on loopback, in front
of a scripted upstream that speaks raw HTTP/1.1 on a real socket."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import sys
import threading
import time
import types
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest
import uvicorn

from lambdas.stream.app import create_app
from lambdas.stream.settings import StreamSettings, check_upstream
from services.config import ConfigError
from services.frontdoor.routes import ROUTES, Owner, routes_of

KEY = "sb-test-key"


@dataclass
class Seen:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)


Script = Callable[[Seen, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Upstream:
    """A raw HTTP/1.1 server in its own thread: each request is answered by `script`,
    which owns the connection (it may answer slowly, in chunks, reset, or wait for EOF)."""

    script: Script
    seen: list[Seen] = field(default_factory=list)
    events: list[tuple[str, float]] = field(default_factory=list)  # (what, when)
    port: int = 0

    def __post_init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Upstream:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(5)
        return self

    async def _start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=4096)
        self.port = self.server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def note(self, what: str) -> None:
        self.events.append((what, time.monotonic()))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.note("connection")
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = [
                    (k.strip().lower(), v.strip())
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                ]
                length = int(next((v for k, v in headers if k == "content-length"), "0"))
                body = await reader.readexactly(length) if length else b""
                seen = Seen(method, target, headers, body)
                self.seen.append(seen)
                await self.script(seen, reader, writer)
                if writer.is_closing():
                    return
        except ConnectionError:
            pass
        finally:
            writer.close()


def answer(status: int, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"content-length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"


@contextmanager
def upstream(script: Script) -> Iterator[Upstream]:
    server = Upstream(script).start()
    try:
        yield server
    finally:
        server.stop()


def settings_for(url: str, **overrides: Any) -> StreamSettings:
    return replace(StreamSettings(table="t", upstream_url=url, max_request_bytes=4096), **overrides)


@contextmanager
def door(url: str, **overrides: Any) -> Iterator[str]:
    """The door under uvicorn, as run.sh starts it, relaying to `url`."""
    app = create_app(settings_for(url, **overrides))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, loop="uvloop", http="httptools", lifespan="on", log_level="critical",
        access_log=False, proxy_headers=False, server_header=False,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the door did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def assert_envelope(response: httpx.Response, status: int, code: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code and body["error"]["message"]
    return dict(body["error"])


async def echo_json(seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(answer(200, b'{"ok":true}', {"content-type": "application/json"}))
    await writer.drain()


# What is forwarded, and what is not.


def test_forwards_the_request_with_the_clients_own_credential() -> None:
    with upstream(echo_json) as up, door(up.url) as base:
        response = httpx.post(
            f"{base}/v1/chat/completions?trace=1&x=%2F",
            content=b'{"model": "m"}',
            headers={
                "authorization": f"Bearer {KEY}",
                "x-api-key": KEY,
                "anthropic-version": "2023-06-01",
                "idempotency-key": "idem-1",
                "last-event-id": "7",
                "prefer": "respond-async",
                "content-type": "application/json",
                "x-custom": "kept",
                # Never from a client: internal trust, proxy claims, AWS's own, hop-by-hop.
                "x-switchboard-internal-token": "forged",
                "x-switchboard-tenant": "victim",
                "x-switchboard-deadline-ms": "1",
                "x-forwarded-prefix": "/evil",
                "x-forwarded-for": "10.0.0.1",
                "forwarded": "for=10.0.0.1",
                "x-amzn-request-context": "{}",
                "te": "trailers",
                "connection": "keep-alive, te",
            },
        )
    assert response.status_code == 200 and response.json() == {"ok": True}
    [seen] = up.seen
    assert (seen.method, seen.target, seen.body) == (
        "POST", "/v1/chat/completions?trace=1&x=%2F", b'{"model": "m"}'
    )  # fmt: skip
    assert seen.header("authorization") == f"Bearer {KEY}"
    for name, value in [("x-api-key", KEY), ("anthropic-version", "2023-06-01"),
                        ("idempotency-key", "idem-1"), ("last-event-id", "7"),
                        ("prefer", "respond-async"), ("content-type", "application/json"),
                        ("x-custom", "kept")]:  # fmt: skip
        assert seen.header(name) == value, name
    names = [name for name, _ in seen.headers]
    assert not [n for n in names if n.startswith(("x-switchboard-", "x-forwarded-", "x-amzn-"))]
    for name in ("forwarded", "te", "connection"):
        assert name not in names
    assert seen.header("host") == f"127.0.0.1:{up.port}"
    assert seen.header("content-length") == "14"
    assert names.count("host") == names.count("content-length") == 1


def test_keeps_the_raw_path_and_joins_the_upstream_base_path() -> None:
    with upstream(echo_json) as up, door(up.url + "/api") as base:
        httpx.get(f"{base}/v1/runs/run_a%2Bb/events?after=3", headers={"x-api-key": KEY})
    [seen] = up.seen
    assert seen.target == "/api/v1/runs/run_a%2Bb/events?after=3"
    assert seen.body == b"" and seen.header("content-length") == "0"


def test_a_route_without_a_body_sends_none_upstream() -> None:
    with upstream(echo_json) as up, door(up.url) as base:
        httpx.post(f"{base}/v1/runs/run_1/cancel", content=b'{"x": 1}', headers={"x-api-key": KEY})
    [seen] = up.seen
    assert seen.body == b""


def test_refuses_a_body_over_the_routes_limit_before_relaying() -> None:
    with upstream(echo_json) as up, door(up.url) as base:
        big = httpx.post(f"{base}/v1/chat/completions", content=b"x" * 5000)
        streamed = httpx.post(f"{base}/v1/embeddings", content=iter([b"x" * 3000] * 2))
        fits = httpx.post(f"{base}/v1/embeddings", content=b"x" * 4096)
    assert_envelope(big, 413, "request_too_large")
    assert_envelope(streamed, 413, "request_too_large")
    assert fits.status_code == 200
    assert [s.target for s in up.seen] == ["/v1/embeddings"]


# What is relayed back.


def test_relays_status_headers_and_body() -> None:
    async def limited(
        seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        body = b'{"error": {"message": "slow down", "type": "rate_limit_error", "param": null, "code": "rate_limit_exceeded"}}'
        writer.write(answer(429, body, {
            "content-type": "application/json", "retry-after": "7",
            "x-ratelimit-remaining-requests": "0", "location": "/api/v1/runs/run_1",
            "x-switchboard-conversation-id": "conv_1", "date": "Mon, 01 Jan 2001 00:00:00 GMT",
            "server": "upstream", "connection": "keep-alive", "keep-alive": "timeout=5",
        }))  # fmt: skip
        await writer.drain()

    with upstream(limited) as up, door(up.url) as base:
        response = httpx.post(f"{base}/v1/chat/completions", content=b"{}")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    h = response.headers
    assert (h["retry-after"], h["x-ratelimit-remaining-requests"]) == ("7", "0")
    assert (h["location"], h["x-switchboard-conversation-id"]) == ("/api/v1/runs/run_1", "conv_1")
    assert h["content-length"] == str(len(response.content))
    raw = [name.lower() for name, _ in response.headers.raw]
    assert b"server" not in raw and b"keep-alive" not in raw and raw.count(b"date") <= 1


def test_relays_a_body_that_comes_in_parts_with_its_length() -> None:
    async def slow_json(
        seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        body = b'{"data": "' + b"x" * 100_000 + b'"}'
        writer.write(answer(200, body, {"content-type": "application/json"})[:-50_000])
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(body[-50_000:])
        await writer.drain()

    with upstream(slow_json) as up, door(up.url) as base:
        response = httpx.get(f"{base}/v1/models")
    assert response.status_code == 200 and len(response.json()["data"]) == 100_000
    assert response.headers["content-length"] == str(len(response.content))


def test_relays_server_sent_events_chunk_by_chunk_as_they_come() -> None:
    gap = 0.15

    async def events(
        seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(SSE_HEAD)
        for i in range(5):
            await asyncio.sleep(gap)
            writer.write(chunk(b'data: {"n": %d}\n\n' % i))
            await writer.drain()
        writer.write(chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()

    arrivals: list[tuple[float, bytes]] = []
    with (
        upstream(events) as up,
        door(up.url) as base,
        httpx.stream("POST", f"{base}/v1/chat/completions", content=b"{}") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["cache-control"] == "no-cache"
        for part in response.iter_raw():
            arrivals.append((time.monotonic(), part))
    body = b"".join(part for _, part in arrivals)
    assert body == b"".join(b'data: {"n": %d}\n\n' % i for i in range(5)) + b"data: [DONE]\n\n"
    times = [t for t, part in arrivals if part.startswith(b"data: {")]
    assert len(times) == 5, arrivals  # one read per event: nothing was held back and merged
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) > gap * 0.5, gaps


def test_a_client_that_leaves_mid_stream_closes_the_upstream_connection() -> None:
    async def endless(
        seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(SSE_HEAD + chunk(b"data: first\n\n"))
        await writer.drain()
        up.note("started")
        await reader.read(1)  # b"" at EOF: the door closed the connection
        up.note("closed")

    with upstream(endless) as up, door(up.url) as base:
        with httpx.stream("POST", f"{base}/v1/chat/completions", content=b"{}") as response:
            next(response.iter_raw())
        left = time.monotonic()
        deadline = left + 5
        while "closed" not in dict(up.events) and time.monotonic() < deadline:
            time.sleep(0.01)
        health = httpx.get(f"{base}/health")
    assert dict(up.events)["closed"] - left < 1.0, up.events
    assert health.status_code == 200


def test_a_client_that_leaves_before_the_answer_closes_the_upstream_connection() -> None:
    async def thinking(
        seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        up.note("received")
        await reader.read(1)
        up.note("closed")

    with upstream(thinking) as up, door(up.url) as base:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{base}/v1/chat/completions", content=b"{}", timeout=0.5)
        left = time.monotonic()
        deadline = left + 5
        while "closed" not in dict(up.events) and time.monotonic() < deadline:
            time.sleep(0.01)
    assert dict(up.events)["closed"] - left < 1.0, up.events


def test_reuses_upstream_connections() -> None:
    with upstream(echo_json) as up, door(up.url) as base, httpx.Client() as client:
        for _ in range(5):
            assert client.get(f"{base}/v1/models").status_code == 200
    assert len(up.seen) == 5
    assert [what for what, _ in up.events].count("connection") == 1


# Upstream failures and timeouts, in the route's envelope.


def test_an_unreachable_upstream_is_a_503() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there
    with door(f"http://127.0.0.1:{port}") as base:
        response = httpx.post(f"{base}/v1/chat/completions", content=b"{}")
    error = assert_envelope(response, 503, "service_unavailable")
    assert str(port) not in error["message"]


@pytest.mark.parametrize("failure", ["reset", "garbage"])
def test_an_upstream_that_fails_before_its_answer_is_a_502(failure: str) -> None:
    async def broken(
        seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if failure == "garbage":
            writer.write(b"this is not http\r\n\r\n")
            await writer.drain()
        writer.transport.abort()

    with upstream(broken) as up, door(up.url) as base:
        response = httpx.post(f"{base}/v1/chat/completions", content=b"{}")
        assert_envelope(response, 502, "bad_gateway")
        again = httpx.get(f"{base}/health")
    assert again.status_code == 200


@pytest.mark.parametrize(
    ("path", "frame_start", "kind"),
    [
        ("/v1/chat/completions", b'data: {"error"', "upstream_error"),
        ("/v1/messages", b'event: error\ndata: {"type":"error"', "api_error"),
    ],
)
def test_a_stream_cut_by_the_upstream_ends_with_an_error_event(
    path: str, frame_start: bytes, kind: str
) -> None:
    async def cut(seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(SSE_HEAD + chunk(b"data: first\n\n"))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.transport.abort()

    with upstream(cut) as up, door(up.url) as base:
        response = httpx.post(f"{base}{path}", content=b"{}")
    assert response.status_code == 200
    first, _, last = response.content.partition(b"\n\n")
    assert first == b"data: first"
    assert last.startswith(frame_start), response.content
    error = json.loads(last.split(b"data: ", 1)[1])["error"]
    assert error["type"] == kind and "ended the answer" in error["message"]


def test_messages_errors_have_anthropics_envelope() -> None:
    with door("http://127.0.0.1:9") as base:
        refused = httpx.post(f"{base}/v1/messages", content=b"{}")
        other = httpx.post(f"{base}/v1/chat/completions", content=b"{}")
    # Nothing listens upstream: the door answers itself, in each route's envelope.
    assert refused.status_code == 503
    assert refused.json() == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": refused.json()["error"]["message"]},
    }
    assert other.status_code == 503 and set(other.json()["error"]) == {
        "message",
        "type",
        "param",
        "code",
    }


def test_a_json_answer_cut_by_the_upstream_is_not_passed_off_as_whole() -> None:
    async def cut(seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(200, b'{"data": "' + b"x" * 100_000 + b'"}')[:-50_000])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.transport.abort()

    with upstream(cut) as up, door(up.url) as base:
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(f"{base}/v1/models")
        assert httpx.get(f"{base}/health").status_code == 200


def test_no_answer_within_the_first_byte_timeout_is_a_504() -> None:
    async def silent(
        seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.read(1)
        up.note("closed")

    with upstream(silent) as up, door(up.url, first_byte_timeout_seconds=0.3) as base:
        started = time.monotonic()
        response = httpx.post(f"{base}/v1/chat/completions", content=b"{}")
        answered = time.monotonic()
        while "closed" not in dict(up.events) and time.monotonic() < answered + 5:
            time.sleep(0.01)
        closed = dict(up.events).get("closed", float("inf"))
    assert_envelope(response, 504, "gateway_timeout")
    assert 0.3 <= answered - started < 2.0
    assert closed - answered < 1.0  # the upstream saw the door give up, at once


def test_a_stream_that_falls_silent_is_cut_after_the_idle_timeout() -> None:
    async def stalls(
        seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(SSE_HEAD + chunk(b"data: first\n\n"))
        await writer.drain()
        await reader.read(1)
        up.note("closed")

    with upstream(stalls) as up, door(up.url, idle_timeout_seconds=0.2) as base:
        started = time.monotonic()
        response = httpx.post(f"{base}/v1/chat/completions", content=b"{}", timeout=10)
        answered = time.monotonic()
        while "closed" not in dict(up.events) and time.monotonic() < answered + 5:
            time.sleep(0.01)
        closed = dict(up.events).get("closed", float("inf"))
    assert response.content.startswith(b"data: first\n\n")
    error = json.loads(response.content.split(b"\n\n")[1].removeprefix(b"data: "))["error"]
    assert error["code"] == "gateway_timeout"
    assert 0.2 <= answered - started < 2.0
    assert closed - answered < 1.0


def test_a_stream_with_heartbeats_is_not_idle() -> None:
    async def beats(seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(SSE_HEAD)
        for _ in range(8):  # 0.8 s in all, never 0.2 s without a byte
            writer.write(chunk(b": heartbeat\n\n"))
            await writer.drain()
            await asyncio.sleep(0.1)
        writer.write(chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()

    with upstream(beats) as up, door(up.url, idle_timeout_seconds=0.2) as base:
        response = httpx.post(f"{base}/v1/chat/completions", content=b"{}", timeout=10)
    assert response.content == b": heartbeat\n\n" * 8 + b"data: [DONE]\n\n"


# Routing, from the route table.


@pytest.mark.parametrize("route", routes_of(Owner.WORKER), ids=lambda r: f"{r.method} {r.path}")
def test_every_worker_route_is_relayed(route: Any) -> None:
    path = route.path.replace("{", "").replace("}", "_1")
    with upstream(echo_json) as up, door(up.url) as base:
        response = httpx.request(
            route.method, f"{base}{path}", content=b"{}", headers={"x-api-key": KEY}
        )
    assert response.status_code == 200
    assert [(s.method, s.target) for s in up.seen] == [(route.method, path)]


def test_unknown_paths_and_methods_come_from_the_table() -> None:
    with upstream(echo_json) as up, door(up.url) as base:
        unknown = httpx.get(f"{base}/v1/nothing/here")
        wrong = httpx.request("PUT", f"{base}/v1/runs")
        trace = httpx.request("TRACE", f"{base}/v1/chat/completions")
        long = httpx.get(f"{base}/v1/" + "x" * 5000)
        admin = httpx.get(f"{base}/v1/admin/tenants", headers={"authorization": f"Bearer {KEY}"})
        health_post = httpx.post(f"{base}/health")
    assert_envelope(unknown, 404, None)
    error = assert_envelope(wrong, 405, "method_not_allowed")
    assert wrong.headers["allow"] == "POST, GET" and "POST or GET" in error["message"]
    assert_envelope(trace, 405, "method_not_allowed")
    assert trace.headers["allow"] == "POST"
    assert len(assert_envelope(long, 404, None)["message"]) < 300
    assert_envelope(admin, 404, "not_on_stream_url")
    assert_envelope(health_post, 405, "method_not_allowed")
    assert up.seen == []  # none of them reached the upstream


def test_control_routes_are_answered_by_the_door_not_relayed() -> None:
    control = [r for r in ROUTES if r.owner is Owner.CONTROL and not r.admin and not r.public]
    with upstream(echo_json) as up, door(up.url) as base:
        for route in control:
            path = route.path.replace("{", "").replace("}", "_1")
            # No key: the door's own authentication refuses it (no AWS needed for that).
            response = httpx.request(route.method, f"{base}{path}")
            assert_envelope(response, 401, "missing_api_key")
    assert up.seen == []
    assert {"GET /v1/runs", "GET /v1/runs/{run_id}", "GET /v1/usage"} <= {
        f"{r.method} {r.path}" for r in control
    }


def test_every_control_route_but_the_admin_api_is_implemented() -> None:
    app = create_app(settings_for("http://127.0.0.1:9"))
    served = set(app.control.handlers)
    control = {(r.method, r.path) for r in routes_of(Owner.CONTROL) if not (r.admin or r.public)}
    assert served == control


def test_the_api_description_is_answered_without_a_key() -> None:
    with upstream(echo_json) as up, door(up.url) as base:
        contract = httpx.get(f"{base}/v1/openapi.json")
        page = httpx.get(f"{base}/docs")
        missing = httpx.get(f"{base}/docs/nothing.js")
    assert contract.status_code == 200 and contract.json()["openapi"].startswith("3.1")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert_envelope(missing, 404, None)
    assert up.seen == []


def test_health_is_answered_without_the_upstream() -> None:
    with door("http://127.0.0.1:9") as base:
        response = httpx.get(f"{base}/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


# Settings: where the door may send a client's key.


@pytest.mark.parametrize(
    "url",
    [
        "https://abc123.execute-api.eu-west-1.amazonaws.com/api",
        "http://127.0.0.1:3000",
        "http://localhost:3000",
        "http://[::1]:3000",
        "http://127.0.0.5:8000/api",
    ],
)
def test_an_https_or_loopback_upstream_is_accepted(url: str) -> None:
    check_upstream(url)
    env = {"SWITCHBOARD_TABLE": "t", "SWITCHBOARD_UPSTREAM_URL": url + "/"}
    assert StreamSettings.from_env(env).upstream_url == url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://internal-alb-123.eu-west-1.elb.amazonaws.com", "unencrypted"),
        ("http://10.0.0.12:8000", "unencrypted"),
        ("http://abc123.execute-api.eu-west-1.amazonaws.com/api", "unencrypted"),
        ("ftp://example.com", "http(s) URL"),
        ("https://abc123.execute-api.eu-west-1.amazonaws.com/api/v1", "without /v1"),
        ("https://user:pw@example.com", "plain base URL"),
    ],
)
def test_an_upstream_a_key_must_not_go_to_is_refused_at_start_up(url: str, says: str) -> None:
    env = {"SWITCHBOARD_TABLE": "t", "SWITCHBOARD_UPSTREAM_URL": url}
    with pytest.raises(ConfigError, match="SWITCHBOARD_UPSTREAM_URL") as raised:
        StreamSettings.from_env(env)
    assert says in str(raised.value)


def test_the_upstream_url_is_required() -> None:
    with pytest.raises(ConfigError, match="SWITCHBOARD_UPSTREAM_URL is required"):
        StreamSettings.from_env({"SWITCHBOARD_TABLE": "t"})


def test_the_web_console_is_served_by_the_console_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """The door hands /console paths to `console.serve` (as the gateway does) and sends its
    answer as it is; a 304 goes without a body or a length."""

    @dataclass
    class ConsoleAnswer:
        status: int
        content_type: str
        body: bytes
        headers: dict[str, str]

    calls: list[tuple[str, str, str | None]] = []

    def serve(path: str, method: str = "GET", if_none_match: str | None = None) -> ConsoleAnswer:
        calls.append((path, method, if_none_match))
        if if_none_match == '"v1"':
            return ConsoleAnswer(304, "text/html; charset=utf-8", b"", {"etag": '"v1"'})
        return ConsoleAnswer(200, "text/html; charset=utf-8", b"<html></html>", {"etag": '"v1"'})

    monkeypatch.setitem(sys.modules, "console", types.SimpleNamespace(serve=serve))
    with upstream(echo_json) as up, door(up.url) as base:
        page = httpx.get(f"{base}/console/")
        cached = httpx.get(f"{base}/console/app.js", headers={"if-none-match": '"v1"'})
        head = httpx.head(f"{base}/console/")
    assert (page.status_code, page.text, page.headers["etag"]) == (200, "<html></html>", '"v1"')
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert cached.status_code == 304 and cached.content == b""
    assert "content-length" not in cached.headers
    assert head.status_code == 200 and head.headers["content-length"] == "13"
    assert calls == [("/console/", "GET", None), ("/console/app.js", "GET", '"v1"'),
                     ("/console/", "HEAD", None)]  # fmt: skip
    assert up.seen == []


def test_a_location_under_the_apis_stage_names_the_resource_on_this_door() -> None:
    """Deployed, the upstream is the API at /api: its Location is /api/v1/runs/...; a client
    of the stream door follows /v1/runs/... here. Other Locations pass unchanged."""
    from lambdas.stream.relay import relayed_headers

    staged = dict(relayed_headers({"location": "/api/v1/runs/run_1"}, "/api"))
    assert staged[b"location"] == b"/v1/runs/run_1"
    other = dict(relayed_headers({"location": "https://s3.example/x"}, "/api"))
    assert other[b"location"] == b"https://s3.example/x"
    assert dict(relayed_headers({"location": "/v1/runs/run_1"}, ""))[b"location"] == (
        b"/v1/runs/run_1"
    )
