"""A fake OpenAI-compatible server (as Ollama or vLLM): the fake OpenAI, reading the reply
limit from `max_tokens` and taking no key."""

from __future__ import annotations

from tests.fakes.openai import FakeOpenAI
from tests.fakes.registry import FakeBinding

MODEL = "llama3.2"


class FakeOpenAICompatible(FakeOpenAI):
    max_tokens_field = "max_tokens"


BINDING = FakeBinding(
    fake=FakeOpenAICompatible,
    env=lambda url: {
        "SWITCHBOARD_OPENAI_COMPATIBLE_BASE_URL": f"{url}/v1",
        "SWITCHBOARD_OPENAI_COMPATIBLE_MODELS": f"{MODEL},qwen2.5",
    },
    model=MODEL,
)
