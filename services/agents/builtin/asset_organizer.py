"""`asset_organizer`: the multi-turn workflow that sorts a tenant's images into folders.

1. (declared) classify every image document, in parallel, in one step;
2. (declared) ask the person how they want them organized (the run waits for input);
3. (model) propose an organization by calling `move_documents` with every move; the call
   needs approval, so the run waits again, showing the proposed folders;
4. the person approves (the moves are made: S3 objects copied and deleted), asks for
   changes (`approve: false` with feedback: the model proposes again, and waits again),
   or rejects (`approve: false` without feedback: nothing moves, and the run ends with
   outcome `rejected`, status succeeded: the workflow ended as the person chose);
5. (model) report what was done.

Every turn's state is in the run: the person can answer days later, from any client.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.agents.base import ASK_USER, Agent, AgentEnv, Opening, Outcome, PlannedCall
from services.canonical import Message, TextPart

MAX_IMAGES = 100
INSTRUCTIONS = """\
You organize the user's images into folders.
You are given each image's labels (from classify_image, one call per image) and the user's
criteria (their answer to your question). Propose an organization by calling
move_documents ONCE with one move per image: {"document_id", "folder"}; folder names are
short, lowercase, and follow the user's criteria. The user approves the proposal or asks
for changes; after a change request, call move_documents again with a revised proposal.
When the moves are done, answer with a short report of what moved where. Never invent
document ids: use only those given to you."""


class AssetOrganizerInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_images: int = Field(
        50, ge=1, le=MAX_IMAGES, description="Organize at most this many images, newest first."
    )


async def opening(input: Any, env: AgentEnv) -> Opening:
    images = [
        d for d in await env.documents.all(env.tenant_id, kind="image") if d.status == "ready"
    ][: input.max_images]
    names = {d.id: d.filename for d in images}
    listing = "\n".join(f"- {d.id}: {d.filename} (folder: '{d.folder}')" for d in images)
    request = (
        f"Organize my {len(images)} images into folders.\n{listing}"
        if images
        else "Organize my images into folders. (There are no images to organize.)"
    )
    plan: list[list[PlannedCall]] = []
    if images:
        plan.append([PlannedCall("classify_image", {"document_id": d.id}) for d in images])
        plan.append(
            [
                PlannedCall(
                    ASK_USER,
                    {
                        "question": (
                            f"I have looked at your {len(images)} images. How should I "
                            "organize them into folders?"
                        ),
                        "options": ["by subject", "by colour", "by setting"],
                    },
                )
            ]
        )
    return Opening([Message("user", [TextPart(request)])], plan, {"images": names})


def describe(tool: str, arguments: dict[str, Any], context: dict[str, Any]) -> str:
    names: dict[str, str] = context.get("images", {})
    folders: dict[str, list[str]] = defaultdict(list)
    for move in arguments.get("moves", []):
        folders[str(move.get("folder"))].append(names.get(move.get("document_id"), "?"))
    lines = [
        f"  {folder}/: {', '.join(sorted(files))}" for folder, files in sorted(folders.items())
    ]
    count = sum(len(files) for files in folders.values())
    return (
        f"Move {count} image{'s' if count != 1 else ''} into {len(folders)} "
        f"folder{'s' if len(folders) != 1 else ''}:\n" + "\n".join(lines) + "\n"
        "Approve, or answer with feedback to change the proposal, or reject to move nothing."
    )


async def conclude(outcome: Outcome, env: AgentEnv) -> dict[str, Any]:
    moved: list[dict[str, Any]] = []
    proposals = 0
    for step in outcome.steps:
        for call in step["calls"]:
            if call["name"] == "move_documents":
                proposals += 1
                moved += (call.get("output") or {}).get("moved", [])
    output = outcome.output
    if outcome.status == "rejected":
        output = "The proposal was rejected; nothing was moved."
    return {
        "outcome": outcome.status,
        "output": output,
        "moved": moved,
        "proposals": proposals,
        "steps": outcome.steps,
    }


AGENT = Agent(
    name="asset_organizer",
    description=(
        "Organizes your images into folders: classifies them, asks how you want them "
        "organized, proposes folders, waits for your approval or changes, then moves them."
    ),
    instructions=INSTRUCTIONS,
    tools=("classify_image", ASK_USER, "move_documents"),
    route="smart",
    max_steps=12,
    Input=AssetOrganizerInput,
    approval_required=frozenset({"move_documents"}),
    max_tokens=4096,
    opening=opening,
    conclude=conclude,
    describe=describe,
)
