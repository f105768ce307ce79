"""The provider registry.

Every module in this package except the shared ones (`base`, the port and canonical
types; `errors`; `timeouts`) is a provider adapter and defines
`create(env: Mapping[str, str]) -> Provider | None`, returning None when the environment
holds no credentials for it (a provider without credentials is not offered). Adding a
provider is adding one file here.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from typing import cast

from services.providers.base import Provider

_NOT_ADAPTERS = {"base", "errors", "timeouts"}

Factory = Callable[[Mapping[str, str]], Provider | None]


def factories() -> dict[str, Factory]:
    """Each adapter module's `create`, by module name."""
    found: dict[str, Factory] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name in _NOT_ADAPTERS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        create = getattr(module, "create", None)
        if create is None:
            raise TypeError(f"provider module {module.__name__} defines no create(env)")
        found[info.name] = cast(Factory, create)
    return found


def build_providers(env: Mapping[str, str]) -> dict[str, Provider]:
    """The providers this environment configures, by name."""
    providers: dict[str, Provider] = {}
    for name, create in sorted(factories().items()):
        provider = create(env)
        if provider is not None:
            providers[name] = provider
    return providers
