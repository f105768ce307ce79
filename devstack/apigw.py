"""A local stand-in for API Gateway (REST API) in front of the gateway Lambda.

Each request goes to an integration. Today every route has one, the Lambda proxy
integration: the request becomes the REST proxy event API Gateway would send, the gateway
Lambda's handler runs it in an execution environment of its own (`devstack.lambda_pool`:
one invocation per environment at a time, cold starts, the function's timeout), and its
result becomes the HTTP response. Like API Gateway, the emulator answers 504 when the
integration timeout (29 s by default) passes first, while the Lambda runs on; 502 when the
function fails; 413 over the 10 MB payload limit. The request itself is held to API
Gateway's REST quotas (the "Quotas for configuring and running a REST API" table): the
methods of an `ANY` method, a URL of at most 10,240 characters and headers of at most
10,240 bytes in all (names, values, separators and line ends). Every answer of the
emulator's own has the OpenAI error envelope, as the deployed gateway responses do.

(Another integration, API Gateway's HTTP proxy to the worker load balancer, streamed, is
what the deployed API uses for the AI routes: an `Integration` is the seam for it.)

Run with `python -m services.web.serve devstack.apigw:create_app --factory`; the
gateway handler reads its own settings from the same environment.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from devstack.lambda_pool import FunctionError, LambdaPool, LambdaSettings
from services.config import env_float, env_int, env_str
from services.errors import error_body
from services.frontdoor import gateway_responses

log = logging.getLogger("switchboard.apigw")

PAYLOAD_LIMIT_BYTES = 10 * 1024 * 1024
# API Gateway's REST quotas (regional API): "Length, in characters, of the URL" and "Total
# combined size of all header values, including header names, values, any line
# terminators, and whitespaces". No quota counts headers: the total bounds their number.
URL_LIMIT_CHARS = 10_240
HEADER_LIMIT_BYTES = 10_240
# The methods of an `ANY` method in API Gateway (the deployed API routes `ANY /{proxy+}`).
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class EmulatorSettings:
    integration_timeout_seconds: float = 29.0
    lambda_timeout_seconds: float = 30.0
    # How many execution environments the gateway function may have at once (Lambda's
    # concurrency); invocations beyond it wait for one.
    lambda_concurrency: int = 8
    stage: str = "api"
    handler: str = "lambdas.gateway.handler.handler"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EmulatorSettings:
        return cls(
            integration_timeout_seconds=env_float(
                env, "SWITCHBOARD_APIGW_TIMEOUT_SECONDS", 29.0, minimum=0.05
            ),
            lambda_timeout_seconds=env_float(env, "SWITCHBOARD_LAMBDA_TIMEOUT_SECONDS", 30.0),
            lambda_concurrency=env_int(env, "SWITCHBOARD_LAMBDA_CONCURRENCY", 8, minimum=1),
            stage=env_str(env, "SWITCHBOARD_APIGW_STAGE", "api"),
            handler=env_str(env, "SWITCHBOARD_APIGW_HANDLER", "lambdas.gateway.handler.handler"),
        )


def proxy_event(
    request: Request, path: str, body: bytes, stage: str, request_id: str
) -> dict[str, Any]:
    """The REST API (v1) Lambda proxy event for `request`."""
    multi_headers: dict[str, list[str]] = {}
    for key, value in request.headers.items():
        multi_headers.setdefault(key, []).append(value)
    multi_query: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        multi_query.setdefault(key, []).append(value)
    try:
        text, is_base64 = body.decode(), False
    except UnicodeDecodeError:
        text, is_base64 = base64.b64encode(body).decode(), True
    client = request.client
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": request.method,
        "headers": {k: v[-1] for k, v in multi_headers.items()} or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": {"proxy": path.lstrip("/")} if path != "/" else None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": request.method,
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTimeEpoch": int(time.time() * 1000),
            "protocol": "HTTP/1.1",
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": request.headers.get("host", "127.0.0.1"),
            "identity": {
                "sourceIp": client.host if client else "127.0.0.1",
                "userAgent": request.headers.get("user-agent"),
            },
        },
        "body": text if body else None,
        "isBase64Encoded": is_base64,
    }


def http_response(result: Any) -> Response:
    """The HTTP response for a proxy integration result, or 502 if it is malformed."""
    if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
        log.error("malformed Lambda proxy response: %r", result)
        return _gateway_response(502, gateway_responses.FUNCTION_FAILED)
    body = result.get("body") or ""
    content = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    headers: list[tuple[str, str]] = []
    for key, value in (result.get("headers") or {}).items():
        headers.append((key, str(value)))
    for key, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((key, str(v)) for v in values)
    response = Response(content, status_code=result["statusCode"])
    response.raw_headers = [
        (k.lower().encode(), v.encode()) for k, v in headers if k.lower() != "content-length"
    ] + [(b"content-length", str(len(content)).encode())]
    return response


def _gateway_response(status: int, body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _method_not_allowed(method: str) -> dict[str, Any]:
    return error_body(
        f"API Gateway does not serve the {method[:20]} method; use GET, POST, PUT, PATCH, "
        "DELETE, HEAD or OPTIONS.",
        "invalid_request_error",
        code="method_not_allowed",
    )


URL_TOO_LONG = error_body(
    f"The request URL is longer than API Gateway's limit of {URL_LIMIT_CHARS} characters.",
    "invalid_request_error",
    code="url_too_long",
)
HEADERS_TOO_LARGE = error_body(
    f"The request headers are larger than API Gateway's limit of {HEADER_LIMIT_BYTES} bytes "
    "(names, values and line ends together).",
    "invalid_request_error",
    code="request_header_fields_too_large",
)
NOT_FOUND = error_body(
    "Unknown request URL: a path starts with /.", "invalid_request_error", code="unknown_url"
)


def header_bytes(scope: Scope) -> int:
    """The size of the request's headers as API Gateway counts it: each `name: value` and
    its line end."""
    return sum(len(name) + len(value) + 4 for name, value in scope["headers"])


def url_chars(scope: Scope) -> int:
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string", b"")
    return len(raw) + (1 + len(query) if query else 0)


class Integration(Protocol):
    """What API Gateway sends a request to, and how the answer comes back."""

    async def __call__(self, request: Request, path: str, request_id: str) -> Response:
        """The response to `request`, whose path (without the stage) is `path`."""
        ...

    async def aclose(self) -> None: ...


class LambdaProxyIntegration:
    """API Gateway's Lambda proxy integration (`AWS_PROXY`) with a function's pool of
    execution environments."""

    def __init__(self, function: LambdaPool, settings: EmulatorSettings) -> None:
        self.function = function
        self.settings = settings

    async def __call__(self, request: Request, path: str, request_id: str) -> Response:
        body = await request.body()
        if len(body) > PAYLOAD_LIMIT_BYTES:
            return _gateway_response(413, gateway_responses.REQUEST_TOO_LARGE)
        event = proxy_event(request, path, body, self.settings.stage, request_id)
        try:
            outcome = await asyncio.wait_for(
                self.function.invoke(event, request_id), self.settings.integration_timeout_seconds
            )
        except TimeoutError:
            # API Gateway stops waiting; a Lambda that has started runs on to its end.
            return _gateway_response(504, gateway_responses.INTEGRATION_TIMEOUT)
        except FunctionError as exc:
            log.error("%s the gateway function failed: %s", request_id, exc.report)
            return _gateway_response(502, gateway_responses.FUNCTION_FAILED)
        except Exception:
            log.exception("%s the gateway function could not be invoked", request_id)
            return _gateway_response(502, gateway_responses.FUNCTION_FAILED)
        if outcome.error is not None:
            log.error(
                "%s the gateway handler raised %s: %s",
                request_id,
                outcome.error.get("errorType"),
                outcome.error.get("errorMessage"),
            )
            return _gateway_response(502, gateway_responses.FUNCTION_FAILED)
        return http_response(outcome.result)

    async def aclose(self) -> None:
        await self.function.aclose()


class ApiGatewayEmulator:
    """The ASGI app: API Gateway's own checks, then the request's integration."""

    def __init__(self, settings: EmulatorSettings, integration: Integration) -> None:
        self.settings = settings
        self.integration = integration
        self._stage_prefix = f"/{settings.stage}/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        request_id = str(uuid.uuid4())
        response = await self.answer(request, request_id)
        response.headers["x-amzn-requestid"] = request_id
        await response(scope, receive, send)

    async def answer(self, request: Request, request_id: str) -> Response:
        scope = request.scope
        if scope["method"] not in METHODS:
            return _gateway_response(405, _method_not_allowed(scope["method"]))
        if url_chars(scope) > URL_LIMIT_CHARS:
            return _gateway_response(414, URL_TOO_LONG)
        if header_bytes(scope) > HEADER_LIMIT_BYTES:
            return _gateway_response(431, HEADERS_TOO_LARGE)
        path: str = scope["path"]
        if not path.startswith("/"):
            return _gateway_response(404, NOT_FOUND)
        if path.startswith(self._stage_prefix):
            path = path[len(self._stage_prefix) - 1 :]
        return await self.integration(request, path, request_id)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.integration.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(settings: EmulatorSettings | None = None) -> ApiGatewayEmulator:
    settings = settings or EmulatorSettings.from_env(os.environ)
    function = LambdaPool(
        LambdaSettings(
            handler=settings.handler,
            timeout_seconds=settings.lambda_timeout_seconds,
            concurrency=settings.lambda_concurrency,
        )
    )
    return ApiGatewayEmulator(settings, LambdaProxyIntegration(function, settings))
