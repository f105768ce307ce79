"""One suite for every provider in the registry, each against a fake upstream that speaks
its real wire protocol over loopback, through the provider's real SDK or client.

A new provider needs no new test file here: it needs `tests/fakes/<name>.py` (its fake and
`BINDING`), and then this suite checks it like every other.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any

import pytest

from services.canonical import (
    Completion,
    CompletionRequest,
    Finish,
    ImagePart,
    Message,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolDefinition,
    Usage,
    UsageReport,
)
from services.providers import factories
from services.providers.base import Provider
from services.providers.errors import ProviderError
from tests.fakes.registry import FakeBinding, binding, provider_for
from tests.fakes.script import Fault, Script, ToolCallScript
from tests.fakes.upstream import FakeUpstream

SCRIPTED = sorted(name for name in factories() if name != "local")  # the simulator is not scripted
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
WEATHER = ToolDefinition(
    "get_weather",
    "Current weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def test_every_provider_has_a_fake() -> None:
    missing = [name for name in SCRIPTED if binding(name) is None]
    assert not missing, f"providers without a fake in tests/fakes/: {missing}"


@pytest.fixture(scope="module", params=SCRIPTED)
def upstream(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[str, FakeBinding, FakeUpstream, Provider]]:
    name: str = request.param
    bound = binding(name)
    if bound is None:
        pytest.fail(f"no fake for {name}")
    fake = bound.fake().start()
    try:
        yield name, bound, fake, provider_for(name, fake)
    finally:
        fake.stop()


@pytest.fixture
def up(
    upstream: tuple[str, FakeBinding, FakeUpstream, Provider],
) -> Iterator[tuple[str, FakeBinding, FakeUpstream, Provider]]:
    upstream[2].reset()
    yield upstream


def ask(model: str, *messages: Message, **fields: Any) -> CompletionRequest:
    return CompletionRequest(
        model=model, messages=list(messages) or [Message("user", [TextPart("Hi")])], **fields
    )


def complete(provider: Provider, request: CompletionRequest) -> Completion:
    return asyncio.run(provider.complete(request))


def stream(provider: Provider, request: CompletionRequest) -> list[StreamEvent]:
    async def collect() -> list[StreamEvent]:
        return [event async for event in provider.stream(request)]

    return asyncio.run(collect())


def summed_usage(events: list[StreamEvent]) -> Usage:
    total = Usage()
    for event in events:
        if isinstance(event, UsageReport):
            total = total + event.usage
    return total


def test_text(up: tuple[str, FakeBinding, FakeUpstream, Provider]) -> None:
    _, bound, fake, provider = up
    script = Script(
        text=["Hel", "lo", " there"],
        usage=Usage(input_tokens=20, output_tokens=3, cached_input_tokens=8),
    )
    fake.enqueue(script)
    completion = complete(provider, ask(bound.model))
    assert completion.text == "Hello there"
    assert completion.stop_reason == "stop"
    assert completion.usage == script.usage


def test_streamed_text_and_usage(up: tuple[str, FakeBinding, FakeUpstream, Provider]) -> None:
    _, bound, fake, provider = up
    script = Script(
        text=["Hel", "lo", " there"],
        usage=Usage(input_tokens=20, output_tokens=3, cached_input_tokens=8),
    )
    fake.enqueue(script)
    events = stream(provider, ask(bound.model))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hello there"
    assert [e for e in events if isinstance(e, Finish)] == [Finish("stop")]
    assert summed_usage(events) == script.usage  # split usage (Anthropic) is summed, not lost


def test_request_translation_round_trips(
    up: tuple[str, FakeBinding, FakeUpstream, Provider],
) -> None:
    """System prompt, image, tool definitions, a tool call and its result in history, stop
    sequences and max_tokens reach the upstream intact."""
    _, bound, fake, provider = up
    messages = [
        Message("system", [TextPart("You are terse.")]),
        Message(
            "user",
            [
                TextPart("What is in this picture, and the weather in Paris?"),
                ImagePart(f"data:image/png;base64,{PNG}"),
            ],
        ),
        Message(
            "assistant", [], tool_calls=[ToolCall("call_1", "get_weather", '{"city": "Paris"}')]
        ),
        Message("tool", [TextPart('{"temp_c": 21}')], tool_call_id="call_1"),
    ]
    fake.enqueue(Script())
    complete(provider, ask(bound.model, *messages, tools=[WEATHER], max_tokens=77, stop=["END"]))
    seen = fake.canonical_request(fake.requests[-1])
    assert seen["model"] == bound.model
    assert seen["max_tokens"] == 77
    assert seen["stop"] == ["END"]
    assert [t.name for t in seen["tools"]] == ["get_weather"]
    assert seen["tools"][0].parameters == WEATHER.parameters
    roles = [m.role for m in seen["messages"]]
    assert roles == ["system", "user", "assistant", "tool"]
    assert seen["messages"][0].text == "You are terse."
    image = [p for p in seen["messages"][1].content if isinstance(p, ImagePart)]
    assert len(image) == 1 and PNG in image[0].url
    assert seen["messages"][2].tool_calls[0].name == "get_weather"
    assert seen["messages"][2].tool_calls[0].id == "call_1"
    assert seen["messages"][3].tool_call_id == "call_1"
    assert '"temp_c": 21' in seen["messages"][3].text


def test_tool_calls_out(up: tuple[str, FakeBinding, FakeUpstream, Provider]) -> None:
    _, bound, fake, provider = up
    call = ToolCallScript("call_9", "get_weather", ['{"ci', 'ty": "Pa', 'ris"}'])
    script = Script(text=[], tool_calls=[call], stop="tool_calls")
    fake.enqueue(script)
    completion = complete(provider, ask(bound.model, tools=[WEATHER]))
    assert completion.stop_reason == "tool_calls"
    assert completion.tool_calls == [ToolCall("call_9", "get_weather", '{"city": "Paris"}')]


def test_streamed_tool_call_deltas_in_order(
    up: tuple[str, FakeBinding, FakeUpstream, Provider],
) -> None:
    _, bound, fake, provider = up
    calls = [
        ToolCallScript("call_a", "get_weather", ['{"city":', ' "Paris"}']),
        ToolCallScript("call_b", "get_weather", ['{"city":', ' "Oslo"}']),
    ]
    fake.enqueue(Script(text=[], tool_calls=calls, stop="tool_calls"))
    events = stream(provider, ask(bound.model, tools=[WEATHER]))
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    by_index: dict[int, list[ToolCallDelta]] = {}
    for delta in deltas:
        by_index.setdefault(delta.index, []).append(delta)
    assert sorted(by_index) == [0, 1]
    for index, expected in enumerate(calls):
        parts = by_index[index]
        assert parts[0].id == expected.id and parts[0].name == expected.name
        assert "".join(p.arguments for p in parts) == expected.arguments
    assert [e for e in events if isinstance(e, Finish)] == [Finish("tool_calls")]


@pytest.mark.parametrize("stop", ["length", "content_filter"])
def test_stop_reasons(up: tuple[str, FakeBinding, FakeUpstream, Provider], stop: str) -> None:
    _, bound, fake, provider = up
    fake.enqueue(Script(stop=stop), Script(stop=stop))  # type: ignore[arg-type]
    assert complete(provider, ask(bound.model)).stop_reason == stop
    assert [e for e in stream(provider, ask(bound.model)) if isinstance(e, Finish)] == [
        Finish(stop)
    ]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "retryable", "client_status"),
    [(429, True, 429), (500, True, 502), (400, False, 400), (401, False, 502), (404, False, 404)],
)
def test_upstream_errors_map_to_provider_errors(
    up: tuple[str, FakeBinding, FakeUpstream, Provider],
    status: int,
    retryable: bool,
    client_status: int,
) -> None:
    _, bound, fake, provider = up
    fake.enqueue(
        Script(
            fault=Fault(
                "status",
                status=status,
                message="upstream says no",
                retry_after=2 if status == 429 else None,
            )
        )
    )
    with pytest.raises(ProviderError) as info:
        complete(provider, ask(bound.model))
    error = info.value
    assert error.retryable is retryable
    assert error.status == client_status
    assert "upstream says no" in error.message
    if status == 429:
        assert error.retry_after == 2
    assert len(fake.requests) == 1  # the adapter itself never retries: the router does


def test_connection_reset_is_a_retryable_error(
    up: tuple[str, FakeBinding, FakeUpstream, Provider],
) -> None:
    _, bound, fake, provider = up
    fake.enqueue(Script(fault=Fault("reset")))
    with pytest.raises(ProviderError) as info:
        complete(provider, ask(bound.model))
    assert info.value.retryable


def test_malformed_stream_chunk_is_an_error_not_a_hang(
    up: tuple[str, FakeBinding, FakeUpstream, Provider],
) -> None:
    _, bound, fake, provider = up
    fake.enqueue(Script(text=["a", "b", "c", "d"], fault=Fault("malformed", after_chunks=2)))
    with pytest.raises(ProviderError):
        stream(provider, ask(bound.model))
