"""The gateway Lambda: the control plane behind API Gateway (REST, Lambda proxy integration).

API Gateway sends it only the `CONTROL` routes of the route table
(`services/frontdoor/routes.py`): conversations, run reads, usage and the admin API, short
DynamoDB work. AI work goes from API Gateway straight to the worker through the private
integration, streamed, behind the Lambda authorizer (`authorizer.py`): this function never
calls the worker and never waits on a model.

Its routing, 404s and 405s come from the table: `HANDLERS` has one function per `CONTROL`
route, keyed by the table's method and path (registering one the table does not declare
as `CONTROL` fails at import), and a request is matched with `routes.match`. A `WORKER`
route reaching it means API Gateway's routing is wrong: it says so, as a 500.

It authenticates the caller's API key itself (the admin key on admin routes), with the
same 5 s key cache as every component. It imports no provider SDK, and builds its clients
on the first invocation, not at import.

Every invocation is one observed call (`services.telemetry`): its correlation id (the
client's sane `x-request-id`, else API Gateway's `requestId`) in every log line and in the
answer's `x-request-id`, one JSON access line, and its metrics as one EMF line at the end.
The logs and metrics are written with the standard library and orjson, in the format the
worker writes, rather than by Powertools Logger and Metrics (the README says why).
`/health` and `/ready` (liveness; the table answers) are answered here: API Gateway's
catch-all sends every path outside the route table to this function.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from services import metrics_names
from services.contract import public
from services.conversations.store import ConversationSettings
from services.errors import (
    APIError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    envelope_for,
)
from services.frontdoor import routes
from services.frontdoor.prefix import stage_prefix
from services.frontdoor.settings import FrontDoorSettings
from services.runs.store import RunStore
from services.telemetry.access import finish, read_error
from services.telemetry.context import CURRENT, begin
from services.telemetry.function import FunctionTelemetry
from services.telemetry.ids import REQUEST_ID_HEADER, choose
from services.tenancy.auth import Authenticator, Principal
from services.tenancy.keys import KeyStore
from services.web.body import json_object, optional_json_object
from services.web.head import check_proxy_event
from services.web.params import page_limit
from services.web.ready import TableProbe

if TYPE_CHECKING:
    # Imported where first used: a cold start loads only what every request needs.
    from services.conversations.api import ConversationsAPI
    from services.tenancy.admin_api import AdminAPI
    from services.usage.report import UsageReports

log = logging.getLogger("switchboard.gateway")
_SHOWN = 200  # characters of a path an error message repeats


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: FrontDoorSettings
    authenticator: Authenticator
    runs: RunStore


_runtime: Runtime | None = None


def runtime() -> Runtime:
    """The clients, built once per execution environment on first use."""
    global _runtime
    if _runtime is None:
        import boto3

        settings = FrontDoorSettings.from_env(os.environ)
        dynamodb = boto3.client("dynamodb")
        keys = KeyStore(dynamodb, settings.table)
        _runtime = Runtime(
            settings=settings,
            authenticator=Authenticator(keys, cache_seconds=settings.key_cache_seconds),
            runs=RunStore(dynamodb, settings.table),
        )
    return _runtime


@dataclass
class Call:
    """One request, as a handler reads it from API Gateway's proxy event."""

    event: Mapping[str, Any]
    params: dict[str, str]
    rt: Runtime
    headers: dict[str, str] = field(init=False)
    _principal: Principal | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.headers = {k.lower(): v for k, v in (self.event.get("headers") or {}).items()}

    @property
    def principal(self) -> Principal:
        """The caller, from its API key (authenticated once per call)."""
        if self._principal is None:
            self._principal = self.rt.authenticator.authenticate(self.headers)
        return self._principal

    @property
    def query(self) -> dict[str, str]:
        return dict(self.event.get("queryStringParameters") or {})

    @property
    def prefix(self) -> str:
        """The stage's path (`/api`), for the URLs in an answer: the request's full path
        less the path the API itself sees."""
        full = (self.event.get("requestContext") or {}).get("path") or ""
        path = self.event.get("path") or ""
        return stage_prefix(full[: -len(path)]) if path and full.endswith(path) else ""

    def body(self, limit: int | None = None) -> bytes:
        """The request body, refused with 413 over `limit` (default: `max_request_bytes`)."""
        raw = self.event.get("body") or ""
        if self.event.get("isBase64Encoded"):
            try:
                data = base64.b64decode(raw)
            except (binascii.Error, ValueError):
                raise InvalidRequest("The request body is not valid base64.") from None
        else:
            data = raw.encode() if isinstance(raw, str) else bytes(raw)
        limit = limit or self.rt.settings.max_request_bytes
        if len(data) > limit:
            raise PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
        return data

    def json_object(self, *, optional: bool = False) -> Any:
        """The body as a JSON object, by the strict parser every door uses (depth, UTF-8,
        surrogates: services/web/body.py); `{}` for an empty body when `optional`."""
        data = self.body()
        return optional_json_object(data) if optional else json_object(data)


Handler = Callable[[Call], dict[str, Any]]
HANDLERS: dict[tuple[str, str], Handler] = {}


def control(method: str, path: str) -> Callable[[Handler], Handler]:
    """Register the handler of the table's `CONTROL` route `method path`."""
    declared = next((r for r in routes.ROUTES if (r.method, r.path) == (method, path)), None)
    if declared is None or declared.owner is not routes.Owner.CONTROL:
        raise LookupError(f"{method} {path} is not a control-plane route of the route table")

    def register(handler: Handler) -> Handler:
        HANDLERS[(method, path)] = handler
        return handler

    return register


def answer(
    body: Any,
    status: int = 200,
    *,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway proxy result."""
    text = body if isinstance(body, str) else json.dumps(body)
    return {
        "statusCode": status,
        "headers": {"content-type": content_type, **(headers or {})},
        "body": text,
        "isBase64Encoded": False,
    }


# -- runs (read from the table; created, followed and cancelled on the worker) ----------


@control("GET", "/v1/runs")
def list_runs(call: Call) -> dict[str, Any]:
    principal, query = call.principal, call.query
    limit = page_limit(query.get("limit"))
    page, cursor = call.rt.runs.page(principal.tenant_id, limit=limit, cursor=query.get("after"))
    return answer(
        {
            "object": "list",
            "data": [r.public(call.prefix) for r in page],
            "has_more": cursor is not None,
            "next_cursor": cursor,
        }
    )


@control("GET", "/v1/runs/{run_id}")
def get_run(call: Call) -> dict[str, Any]:
    run = call.rt.runs.require(call.principal.tenant_id, call.params["run_id"])
    return answer(run.public(call.prefix))


# -- conversations (chat turns in a conversation go to the worker) ---------------------

_conversations: ConversationsAPI | None = None


def conversations() -> ConversationsAPI:
    """The conversations API on the state table, built on first use."""
    global _conversations
    if _conversations is None:
        from services.conversations.api import ConversationsAPI

        table = runtime().settings.table
        _conversations = ConversationsAPI(ConversationSettings.from_env(os.environ).store(table))
    return _conversations


@control("POST", "/v1/conversations")
def create_conversation(call: Call) -> dict[str, Any]:
    return answer(conversations().create(call.principal, call.json_object(optional=True)))


@control("GET", "/v1/conversations")
def list_conversations(call: Call) -> dict[str, Any]:
    return answer(conversations().list(call.principal, call.query))


@control("GET", "/v1/conversations/{conversation_id}")
def get_conversation(call: Call) -> dict[str, Any]:
    cid = call.params["conversation_id"]
    return answer(conversations().get(call.principal, cid, call.query))


@control("PATCH", "/v1/conversations/{conversation_id}")
def rename_conversation(call: Call) -> dict[str, Any]:
    cid, principal = call.params["conversation_id"], call.principal
    return answer(conversations().rename(principal, cid, call.json_object(optional=True)))


@control("DELETE", "/v1/conversations/{conversation_id}")
def delete_conversation(call: Call) -> dict[str, Any]:
    return answer(conversations().delete(call.principal, call.params["conversation_id"]))


# -- usage and cost (services/usage/report.py): the caller's tenant only ----------------

_usage: UsageReports | None = None


@control("GET", "/v1/usage")
def usage_report(call: Call) -> dict[str, Any]:
    global _usage
    principal = call.principal
    if _usage is None:
        from services.usage.report import reports_for_table

        _usage = reports_for_table(call.rt.settings.table)
    content_type, body = _usage.answer(principal.tenant_id, call.query, call.headers.get("accept"))
    return answer(body, content_type=content_type)


# -- the admin API (services/tenancy/admin_api.py): the admin key only -----------------

_admin_api: AdminAPI | None = None


def admin(call: Call) -> AdminAPI:
    """The admin API, built on first use, once the caller has shown the admin key."""
    global _admin_api
    if _admin_api is None:
        import boto3

        from services.tenancy.admin_api import AdminAPI, AdminCredential
        from services.tenancy.tenants import TenantStore

        rt = call.rt
        dynamodb, table = boto3.client("dynamodb"), rt.settings.table
        credential = AdminCredential(
            rt.settings.admin_key,
            rt.settings.admin_key_secret_arn,
            lambda: boto3.client("secretsmanager"),
        )
        _admin_api = AdminAPI(
            TenantStore(dynamodb, table), KeyStore(dynamodb, table), credential, rt.authenticator
        )
    _admin_api.authorize(call.headers)
    return _admin_api


@control("POST", "/v1/admin/tenants")
def admin_create_tenant(call: Call) -> dict[str, Any]:
    api = admin(call)
    return answer(api.create_tenant(call.json_object(optional=True)))


@control("GET", "/v1/admin/tenants")
def admin_list_tenants(call: Call) -> dict[str, Any]:
    return answer(admin(call).list_tenants(call.query))


@control("GET", "/v1/admin/tenants/{tenant_id}")
def admin_get_tenant(call: Call) -> dict[str, Any]:
    return answer(admin(call).get_tenant(call.params["tenant_id"]))


@control("PATCH", "/v1/admin/tenants/{tenant_id}")
def admin_update_tenant(call: Call) -> dict[str, Any]:
    api = admin(call)
    return answer(api.update_tenant(call.params["tenant_id"], call.json_object(optional=True)))


@control("POST", "/v1/admin/tenants/{tenant_id}/keys")
def admin_create_key(call: Call) -> dict[str, Any]:
    api = admin(call)
    return answer(api.create_key(call.params["tenant_id"], call.json_object(optional=True)))


@control("GET", "/v1/admin/tenants/{tenant_id}/keys")
def admin_list_keys(call: Call) -> dict[str, Any]:
    return answer(admin(call).list_keys(call.params["tenant_id"]))


@control("GET", "/v1/admin/tenants/{tenant_id}/keys/{key_id}")
def admin_get_key(call: Call) -> dict[str, Any]:
    return answer(admin(call).get_key(call.params["tenant_id"], call.params["key_id"]))


@control("POST", "/v1/admin/tenants/{tenant_id}/keys/{key_id}/revoke")
def admin_revoke_key(call: Call) -> dict[str, Any]:
    return answer(admin(call).revoke_key(call.params["tenant_id"], call.params["key_id"]))


@control("POST", "/v1/admin/tenants/{tenant_id}/keys/{key_id}/rotate")
def admin_rotate_key(call: Call) -> dict[str, Any]:
    return answer(admin(call).rotate_key(call.params["tenant_id"], call.params["key_id"]))


# -- the API's description and the web console: no key needed to load them -----------


def describe_api(call: Call) -> dict[str, Any]:
    """The contract and its reference page (services/contract/public.py)."""
    path = str(call.event.get("path") or "")
    found = public.answer(path)
    if found is None:
        raise NotFound(f"Unknown request URL: GET {path[:_SHOWN]}.")
    return answer(found.body, content_type=found.content_type, headers=found.headers)


for _public in (r for r in routes.ROUTES if r.public):
    control(_public.method, _public.path)(describe_api)


def console_file(event: Mapping[str, Any]) -> dict[str, Any]:
    """The web console (console/), served from the API's own origin: no key to load it,
    it signs in with one in the browser. Not a table route: API Gateway's catch-all sends
    it here."""
    from console import serve

    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    found = serve(str(event.get("path") or ""), str(event.get("httpMethod") or ""),
                  headers.get("if-none-match"))  # fmt: skip
    return {
        "statusCode": found.status,
        "headers": {"content-type": found.content_type, **found.headers},
        "body": found.body.decode(),
        "isBase64Encoded": False,
    }


# -- dispatch --------------------------------------------------------------------------


def route_of(event: Mapping[str, Any]) -> tuple[routes.RouteSpec, dict[str, str]]:
    """The table route of a proxy event: by its API Gateway resource (a table path, as the
    stack declares them) or else by its path; a 405 or 404 from the table otherwise."""
    method = str(event.get("httpMethod") or "")
    resource = event.get("resource")
    for spec in routes.ROUTES:
        if spec.path == resource and spec.method == method:
            return spec, dict(event.get("pathParameters") or {})
    path = str(event.get("path") or "")
    found = routes.match(method, path)
    if found.route is not None:
        return found.route, found.params
    shown = path if len(path) <= _SHOWN else path[: _SHOWN - 1] + "…"
    if found.allowed:
        raise MethodNotAllowed(
            f"Method {method} is not allowed on {shown}; use {routes.allowed_text(found.allowed)}.",
            headers={"allow": ", ".join(found.allowed)},
        )
    raise NotFound(f"Unknown request URL: {method} {shown}.")


TELEMETRY = FunctionTelemetry(metrics_names.GATEWAY_SERVICE, routes.paths)


def header(event: Mapping[str, Any], name: str) -> str | None:
    """A request header of a proxy event, by its lower-case name."""
    for key, value in (event.get("headers") or {}).items():
        if str(key).lower() == name:
            return str(value)
    return None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    output, measured = TELEMETRY.get()
    method, path = str(event.get("httpMethod") or ""), str(event.get("path") or "")
    edge = (event.get("requestContext") or {}).get("requestId")
    request_id = choose(header(event, REQUEST_ID_HEADER), edge)
    call, token = begin(
        request_id, method, routes.template(method, path), TELEMETRY.invocation(context)
    )
    status = 500
    try:
        result = _answer(event, method, path)
        status = int(result.get("statusCode") or 500)
        result.setdefault("headers", {})[REQUEST_ID_HEADER] = request_id
        if status >= 400:
            read_error(call, result.get("body") or "")
        return result
    finally:
        finish(output, call, status, path)
        output.metrics(measured.documents())
        CURRENT.reset(token)


_HEALTH_PATHS = ("/health", "/ready")
_probe: TableProbe | None = None


def health(path: str) -> dict[str, Any]:
    """Liveness (`/health`: the function runs) and readiness (`/ready`: the table answers)."""
    global _probe
    if path == "/health":
        return answer({"status": "ok"})
    if _probe is None:
        _probe = TableProbe(runtime().settings.table)
    problem = _probe.problem()
    if problem is not None:
        raise ServiceUnavailable(f"Not ready: {problem}.", code="not_ready")
    return answer({"status": "ready"})


def _answer(event: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    try:
        check_proxy_event(event)  # API Gateway's own limits on a request's head
        if path in _HEALTH_PATHS and method in ("GET", "HEAD"):
            return health(path)
        if path == "/console" or path.startswith("/console/"):
            return console_file(event)
        spec, params = route_of(event)
        serve = HANDLERS.get((spec.method, spec.path))
        if serve is None:
            raise APIError(
                f"{spec.method} {spec.path} is AI work, served by the worker through API "
                "Gateway's private integration; the gateway function answers only the "
                "control plane. The API's routing is misconfigured.",
                code="route_not_served_here",
            )
        return serve(Call(event, params, runtime()))
    except APIError as error:
        return _error(error, path)
    except Exception:
        log.exception("unhandled error")
        return _error(APIError("The server had an error while processing your request."), path)


def _error(error: APIError, path: str) -> dict[str, Any]:
    """`error` in the envelope `path`'s clients read (Anthropic's on /v1/messages)."""
    return answer(envelope_for(path, error), error.status, headers=error.headers)
