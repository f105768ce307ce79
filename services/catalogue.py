"""The model catalogue: which public model names a caller may use, and who serves them.

Public names are `<provider>/<model>` (for example `local/simulator`). Only providers
that are configured appear, so a provider without credentials is never offered.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.errors import NotFound
from services.providers.base import Provider


@dataclass(frozen=True, slots=True)
class Route:
    public_name: str
    provider: Provider
    model: str
    context_window: int


class Catalogue:
    def __init__(self, providers: dict[str, Provider]) -> None:
        self._routes: dict[str, Route] = {}
        for provider_name, provider in providers.items():
            for model in provider.models():
                public = f"{provider_name}/{model}"
                self._routes[public] = Route(
                    public, provider, model, provider.context_window(model)
                )

    def resolve(self, model: str) -> Route:
        route = self._routes.get(model)
        if route is None:
            raise NotFound(
                f"The model '{model}' does not exist or is not available to you. "
                f"GET /v1/models lists the models you can use.",
                param="model",
                code="model_not_found",
            )
        return route

    def names(self) -> list[str]:
        return sorted(self._routes)

    def owner(self, name: str) -> str:
        return self._routes[name].provider.name
