"""The Bedrock adapter beyond the conformance suite: what Converse cannot express, Bedrock's
own stop reasons and stream errors, and that boto3's blocking calls stay off the event loop.
Every test goes through boto3 to the fake Bedrock over loopback."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from services.canonical import (
    CompletionRequest,
    Finish,
    ImagePart,
    Message,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolDefinition,
)
from services.config import ConfigError
from services.errors import APIError
from services.providers import build_providers
from services.providers.bedrock import BedrockProvider, create, usage_from
from services.providers.errors import ProviderError
from tests.fakes.bedrock import BINDING, MODEL, BedrockFake, event_message
from tests.fakes.script import Fault, Script

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 8).decode()
WEATHER = ToolDefinition("get_weather", None, {"type": "object", "properties": {}})


class ErrorEventFake(BedrockFake):
    """Sends an error event (as Bedrock does mid-stream) after the first text delta."""

    exception_type = "throttlingException"

    def frames(self, script: Script) -> list[bytes]:
        error = event_message(
            self.exception_type, {"message": "slow down"}, message_type="exception"
        )
        return [*super().frames(script)[:2], error]


class TruncatedFake(BedrockFake):
    """Ends the stream cleanly but before `messageStop`."""

    def frames(self, script: Script) -> list[bytes]:
        return super().frames(script)[:3]


@contextlib.contextmanager
def started(fake: BedrockFake) -> Iterator[BedrockFake]:
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def fake() -> Iterator[BedrockFake]:
    with started(BedrockFake()) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(fake: BedrockFake) -> None:
    fake.reset()


def provider_at(url: str, **env: str) -> BedrockProvider:
    provider = create({**BINDING.env(url), **env})
    assert provider is not None
    return provider


def ask(*messages: Message, **fields: Any) -> CompletionRequest:
    return CompletionRequest(
        model=MODEL, messages=list(messages) or [Message("user", [TextPart("Hi")])], **fields
    )


async def collect(provider: BedrockProvider, request: CompletionRequest) -> list[StreamEvent]:
    return [event async for event in provider.stream(request)]


def sent(fake: BedrockFake) -> dict[str, Any]:
    body: dict[str, Any] = fake.requests[-1].json()
    return body


async def wait_until_idle(provider: BedrockProvider, seconds: float) -> float:
    started_at = time.monotonic()
    for _ in range(int(seconds / 0.01)):
        if not provider.threads_in_use:
            break
        await asyncio.sleep(0.01)
    return time.monotonic() - started_at


def test_not_offered_without_models() -> None:
    env = {k: v for k, v in BINDING.env("http://127.0.0.1:1").items()}
    del env["SWITCHBOARD_BEDROCK_MODELS"]
    assert create(env) is None
    assert "bedrock" not in build_providers(env)
    assert create({**env, "SWITCHBOARD_BEDROCK_MODELS": ""}) is None


def test_models_listed_and_region_required() -> None:
    env = dict(BINDING.env("http://127.0.0.1:1"))
    provider = create(env)
    assert provider is not None
    assert provider.models() == [MODEL, "amazon.nova-lite-v1:0"]
    assert provider.context_window("us." + MODEL) == 200_000
    del env["SWITCHBOARD_BEDROCK_REGION"]
    with pytest.raises(ConfigError, match="SWITCHBOARD_BEDROCK_REGION"):
        create(env)
    assert create({**env, "AWS_REGION": "eu-west-1"}) is not None
    with pytest.raises(ConfigError, match="no model id"):
        create({**env, "SWITCHBOARD_BEDROCK_MODELS": " , "})


def test_http_image_url_is_a_400_naming_the_part(fake: BedrockFake) -> None:
    provider = provider_at(fake.url)
    message = Message("user", [TextPart("What is this?"), ImagePart("https://example.com/cat.png")])
    with pytest.raises(APIError) as info:
        asyncio.run(provider.complete(ask(Message("system", [TextPart("Be brief.")]), message)))
    assert info.value.status == 400
    assert info.value.param == "messages[1].content[1]"
    assert "data: URL" in info.value.message
    assert fake.requests == []  # refused before any call to Bedrock


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("data:image/tiff;base64," + PNG, "png, jpeg, gif or webp"),
        ("data:image/png;base64,not base64!", "not valid"),
    ],
)
def test_unsupported_data_urls_are_400s(fake: BedrockFake, url: str, complaint: str) -> None:
    provider = provider_at(fake.url)
    with pytest.raises(APIError) as info:
        asyncio.run(provider.complete(ask(Message("user", [ImagePart(url)]))))
    assert (info.value.status, info.value.param) == (400, "messages[0].content[0]")
    assert complaint in info.value.message


def test_unparseable_tool_arguments_are_a_400_naming_them(fake: BedrockFake) -> None:
    provider = provider_at(fake.url)
    history = [
        Message("user", [TextPart("Weather?")]),
        Message("assistant", [], tool_calls=[ToolCall("call_1", "get_weather", '{"city": ')]),
    ]
    with pytest.raises(APIError) as info:
        asyncio.run(provider.complete(ask(*history, tools=[WEATHER])))
    assert info.value.status == 400
    assert info.value.param == "messages[1].tool_calls[0].function.arguments"


def test_same_role_turns_and_tool_results_are_merged(fake: BedrockFake) -> None:
    provider = provider_at(fake.url)
    history = [
        Message("developer", [TextPart("Use metric units.")]),
        Message("user", [TextPart("Weather in Paris and Oslo?")]),
        Message(
            "assistant",
            [TextPart("Checking.")],
            tool_calls=[
                ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
                ToolCall("call_2", "get_weather", '{"city": "Oslo"}'),
            ],
        ),
        Message("tool", [TextPart("21")], tool_call_id="call_1"),
        Message("tool", [TextPart("9")], tool_call_id="call_2"),
        Message("user", [TextPart("And in Fahrenheit?")]),
    ]
    asyncio.run(
        provider.complete(
            ask(*history, tools=[WEATHER], tool_choice="required", temperature=0.2, top_p=0.9)
        )
    )
    body = sent(fake)
    assert body["system"] == [{"text": "Use metric units."}]
    assert [turn["role"] for turn in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == [
        {"text": "Checking."},
        {"toolUse": {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Paris"}}},
        {"toolUse": {"toolUseId": "call_2", "name": "get_weather", "input": {"city": "Oslo"}}},
    ]
    assert body["messages"][2]["content"] == [
        {"toolResult": {"toolUseId": "call_1", "content": [{"text": "21"}]}},
        {"toolResult": {"toolUseId": "call_2", "content": [{"text": "9"}]}},
        {"text": "And in Fahrenheit?"},
    ]
    assert body["toolConfig"]["toolChoice"] == {"any": {}}
    assert body["inferenceConfig"] == {"temperature": 0.2, "topP": 0.9}


@pytest.mark.parametrize(
    ("choice", "native"),
    [
        ("auto", {"auto": {}}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"tool": {"name": "get_weather"}},
        ),
    ],
)
def test_tool_choice(fake: BedrockFake, choice: Any, native: dict[str, Any]) -> None:
    provider = provider_at(fake.url)
    asyncio.run(provider.complete(ask(tools=[WEATHER], tool_choice=choice)))
    assert sent(fake)["toolConfig"]["toolChoice"] == native


def test_tool_choice_none_omits_tools_and_refuses_tool_history(fake: BedrockFake) -> None:
    provider = provider_at(fake.url)
    asyncio.run(provider.complete(ask(tools=[WEATHER], tool_choice="none")))
    assert "toolConfig" not in sent(fake)
    history = [
        Message("user", [TextPart("Weather?")]),
        Message("assistant", [], tool_calls=[ToolCall("call_1", "get_weather", "{}")]),
        Message("tool", [TextPart("21")], tool_call_id="call_1"),
    ]
    with pytest.raises(APIError) as info:
        asyncio.run(provider.complete(ask(*history, tools=[WEATHER], tool_choice="none")))
    assert (info.value.status, info.value.param) == (400, "tool_choice")


def test_guardrail_intervention_is_a_content_filter_stop(fake: BedrockFake) -> None:
    provider = provider_at(fake.url)
    script = Script(text=["I can't"], native_stop="guardrail_intervened")
    fake.enqueue(script, script)
    assert asyncio.run(provider.complete(ask())).stop_reason == "content_filter"
    events = asyncio.run(collect(provider, ask()))
    assert [e for e in events if isinstance(e, Finish)] == [Finish("content_filter")]


def test_malformed_model_output_is_a_retryable_error(fake: BedrockFake) -> None:
    provider = provider_at(fake.url)
    fake.enqueue(Script(native_stop="malformed_tool_use"))
    with pytest.raises(ProviderError) as info:
        asyncio.run(provider.complete(ask()))
    assert info.value.retryable and "malformed_tool_use" in info.value.message


def test_usage_counts_cache_reads_and_writes_as_input() -> None:
    usage = usage_from(
        {
            "inputTokens": 5,
            "cacheReadInputTokens": 100,
            "cacheWriteInputTokens": 20,
            "outputTokens": 7,
        }
    )
    assert (usage.input_tokens, usage.cached_input_tokens, usage.output_tokens) == (125, 100, 7)


@pytest.mark.parametrize(
    ("exception_type", "status", "retryable"),
    [
        ("throttlingException", 429, True),
        ("modelStreamErrorException", 502, True),
        ("validationException", 400, False),
    ],
)
def test_error_event_in_stream(exception_type: str, status: int, retryable: bool) -> None:
    class Fake(ErrorEventFake):
        pass

    Fake.exception_type = exception_type
    with started(Fake()) as fake:
        provider = provider_at(fake.url)
        seen: list[StreamEvent] = []

        async def consume() -> None:
            async for event in provider.stream(ask()):
                seen.append(event)

        with pytest.raises(ProviderError) as info:
            asyncio.run(consume())
        assert seen == [TextDelta("Hello")]  # what came before the error was delivered
        assert (info.value.status, info.value.retryable) == (status, retryable)
        assert "slow down" in info.value.message


def test_stream_ending_without_message_stop_is_an_error() -> None:
    with started(TruncatedFake()) as fake:
        with pytest.raises(ProviderError) as info:
            asyncio.run(collect(provider_at(fake.url), ask()))
        assert info.value.code == "upstream_malformed_response"


def test_event_loop_keeps_running_while_boto3_waits(fake: BedrockFake) -> None:
    provider = provider_at(fake.url)
    fake.enqueue(
        Script(fault=Fault("slow_first_byte", seconds=0.5)),
        Script(fault=Fault("slow_first_byte", seconds=0.5)),
    )

    async def ticking(call: Any) -> tuple[int, Any]:
        ticks = 0
        task = asyncio.ensure_future(call)
        while not task.done():
            await asyncio.sleep(0.01)
            ticks += 1
        return ticks, task.result()

    ticks, completion = asyncio.run(ticking(provider.complete(ask())))
    assert completion.text == "Hello, world"
    assert ticks >= 25  # ~50 if the loop never blocked; 1 if boto3 held it for 0.5 s
    ticks, events = asyncio.run(ticking(collect(provider, ask())))
    assert [e for e in events if isinstance(e, Finish)] == [Finish("stop")]
    assert ticks >= 25


def test_abandoned_stream_closes_and_frees_its_thread(fake: BedrockFake) -> None:
    provider = provider_at(fake.url)
    # After the first text delta the upstream goes quiet for a minute.
    fake.enqueue(Script(text=["a", "b"], fault=Fault("stall", after_chunks=2, seconds=60)))

    async def abandon() -> float:
        events = provider.stream(ask())
        assert await anext(events) == TextDelta("a")
        assert provider.threads_in_use == 1  # a thread is blocked reading the stalled stream
        started_at = time.monotonic()
        await events.aclose()  # the client went away
        await wait_until_idle(provider, 5)
        return time.monotonic() - started_at

    assert asyncio.run(abandon()) < 1
    assert provider.threads_in_use == 0


def test_idle_gap_times_out_and_frees_the_thread(fake: BedrockFake) -> None:
    provider = provider_at(fake.url, SWITCHBOARD_BEDROCK_TIMEOUT_IDLE_SECONDS="0.3")
    fake.enqueue(Script(text=["a", "b"], fault=Fault("stall", after_chunks=2, seconds=60)))
    seen: list[StreamEvent] = []

    async def consume() -> None:
        async for event in provider.stream(ask()):
            seen.append(event)

    started_at = time.monotonic()
    with pytest.raises(ProviderError) as info:
        asyncio.run(consume())
    assert time.monotonic() - started_at < 2
    assert seen == [TextDelta("a")]
    assert (info.value.status, info.value.retryable) == (504, True)
    assert "idle" in info.value.message
    assert asyncio.run(wait_until_idle(provider, 5)) < 1


def test_images_reach_bedrock_as_bytes(fake: BedrockFake) -> None:
    provider = provider_at(fake.url)
    url = f"data:image/jpeg;base64,{PNG}"
    asyncio.run(provider.complete(ask(Message("user", [ImagePart(url)]))))
    image = sent(fake)["messages"][0]["content"][0]["image"]
    assert image["format"] == "jpeg"
    assert base64.b64decode(image["source"]["bytes"]) == base64.b64decode(PNG)
    assert json.dumps(image)  # botocore sent the bytes base64-encoded in the JSON body
