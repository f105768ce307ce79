"""Finding the declarations a package's modules make: a tool is one file, an agent is one
file, and the registry lists them without star imports or hand-kept lists."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import Any


def declared(
    package: ModuleType, attribute: str, kind: type[Any], *, skip: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The `attribute` of each module of `package` (bar `_private` ones and `skip`) that
    is a `kind` (abstract or not), by its `name`, sorted; two with one name are an error."""
    found: dict[str, Any] = {}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name in skip or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        value = getattr(module, attribute, None)
        if isinstance(value, kind):
            if value.name in found:
                raise RuntimeError(f"two {kind.__name__}s are named {value.name!r}")
            found[value.name] = value
    return dict(sorted(found.items()))
