"""Anthropic Messages inbound: validation, translation to canonical, and the response and
SSE stream built from canonical results, read back by the official SDK's own types."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from anthropic.types import Message as SDKMessage

from services.chat.messages import (
    message_json,
    parse_messages_request,
    stream_frames,
    to_canonical,
)
from services.errors import InvalidRequest, UpstreamError
from services.providers.base import (
    Completion,
    Finish,
    ImagePart,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from services.providers.errors import timed_out
from services.tenancy.auth import bearer_token

BASE: dict[str, Any] = {
    "model": "m",
    "max_tokens": 10,
    "messages": [{"role": "user", "content": "hi"}],
}


def parse(**fields: Any) -> Any:
    return parse_messages_request({**BASE, **fields})


def test_a_conversation_with_tools_translates_to_canonical() -> None:
    request = parse(
        system=[{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "21 C"},
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],
        tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],
        tool_choice={"type": "tool", "name": "get_weather"},
        stop_sequences=["END"],
        metadata={"user_id": "u1"},
    )
    canonical = to_canonical(request, "provider-model")
    assert canonical.model == "provider-model"
    assert [m.role for m in canonical.messages] == ["system", "user", "assistant", "tool", "user"]
    assert canonical.messages[0].text == "Be terse."
    assert canonical.messages[1].content[1] == ImagePart("data:image/png;base64,AAAA")
    assert canonical.messages[2].tool_calls == [
        ToolCall("toolu_1", "get_weather", '{"city": "Paris"}')
    ]
    assert canonical.messages[3].tool_call_id == "toolu_1" and canonical.messages[3].text == "21 C"
    assert canonical.tool_choice == {"type": "function", "function": {"name": "get_weather"}}
    assert canonical.stop == ["END"] and canonical.user == "u1" and canonical.max_tokens == 10


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"top_k": 5}, "top_k"),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "thinking"),
        (
            {"tool_choice": {"type": "any", "disable_parallel_tool_use": True}},
            "tool_choice.disable_parallel_tool_use",
        ),
        ({"tool_choice": {"type": "tool"}}, "tool_choice.name"),
        ({"mcp_servers": []}, "mcp_servers"),
        ({"temperature": 1.5}, "temperature"),
        (
            {"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
            "messages[0].content[0]",
        ),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "tool_use", "id": "a", "name": "b", "input": {}}],
                    }
                ]
            },
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "a", "is_error": True}],
                    }
                ]
            },
            "messages[0].content[0].is_error",
        ),
    ],
)
def test_what_cannot_be_translated_is_a_400_naming_the_field(
    fields: dict[str, Any], param: str
) -> None:
    body = {k: v for k, v in {**BASE, **fields}.items() if v is not None}
    with pytest.raises(InvalidRequest) as info:
        to_canonical(parse_messages_request(body), "m")
    assert info.value.param == param


def test_message_json_is_a_message_the_sdk_reads() -> None:
    completion = Completion(
        text="Checking.",
        stop_reason="tool_calls",
        usage=Usage(input_tokens=20, output_tokens=5, cached_input_tokens=8),
        tool_calls=[ToolCall("call_1", "get_weather", '{"city": "Paris"}')],
    )
    message = SDKMessage.model_validate(message_json(completion, id="msg_1", model="openai/gpt"))
    assert message.stop_reason == "tool_use"
    assert message.content[1].type == "tool_use" and message.content[1].input == {"city": "Paris"}
    assert message.usage.input_tokens == 12 and message.usage.cache_read_input_tokens == 8
    assert message.usage.output_tokens == 5


def test_tool_arguments_that_are_not_an_object_cannot_be_answered() -> None:
    completion = Completion("", "tool_calls", Usage(), [ToolCall("c", "f", "{broken")])
    with pytest.raises(UpstreamError):
        message_json(completion, id="msg_1", model="m")


async def _events(
    items: list[StreamEvent], error: Exception | None = None
) -> AsyncIterator[StreamEvent]:
    for item in items:
        yield item
    if error is not None:
        raise error


def frames(
    items: list[StreamEvent], error: Exception | None = None
) -> list[tuple[str, dict[str, Any]]]:
    async def collect() -> list[bytes]:
        return [f async for f in stream_frames("m", [], _events(items, error))]

    out = []
    for raw in asyncio.run(collect()):
        head, data = raw.decode().strip().split("\n")
        out.append((head.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


def test_stream_opens_and_closes_blocks_and_carries_usage() -> None:
    events = frames(
        [
            UsageReport(Usage(input_tokens=20, cached_input_tokens=8)),
            TextDelta("Let me check."),
            ToolCallDelta(0, id="call_a", name="get_weather"),
            ToolCallDelta(0, arguments='{"city":'),
            ToolCallDelta(0, arguments=' "Paris"}'),
            ToolCallDelta(1, id="call_b", name="get_weather", arguments='{"city": "Oslo"}'),
            Finish("tool_calls"),
            UsageReport(Usage(output_tokens=9)),
        ]
    )
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]  # fmt: skip
    assert all(name == data["type"] for name, data in events)
    assert events[0][1]["message"]["usage"]["input_tokens"] == 12
    assert events[0][1]["message"]["usage"]["cache_read_input_tokens"] == 8
    assert events[4][1] == {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}},
    }
    assert [d["index"] for n, d in events if n == "content_block_delta"] == [0, 1, 1, 2]
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"]["output_tokens"] == 9 and delta["usage"]["input_tokens"] == 12


def test_a_failure_after_the_first_byte_ends_the_stream_with_an_error_event() -> None:
    events = frames([TextDelta("Hel")], timed_out("openai", "idle gap between chunks", 30))
    assert [name for name, _ in events] == [
        "message_start", "content_block_start", "content_block_delta", "error",
    ]  # fmt: skip
    assert events[-1][1]["type"] == "error"  # Anthropic's envelope, with its error type
    assert events[-1][1]["error"]["type"] == "timeout_error"


def test_x_api_key_is_an_api_key_and_authorization_wins() -> None:
    assert bearer_token({"x-api-key": "sk-1"}) == "sk-1"
    assert bearer_token({"x-api-key": "sk-1", "authorization": "Bearer sk-2"}) == "sk-2"
