"""The provider port.

A provider turns a canonical `CompletionRequest` (services/canonical.py) into one call on
its upstream and the answer back into a canonical `Completion` (or a stream of
`StreamEvent`s). Adding a provider is adding one file that implements `Provider`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator

from services.canonical import (
    DEFAULT_CONTEXT_WINDOW,
    Completion,
    CompletionRequest,
    EmbeddingBatch,
    StreamEvent,
)


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
