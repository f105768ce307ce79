"""`build_report`: a Markdown report from sections of text and the tenant's documents,
opened by a model-written summary of the whole."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from services.tools._support import (
    StrictInput,
    ask_text,
    document_id_field,
    load_text,
    one_of,
    text_field,
)
from services.tools.base import Tool, ToolContext, ToolFailed, ToolLimits

MAX_SECTIONS = 20
# A section drawn from a document shows at most this much of its text; the summary reads
# every section whole (within the tool's max_input_chars).
SECTION_CHARS = 4000


class Section(StrictInput):
    heading: str = Field(min_length=1, max_length=200, description="The section's heading.")
    text: str | None = text_field(
        "The section's body (Markdown). Give this or document_id.", 50_000
    )
    document_id: str | None = document_id_field(
        "One of your pdf, text or markdown documents: the section quotes its beginning "
        f"(at most {SECTION_CHARS} characters) and cites it."
    )

    @model_validator(mode="after")
    def _one_source(self) -> Section:
        one_of(self, "text", "document_id")
        return self


class BuildReportInput(StrictInput):
    title: str = Field(min_length=1, max_length=200)
    sections: list[Section] = Field(min_length=1, max_length=MAX_SECTIONS)
    summary_words: int = Field(
        150, ge=0, le=600, description="Length of the opening summary; 0 for none."
    )
    audience: str | None = Field(
        None, max_length=200, description="Who will read it, so the summary addresses them."
    )


class BuildReportOutput(BaseModel):
    title: str
    markdown: str = Field(min_length=1, max_length=400_000, description="The whole report.")
    summary: str | None = Field(description="The model's summary (null when summary_words is 0).")
    sources: list[str] = Field(description="The document ids the report cites, in order.")


class BuildReport(Tool):
    name = "build_report"
    description = (
        "Assemble a Markdown report from titled sections, each given as text or as one of "
        "the caller's documents (quoted and cited), opened by a summary of the whole."
    )
    Input = BuildReportInput
    Output = BuildReportOutput
    route = "smart"
    limits = ToolLimits(max_input_chars=200_000, max_output_tokens=1500, timeout_seconds=180.0)

    async def run(self, ctx: ToolContext, input: BuildReportInput) -> BuildReportOutput:
        bodies: list[str] = []
        whole: list[str] = []
        sources: list[str] = []
        limit = self.limits.max_input_chars
        for section in input.sections:
            text = await load_text(ctx, self.name, section.text, section.document_id, limit)
            whole.append(f"## {section.heading}\n\n{text}")
            if section.document_id is None:
                bodies.append(text.strip())
                continue
            sources.append(section.document_id)
            quoted = text.strip()
            if len(quoted) > SECTION_CHARS:
                quoted = quoted[:SECTION_CHARS].rstrip() + " …"
            quote = "\n".join(f"> {line}" if line else ">" for line in quoted.splitlines())
            bodies.append(f"{quote}\n\nSource: `{section.document_id}`")
        total = sum(len(w) for w in whole)
        if total > limit:
            raise ToolFailed(
                f"The report's sections hold {total} characters together; build_report reads "
                f"at most {limit} (its max_input_chars limit)."
            )
        summary: str | None = None
        if input.summary_words:
            audience = f" Address it to {input.audience}." if input.audience else ""
            system = (
                f"Write the executive summary of the report titled {input.title!r}, in at "
                f"most {input.summary_words} words of plain prose, from its sections below. "
                f"State the main findings; add nothing that is not in them.{audience} "
                "Answer with the summary only."
            )
            summary = await ask_text(
                ctx, self.name, system, "\n\n".join(whole),
                max_tokens=self.limits.max_output_tokens,
            )  # fmt: skip
        parts = [f"# {input.title}"]
        if summary is not None:
            parts.append(f"## Summary\n\n{summary}")
        parts += [
            f"## {section.heading}\n\n{body}"
            for section, body in zip(input.sections, bodies, strict=True)
        ]
        return BuildReportOutput(
            title=input.title,
            markdown="\n\n".join(parts) + "\n",
            summary=summary,
            sources=sources,
        )


TOOL = BuildReport()
