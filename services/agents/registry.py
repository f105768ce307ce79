"""Every built-in agent: each module in `services/agents/builtin/` that defines `AGENT`."""

from __future__ import annotations

import functools

import services.agents.builtin as package
from services.agents.base import Agent
from services.plugins import declared


@functools.cache
def agents() -> dict[str, Agent]:
    return declared(package, "AGENT", Agent)
