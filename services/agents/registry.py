"""Every built-in agent: each module in `services/agents/builtin/` that defines `AGENT`."""

from __future__ import annotations

import functools
import importlib
import pkgutil

import services.agents.builtin as package
from services.agents.base import Agent


@functools.cache
def agents() -> dict[str, Agent]:
    found: dict[str, Agent] = {}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        agent = getattr(module, "AGENT", None)
        if isinstance(agent, Agent):
            if agent.name in found:
                raise RuntimeError(f"two agents are named {agent.name!r}")
            found[agent.name] = agent
    return dict(sorted(found.items()))
