"""`docs_chat`: a conversation about the tenant's documents, answered with citations.

Each run is one turn: the person's message goes into a stored conversation
(`services.conversations.store`; new if no `conversation_id` is given), the model searches the
documents (`search_documents`, `extract_text`) as often as it needs, and answers citing
document ids as `[doc_...]`. The turn (the message and the answer) is stored in the
conversation, so `GET /v1/conversations/{id}` shows it and the next turn reads it.
`citations` lists the ids the answer cites that the run's tools actually returned.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.agents.base import Agent, AgentEnv, Opening, Outcome
from services.canonical import Message, TextPart
from services.conversations.store import History, check_conversation_id
from services.errors import ServiceUnavailable

MAX_HISTORY_MESSAGES = 40
_CITED = re.compile(r"doc_[A-Za-z0-9]+")
INSTRUCTIONS = """\
You answer questions about the user's documents. Search them with search_documents (and
read one with extract_text when a snippet is not enough) before you answer. Base the
answer on what you found, and cite each document you use by its id in square brackets,
like [doc_0123abcd]. If nothing relevant is found, say so."""


class DocsChatInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=20_000, description="What you ask.")
    conversation_id: str | None = Field(
        None, description="Continue this conversation; a new one is started without it."
    )


def _store(env: AgentEnv) -> Any:
    if env.conversations is None:
        raise ServiceUnavailable("Conversations are not configured on this worker.")
    return env.conversations


async def opening(input: Any, env: AgentEnv) -> Opening:
    store = _store(env)
    history: list[Message] = []
    if input.conversation_id is not None:
        cid = check_conversation_id(input.conversation_id, "input.input.conversation_id")
        stored = await asyncio.to_thread(store.history, env.tenant_id, cid)
        version = stored.conversation.version
        history = [
            Message(m.message.role, [TextPart(m.message.text)])
            for m in stored.messages
            if m.message.role in ("user", "assistant") and m.message.text
        ][-MAX_HISTORY_MESSAGES:]
    else:
        title = " ".join(input.message.split())[:60]
        conversation = await asyncio.to_thread(store.create, env.tenant_id, title=title)
        cid, version = conversation.id, conversation.version
    user = Message("user", [TextPart(input.message)])
    context = {"conversation_id": cid, "message": input.message, "version": version}
    return Opening([*history, user], context=context)


async def conclude(outcome: Outcome, env: AgentEnv) -> dict[str, Any]:
    store = _store(env)
    cid = outcome.context["conversation_id"]
    found: set[str] = set()
    for step in outcome.steps:
        for call in step["calls"]:
            found.update(_CITED.findall(json.dumps(call.get("output", {}))))
    cited = list(dict.fromkeys(_CITED.findall(outcome.output)))
    history = await asyncio.to_thread(store.history, env.tenant_id, cid)
    if not _already_stored(history, outcome):
        await asyncio.to_thread(
            store.append_turn,
            history.conversation,
            [Message("user", [TextPart(outcome.context["message"])])],
            Message("assistant", [TextPart(outcome.output)]),
        )
    return {
        "outcome": outcome.status,
        "output": outcome.output,
        "conversation_id": cid,
        "citations": [c for c in cited if c in found],
        "steps": outcome.steps,
    }


def _already_stored(history: History, outcome: Outcome) -> bool:
    """True when this run stored its turn before a worker died (the run is then resumed
    from its last checkpoint and concludes again): the conversation moved on since the
    turn began, and its last two messages are this turn's."""
    if history.conversation.version <= outcome.context.get("version", -1):
        return False
    tail = [m.message for m in history.messages[-2:]]
    return len(tail) == 2 and (tail[0].role, tail[0].text, tail[1].role, tail[1].text) == (
        "user",
        outcome.context["message"],
        "assistant",
        outcome.output,
    )


AGENT = Agent(
    name="docs_chat",
    description=(
        "Chat about your documents in a conversation: searches them and answers citing "
        "document ids. Each run is one turn; pass conversation_id to continue."
    ),
    instructions=INSTRUCTIONS,
    tools=("search_documents", "extract_text"),
    route="smart",
    max_steps=8,
    Input=DocsChatInput,
    max_tokens=2048,
    opening=opening,
    conclude=conclude,
)
