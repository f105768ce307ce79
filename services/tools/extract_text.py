"""`extract_text`: the text extracted from one of the tenant's documents. No model."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from services.tools._support import DOCUMENT_ID_PATTERN, StrictInput, text_document
from services.tools.base import Tool, ToolContext, ToolLimits

MAX_CHARS = 1_000_000


class ExtractTextInput(StrictInput):
    document_id: str = Field(
        pattern=DOCUMENT_ID_PATTERN,
        description="The id of one of your pdf, text or markdown documents.",
    )
    max_chars: int = Field(
        100_000,
        ge=1,
        le=MAX_CHARS,
        description="Return at most this many characters of the text (truncated says so).",
    )


class ExtractTextOutput(BaseModel):
    document_id: str
    filename: str
    kind: Literal["pdf", "text", "markdown"]
    pages: int | None = Field(description="The PDF's page count; null for other kinds.")
    text: str = Field(max_length=MAX_CHARS)
    chars: int = Field(ge=0, description="Characters in the whole extracted text.")
    truncated: bool = Field(description="True when text holds only the first max_chars.")


class ExtractText(Tool):
    name = "extract_text"
    description = (
        "The text of one of the caller's documents: extracted from a PDF at upload, or a "
        "text or markdown file as stored. Calls no model."
    )
    Input = ExtractTextInput
    Output = ExtractTextOutput
    uses_model = False
    limits = ToolLimits(max_input_chars=MAX_CHARS, max_output_tokens=0, timeout_seconds=30.0)

    async def run(self, ctx: ToolContext, input: ExtractTextInput) -> ExtractTextOutput:
        document = await text_document(ctx, self.name, input.document_id)
        text: str = await ctx.documents.text(ctx.tenant_id, input.document_id)
        return ExtractTextOutput(
            document_id=document.id,
            filename=document.filename,
            kind=document.kind,
            pages=document.pages,
            text=text[: input.max_chars],
            chars=len(text),
            truncated=len(text) > input.max_chars,
        )


TOOL = ExtractText()
