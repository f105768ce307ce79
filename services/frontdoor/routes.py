"""The route table: every public route, written once.

Each row says who answers the route and what bounds it:

- `owner`: `WORKER` routes are AI work (or need the worker's catalogue, tools, documents
  or run ownership). API Gateway sends them straight to the worker's load balancer through
  its private integration, streamed, and no Lambda waits on them. `CONTROL` routes are
  short DynamoDB work that the gateway Lambda answers itself (conversations, run reads,
  usage, admin).
- `body`: which body limit applies (`REQUEST`: `SWITCHBOARD_MAX_REQUEST_BYTES`;
  `DOCUMENT`: a file as base64 JSON, `SWITCHBOARD_DOCUMENT_MAX_UPLOAD_BYTES` plus JSON;
  `NONE`: no body is read).
- `sync`: a non-streamed answer is bounded by the sync deadline (a few seconds below what
  API Gateway allows before the first byte): past it the caller gets a 202 with a run if
  it asked for one (`Prefer: respond-async`), or an error naming the run that will hold
  the result.
- `streams`: the route may answer with server-sent events.
- `admin`: the admin key, not a tenant's API key.
- `public`: no key at all (the API's own description: its OpenAPI contract and the
  reference page that renders it, `services/contract/public.py`).

The worker, the gateway Lambda, the stream front door, the local API Gateway emulator and
the CDK stacks all read this table: none of them lists routes of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final


class Owner(StrEnum):
    WORKER = "worker"
    CONTROL = "control"


class Body(StrEnum):
    NONE = "none"
    REQUEST = "request"
    DOCUMENT = "document"


@dataclass(frozen=True, slots=True)
class RouteSpec:
    method: str
    path: str  # a template: "/v1/runs/{run_id}/events"
    owner: Owner
    body: Body = Body.NONE
    sync: bool = False
    streams: bool = False
    admin: bool = False
    public: bool = False
    summary: str = ""
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)
    params: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = tuple(re.findall(r"\{(\w+)\}", self.path))
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path))
        object.__setattr__(self, "params", names)
        object.__setattr__(self, "pattern", re.compile(f"^{regex}$"))

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.match(path)
        return None if found is None else found.groupdict()


W, C = Owner.WORKER, Owner.CONTROL
REQ, DOC = Body.REQUEST, Body.DOCUMENT

ROUTES: Final[tuple[RouteSpec, ...]] = (
    # AI work, OpenAI and Anthropic wire formats.
    RouteSpec("POST", "/v1/chat/completions", W, REQ, sync=True, streams=True,
              summary="Create a chat completion (OpenAI)"),
    RouteSpec("POST", "/v1/messages", W, REQ, sync=True, streams=True,
              summary="Create a message (Anthropic)"),
    RouteSpec("POST", "/v1/embeddings", W, REQ, sync=True, summary="Create embeddings"),
    RouteSpec("GET", "/v1/models", W, summary="List the models, aliases and routes"),
    # Tools and agents.
    RouteSpec("GET", "/v1/tools", W, summary="List the tools"),
    RouteSpec("GET", "/v1/tools/{name}", W, summary="Describe a tool"),
    RouteSpec("POST", "/v1/tools/{name}", W, REQ, sync=True, summary="Run a tool"),
    RouteSpec("GET", "/v1/agents", W, summary="List the agents"),
    RouteSpec("GET", "/v1/agents/{name}", W, summary="Describe an agent"),
    # Runs: created, followed, cancelled and answered on the worker; read from the table.
    RouteSpec("POST", "/v1/runs", W, REQ, sync=True, streams=True, summary="Start a run"),
    RouteSpec("GET", "/v1/runs", C, summary="List the tenant's runs"),
    RouteSpec("GET", "/v1/runs/{run_id}", C, summary="Get a run"),
    RouteSpec("POST", "/v1/runs/{run_id}/cancel", W, summary="Cancel a run"),
    RouteSpec("POST", "/v1/runs/{run_id}/input", W, REQ,
              summary="Answer a run that awaits input"),
    RouteSpec("GET", "/v1/runs/{run_id}/events", W, streams=True,
              summary="A run's events (server-sent events, resumable)"),
    # Documents.
    RouteSpec("POST", "/v1/documents", W, DOC, summary="Upload a document (base64 JSON)"),
    RouteSpec("GET", "/v1/documents", W, summary="List documents"),
    RouteSpec("POST", "/v1/documents/uploads", W, REQ,
              summary="Start a presigned upload"),
    RouteSpec("GET", "/v1/documents/{document_id}", W, summary="Get a document"),
    RouteSpec("DELETE", "/v1/documents/{document_id}", W, summary="Delete a document"),
    RouteSpec("POST", "/v1/documents/{document_id}/complete", W,
              summary="Complete a presigned upload"),
    RouteSpec("GET", "/v1/documents/{document_id}/content", W,
              summary="Download a document (a redirect to S3)"),
    # Conversations.
    RouteSpec("POST", "/v1/conversations", C, REQ, summary="Create a conversation"),
    RouteSpec("GET", "/v1/conversations", C, summary="List conversations"),
    RouteSpec("GET", "/v1/conversations/{conversation_id}", C,
              summary="Get a conversation with a page of its messages"),
    RouteSpec("PATCH", "/v1/conversations/{conversation_id}", C, REQ,
              summary="Rename a conversation"),
    RouteSpec("DELETE", "/v1/conversations/{conversation_id}", C,
              summary="Delete a conversation"),
    # Usage.
    RouteSpec("GET", "/v1/usage", C, summary="Usage and cost of the tenant"),
    # Admin: tenants, keys and limits.
    RouteSpec("POST", "/v1/admin/tenants", C, REQ, admin=True, summary="Create a tenant"),
    RouteSpec("GET", "/v1/admin/tenants", C, admin=True, summary="List tenants"),
    RouteSpec("GET", "/v1/admin/tenants/{tenant_id}", C, admin=True, summary="Get a tenant"),
    RouteSpec("PATCH", "/v1/admin/tenants/{tenant_id}", C, REQ, admin=True,
              summary="Change a tenant's name or limits"),
    RouteSpec("POST", "/v1/admin/tenants/{tenant_id}/keys", C, REQ, admin=True,
              summary="Create a key"),
    RouteSpec("GET", "/v1/admin/tenants/{tenant_id}/keys", C, admin=True,
              summary="List a tenant's keys"),
    RouteSpec("GET", "/v1/admin/tenants/{tenant_id}/keys/{key_id}", C, admin=True,
              summary="Get a key"),
    RouteSpec("POST", "/v1/admin/tenants/{tenant_id}/keys/{key_id}/revoke", C, admin=True,
              summary="Revoke a key"),
    RouteSpec("POST", "/v1/admin/tenants/{tenant_id}/keys/{key_id}/rotate", C, admin=True,
              summary="Rotate a key"),
    # The API's description, without a key: answered by both front doors.
    RouteSpec("GET", "/v1/openapi.json", C, public=True,
              summary="This API's OpenAPI 3.1 contract"),
    RouteSpec("GET", "/docs", C, public=True,
              summary="The API reference, rendered from the contract (no CDN)"),
    RouteSpec("GET", "/docs/{asset}", C, public=True,
              summary="A file of the API reference page"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Match:
    """What a request's method and path found in the table."""

    route: RouteSpec | None  # None: no route of this method (see `allowed`)
    params: dict[str, str]
    allowed: tuple[str, ...]  # the methods the path has; empty for an unknown path


_BY_PATH: dict[str, list[RouteSpec]] = {}
for _route in ROUTES:
    _BY_PATH.setdefault(_route.path, []).append(_route)
_PATHS: tuple[tuple[RouteSpec, tuple[RouteSpec, ...]], ...] = tuple(
    (routes[0], tuple(routes)) for routes in _BY_PATH.values()
)


def match(method: str, path: str) -> Match:
    """The route for `method` and `path`; with none, the methods `path` allows."""
    for first, routes in _PATHS:
        params = first.match(path)
        if params is None:
            continue
        for route in routes:
            if route.method == method:
                return Match(route, params, tuple(r.method for r in routes))
        return Match(None, params, tuple(r.method for r in routes))
    return Match(None, {}, ())


def template(method: str, path: str) -> str | None:
    """The template of the route `method path` is served by (None: no route), what logs and
    metrics name a request by. A path without parameters is found in one dict lookup."""
    exact = _EXACT.get((method, path))
    if exact is not None:
        return exact
    route = match(method, path).route
    return None if route is None else route.path


_EXACT = {(r.method, r.path): r.path for r in ROUTES if not r.params}


def paths() -> tuple[str, ...]:
    """Every path template, each once, in table order."""
    return tuple(_BY_PATH)


def routes_of(owner: Owner) -> tuple[RouteSpec, ...]:
    return tuple(r for r in ROUTES if r.owner is owner)


def allowed_text(methods: tuple[str, ...]) -> str:
    """`GET or POST`, as a 405's message names them."""
    return " or ".join(methods)
