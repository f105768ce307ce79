"""The worker app with injected providers: what a client sees when a provider fails."""

from __future__ import annotations

import asyncio
import gc
import resource
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from containers.worker.app import GIL_SWITCH_SECONDS, create_app
from containers.worker.ecs import TaskProtection
from containers.worker.lifecycle import Drain, Streams
from containers.worker.settings import WorkerSettings
from services.errors import UpstreamError
from services.frontdoor.routes import ROUTES, Owner
from services.providers.base import (
    Completion,
    CompletionRequest,
    Finish,
    Provider,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from services.tenancy.auth import Authenticator
from services.tenancy.limits import Admission
from tests.fakes.ecs_agent import FakeAgent
from tests.fakes.keys import StaticKeys, bearer

KEY = "sb-test-key-of-tenant-t"
HEADERS = bearer(KEY)


class Scripted(Provider):
    """Streams `events`, raising `UpstreamError` at `fail_at` (an index into the events)."""

    name = "scripted"

    def __init__(self, events: list[StreamEvent], fail_at: int | None = None) -> None:
        self.events = events
        self.fail_at = fail_at

    def models(self) -> list[str]:
        return ["m"]

    async def complete(self, request: CompletionRequest) -> Completion:
        if self.fail_at is not None:
            raise UpstreamError("upstream exploded")
        return Completion("done", "stop", Usage(1, 1))

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        for i, event in enumerate(self.events):
            if i == self.fail_at:
                raise UpstreamError("upstream exploded")
            yield event


class NoKeys:
    def lookup(self, secret: str) -> None:
        return None


class NoTenants:
    """A table without tenant records: no limits apply."""

    def get_item(self, **request: object) -> dict[str, object]:
        return {}


def client(
    provider: Provider,
    max_request_bytes: int = 4096,
    *,
    protection: TaskProtection | None = None,
    **settings: Any,
) -> TestClient:
    config = WorkerSettings(table="t", max_request_bytes=max_request_bytes, **settings)
    auth = Authenticator(StaticKeys({KEY: ("t", "k")}))  # type: ignore[arg-type]
    app = create_app(
        config,
        providers={"scripted": provider},
        authenticator=auth,
        admission=Admission(NoTenants(), "t"),
        protection=protection or TaskProtection(None),
    )
    return TestClient(app, raise_server_exceptions=False)


def body(stream: bool = False, **extra: object) -> dict[str, object]:
    return {
        "model": "scripted/m",
        "messages": [{"role": "user", "content": "x"}],
        "stream": stream,
        **extra,
    }


def sse_data(text: str) -> list[object]:
    return [
        line[len("data: ") :] if line == "data: [DONE]" else orjson.loads(line[len("data: ") :])
        for line in text.splitlines()
        if line.startswith("data: ")
    ]


def test_failure_before_the_first_byte_is_an_http_error() -> None:
    with client(Scripted([TextDelta("a")], fail_at=0)) as c:
        response = c.post("/v1/chat/completions", json=body(stream=True), headers=HEADERS)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "bad_gateway"


def test_failure_after_the_first_byte_ends_the_stream_with_an_error_event() -> None:
    events: list[StreamEvent] = [TextDelta("partial "), TextDelta("output"), Finish("stop")]
    with client(Scripted(events, fail_at=2)) as c:
        response = c.post("/v1/chat/completions", json=body(stream=True), headers=HEADERS)
    assert response.status_code == 200
    data = sse_data(response.text)
    texts = [
        d["choices"][0]["delta"].get("content")
        for d in data
        if isinstance(d, dict) and d.get("choices")
    ]
    assert "".join(t for t in texts if t) == "partial output"  # the partial output was sent
    assert data[-1] == {
        "error": {
            "message": "upstream exploded",
            "type": "upstream_error",
            "param": None,
            "code": "bad_gateway",
        }
    }
    assert "[DONE]" not in data


def test_tool_call_deltas_and_summed_usage_in_a_stream() -> None:
    events: list[StreamEvent] = [
        UsageReport(Usage(input_tokens=10, cached_input_tokens=4)),
        ToolCallDelta(0, id="call_1", name="lookup", arguments='{"q":'),
        ToolCallDelta(0, arguments='"x"}'),
        Finish("tool_calls"),
        UsageReport(Usage(output_tokens=7)),
    ]
    with client(Scripted(events)) as c:
        response = c.post(
            "/v1/chat/completions",
            json=body(stream=True, stream_options={"include_usage": True}),
            headers=HEADERS,
        )
    data = sse_data(response.text)
    assert data[-1] == "[DONE]"
    calls = [
        d["choices"][0]["delta"]["tool_calls"][0]
        for d in data[:-1]
        if d["choices"] and "tool_calls" in d["choices"][0]["delta"]
    ]
    assert calls[0] == {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "lookup", "arguments": '{"q":'},
    }
    assert calls[1] == {"index": 0, "function": {"arguments": '"x"}'}}
    finish = [
        d["choices"][0]["finish_reason"]
        for d in data[:-1]
        if d["choices"] and d["choices"][0]["finish_reason"]
    ]
    assert finish == ["tool_calls"]
    usage = data[-2]["usage"]
    assert usage == {
        "prompt_tokens": 10,
        "completion_tokens": 7,
        "total_tokens": 17,
        "prompt_tokens_details": {"cached_tokens": 4},
    }


def test_non_streaming_provider_failure() -> None:
    with client(Scripted([], fail_at=0)) as c:
        response = c.post("/v1/chat/completions", json=body(), headers=HEADERS)
    assert response.status_code == 502
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize("chunked", [False, True])
def test_body_limit_with_and_without_content_length(chunked: bool) -> None:
    payload = orjson.dumps(body(padding="x" * 5000))
    with client(Scripted([])) as c:
        if chunked:
            response = c.post(
                "/v1/chat/completions",
                content=iter([payload[:3000], payload[3000:]]),
                headers=HEADERS,
            )
        else:
            response = c.post("/v1/chat/completions", content=payload, headers=HEADERS)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_unexpected_errors_do_not_leak_details() -> None:
    class Broken(Scripted):
        async def complete(self, request: CompletionRequest) -> Completion:
            raise RuntimeError("secret internal detail")

    with client(Broken([])) as c:
        response = c.post("/v1/chat/completions", json=body(), headers=HEADERS)
    assert response.status_code == 500
    assert "secret" not in response.text
    assert response.json()["error"]["type"] == "server_error"


def test_streamed_chunks_are_exactly_the_chunk_json_serialization() -> None:
    """The stream writes chunk JSON from a prebuilt template; it must equal chunk_json's."""
    from services.wire.openai import chunk_json

    events: list[StreamEvent] = [
        TextDelta('quote " and \\ and ünïcode'),
        ToolCallDelta(0, id="c1", name="f", arguments='{"a":'),
        Finish("tool_calls"),
    ]
    with client(Scripted(events)) as c:
        response = c.post("/v1/chat/completions", json=body(stream=True), headers=HEADERS)
    frames = [
        line[len("data: ") :] for line in response.text.splitlines() if line.startswith("data: ")
    ]
    chunks = [orjson.loads(f) for f in frames[:-1]]
    first = chunks[0]
    for chunk in chunks:
        expected = chunk_json(
            id=first["id"],
            model=first["model"],
            created=first["created"],
            delta=chunk["choices"][0]["delta"],
            finish_reason=chunk["choices"][0]["finish_reason"],
        )
        assert chunk == expected
    assert chunks[1]["choices"][0]["delta"] == {"content": 'quote " and \\ and ünïcode'}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_the_worker_tunes_its_process_for_the_hot_path_at_start() -> None:
    """At start-up: young collections every `gc_threshold` allocations, a 0.5 ms GIL
    switch interval (a thread cannot hold the loop for 5 ms), and the open-file limit
    raised to the hard one (two descriptors per held stream)."""
    thresholds, interval = gc.get_threshold(), sys.getswitchinterval()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
        with client(Scripted([Finish("stop")])):
            assert gc.get_threshold()[0] == WorkerSettings(table="t").gc_threshold
            assert sys.getswitchinterval() == GIL_SWITCH_SECONDS
            assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
    finally:
        gc.set_threshold(*thresholds)
        sys.setswitchinterval(interval)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# -- routing from the route table ------------------------------------------------------------


def test_the_worker_serves_every_worker_route_of_the_table_and_no_control_one() -> None:
    """Each WORKER route answers (here: 401 without a key, so it exists and authenticates
    first); each CONTROL-only path is unknown to the worker, save the run reads, which the
    stream front door relays to it."""
    served_control = {("GET", "/v1/runs"), ("GET", "/v1/runs/{run_id}")}
    with client(Scripted([])) as c:
        for route in ROUTES:
            path = route.path.replace("{", "x").replace("}", "")
            status = c.request(route.method, path, json={}).status_code
            if route.owner is Owner.WORKER or (route.method, route.path) in served_control:
                assert status == 401, (route.method, route.path, status)
            else:
                assert status in (404, 405), (route.method, route.path, status)
        routed = {
            (method, r.path)
            for r in c.app.routes  # type: ignore[attr-defined]
            for method in (r.methods or ()) - {"HEAD"}
            if not r.path.startswith(("/internal/", "/health", "/ready"))
        }
    assert (
        routed == {(r.method, r.path) for r in ROUTES if r.owner is Owner.WORKER} | served_control
    )


def test_a_wrong_method_is_a_405_naming_the_tables_methods() -> None:
    with client(Scripted([])) as c:
        response = c.put("/v1/runs", headers=HEADERS)
        documents = c.patch("/v1/documents/doc_x", headers=HEADERS)
    assert response.status_code == 405
    assert response.json()["error"] == {
        "message": "Method PUT is not allowed on /v1/runs; use POST or GET.",
        "type": "invalid_request_error",
        "param": None,
        "code": "method_not_allowed",
    }
    assert response.headers["allow"] == "POST, GET"
    assert documents.status_code == 405 and documents.headers["allow"] == "GET, DELETE"


# -- streams: heartbeats, and ECS scale-in protection while any is open ------------------------


class Slow(Scripted):
    """Streams its events with `gap` seconds before each after the first."""

    def __init__(self, events: list[StreamEvent], gap: float) -> None:
        super().__init__(events)
        self.gap = gap

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        for i, event in enumerate(self.events):
            if i:
                await asyncio.sleep(self.gap)
            yield event


def test_a_quiet_stream_sends_heartbeats_and_holds_task_protection() -> None:
    agent = FakeAgent()
    try:
        events: list[StreamEvent] = [TextDelta("a"), TextDelta("b"), Finish("stop")]
        protection = TaskProtection(agent.uri, linger=0.0)
        with client(Slow(events, 0.25), protection=protection, heartbeat_seconds=0.1) as c:
            response = c.post("/v1/chat/completions", json=body(stream=True), headers=HEADERS)
            deadline = time.monotonic() + 5
            while agent.states() != [True, False] and time.monotonic() < deadline:
                time.sleep(0.02)
        assert response.status_code == 200
        assert response.text.count(": keep-alive\n\n") >= 2
        assert sse_data(response.text)[-1] == "[DONE]"
        assert agent.states() == [True, False]  # set while the stream was open, then cleared
        assert agent.puts[0]["ExpiresInMinutes"] == 10
    finally:
        agent.server.shutdown()


# -- shutdown ----------------------------------------------------------------------------------


def test_drain_releases_the_runs_then_closes_everything_in_order() -> None:
    done: list[str] = []

    class Runs:
        def stop_taking(self) -> None:
            done.append("stop taking")

        async def stop(self) -> None:
            done.append("release runs")

    async def close(name: str) -> None:
        if name == "broken":
            raise RuntimeError("boom")
        done.append(name)

    def closer(name: str) -> tuple[str, Any]:
        return name, lambda: close(name)

    drain = Drain(
        Streams(),
        Runs(),  # type: ignore[arg-type]
        [closer("conversations"), closer("broken"), closer("usage writer"), closer("providers")],
    )
    drain.begin()  # SIGTERM
    drain.begin()
    asyncio.run(drain.finish())
    assert done == ["stop taking", "release runs", "conversations", "usage writer", "providers"]
