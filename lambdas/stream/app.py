"""The stream front door: an ASGI app run by the Lambda Web Adapter behind a Function URL
in RESPONSE_STREAM mode (`run.sh` starts it). It authenticates the API key like the
gateway and relays the worker's SSE chunk by chunk, never buffering a stream.

A Function URL cannot stream from inside a VPC, so this reaches the worker through its
load balancer with the internal credential.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from services.conversations.api import ConversationsAPI
from services.conversations.store import CONVERSATION_HEADER, TRIMMED_HEADER, ConversationSettings
from services.documents.store import DocumentSettings
from services.errors import GatewayTimeout, InvalidRequest, ServiceUnavailable
from services.frontdoor.settings import FrontDoorSettings
from services.tenancy.auth import Authenticator, Principal, internal_headers
from services.tenancy.keys import KeyStore
from services.tenancy.limits import RESPONSE_HEADERS as LIMIT_HEADERS
from services.usage.report import UsageReports, reports_for_table
from services.web.asgi import JSONBytesResponse, decode_json, install_error_handlers, read_body
from services.web.head import HeadLimits
from services.web.params import forwarded_headers
from services.web.sse import HEADERS as SSE_HEADERS

_RELAYED_HEADERS = (
    "content-type",
    "retry-after",
    "x-request-id",
    "location",
    CONVERSATION_HEADER,
    TRIMMED_HEADER,
    *LIMIT_HEADERS,
)


def create_app(
    settings: FrontDoorSettings | None = None,
    *,
    authenticator: Authenticator | None = None,
    internal_token: str | None = None,
) -> Starlette:
    settings = settings or FrontDoorSettings.from_env(os.environ)
    if authenticator is None or internal_token is None:
        import boto3

        if authenticator is None:
            keys = KeyStore(boto3.client("dynamodb"), settings.table)
            authenticator = Authenticator(keys, cache_seconds=settings.key_cache_seconds)
        if internal_token is None:
            internal_token = settings.resolve_internal_token(lambda: boto3.client("secretsmanager"))
    token = internal_token
    auth = authenticator
    client = httpx.AsyncClient(
        base_url=settings.worker_url,
        timeout=httpx.Timeout(connect=3.0, read=None, write=30.0, pool=5.0),
        limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
    )

    async def authenticate(request: Request) -> Principal:
        headers = {k: v for k, v in request.headers.items() if not k.startswith("x-switchboard-")}
        return await auth.authenticate_async(headers)

    async def relay(
        request: Request, principal: Principal, method: str, body: bytes | None
    ) -> Response:
        headers = internal_headers(principal, token)
        if body is not None:
            headers["content-type"] = "application/json"
        headers.update(forwarded_headers(request.headers))  # checked: a bad one is a 400
        upstream_request = client.build_request(
            method, request.url.path, params=request.query_params, headers=headers, content=body
        )
        try:
            upstream = await client.send(upstream_request, stream=True)
        except httpx.TimeoutException:
            raise GatewayTimeout("The AI worker did not answer in time.") from None
        except httpx.TransportError as exc:
            raise ServiceUnavailable(
                f"The AI worker is unreachable: {exc.__class__.__name__}."
            ) from None
        relayed = {k: v for k, v in upstream.headers.items() if k in _RELAYED_HEADERS}
        if upstream.headers.get("content-type", "").startswith("text/event-stream"):
            return StreamingResponse(
                _chunks(upstream),
                status_code=upstream.status_code,
                headers={**relayed, **SSE_HEADERS},
                background=BackgroundTask(upstream.aclose),
            )
        content = await upstream.aread()
        await upstream.aclose()
        return Response(content, status_code=upstream.status_code, headers=relayed)

    async def health(request: Request) -> Response:
        return JSONBytesResponse({"status": "ok"})

    async def chat_completions(request: Request) -> Response:
        principal = await authenticate(request)  # refuse before reading a stranger's body
        body = await read_body(request, settings.max_request_bytes)
        if not isinstance(decode_json(body), dict):
            raise InvalidRequest("The request body must be a JSON object.", code="invalid_body")
        return await relay(request, principal, "POST", body)

    async def list_models(request: Request) -> Response:
        return await relay(request, await authenticate(request), "GET", None)

    async def post_json(request: Request) -> Response:
        principal = await authenticate(request)
        body = await read_body(request, settings.max_request_bytes)
        if body and not isinstance(decode_json(body), dict):
            raise InvalidRequest("The request body must be a JSON object.", code="invalid_body")
        return await relay(request, principal, "POST", body or None)

    async def get(request: Request) -> Response:
        return await relay(request, await authenticate(request), "GET", None)

    conversation_settings = ConversationSettings.from_env(os.environ)

    @functools.cache
    def conversations() -> ConversationsAPI:
        """Built on first use, so a front door that serves no conversation needs no AWS."""
        return ConversationsAPI(conversation_settings.store(settings.table))

    async def json_body(request: Request) -> object:
        body = await read_body(request, settings.max_request_bytes)
        return decode_json(body) if body else {}

    # The Conversations API is answered here, from DynamoDB (the store is blocking, so it
    # runs in threads); only chat turns go to the worker.
    async def conversations_root(request: Request) -> Response:
        principal = await authenticate(request)
        api = conversations()
        if request.method == "POST":
            body = await json_body(request)
            return JSONBytesResponse(await asyncio.to_thread(api.create, principal, body))
        query = dict(request.query_params)
        return JSONBytesResponse(await asyncio.to_thread(api.list, principal, query))

    async def conversation(request: Request) -> Response:
        principal = await authenticate(request)
        api = conversations()
        cid = request.path_params["conversation_id"]
        if request.method == "GET":
            query = dict(request.query_params)
            result = await asyncio.to_thread(api.get, principal, cid, query)
        elif request.method == "PATCH":
            body = await json_body(request)
            result = await asyncio.to_thread(api.rename, principal, cid, body)
        else:
            result = await asyncio.to_thread(api.delete, principal, cid)
        return JSONBytesResponse(result)

    @functools.cache
    def usage_reports() -> UsageReports:
        return reports_for_table(settings.table)

    async def usage(request: Request) -> Response:
        """Usage and cost of the caller's tenant (services/usage/report.py), from DynamoDB."""
        principal = await authenticate(request)
        content_type, body = await asyncio.to_thread(
            usage_reports().answer,
            principal.tenant_id,
            dict(request.query_params),
            request.headers.get("accept"),
        )
        return Response(body, media_type=content_type)

    # Documents: a file comes as JSON (base64) under the documents' own body limit; the rest
    # is relayed as it is (a download is the worker's redirect to S3).
    document_body_limit = DocumentSettings.from_env(os.environ).max_body_bytes

    async def upload_document(request: Request) -> Response:
        principal = await authenticate(request)
        body = await read_body(request, document_body_limit)
        if not isinstance(decode_json(body), dict):
            raise InvalidRequest("The request body must be a JSON object.", code="invalid_body")
        return await relay(request, principal, "POST", body)

    async def document(request: Request) -> Response:
        return await relay(request, await authenticate(request), request.method, None)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            # Anthropic's Messages API: relayed the same way; the worker reads the body.
            Route("/v1/messages", chat_completions, methods=["POST"]),
            Route("/v1/conversations", conversations_root, methods=["GET", "POST"]),
            Route(
                "/v1/conversations/{conversation_id}",
                conversation,
                methods=["GET", "PATCH", "DELETE"],
            ),
            Route("/v1/runs", post_json, methods=["POST"]),
            Route("/v1/runs", get, methods=["GET"]),
            Route("/v1/runs/{run_id}", get, methods=["GET"]),
            Route("/v1/runs/{run_id}/cancel", post_json, methods=["POST"]),
            Route("/v1/runs/{run_id}/input", post_json, methods=["POST"]),
            Route("/v1/runs/{run_id}/events", get, methods=["GET"]),
            Route("/v1/agents", get, methods=["GET"]),
            Route("/v1/agents/{name}", get, methods=["GET"]),
            # Tools: relayed JSON, with no deadline (only the tool's own time limit).
            Route("/v1/tools", get, methods=["GET"]),
            Route("/v1/tools/{name}", get, methods=["GET"]),
            Route("/v1/tools/{name}", post_json, methods=["POST"]),
            Route("/v1/usage", usage, methods=["GET"]),
            Route("/v1/documents", upload_document, methods=["POST"]),
            Route("/v1/documents", get, methods=["GET"]),
            Route("/v1/documents/uploads", post_json, methods=["POST"]),
            Route("/v1/documents/{document_id}", document, methods=["GET", "DELETE"]),
            Route("/v1/documents/{document_id}/complete", post_json, methods=["POST"]),
            Route("/v1/documents/{document_id}/content", get, methods=["GET"]),
            Route("/v1/embeddings", post_json, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(HeadLimits)  # API Gateway's header and URL limits (services/web/head.py)
    return app


async def _chunks(upstream: httpx.Response) -> AsyncIterator[bytes]:
    async for chunk in upstream.aiter_raw():
        yield chunk
