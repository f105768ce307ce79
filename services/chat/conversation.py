"""Chat completions in a stored conversation.

How a client chats in a conversation: `POST /v1/chat/completions` with
`"metadata": {"conversation_id": "conv_..."}` (a parameter the openai SDK already sends,
so it needs no custom header and passes both front doors in the body unchanged) and, as
`messages`, only what is new: one user message, or the tool results that answer the
assistant's last tool calls. Switchboard then

1. loads the history with one Query (`ConversationStore.history`),
2. prepends the conversation's system prompt, leaves out the oldest turns if the history
   does not fit the model's context window (`services.chat.context_window`),
3. calls the model, and
4. stores the new messages and the reply with one TransactWriteItems
   (`ConversationStore.append_turn`; a turn that raced another is a 409 and stores nothing).

A streamed reply is produced by a background task that feeds the response through a queue
and stores the reply when the provider finishes, whether or not the client is still
reading, so a client that goes away still finds the whole reply in the conversation. The
`[DONE]` event is sent only after the reply is stored.

The answer carries the conversation id and the number of history messages left out, in
the `x-switchboard-conversation-id` and `x-switchboard-trimmed-messages` headers and, for
a non-streamed answer, in a top-level `"switchboard"` object of the body.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

from services.chat.completions import ChatService
from services.chat.context_window import fit, reply_budget
from services.conversations.store import (
    CONVERSATION_HEADER,
    DEFAULT_MAX_TURN_CHARS,
    TRIMMED_HEADER,
    ConversationStore,
    History,
    check_conversation_id,
)
from services.errors import APIError, InvalidRequest
from services.models.catalogue import Route
from services.providers.base import (
    CompletionRequest,
    Message,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
)
from services.usage.context import Tally, counting
from services.wire.openai import (
    ChatCompletionRequest,
    completion_json,
    new_completion_id,
    to_canonical,
)

log = logging.getLogger("switchboard.conversations")


def conversation_id_of(chat: ChatCompletionRequest) -> str | None:
    """The conversation a chat request continues, from `metadata.conversation_id`."""
    if not chat.metadata or "conversation_id" not in chat.metadata:
        return None
    return check_conversation_id(chat.metadata["conversation_id"], "metadata.conversation_id")


@dataclasses.dataclass(frozen=True, slots=True)
class _Turn:
    history: History
    new: list[Message]
    request: CompletionRequest
    route: Route
    trimmed: int

    def headers(self) -> dict[str, str]:
        return {
            CONVERSATION_HEADER: self.history.conversation.id,
            TRIMMED_HEADER: str(self.trimmed),
        }


class _End:
    """Marks the end of a stream whose reply has been stored."""


class ConversationChat:
    """Turns of a stored conversation, on top of `ChatService`'s model catalogue.

    The store is synchronous; its calls run in threads, off the event loop.
    """

    def __init__(
        self,
        chat: ChatService,
        store: ConversationStore,
        *,
        max_turn_chars: int = DEFAULT_MAX_TURN_CHARS,
    ) -> None:
        self.chat = chat
        self.store = store
        self.max_turn_chars = max_turn_chars
        self._tasks: set[asyncio.Task[None]] = set()

    async def complete(
        self, tenant: str, chat: ChatCompletionRequest, cid: str
    ) -> tuple[dict[str, Any], dict[str, str]]:
        turn = await self._prepare(tenant, chat, cid)
        with counting(Tally()) as tally:
            completion = await turn.route.provider.complete(turn.request)
        reply = Message(
            "assistant",
            [TextPart(completion.text)] if completion.text else [],
            tool_calls=list(completion.tool_calls),
        )
        await asyncio.to_thread(self.store.append_turn, turn.history.conversation, turn.new, reply)
        model = tally.model or turn.route.public_name
        body = completion_json(completion, id=new_completion_id(), model=model)
        body["switchboard"] = {
            "conversation_id": cid,
            "trimmed_messages": turn.trimmed,
        }
        return body, turn.headers()

    async def stream(
        self, tenant: str, chat: ChatCompletionRequest, cid: str
    ) -> tuple[AsyncIterator[bytes], dict[str, str]]:
        """SSE bytes and headers. A failure before the provider's first event is raised
        here (an HTTP error); one after it ends the stream with an error event. Either way
        nothing of the turn is stored."""
        turn = await self._prepare(tenant, chat, cid)
        events = turn.route.provider.stream(turn.request).__aiter__()
        with counting(Tally()) as tally:  # the router opens the stream on the first read
            try:
                first: StreamEvent | None = await events.__anext__()
            except StopAsyncIteration:
                first = None
        queue: asyncio.Queue[StreamEvent | APIError | _End] = asyncio.Queue()
        task = asyncio.create_task(self._produce(turn, first, events, queue))
        # The event loop keeps only a weak reference to a task.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        model = tally.model or turn.route.public_name
        return self.chat.frames(chat, model, _consume(queue)), turn.headers()

    async def aclose(self, grace_seconds: float = 30.0) -> None:
        """Wait for streams still being stored (at shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace_seconds)

    async def _prepare(self, tenant: str, chat: ChatCompletionRequest, cid: str) -> _Turn:
        route = self.chat.catalogue.resolve(chat.model)
        canonical = to_canonical(chat, route.model)
        new = canonical.messages
        roles = {m.role for m in new}
        if not (
            (roles == {"user"} and len(new) == 1)
            or (roles == {"tool"} and all(m.tool_call_id for m in new))
        ):
            raise InvalidRequest(
                "In a conversation, 'messages' holds only what is new: exactly one user "
                "message, or the tool results answering the last tool calls. The history "
                "(and the system prompt) come from the conversation.",
                param="messages",
                code="invalid_conversation_turn",
            )
        size = sum(len(m.text) + sum(len(c.arguments) for c in m.tool_calls) for m in new)
        if size > self.max_turn_chars:
            raise InvalidRequest(
                f"This turn has {size} characters; a conversation turn may have at most "
                f"{self.max_turn_chars}.",
                param="messages",
                code="turn_too_long",
            )
        history = await asyncio.to_thread(self.store.history, tenant, cid)
        prompt = history.conversation.system_prompt
        system = [Message("system", [TextPart(prompt)])] if prompt else []
        window = route.context_window
        fitted = fit(
            system,
            [m.message for m in history.messages],
            new,
            budget=window - reply_budget(window, canonical.max_tokens),
        )
        return _Turn(
            history=history,
            new=new,
            request=dataclasses.replace(canonical, messages=fitted.messages),
            route=route,
            trimmed=fitted.trimmed,
        )

    async def _produce(
        self,
        turn: _Turn,
        first: StreamEvent | None,
        events: AsyncIterator[StreamEvent],
        queue: asyncio.Queue[StreamEvent | APIError | _End],
    ) -> None:
        text: list[str] = []
        calls: dict[int, list[str]] = {}
        try:
            pending = [first] if first is not None else []
            async for event in _chain(pending, events):
                queue.put_nowait(event)
                if isinstance(event, TextDelta):
                    text.append(event.text)
                elif isinstance(event, ToolCallDelta):
                    call = calls.setdefault(event.index, ["", "", ""])
                    call[0] = event.id or call[0]
                    call[1] = event.name or call[1]
                    call[2] += event.arguments
            reply = Message(
                "assistant",
                [TextPart("".join(text))] if text else [],
                tool_calls=[ToolCall(*calls[i]) for i in sorted(calls)],
            )
            await asyncio.to_thread(
                self.store.append_turn, turn.history.conversation, turn.new, reply
            )
        except APIError as exc:
            queue.put_nowait(exc)
            return
        except Exception:
            log.exception("a conversation turn failed while streaming")
            queue.put_nowait(APIError("The server had an error while processing your request."))
            return
        queue.put_nowait(_End())


async def _consume(
    queue: asyncio.Queue[StreamEvent | APIError | _End],
) -> AsyncIterator[StreamEvent]:
    while True:
        item = await queue.get()
        if isinstance(item, _End):
            return
        if isinstance(item, APIError):
            raise item
        yield item


async def _chain(
    first: list[StreamEvent], rest: AsyncIterator[StreamEvent]
) -> AsyncIterator[StreamEvent]:
    for item in first:
        yield item
    async for item in rest:
        yield item
