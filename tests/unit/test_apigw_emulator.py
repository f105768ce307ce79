"""The API Gateway emulator speaks the REST proxy event format and enforces the wall."""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import APIGatewayRestResolver
from starlette.testclient import TestClient

from devstack.apigw import PAYLOAD_LIMIT_BYTES, EmulatorSettings, create_app
from services.frontdoor import gateway_responses

SETTINGS = EmulatorSettings(integration_timeout_seconds=0.3, lambda_timeout_seconds=5, stage="api")


def emulator(handler: Any, settings: EmulatorSettings = SETTINGS) -> TestClient:
    return TestClient(create_app(settings, handler=handler))


def test_event_is_what_powertools_resolves() -> None:
    resolver = APIGatewayRestResolver()
    seen: dict[str, Any] = {}

    @resolver.post("/v1/things")
    def things() -> dict[str, Any]:
        event = resolver.current_event
        seen.update(
            body=event.json_body,
            query=event.get_query_string_value("q"),
            header=event.headers.get("x-custom"),
            stage=event.request_context.stage,
        )
        return {"ok": True}

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen["remaining"] = context.get_remaining_time_in_millis()
        return resolver.resolve(event, context)

    response = emulator(handler).post(
        "/api/v1/things?q=1", json={"a": 1}, headers={"x-custom": "yes"}
    )
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert seen["body"] == {"a": 1} and seen["query"] == "1" and seen["header"] == "yes"
    assert seen["stage"] == "api"
    assert 0 < seen["remaining"] <= 5000


def test_integration_timeout_answers_504_while_the_function_runs_on() -> None:
    finished = threading.Event()

    def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
        time.sleep(0.8)
        finished.set()
        return {"statusCode": 200, "body": "late"}

    started = time.monotonic()
    response = emulator(slow).get("/v1/anything")
    assert response.status_code == 504
    assert response.json() == gateway_responses.INTEGRATION_TIMEOUT
    assert time.monotonic() - started < 0.75
    assert not finished.is_set()
    assert finished.wait(2)  # like a Lambda past API Gateway's wall, it still finishes


def test_crash_and_malformed_result_answer_502() -> None:
    def crash(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise RuntimeError("boom")

    def malformed(event: dict[str, Any], context: Any) -> Any:
        return "not a proxy result"

    for handler in (crash, malformed):
        response = emulator(handler).get("/v1/x")
        assert response.status_code == 502
        assert response.json() == gateway_responses.FUNCTION_FAILED


def test_payload_over_ten_megabytes_is_refused_before_the_function() -> None:
    called = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        called.append(1)
        return {"statusCode": 200, "body": ""}

    response = emulator(handler).post("/v1/x", content=b"x" * (PAYLOAD_LIMIT_BYTES + 1))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert not called


def test_binary_bodies_and_multi_value_headers() -> None:
    seen = {}

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen["event"] = event
        return {
            "statusCode": 201,
            "headers": {"content-type": "application/octet-stream"},
            "multiValueHeaders": {"set-cookie": ["a=1", "b=2"]},
            "body": base64.b64encode(b"\x00\xff").decode(),
            "isBase64Encoded": True,
        }

    response = emulator(handler).post("/v1/bin", content=b"\xff\xfe")
    assert response.status_code == 201
    assert response.content == b"\x00\xff"
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
    event = seen["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\xfe"
    assert event["resource"] == "/{proxy+}"
    assert event["pathParameters"] == {"proxy": "v1/bin"}
    assert event["requestContext"]["path"] == "/api/v1/bin"
