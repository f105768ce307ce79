"""The provider port and the canonical message types every provider translates to and from.

A provider turns a canonical `CompletionRequest` into one call on its upstream and the
answer back into a canonical `Completion` (or a stream of `StreamEvent`s). Everything the
front doors and the worker know about models goes through these types, so adding a
provider is adding one file that implements `Provider`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
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


class Provider(ABC):
    """The port every model provider implements.

    Contract:
    - `complete` returns one whole `Completion` for the request.
    - `stream` yields `TextDelta` and `ToolCallDelta` events in order, then exactly one
      `Finish`, and `UsageReport`s whenever usage is known (possibly several; they add up).
    - Both raise `services.errors.APIError` subclasses for failures the client should see
      (the upstream's 4xx as `InvalidRequest`, unreachable upstream as `UpstreamError`).
    - Neither blocks the event loop.
    """

    name: str

    @abstractmethod
    async def complete(self, request: CompletionRequest) -> Completion: ...

    @abstractmethod
    def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]: ...

    async def stream_batches(self, request: CompletionRequest) -> AsyncIterator[list[StreamEvent]]:
        """The `stream` events in the groups they became available in (an adapter that
        reads many events from one network read yields them together), so a consumer
        can handle a group in one pass. By default, each event is its own group."""
        async for event in self.stream(request):
            yield [event]

    @abstractmethod
    def models(self) -> list[str]:
        """The provider's model ids that this deployment may offer."""

    def context_window(self, model: str) -> int:
        """How many tokens `model` reads (prompt and reply together)."""
        return DEFAULT_CONTEXT_WINDOW

    def embedding_models(self) -> list[str]:
        """Embedding model ids this deployment offers besides those the catalogue's
        `[embeddings]` table names (for example from `SWITCHBOARD_<P>_EMBEDDING_MODELS`)."""
        return []

    async def embed(
        self, model: str, inputs: list[str], *, dimensions: int | None = None
    ) -> EmbeddingBatch:
        """One vector per input from the embedding model `model`; `dimensions` asks for
        shorter vectors where the model can give them. Providers without embeddings keep
        this default, a 400."""
        from services.errors import InvalidRequest

        raise InvalidRequest(
            f"The model '{self.name}/{model}' does not offer embeddings.",
            param="model",
            code="model_not_embedding",
        )

    async def aclose(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Release pooled connections."""
