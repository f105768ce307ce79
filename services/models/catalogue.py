"""The model catalogue: which model names a caller may use, and who serves them.

Names are provider models (`<provider>/<model>`, for example `local/simulator`), aliases
of one model, and routes (an ordered list of models, with fallback along it), all read
from `services/models/models.toml`. Only what a configured provider serves appears: a provider
without credentials is never offered, and a route keeps only its available models.

Every name resolves to a `Route` whose `provider` is a `Router`, so retries, fallback,
circuit breakers and timeouts apply to every call, whatever the name; and with a
`recorder` (services/usage), every provider attempt of every route is reported to it.

The simulator (`local/simulator`) is a stand-in, never passed off as a model, and
`SWITCHBOARD_SIMULATOR` says where it may answer:

- `off` (deployed stages): nowhere. Asking for it is a 404 that says it is off;
- `on`: by its own name, and on a route only where the catalogue lists it;
- `fallback` (the default, for `make dev`): also as the last model of every route, so a
  machine with no provider key still answers. The answer's `model` says it was the
  simulator.

A route none of whose models is available answers 503 `route_unavailable`, saying why.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.config import ConfigError
from services.errors import InvalidRequest, NotFound, ServiceUnavailable
from services.models.routing import Breakers, Router, RoutingSettings, Target
from services.providers.base import Provider
from services.providers.timeouts import Timeouts
from services.usage.calls import CallRecorder

DEFAULT_CONFIG = Path(__file__).with_name("models.toml")
SIMULATOR = "local/simulator"
SIMULATOR_MODES = ("off", "on", "fallback")
# The name a request asked for (a route, an alias or a model), on answers that name the
# model that answered in their body.
ROUTE_HEADER = "x-switchboard-route"


@dataclass(frozen=True, slots=True)
class CatalogueConfig:
    context_windows: dict[str, int] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    routes: dict[str, list[str]] = field(default_factory=dict)
    # Embedding models (`[embeddings]`): public name -> the length of its vectors.
    embeddings: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = DEFAULT_CONFIG) -> CatalogueConfig:
        try:
            raw = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read the model catalogue {path}: {exc}") from None
        config = cls(
            context_windows={
                name: int(entry.get("context_window", 0))
                for name, entry in raw.get("models", {}).items()
                if entry.get("context_window")
            },
            aliases=dict(raw.get("aliases", {})),
            routes={name: list(models) for name, models in raw.get("routes", {}).items()},
            embeddings={
                name: int(entry.get("dimensions", 0))
                for name, entry in raw.get("embeddings", {}).items()
            },
        )
        config.check(path)
        return config

    def check(self, source: Path | str = "catalogue") -> None:
        for name, target in self.aliases.items():
            if "/" in name or "/" not in target:
                raise ConfigError(
                    f"{source}: alias '{name}' must be a bare name for a provider model"
                )
        for name in self.embeddings:
            if "/" not in name:
                raise ConfigError(f"{source}: embedding model '{name}' must be <provider>/<model>")
        for name, models in self.routes.items():
            if "/" in name or name in self.aliases:
                raise ConfigError(f"{source}: route '{name}' must be a bare name, unique")
            if not models or any("/" not in m for m in models):
                raise ConfigError(f"{source}: route '{name}' must list provider models")


@dataclass(frozen=True, slots=True)
class EmbeddingModel:
    public_name: str
    provider: Provider
    model: str  # the provider's own model id
    dimensions: int | None  # of its vectors, when the catalogue says

    @property
    def owned_by(self) -> str:
        return self.provider.name


@dataclass(frozen=True, slots=True)
class Route:
    public_name: str
    provider: Provider  # a Router over the targets
    model: str  # the first target's model id
    context_window: int  # the smallest of the targets': a request must fit every one
    owned_by: str = "switchboard"


class Catalogue:
    def __init__(
        self,
        providers: dict[str, Provider],
        config: CatalogueConfig | None = None,
        *,
        routing: RoutingSettings | None = None,
        timeouts: Mapping[str, Timeouts] | None = None,
        recorder: CallRecorder | None = None,
        simulator: str = "fallback",
    ) -> None:
        """`simulator` is one of `SIMULATOR_MODES` (see the module's docstring)."""
        if simulator not in SIMULATOR_MODES:
            raise ValueError(f"simulator must be one of {SIMULATOR_MODES}, not {simulator!r}")
        self.simulator = simulator
        config = config or CatalogueConfig()
        routing = routing or RoutingSettings()
        breakers = Breakers(routing)
        timeouts = timeouts or {}
        targets: dict[str, tuple[Target, int]] = {}
        for provider_name, provider in providers.items():
            for model in provider.models():
                name = f"{provider_name}/{model}"
                if name == SIMULATOR and simulator == "off":
                    continue
                window = config.context_windows.get(name) or provider.context_window(model)
                target = Target(name, provider, model, timeouts.get(provider_name, Timeouts()))
                targets[name] = (target, window)

        def route(name: str, members: list[str], owned_by: str) -> Route | None:
            available = [targets[m] for m in members if m in targets]
            if not available:
                return None
            router = Router(name, [t for t, _ in available], routing, breakers, recorder=recorder)
            window = min(w for _, w in available)
            return Route(name, router, available[0][0].model, window, owned_by)

        self._routes: dict[str, Route] = {}
        self._real = sorted(
            name for name, (target, _) in targets.items() if target.provider.name != "local"
        )
        for name, (target, _) in targets.items():
            self._add(route(name, [name], target.provider.name))
        for alias, name in config.aliases.items():
            if name in targets:
                self._add(route(alias, [name], targets[name][0].provider.name))
        # Declared routes with no available model: asking for one says why, not "unknown".
        self._unavailable: dict[str, list[str]] = {}
        for name, members in config.routes.items():
            if simulator == "fallback" and SIMULATOR not in members:
                members = [*members, SIMULATOR]
            found = route(name, members, "switchboard")
            if found is None:
                self._unavailable[name] = members
            self._add(found)

        # Embedding models: the catalogue's, and any a provider adds, if it is configured.
        # No fallback between them: vectors of different models are not comparable. The
        # local one (hashed trigrams, not a learned model) goes with the simulator: a
        # deployment without it offers only real models.
        self._embeddings: dict[str, EmbeddingModel] = {}
        offered = {
            name: provider
            for name, provider in providers.items()
            if not (name == "local" and simulator == "off")
        }
        for name, dimensions in config.embeddings.items():
            provider_name, _, model = name.partition("/")
            if provider_name in offered:
                self._embeddings[name] = EmbeddingModel(
                    name, offered[provider_name], model, dimensions or None
                )
        for provider_name, provider in offered.items():
            for model in provider.embedding_models():
                name = f"{provider_name}/{model}"
                self._embeddings.setdefault(name, EmbeddingModel(name, provider, model, None))

    def _add(self, route: Route | None) -> None:
        if route is not None:
            self._routes[route.public_name] = route

    def resolve(self, model: str) -> Route:
        route = self._routes.get(model)
        if route is not None:
            return route
        if model in self._unavailable:
            raise ServiceUnavailable(
                f"The route '{model}' has no model available: none of "
                f"{', '.join(self._unavailable[model])} has its provider configured in this "
                "deployment. Configure a provider's key (see the README's Providers section).",
                param="model",
                code="route_unavailable",
                headers={"x-should-retry": "false"},
            )
        if model == SIMULATOR and self.simulator == "off":
            raise NotFound(
                f"The simulator ({SIMULATOR}) is off in this deployment "
                "(SWITCHBOARD_SIMULATOR=off); name a real model or route.",
                param="model",
                code="model_not_found",
            )
        raise NotFound(
            f"The model '{model}' does not exist or is not available to you. "
            f"GET /v1/models lists the models you can use.",
            param="model",
            code="model_not_found",
        )

    def names(self) -> list[str]:
        return sorted(self._routes)

    def real_models(self) -> list[str]:
        """The provider models that are not the simulator: none means that nothing real
        can answer in this deployment."""
        return list(self._real)

    def owner(self, name: str) -> str:
        return self._routes[name].owned_by

    def resolve_embedding(self, model: str) -> EmbeddingModel:
        """The embedding model `model`: 400 for a chat model, 404 for an unknown name."""
        found = self._embeddings.get(model)
        if found is not None:
            return found
        if model.startswith("local/") and self.simulator == "off":
            raise NotFound(
                f"The local embedding model ({model}) is off with the simulator in this "
                "deployment (SWITCHBOARD_SIMULATOR=off); name a real embedding model: "
                f"{', '.join(self.embedding_names()) or 'none is configured'}.",
                param="model",
                code="model_not_found",
            )
        if model in self._routes:
            raise InvalidRequest(
                f"The model '{model}' does not offer embeddings; "
                f"use one of: {', '.join(self.embedding_names())}.",
                param="model",
                code="model_not_embedding",
            )
        raise NotFound(
            f"The embedding model '{model}' does not exist or is not available to you. "
            f"GET /v1/models lists the models you can use.",
            param="model",
            code="model_not_found",
        )

    def embedding_names(self) -> list[str]:
        return sorted(self._embeddings)

    def default_embedding(self, preferred: str) -> str | None:
        """`preferred` if it is offered, else the first embedding model offered (the
        catalogue's order: its cheapest first), else None."""
        if preferred in self._embeddings:
            return preferred
        return next(iter(self._embeddings), None)
