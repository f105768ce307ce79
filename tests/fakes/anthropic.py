"""A fake Anthropic Messages API: `POST /v1/messages`, whole or as the Messages SSE stream
(`message_start`, `ping`, `content_block_start` / `_delta` / `_stop`, `message_delta`,
`message_stop`), with Anthropic's native error bodies.

Like the real API, `message_delta` carries cumulative usage (input included), so an adapter
that adds it to `message_start`'s counts instead of taking the difference double-counts.
"""

from __future__ import annotations

import json
from typing import Any

from services.canonical import ImagePart, Message, TextPart, ToolCall, ToolDefinition
from tests.fakes.http import Request, Writer
from tests.fakes.registry import FakeBinding
from tests.fakes.script import Script
from tests.fakes.upstream import FakeUpstream

API_KEY = "sk-ant-fake"
MODEL = "claude-fake-1"
_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


class FakeAnthropic(FakeUpstream):
    def accepts(self, request: Request) -> bool:
        return request.method == "POST" and request.path == "/v1/messages"

    def is_stream(self, request: Request) -> bool:
        return bool(request.json().get("stream"))

    async def complete(self, request: Request, script: Script, writer: Writer) -> None:
        if not _authorized(request):
            await self._refuse(writer)
            return
        content: list[dict[str, Any]] = []
        if script.full_text:
            content.append({"type": "text", "text": script.full_text})
        for call in script.tool_calls:
            content.append(
                {
                    "type": "tool_use",
                    "id": call.id,
                    "name": call.name,
                    "input": json.loads(call.arguments),
                }
            )
        body = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": request.json()["model"],
            "content": content,
            "stop_reason": _native_stop(script),
            "stop_sequence": None,
            "usage": _usage(script),
        }
        await writer.respond(200, json.dumps(body).encode(), {"content-type": "application/json"})

    async def stream(self, request: Request, script: Script, writer: Writer) -> None:
        if not _authorized(request):
            await self._refuse(writer)
            return
        usage = _usage(script)
        start_usage = {**usage, "output_tokens": min(1, script.usage.output_tokens)}
        frames = [
            _event(
                "message_start",
                {
                    "message": {
                        "id": "msg_fake",
                        "type": "message",
                        "role": "assistant",
                        "model": request.json()["model"],
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": start_usage,
                    }
                },
            ),
            _event("ping", {}),
        ]
        index = 0
        if script.text:
            frames.append(
                _event(
                    "content_block_start",
                    {"index": 0, "content_block": {"type": "text", "text": ""}},
                )
            )
            for piece in script.text:
                frames.append(
                    _event(
                        "content_block_delta",
                        {"index": 0, "delta": {"type": "text_delta", "text": piece}},
                    )
                )
            frames.append(_event("content_block_stop", {"index": 0}))
            index = 1
        for call in script.tool_calls:
            block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
            frames.append(_event("content_block_start", {"index": index, "content_block": block}))
            for fragment in call.fragments:
                delta = {"type": "input_json_delta", "partial_json": fragment}
                frames.append(_event("content_block_delta", {"index": index, "delta": delta}))
            frames.append(_event("content_block_stop", {"index": index}))
            index += 1
        frames.append(
            _event(
                "message_delta",
                {
                    "delta": {"stop_reason": _native_stop(script), "stop_sequence": None},
                    "usage": usage,
                },
            )
        )
        frames.append(_event("message_stop", {}))
        await writer.start(200, {"content-type": "text/event-stream"})
        await self.chunks(
            writer, script, frames, malformed=b"event: content_block_delta\ndata: {not json\n\n"
        )

    async def _refuse(self, writer: Writer) -> None:
        await writer.respond(
            401,
            self.error_body(401, "invalid x-api-key or bearer token"),
            {"content-type": "application/json"},
        )

    def error_body(self, status: int, message: str) -> bytes:
        kind = _ERROR_TYPES.get(status, "api_error")
        return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()

    def canonical_request(self, request: Request) -> dict[str, Any]:
        body = request.json()
        messages: list[Message] = []
        system = body.get("system")
        if isinstance(system, str):
            messages.append(Message("system", [TextPart(system)]))
        elif system:
            messages.append(Message("system", [TextPart(b["text"]) for b in system]))
        for native in body["messages"]:
            blocks = native["content"]
            if isinstance(blocks, str):
                blocks = [{"type": "text", "text": blocks}]
            if native["role"] == "assistant":
                messages.append(
                    Message(
                        "assistant",
                        [TextPart(b["text"]) for b in blocks if b["type"] == "text"],
                        tool_calls=[
                            ToolCall(b["id"], b["name"], json.dumps(b["input"]))
                            for b in blocks
                            if b["type"] == "tool_use"
                        ],
                    )
                )
                continue
            for block in blocks:
                if block["type"] == "tool_result":
                    content = block.get("content", [])
                    if isinstance(content, str):
                        content = [{"type": "text", "text": content}]
                    messages.append(
                        Message("tool", _parts(content), tool_call_id=block["tool_use_id"])
                    )
            rest = [b for b in blocks if b["type"] != "tool_result"]
            if rest:
                messages.append(Message("user", _parts(rest)))
        return {
            "model": body["model"],
            "messages": messages,
            "tools": [
                ToolDefinition(t["name"], t.get("description"), t["input_schema"])
                for t in body.get("tools", [])
            ],
            "max_tokens": body.get("max_tokens"),
            "stop": body.get("stop_sequences", []),
            "tool_choice": body.get("tool_choice"),
        }


def _parts(blocks: list[dict[str, Any]]) -> list[TextPart | ImagePart]:
    parts: list[TextPart | ImagePart] = []
    for block in blocks:
        if block["type"] == "text":
            parts.append(TextPart(block["text"]))
        elif block["type"] == "image":
            source = block["source"]
            if source["type"] == "base64":
                parts.append(ImagePart(f"data:{source['media_type']};base64,{source['data']}"))
            else:
                parts.append(ImagePart(source["url"]))
    return parts


def _authorized(request: Request) -> bool:
    """The API takes the key as `x-api-key` or (as SDK 2.x sends it) a bearer token."""
    bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
    return API_KEY in (request.headers.get("x-api-key"), bearer)


def _native_stop(script: Script) -> str:
    return script.native_stop or _STOP[script.stop]


def _usage(script: Script) -> dict[str, int]:
    u = script.usage
    return {
        "input_tokens": u.input_tokens - u.cached_input_tokens,
        "cache_read_input_tokens": u.cached_input_tokens,
        "cache_creation_input_tokens": 0,
        "output_tokens": u.output_tokens,
    }


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()


BINDING = FakeBinding(
    fake=FakeAnthropic,
    env=lambda url: {
        "ANTHROPIC_API_KEY": API_KEY,
        "SWITCHBOARD_ANTHROPIC_BASE_URL": url,
        "SWITCHBOARD_ANTHROPIC_MODELS": MODEL,
    },
    model=MODEL,
)
