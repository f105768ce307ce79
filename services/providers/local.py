"""`local`: a deterministic offline simulator of a chat model. It is not a model.

It answers every request with a reply built only from the request itself, so tests and
`make dev` can check exactly what reached the provider (how many messages, what the first
and last user messages said) with no network and no key. Latency before the first chunk
and between chunks is configurable, so it can also stand in for a slow model.

Token counts are whitespace-separated words (plus 3 per input message, as chat formats
add framing tokens; a tool call's name and arguments count too), as
`services.context_window.estimate_tokens` counts them: an approximation that is stable
across runs.

When a system message asks for JSON by giving a JSON Schema after the words
`JSON Schema:` (as the tools in `services/tools/` do), the reply is instead a JSON object
that satisfies that schema, built from the words of the last user message: strings are
those words (long ones start with "[local simulator]"), numbers fall 0.5, 0.33, 0.25...
within their bounds, enums cycle through their values. It is a stand-in with the right
shape, not an analysis.

When the request offers tools, the simulator calls them: each once since the person's last
message, in the order offered, with arguments built from the tool's JSON Schema and the
conversation (document ids it has seen, the person's words); then it answers from their
results, citing the documents they name as `[doc_...]`. So agents run end to end offline.
The procedure is in `services/providers/_simulated_tools.py`.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import zlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from services.chat.context_window import estimate_tokens
from services.config import env_float, env_int
from services.errors import InvalidRequest
from services.providers._simulated_tools import Decision, decide
from services.providers.base import (
    DEFAULT_CONTEXT_WINDOW,
    Completion,
    CompletionRequest,
    EmbeddingBatch,
    Finish,
    Provider,
    StopReason,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
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

    async def embed(
        self, model: str, inputs: list[str], *, dimensions: int | None = None
    ) -> EmbeddingBatch:
        """`local/embedding`: hashed word and character-trigram counts (see `embed_text`)."""
        if model != EMBEDDING_MODEL:
            return await super().embed(model, inputs, dimensions=dimensions)
        size = dimensions or EMBEDDING_DIMENSIONS
        if not 1 <= size <= MAX_EMBEDDING_DIMENSIONS:
            raise InvalidRequest(
                f"'dimensions' must be from 1 to {MAX_EMBEDDING_DIMENSIONS} for "
                f"local/{EMBEDDING_MODEL}.",
                param="dimensions",
                code="invalid_value",
            )

        def work() -> EmbeddingBatch:
            vectors = [embed_text(text, size) for text in inputs]
            return EmbeddingBatch(vectors, sum(len(text.split()) for text in inputs))

        if sum(len(text) for text in inputs) < 20_000:
            return work()
        return await asyncio.to_thread(work)  # long inputs: keep the event loop free

    async def complete(self, request: CompletionRequest) -> Completion:
        plan = _plan(request, self.settings.words_per_chunk)
        pieces = len(plan.chunks) + 2 * len(plan.calls)
        delay = self.settings.first_token_ms + self.settings.chunk_ms * max(pieces - 1, 0)
        if delay:
            await asyncio.sleep(delay / 1000)
        return Completion(
            text="".join(plan.chunks),
            stop_reason=plan.stop_reason,
            usage=plan.usage,
            tool_calls=plan.calls,
        )

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        plan = _plan(request, self.settings.words_per_chunk)
        if self.settings.first_token_ms:
            await asyncio.sleep(self.settings.first_token_ms / 1000)
        for i, event in enumerate(plan.events()):
            if i and self.settings.chunk_ms:
                await asyncio.sleep(self.settings.chunk_ms / 1000)
            yield event
        yield Finish(plan.stop_reason)
        yield UsageReport(plan.usage)


def reply_text(request: CompletionRequest) -> str:
    """The simulator's whole reply to `request`, before `max_tokens` and `stop` apply (and
    without the tool calls it makes, if any: see `_plan`)."""
    return _reply(request, decide(request))


def _reply(request: CompletionRequest, decision: Decision | None) -> str:
    if decision is not None:
        return decision.text
    user_texts = [m.text for m in request.messages if m.role == "user"]
    schema = _asked_schema(request)
    if schema is not None:
        return json.dumps(_SchemaFiller(schema, user_texts[-1] if user_texts else "").fill())
    last = _clip(user_texts[-1]) if user_texts else ""
    first = _clip(user_texts[0]) if user_texts else ""
    count = len(request.messages)
    return (
        f'[local simulator, not a model] Turn {len(user_texts)}: you said "{last}". '
        f"I received {count} message{'s' if count != 1 else ''}; "
        f'the first user message was "{first}".'
    )


@dataclass(frozen=True, slots=True)
class _Plan:
    chunks: list[str]
    calls: list[ToolCall]
    stop_reason: StopReason
    usage: Usage

    def events(self) -> list[StreamEvent]:
        """The text chunks, then each call as two deltas (its name, then its arguments
        in two halves), as a provider streams them."""
        events: list[StreamEvent] = [TextDelta(chunk) for chunk in self.chunks]
        for index, call in enumerate(self.calls):
            half = len(call.arguments) // 2
            events.append(ToolCallDelta(index, call.id, call.name, call.arguments[:half]))
            events.append(ToolCallDelta(index, arguments=call.arguments[half:]))
        return events


def _plan(request: CompletionRequest, words_per_chunk: int) -> _Plan:
    """The reply's chunks, the tool calls it makes, its stop reason and its usage. Each
    word is one output token (of a call's arguments too)."""
    decision = decide(request)
    calls = decision.calls if decision is not None else []
    text = _reply(request, decision)
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
    input_tokens = sum(estimate_tokens(m) for m in request.messages)
    output_tokens = len(words) + sum(len(c.arguments.split()) for c in calls)
    if calls:
        stop_reason = "tool_calls"
    return _Plan(chunks, calls, stop_reason, Usage(input_tokens, output_tokens))


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _ECHO_LIMIT else text[: _ECHO_LIMIT - 1] + "…"


# --- JSON answers: a system message that gives a JSON Schema gets an instance of it ---
_SCHEMA_MARKER = "JSON Schema:"
_TOKEN = re.compile(r"[a-z][a-z0-9-]{2,}")


def _asked_schema(request: CompletionRequest) -> dict[str, Any] | None:
    for message in request.messages:
        if message.role not in ("system", "developer"):
            continue
        text = message.text
        at = text.find(_SCHEMA_MARKER)
        if at == -1:
            continue
        try:
            schema, _ = json.JSONDecoder().raw_decode(text[at + len(_SCHEMA_MARKER) :].lstrip())
        except (ValueError, RecursionError):  # not JSON, or nested past the decoder's stack
            continue
        if isinstance(schema, dict):
            return schema
    return None


class _SchemaFiller:
    """A deterministic instance of a JSON Schema (the subset pydantic emits).

    A schema is the client's text: whatever it holds (a list where an object belongs, a
    `$ref` to nothing, `minItems: 1e9`, nesting without end) gives a bounded answer, never
    an error. At most `MAX_DEPTH` levels and `MAX_VALUES` values are filled; past either,
    a value is null."""

    MAX_DEPTH = 20
    MAX_VALUES = 1_000
    MAX_ITEMS = 16

    def __init__(self, schema: dict[str, Any], text: str) -> None:
        self.schema = schema
        defs = schema.get("$defs")
        self.defs: dict[str, Any] = defs if isinstance(defs, dict) else {}
        self.words = list(dict.fromkeys(_TOKEN.findall(text.lower()))) or ["simulated"]
        self.strings = 0
        self.numbers = 0
        self.choices = 0
        self.values = 0

    def fill(self) -> Any:
        return self._value(self.schema, 0)

    def _value(self, node: Any, depth: int) -> Any:
        self.values += 1
        if not isinstance(node, dict) or depth > self.MAX_DEPTH or self.values > self.MAX_VALUES:
            return None
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return self._value(self.defs.get(ref.removeprefix("#/$defs/")), depth + 1)
        if "const" in node:
            return node["const"]
        enum = node.get("enum")
        if isinstance(enum, list) and enum:
            self.choices += 1
            return enum[(self.choices - 1) % len(enum)]
        for key in ("anyOf", "oneOf", "allOf"):
            branches = node.get(key)
            options = [
                o for o in branches if isinstance(o, dict) and o.get("type") != "null"
            ] if isinstance(branches, list) else []  # fmt: skip
            if options:
                return self._value(options[0], depth + 1)
        kind = node.get("type", "object")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind == "object":
            props = node.get("properties")
            if not isinstance(props, dict):
                return {}
            return {str(name): self._value(sub, depth + 1) for name, sub in props.items()}
        if kind == "array":
            low = _number(node.get("minItems"), 0)
            high = _number(node.get("maxItems"), 3)
            count = int(min(max(low, min(high, 3)), self.MAX_ITEMS))
            return [self._value(node.get("items", {}), depth + 1) for _ in range(max(count, 0))]
        if kind in ("number", "integer"):
            self.numbers += 1
            value: float = 1 / (self.numbers + 1)
            value = max(value, _number(node.get("minimum"), value))
            value = min(value, _number(node.get("maximum"), value))
            return round(value) if kind == "integer" else round(value, 3)
        if kind == "boolean":
            return False
        if kind == "null":
            return None
        return self._string(int(max(_number(node.get("maxLength"), 10_000), 0)))

    def _string(self, limit: int) -> str:
        count = 1 if limit < 100 else 6
        picked = [self.words[(self.strings + i) % len(self.words)] for i in range(count)]
        self.strings += count
        text = picked[0] if count == 1 else "[local simulator] " + " ".join(picked) + "."
        return text[:limit]


def _number(value: Any, default: float) -> float:
    """A schema keyword's number (`minItems`, `maximum`...), or `default` when it is not a
    finite one."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return default
    return float(value)


# --- embeddings: a deterministic stand-in, similar texts give close vectors -------------
EMBEDDING_MODEL = "embedding"
EMBEDDING_DIMENSIONS = 256
MAX_EMBEDDING_DIMENSIONS = 4096
_EMBED_WORD = re.compile(r"\w+")


def embed_text(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """Feature hashing: each lower-cased word (weight 1) and each character trigram of a
    word (weight 0.5, so that "report" and "reports" are close) adds its weight, with a
    sign, to one of `dimensions` buckets chosen by its CRC-32; counts are damped
    (1 + log n) and the vector is L2-normalized. Texts that share words have a high
    cosine similarity; an empty text is the zero vector. Stable across processes and
    runs (no salted `hash()`)."""
    counts: dict[str, float] = {}
    for word in _EMBED_WORD.findall(text.lower()):
        counts["w:" + word] = counts.get("w:" + word, 0.0) + 1.0
        padded = f" {word} "
        for i in range(len(padded) - 2):
            gram = "c:" + padded[i : i + 3]
            counts[gram] = counts.get(gram, 0.0) + 0.5
    vector = [0.0] * dimensions
    for feature, count in counts.items():
        digest = zlib.crc32(feature.encode())
        weight = 1.0 + math.log(count) if count >= 1 else count
        vector[digest % dimensions] += -weight if digest & 0x80000000 else weight
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector] if norm else vector


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
