"""The API Gateway emulator's edge, as the deployed API has it: AI routes (`WORKER` in the
route table) go through the REQUEST authorizer, then straight to the workers' load
balancer, streamed (HTTP_PROXY, STREAM); everything else goes to the gateway function.

The emulator is served over real HTTP (uvicorn) and the worker is a fake HTTP server, so
what is asserted is what crosses the wire: arrival times, headers, paths, and requests
that never arrive."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from devstack.apigw import (
    PAYLOAD_LIMIT_BYTES,
    ApiGatewayEmulator,
    Denied,
    EmulatorSettings,
    LambdaProxyIntegration,
    Malformed,
    RequestAuthorizer,
    check_policy,
    create_app,
)
from devstack.stack import free_port
from services.frontdoor import gateway_responses
from tests.fakes.http import FakeHTTPServer, Request, Writer

HANDLERS = "tests.unit.apigw_handlers"
KEY = {"authorization": "Bearer good"}


class FakeWorker:
    """The workers' load balancer: records every request; answers as its `x-test-*`
    headers ask (the emulator passes the client's headers on)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.broken_off = threading.Event()  # a write failed: the emulator closed the stream
        self.server = FakeHTTPServer(self.handle)

    @property
    def seen(self) -> list[Request]:
        return [r for r in self.requests if r.path != "/health"]

    async def handle(self, request: Request, writer: Writer) -> None:
        import asyncio

        self.requests.append(request)
        h = request.headers
        if request.path == "/health":
            await writer.respond(200, b'{"status":"ok"}')
            return
        await asyncio.sleep(float(h.get("x-test-wait-headers", "0")))
        chunks = int(h.get("x-test-chunks", "0"))
        if not chunks:
            echo = {
                "method": request.method,
                "path": request.path,
                "query": request.query,
                "headers": request.headers,
                "body": base64.b64encode(request.body).decode(),
            }
            await writer.respond(200, json.dumps(echo).encode(), {"x-worker": "yes"})
            return
        gap = float(h.get("x-test-gap", "0"))
        stall = float(h.get("x-test-stall-after-first", "0"))
        await writer.start(200, {"content-type": "text/event-stream", "x-worker": "yes"})
        try:
            for i in range(chunks):
                await writer.write(f"data: {i}\n\n".encode())
                await asyncio.sleep(stall if stall and i == 0 else gap)
            await writer.end()
        except (ConnectionError, RuntimeError):
            self.broken_off.set()


@pytest.fixture
def worker() -> Iterator[FakeWorker]:
    fake = FakeWorker()
    fake.server.start()
    try:
        yield fake
    finally:
        fake.server.stop()


def settings_for(worker: FakeWorker | None, **changes: Any) -> EmulatorSettings:
    base = EmulatorSettings(
        integration_timeout_seconds=10,
        lambda_timeout_seconds=10,
        lambda_concurrency=2,
        stage="api",
        handler=f"{HANDLERS}.echo",
        worker_url=worker.server.url if worker is not None else "http://127.0.0.1:9",
        authorizer=f"{HANDLERS}.authorize",
        authorizer_timeout_seconds=2,
    )
    return dataclasses.replace(base, **changes)


@contextlib.contextmanager
def serving(settings: EmulatorSettings) -> Iterator[tuple[str, ApiGatewayEmulator]]:
    """The emulator on a loopback port, under uvicorn (which streams, where httpx's ASGI
    transport would buffer)."""
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the emulator did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(20)


def environments(app: ApiGatewayEmulator) -> tuple[int, int]:
    """How many execution environments the gateway function and the authorizer have."""
    control = app.control
    assert isinstance(control, LambdaProxyIntegration)
    assert isinstance(app.authorizer, RequestAuthorizer)
    return control.function.environments, app.authorizer.function.environments


def test_a_worker_route_streams_chunk_by_chunk(worker: FakeWorker) -> None:
    chunks, gap = 6, 0.15
    headers = {**KEY, "x-test-chunks": str(chunks), "x-test-gap": str(gap)}
    with serving(settings_for(worker)) as (url, app):
        arrivals: list[float] = []
        started = time.monotonic()
        with httpx.stream(
            "POST", f"{url}/api/v1/chat/completions", json={"stream": True}, headers=headers
        ) as response:
            headed = time.monotonic()
            assert response.status_code == 200
            assert response.headers["x-worker"] == "yes"
            assert response.headers["content-type"] == "text/event-stream"
            assert response.headers["x-amzn-requestid"]
            body = b""
            for part in response.iter_raw():
                body += part
                arrivals.append(time.monotonic())
        assert body == b"".join(f"data: {i}\n\n".encode() for i in range(chunks))
        assert environments(app) == (0, 1)  # the authorizer ran; the gateway function did not
    # Buffered, the body would arrive at once at the end; streamed, spread over the gaps.
    assert len(arrivals) >= chunks * 0.8
    assert arrivals[-1] - headed >= (chunks - 1) * gap * 0.8
    spaced = [b - a for a, b in itertools.pairwise(arrivals) if b - a >= gap * 0.5]
    assert len(spaced) >= (chunks - 1) * 0.8
    assert headed - started < (chunks - 1) * gap  # the headers came before the body ended


def test_the_worker_gets_the_path_without_the_stage_the_prefix_and_the_clients_headers(
    worker: FakeWorker,
) -> None:
    body = b'{"a": 1, "bytes": "\xff"}'
    sent = {
        **KEY,
        "x-api-key": "also-passed-on",
        "x-custom": "kept",
        "connection": "keep-alive, x-hop",
        "x-hop": "named by connection: dropped",
        "te": "trailers",
        "x-forwarded-prefix": "/forged",
        "idempotency-key": "k-1",
    }
    with serving(settings_for(worker)) as (url, _):
        staged = httpx.post(
            f"{url}/api/v1/tools/echo%20tool?after=3&x=%2F", content=body, headers=sent
        )
        bare = httpx.get(f"{url}/v1/runs/run_1/events", headers=KEY)
    assert staged.status_code == 200 and bare.status_code == 200
    echo = staged.json()
    assert echo["method"] == "POST"
    assert echo["path"] == "/v1/tools/echo%20tool"  # as the client encoded it, stage stripped
    assert echo["query"] == "after=3&x=%2F"
    assert base64.b64decode(echo["body"]) == body
    seen = echo["headers"]
    assert seen["x-forwarded-prefix"] == "/api"  # the deployed integration's static header
    assert seen["authorization"] == "Bearer good"  # the client's own key, unchanged
    assert seen["x-api-key"] == "also-passed-on"
    assert seen["x-custom"] == "kept" and seen["idempotency-key"] == "k-1"
    assert seen["host"] == worker.server.url.removeprefix("http://")
    assert seen["content-length"] == str(len(body))
    for hop in ("x-hop", "te", "keep-alive", "transfer-encoding"):
        assert hop not in seen
    assert seen.get("connection") in (None, "keep-alive")  # the emulator's own connection
    assert "user-agent" in seen and seen["user-agent"].startswith("python-httpx")  # the client's
    assert bare.json()["path"] == "/v1/runs/run_1/events"
    assert bare.json()["headers"]["x-forwarded-prefix"] == "/api"


REFUSALS: list[tuple[dict[str, str], int, dict[str, Any]]] = [
    ({}, 401, gateway_responses.UNAUTHORIZED),
    ({"authorization": "Bearer wrong"}, 401, gateway_responses.UNAUTHORIZED),
    ({"x-api-key": "wrong"}, 401, gateway_responses.UNAUTHORIZED),
    ({"authorization": "Bearer deny"}, 403, gateway_responses.ACCESS_DENIED),
    ({"authorization": "Bearer other-method"}, 403, gateway_responses.ACCESS_DENIED),
    ({"authorization": "Bearer crash"}, 500, gateway_responses.AUTHORIZER_FAILURE),
    ({"authorization": "Bearer malformed"}, 500, gateway_responses.AUTHORIZER_FAILURE),
    ({"authorization": "Bearer slow"}, 500, gateway_responses.AUTHORIZER_FAILURE),
]


def test_a_refused_key_never_reaches_the_worker(worker: FakeWorker) -> None:
    with serving(settings_for(worker, authorizer_timeout_seconds=1)) as (url, _):
        for headers, status, answer in REFUSALS:
            response = httpx.post(
                f"{url}/api/v1/chat/completions", json={"stream": True}, headers=headers, timeout=10
            )
            assert response.status_code == status, headers
            assert response.headers["content-type"] == "application/json"
            assert response.json() == answer, headers
        allowed = httpx.post(f"{url}/v1/chat/completions", json={}, headers={"x-api-key": "good"})
    assert allowed.status_code == 200  # the same route, with a key the authorizer allows
    assert [r.path for r in worker.seen] == ["/v1/chat/completions"]  # only the allowed one


def test_the_authorizer_gets_api_gateways_request_event(worker: FakeWorker, tmp_path: Path) -> None:
    record = tmp_path / "event.json"
    headers = {"x-api-key": "good", "x-event-file": str(record)}
    with serving(settings_for(worker)) as (url, _):
        response = httpx.post(f"{url}/api/v1/tools/summarize?a=1&a=2", json={"x": 1},
                              headers=headers)  # fmt: skip
    assert response.status_code == 200
    event = json.loads(record.read_text())
    assert event["type"] == "REQUEST"
    assert event["methodArn"].endswith(":local/api/POST/v1/tools/summarize")
    assert event["methodArn"].startswith("arn:aws:execute-api:us-east-1:")
    assert event["resource"] == "/v1/tools/{name}"
    assert event["path"] == "/v1/tools/summarize"
    assert event["httpMethod"] == "POST"
    assert event["pathParameters"] == {"name": "summarize"}
    assert event["headers"]["x-api-key"] == "good"
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"]}
    assert event["requestContext"]["stage"] == "api"
    assert event["requestContext"]["resourcePath"] == "/v1/tools/{name}"
    assert "body" not in event  # an authorizer never sees the body


def test_control_routes_and_unknown_ones_go_to_the_gateway_function(worker: FakeWorker) -> None:
    with serving(settings_for(worker)) as (url, app):
        answers = [
            httpx.get(f"{url}/api/v1/runs"),  # CONTROL
            httpx.get(f"{url}/v1/conversations/c_1"),  # CONTROL
            httpx.get(f"{url}/api/v1/nothing-here"),  # unknown path
            httpx.delete(f"{url}/api/v1/chat/completions"),  # a WORKER path, unknown method
            httpx.request("HEAD", f"{url}/api/v1/models"),  # likewise
        ]
        assert environments(app)[1] == 0  # the authorizer guards WORKER methods only
    for response in answers:
        assert response.status_code == 200, response.text
        assert response.headers["x-amzn-requestid"]
    assert answers[0].json()["pid"] > 0  # the echo function answered
    assert worker.seen == []


def test_no_worker_headers_within_the_idle_timeout_is_a_504(worker: FakeWorker) -> None:
    headers = {**KEY, "x-test-wait-headers": "3"}
    with serving(settings_for(worker, idle_timeout_seconds=0.5)) as (url, _):
        httpx.get(f"{url}/api/v1/models", headers=KEY)  # warm the authorizer
        started = time.monotonic()
        response = httpx.post(f"{url}/v1/chat/completions", json={}, headers=headers)
        took = time.monotonic() - started
    assert response.status_code == 504
    assert response.json() == gateway_responses.INTEGRATION_TIMEOUT
    assert 0.5 <= took < 2.5


def test_an_idle_stream_is_cut_and_so_is_one_past_the_integration_timeout(
    worker: FakeWorker,
) -> None:
    def read(url: str, headers: dict[str, str]) -> tuple[bytes, float]:
        body = b""
        started = time.monotonic()
        with httpx.stream("POST", f"{url}/v1/chat/completions", json={}, headers=headers) as r:
            assert r.status_code == 200
            with pytest.raises(httpx.RemoteProtocolError):  # cut, not ended
                for part in r.iter_raw():
                    body += part
        return body, time.monotonic() - started

    stalled = {**KEY, "x-test-chunks": "3", "x-test-stall-after-first": "5"}
    endless = {**KEY, "x-test-chunks": "1000", "x-test-gap": "0.05"}
    config = settings_for(worker, idle_timeout_seconds=0.6, worker_timeout_seconds=1.5)
    with serving(config) as (url, _):
        httpx.get(f"{url}/api/v1/models", headers=KEY)  # warm the authorizer
        body, took = read(url, stalled)
        assert body == b"data: 0\n\n" and 0.6 <= took < 2.5
        body, took = read(url, endless)
        assert body.startswith(b"data: 0\n\ndata: 1\n\n") and 1.4 <= took < 3.0
        assert len(body) < 1000 * len(b"data: 999\n\n")


def test_a_client_that_goes_away_closes_the_workers_stream(worker: FakeWorker) -> None:
    headers = {**KEY, "x-test-chunks": "400", "x-test-gap": "0.02"}
    with serving(settings_for(worker)) as (url, _):
        with httpx.stream("POST", f"{url}/v1/chat/completions", json={}, headers=headers) as r:
            next(r.iter_raw())
        assert worker.broken_off.wait(5)  # long before the 400 chunks' 8 s


def test_payload_limit_comes_before_the_authorizer(worker: FakeWorker) -> None:
    with serving(settings_for(worker)) as (url, app):
        response = httpx.post(
            f"{url}/v1/embeddings", content=b"x" * (PAYLOAD_LIMIT_BYTES + 1), headers=KEY
        )
        assert environments(app) == (0, 0)
    assert response.status_code == 413
    assert response.json() == gateway_responses.REQUEST_TOO_LARGE
    assert worker.seen == []


def test_an_unreachable_load_balancer_is_a_502() -> None:
    with serving(settings_for(None, worker_url=f"http://127.0.0.1:{free_port()}")) as (url, _):
        response = httpx.get(f"{url}/v1/models", headers=KEY)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "integration_failure"


def test_health_and_readiness_on_the_api_port(worker: FakeWorker) -> None:
    with serving(settings_for(worker)) as (url, app):
        health = httpx.get(f"{url}/health")
        ready = httpx.get(f"{url}/api/ready")
        worker.server.stop()  # the load balancer goes away
        not_ready = httpx.get(f"{url}/ready")
        still_alive = httpx.get(f"{url}/health")
        assert environments(app) == (0, 0)  # answered by the emulator itself
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}
    assert not_ready.status_code == 503
    error = not_ready.json()["error"]
    assert error["code"] == "not_ready" and "load balancer" in error["message"]
    assert still_alive.status_code == 200
    worker.server = FakeHTTPServer(worker.handle).start()  # for the fixture's stop


def test_readiness_names_an_unreachable_table(
    worker: FakeWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{free_port()}")
    with serving(settings_for(worker, table="switchboard-local")) as (url, _):
        response = httpx.get(f"{url}/ready", timeout=20)
    assert response.status_code == 503
    assert "table switchboard-local" in response.json()["error"]["message"]


ARN = "arn:aws:execute-api:us-east-1:000000000000:local/api/POST/v1/chat/completions"


def _policy(*statements: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"principalId": "p", "policyDocument": {"Statement": list(statements)}, **extra}


def _statement(effect: str, resource: Any, action: Any = "execute-api:Invoke") -> dict[str, Any]:
    return {"Effect": effect, "Action": action, "Resource": resource}


def test_policies_are_evaluated_as_api_gateway_does() -> None:
    check_policy(_policy(_statement("Allow", ARN)), ARN)
    check_policy(_policy(_statement("Allow", "arn:aws:execute-api:*:*:local/*/POST/*")), ARN)
    check_policy(_policy(_statement("Allow", ["x", ARN], ["execute-api:*"])), ARN)
    check_policy({**_policy(), "policyDocument": {"Statement": _statement("Allow", "*")}}, ARN)
    denied = [
        _policy(_statement("Allow", "*"), _statement("Deny", ARN)),  # a Deny wins
        _policy(_statement("Allow", ARN.replace("POST", "GET"))),  # another method
        _policy(_statement("Allow", ARN, "execute-api:ManageConnections")),  # another action
        _policy(),  # nothing allows it
    ]
    for policy in denied:
        with pytest.raises(Denied):
            check_policy(policy, ARN)
    malformed = [
        "Allow",
        {"policyDocument": {"Statement": []}},  # no principalId
        _policy(_statement("allow", ARN)),
        _policy(_statement("Allow", [])),
        _policy(_statement("Allow", ARN), context={"nested": {"a": 1}}),
        _policy(_statement("Allow", ARN), context={"list": [1]}),
    ]
    for answer in malformed:
        with pytest.raises(Malformed):
            check_policy(answer, ARN)


def test_a_header_value_with_surrounding_whitespace_is_passed_on_trimmed(
    worker: FakeWorker,
) -> None:
    """`name:  value ` is legal on the wire; the value is `value` (RFC 9110 5.5)."""
    with serving(settings_for(worker)) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(
                b"GET /api/v1/models HTTP/1.1\r\nhost: x\r\nauthorization: Bearer good\r\n"
                b"last-event-id:  5 \r\nconnection: close\r\n\r\n"
            )
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer[:300]
    assert json.loads(body)["headers"]["last-event-id"] == "5"


def test_an_authorizers_unauthorized_is_an_answer_and_a_crash_is_logged(
    worker: FakeWorker, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with serving(settings_for(worker)) as (url, _):
        refused = httpx.get(f"{url}/v1/models", headers={"authorization": "Bearer wrong"})
        assert refused.status_code == 401
        time.sleep(0.2)
        # The authorizer said no: no failure in the function's log or the emulator's.
        assert "Traceback" not in capfd.readouterr().err
        assert "Traceback" not in caplog.text
        crashed = httpx.get(f"{url}/v1/models", headers={"authorization": "Bearer crash"})
        assert crashed.status_code == 500
    assert "the authorizer raised RuntimeError: the key store is unreachable" in caplog.text
    assert "Traceback" in caplog.text and "apigw_handlers.py" in caplog.text
