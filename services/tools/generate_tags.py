"""`generate_tags`: short lowercase tags for a text or document."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from services.tools._support import TextInput, ask_json, load_text
from services.tools.base import Tool, ToolContext, ToolFailed, ToolLimits

MAX_TAGS = 30
MAX_TAG_CHARS = 40


class GenerateTagsInput(TextInput):
    max_tags: int = Field(8, ge=1, le=MAX_TAGS, description="At most this many tags.")
    vocabulary: list[str] = Field(
        default_factory=list,
        max_length=200,
        description="Tags already in use; the model prefers these where they fit.",
    )


class _Answer(BaseModel):
    tags: list[Annotated[str, StringConstraints(min_length=1, max_length=MAX_TAG_CHARS)]] = Field(
        min_length=1
    )


class GenerateTagsOutput(BaseModel):
    tags: list[str] = Field(
        min_length=1,
        max_length=MAX_TAGS,
        description=f"Lowercase, unique, each at most {MAX_TAG_CHARS} characters.",
    )
    source_chars: int = Field(ge=1)


class GenerateTags(Tool):
    name = "generate_tags"
    description = (
        "Suggest short lowercase tags (keywords) for a text, or for one of the caller's "
        "pdf, text or markdown documents, preferring a given vocabulary."
    )
    Input = GenerateTagsInput
    Output = GenerateTagsOutput
    route = "fast"
    limits = ToolLimits(max_input_chars=200_000, max_output_tokens=400, timeout_seconds=60.0)

    async def run(self, ctx: ToolContext, input: GenerateTagsInput) -> GenerateTagsOutput:
        text = await load_text(
            ctx, self.name, input.text, input.document_id, self.limits.max_input_chars
        )
        vocabulary = (
            f" Prefer these existing tags where they fit: {', '.join(input.vocabulary)}."
            if input.vocabulary
            else ""
        )
        system = (
            f"Suggest at most {input.max_tags} tags for the user's text: lowercase keywords "
            f"of one to three words, at most {MAX_TAG_CHARS} characters each, most "
            f"characteristic first.{vocabulary}"
        )
        answer = await ask_json(
            ctx, self.name, system, text, answer=_Answer, max_tokens=self.limits.max_output_tokens
        )
        tags: list[str] = []
        for raw in answer.tags:
            tag = " ".join(raw.lower().split())
            if tag and tag not in tags:
                tags.append(tag)
        if not tags:
            raise ToolFailed(f"The model suggested only blank tags: {answer.tags[:5]}.")
        return GenerateTagsOutput(tags=tags[: input.max_tags], source_chars=len(text))


TOOL = GenerateTags()
