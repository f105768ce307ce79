"""Tools only agents may call: they act for a person inside a run (asking them something,
changing their documents), so they are not offered by `POST /v1/tools/{name}`.

`ask_user` is answered by the person, not by code: the loop turns a call to it into an
`awaiting_input` question. `move_documents` moves documents into folders (S3 objects
copied and deleted by `DocumentStore.move`); agents that offer it declare it in
`approval_required`.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field, field_validator

from services.agents.base import ASK_USER
from services.canonical import ToolDefinition
from services.tools.base import Tool, ToolContext, ToolFailed, ToolLimits

MAX_MOVES = 200
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,62}$")


class AskUserInput(BaseModel):
    question: str = Field(min_length=1, max_length=2000)
    options: list[str] = Field(default_factory=list, max_length=10)


ASK_USER_DEFINITION = ToolDefinition(
    ASK_USER,
    "Ask the user a question and wait for their answer (which may take days). Use it when "
    "you cannot go on without their choice; offer options when there are few sensible ones.",
    AskUserInput.model_json_schema(),
)


class Move(BaseModel):
    document_id: str = Field(min_length=1, max_length=100)
    folder: str = Field(min_length=1, max_length=200, description="e.g. 'animals/cats'")

    @field_validator("folder")
    @classmethod
    def _folder(cls, value: str) -> str:
        parts = value.strip("/").split("/")
        if len(parts) > 4 or not all(_SEGMENT.match(p) and p not in (".", "..") for p in parts):
            raise ValueError(
                "a folder is 1 to 4 names separated by '/', each starting with a letter or "
                "digit and made of letters, digits, spaces, '_', '-' and '.'"
            )
        return "/".join(parts)


class MoveInput(BaseModel):
    moves: list[Move] = Field(min_length=1, max_length=MAX_MOVES)


class Moved(BaseModel):
    document_id: str
    filename: str
    from_folder: str
    to_folder: str


class MoveOutput(BaseModel):
    moved: list[Moved]
    count: int


class MoveDocuments(Tool):
    name = "move_documents"
    description = (
        "Move the tenant's documents into folders. Pass the whole proposed organization at "
        "once: one entry per document. The user must approve it before anything moves."
    )
    Input = MoveInput
    Output = MoveOutput
    route = "fast"
    limits = ToolLimits(max_input_chars=50_000, max_output_tokens=0, timeout_seconds=300.0)

    async def run(self, ctx: ToolContext, input: Any) -> BaseModel:
        if ctx.documents is None:
            raise ToolFailed("Documents are not configured on this worker.")
        seen: set[str] = set()
        for move in input.moves:
            if move.document_id in seen:
                raise ToolFailed(f"Document '{move.document_id}' appears twice in the moves.")
            seen.add(move.document_id)
        # Check every document first, so a bad id moves nothing.
        before = {
            m.document_id: await ctx.documents.get(ctx.tenant_id, m.document_id)
            for m in input.moves
        }
        moved: list[Moved] = []
        for move in input.moves:
            document = await ctx.documents.move(ctx.tenant_id, move.document_id, move.folder)
            moved.append(
                Moved(
                    document_id=document.id,
                    filename=document.filename,
                    from_folder=before[move.document_id].folder,
                    to_folder=document.folder,
                )
            )
            ctx.emit("tool.progress", {"moved": document.id, "folder": document.folder})
        return MoveOutput(moved=moved, count=len(moved))


ACTIONS: dict[str, Tool] = {tool.name: tool for tool in (MoveDocuments(),)}
