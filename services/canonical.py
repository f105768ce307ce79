"""The canonical types: one message, request, answer and stream-event shape that every wire
format (OpenAI's, Anthropic's, Bedrock's Converse) and every provider translates to and
from, both ways. Plain frozen dataclasses: nothing here calls anything.

`message_to_json` / `message_from_json` are the one JSON form of a message (what a stored
conversation and an agent's checkpoint hold); `estimate_tokens` is the one rough count
(about a token a word) used where no tokenizer is at hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "developer", "user", "assistant", "tool"]
StopReason = Literal["stop", "length", "tool_calls", "content_filter"]
DEFAULT_CONTEXT_WINDOW = 8192


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str
    type: Literal["text"] = "text"


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image by URL; a base64 image is a `data:` URL."""

    url: str
    detail: str | None = None
    type: Literal["image"] = "image"


ContentPart = TextPart | ImagePart


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, exactly as the model produced it


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: list[ContentPart] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None

    @property
    def text(self) -> str:
        return "".join(part.text for part in self.content if isinstance(part, TextPart))


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    name: str
    description: str | None
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """What a provider is asked to do. `model` is the provider's own model id."""

    model: str
    messages: list[Message]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    tools: list[ToolDefinition] = field(default_factory=list)
    tool_choice: str | dict[str, Any] | None = None
    user: str | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
        )


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    stop_reason: StopReason
    usage: Usage
    tool_calls: list[ToolCall] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a tool call. `id` and `name` come with the first fragment of `index`."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class Finish:
    stop_reason: StopReason


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Usage seen in a stream. Providers may report it in parts; consumers add them up."""

    usage: Usage


StreamEvent = TextDelta | ToolCallDelta | Finish | UsageReport


@dataclass(frozen=True, slots=True)
class EmbeddingBatch:
    """One vector per input, in the order of the inputs, and the input tokens they cost."""

    vectors: list[list[float]]
    input_tokens: int = 0


def message_to_json(message: Message) -> dict[str, Any]:
    """The canonical message as JSON-ready data (what a message item stores)."""
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
        else:
            parts.append({"type": "image", "url": part.url, "detail": part.detail})
    data: dict[str, Any] = {"role": message.role, "content": parts}
    if message.tool_calls:
        data["tool_calls"] = [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        data["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        data["name"] = message.name
    return data


def message_from_json(data: dict[str, Any]) -> Message:
    parts: list[ContentPart] = []
    for part in data.get("content", []):
        if part["type"] == "text":
            parts.append(TextPart(part["text"]))
        else:
            parts.append(ImagePart(part["url"], part.get("detail")))
    role: Role = data["role"]
    return Message(
        role=role,
        content=parts,
        tool_calls=[
            ToolCall(c["id"], c["name"], c["arguments"]) for c in data.get("tool_calls", [])
        ],
        tool_call_id=data.get("tool_call_id"),
        name=data.get("name"),
    )


# The chat format's framing per message, in the rough count below.
MESSAGE_OVERHEAD_TOKENS = 3


def estimate_tokens(message: Message) -> int:
    """About a token a word, plus the framing: stable, cheap, and what the simulator and
    the context window both count."""
    words = len(message.text.split())
    for call in message.tool_calls:
        words += len(call.name.split()) + len(call.arguments.split())
    return words + MESSAGE_OVERHEAD_TOKENS
