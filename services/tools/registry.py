"""Every tool in `services/tools/`: each module there that defines `TOOL` is registered."""

from __future__ import annotations

import functools
import importlib
import pkgutil

import services.tools as package
from services.errors import NotFound
from services.tools.base import Tool

_NOT_TOOLS = frozenset({"base", "registry"})


@functools.cache
def tools() -> dict[str, Tool]:
    found: dict[str, Tool] = {}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name in _NOT_TOOLS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        tool = getattr(module, "TOOL", None)
        if isinstance(tool, Tool):
            if tool.name in found:
                raise RuntimeError(f"two tools are named {tool.name!r}")
            found[tool.name] = tool
    return dict(sorted(found.items()))


def get(name: str) -> Tool:
    tool = tools().get(name)
    if tool is None:
        raise NotFound(
            f"There is no tool named '{name}'; GET /v1/tools lists them.", code="tool_not_found"
        )
    return tool
