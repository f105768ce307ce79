"""Embeddings: vectors for texts from the catalogue's embedding models, and one cached
vector per document for ranking a tenant's documents by similarity (`suggest_related`).

`embed` checks the inputs against named limits, resolves the model (default
`local/embedding`, deterministic and offline) and calls its provider once. There is no
fallback to another model: vectors from different models cannot be compared, so a
fallback would silently produce rankings that mean nothing.

`document_vector` embeds a document's file name and the start of its extracted text (an
image: its file name and folder) and keeps the vector with the document (one item per
document and model), so a document is embedded once, however often it is ranked.
"""

from __future__ import annotations

import base64
import math
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.canonical import Usage
from services.config import env_int
from services.documents.store import DocumentStore
from services.errors import InvalidRequest, ServiceUnavailable
from services.models.catalogue import Catalogue
from services.providers.errors import malformed
from services.telemetry.context import note_model
from services.usage.context import TALLIES

DEFAULT_MODEL = "local/embedding"
DEFAULT_MAX_INPUTS = 2048  # as OpenAI's API
DEFAULT_MAX_INPUT_CHARS = 32_000  # about 8,000 tokens, OpenAI's per-input limit
DEFAULT_DOCUMENT_CHARS = 24_000  # of a document's text that go into its vector


@dataclass(frozen=True, slots=True)
class EmbeddingLimits:
    """`SWITCHBOARD_EMBEDDING_MAX_INPUTS` (inputs per request),
    `SWITCHBOARD_EMBEDDING_MAX_INPUT_CHARS` (characters per input) and
    `SWITCHBOARD_EMBEDDING_DOCUMENT_CHARS` (characters of a document's text embedded)."""

    max_inputs: int = DEFAULT_MAX_INPUTS
    max_input_chars: int = DEFAULT_MAX_INPUT_CHARS
    document_chars: int = DEFAULT_DOCUMENT_CHARS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EmbeddingLimits:
        return cls(
            max_inputs=env_int(
                env, "SWITCHBOARD_EMBEDDING_MAX_INPUTS", DEFAULT_MAX_INPUTS, minimum=1
            ),
            max_input_chars=env_int(
                env, "SWITCHBOARD_EMBEDDING_MAX_INPUT_CHARS", DEFAULT_MAX_INPUT_CHARS, minimum=1
            ),
            document_chars=env_int(
                env, "SWITCHBOARD_EMBEDDING_DOCUMENT_CHARS", DEFAULT_DOCUMENT_CHARS, minimum=1
            ),
        )


@dataclass(frozen=True, slots=True)
class EmbeddingResult:
    model: str  # the public name
    vectors: list[list[float]]
    prompt_tokens: int

    def public(self, encoding_format: str = "float") -> dict[str, Any]:
        """The OpenAI Embeddings answer (`encoding_format` "base64": little-endian
        float32 bytes, base64-encoded, as OpenAI sends them)."""
        return {
            "object": "list",
            "data": [
                {
                    "object": "embedding",
                    "index": index,
                    "embedding": encode(vector, encoding_format),
                }
                for index, vector in enumerate(self.vectors)
            ],
            "model": self.model,
            "usage": {"prompt_tokens": self.prompt_tokens, "total_tokens": self.prompt_tokens},
        }


def encode(vector: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity; 0 when either vector is zero or their lengths differ."""
    if len(a) != len(b):
        return 0.0
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


class Embeddings:
    """The embeddings service the worker builds once (for `POST /v1/embeddings` and the
    tools). `recorder`, when given, is told of each provider call (usage accounting): an
    object with `record(call)`, as `services.usage.calls.CallRecorder`."""

    def __init__(
        self,
        catalogue: Catalogue,
        documents: DocumentStore | None = None,
        limits: EmbeddingLimits | None = None,
        *,
        default_model: str = DEFAULT_MODEL,
        recorder: Any = None,
    ) -> None:
        self.catalogue = catalogue
        self.documents = documents
        self.limits = limits or EmbeddingLimits()
        self.default_model = default_model
        self._recorder = recorder

    def default(self) -> str:
        """The model used when none is named: `default_model` (`local/embedding`) where it
        is offered, else the first real embedding model; 503 when there is none."""
        name = self.catalogue.default_embedding(self.default_model)
        if name is None:
            raise ServiceUnavailable(
                "No embedding model is available in this deployment: the local one is off "
                "with the simulator (SWITCHBOARD_SIMULATOR=off) and no configured provider "
                "offers one. Configure a provider's key (see the README's Providers section).",
                code="no_embedding_model",
                headers={"x-should-retry": "false"},
            )
        return name

    async def embed(
        self, model: str | None, inputs: list[str], *, dimensions: int | None = None
    ) -> EmbeddingResult:
        """One vector per input, in order. 400 for no inputs, too many, an empty or too
        long one, or a model that does not embed; 404 for an unknown model."""
        self.check_inputs(inputs)
        target = self.catalogue.resolve_embedding(model or self.default())
        started = time.time()
        outcome, tokens = "ok", None
        try:
            batch = await target.provider.embed(target.model, inputs, dimensions=dimensions)
            if len(batch.vectors) != len(inputs):
                raise malformed(
                    target.provider.name,
                    f"{len(batch.vectors)} embeddings for {len(inputs)} inputs",
                )
            tokens = batch.input_tokens
            note_model(target.public_name)  # the access line's model
            for tally in TALLIES.get():
                tally.answered(target.public_name)
                tally.add(Usage(input_tokens=tokens))
        except Exception as exc:
            outcome = getattr(exc, "code", None) or "internal_error"
            raise
        finally:
            self._record(target.public_name, started, outcome, tokens)
        return EmbeddingResult(target.public_name, batch.vectors, batch.input_tokens)

    def check_inputs(self, inputs: list[str], param: str = "input") -> None:
        if not inputs:
            raise InvalidRequest(
                f"'{param}' must hold at least one string.", param=param, code="invalid_value"
            )
        if len(inputs) > self.limits.max_inputs:
            raise InvalidRequest(
                f"'{param}' holds {len(inputs)} strings; the limit is {self.limits.max_inputs} "
                f"per request.",
                param=param,
                code="too_many_inputs",
            )
        for index, text in enumerate(inputs):
            where = f"{param}[{index}]" if len(inputs) > 1 else param
            if not text:
                raise InvalidRequest(
                    f"'{where}' is empty; every input must be a non-empty string.",
                    param=where,
                    code="invalid_value",
                )
            if len(text) > self.limits.max_input_chars:
                raise InvalidRequest(
                    f"'{where}' is {len(text)} characters long; the limit is "
                    f"{self.limits.max_input_chars} per input.",
                    param=where,
                    code="input_too_long",
                )

    async def document_vector(
        self, tenant_id: str, document_id: str, *, model: str | None = None
    ) -> list[float]:
        """The vector of one of the tenant's documents (404 for another tenant's), made
        once per document and model and then read from the table."""
        if self.documents is None:
            raise ServiceUnavailable("Documents are not available on this worker.")
        name = model or self.default()
        document = await self.documents.get(tenant_id, document_id)
        cached = await self.documents.cached_vector(tenant_id, document_id, name)
        if cached is not None:
            return cached
        text = document.filename
        if document.folder:
            text += f" ({document.folder})"
        if document.kind != "image":
            body = await self.documents.text(tenant_id, document_id)
            text += "\n\n" + body[: self.limits.document_chars]
        result = await self.embed(name, [text[: self.limits.max_input_chars]])
        vector = result.vectors[0]
        await self.documents.store_vector(tenant_id, document_id, name, vector)
        return vector

    def _record(self, model: str, started: float, outcome: str, tokens: int | None) -> None:
        if self._recorder is None:
            return
        from services.usage.calls import ProviderCall
        from services.usage.context import CALLER

        self._recorder.record(
            ProviderCall(
                caller=CALLER.get(),
                route=model,
                model=model,
                started_at=started,
                latency_ms=(time.time() - started) * 1000,
                first_token_ms=None,
                outcome=outcome,
                usage=Usage(input_tokens=tokens) if tokens is not None else None,
                streamed=False,
            )
        )
