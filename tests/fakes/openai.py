"""A fake OpenAI: `POST /v1/chat/completions` in the real Chat Completions wire format.

Whole answers are `chat.completion` objects; streams are SSE `data: {chunk}` frames (a
role chunk, text deltas, tool-call deltas with index/id/name first and argument fragments
after, a finish chunk, then a usage chunk with `choices: []` when the request set
`stream_options.include_usage`) ending in `data: [DONE]`. Errors carry OpenAI's body,
`{"error": {"message", "type", "param", "code"}}`.

Usage is rendered as OpenAI counts it: `prompt_tokens` includes the cached tokens, which
`prompt_tokens_details.cached_tokens` repeats (the script's `input_tokens` is the whole
prompt, as the adapter reads it back).
"""

from __future__ import annotations

import json
from typing import Any

from services.canonical import ContentPart, ImagePart, Message, TextPart, ToolCall, ToolDefinition
from tests.fakes.http import Request, Writer
from tests.fakes.registry import FakeBinding
from tests.fakes.script import Script
from tests.fakes.upstream import FakeUpstream

MODEL = "gpt-4o-mini"
_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


class FakeOpenAI(FakeUpstream):
    # Which field the reply limit is read from: what the adapter under test must send.
    max_tokens_field = "max_completion_tokens"

    def accepts(self, request: Request) -> bool:
        return request.method == "POST" and request.path in (
            "/v1/chat/completions",
            "/v1/embeddings",
        )

    def is_stream(self, request: Request) -> bool:
        return bool(request.json().get("stream"))

    async def complete(self, request: Request, script: Script, writer: Writer) -> None:
        body = request.json()
        if request.path == "/v1/embeddings":
            await writer.respond(
                200,
                json.dumps(embeddings_answer(body)).encode(),
                {"content-type": "application/json"},
            )
            return
        message: dict[str, Any] = {
            "role": "assistant",
            "content": script.full_text if script.text else None,
            "refusal": None,
        }
        if script.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in script.tool_calls
            ]
        answer = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": native_finish(script),
                }
            ],
            "usage": native_usage(script),
        }
        await writer.respond(200, json.dumps(answer).encode(), {"content-type": "application/json"})

    async def stream(self, request: Request, script: Script, writer: Writer) -> None:
        body = request.json()
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def frame(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
            chunk: dict[str, Any] = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": body["model"],
                "choices": choices,
            }
            if include_usage:
                chunk["usage"] = usage
            return b"data: " + json.dumps(chunk).encode() + b"\n\n"

        def delta(fields: dict[str, Any], finish_reason: str | None = None) -> bytes:
            return frame([{"index": 0, "delta": fields, "finish_reason": finish_reason}])

        frames = [delta({"role": "assistant", "content": "", "refusal": None})]
        frames += [delta({"content": piece}) for piece in script.text]
        for index, call in enumerate(script.tool_calls):
            head = {
                "index": index,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            frames.append(delta({"tool_calls": [head]}))
            frames += [
                delta({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
                for fragment in call.fragments
            ]
        frames.append(delta({}, native_finish(script)))
        if include_usage:
            frames.append(frame([], native_usage(script)))
        frames.append(b"data: [DONE]\n\n")
        await writer.start(200, {"content-type": "text/event-stream"})
        await self.chunks(writer, script, frames, malformed=b"data: {not json\n\n")

    def error_body(self, status: int, message: str) -> bytes:
        type, code = _ERROR_TYPES.get(status, ("server_error", None))
        return json.dumps(
            {"error": {"message": message, "type": type, "param": None, "code": code}}
        ).encode()

    def canonical_request(self, request: Request) -> dict[str, Any]:
        body = request.json()
        stop = body.get("stop") or []
        return {
            "model": body["model"],
            "messages": [_message(m) for m in body["messages"]],
            "tools": [
                ToolDefinition(
                    t["function"]["name"],
                    t["function"].get("description"),
                    t["function"].get("parameters", {}),
                )
                for t in body.get("tools", [])
            ],
            "max_tokens": body.get(self.max_tokens_field),
            "stop": [stop] if isinstance(stop, str) else list(stop),
            "tool_choice": body.get("tool_choice"),
            "temperature": body.get("temperature"),
            "top_p": body.get("top_p"),
            "user": body.get("user"),
        }


def fake_vector(text: str, dimensions: int = 4) -> list[float]:
    """A vector the test can predict: the text's length, then its first characters."""
    values = [float(len(text))] + [float(ord(c)) for c in text[: dimensions - 1]]
    return (values + [0.0] * dimensions)[:dimensions]


def embeddings_answer(body: dict[str, Any]) -> dict[str, Any]:
    """An Embeddings answer (floats), its items deliberately listed last input first: a
    client must place each by its `index`."""
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    assert body.get("encoding_format", "float") == "float", "the adapter asks for floats"
    dimensions = body.get("dimensions") or 4
    data = [
        {"object": "embedding", "index": i, "embedding": fake_vector(text, dimensions)}
        for i, text in enumerate(inputs)
    ]
    tokens = sum(len(text.split()) for text in inputs)
    return {
        "object": "list",
        "data": data[::-1],
        "model": body["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def native_finish(script: Script) -> str:
    # The canonical stop reasons are Chat Completions' own finish reasons.
    return script.native_stop or script.stop


def native_usage(script: Script) -> dict[str, Any]:
    usage = script.usage
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def _message(native: dict[str, Any]) -> Message:
    content = native.get("content")
    parts: list[ContentPart] = []
    if isinstance(content, str):
        parts = [TextPart(content)] if content else []
    elif isinstance(content, list):
        for part in content:
            if part["type"] == "text":
                parts.append(TextPart(part["text"]))
            elif part["type"] == "image_url":
                image = part["image_url"]
                parts.append(ImagePart(image["url"], image.get("detail")))
            else:
                raise AssertionError(f"the fake does not read content parts of type {part['type']}")
    calls = [
        ToolCall(call["id"], call["function"]["name"], call["function"]["arguments"])
        for call in native.get("tool_calls") or []
    ]
    return Message(
        native["role"],
        parts,
        tool_calls=calls,
        tool_call_id=native.get("tool_call_id"),
        name=native.get("name"),
    )


BINDING = FakeBinding(
    fake=FakeOpenAI,
    env=lambda url: {"OPENAI_API_KEY": "sk-fake", "SWITCHBOARD_OPENAI_BASE_URL": f"{url}/v1"},
    model=MODEL,
)
