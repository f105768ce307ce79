"""Anthropic Messages inbound: `POST /v1/messages`, so the official `anthropic` SDK works
against Switchboard unchanged, whichever provider serves the model.

Requests are validated with pydantic (the worker only: the front doors forward the body
unread). Whatever has no canonical equivalent is a 400 naming the field, never a silent
drop. Errors have Anthropic's envelope, `{"type": "error", "error": {"type", "message"}}`,
with Anthropic's error types (`services.errors.envelope_for`), in a response and as a
stream's `error` event alike.

Streams follow the Messages event sequence: `message_start` (with the input usage known
so far), content blocks, then `message_delta` with the stop reason and the cumulative
usage (input included, as the Messages API sends it today) and `message_stop`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.errors import APIError, InvalidRequest, UpstreamError, anthropic_body
from services.models.catalogue import Catalogue
from services.providers.base import (
    Completion,
    CompletionRequest,
    ContentPart,
    Finish,
    ImagePart,
    Message,
    StopReason,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolDefinition,
    Usage,
    UsageReport,
)
from services.usage.context import Tally, counting
from services.web.sse import event
from services.wire.anthropic import (
    NATIVE_STOP_REASONS,
    canonical_tool_choice,
    image_url,
    native_usage,
)
from services.wire.openai import invalid_request, valid_json


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _CacheControl(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    type: Literal["ephemeral"]


# `cache_control` is accepted everywhere Anthropic allows it and not forwarded: it asks
# Anthropic to cache a prefix, which changes cost, never the answer.
class _Text(_Strict):
    type: Literal["text"]
    text: str
    cache_control: _CacheControl | None = None


class _Base64Source(_Strict):
    type: Literal["base64"]
    media_type: str = Field(min_length=1)  # the provider serving the model says which it reads
    data: str = Field(min_length=1)


class _URLSource(_Strict):
    type: Literal["url"]
    url: str = Field(pattern=r"^https?://")


class _Image(_Strict):
    type: Literal["image"]
    source: Annotated[_Base64Source | _URLSource, Field(discriminator="type")]
    cache_control: _CacheControl | None = None


class _ToolUse(_Strict):
    type: Literal["tool_use"]
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    input: dict[str, Any]
    cache_control: _CacheControl | None = None


_ResultPart = Annotated[_Text | _Image, Field(discriminator="type")]


class _ToolResult(_Strict):
    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1)
    content: str | list[_ResultPart] = ""
    is_error: bool | None = None
    cache_control: _CacheControl | None = None


_Block = Annotated[_Text | _Image | _ToolUse | _ToolResult, Field(discriminator="type")]


class _Message(_Strict):
    role: Literal["user", "assistant"]
    content: str | list[_Block]


class _Tool(_Strict):
    type: Literal["custom"] | None = None  # Anthropic's server tools are not offered
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    input_schema: dict[str, Any]
    cache_control: _CacheControl | None = None


class _ToolChoice(_Strict):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class _Metadata(_Strict):
    user_id: str | None = None


class MessagesRequest(_Strict):
    """A `POST /v1/messages` body."""

    model: str = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    messages: list[_Message] = Field(min_length=1)
    system: str | list[_Text] | None = None
    stop_sequences: list[str] | None = None
    stream: bool = False
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    tools: list[_Tool] | None = None
    tool_choice: _ToolChoice | None = None
    metadata: _Metadata | None = None
    thinking: dict[str, Any] | None = None
    service_tier: Literal["auto", "standard_only"] | None = None  # accepted, not forwarded


def parse_messages_request(body: Any) -> MessagesRequest:
    """Validate a decoded JSON body; raise `InvalidRequest` naming the first bad field."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_body")
    try:
        request = MessagesRequest.model_validate(body)
    except ValidationError as exc:
        raise invalid_request(exc) from None
    return _checked(request)


def parse_messages_json(raw: bytes) -> MessagesRequest | None:
    """The request from its JSON text, or None when it is not valid (then
    `parse_messages_request(decode_json(raw))` raises the error)."""
    request = valid_json(MessagesRequest, raw)
    return None if request is None else _checked(request)


def _checked(request: MessagesRequest) -> MessagesRequest:
    choice = request.tool_choice
    if request.top_k is not None:
        raise _unsupported("top_k", "Switchboard cannot pass 'top_k' to every provider")
    if request.thinking is not None and request.thinking.get("type") != "disabled":
        raise _unsupported("thinking", "Extended thinking is not supported by Switchboard yet")
    if choice is not None and choice.disable_parallel_tool_use:
        raise _unsupported(
            "tool_choice.disable_parallel_tool_use",
            "Switchboard cannot forbid parallel tool use on every provider",
        )
    if choice is not None and choice.type == "tool" and not choice.name:
        raise InvalidRequest(
            "tool_choice of type 'tool' needs the tool's 'name'.",
            param="tool_choice.name",
            code="missing_required_parameter",
        )
    return request


def _unsupported(param: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"{why}; remove '{param}'.", param=param, code="unsupported_parameter")


def to_canonical(request: MessagesRequest, model: str) -> CompletionRequest:
    """The provider-facing request; `model` is the provider's own model id."""
    messages: list[Message] = []
    if isinstance(request.system, str):
        messages.append(Message("system", [TextPart(request.system)]))
    elif request.system:
        messages.append(Message("system", [TextPart(b.text) for b in request.system]))
    for i, m in enumerate(request.messages):
        messages.extend(_messages(m, i))
    choice = request.tool_choice
    return CompletionRequest(
        model=model,
        messages=messages,
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        stop=list(request.stop_sequences or []),
        tools=[ToolDefinition(t.name, t.description, t.input_schema) for t in request.tools or []],
        tool_choice=(
            canonical_tool_choice(choice.model_dump(exclude_none=True)) if choice else None
        ),
        user=request.metadata.user_id if request.metadata else None,
    )


def _messages(m: _Message, i: int) -> list[Message]:
    """One Anthropic message as canonical ones: a user turn's tool results become tool
    messages, in place."""
    if isinstance(m.content, str):
        return [Message(m.role, [TextPart(m.content)])]
    out: list[Message] = []
    parts: list[ContentPart] = []
    calls: list[ToolCall] = []
    for j, block in enumerate(m.content):
        wrong = "assistant" if isinstance(block, _ToolResult) else "user"
        if isinstance(block, _ToolResult | _ToolUse) and m.role == wrong:
            raise InvalidRequest(
                f"A {block.type} block cannot be in a {wrong} message.",
                param=f"messages[{i}].content[{j}]",
                code="invalid_value",
            )
        if isinstance(block, _ToolResult):
            if block.is_error:
                raise _unsupported(
                    f"messages[{i}].content[{j}].is_error",
                    "A tool result cannot be marked as an error on every provider; say so in "
                    "its content",
                )
            if parts:
                out.append(Message(m.role, parts))
                parts = []
            content = block.content
            result: list[ContentPart] = (
                [TextPart(content)] if isinstance(content, str) else _parts(content)
            )
            out.append(Message("tool", result, tool_call_id=block.tool_use_id))
        elif isinstance(block, _ToolUse):
            calls.append(ToolCall(block.id, block.name, json.dumps(block.input)))
        else:
            parts.extend(_parts([block]))
    if parts or calls or not out:
        out.append(Message(m.role, parts, tool_calls=calls))
    return out


def _parts(blocks: list[_Text | _Image]) -> list[ContentPart]:
    return [
        TextPart(b.text) if isinstance(b, _Text) else ImagePart(image_url(b.source.model_dump()))
        for b in blocks
    ]


def new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex


def message_json(completion: Completion, *, id: str, model: str) -> dict[str, Any]:
    """The Messages API response for a completion."""
    content: list[dict[str, Any]] = []
    if completion.text:
        content.append({"type": "text", "text": completion.text})
    for call in completion.tool_calls:
        content.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": _input(call)}
        )
    return {
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": NATIVE_STOP_REASONS[completion.stop_reason],
        "stop_sequence": None,
        "usage": native_usage(completion.usage),
    }


def _input(call: ToolCall) -> dict[str, Any]:
    try:
        parsed = json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise UpstreamError(
            f"The model called the tool '{call.name}' with arguments that are not a JSON "
            "object, which the Messages format cannot carry."
        )
    return parsed


class MessagesService:
    """Messages requests: resolve the model, call its provider, answer in Anthropic's format."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue

    async def complete(self, request: MessagesRequest) -> dict[str, Any]:
        """The message; its `model` is the provider model that answered."""
        route = self.catalogue.resolve(request.model)
        with counting(Tally()) as tally:
            completion = await route.provider.complete(to_canonical(request, route.model))
        return message_json(completion, id=new_message_id(), model=tally.model or route.public_name)

    async def stream(self, request: MessagesRequest) -> AsyncIterator[bytes]:
        """SSE bytes for a streamed message.

        The provider's first event is awaited before this returns, so a failure before
        the first byte is raised here (an HTTP error status), while a failure after it
        ends the stream with an `error` event.
        """
        route = self.catalogue.resolve(request.model)
        events = route.provider.stream(to_canonical(request, route.model)).__aiter__()
        with counting(Tally()) as tally:  # the router opens the stream on the first read
            try:
                first: list[StreamEvent] = [await events.__anext__()]
            except StopAsyncIteration:
                first = []
        return stream_frames(tally.model or route.public_name, first, events)


async def stream_frames(
    model: str, first: list[StreamEvent], events: AsyncIterator[StreamEvent]
) -> AsyncIterator[bytes]:
    """The Messages SSE stream for canonical events; an `APIError` they raise ends it with
    an `error` event carrying the error body."""
    encoder = _Encoder(new_message_id(), model)
    try:
        for item in first:
            for frame in encoder.feed(item):
                yield frame
        async for item in events:
            for frame in encoder.feed(item):
                yield frame
    except APIError as exc:
        yield event(anthropic_body(exc), name="error")
        return
    for frame in encoder.end():
        yield frame


class _Encoder:
    """Canonical stream events to Messages SSE frames, opening and closing content blocks.

    `message_start` waits for the first content (usage reported before it is its input);
    tool call `i` becomes whichever content block was open when its first fragment came.
    """

    def __init__(self, id: str, model: str) -> None:
        self._id = id
        self._model = model
        self._started = False
        self._usage = Usage()
        self._stop: StopReason = "stop"
        self._blocks = 0
        self._open: int | None = None  # the index of the open content block
        self._open_text = False
        self._tool_blocks: dict[int, int] = {}  # canonical tool index -> block index

    def feed(self, item: StreamEvent) -> list[bytes]:
        if isinstance(item, UsageReport):
            self._usage = self._usage + item.usage
            return []
        if isinstance(item, Finish):
            self._stop = item.stop_reason
            return []
        frames = self._start()
        if isinstance(item, TextDelta):
            if not self._open_text:
                frames += self._open_block({"type": "text", "text": ""}, text=True)
            delta = {"type": "text_delta", "text": item.text}
        else:
            if item.id is not None or item.index not in self._tool_blocks:
                block = {
                    "type": "tool_use",
                    "id": item.id or "",
                    "name": item.name or "",
                    "input": {},
                }
                frames += self._open_block(block)
                self._tool_blocks[item.index] = self._blocks - 1
            if not item.arguments:
                return frames
            delta = {"type": "input_json_delta", "partial_json": item.arguments}
            index = self._tool_blocks[item.index]
            return [*frames, _frame("content_block_delta", index=index, delta=delta)]
        return [*frames, _frame("content_block_delta", index=self._open, delta=delta)]

    def end(self) -> list[bytes]:
        frames = self._start() + self._close_block()
        usage = native_usage(self._usage)
        stop = NATIVE_STOP_REASONS[self._stop]
        frames.append(
            _frame("message_delta", delta={"stop_reason": stop, "stop_sequence": None}, usage=usage)
        )
        frames.append(_frame("message_stop"))
        return frames

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": native_usage(self._usage),
        }
        return [_frame("message_start", message=message)]

    def _open_block(self, block: dict[str, Any], *, text: bool = False) -> list[bytes]:
        frames = self._close_block()
        self._open, self._open_text = self._blocks, text
        self._blocks += 1
        return [*frames, _frame("content_block_start", index=self._open, content_block=block)]

    def _close_block(self) -> list[bytes]:
        if self._open is None:
            return []
        index, self._open, self._open_text = self._open, None, False
        return [_frame("content_block_stop", index=index)]


def _frame(name: str, **data: Any) -> bytes:
    return event({"type": name, **data}, name=name)
