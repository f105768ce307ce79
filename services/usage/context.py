"""Who is calling: the tenant and key a provider call is accounted to.

The worker sets `CALLER` once it has authenticated a request (and a run's task sets it
from the run record); every provider call the router makes in that context is recorded
against it. A context variable follows the request into the tasks it starts, so a
conversation's producer task or a promoted run is still attributed.

`TALLIES` does the same for a `Tally`: which models answered the calls made in a scope,
and what they used.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Protocol

from services.providers.base import Usage


@dataclass(frozen=True, slots=True)
class Caller:
    tenant_id: str
    key_id: str
    route: str  # the API the call came through, for example "/v1/chat/completions"


class _Principal(Protocol):
    @property
    def tenant_id(self) -> str: ...

    @property
    def key_id(self) -> str: ...


CALLER: ContextVar[Caller | None] = ContextVar("switchboard_caller", default=None)


def bind(principal: _Principal, route: str) -> Caller:
    """Account the provider calls made from here on (in this task and the tasks it starts)
    to `principal`, as coming through `route`. Call it right after authenticating."""
    key = (principal.tenant_id, principal.key_id, route)
    caller = _CALLERS.get(key)
    if caller is None:  # one per key and route, made once (this runs on every request)
        if len(_CALLERS) >= 10_000:
            _CALLERS.clear()
        caller = _CALLERS[key] = Caller(*key)
    CALLER.set(caller)
    return caller


_CALLERS: dict[tuple[str, str, str], Caller] = {}


@dataclass(eq=False, slots=True)
class Tally:
    """The model calls answered within a scope (see `counting`), added up as they finish:
    the models that answered (each once, in the order they first did) and their usage.

    The router tells every tally in scope when a provider model starts answering and what
    the call used; embeddings do the same. A scope is what a caller needs to account for
    or label as a whole: one chat answer (which model answered it), a tool call, an agent
    step. Scopes nest: a call counts in every tally in scope."""

    models: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    calls: int = 0
    model: str | None = None  # the model that answered the latest call

    def answered(self, model: str) -> None:
        self.calls += 1
        self.model = model
        if model not in self.models:
            self.models.append(model)

    def add(self, usage: Usage) -> None:
        self.usage = self.usage + usage


TALLIES: ContextVar[tuple[Tally, ...]] = ContextVar("switchboard_tallies", default=())


def counting(tally: Tally) -> _Counting:
    """Count the model calls made in this `with` block (and in the tasks it starts) in
    `tally`: `with counting(Tally()) as tally: ...`."""
    return _Counting(tally)


class _Counting:
    """A class rather than a generator: it runs on every chat request."""

    __slots__ = ("_tally", "_token")

    def __init__(self, tally: Tally) -> None:
        self._tally = tally
        self._token: Token[tuple[Tally, ...]] | None = None

    def __enter__(self) -> Tally:
        current = TALLIES.get()
        if not any(t is self._tally for t in current):
            self._token = TALLIES.set((*current, self._tally))
        return self._tally

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            TALLIES.reset(self._token)
            self._token = None
