"""`generate_content`: new written content (an article, a product description, a post)
from a brief, optionally grounded in the tenant's documents."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from services.tools._support import DocumentId, StrictInput, ask_text, load_text
from services.tools.base import Tool, ToolContext, ToolFailed, ToolLimits

Kind = Literal["article", "blog_post", "product_description", "social_post", "email", "outline"]
MAX_REFERENCES = 5


class GenerateContentInput(StrictInput):
    prompt: str = Field(
        min_length=1, max_length=8000, description="What to write: the brief, in your words."
    )
    kind: Kind = Field("article", description="What sort of content to write.")
    tone: str | None = Field(
        None, max_length=60, description="The voice, for example 'friendly' or 'formal'."
    )
    max_words: int = Field(300, ge=10, le=2000, description="About how long it may be.")
    document_ids: list[DocumentId] = Field(
        default_factory=list,
        max_length=MAX_REFERENCES,
        description="Your pdf, text or markdown documents to draw facts from.",
    )
    context: str | None = Field(
        None, max_length=50_000, description="Reference text to draw facts from."
    )


class GenerateContentOutput(BaseModel):
    content: str = Field(min_length=1, max_length=40_000, description="Markdown.")
    kind: Kind
    word_count: int = Field(ge=1)


class GenerateContent(Tool):
    name = "generate_content"
    description = (
        "Write new content (article, blog post, product description, social post, email or "
        "outline) in Markdown from a brief, drawing facts only from the given reference "
        "text or the caller's documents when some are given."
    )
    Input = GenerateContentInput
    Output = GenerateContentOutput
    route = "smart"
    limits = ToolLimits(max_input_chars=200_000, max_output_tokens=4000, timeout_seconds=180.0)

    async def run(self, ctx: ToolContext, input: GenerateContentInput) -> GenerateContentOutput:
        references: list[str] = []
        limit = self.limits.max_input_chars
        for document_id in input.document_ids:
            text = await load_text(ctx, self.name, None, document_id, limit)
            references.append(f"<document id={document_id!r}>\n{text}\n</document>")
        if input.context:
            references.append(f"<reference>\n{input.context}\n</reference>")
        total = sum(len(r) for r in references)
        if total > limit:
            raise ToolFailed(
                f"The reference material holds {total} characters; generate_content reads "
                f"at most {limit} (its max_input_chars limit)."
            )
        tone = f" in a {input.tone} tone" if input.tone else ""
        grounding = (
            " Use only facts from the reference material below; do not invent figures, "
            "names or quotes."
            if references
            else ""
        )
        system = (
            f"Write a {input.kind.replace('_', ' ')}{tone}, in Markdown, of at most "
            f"{input.max_words} words, following the user's brief. Answer with the content "
            f"only.{grounding}"
        )
        parts = [input.prompt, *references]
        content = await ask_text(
            ctx, self.name, system, "\n\n".join(parts), max_tokens=self.limits.max_output_tokens
        )
        if len(content) > 40_000:
            raise ToolFailed("The model's content is longer than 40,000 characters.")
        return GenerateContentOutput(
            content=content, kind=input.kind, word_count=len(content.split())
        )


TOOL = GenerateContent()
