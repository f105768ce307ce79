"""`analyze_themes`: the main themes of a text or document, each with its evidence."""

from __future__ import annotations

from pydantic import BaseModel, Field

from services.tools._support import TextInput, ask_json, load_text
from services.tools.base import Tool, ToolContext, ToolLimits

MAX_THEMES = 10


class AnalyzeThemesInput(TextInput):
    max_themes: int = Field(5, ge=1, le=MAX_THEMES, description="At most this many themes.")


class Theme(BaseModel):
    name: str = Field(min_length=1, max_length=80, description="A short name for the theme.")
    description: str = Field(
        min_length=1,
        max_length=600,
        description="What the text says about it, in a sentence or two.",
    )
    relevance: float = Field(ge=0, le=1, description="How central it is to the text, 0 to 1.")


class _Answer(BaseModel):
    themes: list[Theme] = Field(min_length=1)


class AnalyzeThemesOutput(BaseModel):
    themes: list[Theme] = Field(
        min_length=1, max_length=MAX_THEMES, description="Most relevant first."
    )
    source_chars: int = Field(ge=1)


class AnalyzeThemes(Tool):
    name = "analyze_themes"
    description = (
        "Find the main themes of a text, or of one of the caller's pdf, text or markdown "
        "documents: a name, a description and a relevance score for each, most relevant first."
    )
    Input = AnalyzeThemesInput
    Output = AnalyzeThemesOutput
    route = "fast"
    limits = ToolLimits(max_input_chars=200_000, max_output_tokens=1500, timeout_seconds=120.0)

    async def run(self, ctx: ToolContext, input: AnalyzeThemesInput) -> AnalyzeThemesOutput:
        text = await load_text(
            ctx, self.name, input.text, input.document_id, self.limits.max_input_chars
        )
        system = (
            f"Identify at most {input.max_themes} main themes of the user's text. For each, "
            "give a short name, a one or two sentence description grounded in the text, and "
            "its relevance from 0 (marginal) to 1 (the text's core subject)."
        )
        answer = await ask_json(
            ctx, self.name, system, text, answer=_Answer, max_tokens=self.limits.max_output_tokens
        )
        # A model may list more than asked: keep the most relevant ones.
        themes = sorted(answer.themes, key=lambda t: t.relevance, reverse=True)
        return AnalyzeThemesOutput(themes=themes[: input.max_themes], source_chars=len(text))


TOOL = AnalyzeThemes()
