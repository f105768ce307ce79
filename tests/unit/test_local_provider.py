from __future__ import annotations

import asyncio
import time

import pytest

from services.providers import build_providers, factories
from services.providers.base import (
    CompletionRequest,
    Finish,
    Message,
    TextDelta,
    TextPart,
    UsageReport,
)
from services.providers.local import LocalProvider, LocalSettings, create, reply_text


def request(*texts: str, **kwargs: object) -> CompletionRequest:
    messages = [Message("system", [TextPart("Be brief.")])]
    for i, text in enumerate(texts):
        messages.append(Message("user" if i % 2 == 0 else "assistant", [TextPart(text)]))
    return CompletionRequest(model="simulator", messages=messages, **kwargs)  # type: ignore[arg-type]


async def collect(provider: LocalProvider, req: CompletionRequest) -> list[object]:
    return [event async for event in provider.stream(req)]


def test_reply_reflects_what_the_provider_received() -> None:
    text = reply_text(request("first question", "an answer", "second question"))
    assert text == (
        '[local simulator, not a model] Turn 2: you said "second question". '
        'I received 4 messages; the first user message was "first question".'
    )


def test_deterministic_and_stream_matches_completion() -> None:
    provider = LocalProvider()
    req = request("hello there")
    one = asyncio.run(provider.complete(req))
    two = asyncio.run(provider.complete(req))
    assert one == two
    events = asyncio.run(collect(provider, req))
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert "".join(deltas) == one.text
    assert len(deltas) == len(one.text.split())
    assert [e for e in events if isinstance(e, Finish)] == [Finish("stop")]
    usage = [e.usage for e in events if isinstance(e, UsageReport)]
    assert usage == [one.usage]
    assert one.usage.output_tokens == len(one.text.split())
    assert one.usage.input_tokens == (2 + 3) + (2 + 3)  # words plus framing, per message


def test_words_per_chunk() -> None:
    provider = LocalProvider(LocalSettings(words_per_chunk=4))
    events = asyncio.run(collect(provider, request("hello")))
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    words = reply_text(request("hello")).split(" ")
    assert len(deltas) == -(-len(words) // 4)
    assert "".join(deltas) == reply_text(request("hello"))


def test_max_tokens_stops_with_length() -> None:
    completion = asyncio.run(LocalProvider().complete(request("hello", max_tokens=3)))
    assert completion.stop_reason == "length"
    assert completion.text == "[local simulator, not"
    assert completion.usage.output_tokens == 3


def test_stop_sequence_cuts_the_reply() -> None:
    completion = asyncio.run(LocalProvider().complete(request("hello", stop=["Turn"])))
    assert completion.text == "[local simulator, not a model] "
    assert completion.stop_reason == "stop"


def test_long_user_messages_are_clipped_in_the_echo() -> None:
    text = reply_text(request("word " * 500))
    assert len(text) < 600
    assert "…" in text


def test_latency_before_first_chunk_and_between_chunks() -> None:
    provider = LocalProvider(LocalSettings(first_token_ms=150, chunk_ms=20))

    async def timed() -> list[float]:
        start = time.monotonic()
        return [
            time.monotonic() - start
            async for e in provider.stream(request("hi"))
            if isinstance(e, TextDelta)
        ]

    arrivals = asyncio.run(timed())
    assert arrivals[0] >= 0.15
    assert arrivals[-1] - arrivals[0] >= 0.02 * (len(arrivals) - 1) * 0.9


def test_registry_finds_the_local_provider_and_its_settings() -> None:
    assert "local" in factories()
    providers = build_providers(
        {"SWITCHBOARD_LOCAL_FIRST_TOKEN_MS": "25", "SWITCHBOARD_LOCAL_WORDS_PER_CHUNK": "2"}
    )
    local = providers["local"]
    assert isinstance(local, LocalProvider)
    assert local.settings == LocalSettings(first_token_ms=25, chunk_ms=0, words_per_chunk=2)
    assert local.models() == ["simulator"]


def test_bad_settings_name_the_variable() -> None:
    import pytest

    from services.config import ConfigError

    with pytest.raises(ConfigError, match="SWITCHBOARD_LOCAL_CHUNK_MS must be a number"):
        create({"SWITCHBOARD_LOCAL_CHUNK_MS": "fast"})
    with pytest.raises(ConfigError, match="SWITCHBOARD_LOCAL_WORDS_PER_CHUNK must be >= 1"):
        create({"SWITCHBOARD_LOCAL_WORDS_PER_CHUNK": "0"})


MALFORMED_SCHEMAS = [
    '{"type": "object", "properties": [1, 2]}',
    '{"type": "array", "minItems": "x"}',
    '{"type": "array", "minItems": 1e12}',
    '{"type": "array", "items": 5}',
    '{"$ref": "#/$defs/missing"}',
    '{"$defs": [], "$ref": "#/$defs/a"}',
    '{"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}',
    '{"anyOf": [1, "x", null]}',
    '{"oneOf": "x"}',
    '{"enum": 5}',
    '{"type": "string", "maxLength": "abc"}',
    '{"type": "number", "minimum": "x", "maximum": [1]}',
    '{"type": ["null"]}',
    '{"type": {"a": 1}}',
    '{"type": "array", "items": ' * 40 + "{}" + "}" * 40,
    "[" * 5_000,
    '{"properties": {"a": 1, "b": null}}',
]


@pytest.mark.parametrize("schema", MALFORMED_SCHEMAS, ids=range(len(MALFORMED_SCHEMAS)))
def test_the_simulator_answers_any_json_schema(schema: str) -> None:
    """A malformed schema after "JSON Schema:" is the client's text: a bounded answer, not
    a 500 (issue 15)."""
    request = CompletionRequest(
        model="simulator",
        messages=[
            Message("system", [TextPart("Reply as JSON. JSON Schema: " + schema)]),
            Message("user", [TextPart("summarize the quarterly report")]),
        ],
    )
    reply = reply_text(request)
    assert reply and len(reply) < 100_000
