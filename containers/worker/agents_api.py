"""The agents API on the worker: `GET /v1/agents` lists the built-in agents (name,
description, tools, route, step limit, which tools need approval, input schema) and
`GET /v1/agents/{name}` shows one. An agent runs as a run of kind `agent`:
`POST /v1/runs` with `{"kind": "agent", "input": {"agent": "<name>", "input": {...}}}`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from services.agents.registry import agents
from services.errors import NotFound
from services.tenancy.auth import Authenticator
from services.web.asgi import JSONBytesResponse


def agent_endpoints(
    authenticator: Authenticator,
) -> dict[tuple[str, str], Callable[[Request], Any]]:
    """The endpoints by the route table's (method, path)."""

    async def list_agents(request: Request) -> Response:
        await authenticator.authenticate_async(request.headers)
        data = [agent.public() for agent in agents().values()]
        return JSONBytesResponse({"object": "list", "data": data})

    async def get_agent(request: Request) -> Response:
        await authenticator.authenticate_async(request.headers)
        name = request.path_params["name"]
        agent = agents().get(name)
        if agent is None:
            raise NotFound(
                f"There is no agent named '{name}'; GET /v1/agents lists them.",
                param="name",
                code="agent_not_found",
            )
        return JSONBytesResponse(agent.public())

    return {("GET", "/v1/agents"): list_agents, ("GET", "/v1/agents/{name}"): get_agent}
