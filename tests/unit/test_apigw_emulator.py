"""The API Gateway emulator: REST proxy events, each invocation in an execution environment
of its own (a pool of processes with cold starts, the function's timeout, the integration
timeout), and API Gateway's own limits and error bodies."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from devstack.apigw import (
    HEADER_LIMIT_BYTES,
    PAYLOAD_LIMIT_BYTES,
    URL_LIMIT_CHARS,
    ApiGatewayEmulator,
    EmulatorSettings,
    LambdaProxyIntegration,
    create_app,
)
from devstack.lambda_pool import LambdaPool, LambdaSettings
from services.frontdoor import gateway_responses

T = TypeVar("T")
HANDLERS = "tests.unit.apigw_handlers"
SETTINGS = EmulatorSettings(
    integration_timeout_seconds=10,
    lambda_timeout_seconds=10,
    lambda_concurrency=2,
    stage="api",
    handler=f"{HANDLERS}.echo",
)


def settings(**changes: Any) -> EmulatorSettings:
    return dataclasses.replace(SETTINGS, **changes)


def pool_of(app: ApiGatewayEmulator) -> LambdaPool:
    integration = app.control
    assert isinstance(integration, LambdaProxyIntegration)
    return integration.function


def run(
    config: EmulatorSettings,
    scenario: Callable[[httpx.AsyncClient, ApiGatewayEmulator], Awaitable[T]],
) -> T:
    async def main() -> T:
        app = create_app(config)
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(
                transport=transport, base_url="http://apigw", timeout=30
            ) as client:
                return await scenario(client, app)
        finally:
            await app.aclose()

    return asyncio.run(main())


async def warm(app: ApiGatewayEmulator, n: int = 1) -> None:
    """Start `n` environments (cold starts take a while on a busy host)."""
    event = {"headers": {"x-sleep": "0.2"}, "body": None}
    await asyncio.gather(*(pool_of(app).invoke(event, f"warm-{i}") for i in range(n)))


def envelope(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return dict(error)


def test_event_is_what_powertools_resolves() -> None:
    async def scenario(client: httpx.AsyncClient, app: ApiGatewayEmulator) -> httpx.Response:
        return await client.post("/api/v1/things?q=1", json={"a": 1}, headers={"x-custom": "yes"})

    config = settings(handler="tests.unit.apigw_powertools.handler", lambda_timeout_seconds=5)
    response = run(config, scenario)
    assert response.status_code == 200
    seen = response.json()
    assert seen["body"] == {"a": 1} and seen["query"] == "1" and seen["header"] == "yes"
    assert seen["stage"] == "api"
    assert 0 < seen["remaining_ms"] <= 5000
    assert response.headers["x-amzn-requestid"]


def test_concurrent_invocations_never_share_an_environment() -> None:
    """Powertools keeps the current event in one attribute: two invocations in one
    environment at once would read each other's event. Each gets its own."""

    async def scenario(client: httpx.AsyncClient, app: ApiGatewayEmulator) -> list[Any]:
        async def one(i: int) -> Any:
            response = await client.post("/v1/things", json={"i": i}, headers={"x-sleep": "0.05"})
            assert response.status_code == 200, response.text
            return response.json()

        return list(await asyncio.gather(*(one(i) for i in range(24))))

    config = settings(handler="tests.unit.apigw_powertools.handler", lambda_concurrency=4)
    answers = run(config, scenario)
    assert [a["first"] for a in answers] == [{"i": i} for i in range(24)]
    assert [a["body"] for a in answers] == [{"i": i} for i in range(24)]
    assert 1 <= len({a["pid"] for a in answers}) <= 4


def test_the_pool_size_is_enforced_and_invocations_beyond_it_wait() -> None:
    async def scenario(client: httpx.AsyncClient, app: ApiGatewayEmulator) -> list[Any]:
        responses = await asyncio.gather(
            *(client.post("/v1/x", headers={"x-sleep": "0.3"}, content=str(i)) for i in range(6))
        )
        assert pool_of(app).environments <= 2
        return [r.json() for r in responses if r.status_code == 200]

    answers = run(settings(lambda_concurrency=2), scenario)
    assert len(answers) == 6  # none dropped
    assert sorted(a["body"] for a in answers) == [str(i) for i in range(6)]
    assert len({a["pid"] for a in answers}) <= 2
    moments = sorted([(a["started"], 1) for a in answers] + [(a["ended"], -1) for a in answers])
    running = peak = 0
    for _, step in moments:
        running += step
        peak = max(peak, running)
    assert peak <= 2


def test_an_environment_cold_starts_once_then_keeps_its_globals() -> None:
    async def scenario(client: httpx.AsyncClient, app: ApiGatewayEmulator) -> list[Any]:
        return [(await client.get("/v1/x")).json() for _ in range(3)]

    first, second, third = run(settings(lambda_concurrency=1), scenario)
    assert first["pid"] == second["pid"] == third["pid"]
    assert [first["invocations"], second["invocations"], third["invocations"]] == [1, 2, 3]


def test_the_pool_reports_a_cold_start_once_per_environment() -> None:
    async def main() -> list[Any]:
        pool = LambdaPool(LambdaSettings(handler=f"{HANDLERS}.echo", concurrency=1))
        try:
            event = {"headers": {}, "body": None}
            return [await pool.invoke(event, f"r{i}") for i in range(3)]
        finally:
            await pool.aclose()

    outcomes = asyncio.run(main())
    assert [o.cold_start for o in outcomes] == [True, False, False]
    assert len({o.environment for o in outcomes}) == 1
    assert [json.loads(o.result["body"])["request_id"] for o in outcomes] == ["r0", "r1", "r2"]


def test_integration_timeout_answers_504_while_the_function_runs_on(tmp_path: Path) -> None:
    marker = tmp_path / "finished"

    async def scenario(client: httpx.AsyncClient, app: ApiGatewayEmulator) -> None:
        await warm(app)
        started = time.monotonic()
        response = await client.get("/v1/x", headers={"x-sleep": "1.0", "x-marker": str(marker)})
        assert response.status_code == 504
        assert response.json() == gateway_responses.INTEGRATION_TIMEOUT
        assert time.monotonic() - started < 0.9
        assert not marker.exists()
        await asyncio.sleep(2)
        assert marker.exists()  # like a Lambda past API Gateway's wall, it still finished

    run(settings(integration_timeout_seconds=0.3, lambda_concurrency=1), scenario)


def test_after_a_504_the_environment_stays_busy_until_the_function_ends() -> None:
    async def scenario(client: httpx.AsyncClient, app: ApiGatewayEmulator) -> None:
        await warm(app)
        slow = await client.get("/v1/x", headers={"x-sleep": "1.6"})
        assert slow.status_code == 504  # after 1 s; the function runs 0.6 s more
        started = time.monotonic()
        late = await client.post("/v1/x", content="second")
        assert late.status_code == 200
        assert time.monotonic() - started > 0.3  # it waited for the busy environment
        # The only environment served the second request once the first had finished.
        assert late.json()["invocations"] == 3  # the warm-up, the slow one, this one
        assert late.json()["body"] == "second"

    run(settings(integration_timeout_seconds=1.0, lambda_concurrency=1), scenario)


def test_the_lambda_timeout_kills_and_replaces_the_environment() -> None:
    async def scenario(client: httpx.AsyncClient, app: ApiGatewayEmulator) -> None:
        before = (await client.get("/v1/x")).json()["pid"]
        started = time.monotonic()
        response = await client.get("/v1/x", headers={"x-sleep": "5"})
        assert response.status_code == 502
        assert response.json() == gateway_responses.FUNCTION_FAILED
        assert time.monotonic() - started < 3
        after = (await client.get("/v1/x")).json()
        assert after["pid"] != before and after["invocations"] == 1  # a cold start
        with pytest.raises(ProcessLookupError):
            os.kill(before, 0)

    run(settings(lambda_timeout_seconds=1.0, lambda_concurrency=1), scenario)


def test_a_handler_error_answers_502_and_keeps_the_environment() -> None:
    async def scenario(client: httpx.AsyncClient, app: ApiGatewayEmulator) -> None:
        for _ in range(2):
            response = await client.get("/v1/x")
            assert response.status_code == 502
            assert response.json() == gateway_responses.FUNCTION_FAILED
        assert pool_of(app).environments == 1
        died = await client.get("/v1/x", headers={"x-exit": "1"})
        assert died.status_code == 502
        assert pool_of(app).environments == 0

    run(settings(handler=f"{HANDLERS}.crash", lambda_concurrency=1), scenario)


@pytest.mark.parametrize("handler", ["malformed", "unserializable", "no_such_handler"])
def test_a_malformed_result_or_a_failed_init_answers_502(handler: str) -> None:
    async def scenario(client: httpx.AsyncClient, app: ApiGatewayEmulator) -> httpx.Response:
        return await client.get("/v1/x")

    response = run(settings(handler=f"{HANDLERS}.{handler}"), scenario)
    assert response.status_code == 502
    assert response.json() == gateway_responses.FUNCTION_FAILED


def test_payload_over_ten_megabytes_is_refused_before_the_function() -> None:
    async def scenario(client: httpx.AsyncClient, app: ApiGatewayEmulator) -> httpx.Response:
        response = await client.post("/v1/x", content=b"x" * (PAYLOAD_LIMIT_BYTES + 1))
        assert pool_of(app).environments == 0
        return response

    response = run(SETTINGS, scenario)
    assert response.status_code == 413
    assert envelope(response)["code"] == "request_too_large"


def test_binary_bodies_and_multi_value_headers() -> None:
    async def scenario(client: httpx.AsyncClient, app: ApiGatewayEmulator) -> httpx.Response:
        return await client.post("/api/v1/bin", content=b"\xff\xfe")

    response = run(settings(handler=f"{HANDLERS}.binary"), scenario)
    assert response.status_code == 201
    assert response.content == b"\x00\xff"
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
    event = json.loads(base64.b64decode(response.headers["x-event"]))
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\xfe"
    assert event["resource"] == "/{proxy+}"
    assert event["pathParameters"] == {"proxy": "v1/bin"}
    assert event["contextPath"] == "/api/v1/bin"


def test_api_gateways_own_refusals_have_the_error_envelope() -> None:
    async def scenario(client: httpx.AsyncClient, app: ApiGatewayEmulator) -> None:
        for method in ("TRACE", "CONNECT", "PROPFIND"):
            response = await client.request(method, "/v1/models")
            assert response.status_code == 405
            assert envelope(response)["code"] == "method_not_allowed"
        long_url = "/v1/models?q=" + "x" * URL_LIMIT_CHARS
        response = await client.get(long_url)
        assert response.status_code == 414 and envelope(response)["code"] == "request_uri_too_long"
        big = await client.get("/v1/x", headers={"x-big": "x" * HEADER_LIMIT_BYTES})
        many = await client.get("/v1/x", headers=[(f"x-h{i}", "1") for i in range(2000)])
        for response in (big, many):
            assert response.status_code == 431
            assert envelope(response)["code"] == "request_headers_too_large"
            assert len(response.content) < 1000  # nothing of the request echoed
        assert pool_of(app).environments == 0  # none of them reached the function
        fits = await client.get("/v1/x", headers={"x-big": "x" * (HEADER_LIMIT_BYTES - 200)})
        assert fits.status_code == 200

    run(SETTINGS, scenario)


def test_a_path_that_is_not_a_path_has_the_error_envelope() -> None:
    """`OPTIONS *` (or any request target without a leading /) reaches no function."""

    async def scenario(client: httpx.AsyncClient, app: ApiGatewayEmulator) -> None:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http", "method": "OPTIONS", "path": "*", "raw_path": b"*",
            "query_string": b"", "headers": [], "http_version": "1.1", "scheme": "http",
            "server": ("127.0.0.1", 3000), "client": ("127.0.0.1", 5000), "root_path": "",
        }  # fmt: skip
        await app(scope, receive, send)
        assert sent[0]["status"] == 404
        body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
        assert set(body["error"]) == {"message", "type", "param", "code"}

    run(SETTINGS, scenario)
