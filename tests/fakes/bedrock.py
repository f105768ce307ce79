"""A fake Amazon Bedrock Runtime speaking the wire protocol boto3 parses: `Converse` as JSON
and `ConverseStream` as the AWS binary event stream (`application/vnd.amazon.eventstream`).

Each event-stream message is: total length (4 bytes), headers length (4), CRC32 of those 8
bytes (4), the headers, the JSON payload, and a CRC32 of everything before it (4); all
integers big-endian. A header is a 1-byte name length, the name, a type byte (7 = string),
a 2-byte value length and the value. Errors are AWS JSON errors: the type in the
`x-amzn-ErrorType` header, `{"message": ...}` in the body. Any SigV4 signature is accepted.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from typing import Any
from urllib.parse import unquote

from services.canonical import (
    ImagePart,
    Message,
    StopReason,
    TextPart,
    ToolCall,
    ToolDefinition,
    Usage,
)
from tests.fakes.http import Request, Writer
from tests.fakes.openai import fake_vector
from tests.fakes.registry import FakeBinding
from tests.fakes.script import Script
from tests.fakes.upstream import FakeUpstream

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
NATIVE_STOP: dict[StopReason, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "content_filtered",
}
ERROR_TYPES = {
    400: "ValidationException",
    401: "UnrecognizedClientException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}


def event_message(
    event_type: str, payload: dict[str, Any], *, message_type: str = "event"
) -> bytes:
    """One event-stream message. `message_type="exception"` makes an error event, whose
    type travels in `:exception-type` (as Bedrock sends `throttlingException` mid-stream)."""
    type_header = ":exception-type" if message_type == "exception" else ":event-type"
    headers = b"".join(
        _header(name, value)
        for name, value in (
            (type_header, event_type),
            (":content-type", "application/json"),
            (":message-type", message_type),
        )
    )
    body = json.dumps(payload).encode()
    prelude = struct.pack(">II", 12 + len(headers) + len(body) + 4, len(headers))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    message = prelude + headers + body
    return message + struct.pack(">I", binascii.crc32(message))


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (
        struct.pack(">B", len(raw_name))
        + raw_name
        + b"\x07"
        + struct.pack(">H", len(raw_value))
        + raw_value
    )


def native_usage(usage: Usage) -> dict[str, int]:
    """Bedrock's `inputTokens` counts only the prompt tokens not read from the cache."""
    uncached = usage.input_tokens - usage.cached_input_tokens
    native = {
        "inputTokens": uncached,
        "outputTokens": usage.output_tokens,
        "totalTokens": usage.input_tokens + usage.output_tokens,
    }
    if usage.cached_input_tokens:
        native["cacheReadInputTokens"] = usage.cached_input_tokens
    return native


def native_stop(script: Script) -> str:
    return script.native_stop or NATIVE_STOP[script.stop]


class BedrockFake(FakeUpstream):
    def accepts(self, request: Request) -> bool:
        parts = request.path.split("/")
        return (
            request.method == "POST"
            and len(parts) == 4
            and parts[1] == "model"
            and parts[3] in ("converse", "converse-stream", "invoke")
        )

    def is_stream(self, request: Request) -> bool:
        return request.path.endswith("/converse-stream")

    async def _handle(self, request: Request, writer: Writer) -> None:
        # Bedrock names an error's type in a header, which the shared status fault cannot
        # send: answer that fault here, everything else as the base does.
        script = self.scripts[0] if self.scripts else None
        fault = script.fault if script is not None else None
        if fault is None or fault.kind != "status" or not self.accepts(request):
            await super()._handle(request, writer)
            return
        self.scripts.popleft()
        self.requests.append(request)
        headers = {
            "content-type": "application/json",
            "x-amzn-errortype": ERROR_TYPES.get(fault.status, "InternalServerException"),
            "x-amzn-requestid": "fake-request",
        }
        if fault.retry_after is not None:
            headers["retry-after"] = f"{fault.retry_after:g}"
        await writer.respond(fault.status, self.error_body(fault.status, fault.message), headers)

    async def complete(self, request: Request, script: Script, writer: Writer) -> None:
        if request.path.endswith("/invoke"):
            await self.invoke(request, writer)
            return
        content: list[dict[str, Any]] = []
        if script.full_text:
            content.append({"text": script.full_text})
        for call in script.tool_calls:
            content.append(
                {
                    "toolUse": {
                        "toolUseId": call.id,
                        "name": call.name,
                        "input": json.loads(call.arguments),
                    }
                }
            )
        body = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": native_stop(script),
            "usage": native_usage(script.usage),
            "metrics": {"latencyMs": 1},
        }
        await writer.respond(200, json.dumps(body).encode(), {"content-type": "application/json"})

    async def stream(self, request: Request, script: Script, writer: Writer) -> None:
        await writer.start(200, {"content-type": "application/vnd.amazon.eventstream"})
        await self.chunks(writer, script, self.frames(script), malformed=self.malformed_frame())

    async def invoke(self, request: Request, writer: Writer) -> None:
        """InvokeModel on an embedding model: Titan (one `inputText`) or Cohere (`texts`)."""
        model = unquote(request.path.split("/")[2])
        body = request.json()
        if model.startswith("cohere.embed"):
            answer: dict[str, Any] = {
                "embeddings": [fake_vector(text) for text in body["texts"]],
                "texts": body["texts"],
            }
        else:
            text = body["inputText"]
            answer = {
                "embedding": fake_vector(text, body.get("dimensions") or 4),
                "inputTextTokenCount": len(text.split()),
            }
        await writer.respond(200, json.dumps(answer).encode(), {"content-type": "application/json"})

    def frames(self, script: Script) -> list[bytes]:
        frames = [event_message("messageStart", {"role": "assistant"})]
        block = 0
        if script.text:
            for piece in script.text:
                frames.append(
                    event_message(
                        "contentBlockDelta", {"contentBlockIndex": block, "delta": {"text": piece}}
                    )
                )
            frames.append(event_message("contentBlockStop", {"contentBlockIndex": block}))
            block += 1
        for call in script.tool_calls:
            start = {"toolUse": {"toolUseId": call.id, "name": call.name}}
            frames.append(
                event_message("contentBlockStart", {"contentBlockIndex": block, "start": start})
            )
            for fragment in call.fragments:
                delta = {"toolUse": {"input": fragment}}
                frames.append(
                    event_message("contentBlockDelta", {"contentBlockIndex": block, "delta": delta})
                )
            frames.append(event_message("contentBlockStop", {"contentBlockIndex": block}))
            block += 1
        frames.append(event_message("messageStop", {"stopReason": native_stop(script)}))
        frames.append(
            event_message(
                "metadata", {"usage": native_usage(script.usage), "metrics": {"latencyMs": 1}}
            )
        )
        return frames

    def malformed_frame(self) -> bytes:
        """A well-formed message whose trailing CRC is wrong: botocore rejects it."""
        good = event_message("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x"}})
        crc = struct.unpack(">I", good[-4:])[0]
        return good[:-4] + struct.pack(">I", crc ^ 0xFFFFFFFF)

    def error_body(self, status: int, message: str) -> bytes:
        return json.dumps({"message": message}).encode()

    def canonical_request(self, request: Request) -> dict[str, Any]:
        body = request.json()
        messages: list[Message] = [
            Message("system", [TextPart(block["text"])]) for block in body.get("system", [])
        ]
        for native in body["messages"]:
            messages.extend(_canonical_messages(native))
        tool_config = body.get("toolConfig") or {}
        tools = [
            ToolDefinition(
                spec["toolSpec"]["name"],
                spec["toolSpec"].get("description"),
                spec["toolSpec"]["inputSchema"]["json"],
            )
            for spec in tool_config.get("tools", [])
        ]
        inference = body.get("inferenceConfig") or {}
        return {
            "model": unquote(request.path.split("/")[2]),
            "messages": messages,
            "tools": tools,
            "max_tokens": inference.get("maxTokens"),
            "stop": inference.get("stopSequences", []),
            "temperature": inference.get("temperature"),
            "top_p": inference.get("topP"),
            "tool_choice": _canonical_tool_choice(tool_config.get("toolChoice")),
        }


def _canonical_messages(native: dict[str, Any]) -> list[Message]:
    """A Converse message as canonical messages: each `toolResult` block is a tool message."""
    out: list[Message] = []
    parts: list[TextPart | ImagePart] = []
    calls: list[ToolCall] = []
    for block in native["content"]:
        if "text" in block:
            parts.append(TextPart(block["text"]))
        elif "image" in block:
            parts.append(_image(block["image"]))
        elif "toolUse" in block:
            use = block["toolUse"]
            calls.append(ToolCall(use["toolUseId"], use["name"], json.dumps(use["input"])))
        elif "toolResult" in block:
            result = block["toolResult"]
            content: list[TextPart | ImagePart] = [
                TextPart(item["text"]) if "text" in item else _image(item["image"])
                for item in result["content"]
            ]
            out.append(Message("tool", content, tool_call_id=result["toolUseId"]))
        else:
            raise AssertionError(f"unexpected content block {sorted(block)}")
    if parts or calls:
        out.append(Message(native["role"], parts, tool_calls=calls))
    return out


def _image(image: dict[str, Any]) -> ImagePart:
    data = image["source"]["bytes"]  # base64 in JSON, as botocore serialises a blob
    base64.b64decode(data, validate=True)
    return ImagePart(f"data:image/{image['format']};base64,{data}")


def _canonical_tool_choice(choice: dict[str, Any] | None) -> str | dict[str, Any] | None:
    if not choice:
        return None
    if "auto" in choice:
        return "auto"
    if "any" in choice:
        return "required"
    return {"type": "function", "function": {"name": choice["tool"]["name"]}}


BINDING = FakeBinding(
    fake=BedrockFake,
    env=lambda url: {
        "SWITCHBOARD_BEDROCK_MODELS": f"{MODEL},amazon.nova-lite-v1:0",
        "SWITCHBOARD_BEDROCK_ENDPOINT_URL": url,
        "SWITCHBOARD_BEDROCK_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    },
    model=MODEL,
)
