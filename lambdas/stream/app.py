"""The stream front door: a plain ASGI app run by the Lambda Web Adapter behind a Function
URL in RESPONSE_STREAM mode (`run.sh` starts it).

A Function URL cannot stream from inside a VPC, so the door never reaches the private
worker itself. It routes by the route table (`services/frontdoor/routes.py`):

- WORKER routes are relayed (`relay.py`) to `SWITCHBOARD_UPSTREAM_URL`, in AWS the REST
  API's invoke URL over HTTPS, with the client's own credential: API Gateway's authorizer
  and then the worker authenticate it, exactly as for a client calling the API directly.
  Answers, streams included, come back chunk by chunk as they are made.
- CONTROL routes (conversations, usage, run reads) are answered here from DynamoDB
  (`control.py`), after authenticating the key.
- Any other path is a 404, another method a 405 naming the allowed ones.

Errors have the OpenAI envelope, and Anthropic's on `/v1/messages`.

Every request is an observed call (`services.web.access`): its correlation id (the
client's sane `x-request-id`, else the Function URL's request id) goes upstream in
`x-request-id`, so the worker's lines carry it too, and comes back in the answer's; one
JSON access line; its metrics, written as EMF at the end of each request (a Lambda
environment is frozen between invocations, so nothing waits for a timer). `/health` is
liveness, `/ready` says whether the table answers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
from typing import Any
from urllib.parse import parse_qsl

import orjson

from lambdas.stream.control import Answer, Call, Control
from lambdas.stream.relay import Message, Receive, Relay, Send, forwarded_headers
from lambdas.stream.settings import StreamSettings
from services import metrics_names
from services.contract import public
from services.errors import (
    APIError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    render,
)
from services.frontdoor.routes import (
    Body,
    Match,
    Owner,
    RouteSpec,
    allowed_text,
    match,
    paths,
    template,
)
from services.telemetry import logs
from services.telemetry import metrics as telemetry_metrics
from services.telemetry.context import request_id
from services.tenancy.auth import Authenticator, bearer_token
from services.web import http1
from services.web.access import Observer
from services.web.head import check_head
from services.web.params import forwarded_headers as checked_headers
from services.web.ready import TableProbe

log = logging.getLogger("switchboard.stream")

_HEALTH = b'{"status":"ok"}'
_READY = b'{"status":"ready"}'
_JSON = b"application/json"
_ANTHROPIC_PATH = "/v1/messages"  # the route whose errors are Anthropic's
_ECHO = 120  # characters of a path an error message repeats, at most
_CHECKED = (b"idempotency-key", b"last-event-id")  # headers checked before a relay
_CONSOLE = "/console"  # the web console's files (console/), served as the gateway serves them


class StreamDoor:
    """The ASGI app. `authenticator` is only used for CONTROL routes (built on first use
    from the table when not given); WORKER routes are authenticated upstream."""

    def __init__(
        self,
        settings: StreamSettings,
        relay: Relay,
        control: Control,
        *,
        authenticator: Authenticator | None = None,
        output: logs.Output | None = None,
        metrics: telemetry_metrics.Metrics | None = None,
        probe: TableProbe | None = None,
    ) -> None:
        self.settings = settings
        self.relay = relay
        self.control = control
        self._authenticator = authenticator
        self._limits = {
            Body.REQUEST: settings.max_request_bytes,
            Body.DOCUMENT: settings.max_document_bytes,
        }
        self.output = output or logs.Output(metrics_names.STREAM_SERVICE)
        self.metrics = metrics or telemetry_metrics.current()
        self.observer = Observer(self.output, template, edge_id=function_url_request_id)
        self.probe = probe or TableProbe(settings.table)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                await self.observer(scope, receive, send, self._http)
            finally:
                self.output.metrics(self.metrics.documents())
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        if path == _CONSOLE or path.startswith(_CONSOLE + "/"):
            await _console(scope, send)
            return
        if path in ("/health", "/ready"):
            if method == "GET":
                await self._health(path, send)
                return
            found = Match(None, {}, ("GET",))
        else:
            found = match(method, path)
        route = found.route
        try:
            # API Gateway's own limits on a request's head (services/web/head.py).
            check_head(method, path, len(scope["query_string"]), (v for _, v in scope["headers"]))
            if route is None:
                raise _no_route(method, path, found.allowed)
            if route.owner is Owner.WORKER:
                await self._relay(scope, receive, send, route)
            elif route.public:
                await _describe_api(path, send)
            else:
                answer = await self._control(scope, receive, route, found.params)
                headers = [(b"content-type", answer.content_type.encode("latin-1"))]
                headers += [
                    (k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items()
                ]
                await _send(send, answer.status, headers, answer.body)
        except _ClientGone:
            return
        except APIError as exc:
            await _send_error(send, exc, anthropic=path == _ANTHROPIC_PATH)
        except Exception:
            log.exception("unhandled error on %s %s", method, path[:_ECHO])
            error = APIError("The server had an error while processing your request.")
            with contextlib.suppress(RuntimeError):  # the answer had begun: it stays cut
                await _send_error(send, error, anthropic=path == _ANTHROPIC_PATH)

    async def _health(self, path: str, send: Send) -> None:
        """Liveness, and readiness: the table answers (the relay's upstream is API Gateway,
        whose own health is not this door's to report)."""
        if path == "/health":
            await _send(send, 200, [(b"content-type", _JSON)], _HEALTH)
            return
        problem = await self.probe.problem_async()
        if problem is None:
            await _send(send, 200, [(b"content-type", _JSON)], _READY)
            return
        error = ServiceUnavailable(f"Not ready: {problem}.", code="not_ready")
        await _send_error(send, error, anthropic=False)

    async def _relay(
        self, scope: dict[str, Any], receive: Receive, send: Send, route: RouteSpec
    ) -> None:
        headers = scope["headers"]
        # A malformed Idempotency-Key or Last-Event-ID is the client's 400 here, not a
        # failed call upstream (services/web/params.py).
        checked_headers({k.decode(): v.decode("latin-1") for k, v in headers if k in _CHECKED})
        body = b""
        if route.body is not Body.NONE:
            body = await _read_body(receive, self._limits[route.body], _declared_length(headers))
        target = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        await self.relay(
            receive,
            send,
            method=scope["method"],
            target=target,
            head=forwarded_headers(headers, request_id()),
            body=body,
            error_event="error" if route.path == _ANTHROPIC_PATH else None,
        )

    async def _control(
        self, scope: dict[str, Any], receive: Receive, route: RouteSpec, params: dict[str, str]
    ) -> Answer:
        handler = self.control.handlers.get((route.method, route.path))
        if handler is None:
            raise NotFound(
                f"{route.method} {route.path} is served on the API URL (API Gateway), "
                "not on the stream URL.",
                code="not_on_stream_url",
            )
        headers = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if not name.startswith(b"x-switchboard-")  # the key alone says who calls
        }
        bearer_token(headers)  # a request without a key is refused before any AWS client
        principal = await self.authenticator.authenticate_async(headers)
        body = b""
        if route.body is not Body.NONE:  # read only once the caller is known
            limit = self._limits[route.body]
            body = await _read_body(receive, limit, _declared_length(scope["headers"]))
        query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        return await handler(Call(principal, params, query, headers, body))

    @property
    def authenticator(self) -> Authenticator:
        if self._authenticator is None:
            import boto3

            from services.tenancy.keys import KeyStore

            keys = KeyStore(boto3.client("dynamodb"), self.settings.table)
            self._authenticator = Authenticator(keys, cache_seconds=self.settings.key_cache_seconds)
        return self._authenticator

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _allow_open_files()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.relay.pool.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(
    settings: StreamSettings | None = None,
    *,
    authenticator: Authenticator | None = None,
    control: Control | None = None,
) -> StreamDoor:
    settings = settings or StreamSettings.from_env(os.environ)
    output = logs.configure(metrics_names.STREAM_SERVICE, os.environ)
    metrics = telemetry_metrics.install(
        telemetry_metrics.Metrics(metrics_names.STREAM_SERVICE, routes=paths())
    )
    pool = http1.ConnectionPool(
        settings.upstream_url, connect_timeout=settings.connect_timeout_seconds
    )
    relay = Relay(
        pool,
        first_byte_timeout=settings.first_byte_timeout_seconds,
        idle_timeout=settings.idle_timeout_seconds,
    )
    control = control or Control(settings.table, os.environ)
    return StreamDoor(
        settings, relay, control, authenticator=authenticator, output=output, metrics=metrics
    )


_LAMBDA_CONTEXT = b"x-amzn-request-context"


def function_url_request_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The Function URL's request id, from the request context the Lambda Web Adapter
    forwards (`x-amzn-request-context`, JSON); None outside Lambda."""
    for name, value in headers:
        if name == _LAMBDA_CONTEXT:
            try:
                found = orjson.loads(value).get("requestId")
            except (orjson.JSONDecodeError, AttributeError):
                return None
            return found if isinstance(found, str) else None
    return None


class _ClientGone(Exception):
    """The client left while sending its request: there is no one to answer."""


def _declared_length(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if name == b"content-length":
            return value
    return None


async def _read_body(receive: Receive, limit: int, declared: bytes | None) -> bytes:
    """The request body, refusing with 413 as soon as it is known to exceed `limit`."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    message = await receive()
    body: bytes = message.get("body", b"")
    if message["type"] == "http.request" and not message.get("more_body", False):
        if len(body) > limit:
            raise _too_large(limit)
        return body
    parts = bytearray(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        parts += message.get("body", b"")
        if len(parts) > limit:
            raise _too_large(limit)
    if message["type"] == "http.disconnect":
        raise _ClientGone
    return bytes(parts)


async def _console(scope: dict[str, Any], send: Send) -> None:
    """The web console (the `console` package, shared with the gateway Lambda), from the
    same origin as the API it calls."""
    from console import serve

    if_none_match = next(
        (v.decode("latin-1") for k, v in scope["headers"] if k == b"if-none-match"), None
    )
    answer = serve(scope["path"], scope["method"], if_none_match)
    headers = [(b"content-type", answer.content_type.encode("latin-1"))]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items()]
    if answer.status == 304:
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    await _send(send, answer.status, headers, answer.body)  # uvicorn drops a HEAD's body


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")


def _no_route(method: str, path: str, allowed: tuple[str, ...]) -> APIError:
    shown = path if len(path) <= _ECHO else path[:_ECHO] + "..."
    if not allowed:
        return NotFound(f"Unknown request URL: {method} {shown}.")
    return MethodNotAllowed(
        f"Method {method} is not allowed on {shown}; use {allowed_text(allowed)}.",
        headers={"allow": ", ".join(allowed)},
    )


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers.append((b"content-length", b"%d" % len(body)))
    start: Message = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})


async def _describe_api(path: str, send: Send) -> None:
    """The contract and its reference page, without a key (services/contract/public.py)."""
    found = public.answer(path)
    if found is None:
        raise NotFound(f"Unknown request URL: GET {path[:_ECHO]}.")
    headers = [(b"content-type", found.content_type.encode("latin-1"))]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in found.headers.items()]
    await _send(send, 200, headers, found.body.encode())


async def _send_error(send: Send, error: APIError, *, anthropic: bool) -> None:
    """`error` in the route's envelope: Anthropic's on /v1/messages, OpenAI's elsewhere."""
    headers = [(b"content-type", _JSON)]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()]
    body = render(_ANTHROPIC_PATH, error) if anthropic else error.json()
    await _send(send, error.status, headers, body)


def _allow_open_files() -> None:
    """Raise the open-file limit to its hard limit: each relayed stream holds two
    descriptors (the client's connection and the upstream's), and the usual soft limit
    of 1,024 would cap a container or a local door at about 500 streams."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
