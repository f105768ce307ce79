"""How the worker answers a chat request, one decision at a time.

`ChatPolicy` is what `POST /v1/chat/completions` and `POST /v1/messages` do once the
caller is authenticated and admitted (`containers/worker/app.py` only wires it).

A chat completion (OpenAI wire format), in this order:

1. a turn of a stored conversation (`metadata.conversation_id`) goes to
   `ConversationChat` (services/chat/conversation.py): streamed, or bounded by the sync
   deadline;
2. a streamed completion is sent as server-sent events (with heartbeats); an
   `Idempotency-Key` is refused, since a stream cannot be replayed (a run can);
3. with an `Idempotency-Key`, the answer is the key's run, bounded by the deadline: a
   retry with the same key and body gets the same answer, never a second call;
4. otherwise the completion itself, bounded by the deadline.

A message (Anthropic wire format): streamed, or bounded by the deadline; what a client
sees past the deadline is in Anthropic's error envelope.

Past the sync deadline (services/runs/sync.py) the work goes on as a run that will hold
the answer: the caller gets 202 with the run if it sent `Prefer: respond-async`, and
otherwise a 504 naming the run, which the SDKs raise once without retrying.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.responses import Response

from services.chat.completions import ChatService
from services.chat.conversation import ConversationChat, conversation_id_of
from services.chat.messages import MessagesService, parse_messages_json, parse_messages_request
from services.errors import APIError, InvalidRequest, anthropic_body
from services.models.catalogue import ROUTE_HEADER
from services.runs.model import Run
from services.runs.sync import Caller, CallKind, Outcome, SyncCalls, reply
from services.web.asgi import JSONBytesResponse, StreamResponse, decode_json
from services.web.sse import HEADERS as SSE_HEADERS
from services.wire.openai import ChatCompletionRequest, parse_chat_json, parse_chat_request

# The run kinds of promoted calls (a chat completion's is the public `chat.completion`).
CHAT_COMPLETION = "chat.completion"
CONVERSATION_TURN = "conversation.turn"
MESSAGE = "message"


class ChatPolicy:
    """Chat completions and messages, as the module says. `stream` makes the SSE response
    (the worker's: with heartbeats, counted among its open streams)."""

    def __init__(
        self,
        chat: ChatService,
        messages: MessagesService,
        conversations: Callable[[], ConversationChat],
        calls: SyncCalls,
        stream: StreamResponse,
    ) -> None:
        self.chat = chat
        self.messages = messages
        self.conversations = conversations
        self.calls = calls
        self.stream = stream

    def kinds(self) -> list[CallKind]:
        """The run kinds of the calls this policy promotes (a conversation turn or a
        message past the deadline), for the run service to execute them on a takeover."""

        async def turn(run: Run) -> Any:
            chat = parse_chat_request(run.input)
            cid = conversation_id_of(chat)
            assert cid is not None
            body, _ = await self.conversations().complete(run.tenant_id, chat, cid)
            return body

        async def message(run: Run) -> Any:
            return await self.messages.complete(parse_messages_request(run.input))

        return [CallKind(CONVERSATION_TURN, turn), CallKind(MESSAGE, message)]

    async def chat_completion(self, caller: Caller, raw: bytes, key: str | None) -> Response:
        parsed = parse_chat_json(raw) or parse_chat_request(decode_json(raw))
        cid = conversation_id_of(parsed)
        if cid is not None:
            return await self.conversation_turn(caller, parsed, cid, raw)
        asked = {ROUTE_HEADER: parsed.model}  # the body's `model` is the one that answered
        if parsed.stream:
            if key is not None:
                raise InvalidRequest(
                    "Idempotency-Key applies to non-streamed chat completions; for a streamed "
                    "completion that survives a retry, create a run and follow its events.",
                    param="Idempotency-Key",
                    code="unsupported_parameter",
                )
            return self.stream(await self.chat.stream(parsed), {**SSE_HEADERS, **asked})
        outcome: Outcome
        if key is not None and self.calls.runs is not None:
            outcome = await self.calls.keyed(caller, CHAT_COMPLETION, decode_json(raw), key)
        else:
            work = self.chat.complete(parsed)
            outcome = await self.calls.call(caller, CHAT_COMPLETION, lambda: decode_json(raw), work)
        return reply(outcome, caller, headers=asked)

    async def conversation_turn(
        self, caller: Caller, parsed: ChatCompletionRequest, cid: str, raw: bytes
    ) -> Response:
        tenant = caller.principal.tenant_id
        conversations = self.conversations()
        if parsed.stream:
            frames, headers = await conversations.stream(tenant, parsed, cid)
            return self.stream(frames, {**SSE_HEADERS, **headers})
        answered: dict[str, str] = {}

        async def turn() -> Any:
            body, headers = await conversations.complete(tenant, parsed, cid)
            answered.update(headers)
            return body

        outcome = await self.calls.call(caller, CONVERSATION_TURN, lambda: decode_json(raw), turn())
        return reply(outcome, caller, headers=answered)

    async def message(self, caller: Caller, raw: bytes) -> Response:
        """Anthropic's Messages API, for the `anthropic` SDK, on every provider."""
        parsed = parse_messages_json(raw) or parse_messages_request(decode_json(raw))
        asked = {ROUTE_HEADER: parsed.model}
        if parsed.stream:
            return self.stream(await self.messages.stream(parsed), {**SSE_HEADERS, **asked})
        work = self.messages.complete(parsed)
        outcome = await self.calls.call(caller, MESSAGE, lambda: decode_json(raw), work)
        return reply(outcome, caller, envelope=anthropic_error, headers=asked)


def anthropic_error(error: APIError) -> Response:
    """`error` in Anthropic's envelope, `{"type": "error", "error": {"type", "message"}}`."""
    body = anthropic_body(error)
    return JSONBytesResponse(body, status_code=error.status, headers=error.headers or None)
