"""The worker's routing, derived from the route table (services/frontdoor/routes.py).

Each API module of the worker gives its endpoints by the table's `(method, path)`;
`table_routes` turns them into routes in the table's order, and refuses an endpoint for a
route the table does not declare. The worker serves every `WORKER` route, and also the
run reads (`GET /v1/runs`, `GET /v1/runs/{run_id}`, `CONTROL` routes that the stream front
door relays here). A method the table does not list for a path is a 405 naming the ones
it does (`table_405`). Only `/health` and the workers' own `/internal/...` endpoints are
not in the table: API Gateway forwards nothing but table routes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.errors import MethodNotAllowed, NotFound, error_from_status
from services.frontdoor.routes import ROUTES, allowed_text, match
from services.web.asgi import error_response

Endpoints = Mapping[tuple[str, str], Callable[..., Any]]
_SHOWN = 200  # characters of a path an error message repeats


def table_routes(endpoints: Endpoints) -> list[Route]:
    """A route per table route that has an endpoint here, in the table's order."""
    declared = {(r.method, r.path) for r in ROUTES}
    unknown = sorted(set(endpoints) - declared)
    if unknown:
        raise ValueError(f"endpoints for routes the route table does not declare: {unknown}")
    return [
        Route(r.path, endpoints[(r.method, r.path)], methods=[r.method])
        for r in ROUTES
        if (r.method, r.path) in endpoints
    ]


async def table_405(request: Request, exc: Exception) -> Response:
    """Starlette's 404 and 405, in the OpenAI error shape; a 405 names the methods the
    route table gives the path (and says so in `Allow`)."""
    assert isinstance(exc, HTTPException)
    method, path = request.method, request.url.path
    shown = path if len(path) <= _SHOWN else path[: _SHOWN - 1] + "…"
    if exc.status_code == 405:
        allowed = match(method, path).allowed
        if allowed:
            return error_response(
                MethodNotAllowed(
                    f"Method {method} is not allowed on {shown}; use {allowed_text(allowed)}.",
                    headers={"allow": ", ".join(allowed)},
                ),
                path,
            )
    if exc.status_code in (404, 405):
        return error_response(NotFound(f"Unknown request URL: {method} {shown}."), path)
    return error_response(error_from_status(exc.status_code, str(exc.detail)), path)
