"""Who is calling: the tenant and key a provider call is accounted to.

The worker sets `CALLER` once it has authenticated a request (and a run's task sets it
from the run record); every provider call the router makes in that context is recorded
against it. A context variable follows the request into the tasks it starts, so a
conversation's producer task or a promoted run is still attributed.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol


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
