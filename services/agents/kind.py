"""The run kind `agent`: one run of a declared agent.

Input: `{"agent": "<name>", "input": {...}, "model"?: "<route or model>", "max_steps"?: n}`.
`input` is checked against the agent's `Input`; `model` replaces the agent's route for its
own model calls (tools keep theirs); `max_steps` may lower the agent's step limit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from services.agents.base import Agent, AgentEnv
from services.agents.loop import AgentLoop
from services.agents.registry import agents
from services.errors import APIError, InvalidRequest
from services.tools.base import Tool

if TYPE_CHECKING:
    from services.models.catalogue import Catalogue
    from services.runs.kinds import RunContext

_FIELDS = ("agent", "input", "model", "max_steps")


@dataclass(frozen=True, slots=True)
class AgentRequest:
    agent: Agent
    input: BaseModel
    model: str | None
    max_steps: int | None


def parse_request(
    raw: Any, catalogue: Catalogue, found: Mapping[str, Agent] | None = None
) -> AgentRequest:
    """The run's input, or a 400 (404 for an unknown model) naming the bad field."""
    found = agents() if found is None else found
    if not isinstance(raw, dict):
        raise InvalidRequest(
            'An agent run\'s input is {"agent": "<name>", "input": {...}}.',
            param="input",
            code="invalid_value",
        )
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise InvalidRequest(
            f"Unrecognized argument in the agent run's input: {unknown[0]}.",
            param=f"input.{unknown[0]}",
            code="unknown_parameter",
        )
    name = raw.get("agent")
    agent = found.get(name) if isinstance(name, str) else None
    if agent is None:
        raise InvalidRequest(
            f"Unknown agent {name!r}; one of: {', '.join(found)} (GET /v1/agents lists them).",
            param="input.agent",
            code="unknown_agent" if "agent" in raw else "missing_required_parameter",
        )
    try:
        parsed = agent.Input.model_validate(raw.get("input", {}))
    except ValidationError as exc:
        error = exc.errors()[0]
        path = ".".join(str(p) for p in error["loc"])
        raise InvalidRequest(
            f"Invalid input for agent '{agent.name}': {path or 'input'}: {error['msg']}.",
            param=f"input.input.{path}" if path else "input.input",
            code="invalid_agent_input",
        ) from None
    model = raw.get("model")
    if model is not None:
        if not isinstance(model, str):
            raise InvalidRequest("'model' must be a string.", param="input.model")
        try:
            catalogue.resolve(model)
        except APIError as exc:
            exc.param = "input.model"
            raise
    max_steps = raw.get("max_steps")
    if max_steps is not None and (
        not isinstance(max_steps, int)
        or isinstance(max_steps, bool)
        or not 1 <= max_steps <= agent.max_steps
    ):
        raise InvalidRequest(
            f"'max_steps' must be an integer from 1 to {agent.max_steps} "
            f"(agent '{agent.name}''s limit).",
            param="input.max_steps",
            code="invalid_value",
        )
    return AgentRequest(agent, parsed, model, max_steps)


class AgentKind:
    name = "agent"

    def __init__(
        self,
        found: Callable[[], Mapping[str, Agent]] = agents,
        tools: Mapping[str, Tool] | None = None,
    ) -> None:
        """`found` lists the agents and `tools` replaces where their tools are found
        (tests declare their own)."""
        self._agents = found
        self._tools = tools

    def validate(self, input: Any, catalogue: Catalogue) -> None:
        parse_request(input, catalogue, self._agents())

    async def execute(self, ctx: RunContext) -> Any:
        request = parse_request(ctx.run.input, ctx.catalogue, self._agents())
        env = AgentEnv(
            tenant_id=ctx.run.tenant_id,
            key_id=ctx.run.key_id,
            catalogue=ctx.catalogue,
            documents=ctx.documents,
            embeddings=ctx.embeddings,
            conversations=ctx.conversations,
        )
        loop = AgentLoop(
            request.agent,
            ctx,
            env,
            tools=self._tools,
            route=request.model,
            max_steps=request.max_steps,
        )
        return await loop.run(request.input)
