"""`generate_alt_text`: alternative text for an image, for screen readers."""

from __future__ import annotations

from pydantic import BaseModel, Field

from services.tools._support import MAX_IMAGE_BYTES, ImageInput, ask_text, image_part, load_image
from services.tools.base import Tool, ToolContext, ToolLimits

MAX_ALT_CHARS = 1000


class GenerateAltTextInput(ImageInput):
    max_chars: int = Field(
        250, ge=20, le=MAX_ALT_CHARS, description="The alt text is at most this long."
    )
    context: str | None = Field(
        None,
        max_length=2000,
        description="Where the image appears (the page or article around it), if known.",
    )


class GenerateAltTextOutput(BaseModel):
    alt_text: str = Field(min_length=1, max_length=MAX_ALT_CHARS)
    shortened: bool = Field(
        description="True when the model's answer was longer than max_chars and was cut "
        "at a word boundary."
    )


class GenerateAltText(Tool):
    name = "generate_alt_text"
    description = (
        "Write alt text (a concise description for screen readers) for an image: a URL, a "
        "base64 data URL, or one of the caller's image documents."
    )
    Input = GenerateAltTextInput
    Output = GenerateAltTextOutput
    route = "fast"
    limits = ToolLimits(
        max_image_bytes=MAX_IMAGE_BYTES,
        max_input_chars=2_000,
        max_output_tokens=300,
        timeout_seconds=60.0,
    )

    async def run(self, ctx: ToolContext, input: GenerateAltTextInput) -> GenerateAltTextOutput:
        url = await load_image(ctx, self.name, input.image_url, input.document_id)
        context = f" The image appears in this context: {input.context}" if input.context else ""
        system = (
            f"Write alt text for the image in at most {input.max_chars} characters: what it "
            "shows that matters to someone who cannot see it, without 'image of' or "
            f"'picture of'. Answer with the alt text only.{context}"
        )
        text = await ask_text(
            ctx,
            self.name,
            system,
            image_part(url),
            "Describe this image.",
            max_tokens=self.limits.max_output_tokens,
        )
        alt, shortened = _fit(" ".join(text.split()), input.max_chars)
        return GenerateAltTextOutput(alt_text=alt, shortened=shortened)


def _fit(text: str, limit: int) -> tuple[str, bool]:
    """`text` within `limit` characters, cut at the last whole word when it is longer."""
    if len(text) <= limit:
        return text, False
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:") + "…", True


TOOL = GenerateAltText()
