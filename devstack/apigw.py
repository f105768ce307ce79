"""A local stand-in for API Gateway (REST API): the deployed API's routing, integrations,
authorizer and limits, on one port.

Every request is first held to API Gateway's REST quotas (the "Quotas for configuring and
running a REST API" table): the methods of an `ANY` method, a URL of at most 10,240
characters, headers of at most 10,240 bytes in all (names, values, separators and line
ends) and a payload of at most 10 MB (API Gateway does not stream requests: it reads the
whole body first). The stage (`/api`) may lead the path or not. Then the route table
(`services/frontdoor/routes.py`) decides where the request goes, as the CDK front-door
stack wires each method:

- A `WORKER` route (AI work) first goes through the REQUEST Lambda authorizer
  (`lambdas.gateway.authorizer.handler`, in a pool of execution environments of its own;
  no identity sources, no result cache, so it runs on every request): an exception
  "Unauthorized" is a 401 and a policy that does not allow the method a 403, and the
  request goes no further; any other failure is a 500. An allowed request goes straight
  to the workers' load balancer (`HttpProxyIntegration`: `HTTP_PROXY` with
  `responseTransferMode: STREAM`). The worker sees the path without the stage, the
  client's own headers (less the hop-by-hop ones) and `X-Forwarded-Prefix: /<stage>`, as
  the deployed integration request sends them. The status and headers go to the client
  once the worker's are complete, then the body chunk by chunk as it arrives. The
  worker's first byte must come within the idle timeout (5 min), every later chunk too,
  and the whole response within the integration timeout (15 min); past either, the
  stream is cut (before the headers: a 504).
- Everything else (`CONTROL` routes, and unknown paths and methods, which the gateway
  answers 404 or 405 from the table) goes to the gateway Lambda (`LambdaProxyIntegration`:
  the REST proxy event, each invocation in an execution environment of its own from
  `devstack.lambda_pool`, the function's timeout and the integration timeout of 29 s,
  after which the emulator answers 504 while the Lambda runs on).
- `/health` and `/ready` are the emulator's own: alive, and ready once the gateway's
  table and the workers' load balancer answer.

Each request gets API Gateway's request id (a UUID): in the gateway Lambda's event
(`requestContext.requestId`), in `x-switchboard-request-id` on the request to the worker
(the integration's mapping from `context.requestId`; a client's own value is replaced),
and in `x-amzn-requestid` on every answer. The emulator writes one access line per
request, as API Gateway writes its access log (`services.telemetry`); in console mode
(`make dev`) only for the answers it made itself, since the worker or the gateway Lambda
prints its own.

Every answer of the emulator's own has the OpenAI error envelope, as the deployed gateway
responses do (`services/frontdoor/gateway_responses.py`).

Run with `python -m services.web.serve devstack.apigw:create_app --factory`; the
functions read their own settings from the same environment.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from devstack.lambda_pool import FunctionError, LambdaPool, LambdaSettings
from devstack.lambda_runtime import REGION
from services.config import env_float, env_int, env_optional, env_str
from services.errors import error_body
from services.frontdoor import gateway_responses, routes
from services.telemetry import logs
from services.telemetry.access import finish, read_error
from services.telemetry.context import CURRENT, begin
from services.telemetry.ids import EDGE_REQUEST_ID_HEADER
from services.web.head import HeadersTooLarge, URITooLong

log = logging.getLogger("switchboard.apigw")

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PAYLOAD_LIMIT_BYTES = 10 * 1024 * 1024
# API Gateway's REST quotas (regional API): "Length, in characters, of the URL" and "Total
# combined size of all header values, including header names, values, any line
# terminators, and whitespaces". No quota counts headers: the total bounds their number.
URL_LIMIT_CHARS = 10_240
HEADER_LIMIT_BYTES = 10_240
# The methods of an `ANY` method in API Gateway (the deployed API has one on every resource).
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
ACCOUNT_ID = "000000000000"
API_ID = "local"
FORWARDED_PREFIX_HEADER = "x-forwarded-prefix"
# Hop-by-hop headers (RFC 9110 7.6.1, and the older ones proxies still drop): they concern
# one connection, so a proxy never passes them on. `host` names the integration's host.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_REQUEST_ID_HEADER = b"x-amzn-requestid"


@dataclass(frozen=True, slots=True)
class EmulatorSettings:
    # The gateway Lambda's integration (CONTROL routes and everything unknown).
    integration_timeout_seconds: float = 29.0
    lambda_timeout_seconds: float = 30.0
    # How many execution environments each function (the gateway, the authorizer) may have
    # at once (Lambda's concurrency); invocations beyond it wait for one.
    lambda_concurrency: int = 8
    stage: str = "api"
    handler: str = "lambdas.gateway.handler.handler"
    # The WORKER routes' integration: the workers' load balancer (None: none configured;
    # a WORKER route then fails with a 502 that says so).
    worker_url: str | None = None
    worker_timeout_seconds: float = 900.0  # API Gateway's longest streamed response
    idle_timeout_seconds: float = 300.0  # a streamed response's idle timeout (regional)
    authorizer: str = "lambdas.gateway.authorizer.handler"
    authorizer_timeout_seconds: float = 10.0
    # The gateway's table, which `/ready` checks (None: not checked).
    table: str | None = None

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
            worker_url=env_str(env, "SWITCHBOARD_WORKER_URL").rstrip("/"),
            worker_timeout_seconds=env_float(
                env, "SWITCHBOARD_APIGW_WORKER_TIMEOUT_SECONDS", 900.0, minimum=0.05
            ),
            idle_timeout_seconds=env_float(
                env, "SWITCHBOARD_APIGW_IDLE_TIMEOUT_SECONDS", 300.0, minimum=0.05
            ),
            authorizer=env_str(
                env, "SWITCHBOARD_APIGW_AUTHORIZER", "lambdas.gateway.authorizer.handler"
            ),
            authorizer_timeout_seconds=env_float(
                env, "SWITCHBOARD_AUTHORIZER_TIMEOUT_SECONDS", 10.0, minimum=0.05
            ),
            table=env_optional(env, "SWITCHBOARD_TABLE"),
        )


def _multi(pairs: Any) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for key, value in pairs:
        found.setdefault(key, []).append(value)
    return found


def _request_context(request: Request, path: str, stage: str, request_id: str) -> dict[str, Any]:
    client = request.client
    return {
        "resourcePath": "/{proxy+}",
        "httpMethod": request.method,
        "path": f"/{stage}{path}",
        "stage": stage,
        "requestId": request_id,
        "extendedRequestId": request_id,
        "requestTimeEpoch": int(time.time() * 1000),
        "protocol": "HTTP/1.1",
        "accountId": ACCOUNT_ID,
        "apiId": API_ID,
        "domainName": request.headers.get("host", "127.0.0.1"),
        "identity": {
            "sourceIp": client.host if client else "127.0.0.1",
            "userAgent": request.headers.get("user-agent"),
        },
    }


def proxy_event(
    request: Request, path: str, body: bytes, stage: str, request_id: str
) -> dict[str, Any]:
    """The REST API (v1) Lambda proxy event for `request`."""
    multi_headers = _multi(request.headers.items())
    multi_query = _multi(request.query_params.multi_items())
    try:
        text, is_base64 = body.decode(), False
    except UnicodeDecodeError:
        text, is_base64 = base64.b64encode(body).decode(), True
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
        "requestContext": _request_context(request, path, stage, request_id),
        "body": text if body else None,
        "isBase64Encoded": is_base64,
    }


def method_arn(stage: str, method: str, path: str) -> str:
    """The ARN of the method a request invokes, as an authorizer receives it."""
    return f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{API_ID}/{stage}/{method}/{path[1:]}"


def authorizer_event(
    request: Request,
    path: str,
    route: routes.RouteSpec,
    params: dict[str, str],
    stage: str,
    request_id: str,
) -> dict[str, Any]:
    """The REQUEST authorizer's event for `request` (API Gateway's "REQUEST input format"):
    the request's headers, query, path parameters and context, but not its body."""
    multi_headers = _multi(request.headers.items())
    multi_query = _multi(request.query_params.multi_items())
    context = _request_context(request, path, stage, request_id)
    context["resourcePath"] = route.path
    return {
        "type": "REQUEST",
        "methodArn": method_arn(stage, request.method, path),
        "resource": route.path,
        "path": path,
        "httpMethod": request.method,
        "headers": {k: v[-1] for k, v in multi_headers.items()},
        "multiValueHeaders": multi_headers,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()},
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": params,
        "stageVariables": {},
        "requestContext": context,
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


# The codes the doors answer the same limits with (services/web/head.py).
URL_TOO_LONG = error_body(
    f"The request URL is longer than API Gateway's limit of {URL_LIMIT_CHARS} characters.",
    URITooLong.type,
    code=URITooLong.code,
)
HEADERS_TOO_LARGE = error_body(
    f"The request headers are larger than API Gateway's limit of {HEADER_LIMIT_BYTES} bytes "
    "(names, values and line ends together).",
    HeadersTooLarge.type,
    code=HeadersTooLarge.code,
)
NOT_FOUND = error_body(
    "Unknown request URL: a path starts with /.", "invalid_request_error", code="unknown_url"
)
# The HTTP integration could not reach the load balancer (API Gateway's own words).
WORKER_UNREACHABLE = error_body(
    "Network error communicating with endpoint", "server_error", code="integration_failure"
)
NO_WORKER_INTEGRATION = error_body(
    "The API Gateway emulator has no integration for AI routes: set SWITCHBOARD_WORKER_URL "
    "to the workers' load balancer.",
    "server_error",
    code="integration_failure",
)


def header_bytes(scope: Scope) -> int:
    """The size of the request's headers as API Gateway counts it: each `name: value` and
    its line end."""
    return sum(len(name) + len(value) + 4 for name, value in scope["headers"])


def url_chars(scope: Scope) -> int:
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string", b"")
    return len(raw) + (1 + len(query) if query else 0)


async def read_body(request: Request, limit: int) -> bytes | None:
    """The whole request body, or None as soon as it is longer than `limit` bytes."""
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)


class Integration(Protocol):
    """What API Gateway sends a request to, and how the answer comes back."""

    async def __call__(
        self, request: Request, path: str, raw_path: str, body: bytes, request_id: str
    ) -> ASGIApp:
        """The answer to `request` (its body already read), whose path without the stage
        is `path` (`raw_path` as the client encoded it)."""
        ...

    async def aclose(self) -> None: ...


class LambdaProxyIntegration:
    """API Gateway's Lambda proxy integration (`AWS_PROXY`) with a function's pool of
    execution environments."""

    def __init__(self, function: LambdaPool, settings: EmulatorSettings) -> None:
        self.function = function
        self.settings = settings

    async def __call__(
        self, request: Request, path: str, raw_path: str, body: bytes, request_id: str
    ) -> ASGIApp:
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
            log.error("%s the gateway handler raised %s", request_id, _report(outcome.error))
            return _gateway_response(502, gateway_responses.FUNCTION_FAILED)
        _relayed()
        return http_response(outcome.result)

    async def aclose(self) -> None:
        await self.function.aclose()


class HttpProxyIntegration:
    """API Gateway's HTTP proxy integration (`HTTP_PROXY`) to the workers' load balancer,
    with `responseTransferMode: STREAM` and the static `X-Forwarded-Prefix` header."""

    def __init__(
        self,
        base_url: str,
        settings: EmulatorSettings,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.settings = settings
        # No environment proxies (loopback only), no default headers of httpx's own (the
        # request is built without them), no redirects followed, no pool limit: each
        # stream holds a connection for as long as it lasts.
        self.client = client or httpx.AsyncClient(
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(connect=10.0, read=None, write=60.0, pool=None),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )

    def upstream_request(
        self, request: Request, raw_path: str, body: bytes, request_id: str = ""
    ) -> httpx.Request:
        """The integration request: the client's request to the worker, as API Gateway
        sends it (the path without the stage, the query as sent, the client's headers
        less hop-by-hop ones, `X-Forwarded-Prefix`, and API Gateway's request id in
        `x-switchboard-request-id`)."""
        headers: list[tuple[bytes, bytes]] = list(request.scope["headers"])
        named = {
            token.strip().lower()
            for name, value in headers
            if name == b"connection"
            for token in value.decode("latin-1").split(",")
        }
        skip = HOP_BY_HOP | named | {"host", "content-length", FORWARDED_PREFIX_HEADER,
                                     EDGE_REQUEST_ID_HEADER}  # fmt: skip
        # A field value's leading and trailing whitespace is not part of it (RFC 9110 5.5).
        forwarded = [(n, v.strip(b" \t")) for n, v in headers if n.decode("latin-1") not in skip]
        forwarded.append((FORWARDED_PREFIX_HEADER.encode(), f"/{self.settings.stage}".encode()))
        if request_id:
            forwarded.append((EDGE_REQUEST_ID_HEADER.encode(), request_id.encode()))
        query: bytes = request.scope.get("query_string", b"")
        url = self.base_url + raw_path + ("?" + query.decode("latin-1") if query else "")
        has_body = bool(body) or request.method in ("POST", "PUT", "PATCH")
        return httpx.Request(
            request.method, url, headers=forwarded, content=body if has_body else None
        )

    async def __call__(
        self, request: Request, path: str, raw_path: str, body: bytes, request_id: str
    ) -> ASGIApp:
        upstream = self.upstream_request(request, raw_path, body, request_id)
        return StreamedExchange(self.client, upstream, self.settings, request_id)

    async def aclose(self) -> None:
        await self.client.aclose()


class StreamedExchange:
    """One streamed integration exchange, as an ASGI app: send the request to the worker,
    then relay its status and headers once they are complete, then its body chunk by
    chunk, within API Gateway's timeouts. A client that goes away closes the worker's
    connection too."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        upstream: httpx.Request,
        settings: EmulatorSettings,
        request_id: str,
    ) -> None:
        self.client = client
        self.upstream = upstream
        self.settings = settings
        self.request_id = request_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.worker_timeout_seconds
        idle = self.settings.idle_timeout_seconds
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            sending = asyncio.ensure_future(self.client.send(self.upstream, stream=True))
            first = min(idle, self.settings.worker_timeout_seconds)
            racing: set[asyncio.Future[Any]] = {sending, gone}
            await asyncio.wait(racing, timeout=first, return_when=asyncio.FIRST_COMPLETED)
            if not sending.done():
                sending.cancel()
                with contextlib.suppress(BaseException):
                    await sending
                if gone.done():
                    log.info("%s the client went away before the worker answered", self.request_id)
                    return
                log.warning(
                    "%s the worker sent no response headers within %.1f s: 504",
                    self.request_id, first,
                )  # fmt: skip
                await _gateway_response(504, gateway_responses.INTEGRATION_TIMEOUT)(
                    scope, receive, send
                )
                return
            try:
                response = sending.result()
            except httpx.HTTPError as exc:
                log.error("%s the worker is unreachable: %r", self.request_id, exc)
                await _gateway_response(502, WORKER_UNREACHABLE)(scope, receive, send)
                return
            try:
                await self._relay(response, send, gone, deadline)
            finally:
                await response.aclose()
        finally:
            gone.cancel()

    async def _relay(
        self, response: httpx.Response, send: Send, gone: asyncio.Future[None], deadline: float
    ) -> None:
        _relayed()
        headers = [
            (name.lower(), value)
            for name, value in response.headers.raw
            if name.lower().decode("latin-1") not in HOP_BY_HOP
        ]
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": headers})  # fmt: skip
        chunks = response.aiter_raw()
        loop = asyncio.get_running_loop()
        while True:
            wait = min(self.settings.idle_timeout_seconds, deadline - loop.time())
            if wait <= 0:
                self._cut("the integration timeout passed")
                return
            reading = asyncio.ensure_future(_next(chunks))
            racing: set[asyncio.Future[Any]] = {reading, gone}
            await asyncio.wait(racing, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            if not reading.done():
                reading.cancel()
                with contextlib.suppress(BaseException):
                    await reading
                if gone.done():
                    log.info("%s the client went away; the worker's stream is closed",
                             self.request_id)  # fmt: skip
                else:
                    overall = deadline - loop.time() <= 0
                    self._cut(
                        "the integration timeout passed"
                        if overall
                        else f"nothing came for the idle timeout ({wait:.1f} s)"
                    )
                return
            try:
                chunk = reading.result()
            except StopAsyncIteration:
                break
            except httpx.HTTPError as exc:
                self._cut(f"the worker's response broke off ({exc!r})")
                return
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _cut(self, why: str) -> None:
        # The response is left unfinished: the server closes the connection, and the client
        # sees the stream end without its last chunk, as when API Gateway cuts one.
        log.warning("%s stream cut: %s", self.request_id, why)


async def _next(chunks: AsyncIterator[bytes]) -> bytes:
    return await chunks.__anext__()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class Denied(Exception):
    """The authorizer's answer refuses the request (a 403)."""


class Malformed(Exception):
    """The authorizer's answer is not one API Gateway accepts (a 500)."""


_AUTHORIZER_CONTEXT_TYPES = (str, int, float, bool)


def _wildcard(pattern: str, *, ignore_case: bool = False) -> re.Pattern[str]:
    """An IAM pattern (`*`: any characters, `?`: any one) as a regular expression."""
    regex = "".join(
        ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern
    )  # fmt: skip
    return re.compile(f"^{regex}$", re.IGNORECASE if ignore_case else 0)


def _strings(value: Any, what: str) -> list[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise Malformed(f"a statement's {what} must be a string or a list of strings")
    return values


def check_policy(result: Any, arn: str) -> None:
    """Raise `Denied` unless the authorizer's answer allows invoking `arn`, or `Malformed`
    if API Gateway would reject the answer itself. As in IAM, an explicit Deny wins, and
    no statement that allows the method is a deny too."""
    if not isinstance(result, dict):
        raise Malformed("the answer is not a JSON object")
    if not isinstance(result.get("principalId"), str):
        raise Malformed("the answer has no principalId string")
    document = result.get("policyDocument")
    if not isinstance(document, dict):
        raise Malformed("the answer has no policyDocument object")
    statements = document.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list):
        raise Malformed("the policyDocument has no Statement list")
    context = result.get("context")
    if context is not None and (
        not isinstance(context, dict)
        or not all(isinstance(v, _AUTHORIZER_CONTEXT_TYPES) for v in context.values())
    ):
        raise Malformed("the context must map names to strings, numbers or booleans")
    allowed = False
    for statement in statements:
        if not isinstance(statement, dict) or statement.get("Effect") not in ("Allow", "Deny"):
            raise Malformed("a statement's Effect must be Allow or Deny")
        actions = _strings(statement.get("Action"), "Action")
        resources = _strings(statement.get("Resource"), "Resource")
        applies = any(
            _wildcard(a, ignore_case=True).match("execute-api:Invoke") for a in actions
        ) and any(_wildcard(r).match(arn) for r in resources)
        if applies and statement["Effect"] == "Deny":
            raise Denied("an explicit deny")
        allowed = allowed or applies
    if not allowed:
        raise Denied("no statement allows the method")


class RequestAuthorizer:
    """API Gateway's REQUEST Lambda authorizer, with no identity sources and no result
    cache: its function runs, in an execution environment of its own, for every request
    of a method it guards."""

    def __init__(self, function: LambdaPool, settings: EmulatorSettings) -> None:
        self.function = function
        self.settings = settings

    async def __call__(
        self,
        request: Request,
        path: str,
        route: routes.RouteSpec,
        params: dict[str, str],
        request_id: str,
    ) -> Response | None:
        """None if the request may go on; otherwise API Gateway's answer."""
        event = authorizer_event(request, path, route, params, self.settings.stage, request_id)
        try:
            outcome = await self.function.invoke(event, request_id)
        except FunctionError as exc:
            log.error("%s the authorizer failed: %s", request_id, exc.report)
            return _gateway_response(500, gateway_responses.AUTHORIZER_FAILURE)
        except Exception:
            log.exception("%s the authorizer could not be invoked", request_id)
            return _gateway_response(500, gateway_responses.AUTHORIZER_FAILURE)
        if outcome.error is not None:
            if outcome.error.get("errorMessage") == "Unauthorized":
                return _gateway_response(401, gateway_responses.UNAUTHORIZED)
            log.error("%s the authorizer raised %s", request_id, _report(outcome.error))
            return _gateway_response(500, gateway_responses.AUTHORIZER_FAILURE)
        try:
            check_policy(outcome.result, event["methodArn"])
        except Denied as why:
            arn = event["methodArn"]
            log.info("%s the authorizer's policy denies %s: %s", request_id, arn, why)
            return _gateway_response(403, gateway_responses.ACCESS_DENIED)
        except Malformed as why:
            log.error("%s the authorizer's answer is malformed: %s", request_id, why)
            return _gateway_response(500, gateway_responses.AUTHORIZER_FAILURE)
        return None

    async def aclose(self) -> None:
        await self.function.aclose()


class ApiGatewayEmulator:
    """The ASGI app: API Gateway's own checks, then the route's authorizer and integration."""

    def __init__(
        self,
        settings: EmulatorSettings,
        control: Integration,
        worker: Integration | None = None,
        authorizer: RequestAuthorizer | None = None,
    ) -> None:
        self.settings = settings
        self.control = control
        self.worker = worker
        self.authorizer = authorizer
        self._stage_prefix = f"/{settings.stage}/"
        self._readiness: Readiness | None = None
        self.output = logs.output() or logs.Output("apigw")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        request_id = str(uuid.uuid4())
        path = scope["path"]
        if path in ("/health", "/ready", f"/{self.settings.stage}/health",
                    f"/{self.settings.stage}/ready"):  # fmt: skip
            answer = await self.answer(request, request_id)
            await answer(scope, receive, _with_request_id(send, request_id))
            return
        method = scope["method"]
        bare = path[len(self._stage_prefix) - 1 :] if path.startswith(self._stage_prefix) else path
        call, token = begin(request_id, method, routes.template(method, bare))
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif status >= 400 and call.error_type is None and not call.relayed:
                read_error(call, message.get("body", b""))  # its own answer: a gateway response
            await send(message)

        try:
            answer = await self.answer(request, request_id)
            await answer(scope, receive, _with_request_id(sending, request_id))
        finally:
            finish(self.output, call, status, bare)
            CURRENT.reset(token)

    async def answer(self, request: Request, request_id: str) -> ASGIApp:
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
        raw_path: str = (scope.get("raw_path") or path.encode()).decode("latin-1")
        if path.startswith(self._stage_prefix):
            path = path[len(self._stage_prefix) - 1 :]
            if raw_path.startswith(self._stage_prefix):
                raw_path = raw_path[len(self._stage_prefix) - 1 :]
        if path in ("/health", "/ready") and scope["method"] in ("GET", "HEAD"):
            return await self._health(path)
        body = await read_body(request, PAYLOAD_LIMIT_BYTES)
        if body is None:
            return _gateway_response(413, gateway_responses.REQUEST_TOO_LARGE)
        found = routes.match(scope["method"], path)
        if found.route is None or found.route.owner is not routes.Owner.WORKER:
            return await self.control(request, path, raw_path, body, request_id)
        if self.worker is None or self.authorizer is None:
            log.error("%s no integration for the AI route %s", request_id, found.route.path)
            return _gateway_response(502, NO_WORKER_INTEGRATION)
        refused = await self.authorizer(request, path, found.route, found.params, request_id)
        if refused is not None:
            return refused
        return await self.worker(request, path, raw_path, body, request_id)

    async def _health(self, path: str) -> Response:
        if path == "/health":
            return _json_response(200, {"status": "ok"})
        if self._readiness is None:
            self._readiness = Readiness(self.settings)
        problems = await self._readiness.problems()
        if problems:
            body = error_body(
                "Not ready: " + "; ".join(problems) + ".", "server_error", code="not_ready"
            )
            return _json_response(503, body)
        return _json_response(200, {"status": "ready"})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def aclose(self) -> None:
        closing: list[Any] = [self.control, self.worker, self.authorizer]
        await asyncio.gather(*(c.aclose() for c in closing if c is not None))
        if self._readiness is not None:
            await self._readiness.aclose()


class Readiness:
    """What `/ready` checks: the gateway's table answers, and so do the workers' load
    balancer (where the AI routes go)."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self._dynamodb: Any = None
        self._http = httpx.AsyncClient(trust_env=False, timeout=2.0)

    async def problems(self) -> list[str]:
        checks = [self._table(), self._worker()]
        return [p for p in await asyncio.gather(*checks) if p is not None]

    async def _table(self) -> str | None:
        table = self.settings.table
        if table is None:
            return None
        try:
            await asyncio.to_thread(self._describe, table)
        except Exception as exc:
            return f"the table {table} does not answer ({type(exc).__name__})"
        return None

    def _describe(self, table: str) -> None:
        if self._dynamodb is None:
            import boto3
            from botocore.config import Config

            config = Config(connect_timeout=2, read_timeout=2, retries={"max_attempts": 1})
            # A session of its own: boto3's default one would keep the credentials it found.
            self._dynamodb = boto3.session.Session().client("dynamodb", config=config)
        self._dynamodb.describe_table(TableName=table)

    async def _worker(self) -> str | None:
        url = self.settings.worker_url
        if url is None:
            return "no workers' load balancer is configured (SWITCHBOARD_WORKER_URL)"
        try:
            response = await self._http.get(f"{url}/health")
        except httpx.HTTPError as exc:
            return f"the workers' load balancer does not answer ({type(exc).__name__})"
        if response.status_code != 200:
            return f"the workers' load balancer answers {response.status_code}"
        return None

    async def aclose(self) -> None:
        await self._http.aclose()


def _report(error: dict[str, Any]) -> str:
    """A function's error report, as Lambda logs it: type, message, stack trace."""
    trace = "".join(str(line) for line in error.get("stackTrace") or ())
    return f"{error.get('errorType')}: {error.get('errorMessage')}\n{trace}".rstrip()


def _json_response(status: int, body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _relayed() -> None:
    """The answer being sent is the integration's, not the emulator's own."""
    call = CURRENT.get()
    if call is not None:
        call.relayed = True


def _with_request_id(send: Send, request_id: str) -> Send:
    """`send`, with API Gateway's request id on the response (replacing any other)."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [
                (bytes(name), bytes(value))
                for name, value in message.get("headers", [])
                if bytes(name).lower() != _REQUEST_ID_HEADER
            ]
            headers.append((_REQUEST_ID_HEADER, request_id.encode()))
            message = {**message, "headers": headers}
        await send(message)

    return sending


def create_app(settings: EmulatorSettings | None = None) -> ApiGatewayEmulator:
    logs.configure("apigw", os.environ)
    settings = settings or EmulatorSettings.from_env(os.environ)
    function = LambdaPool(
        LambdaSettings(
            handler=settings.handler,
            timeout_seconds=settings.lambda_timeout_seconds,
            concurrency=settings.lambda_concurrency,
        )
    )
    control = LambdaProxyIntegration(function, settings)
    if settings.worker_url is None:
        return ApiGatewayEmulator(settings, control)
    authorizer = LambdaPool(
        LambdaSettings(
            handler=settings.authorizer,
            timeout_seconds=settings.authorizer_timeout_seconds,
            concurrency=settings.lambda_concurrency,
        )
    )
    return ApiGatewayEmulator(
        settings,
        control,
        HttpProxyIntegration(settings.worker_url, settings),
        RequestAuthorizer(authorizer, settings),
    )
