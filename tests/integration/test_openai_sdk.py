"""The official openai SDK, unchanged, against both front doors of the local stack."""

from __future__ import annotations

import itertools
import time

import openai
import pytest

from devstack.stack import LocalStack
from tests.integration.conftest import CHUNK_MS
from tests.integration.doors import api_and_stream

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is Switchboard?"},
]
EXPECTED = (
    '[local simulator, not a model] Turn 1: you said "What is Switchboard?". '
    'I received 2 messages; the first user message was "What is Switchboard?".'
)


def door_url(stack: LocalStack, door: str) -> str:
    return {"api": stack.api_url, "stream": stack.stream_url}[door]


@pytest.mark.parametrize("door", api_and_stream())
def test_completion(stack: LocalStack, door: str) -> None:
    client = openai.OpenAI(base_url=door_url(stack, door), api_key=stack.api_key)
    completion = client.chat.completions.create(model="local/simulator", messages=MESSAGES)
    assert completion.object == "chat.completion"
    assert completion.model == "local/simulator"
    assert completion.choices[0].message.content == EXPECTED
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == len(EXPECTED.split())
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


@pytest.mark.parametrize("door", api_and_stream())
def test_streamed_completion(stack: LocalStack, door: str) -> None:
    client = openai.OpenAI(base_url=door_url(stack, door), api_key=stack.api_key)
    stream = client.chat.completions.create(
        model="local/simulator",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == EXPECTED
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    assert chunks[0].choices[0].delta.role == "assistant"
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1]
    assert usage_chunks[0].usage is not None
    assert usage_chunks[0].usage.completion_tokens == len(EXPECTED.split())
    assert len({c.id for c in chunks}) == 1


def test_stream_without_usage_option_has_no_usage_chunk(stack: LocalStack) -> None:
    client = openai.OpenAI(base_url=stack.stream_url, api_key=stack.api_key)
    chunks = list(
        client.chat.completions.create(model="local/simulator", messages=MESSAGES, stream=True)
    )
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


def test_stream_front_door_relays_chunks_as_they_are_made(stack: LocalStack) -> None:
    """Each chunk reaches the client when the simulator makes it, not all at the end."""
    client = openai.OpenAI(base_url=stack.stream_url, api_key=stack.api_key)
    arrivals = []
    for chunk in client.chat.completions.create(
        model="local/simulator",
        messages=MESSAGES,
        stream=True,
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic())
    words = len(EXPECTED.split())
    assert len(arrivals) == words
    # The simulator waits CHUNK_MS between words. Buffering anywhere on the way would make
    # the words arrive together at the end; relayed one by one, they arrive spread out.
    span = arrivals[-1] - arrivals[0]
    assert span >= (words - 1) * CHUNK_MS / 1000 * 0.8
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    spaced = [g for g in gaps if g >= CHUNK_MS / 1000 * 0.5]
    assert len(spaced) >= len(gaps) * 0.8, gaps


@pytest.mark.parametrize("door", api_and_stream())
def test_models_lists_the_simulator(stack: LocalStack, door: str) -> None:
    for url in (door_url(stack, door),):
        client = openai.OpenAI(base_url=url, api_key=stack.api_key)
        models = {m.id: m for m in client.models.list()}
        assert "local/simulator" in models
        assert models["local/simulator"].owned_by == "local"
