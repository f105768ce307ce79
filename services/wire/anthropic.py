"""The Anthropic Messages wire format beside the canonical types: the mappings both
directions share.

The `anthropic` provider (canonical out to Anthropic) and the `/v1/messages` endpoint
(Anthropic in, canonical inside) both translate through these tables and helpers, so each
mapping is decided once. Plain dicts only: no SDK and no pydantic, so either side may
import it.
"""

from __future__ import annotations

import json
from typing import Any

from services.canonical import CompletionRequest, ContentPart, StopReason, TextPart, Usage
from services.errors import untranslatable

# Anthropic requires max_tokens; a request that sets none gets this many. Every current
# Claude model can write at least this much, and it is a cap, not a target.
DEFAULT_MAX_TOKENS = 8192

STOP_REASONS: dict[str, StopReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    # Anthropic paused a long turn (server-side tool work) and the answer so far is
    # incomplete: the caller may ask for more, as after a length cut.
    "pause_turn": "length",
}
NATIVE_STOP_REASONS: dict[StopReason, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}

# tool_choice: the canonical (OpenAI) string forms and Anthropic's types.
_TOOL_CHOICE_TYPES = {"auto": "auto", "required": "any", "none": "none"}
_CANONICAL_TOOL_CHOICES = {native: form for form, native in _TOOL_CHOICE_TYPES.items()}
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def stop_reason(native: str | None) -> StopReason:
    """The canonical stop reason. One Switchboard does not know yet ends the turn: "stop"."""
    return STOP_REASONS.get(native or "", "stop")


def usage(
    input_tokens: int | None,
    output_tokens: int | None,
    cache_read_input_tokens: int | None = None,
    cache_creation_input_tokens: int | None = None,
) -> Usage:
    """Canonical usage from Anthropic's counts. Anthropic's `input_tokens` excludes the
    cache; the canonical `input_tokens` is every prompt token, cached ones included, and
    `cached_input_tokens` is the part read from the cache."""
    read = cache_read_input_tokens or 0
    return Usage(
        input_tokens=(input_tokens or 0) + read + (cache_creation_input_tokens or 0),
        output_tokens=output_tokens or 0,
        cached_input_tokens=read,
    )


def native_usage(canonical: Usage) -> dict[str, int]:
    """Anthropic's usage object for canonical usage (cache writes are not told apart)."""
    return {
        "input_tokens": canonical.input_tokens - canonical.cached_input_tokens,
        "output_tokens": canonical.output_tokens,
        "cache_read_input_tokens": canonical.cached_input_tokens,
        "cache_creation_input_tokens": 0,
    }


def native_tool_choice(choice: str | dict[str, Any]) -> dict[str, Any]:
    """Anthropic's tool_choice for an OpenAI-form one."""
    if isinstance(choice, str) and choice in _TOOL_CHOICE_TYPES:
        return {"type": _TOOL_CHOICE_TYPES[choice]}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if isinstance(name, str) and name:
            return {"type": "tool", "name": name}
    raise untranslatable(
        "tool_choice",
        f"tool_choice {json.dumps(choice)} cannot be expressed for Anthropic; use 'auto', "
        '\'required\', \'none\' or {"type": "function", "function": {"name": ...}}.',
    )


def canonical_tool_choice(choice: dict[str, Any]) -> str | dict[str, Any]:
    """The OpenAI-form tool_choice for Anthropic's `{"type": "auto" | "any" | "none" | "tool"}`."""
    kind = choice.get("type")
    if kind == "tool":
        return {"type": "function", "function": {"name": choice["name"]}}
    return _CANONICAL_TOOL_CHOICES[str(kind)]


def image_source(url: str, param: str) -> dict[str, Any]:
    """Anthropic's image source for a canonical image URL (a `data:` URL is base64)."""
    if url.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    if url.startswith("data:"):
        head, _, data = url[5:].partition(",")
        media_type, _, encoding = head.partition(";")
        if encoding != "base64" or not data:
            raise untranslatable(param, "An image data URL must be base64: data:<type>;base64,...")
        if media_type not in IMAGE_MEDIA_TYPES:
            raise untranslatable(
                param,
                f"Anthropic accepts images of type {', '.join(IMAGE_MEDIA_TYPES)}, "
                f"not {media_type or 'an unnamed type'}.",
            )
        return {"type": "base64", "media_type": media_type, "data": data}
    raise untranslatable(param, "An image must be an http(s) URL or a base64 data: URL.")


def image_url(source: dict[str, Any]) -> str:
    """The canonical image URL for Anthropic's image source."""
    if source.get("type") == "base64":
        return f"data:{source['media_type']};base64,{source['data']}"
    return str(source["url"])


def request_body(request: CompletionRequest, default_max_tokens: int) -> dict[str, Any]:
    """The Messages API body (without `stream`) for a canonical request."""
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for i, message in enumerate(request.messages):
        where = f"messages[{i}]"
        if message.role in ("system", "developer"):
            # Anthropic has one system prompt; system messages anywhere join it, in order.
            system.extend(_blocks(message.content, where, images=False))
            continue
        if message.name is not None:
            raise untranslatable(f"{where}.name", "Anthropic has no name on a message.")
        if message.role == "tool":
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id or "",
            }
            content = _blocks(message.content, where)
            if content:
                result["content"] = content
            _append(messages, "user", [result])
        elif message.role == "assistant":
            blocks = _blocks(message.content, where)
            for k, call in enumerate(message.tool_calls):
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.id,
                        "name": call.name,
                        "input": _arguments(call.arguments, f"{where}.tool_calls[{k}]"),
                    }
                )
            _append(messages, "assistant", blocks)
        else:
            _append(messages, "user", _blocks(message.content, where))
    body: dict[str, Any] = {
        "model": request.model,
        "messages": messages,
        "max_tokens": request.max_tokens or default_max_tokens,
    }
    if system:
        body["system"] = system
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.temperature is not None:
        if request.temperature > 1:
            raise untranslatable(
                "temperature",
                f"Anthropic accepts a temperature from 0 to 1, not {request.temperature:g}.",
            )
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.user is not None:
        body["metadata"] = {"user_id": request.user}
    if request.tools:
        body["tools"] = [
            {"name": t.name, "input_schema": t.parameters}
            | ({"description": t.description} if t.description else {})
            for t in request.tools
        ]
    if request.tool_choice is not None:
        if request.tools:
            body["tool_choice"] = native_tool_choice(request.tool_choice)
        elif request.tool_choice not in ("auto", "none"):
            raise untranslatable("tool_choice", "tool_choice needs tools to choose from.")
    return body


def _blocks(content: list[ContentPart], where: str, *, images: bool = True) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        if isinstance(part, TextPart):
            if part.text:  # Anthropic refuses empty text blocks; an empty one says nothing
                blocks.append({"type": "text", "text": part.text})
        elif not images:
            raise untranslatable(f"{where}.content[{j}]", "Anthropic's system prompt is text only.")
        else:
            # `detail` is a resolution hint Anthropic has no field for: it sizes images itself.
            blocks.append(
                {"type": "image", "source": image_source(part.url, f"{where}.content[{j}]")}
            )
    return blocks


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Anthropic alternates user and assistant turns: consecutive same-role messages (tool
    results among them) merge into one."""
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _arguments(arguments: str, param: str) -> dict[str, Any]:
    try:
        parsed = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise untranslatable(
            f"{param}.function.arguments",
            "Anthropic needs a tool call's arguments as a JSON object; these are not one.",
        )
    return parsed
