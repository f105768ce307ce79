"""A local stand-in for API Gateway (REST API, Lambda proxy integration).

It turns each HTTP request into the REST proxy event API Gateway would send, invokes the
gateway Lambda's handler in a thread, and turns the handler's result back into HTTP. Like
API Gateway it enforces an integration timeout (29 s by default) and answers 504 when the
handler has not returned by then, while the handler runs on, as a Lambda would. It also
enforces API Gateway's 10 MB payload limit, and answers a crashed handler with 502.

Run with `uvicorn devstack.apigw:create_app --factory`; the gateway handler reads its own
settings from the same environment.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import importlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.config import env_float, env_str
from services.frontdoor import gateway_responses

log = logging.getLogger("switchboard.apigw")

PAYLOAD_LIMIT_BYTES = 10 * 1024 * 1024
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class EmulatorSettings:
    integration_timeout_seconds: float = 29.0
    lambda_timeout_seconds: float = 30.0
    stage: str = "api"
    handler: str = "lambdas.gateway.handler.handler"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EmulatorSettings:
        return cls(
            integration_timeout_seconds=env_float(
                env, "SWITCHBOARD_APIGW_TIMEOUT_SECONDS", 29.0, minimum=0.05
            ),
            lambda_timeout_seconds=env_float(env, "SWITCHBOARD_LAMBDA_TIMEOUT_SECONDS", 30.0),
            stage=env_str(env, "SWITCHBOARD_APIGW_STAGE", "api"),
            handler=env_str(env, "SWITCHBOARD_APIGW_HANDLER", "lambdas.gateway.handler.handler"),
        )


class LambdaContext:
    """The parts of the Lambda context object a handler reads."""

    def __init__(self, timeout_seconds: float, request_id: str) -> None:
        self._deadline = time.monotonic() + timeout_seconds
        self.aws_request_id = request_id
        self.function_name = "switchboard-gateway-local"
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = (
            "arn:aws:lambda:us-east-1:000000000000:function:switchboard-gateway-local"
        )
        self.log_group_name = "/aws/lambda/switchboard-gateway-local"
        self.log_stream_name = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


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


def _load(path: str) -> Handler:
    module, _, name = path.rpartition(".")
    handler: Handler = getattr(importlib.import_module(module), name)
    return handler


def create_app(
    settings: EmulatorSettings | None = None, handler: Handler | None = None
) -> Starlette:
    settings = settings or EmulatorSettings.from_env(os.environ)
    invoke = handler or _load(settings.handler)
    # Each in-flight invocation holds a thread, as each holds a Lambda execution environment.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="lambda")
    stage_prefix = f"/{settings.stage}/"

    async def proxy(request: Request) -> Response:
        path = request.url.path
        if path.startswith(stage_prefix):
            path = path[len(stage_prefix) - 1 :]
        body = await request.body()
        if len(body) > PAYLOAD_LIMIT_BYTES:
            return _gateway_response(413, gateway_responses.REQUEST_TOO_LARGE)
        request_id = str(uuid.uuid4())
        event = proxy_event(request, path, body, settings.stage, request_id)
        context = LambdaContext(settings.lambda_timeout_seconds, request_id)
        future = asyncio.get_running_loop().run_in_executor(pool, invoke, event, context)
        try:
            result = await asyncio.wait_for(
                asyncio.shield(future), settings.integration_timeout_seconds
            )
        except TimeoutError:
            # The Lambda keeps running; API Gateway has stopped waiting for it.
            return _gateway_response(504, gateway_responses.INTEGRATION_TIMEOUT)
        except Exception:
            log.exception("the gateway handler raised")
            return _gateway_response(502, gateway_responses.FUNCTION_FAILED)
        response = http_response(result)
        response.headers["x-amzn-requestid"] = request_id
        return response

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return Starlette(routes=[Route("/{path:path}", proxy, methods=methods)])
