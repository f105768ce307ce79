"""The observer every ASGI entry point (the worker, the stream door) serves requests through:
the call's correlation id (`services.telemetry.ids`), its access line and its metrics.

Per request it picks the id (the client's `x-request-id` if sane, else the edge's, else a
new one), starts the call's context (`services.telemetry.context`), answers with the id in
`x-request-id` (replacing any other), and once the answer is complete (a stream: at its
end) writes one access line and counts the request: `Requests` and `Latency` per service,
`Errors` (5xx) or `ClientErrors` (4xx) by route and error type, `BudgetRefusals`
(`services.telemetry.access`). `/health` and `/ready` (the load balancer's and the Lambda
adapter's probes, every few seconds) get the header but no line and no count.

It costs a request a few microseconds: a scan of the headers, one context variable, one
JSON line, a few dict updates.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from services.telemetry.access import finish, read_error
from services.telemetry.context import CURRENT, Call
from services.telemetry.ids import EDGE_REQUEST_ID_HEADER, REQUEST_ID_HEADER, choose, sane
from services.telemetry.logs import Output

# ASGI's types, spelled out: the stream door's bundle has no Starlette.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGI = Callable[[Any, Receive, Send], Awaitable[None]]  # scope: a Scope, or a dict
RouteOf = Callable[[str, str], str | None]  # (method, path) -> the route's template

_CLIENT = REQUEST_ID_HEADER.encode()
_EDGE = EDGE_REQUEST_ID_HEADER.encode()
# Set by API Gateway (stage tracing on) and the ALB: the X-Ray trace this request is part
# of. The worker runs no tracer (README, "Observability"); its lines carry the trace's id
# under the name the Lambdas' lines use, which joins them to the edge's trace.
_TRACE = b"x-amzn-trace-id"
_TRACE_FIELD = "xray_trace_id"
_EDGE_FIELD = "edge_request_id"
_PROBES = frozenset({"/health", "/ready"})


class Observer:
    """Serves each HTTP request of `app` as an observed call (see the module)."""

    def __init__(
        self,
        output: Output,
        route_of: RouteOf,
        *,
        edge_id: Callable[[list[tuple[bytes, bytes]]], str | None] | None = None,
    ) -> None:
        self.output = output
        self.route_of = route_of
        # The id the edge gave this request, if any: by default API Gateway's, in
        # x-switchboard-request-id; the stream door reads its Function URL's own.
        self.edge_id = edge_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send, app: ASGI) -> None:
        client = edge = trace = None
        for name, value in scope["headers"]:
            if name == _CLIENT:
                client = value
            elif name == _EDGE:
                edge = value
            elif name == _TRACE:
                trace = value
        if edge is None and self.edge_id is not None:
            edge = self.edge_id(scope["headers"])
        request_id = choose(client, edge)
        header = (_CLIENT, request_id.encode())
        path: str = scope["path"]
        if path in _PROBES:
            await app(scope, receive, _with_header(send, header))
            return
        method: str = scope["method"]
        # Fields on every line of the call that join it to the edge's records: the X-Ray
        # trace, and API Gateway's own id where the client's id won (its access log
        # names the call by that).
        extra: dict[str, str] = {}
        traced = sane(trace)
        if traced is not None:
            extra[_TRACE_FIELD] = traced
        edge_id = sane(edge)
        if edge_id is not None and edge_id != request_id:
            extra[_EDGE_FIELD] = edge_id
        call = Call(request_id, method, self.route_of(method, path), extra or None)
        token = CURRENT.set(call)
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = _headed(message, header)
            elif status >= 400 and call.error_type is None:
                read_error(call, message.get("body", b""))
            await send(message)

        try:
            await app(scope, receive, sending)
        finally:
            finish(self.output, call, status or 500, path)
            CURRENT.reset(token)


def _headed(message: Message, header: tuple[bytes, bytes]) -> Message:
    headers = [h for h in message.get("headers", ()) if h[0] != _CLIENT]
    headers.append(header)
    return {**message, "headers": headers}


def _with_header(send: Send, header: tuple[bytes, bytes]) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = _headed(message, header)
        await send(message)

    return sending
