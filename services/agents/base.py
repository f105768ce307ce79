"""The agent declaration: what an agent is, as data. One loop (`services.agents.loop`)
runs every agent; an agent never hand-codes its own loop.

An `Agent` names its instructions, the tools it may call (registered tools from
`services/tools/`, the agent actions in `services.agents.actions`, and `ask_user` to ask the
person a question), the model route it calls, its step limit, and which tools need a
person's approval before they run. Two optional hooks shape a run's beginning and end:

- `opening(input, env)` builds the first messages and any *declared steps*: tool calls
  the agent makes in order before the model takes over (or instead of it, when
  `model_after_plan` is false). Declared steps go through the same loop as the model's
  own calls: the same events, checkpoints, approvals and errors.
- `conclude(outcome, env)` turns the finished run into its result.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from services.canonical import Message, TextPart

ASK_USER = "ask_user"


@dataclass(frozen=True, slots=True)
class PlannedCall:
    """A tool call the agent declares rather than the model choosing it."""

    tool: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Opening:
    """How a run of an agent begins: the messages the model reads first, the declared
    steps (each a list of calls made together), and agent state kept in the checkpoint."""

    messages: list[Message]
    plan: list[list[PlannedCall]] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AgentEnv:
    """What an agent's hooks and tools may use: the caller, the models, the documents."""

    tenant_id: str
    key_id: str
    catalogue: Any
    documents: Any = None
    embeddings: Any = None
    conversations: Any = None  # services.conversations.store.ConversationStore, built on first use


OutcomeStatus = Literal["answered", "planned", "rejected"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended. `answered`: the model answered without calling tools;
    `planned`: a plan-only agent finished its declared steps; `rejected`: the person
    turned an approval down without asking for changes, so nothing it guarded was done."""

    status: OutcomeStatus
    output: str
    steps: list[dict[str, Any]]
    context: dict[str, Any]


OpeningHook = Callable[[Any, AgentEnv], Awaitable[Opening]]
ConcludeHook = Callable[[Outcome, AgentEnv], Awaitable[dict[str, Any]]]
# (tool, arguments, the run's agent context) -> the approval prompt
DescribeHook = Callable[[str, dict[str, Any], dict[str, Any]], str]


async def default_opening(input: Any, env: AgentEnv) -> Opening:
    """The agent's input, as JSON, is the user's message."""
    data = input.model_dump(mode="json") if isinstance(input, BaseModel) else input
    return Opening([Message("user", [TextPart(json.dumps(data))])])


async def default_conclude(outcome: Outcome, env: AgentEnv) -> dict[str, Any]:
    return {"outcome": outcome.status, "output": outcome.output, "steps": outcome.steps}


def default_describe(tool: str, arguments: dict[str, Any], context: dict[str, Any]) -> str:
    return f"The agent wants to run '{tool}' with {json.dumps(arguments)}. Approve?"


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent, declared. `tools` may include `ask_user`; every name in
    `approval_required` must be one of `tools`."""

    name: str
    description: str
    instructions: str
    tools: tuple[str, ...]
    route: str
    max_steps: int
    Input: type[BaseModel]
    approval_required: frozenset[str] = frozenset()
    max_tokens: int = 1024
    model_after_plan: bool = True
    opening: OpeningHook = default_opening
    conclude: ConcludeHook = default_conclude
    describe: DescribeHook = default_describe

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise ValueError(f"agent {self.name}: max_steps must be at least 1")
        stray = self.approval_required - set(self.tools)
        if stray:
            raise ValueError(f"agent {self.name}: approval for tools it lacks: {sorted(stray)}")

    def public(self) -> dict[str, Any]:
        """The agent as `GET /v1/agents` shows it."""
        return {
            "object": "agent",
            "name": self.name,
            "description": self.description,
            "tools": list(self.tools),
            "route": self.route,
            "max_steps": self.max_steps,
            "approval_required": sorted(self.approval_required),
            "input_schema": self.Input.model_json_schema(),
        }
