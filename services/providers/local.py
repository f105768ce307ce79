"""`local`: a deterministic offline simulator of a chat model. It is not a model.

It answers every request with a reply built only from the request itself, so tests and
`make dev` can check exactly what reached the provider (how many messages, what the first
and last user messages said) with no network and no key. Latency before the first chunk
and between chunks is configurable, so it can also stand in for a slow model.

Token counts are whitespace-separated words (plus 3 per input message, as chat formats
add framing tokens): an approximation that is stable across runs.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from services.config import env_float, env_int
from services.providers.base import (
    DEFAULT_CONTEXT_WINDOW,
    Completion,
    CompletionRequest,
    Finish,
    Provider,
    StopReason,
    StreamEvent,
    TextDelta,
    Usage,
    UsageReport,
)

MODEL = "simulator"
_ECHO_LIMIT = 200
_WORD = re.compile(r"\s*\S+")


@dataclass(frozen=True, slots=True)
class LocalSettings:
    first_token_ms: float = 0.0
    chunk_ms: float = 0.0
    words_per_chunk: int = 1
    context_tokens: int = DEFAULT_CONTEXT_WINDOW


class LocalProvider(Provider):
    """The offline simulator. Deterministic: the same request always gets the same reply."""

    name = "local"

    def __init__(self, settings: LocalSettings | None = None) -> None:
        self.settings = settings or LocalSettings()

    def models(self) -> list[str]:
        return [MODEL]

    def context_window(self, model: str) -> int:
        return self.settings.context_tokens

    async def complete(self, request: CompletionRequest) -> Completion:
        chunks, stop_reason, usage = _plan(request, self.settings.words_per_chunk)
        delay = self.settings.first_token_ms + self.settings.chunk_ms * max(len(chunks) - 1, 0)
        if delay:
            await asyncio.sleep(delay / 1000)
        return Completion(text="".join(chunks), stop_reason=stop_reason, usage=usage)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        chunks, stop_reason, usage = _plan(request, self.settings.words_per_chunk)
        if self.settings.first_token_ms:
            await asyncio.sleep(self.settings.first_token_ms / 1000)
        for i, chunk in enumerate(chunks):
            if i and self.settings.chunk_ms:
                await asyncio.sleep(self.settings.chunk_ms / 1000)
            yield TextDelta(chunk)
        yield Finish(stop_reason)
        yield UsageReport(usage)


def reply_text(request: CompletionRequest) -> str:
    """The simulator's whole reply to `request`, before `max_tokens` and `stop` apply."""
    user_texts = [m.text for m in request.messages if m.role == "user"]
    last = _clip(user_texts[-1]) if user_texts else ""
    first = _clip(user_texts[0]) if user_texts else ""
    count = len(request.messages)
    return (
        f'[local simulator, not a model] Turn {len(user_texts)}: you said "{last}". '
        f"I received {count} message{'s' if count != 1 else ''}; "
        f'the first user message was "{first}".'
    )


def _plan(request: CompletionRequest, words_per_chunk: int) -> tuple[list[str], StopReason, Usage]:
    """The reply's chunks, its stop reason and its usage. Each word is one output token."""
    text = reply_text(request)
    for stop in request.stop:
        at = text.find(stop)
        if at != -1:
            text = text[:at]
    words = _WORD.findall(text)  # each word with the space before it: they join back exactly
    stop_reason: StopReason = "stop"
    if request.max_tokens is not None and len(words) > request.max_tokens:
        words = words[: request.max_tokens]
        stop_reason = "length"
    elif words:
        words[-1] += text[len("".join(words)) :]  # trailing space, if a stop sequence left one
    chunks = [
        "".join(words[i : i + words_per_chunk]) for i in range(0, len(words), words_per_chunk)
    ]
    input_tokens = sum(len(m.text.split()) + 3 for m in request.messages)
    return chunks, stop_reason, Usage(input_tokens=input_tokens, output_tokens=len(words))


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _ECHO_LIMIT else text[: _ECHO_LIMIT - 1] + "…"


def create(env: Mapping[str, str]) -> LocalProvider:
    """Always available: the simulator needs no credentials."""
    return LocalProvider(
        LocalSettings(
            first_token_ms=env_float(env, "SWITCHBOARD_LOCAL_FIRST_TOKEN_MS", 0.0),
            chunk_ms=env_float(env, "SWITCHBOARD_LOCAL_CHUNK_MS", 0.0),
            words_per_chunk=env_int(env, "SWITCHBOARD_LOCAL_WORDS_PER_CHUNK", 1, minimum=1),
            context_tokens=env_int(
                env, "SWITCHBOARD_LOCAL_CONTEXT_TOKENS", DEFAULT_CONTEXT_WINDOW, minimum=16
            ),
        )
    )
