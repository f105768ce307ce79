"""`anthropic`: Claude through the official `anthropic` SDK and the Messages API.

One `AsyncAnthropic` client per provider (pooled connections), with the SDK's own retries
off: the router decides what to retry. Translation to the Messages format is in
`services.wire.anthropic`, shared with the inbound `/v1/messages` endpoint.

Usage: Anthropic reports input tokens in `message_start` and cumulative counts in
`message_delta`; the stream reports each part as a `UsageReport` holding only what is new,
so the reports add up to the final counts.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import NoReturn

import anthropic
import httpx2
from anthropic.types import Message as NativeMessage
from anthropic.types import MessageDeltaUsage, RawMessageStreamEvent
from anthropic.types import Usage as NativeUsage

from services.canonical import (
    Completion,
    CompletionRequest,
    Finish,
    StopReason,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from services.config import env_int
from services.providers._per_loop import PerLoop
from services.providers.base import Provider
from services.providers.errors import (
    connection_failed,
    from_status,
    malformed,
    timed_out,
)
from services.providers.timeouts import Timeouts
from services.wire.anthropic import DEFAULT_MAX_TOKENS, request_body, stop_reason, usage

NAME = "anthropic"
DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_MODELS = ("claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5")
CONTEXT_WINDOW = 200_000
# Anthropic's error types, for an error that arrives inside a stream (HTTP status 200).
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


@dataclass(frozen=True, slots=True)
class AnthropicSettings:
    api_key: str
    base_url: str = DEFAULT_BASE_URL
    models: tuple[str, ...] = DEFAULT_MODELS
    timeouts: Timeouts = field(default_factory=Timeouts)
    default_max_tokens: int = DEFAULT_MAX_TOKENS


class AnthropicProvider(Provider):
    """Claude models through the Messages API, one pooled `AsyncAnthropic` per event loop.

    A client is bound to the event loop it first ran on (its pooled connections belong to
    that loop); the worker has one loop, so it builds one client. Pass `client` to use
    your own.
    """

    name = NAME

    def __init__(
        self, settings: AnthropicSettings, client: anthropic.AsyncAnthropic | None = None
    ) -> None:
        self.settings = settings
        self._injected = client
        self._clients = PerLoop(self._build_client)

    def models(self) -> list[str]:
        return list(self.settings.models)

    def context_window(self, model: str) -> int:
        return CONTEXT_WINDOW

    async def complete(self, request: CompletionRequest) -> Completion:
        body = request_body(request, self.settings.default_max_tokens)
        t = self.settings.timeouts
        try:
            # Nothing arrives before the whole answer: the first byte is the answer.
            async with asyncio.timeout(min(t.first_byte, t.total)):
                message = await self._sdk().messages.create(**body)
        except TimeoutError:
            raise timed_out(NAME, "first byte", min(t.first_byte, t.total)) from None
        except anthropic.APIError as exc:
            _raise(exc, t)
        return _completion(message)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        body = request_body(request, self.settings.default_max_tokens)
        t = self.settings.timeouts
        loop = asyncio.get_running_loop()
        deadline = loop.time() + t.total
        try:
            async with asyncio.timeout(min(t.first_byte, t.total)):
                events = await self._sdk().messages.create(**body, stream=True)
        except TimeoutError:
            raise timed_out(NAME, "first byte", min(t.first_byte, t.total)) from None
        except anthropic.APIError as exc:
            _raise(exc, t)
        decoder = StreamDecoder()
        iterator = events.__aiter__()
        phase, limit = "first byte", t.first_byte
        try:
            while True:
                wait = min(limit, deadline - loop.time())
                try:
                    async with asyncio.timeout(wait):
                        event = await iterator.__anext__()
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    if wait < limit:
                        raise timed_out(NAME, "total", t.total) from None
                    raise timed_out(NAME, phase, limit) from None
                phase, limit = "idle gap between chunks", t.idle
                for item in decoder.feed(event):
                    yield item
        except anthropic.APIError as exc:
            _raise(exc, t)
        except httpx2.TimeoutException:
            raise timed_out(NAME, "idle gap between chunks", t.idle) from None
        except httpx2.TransportError as exc:
            raise connection_failed(NAME, f"the stream broke: {exc.__class__.__name__}") from None
        except ValueError as exc:  # an event whose data is not JSON
            raise malformed(NAME, str(exc)) from None
        finally:
            await events.close()
        if not decoder.finished:
            raise malformed(NAME, "the stream ended before message_stop")

    async def aclose(self) -> None:
        client = self._clients.take()
        if client is not None:
            await client.close()

    def _sdk(self) -> anthropic.AsyncAnthropic:
        if self._injected is not None:
            return self._injected
        return self._clients.get()

    def _build_client(self) -> anthropic.AsyncAnthropic:
        t = self.settings.timeouts
        return anthropic.AsyncAnthropic(
            api_key=self.settings.api_key,
            base_url=self.settings.base_url,
            max_retries=0,
            # The phases the SDK cannot tell apart (first byte, idle gap) are timed here.
            timeout=httpx2.Timeout(
                connect=t.connect, read=max(t.first_byte, t.idle), write=t.idle, pool=t.connect
            ),
        )


class StreamDecoder:
    """Turns the Messages stream's events into canonical ones.

    Tool calls are numbered from 0 in the order their blocks start (Anthropic numbers every
    content block, text included). Usage is reported as it grows: the input in
    `message_start`, then whatever `message_delta`'s cumulative counts add to it.
    """

    def __init__(self) -> None:
        self._tools: dict[int, int] = {}  # content block index -> tool call index
        self._counts = dict.fromkeys(
            (
                "input_tokens",
                "output_tokens",
                "cache_read_input_tokens",
                "cache_creation_input_tokens",
            ),
            0,
        )
        self._reported = Usage()
        self._stop: StopReason = "stop"
        self.finished = False

    def feed(self, event: RawMessageStreamEvent) -> list[StreamEvent]:
        try:
            return self._feed(event)
        except (AttributeError, KeyError, TypeError) as exc:
            raise malformed(NAME, f"a {event.type} event is incomplete ({exc})") from None

    def _feed(self, event: RawMessageStreamEvent) -> list[StreamEvent]:
        if event.type == "content_block_delta":
            delta = event.delta
            if delta.type == "text_delta":
                return [TextDelta(delta.text)] if delta.text else []
            if delta.type == "input_json_delta" and event.index in self._tools:
                index = self._tools[event.index]
                return [ToolCallDelta(index, arguments=delta.partial_json)]
            return []
        if event.type == "content_block_start":
            block = event.content_block
            if block.type == "tool_use":
                index = self._tools[event.index] = len(self._tools)
                return [ToolCallDelta(index, id=block.id, name=block.name)]
            if block.type == "text" and block.text:
                return [TextDelta(block.text)]
            return []
        if event.type == "message_start":
            return self._usage(event.message.usage)
        if event.type == "message_delta":
            self._stop = stop_reason(event.delta.stop_reason)
            return self._usage(event.usage)
        if event.type == "message_stop":
            self.finished = True
            return [Finish(self._stop)]
        return []

    def _usage(self, counts: NativeUsage | MessageDeltaUsage) -> list[StreamEvent]:
        """A report of what `counts` (cumulative; a count left out keeps its last value)
        adds to what has been reported."""
        for name in self._counts:
            value = getattr(counts, name)
            if value is not None:
                self._counts[name] = value
        total = usage(**self._counts)
        seen, self._reported = self._reported, total
        new = Usage(
            total.input_tokens - seen.input_tokens,
            total.output_tokens - seen.output_tokens,
            total.cached_input_tokens - seen.cached_input_tokens,
        )
        return [UsageReport(new)] if new != Usage() else []


def _completion(message: NativeMessage) -> Completion:
    text: list[str] = []
    calls: list[ToolCall] = []
    for block in message.content:
        if block.type == "text":
            text.append(block.text)
        elif block.type == "tool_use":
            calls.append(ToolCall(block.id, block.name, json.dumps(block.input)))
    u = message.usage
    return Completion(
        text="".join(text),
        stop_reason=stop_reason(message.stop_reason),
        usage=usage(
            u.input_tokens,
            u.output_tokens,
            u.cache_read_input_tokens,
            u.cache_creation_input_tokens,
        ),
        tool_calls=calls,
    )


def _raise(exc: anthropic.APIError, timeouts: Timeouts) -> NoReturn:
    """The ProviderError for an SDK exception."""
    if isinstance(exc, anthropic.APITimeoutError):
        if isinstance(exc.__cause__, httpx2.ConnectTimeout):
            raise timed_out(NAME, "connect", timeouts.connect) from None
        raise timed_out(NAME, "first byte", timeouts.first_byte) from None
    if isinstance(exc, anthropic.APIConnectionError):
        cause = exc.__cause__
        detail = f"{cause.__class__.__name__}: {cause}" if cause is not None else exc.message
        raise connection_failed(NAME, detail) from None
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        if status < 400:  # an error event inside a stream
            status = _ERROR_STATUS.get(str(exc.type), 500)
        message = exc.api_message or exc.message
        raise from_status(
            NAME, status, message, retry_after=_retry_after(exc.response.headers)
        ) from None
    raise malformed(NAME, exc.message) from None


def _retry_after(headers: httpx2.Headers) -> float | None:
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) / scale)
            except ValueError:
                return None  # an HTTP date: rare from Anthropic, and the router backs off anyway
    return None


def create(env: Mapping[str, str]) -> AnthropicProvider | None:
    """Configured by ANTHROPIC_API_KEY. SWITCHBOARD_ANTHROPIC_BASE_URL points it elsewhere,
    SWITCHBOARD_ANTHROPIC_MODELS (comma-separated) lists the models it offers, and
    SWITCHBOARD_ANTHROPIC_DEFAULT_MAX_TOKENS caps a reply whose request sets no max_tokens."""
    key = env.get("ANTHROPIC_API_KEY")
    if not key:
        return None
    models = tuple(
        m.strip() for m in env.get("SWITCHBOARD_ANTHROPIC_MODELS", "").split(",") if m.strip()
    )
    return AnthropicProvider(
        AnthropicSettings(
            api_key=key,
            base_url=env.get("SWITCHBOARD_ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL,
            models=models or DEFAULT_MODELS,
            timeouts=Timeouts.from_env(env, NAME),
            default_max_tokens=env_int(
                env, "SWITCHBOARD_ANTHROPIC_DEFAULT_MAX_TOKENS", DEFAULT_MAX_TOKENS, minimum=1
            ),
        )
    )
