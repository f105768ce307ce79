"""`/v1/messages` answers errors in Anthropic's envelope, with Anthropic's error types, so
the official `anthropic` SDK raises the exception class it raises for Anthropic itself, with
the message; the other routes keep OpenAI's envelope. The SDK talks to the worker app
served by uvicorn on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anthropic
import httpx
import openai
import pytest

from containers.worker.app import create_app
from containers.worker.settings import WorkerSettings
from services.errors import (
    APIError,
    GatewayTimeout,
    InvalidRequest,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    UpstreamError,
    envelope_for,
)
from services.providers.base import (
    Completion,
    CompletionRequest,
    Provider,
    StreamEvent,
    TextDelta,
    Usage,
)
from services.tenancy.auth import Authenticator
from services.tenancy.keys import ApiKey
from services.tenancy.limits import Admission
from tests.serving import serving

KEY = "sb-test-key"
FAILURES: dict[str, Exception] = {
    "rate": RateLimited("Slow down: 60 requests per minute.", headers={"retry-after": "1"}),
    "down": UpstreamError("The provider answered 500."),
    "busy": ServiceUnavailable("Every provider for 'busy' is unavailable right now."),
    "slow": GatewayTimeout("The provider did not answer within 30 s."),
    "refused": InvalidRequest("'temperature' is out of range.", param="temperature"),
    "crash": RuntimeError("a bug"),
}


class Faulty(Provider):
    """Fails each model with its `FAILURES` entry; `fine` answers, `midway` fails mid-stream."""

    name = "faulty"

    def models(self) -> list[str]:
        return [*FAILURES, "fine", "midway"]

    async def complete(self, request: CompletionRequest) -> Completion:
        if request.model in FAILURES:
            raise FAILURES[request.model]
        return Completion("ok", "stop", Usage(1, 1))

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        yield TextDelta("partial ")
        raise UpstreamError("The provider dropped the stream.")


class OneKey:
    def lookup(self, secret: str) -> ApiKey | None:
        if secret != KEY:
            return None
        return ApiKey("key_1", "acme", "sb-test", "test", "active", 0)


class NoTenants:
    def get_item(self, **request: object) -> dict[str, object]:
        return {}


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    settings = WorkerSettings(table="t", max_request_bytes=4096)
    app = create_app(
        settings,
        providers={"faulty": Faulty()},
        authenticator=Authenticator(OneKey()),  # type: ignore[arg-type]
        admission=Admission(NoTenants(), "t"),
    )
    with serving(app) as base:
        yield base


def claude(url: str, key: str = KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)


def ask(client: anthropic.Anthropic, model: str, max_tokens: int = 50) -> None:
    client.messages.create(
        model=model, max_tokens=max_tokens, messages=[{"role": "user", "content": "Hi"}]
    )


@pytest.mark.parametrize(
    ("model", "error_class", "error_type"),
    [
        ("rate", anthropic.RateLimitError, "rate_limit_error"),
        ("down", anthropic.InternalServerError, "api_error"),
        ("busy", anthropic.ServiceUnavailableError, "overloaded_error"),
        ("slow", anthropic.GatewayTimeoutError, "timeout_error"),
        ("refused", anthropic.BadRequestError, "invalid_request_error"),
        ("crash", anthropic.InternalServerError, "api_error"),
        ("nope", anthropic.NotFoundError, "not_found_error"),
    ],
)
def test_the_sdk_raises_anthropics_class_with_the_message(
    url: str, model: str, error_class: type[anthropic.APIStatusError], error_type: str
) -> None:
    with pytest.raises(error_class) as caught:
        ask(claude(url), f"faulty/{model}" if model != "nope" else "faulty/nope")
    error = caught.value
    assert error.type == error_type
    assert error.body == {
        "type": "error",
        "error": {"type": error_type, "message": error.api_message},
    }
    expected = FAILURES.get(model)
    if isinstance(expected, APIError):
        assert error.api_message == expected.message
    elif model == "crash":
        assert error.api_message == "The server had an error while processing your request."
    else:
        assert error.api_message is not None and "faulty/nope" in error.api_message


def test_authentication_validation_and_size_errors(url: str) -> None:
    with pytest.raises(anthropic.AuthenticationError) as key:
        ask(claude(url, "sb-wrong"), "faulty/fine")
    assert (key.value.type, key.value.api_message) == (
        "authentication_error",
        "Incorrect API key provided.",
    )
    with pytest.raises(anthropic.BadRequestError) as bad:
        ask(claude(url), "faulty/fine", max_tokens=0)
    assert bad.value.type == "invalid_request_error" and "max_tokens" in str(bad.value.api_message)
    with pytest.raises(anthropic.ContentTooLargeError) as large:
        claude(url).messages.create(
            model="faulty/fine", max_tokens=5, messages=[{"role": "user", "content": "x" * 8000}]
        )
    assert large.value.type == "request_too_large"
    assert "4096 bytes" in str(large.value.api_message)
    # Even what the router answers itself: a wrong method.
    wrong = httpx.get(f"{url}/v1/messages", headers={"x-api-key": KEY})
    assert wrong.status_code == 405
    assert wrong.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": wrong.json()["error"]["message"]},
    }


def test_a_failure_mid_stream_is_an_anthropic_error_event(url: str) -> None:
    stream = claude(url).messages.stream(
        model="faulty/midway", max_tokens=50, messages=[{"role": "user", "content": "Hi"}]
    )
    with pytest.raises(anthropic.APIStatusError) as caught, stream as events:
        for _ in events:
            pass
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "api_error", "message": "The provider dropped the stream."},
    }


def test_openai_routes_keep_openais_envelope(url: str) -> None:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(
            model="faulty/rate", messages=[{"role": "user", "content": "Hi"}]
        )
    assert caught.value.body == {
        "message": "Slow down: 60 requests per minute.",
        "type": "rate_limit_error",
        "param": None,
        "code": "rate_limit_exceeded",
    }


def test_envelope_for_any_path_a_door_sees() -> None:
    error = NotFound("No such model.", code="model_not_found")
    anthropic_shape = {
        "type": "error",
        "error": {"type": "not_found_error", "message": "No such model."},
    }
    for path in ("/v1/messages", "/api/v1/messages", "/v1/messages/", "/v1/messages/count_tokens"):
        assert envelope_for(path, error) == anthropic_shape, path
    for path in ("/v1/chat/completions", "/v1/messagesx", "/v1/conversations/c/messages2"):
        assert envelope_for(path, error) == error.body(), path
    assert envelope_for("/v1/messages", APIError("x", status=418))["error"]["type"] == (
        "invalid_request_error"
    )
    assert envelope_for("/v1/messages", APIError("x", status=507))["error"]["type"] == "api_error"
