"""Chat completions: resolve the model, call its provider, answer in the OpenAI format."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from services.catalogue import Catalogue
from services.errors import APIError
from services.openai_chat import (
    ChatCompletionRequest,
    chunk_json,
    completion_json,
    new_completion_id,
    to_canonical,
    usage_chunk_json,
)
from services.providers.base import (
    Finish,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from services.sse import DONE, event


class ChatService:
    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue

    async def complete(self, chat: ChatCompletionRequest) -> dict[str, Any]:
        route = self.catalogue.resolve(chat.model)
        completion = await route.provider.complete(to_canonical(chat, route.model))
        return completion_json(completion, id=new_completion_id(), model=route.public_name)

    async def stream(self, chat: ChatCompletionRequest) -> AsyncIterator[bytes]:
        """SSE bytes for a streamed completion.

        The provider's first event is awaited before this returns, so a failure before
        the first byte is raised here (and answered with an HTTP error status), while a
        failure after it ends the stream with an error event.
        """
        route = self.catalogue.resolve(chat.model)
        events = route.provider.stream(to_canonical(chat, route.model)).__aiter__()
        try:
            first: StreamEvent | None = await events.__anext__()
        except StopAsyncIteration:
            first = None
        return self._frames(chat, route.public_name, first, events)

    def frames(
        self, chat: ChatCompletionRequest, model: str, events: AsyncIterator[StreamEvent]
    ) -> AsyncIterator[bytes]:
        """SSE bytes for canonical `events`; an `APIError` they raise ends the stream with
        an error event."""
        return self._frames(chat, model, None, events)

    async def _frames(
        self,
        chat: ChatCompletionRequest,
        model: str,
        first: StreamEvent | None,
        events: AsyncIterator[StreamEvent],
    ) -> AsyncIterator[bytes]:
        id, created = new_completion_id(), int(time.time())
        usage = Usage()

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            return event(
                chunk_json(
                    id=id, model=model, created=created, delta=delta, finish_reason=finish_reason
                )
            )

        yield chunk({"role": "assistant", "content": ""})
        try:
            pending = [first] if first is not None else []
            async for item in _chain(pending, events):
                if isinstance(item, TextDelta):
                    yield chunk({"content": item.text})
                elif isinstance(item, ToolCallDelta):
                    call: dict[str, Any] = {
                        "index": item.index,
                        "function": {"arguments": item.arguments},
                    }
                    if item.id is not None:
                        call["id"] = item.id
                        call["type"] = "function"
                    if item.name is not None:
                        call["function"]["name"] = item.name
                    yield chunk({"tool_calls": [call]})
                elif isinstance(item, Finish):
                    yield chunk({}, item.stop_reason)
                elif isinstance(item, UsageReport):
                    usage = usage + item.usage
        except APIError as exc:
            yield event(exc.body())
            return
        if chat.include_usage:
            yield event(usage_chunk_json(id=id, model=model, created=created, usage=usage))
        yield DONE


async def _chain(
    first: list[StreamEvent], rest: AsyncIterator[StreamEvent]
) -> AsyncIterator[StreamEvent]:
    for item in first:
        yield item
    async for item in rest:
        yield item
