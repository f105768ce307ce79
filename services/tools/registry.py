"""Every tool in `services/tools/`: each module there that defines `TOOL` is registered."""

from __future__ import annotations

import functools

import services.tools as package
from services.errors import NotFound
from services.plugins import declared
from services.tools.base import Tool

_NOT_TOOLS = frozenset({"base", "registry"})


@functools.cache
def tools() -> dict[str, Tool]:
    return declared(package, "TOOL", Tool, skip=_NOT_TOOLS)


def get(name: str) -> Tool:
    tool = tools().get(name)
    if tool is None:
        raise NotFound(
            f"There is no tool named '{name}'; GET /v1/tools lists them.", code="tool_not_found"
        )
    return tool
