"""The call being served: its correlation id and what the access line reports of it.

An entry point starts a `Call` (`begin`) for each request; a context variable carries it
into every task the request starts, so a log line anywhere below (a provider attempt, the
usage record, a run the request created) names the request. Code that learns something
about the call notes it here (`note_tenant` after authentication, `note_model` when a
model answers), and the access line reads it at the end. Outside a request (start-up, the
run consumer) there is no call, and log lines carry no request id.
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token
from typing import Any


class Call:
    """One request (or one run's execution), as the logs and metrics see it."""

    __slots__ = (
        "error_code",
        "error_type",
        "extra",
        "method",
        "model",
        "relayed",
        "request_id",
        "route",
        "started",
        "tenant_id",
    )

    def __init__(
        self,
        request_id: str,
        method: str = "",
        route: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.request_id = request_id
        self.method = method
        self.route = route  # the route table's template, not the raw path
        self.tenant_id: str | None = None
        self.model: str | None = None  # the model that answered (the last, if several)
        self.error_type: str | None = None
        self.error_code: str | None = None
        self.relayed = False  # the answer came from another component (the stream door)
        self.extra = extra  # fields every log line of the call carries (a Lambda's ids)
        self.started = time.perf_counter()


CURRENT: ContextVar[Call | None] = ContextVar("switchboard_call", default=None)


def begin(
    request_id: str,
    method: str = "",
    route: str | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[Call, Token[Call | None]]:
    """Start serving a call in this context; `CURRENT.reset(token)` ends it."""
    call = Call(request_id, method, route, extra)
    return call, CURRENT.set(call)


def current() -> Call | None:
    return CURRENT.get()


def request_id() -> str | None:
    """The id of the call being served here, if any."""
    call = CURRENT.get()
    return None if call is None else call.request_id


def note_tenant(tenant_id: str) -> None:
    call = CURRENT.get()
    if call is not None:
        call.tenant_id = tenant_id


def note_model(model: str) -> None:
    call = CURRENT.get()
    if call is not None:
        call.model = model
