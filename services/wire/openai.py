"""The OpenAI chat completions wire format, in and out of the canonical types.

Requests are validated with pydantic at the edge. A parameter Switchboard recognises but
cannot honour, or one it does not know, is a 400 that names it: nothing is silently dropped.
"""

from __future__ import annotations

import random
import time
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.canonical import (
    Completion,
    CompletionRequest,
    ContentPart,
    ImagePart,
    Message,
    TextPart,
    ToolCall,
    ToolDefinition,
    Usage,
)
from services.errors import InvalidRequest

M = TypeVar("M", bound=BaseModel)

# Parameters the OpenAI API defines that Switchboard does not honour yet. Sending one with
# a non-default value is a 400 naming it, never a silent drop.
_UNSUPPORTED_UNLESS_DEFAULT: dict[str, Any] = {
    "n": 1,
    "logprobs": False,
    "top_logprobs": None,
    "audio": None,
    "modalities": None,
    "prediction": None,
    "web_search_options": None,
    "logit_bias": None,
    "response_format": None,
    "reasoning_effort": None,
    "presence_penalty": None,
    "frequency_penalty": None,
}
# Accepted and not forwarded, because they do not change what the simulator answers:
# store, service_tier, metadata, seed, parallel_tool_calls.


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _TextPartIn(_Strict):
    type: Literal["text"]
    text: str


class _ImageURL(_Strict):
    url: str = Field(min_length=1)
    detail: Literal["auto", "low", "high"] | None = None


class _ImagePartIn(_Strict):
    type: Literal["image_url"]
    image_url: _ImageURL


_PartIn = Annotated[_TextPartIn | _ImagePartIn, Field(discriminator="type")]


class _FunctionCallIn(_Strict):
    name: str
    arguments: str


class _ToolCallIn(_Strict):
    id: str
    type: Literal["function"] = "function"
    function: _FunctionCallIn


class _MessageIn(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[_PartIn] | None = None
    name: str | None = None
    tool_calls: list[_ToolCallIn] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None


class _FunctionDefIn(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class _ToolIn(_Strict):
    type: Literal["function"]
    function: _FunctionDefIn


class _StreamOptions(_Strict):
    include_usage: bool = False
    include_obfuscation: bool | None = None


class ChatCompletionRequest(BaseModel):
    """A `POST /v1/chat/completions` body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1)
    messages: list[_MessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: _StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: str | list[str] | None = None
    user: str | None = None
    tools: list[_ToolIn] | None = None
    tool_choice: str | dict[str, Any] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    response_format: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    # Recognised; see _UNSUPPORTED_UNLESS_DEFAULT.
    n: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    audio: dict[str, Any] | None = None
    modalities: list[str] | None = None
    prediction: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    logit_bias: dict[str, Any] | None = None
    store: bool | None = None
    service_tier: str | None = None
    metadata: dict[str, str] | None = None
    seed: int | None = None
    parallel_tool_calls: bool | None = None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)


def parse_chat_request(body: Any) -> ChatCompletionRequest:
    """Validate a decoded JSON body; raise `InvalidRequest` naming the first bad field."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_body")
    try:
        request = ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        raise invalid_request(exc) from None
    return _checked(request)


def parse_chat_json(raw: bytes) -> ChatCompletionRequest | None:
    """The request from its JSON text, or None when it is not valid: then
    `parse_chat_request(decode_json(raw))` raises the error, the same as ever."""
    request = valid_json(ChatCompletionRequest, raw)
    return None if request is None else _checked(request)


def valid_json(model: type[M], raw: bytes) -> M | None:
    """`model` validated straight from JSON text (pydantic reads it without building
    Python objects first: the hot path's way), or None when that fails, for the caller's
    slower path to raise the error that names the field."""
    try:
        return model.model_validate_json(raw)
    except ValidationError:
        return None


def _checked(request: ChatCompletionRequest) -> ChatCompletionRequest:
    present = request.model_fields_set & _UNSUPPORTED_UNLESS_DEFAULT.keys()
    for name, default in _UNSUPPORTED_UNLESS_DEFAULT.items() if present else ():
        value = getattr(request, name)
        if value is not None and value != default:
            fix = "remove it" if default is None else f"remove it or use {default!r}"
            raise InvalidRequest(
                f"'{name}' is not supported by Switchboard yet; {fix}.",
                param=name,
                code="unsupported_parameter",
            )
    if request.stream_options is not None and not request.stream:
        raise InvalidRequest(
            "'stream_options' is only allowed when 'stream' is true.",
            param="stream_options",
            code="invalid_value",
        )
    return request


def to_canonical(request: ChatCompletionRequest, model: str) -> CompletionRequest:
    """The provider-facing request; `model` is the provider's own model id."""
    stop = request.stop
    return CompletionRequest(
        model=model,
        messages=[_message(m) for m in request.messages],
        max_tokens=request.max_completion_tokens or request.max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        stop=[stop] if isinstance(stop, str) else list(stop or []),
        tools=[
            ToolDefinition(t.function.name, t.function.description, t.function.parameters)
            for t in request.tools or []
        ],
        tool_choice=request.tool_choice,
        user=request.user,
    )


def _message(m: _MessageIn) -> Message:
    parts: list[ContentPart] = []
    if isinstance(m.content, str):
        parts.append(TextPart(m.content))
    elif m.content is not None:
        for part in m.content:
            if isinstance(part, _TextPartIn):
                parts.append(TextPart(part.text))
            else:
                parts.append(ImagePart(part.image_url.url, part.image_url.detail))
    return Message(
        role=m.role,
        content=parts,
        tool_calls=[
            ToolCall(c.id, c.function.name, c.function.arguments) for c in m.tool_calls or []
        ],
        tool_call_id=m.tool_call_id,
        name=m.name,
    )


def invalid_request(exc: ValidationError) -> InvalidRequest:
    """The 400 for a pydantic validation error, naming the first bad field as `param`."""
    errors = exc.errors(include_url=False)
    # A union reports one error per branch; the deepest location is the most specific.
    first = max(errors, key=lambda e: len(e["loc"]))
    param = _param(first["loc"])
    if first["type"] == "extra_forbidden":
        return InvalidRequest(
            f"Unrecognized request argument supplied: {param}",
            param=param,
            code="unknown_parameter",
        )
    if first["type"] == "missing":
        return InvalidRequest(
            f"Missing required parameter: '{param}'.",
            param=param,
            code="missing_required_parameter",
        )
    alternatives = sorted({e["msg"] for e in errors if _param(e["loc"]) == param})
    return InvalidRequest(
        f"Invalid value for '{param}': {'; or '.join(alternatives)}.",
        param=param,
        code="invalid_value",
    )


_TYPE_NAMES = {"str", "int", "float", "bool", "dict", "list", "none"}


def _param(loc: tuple[str | int, ...]) -> str:
    """`messages[0].content` from pydantic's location, without union branch names."""
    out = ""
    skip_tag = False
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        if skip_tag:  # the discriminator value that follows a tagged union's index
            skip_tag = False
            continue
        if "[" in part or part in _TYPE_NAMES:
            skip_tag = "tagged-union" in part
            continue
        out += f".{part}" if out else part
    return out


def new_completion_id() -> str:
    # 128 random bits, as uuid4 has, from the process's generator (seeded from the OS):
    # an id names a completion, it is no secret, and a system call per id cost more.
    return f"chatcmpl-{random.getrandbits(128):032x}"


def usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
    }


def completion_json(
    completion: Completion, *, id: str, model: str, created: int | None = None
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": completion.text, "refusal": None}
    if completion.tool_calls:
        message["content"] = completion.text or None
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in completion.tool_calls
        ]
    return {
        "id": id,
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": completion.stop_reason,
                "logprobs": None,
            }
        ],
        "usage": usage_json(completion.usage),
    }


def chunk_json(
    *, id: str, model: str, created: int, delta: dict[str, Any], finish_reason: str | None = None
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }


def usage_chunk_json(*, id: str, model: str, created: int, usage: Usage) -> dict[str, Any]:
    return {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage_json(usage),
    }
