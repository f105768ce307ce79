"""Which fake upstream stands in for which provider.

`tests/fakes/<provider>.py` (named like the adapter in `services/providers/`) defines
`BINDING`. The conformance suite runs every registered provider against its fake, and
fails for a provider that has none.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from services.providers.base import Provider
from tests.fakes.upstream import FakeUpstream


@dataclass(frozen=True)
class FakeBinding:
    fake: Callable[[], FakeUpstream]
    # The environment that points the provider's `create(env)` at a fake's URL: what a
    # worker in the local stack is started with.
    env: Callable[[str], Mapping[str, str]]
    # A model id the provider offers under that environment.
    model: str


def binding(provider: str) -> FakeBinding | None:
    try:
        module = importlib.import_module(f"tests.fakes.{provider}")
    except ModuleNotFoundError:
        return None
    found = getattr(module, "BINDING", None)
    return found if isinstance(found, FakeBinding) else None


def provider_for(name: str, fake: FakeUpstream) -> Provider:
    """The provider `name`, built by its own `create(env)`, pointed at `fake`."""
    from services.providers import factories

    bound = binding(name)
    assert bound is not None, f"no fake upstream for provider {name}"
    provider = factories()[name](dict(bound.env(fake.url)))
    assert provider is not None, f"{name}.create returned None for the fake's environment"
    return provider
