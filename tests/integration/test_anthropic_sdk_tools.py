"""The anthropic SDK streaming a tool call whose upstream is an OpenAI model: the worker
reads the OpenAI fake's Chat Completions stream and answers in Anthropic's events."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest

from devstack.stack import LocalStack, StackConfig
from tests.fakes import openai as openai_fake
from tests.fakes.script import Script, ToolCallScript

WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[openai_fake.FakeOpenAI]:
    fake = openai_fake.FakeOpenAI()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def openai_stack(upstream: openai_fake.FakeOpenAI) -> Iterator[LocalStack]:
    config = StackConfig(extra_env=dict(openai_fake.BINDING.env(upstream.url)))
    with LocalStack(config) as running:
        yield running


def test_streamed_tool_call_from_an_openai_upstream(
    openai_stack: LocalStack, upstream: openai_fake.FakeOpenAI
) -> None:
    calls = [
        ToolCallScript("call_a", "get_weather", ['{"city":', ' "Paris"}']),
        ToolCallScript("call_b", "get_weather", ['{"city":', ' "Oslo"}']),
    ]
    upstream.enqueue(Script(text=["Checking."], tool_calls=calls, stop="tool_calls"))
    client = anthropic.Anthropic(
        base_url=openai_stack.stream_url[: -len("/v1")], api_key=openai_stack.api_key, max_retries=0
    )
    with client.messages.stream(
        model=f"openai/{openai_fake.MODEL}",
        max_tokens=100,
        messages=[{"role": "user", "content": "Weather in Paris and Oslo?"}],
        tools=[WEATHER],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [b.type for b in final.content] == ["text", "tool_use", "tool_use"]
    tool_uses = [b for b in final.content if b.type == "tool_use"]
    assert [(b.id, b.name, b.input) for b in tool_uses] == [
        ("call_a", "get_weather", {"city": "Paris"}),
        ("call_b", "get_weather", {"city": "Oslo"}),
    ]
    assert final.usage.output_tokens == 3
    sent = upstream.canonical_request(upstream.requests[-1])
    assert [t.name for t in sent["tools"]] == ["get_weather"]
    assert sent["max_tokens"] == 100
