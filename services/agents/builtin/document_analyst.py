"""`document_analyst`: five declared steps over one document, each result kept on the run.

The steps are declared, not chosen by a model: extract the text, analyze its themes,
generate tags, summarize, suggest related documents. Which tools to run and in what order
is fixed by what users asked for, so letting a model choose would only add ways to skip
or repeat a step; the models do their work inside the tools. The steps still go through
the agent loop: each is streamed as events (`step.started`, `tool.called`,
`tool.result`, `step.completed`) and checkpointed, so a worker that dies resumes at the
first unfinished step.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.agents.base import Agent, AgentEnv, Opening, Outcome, PlannedCall
from services.canonical import Message, TextPart
from services.tools._support import DOCUMENT_ID_PATTERN

STEPS = ("extract_text", "analyze_themes", "generate_tags", "summarize", "suggest_related")


class DocumentAnalystInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document_id: str = Field(
        pattern=DOCUMENT_ID_PATTERN, description="One of your pdf, text or markdown documents."
    )


async def opening(input: Any, env: AgentEnv) -> Opening:
    document_id = input.document_id
    return Opening(
        [Message("user", [TextPart(f"Analyze document {document_id}.")])],
        plan=[[PlannedCall(tool, {"document_id": document_id})] for tool in STEPS],
        context={"document_id": document_id},
    )


async def conclude(outcome: Outcome, env: AgentEnv) -> dict[str, Any]:
    results = {call["name"]: call.get("output") for step in outcome.steps for call in step["calls"]}
    summary = (results.get("summarize") or {}).get("summary", "")
    return {
        "outcome": outcome.status,
        "document_id": outcome.context["document_id"],
        "output": summary,
        "results": results,
        "steps": [
            {"step": step["step"], "tool": call["name"]}
            for step in outcome.steps
            for call in step["calls"]
        ],
    }


AGENT = Agent(
    name="document_analyst",
    description=(
        "Analyzes one document in five steps: extract_text, analyze_themes, generate_tags, "
        "summarize, suggest_related. Each step's result is kept in the run's result."
    ),
    instructions="Analyze the document: its text, themes, tags, a summary, related documents.",
    tools=STEPS,
    route="fast",
    max_steps=len(STEPS),
    Input=DocumentAnalystInput,
    model_after_plan=False,
    opening=opening,
    conclude=conclude,
)
