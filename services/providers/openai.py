"""`openai`: OpenAI's Chat Completions API through the official `openai` SDK.

Translation, canonical to Chat Completions and back:
- Roles keep their names (`system`, `developer`, `user`, `assistant`, `tool`); text-only
  content goes as a string, several parts as a list; images as `image_url` parts (a base64
  image is already a `data:` URL). Images are accepted only in user messages, the only
  place Chat Completions takes them; elsewhere the request is refused with a 400 naming
  the message.
- `tool_choice` is the OpenAI form already and passes through as given.
- `max_tokens` is sent as `max_completion_tokens` (the only form reasoning models accept).
- Usage: OpenAI's `prompt_tokens` includes the cached prompt tokens. Canonically
  `input_tokens` is every prompt token, cached included, and `cached_input_tokens` is the
  cached part (`prompt_tokens_details.cached_tokens`).
- Finish reasons: `stop`, `length`, `tool_calls` (and the legacy `function_call`) and
  `content_filter` map to themselves. An unknown or missing reason is `stop`, the normal
  end of a turn. A turn that produced tool calls ends with `tool_calls` even when the
  upstream said `stop` (some OpenAI-compatible servers do), so clients run the tools.

Failures become `ProviderError`s: an HTTP status through `from_status` (with Retry-After),
an unreachable upstream as `connection_failed`, a read or connect timeout as `timed_out`,
an unreadable chunk as `malformed`. The SDK never retries (`max_retries=0`): the router
does. Its read timeout is finite (the longer of first byte and idle gap), so a stalled
stream ends in an error even without the router's own idle timeout.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import openai
from openai.types.chat import ChatCompletionChunk

from services.canonical import (
    Completion,
    CompletionRequest,
    EmbeddingBatch,
    Finish,
    ImagePart,
    Message,
    StopReason,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from services.config import ConfigError
from services.errors import untranslatable
from services.providers._per_loop import PerLoop
from services.providers.base import Provider
from services.providers.errors import (
    ProviderError,
    connection_failed,
    failed_mid_stream,
    from_status,
    malformed,
    timed_out,
)
from services.providers.timeouts import Timeouts

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini")

# Prompt and reply together, by model-id prefix (longest prefix wins). The catalogue's
# `context_window` overrides these.
_CONTEXT_WINDOWS = {
    "gpt-4o": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-5": 400_000,
    "o1": 200_000,
    "o3": 200_000,
    "o4": 200_000,
}

_FINISH_REASONS: dict[str, StopReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


@dataclass(frozen=True, slots=True)
class OpenAISettings:
    """Where the upstream is and how to call it. `api_key` None sends no Authorization."""

    models: list[str]
    api_key: str | None = None
    base_url: str = DEFAULT_BASE_URL
    organization: str | None = None
    project: str | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    context_tokens: int | None = None  # one window for every model; None: by model id
    embedding_models: list[str] = field(default_factory=list)  # beyond the catalogue's


class OpenAIProvider(Provider):
    """Chat Completions through `openai.AsyncOpenAI`, one pooled client per event loop.

    A client is bound to the event loop it first ran on (its pooled connections belong to
    that loop); the worker has one loop, so it builds one client. Pass `client` to use
    your own.
    """

    name = "openai"
    # How the request names the reply's token limit, and whether `developer` messages go
    # as such: subclasses for servers that only speak the older dialect change these.
    max_tokens_field = "max_completion_tokens"
    developer_role = True

    def __init__(self, settings: OpenAISettings, client: openai.AsyncOpenAI | None = None) -> None:
        self.settings = settings
        self._injected = client
        self._clients = PerLoop(self._build_client)
        # Headers the SDK would otherwise add from its own reading of os.environ, or
        # require (Authorization) although this upstream takes no key.
        omitted: dict[str, Any] = {}
        if settings.api_key is None:
            omitted["Authorization"] = openai.Omit()
        if settings.organization is None:
            omitted["OpenAI-Organization"] = openai.Omit()
        if settings.project is None:
            omitted["OpenAI-Project"] = openai.Omit()
        self._extra_headers = omitted

    def models(self) -> list[str]:
        return list(self.settings.models)

    def context_window(self, model: str) -> int:
        if self.settings.context_tokens is not None:
            return self.settings.context_tokens
        matches = [prefix for prefix in _CONTEXT_WINDOWS if model.startswith(prefix)]
        if matches:
            return _CONTEXT_WINDOWS[max(matches, key=len)]
        return super().context_window(model)

    def embedding_models(self) -> list[str]:
        return list(self.settings.embedding_models)

    async def embed(
        self, model: str, inputs: list[str], *, dimensions: int | None = None
    ) -> EmbeddingBatch:
        """`embeddings.create`, as floats (the upstream rejects `dimensions` where its
        model cannot shorten vectors)."""
        extra: dict[str, Any] = {"dimensions": dimensions} if dimensions is not None else {}
        try:
            answer = await self._sdk().embeddings.create(
                model=model,
                input=inputs,
                encoding_format="float",
                extra_headers=self._extra_headers,
                **extra,
            )
        except (openai.OpenAIError, ValueError) as exc:
            raise self._error(exc, started=False) from exc
        return embeddings_from_json(self.name, answer.model_dump(), len(inputs))

    async def complete(self, request: CompletionRequest) -> Completion:
        params = self.chat_params(request)
        try:
            answer = await self._sdk().chat.completions.create(
                **params, extra_headers=self._extra_headers
            )
        except (openai.OpenAIError, ValueError) as exc:
            raise self._error(exc, started=False) from exc
        return completion_from_json(self.name, answer.model_dump())

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        params = self.chat_params(request)
        try:
            upstream = await self._sdk().chat.completions.create(
                **params,
                stream=True,
                stream_options={"include_usage": True},
                extra_headers=self._extra_headers,
            )
        except (openai.OpenAIError, ValueError) as exc:
            raise self._error(exc, started=False) from exc
        reader = ChunkReader(self.name)
        async with upstream:
            async for chunk in self._chunks(upstream):
                for event in reader.feed(chunk.model_dump()):
                    yield event
        reader.end()

    async def aclose(self) -> None:
        client = self._clients.take()
        if client is not None:
            await client.close()

    def chat_params(self, request: CompletionRequest) -> dict[str, Any]:
        """The Chat Completions request body for `request` (without `stream`)."""
        params: dict[str, Any] = {
            "model": request.model,
            "messages": [
                chat_message(message, index, developer_role=self.developer_role)
                for index, message in enumerate(request.messages)
            ],
        }
        if request.tools:
            params["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "parameters": tool.parameters,
                        **({"description": tool.description} if tool.description else {}),
                    },
                }
                for tool in request.tools
            ]
        if request.tool_choice is not None:
            params["tool_choice"] = request.tool_choice
        if request.max_tokens is not None:
            params[self.max_tokens_field] = request.max_tokens
        if request.stop:
            params["stop"] = list(request.stop)
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.top_p is not None:
            params["top_p"] = request.top_p
        if request.user is not None:
            params["user"] = request.user
        return params

    def _sdk(self) -> openai.AsyncOpenAI:
        if self._injected is not None:
            return self._injected
        return self._clients.get()

    def _build_client(self) -> openai.AsyncOpenAI:
        t = self.settings.timeouts
        return openai.AsyncOpenAI(
            # A placeholder keeps the SDK from reading OPENAI_API_KEY from os.environ;
            # the Authorization header is then omitted on every request.
            api_key=self.settings.api_key or "no-key",
            organization=self.settings.organization,
            project=self.settings.project,
            base_url=self.settings.base_url,
            max_retries=0,
            timeout=openai.Timeout(
                connect=t.connect,
                read=max(t.first_byte, t.idle),
                write=t.idle,
                pool=t.connect,
            ),
        )

    async def _chunks(
        self, upstream: openai.AsyncStream[ChatCompletionChunk]
    ) -> AsyncIterator[ChatCompletionChunk]:
        """The stream's chunks, with failures mid-stream as `ProviderError`s."""
        chunks = upstream.__aiter__()
        while True:
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            except (openai.OpenAIError, ValueError) as exc:
                raise self._error(exc, started=True) from exc
            yield chunk

    def _error(self, exc: Exception, *, started: bool) -> ProviderError:
        """`started`: whether the upstream had begun answering (a stream was open)."""
        if isinstance(exc, openai.APIStatusError):
            return from_status(
                self.name,
                exc.status_code,
                _upstream_message(exc.body, exc.message),
                retry_after=retry_after(exc.response.headers),
            )
        if isinstance(exc, openai.APITimeoutError):
            t = self.settings.timeouts
            if type(exc.__cause__).__name__ == "ConnectTimeout":
                return timed_out(self.name, "connect", t.connect)
            phase = "idle gap between chunks" if started else "first byte"
            return timed_out(self.name, phase, max(t.first_byte, t.idle))
        if isinstance(exc, openai.APIConnectionError):
            detail = str(exc.__cause__) if exc.__cause__ is not None else exc.message
            return connection_failed(self.name, detail or type(exc.__cause__).__name__)
        if isinstance(exc, openai.APIError):
            return failed_mid_stream(self.name, _upstream_message(exc.body, exc.message))
        return malformed(self.name, str(exc) or type(exc).__name__)


def chat_message(message: Message, index: int, *, developer_role: bool = True) -> dict[str, Any]:
    """One canonical message as a Chat Completions message."""
    role = message.role
    if role == "developer" and not developer_role:
        role = "system"
    if role != "user" and any(isinstance(part, ImagePart) for part in message.content):
        raise untranslatable(
            f"messages[{index}].content",
            f"Images are accepted only in user messages by this provider, not in a "
            f"{message.role} message (messages[{index}]).",
        )
    out: dict[str, Any] = {"role": role}
    if role == "tool":
        if message.tool_call_id is None:
            raise untranslatable(
                f"messages[{index}].tool_call_id",
                f"A tool message needs the id of the tool call it answers (messages[{index}]).",
            )
        out["tool_call_id"] = message.tool_call_id
        out["content"] = _content(message.content)
        return out  # Chat Completions has no name on tool messages: the id identifies it
    if role == "assistant":
        out["content"] = _content(message.content) if message.content else None
        if message.tool_calls:
            out["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in message.tool_calls
            ]
    else:
        out["content"] = _content(message.content)
    if message.name is not None:
        out["name"] = message.name
    return out


def _content(parts: list[TextPart | ImagePart]) -> str | list[dict[str, Any]]:
    if not parts:
        return ""
    if len(parts) == 1 and isinstance(parts[0], TextPart):
        return parts[0].text
    out: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, TextPart):
            out.append({"type": "text", "text": part.text})
        else:
            image: dict[str, Any] = {"url": part.url}
            if part.detail is not None:
                image["detail"] = part.detail
            out.append({"type": "image_url", "image_url": image})
    return out


def completion_from_json(provider: str, answer: dict[str, Any]) -> Completion:
    """The canonical completion from a Chat Completions answer (a decoded JSON object)."""
    choices = answer.get("choices") or []
    if not choices:
        raise malformed(provider, "the answer has no choices")
    choice = choices[0]
    message = choice.get("message") or {}
    tool_calls = [
        ToolCall(call["id"], call["function"]["name"], call["function"].get("arguments") or "")
        for call in message.get("tool_calls") or []
        if call.get("type", "function") == "function"  # custom tools are never sent
    ]
    return Completion(
        text=message.get("content") or message.get("refusal") or "",
        stop_reason=stop_reason(choice.get("finish_reason"), bool(tool_calls)),
        usage=usage_from_json(answer.get("usage")),
        tool_calls=tool_calls,
    )


def embeddings_from_json(provider: str, answer: dict[str, Any], count: int) -> EmbeddingBatch:
    """The vectors of an Embeddings answer, in input order (by each item's `index`)."""
    data = answer.get("data")
    if not isinstance(data, list) or len(data) != count:
        raise malformed(provider, f"the answer does not hold {count} embeddings")
    vectors: list[list[float] | None] = [None] * count
    for position, item in enumerate(data):
        index = item.get("index", position) if isinstance(item, dict) else None
        vector = item.get("embedding") if isinstance(item, dict) else None
        if not isinstance(index, int) or not 0 <= index < count or not isinstance(vector, list):
            raise malformed(provider, "an embedding has no index or no float vector")
        vectors[index] = [float(v) for v in vector]
    if any(v is None for v in vectors):
        raise malformed(provider, "an input has no embedding")
    usage = answer.get("usage") or {}
    return EmbeddingBatch(
        [v for v in vectors if v is not None], int(usage.get("prompt_tokens") or 0)
    )


class ChunkReader:
    """Canonical events from the chunks of a Chat Completions stream (decoded JSON objects).

    A tool call's id and name go with its first fragment only, even if the server repeats
    them; `Finish` comes once, with the first finish reason; usage arrives in its own
    chunk (`choices: []`). `end()` raises if the stream ended without a finish reason.
    """

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.finished = False
        self._seen_calls: set[int] = set()

    def feed(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                events.append(TextDelta(delta["content"]))
            elif delta.get("refusal"):
                events.append(TextDelta(delta["refusal"]))
            for call in delta.get("tool_calls") or ():
                index = call["index"]
                first = index not in self._seen_calls
                self._seen_calls.add(index)
                function = call.get("function") or {}
                arguments = function.get("arguments") or ""
                if not first and not arguments:
                    continue
                events.append(
                    ToolCallDelta(
                        index=index,
                        id=call.get("id") if first else None,
                        name=function.get("name") if first else None,
                        arguments=arguments,
                    )
                )
            reason = choice.get("finish_reason")
            if reason is not None and not self.finished:
                self.finished = True
                events.append(Finish(stop_reason(reason, bool(self._seen_calls))))
        if chunk.get("usage") is not None:
            events.append(UsageReport(usage_from_json(chunk["usage"])))
        return events

    def end(self) -> None:
        if not self.finished:
            raise malformed(self.provider, "the stream ended without a finish reason")


def stop_reason(native: str | None, called_tools: bool = False) -> StopReason:
    """The canonical stop reason for a Chat Completions `finish_reason`."""
    mapped = _FINISH_REASONS.get(native or "", "stop")
    if called_tools and mapped == "stop":
        return "tool_calls"
    return mapped


def usage_from_json(native: dict[str, Any] | None) -> Usage:
    """Canonical usage: `input_tokens` counts every prompt token, the cached ones too."""
    if not native:
        return Usage()
    details = native.get("prompt_tokens_details") or {}
    return Usage(
        input_tokens=native.get("prompt_tokens") or 0,
        output_tokens=native.get("completion_tokens") or 0,
        cached_input_tokens=details.get("cached_tokens") or 0,
    )


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from `retry-after-ms` (OpenAI's) or `retry-after` (seconds or a date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _upstream_message(body: object, fallback: str) -> str:
    """The upstream's own message from an OpenAI error body (`{"error": {"message"}}`)."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
    if isinstance(body, str) and body:
        return body
    return fallback


def model_list(env: Mapping[str, str], name: str, default: tuple[str, ...] = ()) -> list[str]:
    """A comma-separated list of model ids; `default` when unset, an error when empty."""
    raw = env.get(name)
    if raw is None or not raw.strip():
        if not default:
            raise ConfigError(f"{name} is required: the comma-separated model ids to offer")
        return list(default)
    models = [model.strip() for model in raw.split(",") if model.strip()]
    if not models:
        raise ConfigError(f"{name} lists no model ids: {raw!r}")
    return models


def create(env: Mapping[str, str]) -> OpenAIProvider | None:
    """Offered when `OPENAI_API_KEY` is set. `SWITCHBOARD_OPENAI_BASE_URL` points it at
    another endpoint (a proxy, a fake); `SWITCHBOARD_OPENAI_MODELS` lists what it offers;
    `SWITCHBOARD_OPENAI_EMBEDDING_MODELS` adds embedding models to the catalogue's."""
    api_key = env.get("OPENAI_API_KEY") or None
    if api_key is None:
        return None
    return OpenAIProvider(
        OpenAISettings(
            models=model_list(env, "SWITCHBOARD_OPENAI_MODELS", DEFAULT_MODELS),
            api_key=api_key,
            base_url=env.get("SWITCHBOARD_OPENAI_BASE_URL") or DEFAULT_BASE_URL,
            organization=env.get("OPENAI_ORG_ID") or None,
            project=env.get("OPENAI_PROJECT_ID") or None,
            timeouts=Timeouts.from_env(env, "openai"),
            embedding_models=optional_model_list(env, "SWITCHBOARD_OPENAI_EMBEDDING_MODELS"),
        )
    )


def optional_model_list(env: Mapping[str, str], name: str) -> list[str]:
    """A comma-separated list of model ids, empty when unset."""
    return [model.strip() for model in (env.get(name) or "").split(",") if model.strip()]
