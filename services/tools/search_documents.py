"""`search_documents`: the caller's pdf, text and markdown documents that best match a
query, by embedding similarity, each with a snippet of its text. Calls the embeddings
service, not a chat model; `docs_chat` uses it to find what to cite."""

from __future__ import annotations

import asyncio
import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from services.tools._support import StrictInput
from services.tools.base import Tool, ToolContext, ToolFailed, ToolLimits
from services.tools.suggest_related import MAX_CANDIDATES, TEXT_KINDS, rank

MAX_TOP_K = 20
SNIPPET_CHARS = 300
_WORD = re.compile(r"\w{3,}")


class SearchDocumentsInput(StrictInput):
    query: str = Field(min_length=1, max_length=2000, description="What to look for.")
    top_k: int = Field(5, ge=1, le=MAX_TOP_K, description="At most this many results.")


class Found(BaseModel):
    document_id: str
    filename: str
    kind: Literal["pdf", "text", "markdown"]
    folder: str
    score: float = Field(ge=-1.0001, le=1.0001, description="Cosine similarity, 1 = same.")
    snippet: str = Field(max_length=SNIPPET_CHARS + 2, description="The best matching passage.")


class SearchDocumentsOutput(BaseModel):
    results: list[Found] = Field(max_length=MAX_TOP_K, description="Best match first.")
    compared: int = Field(ge=0, description="How many of your documents were compared.")


class SearchDocuments(Tool):
    name = "search_documents"
    description = (
        "Search the caller's pdf, text and markdown documents by meaning; returns the best "
        "matches with their ids and a snippet of each. Cite documents by these ids."
    )
    Input = SearchDocumentsInput
    Output = SearchDocumentsOutput
    uses_model = False
    limits = ToolLimits(max_input_chars=2000, max_output_tokens=0, timeout_seconds=120.0)

    async def run(self, ctx: ToolContext, input: SearchDocumentsInput) -> SearchDocumentsOutput:
        if ctx.documents is None or ctx.embeddings is None:
            raise ToolFailed("Documents are not configured on this worker.")
        query = (await ctx.embeddings.embed(None, [input.query])).vectors[0]
        candidates: list[Any] = []
        for kind in TEXT_KINDS:
            candidates += await ctx.documents.all(ctx.tenant_id, kind=kind)
        candidates = [d for d in candidates if d.status == "ready"]
        if len(candidates) > MAX_CANDIDATES:
            raise ToolFailed(
                f"You have {len(candidates)} text documents; search_documents compares at "
                f"most {MAX_CANDIDATES}."
            )
        best = (await rank(ctx, query, candidates))[: input.top_k]
        texts = await asyncio.gather(*(ctx.documents.text(ctx.tenant_id, d.id) for _, d in best))
        results = [
            Found(
                document_id=d.id,
                filename=d.filename,
                kind=d.kind,
                folder=d.folder,
                score=round(s, 6),
                snippet=snippet(text, input.query),
            )
            for (s, d), text in zip(best, texts, strict=True)
        ]
        return SearchDocumentsOutput(results=results, compared=len(candidates))


def snippet(text: str, query: str) -> str:
    """The `SNIPPET_CHARS` of `text` that hold the most of the query's words (the start of
    the text when none occurs)."""
    flat = " ".join(text.split())
    if len(flat) <= SNIPPET_CHARS:
        return flat
    words = {w.lower() for w in _WORD.findall(query)}
    hits = [m.start() for m in _WORD.finditer(flat) if m.group().lower() in words]
    start, best = 0, 0
    for at in hits:
        count = sum(1 for h in hits if at <= h < at + SNIPPET_CHARS)
        if count > best:
            start, best = at, count
    start = max(0, min(start - SNIPPET_CHARS // 4, len(flat) - SNIPPET_CHARS))
    piece = flat[start : start + SNIPPET_CHARS]
    return ("…" if start else "") + piece + ("…" if start + SNIPPET_CHARS < len(flat) else "")


TOOL = SearchDocuments()
