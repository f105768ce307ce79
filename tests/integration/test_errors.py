"""Every input a client can send wrong gets the OpenAI error shape and the right status,
through both front doors, and the worker serves nobody it cannot authenticate with their
own key."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from devstack.stack import LocalStack
from tests.integration.conftest import MAX_REQUEST_BYTES
from tests.integration.doors import api_and_stream

DOORS = api_and_stream()  # every test here but one is of a WORKER route
GOOD = {"model": "local/simulator", "messages": [{"role": "user", "content": "hi"}]}


def base(stack: LocalStack, door: str) -> str:
    return {"api": stack.api_url, "stream": stack.stream_url, "worker": stack.worker_url + "/v1"}[
        door
    ]


def post(
    stack: LocalStack, door: str, *, content: bytes, key: str | None = "valid"
) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if key == "valid":
        headers["authorization"] = f"Bearer {stack.api_key}"
    elif key is not None:
        headers["authorization"] = key
    return httpx.post(
        f"{base(stack, door)}/chat/completions", content=content, headers=headers, timeout=30
    )


def assert_error(
    response: httpx.Response, status: int, code: str | None, param: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    # API Gateway's own answers (the authorizer's 401) carry Anthropic's `type` beside it.
    assert set(body) == {"error"} or (set(body) == {"type", "error"} and body["type"] == "error")
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    assert error["code"] == code
    assert error["param"] == param
    return error


@pytest.mark.parametrize("door", DOORS)
def test_malformed_json(stack: LocalStack, door: str) -> None:
    error = assert_error(
        post(stack, door, content=b'{"model": "local/simulator",'), 400, "invalid_json"
    )
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("door", DOORS)
def test_body_that_is_not_an_object(stack: LocalStack, door: str) -> None:
    assert_error(post(stack, door, content=b"[1, 2]"), 400, "invalid_body")


@pytest.mark.parametrize("door", DOORS)
def test_empty_body(stack: LocalStack, door: str) -> None:
    assert_error(post(stack, door, content=b""), 400, "invalid_body")


@pytest.mark.parametrize("door", DOORS)
def test_missing_messages(stack: LocalStack, door: str) -> None:
    response = post(stack, door, content=b'{"model": "local/simulator"}')
    assert_error(response, 400, "missing_required_parameter", "messages")


@pytest.mark.parametrize("door", DOORS)
def test_invalid_message_role(stack: LocalStack, door: str) -> None:
    content = b'{"model": "local/simulator", "messages": [{"role": "robot", "content": "x"}]}'
    assert_error(post(stack, door, content=content), 400, "invalid_value", "messages[0].role")


@pytest.mark.parametrize("door", DOORS)
def test_unknown_parameter_is_named(stack: LocalStack, door: str) -> None:
    content = b'{"model": "local/simulator", "messages": [{"role": "user", "content": "x"}], "temprature": 1}'
    assert_error(post(stack, door, content=content), 400, "unknown_parameter", "temprature")


@pytest.mark.parametrize("door", DOORS)
def test_unsupported_parameter_is_named(stack: LocalStack, door: str) -> None:
    content = (
        b'{"model": "local/simulator", "messages": [{"role": "user", "content": "x"}], "n": 3}'
    )
    assert_error(post(stack, door, content=content), 400, "unsupported_parameter", "n")


@pytest.mark.parametrize("door", DOORS)
def test_unknown_model(stack: LocalStack, door: str) -> None:
    content = b'{"model": "acme/nonexistent", "messages": [{"role": "user", "content": "x"}]}'
    error = assert_error(post(stack, door, content=content), 404, "model_not_found", "model")
    assert "acme/nonexistent" in error["message"]


def refused_key(door: str, code: str) -> str:
    """Through API Gateway the authorizer refuses every bad key alike: API Gateway gives a
    Lambda authorizer no way to say why (deployed and locally)."""
    return "invalid_api_key" if door == "api" else code


@pytest.mark.parametrize("door", DOORS)
def test_missing_key(stack: LocalStack, door: str) -> None:
    response = post(stack, door, content=b"{}", key=None)
    error = assert_error(response, 401, refused_key(door, "missing_api_key"))
    assert error["type"] == "authentication_error"


@pytest.mark.parametrize("door", DOORS)
def test_wrong_key(stack: LocalStack, door: str) -> None:
    response = post(stack, door, content=b"{}", key="Bearer sb-not-a-real-key-0000000000000")
    assert_error(response, 401, "invalid_api_key")


@pytest.mark.parametrize("door", DOORS)
def test_malformed_authorization_header(stack: LocalStack, door: str) -> None:
    response = post(stack, door, content=b"{}", key=f"Basic {stack.api_key}")
    assert_error(response, 401, refused_key(door, "invalid_authorization_header"))


@pytest.mark.parametrize("door", DOORS)
def test_body_over_the_size_limit(stack: LocalStack, door: str) -> None:
    padding = "x" * (MAX_REQUEST_BYTES + 1)
    content = (
        b'{"model": "local/simulator", "messages": [{"role": "user", "content": "%s"}]}'
        % padding.encode()
    )
    error = assert_error(post(stack, door, content=content), 413, "request_too_large")
    assert str(MAX_REQUEST_BYTES) in error["message"]


@pytest.mark.parametrize("door", ["api", "stream"])
def test_unknown_route_and_wrong_method(stack: LocalStack, door: str) -> None:
    headers = {"authorization": f"Bearer {stack.api_key}"}
    assert_error(httpx.get(f"{base(stack, door)}/nothing-here", headers=headers), 404, None)
    assert_error(
        httpx.get(f"{base(stack, door)}/chat/completions", headers=headers),
        405,
        "method_not_allowed",
    )


FORGED = {
    # What front doors once sent the worker in place of a key: no longer a credential.
    "x-switchboard-internal-token": "guess",
    "x-switchboard-tenant": "dev",
    "x-switchboard-key-id": "key_x",
}


@pytest.mark.parametrize("door", [*DOORS, "worker"])
def test_no_header_but_a_key_speaks_for_a_tenant(stack: LocalStack, door: str) -> None:
    headers = {**FORGED, "content-type": "application/json"}
    response = httpx.post(f"{base(stack, door)}/chat/completions", json=GOOD, headers=headers)
    assert_error(response, 401, refused_key(door, "missing_api_key"))


def test_worker_refuses_unauthenticated_callers(stack: LocalStack) -> None:
    url = f"{stack.worker_url}/v1/chat/completions"
    assert_error(httpx.post(url, json=GOOD), 401, "missing_api_key")
    assert_error(httpx.get(f"{stack.worker_url}/v1/models"), 401, "missing_api_key")
    for internal in ("/internal/runs/run_x/events", "/internal/runs/run_x/cancel"):
        method = "GET" if internal.endswith("events") else "POST"
        response = httpx.request(method, f"{stack.worker_url}{internal}", headers=FORGED)
        assert_error(response, 401, "missing_api_key")
    # The health check is open, and says nothing about the deployment.
    health = httpx.get(f"{stack.worker_url}/health")
    assert health.status_code == 200 and health.json() == {"status": "ok"}


def test_worker_serves_api_keys_either_way_they_are_sent(stack: LocalStack) -> None:
    url = f"{stack.worker_url}/v1/chat/completions"
    assert httpx.post(url, json=GOOD, headers={"x-api-key": stack.api_key}).status_code == 200
    bearer = {"authorization": f"Bearer {stack.api_key}"}
    assert httpx.post(url, json=GOOD, headers=bearer).status_code == 200


@pytest.mark.parametrize("door", DOORS)
def test_sdk_raises_typed_errors(stack: LocalStack, door: str) -> None:
    bad_key = openai.OpenAI(
        base_url=base(stack, door), api_key="sb-wrong-wrong-wrong-wrong", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError) as auth:
        bad_key.chat.completions.create(
            model="local/simulator", messages=[{"role": "user", "content": "x"}]
        )
    assert auth.value.code == "invalid_api_key"
    client = openai.OpenAI(base_url=base(stack, door), api_key=stack.api_key, max_retries=0)
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(
            model="acme/none", messages=[{"role": "user", "content": "x"}]
        )
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="acme/none", messages=[{"role": "user", "content": "x"}], stream=True
        )
