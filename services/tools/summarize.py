"""`summarize`: a summary of a text or of one of the tenant's documents."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from services.tools._support import TextInput, ask_text, load_text
from services.tools.base import Tool, ToolContext, ToolLimits


class SummarizeInput(TextInput):
    max_words: int = Field(150, ge=20, le=1000, description="About how long the summary may be.")
    style: Literal["paragraph", "bullets"] = Field(
        "paragraph", description="One paragraph of prose, or a Markdown bullet list."
    )
    focus: str | None = Field(
        None, max_length=500, description="What the summary should concentrate on, if anything."
    )


class SummarizeOutput(BaseModel):
    summary: str = Field(max_length=20_000, description="The summary.")
    style: Literal["paragraph", "bullets"]
    source_chars: int = Field(ge=1, description="How many characters were summarized.")


class Summarize(Tool):
    name = "summarize"
    description = (
        "Summarize a text, or the text of one of the caller's pdf, text or markdown "
        "documents, as a paragraph or a bullet list."
    )
    Input = SummarizeInput
    Output = SummarizeOutput
    route = "fast"
    limits = ToolLimits(max_input_chars=200_000, max_output_tokens=1500, timeout_seconds=120.0)

    async def run(self, ctx: ToolContext, input: SummarizeInput) -> SummarizeOutput:
        text = await load_text(
            ctx, self.name, input.text, input.document_id, self.limits.max_input_chars
        )
        shape = (
            "a Markdown bullet list, one point per line"
            if input.style == "bullets"
            else "one paragraph of plain prose"
        )
        focus = f" Concentrate on: {input.focus}." if input.focus else ""
        system = (
            f"Summarize the user's text in at most {input.max_words} words, as {shape}. "
            "Keep facts, names and figures exact; add nothing that is not in the text."
            f"{focus} Answer with the summary only."
        )
        summary = await ask_text(
            ctx, self.name, system, text, max_tokens=self.limits.max_output_tokens
        )
        return SummarizeOutput(summary=summary, style=input.style, source_chars=len(text))


TOOL = Summarize()
