"""Chat completions: resolve the model, call its provider, answer in the OpenAI format.

An answer's `model` is the provider model that answered (as OpenAI names the dated model
that served an alias), not the route or alias asked for: a fallback, and the simulator,
show in the answer. The name asked for goes back in the `x-switchboard-route` header.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from services.errors import APIError
from services.models.catalogue import Catalogue
from services.providers.base import (
    Finish,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from services.usage.context import Tally, counting
from services.web.sse import DONE, event
from services.wire.openai import (
    ChatCompletionRequest,
    chunk_json,
    completion_json,
    new_completion_id,
    to_canonical,
    usage_chunk_json,
)


class ChatService:
    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue

    async def complete(self, chat: ChatCompletionRequest) -> dict[str, Any]:
        route = self.catalogue.resolve(chat.model)
        with counting(Tally()) as tally:
            completion = await route.provider.complete(to_canonical(chat, route.model))
        return completion_json(
            completion, id=new_completion_id(), model=tally.model or route.public_name
        )

    async def stream(self, chat: ChatCompletionRequest) -> AsyncIterator[bytes]:
        """SSE bytes for a streamed completion.

        The provider's first events are awaited before this returns, so a failure before
        the first byte is raised here (and answered with an HTTP error status), while a
        failure after it ends the stream with an error event.
        """
        route = self.catalogue.resolve(chat.model)
        batches = route.provider.stream_batches(to_canonical(chat, route.model)).__aiter__()
        with counting(Tally()) as tally:  # the router opens the stream on the first read
            try:
                first = await batches.__anext__()
            except StopAsyncIteration:
                first = []
        return self._frames(chat, tally.model or route.public_name, batches, first)

    def frames(
        self, chat: ChatCompletionRequest, model: str, events: AsyncIterator[StreamEvent]
    ) -> AsyncIterator[bytes]:
        """SSE bytes for canonical `events`; an `APIError` they raise ends the stream with
        an error event."""
        return self._frames(chat, model, _singles(events))

    async def _frames(
        self,
        chat: ChatCompletionRequest,
        model: str,
        batches: AsyncIterator[list[StreamEvent]],
        first: list[StreamEvent] | None = None,
    ) -> AsyncIterator[bytes]:
        """One write per group of events: the chunks of events that arrived together
        (`first`, already read, then each of `batches`)."""
        id, created = new_completion_id(), int(time.time())
        usage = Usage()
        # Every chunk is this JSON around its delta and finish reason (the same bytes
        # chunk_json would give), so each event serializes only what differs.
        head, _, tail = event(
            chunk_json(id=id, model=model, created=created, delta={"~": 0}, finish_reason=None)
        ).partition(b'{"~":0}')
        tail_null, _, tail_end = tail.partition(b"null")

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            if finish_reason is None:
                return head + orjson.dumps(delta) + tail
            return head + orjson.dumps(delta) + tail_null + orjson.dumps(finish_reason) + tail_end

        # The opening chunk goes out with the first events (already there when the
        # response starts), in one write.
        out: list[bytes] = [chunk({"role": "assistant", "content": ""})]
        try:
            try:
                batch = first or []
                while True:
                    for item in batch:
                        if isinstance(item, TextDelta):
                            out.append(chunk({"content": item.text}))
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
                            out.append(chunk({"tool_calls": [call]}))
                        elif isinstance(item, Finish):
                            out.append(chunk({}, item.stop_reason))
                        elif isinstance(item, UsageReport):
                            usage = usage + item.usage
                    if out:
                        yield b"".join(out)
                        out = []
                    try:
                        batch = await batches.__anext__()
                    except StopAsyncIteration:
                        break
            except APIError as exc:
                yield b"".join(out) + event(exc.body())
                return
            if chat.include_usage:
                last = usage_chunk_json(id=id, model=model, created=created, usage=usage)
                out.append(event(last))
            yield b"".join(out) + DONE
        finally:
            # Closed early (the client left): the provider's stream ends now, and is
            # accounted as abandoned, rather than whenever the collector gets to it.
            close = getattr(batches, "aclose", None)
            if close is not None:
                await close()


async def _singles(events: AsyncIterator[StreamEvent]) -> AsyncIterator[list[StreamEvent]]:
    async for item in events:
        yield [item]
