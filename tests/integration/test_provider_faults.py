"""Provider failures as a client sees them: the worker runs against fake upstreams that
speak the real wire protocols (OpenAI, Anthropic) and fail on cue, and the official
openai SDK calls Switchboard through the stream front door.

Route `primary` is the OpenAI fake then the Anthropic fake, so a failure before the first
byte can fall back to a provider of another format.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from devstack.stack import LocalStack, StackConfig
from tests.fakes import anthropic as anthropic_fake
from tests.fakes import openai as openai_fake
from tests.fakes.script import Fault, Script
from tests.fakes.upstream import FakeUpstream

PRIMARY = f"openai/{openai_fake.MODEL}"
SECONDARY = f"anthropic/{anthropic_fake.MODEL}"
CATALOGUE = f"""
[routes]
primary = ["{PRIMARY}", "{SECONDARY}"]
"""


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    first, second = openai_fake.FakeOpenAI().start(), anthropic_fake.FakeAnthropic().start()
    yield first, second
    first.stop()
    second.stop()


@pytest.fixture(scope="module")
def stack(
    fakes: tuple[FakeUpstream, FakeUpstream], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    catalogue = tmp_path_factory.mktemp("catalogue") / "models.toml"
    catalogue.write_text(CATALOGUE)
    env = {
        **openai_fake.BINDING.env(fakes[0].url),
        **anthropic_fake.BINDING.env(fakes[1].url),
        "SWITCHBOARD_CATALOGUE": str(catalogue),
        "SWITCHBOARD_RETRY_BACKOFF_SECONDS": "0.01",
        "SWITCHBOARD_BREAKER_FAILURES": "1000",  # breakers have their own unit tests
        "SWITCHBOARD_OPENAI_TIMEOUT_FIRST_BYTE_SECONDS": "0.5",
        "SWITCHBOARD_OPENAI_TIMEOUT_IDLE_SECONDS": "0.5",
    }
    config = StackConfig(extra_env=env, log_dir=tmp_path_factory.mktemp("faults-logs"))
    with LocalStack(config) as running:
        yield running


@pytest.fixture
def client(stack: LocalStack, fakes: tuple[FakeUpstream, FakeUpstream]) -> openai.OpenAI:
    for fake in fakes:
        fake.reset()
    return openai.OpenAI(base_url=stack.stream_url, api_key=stack.api_key, max_retries=0)


def ask(client: openai.OpenAI, model: str = "primary") -> str:
    completion = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}]
    )
    return completion.choices[0].message.content or ""


def stream_text(client: openai.OpenAI, model: str = "primary") -> tuple[str, Exception | None]:
    received: list[str] = []
    try:
        for chunk in client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    except openai.APIError as exc:
        return "".join(received), exc
    return "".join(received), None


def test_429_with_retry_after_is_waited_for_then_retried(
    client: openai.OpenAI, fakes: tuple[FakeUpstream, FakeUpstream]
) -> None:
    primary, _ = fakes
    primary.enqueue(
        Script(fault=Fault("status", status=429, retry_after=1)), Script(text=["after ", "waiting"])
    )
    started = time.monotonic()
    assert ask(client) == "after waiting"
    assert time.monotonic() - started >= 1.0
    assert len(primary.requests) == 2


def test_500s_fall_back_to_the_next_provider_of_another_format(
    client: openai.OpenAI, fakes: tuple[FakeUpstream, FakeUpstream]
) -> None:
    primary, secondary = fakes
    primary.enqueue(*[Script(fault=Fault("status", status=500))] * 3)
    secondary.enqueue(Script(text=["from ", "anthropic"]))
    assert ask(client) == "from anthropic"
    assert len(primary.requests) == 3 and len(secondary.requests) == 1


def test_a_connection_reset_is_retried(
    client: openai.OpenAI, fakes: tuple[FakeUpstream, FakeUpstream]
) -> None:
    primary, _ = fakes
    primary.enqueue(Script(fault=Fault("reset")), Script(text=["fine"]))
    text, error = stream_text(client)
    assert (text, error) == ("fine", None)


def test_a_slow_first_byte_falls_back_before_anything_is_sent(
    client: openai.OpenAI, fakes: tuple[FakeUpstream, FakeUpstream]
) -> None:
    primary, secondary = fakes
    primary.enqueue(*[Script(fault=Fault("slow_first_byte", seconds=3))] * 3)
    secondary.enqueue(Script(text=["quick"]))
    started = time.monotonic()
    text, error = stream_text(client)
    assert (text, error) == ("quick", None)
    assert time.monotonic() - started < 2.9  # did not wait for the slow upstream


def test_a_stall_mid_stream_ends_with_an_error_and_keeps_the_partial_output(
    client: openai.OpenAI, fakes: tuple[FakeUpstream, FakeUpstream]
) -> None:
    primary, secondary = fakes
    primary.enqueue(
        Script(
            text=["one ", "two ", "three ", "four"], fault=Fault("stall", after_chunks=3, seconds=5)
        )
    )
    started = time.monotonic()
    text, error = stream_text(client)
    assert time.monotonic() - started < 3  # the idle timeout ended it, not the stall
    assert text.startswith("one ") and "four" not in text
    assert isinstance(error, openai.APIError) and "timed out" in str(error.message)
    assert secondary.requests == []  # after the first byte, no fallback


def test_a_malformed_chunk_ends_the_stream_with_an_error(
    client: openai.OpenAI, fakes: tuple[FakeUpstream, FakeUpstream]
) -> None:
    primary, _ = fakes
    primary.enqueue(
        Script(text=["one ", "two ", "three"], fault=Fault("malformed", after_chunks=3))
    )
    text, error = stream_text(client)
    assert text.startswith("one ")
    assert isinstance(error, openai.APIError)


def test_a_client_error_from_the_provider_is_not_retried(
    client: openai.OpenAI, fakes: tuple[FakeUpstream, FakeUpstream]
) -> None:
    primary, secondary = fakes
    primary.enqueue(
        Script(fault=Fault("status", status=400, message="messages[0]: role 'wizard' is invalid"))
    )
    with pytest.raises(openai.BadRequestError) as info:
        ask(client)
    assert "role 'wizard' is invalid" in str(info.value.message)
    assert len(primary.requests) == 1 and secondary.requests == []


def test_models_lists_the_configured_providers_and_the_route(client: openai.OpenAI) -> None:
    names = {m.id for m in client.models.list()}
    assert {PRIMARY, SECONDARY, "primary", "local/simulator"} <= names


def test_catalogue_file_is_read_from_the_setting(tmp_path: Path) -> None:
    from services.models.catalogue import CatalogueConfig

    path = tmp_path / "m.toml"
    path.write_text(CATALOGUE)
    assert CatalogueConfig.load(path).routes == {"primary": [PRIMARY, SECONDARY]}


def test_openai_sdk_streams_a_tool_call_served_by_the_anthropic_upstream(
    client: openai.OpenAI, fakes: tuple[FakeUpstream, FakeUpstream]
) -> None:
    """OpenAI wire format in, Anthropic Messages out and back: the tool call's id, name and
    argument fragments arrive as OpenAI tool-call deltas."""
    from tests.fakes.script import ToolCallScript

    _, anthropic_upstream = fakes
    call = ToolCallScript("toolu_01", "get_weather", ['{"city":', ' "Par', 'is"}'])
    anthropic_upstream.enqueue(
        Script(text=["Let me check. "], tool_calls=[call], stop="tool_calls")
    )
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    stream = client.chat.completions.create(
        model=SECONDARY,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
        ],
        tools=tools,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    text, calls, finish, usage = "", {}, None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for delta in choice.delta.tool_calls or []:
                entry = calls.setdefault(delta.index, {"id": None, "name": None, "arguments": ""})
                entry["id"] = entry["id"] or delta.id
                if delta.function is not None:
                    entry["name"] = entry["name"] or delta.function.name
                    entry["arguments"] += delta.function.arguments or ""
            finish = choice.finish_reason or finish
    assert text == "Let me check. "
    assert calls == {0: {"id": "toolu_01", "name": "get_weather", "arguments": '{"city": "Paris"}'}}
    assert finish == "tool_calls"
    assert usage is not None and usage.total_tokens > 0
    seen = anthropic_upstream.canonical_request(anthropic_upstream.requests[-1])
    assert [t.name for t in seen["tools"]] == ["get_weather"]
    assert seen["messages"][0].role == "system" and seen["messages"][0].text == "Be brief."
