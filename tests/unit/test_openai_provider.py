"""The `openai` and `openai_compatible` adapters where the conformance suite does not reach:
configuration, dialect differences, tool_choice forms, finish-reason edge cases, refusals
of untranslatable requests, timeouts and server quirks. Each runs the real SDK against
the fake upstream over loopback."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from services.config import ConfigError
from services.errors import InvalidRequest
from services.providers import openai as openai_provider
from services.providers import openai_compatible
from services.providers.base import (
    Completion,
    CompletionRequest,
    Finish,
    ImagePart,
    Message,
    Provider,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolDefinition,
    UsageReport,
)
from services.providers.errors import ProviderError
from tests.fakes.http import Request, Writer
from tests.fakes.openai import FakeOpenAI
from tests.fakes.openai_compatible import FakeOpenAICompatible
from tests.fakes.script import Fault, Script, ToolCallScript

WEATHER = ToolDefinition(
    "get_weather",
    "Current weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _clean(fake: FakeOpenAI) -> None:
    fake.reset()


def openai_for(fake: FakeOpenAI, **env: str) -> Provider:
    provider = openai_provider.create(
        {"OPENAI_API_KEY": "sk-test", "SWITCHBOARD_OPENAI_BASE_URL": f"{fake.url}/v1", **env}
    )
    assert provider is not None
    return provider


def compatible_for(fake: FakeOpenAI, **env: str) -> Provider:
    provider = openai_compatible.create(
        {
            "SWITCHBOARD_OPENAI_COMPATIBLE_BASE_URL": f"{fake.url}/v1",
            "SWITCHBOARD_OPENAI_COMPATIBLE_MODELS": "llama3.2",
            **env,
        }
    )
    assert provider is not None
    return provider


def ask(*messages: Message, **fields: Any) -> CompletionRequest:
    return CompletionRequest(
        model="gpt-4o-mini",
        messages=list(messages) or [Message("user", [TextPart("Hi")])],
        **fields,
    )


def complete(provider: Provider, request: CompletionRequest) -> Completion:
    return asyncio.run(provider.complete(request))


def stream(provider: Provider, request: CompletionRequest) -> list[StreamEvent]:
    async def collect() -> list[StreamEvent]:
        return [event async for event in provider.stream(request)]

    return asyncio.run(collect())


def sent(fake: FakeOpenAI) -> dict[str, Any]:
    body: dict[str, Any] = fake.requests[-1].json()
    return body


# Configuration


def test_openai_without_a_key_is_not_offered() -> None:
    assert openai_provider.create({}) is None
    assert openai_provider.create({"OPENAI_API_KEY": ""}) is None


def test_openai_offers_a_default_list_or_the_configured_one() -> None:
    default = openai_provider.create({"OPENAI_API_KEY": "sk-test"})
    assert default is not None and "gpt-4o-mini" in default.models()
    configured = openai_provider.create(
        {"OPENAI_API_KEY": "sk-test", "SWITCHBOARD_OPENAI_MODELS": " gpt-4.1 , o3-mini,"}
    )
    assert configured is not None and configured.models() == ["gpt-4.1", "o3-mini"]
    with pytest.raises(ConfigError, match="SWITCHBOARD_OPENAI_MODELS"):
        openai_provider.create({"OPENAI_API_KEY": "sk-test", "SWITCHBOARD_OPENAI_MODELS": ","})


def test_compatible_needs_a_base_url_and_a_model_list() -> None:
    assert openai_compatible.create({}) is None
    assert openai_compatible.create({"SWITCHBOARD_OPENAI_COMPATIBLE_MODELS": "llama3.2"}) is None
    with pytest.raises(ConfigError, match="SWITCHBOARD_OPENAI_COMPATIBLE_MODELS"):
        openai_compatible.create(
            {"SWITCHBOARD_OPENAI_COMPATIBLE_BASE_URL": "http://localhost:11434/v1"}
        )


def test_context_windows() -> None:
    provider = openai_provider.create({"OPENAI_API_KEY": "sk-test"})
    assert provider is not None
    assert provider.context_window("gpt-4o-mini") == 128_000
    assert provider.context_window("gpt-4.1-mini") == 1_047_576
    assert provider.context_window("something-else") == 8192
    local = openai_compatible.create(
        {
            "SWITCHBOARD_OPENAI_COMPATIBLE_BASE_URL": "http://localhost:11434/v1",
            "SWITCHBOARD_OPENAI_COMPATIBLE_MODELS": "llama3.2",
            "SWITCHBOARD_OPENAI_COMPATIBLE_CONTEXT_TOKENS": "32768",
        }
    )
    assert local is not None and local.context_window("llama3.2") == 32768


# Credentials on the wire


def test_openai_sends_its_key_and_nothing_from_the_process_environment(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_ORG_ID", "org-from-process-env")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-from-process-env")
    complete(openai_for(fake), ask())
    headers = fake.requests[-1].headers
    assert headers["authorization"] == "Bearer sk-test"
    assert "openai-organization" not in headers
    assert "openai-project" not in headers
    complete(openai_for(fake, OPENAI_ORG_ID="org-1", OPENAI_PROJECT_ID="proj-1"), ask())
    headers = fake.requests[-1].headers
    assert headers["openai-organization"] == "org-1"
    assert headers["openai-project"] == "proj-1"


def test_compatible_without_a_key_sends_no_authorization(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-leak")
    complete(compatible_for(fake), ask())
    assert "authorization" not in fake.requests[-1].headers


def test_compatible_with_a_key_sends_it(fake: FakeOpenAI) -> None:
    complete(compatible_for(fake, SWITCHBOARD_OPENAI_COMPATIBLE_API_KEY="local-key"), ask())
    assert fake.requests[-1].headers["authorization"] == "Bearer local-key"


# Request translation


@pytest.mark.parametrize(
    "choice",
    ["auto", "none", "required", {"type": "function", "function": {"name": "get_weather"}}],
)
def test_tool_choice_goes_as_given(fake: FakeOpenAI, choice: str | dict[str, Any]) -> None:
    complete(openai_for(fake), ask(tools=[WEATHER], tool_choice=choice))
    assert sent(fake)["tool_choice"] == choice
    assert sent(fake)["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city",
                "parameters": WEATHER.parameters,
            },
        }
    ]


def test_no_tool_choice_and_no_tools_send_neither(fake: FakeOpenAI) -> None:
    complete(openai_for(fake), ask())
    assert "tool_choice" not in sent(fake) and "tools" not in sent(fake)


def test_developer_role_and_token_limit_in_each_dialect(fake: FakeOpenAI) -> None:
    messages = (Message("developer", [TextPart("Be brief.")]), Message("user", [TextPart("Hi")]))
    complete(openai_for(fake), ask(*messages, max_tokens=50))
    body = sent(fake)
    assert [m["role"] for m in body["messages"]] == ["developer", "user"]
    assert body["max_completion_tokens"] == 50 and "max_tokens" not in body

    complete(compatible_for(fake), ask(*messages, max_tokens=50))
    body = sent(fake)
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["max_tokens"] == 50 and "max_completion_tokens" not in body


def test_sampling_user_and_stop_are_sent(fake: FakeOpenAI) -> None:
    complete(openai_for(fake), ask(temperature=0.2, top_p=0.9, user="u-42", stop=["END", "STOP"]))
    body = sent(fake)
    assert (body["temperature"], body["top_p"], body["user"]) == (0.2, 0.9, "u-42")
    assert body["stop"] == ["END", "STOP"]


def test_multi_part_user_content_keeps_order_and_image_detail(fake: FakeOpenAI) -> None:
    message = Message(
        "user",
        [
            TextPart("Compare"),
            ImagePart("https://example.com/a.png", detail="low"),
            TextPart("with"),
            ImagePart("data:image/png;base64,AAAA"),
        ],
        name="alice",
    )
    complete(openai_for(fake), ask(message))
    native = sent(fake)["messages"][0]
    assert native["name"] == "alice"
    assert native["content"] == [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
        {"type": "text", "text": "with"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]


def test_parallel_tool_calls_in_history(fake: FakeOpenAI) -> None:
    calls = [
        ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
        ToolCall("call_2", "get_weather", '{"city": "Oslo"}'),
    ]
    complete(
        openai_for(fake),
        ask(
            Message("user", [TextPart("Weather in Paris and Oslo?")]),
            Message("assistant", [TextPart("Checking.")], tool_calls=calls),
            Message("tool", [TextPart("21")], tool_call_id="call_1"),
            Message("tool", [TextPart("12")], tool_call_id="call_2"),
        ),
    )
    assistant = sent(fake)["messages"][1]
    assert assistant["content"] == "Checking."
    assert [c["id"] for c in assistant["tool_calls"]] == ["call_1", "call_2"]
    assert [m.get("tool_call_id") for m in sent(fake)["messages"][2:]] == ["call_1", "call_2"]


def test_an_image_outside_a_user_message_is_refused_by_name(fake: FakeOpenAI) -> None:
    image = ImagePart("https://example.com/a.png")
    with pytest.raises(InvalidRequest) as info:
        complete(
            openai_for(fake),
            ask(Message("user", [TextPart("Hi")]), Message("tool", [image], tool_call_id="c")),
        )
    assert info.value.param == "messages[1].content"
    assert not fake.requests


def test_a_tool_result_without_its_call_id_is_refused(fake: FakeOpenAI) -> None:
    with pytest.raises(InvalidRequest) as info:
        complete(openai_for(fake), ask(Message("tool", [TextPart("21")])))
    assert info.value.param == "messages[0].tool_call_id"


def test_streams_ask_for_usage(fake: FakeOpenAI) -> None:
    stream(openai_for(fake), ask())
    assert sent(fake)["stream"] is True
    assert sent(fake)["stream_options"] == {"include_usage": True}


# Finish reasons


@pytest.mark.parametrize(
    ("native", "expected"),
    [
        ("function_call", "tool_calls"),
        ("something_new", "stop"),
        ("content_filter", "content_filter"),
    ],
)
def test_native_finish_reasons(fake: FakeOpenAI, native: str, expected: str) -> None:
    provider = openai_for(fake)
    fake.enqueue(Script(native_stop=native), Script(native_stop=native))
    assert complete(provider, ask()).stop_reason == expected
    assert [e for e in stream(provider, ask()) if isinstance(e, Finish)] == [Finish(expected)]  # type: ignore[arg-type]


def test_tool_calls_with_finish_reason_stop_end_as_tool_calls(fake: FakeOpenAI) -> None:
    """Some OpenAI-compatible servers say `stop` after calling tools."""
    provider = compatible_for(fake)
    call = ToolCallScript("call_1", "get_weather", ['{"city": "Paris"}'])
    fake.enqueue(*[Script(text=[], tool_calls=[call], native_stop="stop")] * 2)
    assert complete(provider, ask(tools=[WEATHER])).stop_reason == "tool_calls"
    assert [e for e in stream(provider, ask(tools=[WEATHER])) if isinstance(e, Finish)] == [
        Finish("tool_calls")
    ]


def test_streamed_usage_counts_cached_tokens_inside_input(fake: FakeOpenAI) -> None:
    from services.providers.base import Usage

    fake.enqueue(Script(usage=Usage(input_tokens=100, output_tokens=5, cached_input_tokens=64)))
    events = stream(openai_for(fake), ask())
    reports = [e for e in events if isinstance(e, UsageReport)]
    assert reports == [UsageReport(Usage(100, 5, 64))]
    assert isinstance(events[-1], UsageReport)  # the usage chunk follows the finish chunk


# Failures


def test_a_stall_mid_stream_times_out_instead_of_hanging(fake: FakeOpenAI) -> None:
    provider = openai_for(
        fake,
        SWITCHBOARD_OPENAI_TIMEOUT_IDLE_SECONDS="0.3",
        SWITCHBOARD_OPENAI_TIMEOUT_FIRST_BYTE_SECONDS="0.3",
    )
    fake.enqueue(Script(text=["a", "b", "c"], fault=Fault("stall", after_chunks=2, seconds=5)))
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        stream(provider, ask())
    assert time.monotonic() - started < 3
    assert info.value.retryable and info.value.status == 504
    assert "idle gap" in info.value.message


def test_a_slow_first_byte_times_out(fake: FakeOpenAI) -> None:
    provider = openai_for(
        fake,
        SWITCHBOARD_OPENAI_TIMEOUT_IDLE_SECONDS="0.3",
        SWITCHBOARD_OPENAI_TIMEOUT_FIRST_BYTE_SECONDS="0.3",
    )
    fake.enqueue(Script(fault=Fault("slow_first_byte", seconds=2)))
    with pytest.raises(ProviderError) as info:
        complete(provider, ask())
    assert info.value.retryable and info.value.status == 504
    assert "first byte" in info.value.message


def test_an_unreachable_upstream_is_a_retryable_connection_error() -> None:
    provider = openai_provider.create(
        {"OPENAI_API_KEY": "sk-test", "SWITCHBOARD_OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    )
    assert provider is not None
    with pytest.raises(ProviderError) as info:
        complete(provider, ask())
    assert info.value.retryable and info.value.code == "upstream_unreachable"


def test_a_streamed_malformed_chunk_is_a_malformed_error(fake: FakeOpenAI) -> None:
    fake.enqueue(Script(text=["a", "b", "c"], fault=Fault("malformed", after_chunks=2)))
    with pytest.raises(ProviderError) as info:
        stream(openai_for(fake), ask())
    assert info.value.code == "upstream_malformed_response" and info.value.retryable


class QuirkyServer(FakeOpenAICompatible):
    """Streams as some compatible servers do: `frames` replaces the whole stream."""

    frames: list[bytes] = []
    pause: float = 0.0  # between two writes, so that each arrives as a read of its own

    async def stream(self, request: Request, script: Script, writer: Writer) -> None:
        await writer.start(200, {"content-type": "text/event-stream"})
        for frame in self.frames:
            await writer.write(frame)
            if self.pause:
                await asyncio.sleep(self.pause)
        await writer.end()


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    body = {
        "id": "x",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "llama3.2",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


@pytest.fixture
def quirky() -> Iterator[QuirkyServer]:
    QuirkyServer.pause = 0.0
    server = QuirkyServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_an_error_event_mid_stream_is_a_retryable_error(quirky: QuirkyServer) -> None:
    quirky.frames = [
        chunk({"content": "par"}),
        b'data: {"error": {"message": "model overloaded", "type": "server_error"}}\n\n',
    ]
    with pytest.raises(ProviderError) as info:
        stream(compatible_for(quirky), ask())
    assert info.value.retryable and "model overloaded" in info.value.message


def test_a_stream_that_ends_without_a_finish_reason_is_malformed(quirky: QuirkyServer) -> None:
    quirky.frames = [chunk({"content": "cut "}), chunk({"content": "short"}), b"data: [DONE]\n\n"]
    with pytest.raises(ProviderError) as info:
        stream(compatible_for(quirky), ask())
    assert info.value.code == "upstream_malformed_response"


def test_crlf_framing_cut_between_cr_and_lf_streams_whole(quirky: QuirkyServer) -> None:
    """Servers behind proxies frame with CRLF, and a read may end between a CR and its LF."""
    whole = b"".join(
        [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hello"}),
         chunk({"content": " world"}), chunk({}, "stop"), b"data: [DONE]\n\n"]
    ).replace(b"\n", b"\r\n")  # fmt: skip
    quirky.frames = [part + b"\r" for part in whole.split(b"\r")[:-1]]
    quirky.pause = 0.005
    events = stream(compatible_for(quirky), ask())
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hello", " world"]
    assert [e for e in events if isinstance(e, Finish)] == [Finish("stop")]


def test_repeated_tool_call_ids_and_names_reach_the_client_once(quirky: QuirkyServer) -> None:
    head = {"index": 0, "id": "call_1", "type": "function"}
    quirky.frames = [
        chunk({"tool_calls": [{**head, "function": {"name": "get_weather", "arguments": '{"ci'}}]}),
        chunk(
            {"tool_calls": [{**head, "function": {"name": "get_weather", "arguments": 'ty": 1}'}}]}
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ""}}]}),
        chunk({}, "tool_calls"),
        b"data: [DONE]\n\n",
    ]
    events = stream(compatible_for(quirky), ask(tools=[WEATHER]))
    assert [e for e in events if isinstance(e, ToolCallDelta)] == [
        ToolCallDelta(0, "call_1", "get_weather", '{"ci'),
        ToolCallDelta(0, None, None, 'ty": 1}'),
    ]
    assert not [e for e in events if isinstance(e, TextDelta)]
    assert not [e for e in events if isinstance(e, UsageReport)]  # this server sent none


# Retry-After


def test_retry_after_forms() -> None:
    assert openai_provider.retry_after({"retry-after": "3"}) == 3
    assert openai_provider.retry_after({"retry-after-ms": "1500", "retry-after": "3"}) == 1.5
    assert openai_provider.retry_after({}) is None
    assert openai_provider.retry_after({"retry-after": "soon"}) is None
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    waited = openai_provider.retry_after({"retry-after": date})
    assert waited is not None and 25 < waited <= 30
