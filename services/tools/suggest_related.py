"""`suggest_related`: the tenant's documents most similar to one document or a text, by
embedding similarity (cosine). Calls the embeddings service, not a chat model.

A document's vector is made once and kept (`services.documents.embeddings`): of its file name and
the start of its text, or, for an image, of its file name and folder only."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from services.tools._support import (
    StrictInput,
    document_id_field,
    one_of,
    ready_document,
    text_field,
)
from services.tools.base import Tool, ToolContext, ToolFailed, ToolLimits

MAX_TOP_K = 50
# Documents compared per call; vectors are cached per document, so this bounds the reads.
MAX_CANDIDATES = 1000
TEXT_KINDS = ("pdf", "text", "markdown")
Kind = Literal["pdf", "text", "markdown", "image"]
_CONCURRENCY = 16


class SuggestRelatedInput(StrictInput):
    document_id: str | None = document_id_field(
        "Find documents related to this one of your documents (it is never among the "
        "results). Give this or text."
    )
    text: str | None = text_field("Find documents related to this text, instead.", 20_000)
    top_k: int = Field(5, ge=1, le=MAX_TOP_K, description="At most this many results.")
    min_score: float = Field(
        0.0, ge=-1, le=1, description="Leave out documents less similar than this (cosine)."
    )
    kinds: list[Kind] | None = Field(
        None,
        min_length=1,
        description="Rank only documents of these kinds (default: all; an image is "
        "compared by its file name and folder).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> SuggestRelatedInput:
        one_of(self, "document_id", "text")
        return self


class Related(BaseModel):
    document_id: str
    filename: str
    kind: Kind
    folder: str
    score: float = Field(ge=-1.0001, le=1.0001, description="Cosine similarity, 1 = same.")


class SuggestRelatedOutput(BaseModel):
    related: list[Related] = Field(max_length=MAX_TOP_K, description="Most similar first.")
    compared: int = Field(ge=0, description="How many of your documents were compared.")


class SuggestRelated(Tool):
    name = "suggest_related"
    description = (
        "Rank the caller's other documents by similarity of meaning (embeddings) to one "
        "of their documents or to a text, most similar first."
    )
    Input = SuggestRelatedInput
    Output = SuggestRelatedOutput
    uses_model = False
    limits = ToolLimits(max_input_chars=20_000, max_output_tokens=0, timeout_seconds=120.0)

    async def run(self, ctx: ToolContext, input: SuggestRelatedInput) -> SuggestRelatedOutput:
        if input.document_id is not None:
            await ready_document(ctx, input.document_id)
            query = await ctx.embeddings.document_vector(ctx.tenant_id, input.document_id)
        else:
            assert input.text is not None
            result = await ctx.embeddings.embed(None, [input.text])
            query = result.vectors[0]
        kinds = set(input.kinds or ("pdf", "text", "markdown", "image"))
        candidates = [
            d
            for d in await ctx.documents.all(ctx.tenant_id)
            if d.id != input.document_id and d.status == "ready" and d.kind in kinds
        ]
        if len(candidates) > MAX_CANDIDATES:
            raise ToolFailed(
                f"You have {len(candidates)} such documents; suggest_related compares at most "
                f"{MAX_CANDIDATES} (narrow them with 'kinds')."
            )
        ranked = await rank(ctx, query, candidates)
        related = [
            Related(
                document_id=d.id,
                filename=d.filename,
                kind=d.kind,
                folder=d.folder,
                score=round(s, 6),
            )
            for s, d in ranked
            if s >= input.min_score
        ]
        return SuggestRelatedOutput(related=related[: input.top_k], compared=len(candidates))


async def rank(ctx: ToolContext, query: Sequence[float], documents: list[Any]) -> list[Any]:
    """`(score, document)` pairs, most similar to `query` first; each document's vector is
    its cached one (`Embeddings.document_vector`), at most `_CONCURRENCY` made at a time."""
    gate = asyncio.Semaphore(_CONCURRENCY)

    async def score(document: Any) -> float:
        async with gate:
            vector = await ctx.embeddings.document_vector(ctx.tenant_id, document.id)
        return cosine(query, vector)

    scores = await asyncio.gather(*(score(d) for d in documents))
    return sorted(zip(scores, documents, strict=True), key=lambda pair: -pair[0])


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity; vectors of different lengths come from different models."""
    if len(a) != len(b):
        raise ToolFailed(
            f"Embeddings of different sizes ({len(a)} and {len(b)}) cannot be compared: "
            "were they made by different models?"
        )
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    if norm == 0:
        return 0.0
    return sum(x * y for x, y in zip(a, b, strict=True)) / norm


TOOL = SuggestRelated()
