"""The official anthropic SDK, unchanged, against both front doors of the local stack."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from devstack.stack import LocalStack
from tests.integration.doors import api_and_stream

QUESTION = "What is Switchboard?"
EXPECTED = (
    '[local simulator, not a model] Turn 1: you said "What is Switchboard?". '
    'I received 2 messages; the first user message was "What is Switchboard?".'
)


def client(stack: LocalStack, door: str) -> anthropic.Anthropic:
    url = {"api": stack.api_url, "stream": stack.stream_url}[door]
    return anthropic.Anthropic(base_url=url[: -len("/v1")], api_key=stack.api_key, max_retries=0)


@pytest.mark.parametrize("door", api_and_stream())
def test_message(stack: LocalStack, door: str) -> None:
    message = client(stack, door).messages.create(
        model="local/simulator",
        max_tokens=200,
        system="Be brief.",
        messages=[{"role": "user", "content": QUESTION}],
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.model == "local/simulator"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].type == "text" and message.content[0].text == EXPECTED
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == len(EXPECTED.split())
    assert message.usage.input_tokens > 0


@pytest.mark.parametrize("door", api_and_stream())
def test_streamed_message(stack: LocalStack, door: str) -> None:
    with client(stack, door).messages.stream(
        model="local/simulator",
        max_tokens=200,
        system="Be brief.",
        messages=[{"role": "user", "content": QUESTION}],
    ) as stream:
        kinds = []
        for event in stream:
            kinds.append(event.type)
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert kinds.count("text") == len(EXPECTED.split())  # one text event per simulator chunk
    assert final.content[0].type == "text" and final.content[0].text == EXPECTED
    assert final.stop_reason == "end_turn"
    # The simulator reports usage at the end: message_delta's cumulative counts carry it.
    assert final.usage.output_tokens == len(EXPECTED.split())
    assert final.usage.input_tokens > 0


def test_length_stop_reason(stack: LocalStack) -> None:
    message = client(stack, "stream").messages.create(
        model="local/simulator", max_tokens=3, messages=[{"role": "user", "content": QUESTION}]
    )
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3


@pytest.mark.parametrize("door", api_and_stream())
def test_bad_request_names_the_field(stack: LocalStack, door: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client(stack, door).messages.create(
            model="local/simulator",
            max_tokens=50,
            messages=[{"role": "user", "content": QUESTION}],
            tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],
            # No canonical equivalent: refused by name, not dropped.
            tool_choice={"type": "any", "disable_parallel_tool_use": True},
        )
    error = info.value
    assert error.status_code == 400
    assert error.type == "invalid_request_error"
    assert error.api_message is not None
    assert "tool_choice.disable_parallel_tool_use" in error.api_message
    # Anthropic's envelope, as Anthropic itself answers (the message names the field).
    assert error.body == {
        "type": "error",
        "error": {"type": error.type, "message": error.api_message},
    }


@pytest.mark.parametrize("door", api_and_stream())
def test_unknown_model_is_not_found(stack: LocalStack, door: str) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        client(stack, door).messages.create(
            model="nope/nothing", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.api_message is not None and "nope/nothing" in info.value.api_message


@pytest.mark.parametrize("door", [*api_and_stream(), "worker"])
def test_x_api_key_header_is_accepted(stack: LocalStack, door: str) -> None:
    """Anthropic's clients may send the key as `x-api-key` instead of a bearer token."""
    base = {"api": stack.api_url, "stream": stack.stream_url, "worker": f"{stack.worker_url}/v1"}
    body = {
        "model": "local/simulator",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": QUESTION}],
    }
    response = httpx.post(
        f"{base[door]}/messages", json=body, headers={"x-api-key": stack.api_key}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"].startswith("[local simulator")
    refused = httpx.post(
        f"{base[door]}/messages", json=body, headers={"x-api-key": "sk-wrong"}, timeout=30
    )
    assert refused.status_code == 401
