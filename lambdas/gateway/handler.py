"""The gateway Lambda: the front door behind API Gateway (REST, Lambda proxy integration).

It authenticates the API key, scopes the call to the key's tenant, checks the body, and
forwards AI work to the worker with a deadline below API Gateway's integration timeout.
It imports no provider SDK, and builds its clients on the first invocation, not at import.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import os
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler.api_gateway import APIGatewayRestResolver, Response

from services.conversations.api import ConversationsAPI
from services.conversations.store import CONVERSATION_HEADER, TRIMMED_HEADER, ConversationSettings
from services.errors import APIError, MethodNotAllowed, NotFound, PayloadTooLarge
from services.frontdoor.settings import FrontDoorSettings
from services.frontdoor.worker_client import WorkerClient
from services.runs.sse import parse_after, sse_frame
from services.runs.store import RunStore
from services.tenancy.auth import Authenticator, Principal, internal_headers
from services.tenancy.keys import KeyStore
from services.tenancy.limits import RESPONSE_HEADERS as LIMIT_HEADERS
from services.web.body import json_object
from services.web.head import check_proxy_event
from services.web.params import forwarded_headers, page_limit

if TYPE_CHECKING:
    # Imported where first used: a cold start loads only what every request needs.
    from services.tenancy.admin_api import AdminAPI
    from services.usage.report import UsageReports

DEADLINE_HEADER = "x-switchboard-deadline-ms"
_RELAYED_HEADERS = (
    "location",
    "retry-after",
    CONVERSATION_HEADER,
    TRIMMED_HEADER,
    *LIMIT_HEADERS,
)
# Leave the handler this much of the Lambda's remaining time to answer after a worker timeout.
_DEADLINE_MARGIN_SECONDS = 0.5

app = APIGatewayRestResolver()
log = logging.getLogger("switchboard.gateway")


def _head_limits(resolver: APIGatewayRestResolver, next_middleware: Any) -> Response[Any]:
    check_proxy_event(resolver.current_event.raw_event)  # services/web/head.py
    return next_middleware(resolver)  # type: ignore[no-any-return]


app.use(middlewares=[_head_limits])


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: FrontDoorSettings
    authenticator: Authenticator
    worker: WorkerClient
    runs: RunStore
    internal_token: str


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
            worker=WorkerClient(settings.worker_url),
            runs=RunStore(dynamodb, settings.table),
            internal_token=settings.resolve_internal_token(lambda: boto3.client("secretsmanager")),
        )
    return _runtime


def _headers() -> dict[str, str]:
    return {k.lower(): v for k, v in (app.current_event.headers or {}).items()}


def _authenticate(rt: Runtime) -> Principal:
    # Clients may not vouch for themselves: the internal credential is only for the worker.
    headers = {k: v for k, v in _headers().items() if not k.startswith("x-switchboard-")}
    return rt.authenticator.authenticate(headers)


def _body(rt: Runtime, limit: int | None = None) -> bytes:
    """The request body, refused with 413 over `limit` (default: `max_request_bytes`)."""
    event = app.current_event
    # The bytes as sent: a body that is not UTF-8 comes base64-encoded, and is the parser's
    # 400 (services/web/body.py), not a decoding error here.
    if event.is_base64_encoded:
        data = base64.b64decode(event.body or "")
    else:
        data = (event.body or "").encode("utf-8", "surrogatepass")
    limit = limit or rt.settings.max_request_bytes
    if len(data) > limit:
        raise PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
    return data


def _json_object(data: bytes) -> dict[str, Any]:
    return json_object(data)  # strict: depth, UTF-8, lone surrogates (services/web/body.py)


def _timeout(rt: Runtime) -> float:
    remaining = app.lambda_context.get_remaining_time_in_millis() / 1000 - _DEADLINE_MARGIN_SECONDS
    return max(0.1, min(rt.settings.forward_timeout_seconds, remaining))


def _forward(
    rt: Runtime,
    principal: Principal,
    method: str,
    path: str,
    body: bytes | None,
    *,
    sync: bool = False,
) -> Response[Any]:
    """Call the worker. A `sync` call carries a deadline, past which the worker answers
    202 with a run instead of letting API Gateway's integration timeout answer 504."""
    headers = internal_headers(principal, rt.internal_token)
    if body is not None:
        headers["content-type"] = "application/json"
    headers.update(forwarded_headers(_headers()))
    timeout = _timeout(rt)
    if sync:
        deadline = min(rt.settings.sync_deadline_seconds, timeout - _DEADLINE_MARGIN_SECONDS)
        headers[DEADLINE_HEADER] = str(max(50, int(deadline * 1000)))
    result = rt.worker.request(method, path, headers=headers, body=body, timeout=timeout)
    relayed = {k: v for k, v in result.headers.items() if k in _RELAYED_HEADERS}
    return Response(
        status_code=result.status,
        content_type=result.headers.get("content-type", "application/json"),
        body=result.body.decode(),
        headers=relayed or None,
    )


@app.post("/v1/chat/completions")
def chat_completions() -> Response[Any]:
    rt = runtime()
    principal = _authenticate(rt)
    data = _body(rt)
    # A streamed answer comes back whole: a buffered Lambda cannot stream through API
    # Gateway. Clients that want tokens as they are made use the stream front door.
    body = _json_object(data)
    return _forward(
        rt, principal, "POST", "/v1/chat/completions", data, sync=not body.get("stream")
    )


@app.post("/v1/messages")
def anthropic_messages() -> Response[Any]:
    """Anthropic's Messages API, relayed to the worker (which validates the body); a
    streamed answer comes back whole, as for chat completions."""
    rt = runtime()
    principal = _authenticate(rt)
    data = _body(rt)
    _json_object(data)
    return _forward(rt, principal, "POST", "/v1/messages", data)


@app.get("/v1/models")
def list_models() -> Response[Any]:
    rt = runtime()
    return _forward(rt, _authenticate(rt), "GET", "/v1/models", None)


@app.post("/v1/runs")
def create_run() -> Response[Any]:
    rt = runtime()
    principal = _authenticate(rt)
    data = _body(rt)
    body = _json_object(data)
    return _forward(rt, principal, "POST", "/v1/runs", data, sync=not body.get("background"))


@app.get("/v1/runs")
def list_runs() -> Response[Any]:
    rt = runtime()
    principal = _authenticate(rt)
    query = app.current_event.query_string_parameters or {}
    limit = page_limit(query.get("limit"))
    page, cursor = rt.runs.page(principal.tenant_id, limit=limit, cursor=query.get("after"))
    return _json(
        {
            "object": "list",
            "data": [r.public() for r in page],
            "has_more": cursor is not None,
            "next_cursor": cursor,
        }
    )


@app.get("/v1/runs/<run_id>")
def get_run(run_id: str) -> Response[Any]:
    rt = runtime()
    principal = _authenticate(rt)
    return _json(rt.runs.require(principal.tenant_id, run_id).public())


@app.post("/v1/runs/<run_id>/cancel")
def cancel_run(run_id: str) -> Response[Any]:
    rt = runtime()
    # The worker cancels it, and tells the worker that owns it to stop at once.
    return _forward(rt, _authenticate(rt), "POST", f"/v1/runs/{run_id}/cancel", None)


@app.post("/v1/runs/<run_id>/input")
def run_input(run_id: str) -> Response[Any]:
    """A person's answer to a run awaiting input: the worker checks it against the
    question, stores it under a condition (one answer wins) and queues the run again."""
    rt = runtime()
    principal = _authenticate(rt)
    data = _body(rt)
    _json_object(data)
    return _forward(rt, principal, "POST", f"/v1/runs/{run_id}/input", data)


@app.get("/v1/agents")
def list_agents() -> Response[Any]:
    rt = runtime()
    return _forward(rt, _authenticate(rt), "GET", "/v1/agents", None)


@app.get("/v1/agents/<name>")
def get_agent(name: str) -> Response[Any]:
    rt = runtime()
    return _forward(rt, _authenticate(rt), "GET", f"/v1/agents/{name}", None)


# Tools (containers/worker/tools_api.py). A tool runs synchronously: with the deadline, the
# worker answers 504 `tool_timeout` before API Gateway's wall would; the stream front door
# sets no deadline, so a long tool goes through it.
@app.get("/v1/tools")
def list_tools() -> Response[Any]:
    rt = runtime()
    return _forward(rt, _authenticate(rt), "GET", "/v1/tools", None)


@app.get("/v1/tools/<name>")
def get_tool(name: str) -> Response[Any]:
    rt = runtime()
    return _forward(rt, _authenticate(rt), "GET", f"/v1/tools/{name}", None)


@app.post("/v1/tools/<name>")
def run_tool(name: str) -> Response[Any]:
    rt = runtime()
    principal = _authenticate(rt)
    data = _body(rt)
    _json_object(data)
    return _forward(rt, principal, "POST", f"/v1/tools/{name}", data, sync=True)


# Documents and embeddings (containers/worker/documents_api.py). A file comes in a JSON body
# (base64), which API Gateway passes through unchanged; its larger body limit is the
# documents' own (DocumentSettings.max_body_bytes), below Lambda's 6 MB payload. Large files
# go straight to S3 through a presigned URL, and downloads are redirects to S3.
@functools.cache
def _document_body_limit() -> int:
    from services.documents.store import DocumentSettings

    return DocumentSettings.from_env(os.environ).max_body_bytes


def _with_query(path: str) -> str:
    query = _query()
    return f"{path}?{urllib.parse.urlencode(query)}" if query else path


@app.post("/v1/documents")
def upload_document() -> Response[Any]:
    rt = runtime()
    principal = _authenticate(rt)
    data = _body(rt, _document_body_limit())
    _json_object(data)
    return _forward(rt, principal, "POST", "/v1/documents", data)


@app.get("/v1/documents")
def list_documents() -> Response[Any]:
    rt = runtime()
    return _forward(rt, _authenticate(rt), "GET", _with_query("/v1/documents"), None)


@app.post("/v1/documents/uploads")
def create_document_upload() -> Response[Any]:
    rt = runtime()
    principal = _authenticate(rt)
    data = _body(rt)
    _json_object(data)
    return _forward(rt, principal, "POST", "/v1/documents/uploads", data)


@app.get("/v1/documents/<document_id>")
def get_document(document_id: str) -> Response[Any]:
    rt = runtime()
    return _forward(rt, _authenticate(rt), "GET", f"/v1/documents/{document_id}", None)


@app.delete("/v1/documents/<document_id>")
def delete_document(document_id: str) -> Response[Any]:
    rt = runtime()
    return _forward(rt, _authenticate(rt), "DELETE", f"/v1/documents/{document_id}", None)


@app.post("/v1/documents/<document_id>/complete")
def complete_document(document_id: str) -> Response[Any]:
    rt = runtime()
    path = f"/v1/documents/{document_id}/complete"
    return _forward(rt, _authenticate(rt), "POST", path, None)


@app.get("/v1/documents/<document_id>/content")
def document_content(document_id: str) -> Response[Any]:
    rt = runtime()  # the worker answers with a redirect to S3, relayed as it is
    path = f"/v1/documents/{document_id}/content"
    return _forward(rt, _authenticate(rt), "GET", path, None)


@app.post("/v1/embeddings")
def embeddings() -> Response[Any]:
    rt = runtime()
    principal = _authenticate(rt)
    data = _body(rt)
    _json_object(data)
    return _forward(rt, principal, "POST", "/v1/embeddings", data)


@app.get("/v1/runs/<run_id>/events")
def run_events(run_id: str) -> Response[Any]:
    """The events persisted so far, as SSE, in one response: API Gateway cannot hold a
    stream open. Follow a live run through the stream front door, or poll with
    Last-Event-ID."""
    rt = runtime()
    principal = _authenticate(rt)
    event = app.current_event
    after = parse_after(
        _headers().get("last-event-id"), (event.query_string_parameters or {}).get("after")
    )
    run = rt.runs.require(principal.tenant_id, run_id)
    frames = b"".join(sse_frame(e) for e in rt.runs.events(run, after))
    return Response(
        status_code=200,
        content_type="text/event-stream",
        body=frames.decode(),
        headers={"cache-control": "no-cache"},
    )


def _json(body: Any) -> Response[Any]:
    return Response(status_code=200, content_type="application/json", body=json.dumps(body))


_ROUTES = {
    "/v1/chat/completions": "POST",
    "/v1/messages": "POST",
    "/v1/models": "GET",
    "/v1/runs": "GET or POST",
    "/v1/agents": "GET",
    "/v1/tools": "GET",
    "/v1/documents": "GET or POST",
    "/v1/documents/uploads": "POST",
    "/v1/embeddings": "POST",
    "/v1/conversations": "GET or POST",
    "/v1/usage": "GET",
    "/v1/admin/tenants": "GET or POST",
}


# The Conversations API is answered here, straight from DynamoDB (control plane); only chat
# turns in a conversation go to the worker.
_conversations: ConversationsAPI | None = None


def conversations() -> ConversationsAPI:
    """The conversations API on the state table, built on first use."""
    global _conversations
    if _conversations is None:
        table = runtime().settings.table
        _conversations = ConversationsAPI(ConversationSettings.from_env(os.environ).store(table))
    return _conversations


def _optional_json(rt: Runtime) -> Any:
    data = _body(rt)
    return _json_object(data) if data else {}


def _answer(body: dict[str, Any]) -> Response[Any]:
    return Response(status_code=200, content_type="application/json", body=json.dumps(body))


def _query() -> dict[str, str]:
    return dict(app.current_event.query_string_parameters or {})


@app.post("/v1/conversations")
def create_conversation() -> Response[Any]:
    rt = runtime()
    principal = _authenticate(rt)
    return _answer(conversations().create(principal, _optional_json(rt)))


@app.get("/v1/conversations")
def list_conversations() -> Response[Any]:
    principal = _authenticate(runtime())
    return _answer(conversations().list(principal, _query()))


@app.get("/v1/conversations/<conversation_id>")
def get_conversation(conversation_id: str) -> Response[Any]:
    principal = _authenticate(runtime())
    return _answer(conversations().get(principal, conversation_id, _query()))


@app.patch("/v1/conversations/<conversation_id>")
def rename_conversation(conversation_id: str) -> Response[Any]:
    rt = runtime()
    principal = _authenticate(rt)
    return _answer(conversations().rename(principal, conversation_id, _optional_json(rt)))


@app.delete("/v1/conversations/<conversation_id>")
def delete_conversation(conversation_id: str) -> Response[Any]:
    principal = _authenticate(runtime())
    return _answer(conversations().delete(principal, conversation_id))


# The admin API (services/tenancy/admin_api.py): tenants, keys and limits, for the admin key only.
_admin_api: AdminAPI | None = None


def admin() -> AdminAPI:
    """The admin API, built on first use, once the caller has shown the admin key."""
    global _admin_api
    if _admin_api is None:
        import boto3

        from services.tenancy.admin_api import AdminAPI, AdminCredential
        from services.tenancy.tenants import TenantStore

        rt = runtime()
        dynamodb, table = boto3.client("dynamodb"), rt.settings.table
        credential = AdminCredential(
            rt.settings.admin_key,
            rt.settings.admin_key_secret_arn,
            lambda: boto3.client("secretsmanager"),
        )
        _admin_api = AdminAPI(
            TenantStore(dynamodb, table), KeyStore(dynamodb, table), credential, rt.authenticator
        )
    _admin_api.authorize(_headers())
    return _admin_api


@app.post("/v1/admin/tenants")
def admin_create_tenant() -> Response[Any]:
    api = admin()
    return _answer(api.create_tenant(_optional_json(runtime())))


@app.get("/v1/admin/tenants")
def admin_list_tenants() -> Response[Any]:
    return _answer(admin().list_tenants(_query()))


@app.get("/v1/admin/tenants/<tenant_id>")
def admin_get_tenant(tenant_id: str) -> Response[Any]:
    return _answer(admin().get_tenant(tenant_id))


@app.patch("/v1/admin/tenants/<tenant_id>")
def admin_update_tenant(tenant_id: str) -> Response[Any]:
    api = admin()
    return _answer(api.update_tenant(tenant_id, _optional_json(runtime())))


@app.post("/v1/admin/tenants/<tenant_id>/keys")
def admin_create_key(tenant_id: str) -> Response[Any]:
    api = admin()
    return _answer(api.create_key(tenant_id, _optional_json(runtime())))


@app.get("/v1/admin/tenants/<tenant_id>/keys")
def admin_list_keys(tenant_id: str) -> Response[Any]:
    return _answer(admin().list_keys(tenant_id))


@app.get("/v1/admin/tenants/<tenant_id>/keys/<key_id>")
def admin_get_key(tenant_id: str, key_id: str) -> Response[Any]:
    return _answer(admin().get_key(tenant_id, key_id))


@app.post("/v1/admin/tenants/<tenant_id>/keys/<key_id>/revoke")
def admin_revoke_key(tenant_id: str, key_id: str) -> Response[Any]:
    return _answer(admin().revoke_key(tenant_id, key_id))


@app.post("/v1/admin/tenants/<tenant_id>/keys/<key_id>/rotate")
def admin_rotate_key(tenant_id: str, key_id: str) -> Response[Any]:
    return _answer(admin().rotate_key(tenant_id, key_id))


# Usage and cost (services/usage/report.py): the caller's tenant only, from DynamoDB.
_usage: UsageReports | None = None


@app.get("/v1/usage")
def usage_report() -> Response[Any]:
    global _usage
    rt = runtime()
    principal = _authenticate(rt)
    if _usage is None:
        from services.usage.report import reports_for_table

        _usage = reports_for_table(rt.settings.table)
    content_type, body = _usage.answer(principal.tenant_id, _query(), _headers().get("accept"))
    return Response(status_code=200, content_type=content_type, body=body)


@app.not_found
def not_found(exc: Exception) -> Response[Any]:
    event = app.current_event
    allowed = _ROUTES.get(event.path)
    if allowed is not None:
        error: APIError = MethodNotAllowed(
            f"Method {event.http_method} is not allowed on {event.path}; use {allowed}."
        )
    else:
        error = NotFound(f"Unknown request URL: {event.http_method} {event.path}.")
    return _error(error)


def api_error(error: APIError) -> Response[Any]:
    return _error(error)


def unexpected(error: Exception) -> Response[Any]:
    log.exception("unhandled error")
    return _error(APIError("The server had an error while processing your request."))


# Registered by call, not as decorators: Powertools' decorator is untyped.
app.exception_handler(APIError)(api_error)
app.exception_handler(Exception)(unexpected)


def _error(error: APIError) -> Response[Any]:
    return Response(
        status_code=error.status,
        content_type="application/json",
        body=error.json().decode(),
        headers=error.headers or None,
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
