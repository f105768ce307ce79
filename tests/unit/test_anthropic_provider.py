"""The anthropic adapter where the conformance suite does not reach: tool_choice forms,
turn merging, the max_tokens default, what cannot be translated, and errors in a stream."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.canonical import (
    CompletionRequest,
    ImagePart,
    Message,
    TextPart,
    ToolCall,
    ToolDefinition,
)
from services.errors import InvalidRequest
from services.providers.anthropic import AnthropicProvider, AnthropicSettings, create
from services.providers.errors import ProviderError
from services.wire.anthropic import DEFAULT_MAX_TOKENS, request_body, stop_reason
from tests.fakes.anthropic import API_KEY, MODEL, FakeAnthropic
from tests.fakes.http import FakeHTTPServer, Request, Writer
from tests.fakes.registry import provider_for
from tests.fakes.script import Fault, Script

TOOL = ToolDefinition("get_weather", "Weather", {"type": "object"})


def user(text: str) -> Message:
    return Message("user", [TextPart(text)])


def body(*messages: Message, **fields: Any) -> dict[str, Any]:
    request = CompletionRequest(model="claude-x", messages=list(messages) or [user("hi")], **fields)
    return request_body(request, DEFAULT_MAX_TOKENS)


@pytest.mark.parametrize(
    ("choice", "native"),
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "tool", "name": "get_weather"},
        ),
    ],
)
def test_tool_choice_forms(choice: Any, native: dict[str, Any]) -> None:
    assert body(tools=[TOOL], tool_choice=choice)["tool_choice"] == native


@pytest.mark.parametrize(
    "choice", ["sometimes", {"type": "function"}, {"type": "custom", "name": "x"}]
)
def test_tool_choice_that_cannot_be_expressed_is_a_400(choice: Any) -> None:
    with pytest.raises(InvalidRequest) as info:
        body(tools=[TOOL], tool_choice=choice)
    assert info.value.param == "tool_choice"
    assert info.value.code == "unsupported_by_provider"


def test_tool_choice_without_tools() -> None:
    assert "tool_choice" not in body(tool_choice="auto")
    with pytest.raises(InvalidRequest) as info:
        body(tool_choice="required")
    assert info.value.param == "tool_choice"


def test_system_and_developer_messages_join_the_system_prompt() -> None:
    native = body(
        Message("system", [TextPart("Be terse.")]),
        user("hi"),
        Message("developer", [TextPart("Answer in French.")]),
    )
    assert native["system"] == [
        {"type": "text", "text": "Be terse."},
        {"type": "text", "text": "Answer in French."},
    ]
    assert [m["role"] for m in native["messages"]] == ["user"]


def test_consecutive_same_role_messages_merge() -> None:
    native = body(
        user("one"),
        user("two"),
        Message(
            "assistant",
            [TextPart("")],  # an empty text part (OpenAI's content: "") is not sent
            tool_calls=[
                ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
                ToolCall("call_2", "get_weather", '{"city": "Oslo"}'),
            ],
        ),
        Message("tool", [TextPart("21")], tool_call_id="call_1"),
        Message("tool", [TextPart("9")], tool_call_id="call_2"),
        user("and tomorrow?"),
    )
    messages = native["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == [
        {"type": "text", "text": "one"},
        {"type": "text", "text": "two"},
    ]
    assert messages[1]["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Oslo"}},
    ]
    assert messages[2]["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "call_1",
            "content": [{"type": "text", "text": "21"}],
        },
        {
            "type": "tool_result",
            "tool_use_id": "call_2",
            "content": [{"type": "text", "text": "9"}],
        },
        {"type": "text", "text": "and tomorrow?"},
    ]


def test_max_tokens_defaults_when_the_request_sets_none() -> None:
    assert body()["max_tokens"] == DEFAULT_MAX_TOKENS
    assert body(max_tokens=12)["max_tokens"] == 12
    provider = create({"ANTHROPIC_API_KEY": "k", "SWITCHBOARD_ANTHROPIC_DEFAULT_MAX_TOKENS": "300"})
    assert provider is not None and provider.settings.default_max_tokens == 300


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]", '"Paris"'])
def test_tool_arguments_that_are_not_a_json_object_are_a_400_naming_them(arguments: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        body(
            user("hi"),
            Message("assistant", [], tool_calls=[ToolCall("c", "get_weather", arguments)]),
            Message("tool", [TextPart("x")], tool_call_id="c"),
        )
    assert info.value.status == 400
    assert info.value.param == "messages[1].tool_calls[0].function.arguments"


def test_images_by_url_and_by_data_url() -> None:
    native = body(
        Message(
            "user",
            [ImagePart("https://example.com/cat.png"), ImagePart("data:image/gif;base64,R0lG")],
        )
    )
    assert [b["source"] for b in native["messages"][0]["content"]] == [
        {"type": "url", "url": "https://example.com/cat.png"},
        {"type": "base64", "media_type": "image/gif", "data": "R0lG"},
    ]


@pytest.mark.parametrize(
    ("message", "param"),
    [
        (Message("user", [ImagePart("data:image/tiff;base64,AAAA")]), "messages[0].content[0]"),
        (Message("user", [ImagePart("ftp://example.com/cat.png")]), "messages[0].content[0]"),
        (Message("system", [ImagePart("https://example.com/cat.png")]), "messages[0].content[0]"),
        (Message("user", [TextPart("hi")], name="alice"), "messages[0].name"),
    ],
)
def test_what_anthropic_cannot_express_is_a_400_naming_it(message: Message, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        body(message)
    assert info.value.param == param


def test_temperature_above_anthropics_range_is_a_400() -> None:
    assert body(temperature=0.5)["temperature"] == 0.5
    with pytest.raises(InvalidRequest) as info:
        body(temperature=1.5)
    assert info.value.param == "temperature"


def test_stop_sequences_top_p_and_user() -> None:
    native = body(stop=["END"], top_p=0.9, user="u-1")
    assert native["stop_sequences"] == ["END"]
    assert native["top_p"] == 0.9
    assert native["metadata"] == {"user_id": "u-1"}


@pytest.mark.parametrize(
    ("native", "canonical"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "length"),
        ("something_new", "stop"),
    ],
)
def test_stop_reasons(native: str, canonical: str) -> None:
    assert stop_reason(native) == canonical


def test_create_needs_a_key_and_lists_models() -> None:
    assert create({}) is None
    default = create({"ANTHROPIC_API_KEY": "k"})
    assert default is not None and default.models()
    chosen = create({"ANTHROPIC_API_KEY": "k", "SWITCHBOARD_ANTHROPIC_MODELS": "a, b"})
    assert chosen is not None and chosen.models() == ["a", "b"]


async def _error_mid_stream(request: Request, writer: Writer) -> None:
    await writer.start(200, {"content-type": "text/event-stream"})
    await writer.write(
        b'event: message_start\ndata: {"type": "message_start", "message": {"id": "m", "type": '
        b'"message", "role": "assistant", "model": "x", "content": [], "stop_reason": null, '
        b'"stop_sequence": null, "usage": {"input_tokens": 5, "output_tokens": 1}}}\n\n'
    )
    await writer.write(
        b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", '
        b'"message": "Overloaded"}}\n\n'
    )
    await writer.end()


def test_an_overloaded_error_event_mid_stream_is_retryable() -> None:
    server = FakeHTTPServer(_error_mid_stream).start()
    provider = AnthropicProvider(AnthropicSettings(api_key=API_KEY, base_url=server.url))
    request = CompletionRequest(model="x", messages=[user("hi")])

    async def run() -> list[Any]:
        seen: list[Any] = []
        try:
            async for event in provider.stream(request):
                seen.append(event)
        finally:
            await provider.aclose()
        return seen

    try:
        with pytest.raises(ProviderError) as info:
            asyncio.run(run())
    finally:
        server.stop()
    assert info.value.retryable
    assert "Overloaded" in info.value.message


def test_overloaded_529_is_retryable_and_keeps_retry_after() -> None:
    fake = FakeAnthropic().start()
    provider = provider_for("anthropic", fake)
    fake.enqueue(Script(fault=Fault("status", status=529, retry_after=3, message="Overloaded")))

    async def run() -> None:
        try:
            await provider.complete(CompletionRequest(model=MODEL, messages=[user("hi")]))
        finally:
            await provider.aclose()

    try:
        with pytest.raises(ProviderError) as info:
            asyncio.run(run())
    finally:
        fake.stop()
    assert info.value.retryable and info.value.retry_after == 3
    assert info.value.upstream_status == 529
