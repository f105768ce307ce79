"""What the ASGI entry points (the worker and the stream front door) share: bounded body
reading, JSON decoding and errors in the route's envelope (OpenAI's; Anthropic's on
`/v1/messages`) for everything, 404 and 405 included.

The worker's AI routes are its hot path, and each layer of a framework costs every request
CPU time that the benchmark counts (`make bench`). `App` is Starlette, except that a route
whose endpoint is a `Plain` endpoint is served straight from the ASGI call: no middleware,
no router walk, no `Request` object. A `Plain` endpoint gets an `Exchange` (the headers in
a dict, the body as a stream), answers with any Starlette `Response`, and has its errors
answered in the same OpenAI shape as every other route's. `EventStream` sends server-sent
events without the task group that Starlette's `StreamingResponse` starts per response,
with a comment line as a heartbeat whenever it has sent nothing for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive, Scope, Send

from services.errors import APIError, PayloadTooLarge, error_from_status, render
from services.web.access import Observer
from services.web.body import parse_json
from services.web.head import MAX_HEADERS, HeadersTooLarge
from services.web.params import ascii_int

log = logging.getLogger("switchboard")


class JSONBytesResponse(Response):
    """JSON by orjson (or bytes already JSON); the hot path's answer (a status with a body,
    headers that leave the content type alone) is built without Starlette's header
    handling (the same headers result)."""

    media_type = "application/json"

    def __init__(
        self,
        content: Any,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if (
            status_code < 200
            or status_code in (204, 304)
            or (headers and any(k.lower().startswith("content-") for k in headers))
        ):
            super().__init__(content, status_code, headers)
            return
        self.status_code = status_code
        self.background = None
        self.body = self.render(content)
        self.raw_headers = [
            (b"content-length", b"%d" % len(self.body)),
            (b"content-type", b"application/json"),
        ]
        if headers:
            self.raw_headers += [
                (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
            ]

    def render(self, content: Any) -> bytes:
        return content if isinstance(content, bytes) else orjson.dumps(content)


class Incoming(Protocol):
    """What handlers read of a request: a Starlette `Request` or an `Exchange`."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    def stream(self) -> AsyncIterator[bytes]: ...


class Exchange:
    """A request to a `Plain` endpoint: its headers (lower-case names; the first of a
    repeated header, as Starlette's `Headers.get` gives) and its body, read once."""

    __slots__ = ("_first", "_receive", "headers", "scope")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self._receive = receive
        self._first: Message | None = None  # read by `whole`, not yet by `stream`
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            key = name.decode("latin-1").lower()
            if key not in headers:
                headers[key] = value.decode("latin-1")
        self.headers = headers

    async def whole(self) -> bytes | None:
        """The body if it came in one message (the usual request), else None: then
        `stream()` yields all of it, from its first part."""
        message = await self._receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            body: bytes = message.get("body", b"")
            return body
        self._first = message
        return None

    async def stream(self) -> AsyncIterator[bytes]:
        message, self._first = self._first, None
        while True:
            if message is None:
                message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            body = message.get("body", b"")
            if body:
                yield body
            if not message.get("more_body", False):
                return
            message = None


class Plain:
    """A route endpoint served as plain ASGI by `App`: `endpoint(exchange)` returns the
    response (any Starlette `Response`); an `APIError` it raises is answered in the OpenAI
    error shape, anything else as a logged 500, as `install_error_handlers` does."""

    def __init__(self, endpoint: Callable[[Exchange], Awaitable[Response]]) -> None:
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            response = await self.endpoint(Exchange(scope, receive))
        except APIError as exc:
            response = error_response(exc, scope["path"])
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            response = error_response(_internal(), scope["path"])
        await response(scope, receive, send)


class App(Starlette):
    """Starlette, serving the routes with a `Plain` endpoint (and no path parameters)
    directly: the router and middleware still answer every other path and method. With an
    `observer` (services.web.access), every HTTP request is served through it: its
    correlation id, access line and metrics."""

    def __init__(
        self, routes: Sequence[BaseRoute], *, observer: Observer | None = None, **kwargs: Any
    ) -> None:
        super().__init__(routes=routes, **kwargs)
        self.observer = observer
        self._direct: dict[tuple[str, str], Plain] = {
            (method, route.path): route.endpoint
            for route in routes
            if isinstance(route, Route)
            and isinstance(route.endpoint, Plain)
            and "{" not in route.path
            for method in route.methods or ()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.observer is not None:
            await self.observer(scope, receive, send, self._serve)
        else:
            await self._serve(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if len(scope["headers"]) > MAX_HEADERS:  # ours: API Gateway counts none
                error = HeadersTooLarge(
                    f"The request has {len(scope['headers'])} headers; at most {MAX_HEADERS} "
                    "are accepted."
                )
                await error_response(error, scope["path"])(scope, receive, send)
                return
            endpoint = self._direct.get((scope["method"], scope["path"]))
            if endpoint is not None:
                scope["app"] = self
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


class StreamGauge(Protocol):
    """Told when a stream starts and ends (the worker counts its open streams)."""

    def opened(self) -> None: ...

    def closed(self) -> None: ...


HEARTBEAT = b": keep-alive\n\n"
# What makes a route's SSE response from its frames and headers (an `EventStream`).
StreamResponse = Callable[[AsyncIterator[bytes], Mapping[str, str]], Response]


class EventStream(Response):
    """A `text/event-stream` response of `frames`, each sent as it comes.

    When the client goes away mid-stream, the task sending it is cancelled, so the
    upstream call behind `frames` stops (and is accounted as abandoned) at once. One
    waiting task per stream notices the disconnect, where `StreamingResponse` runs a task
    group of two with cancel scopes. With `heartbeat` seconds, a comment line is sent
    whenever nothing was sent for that long (load balancers and API Gateway close a
    connection that stays silent); one loop timer per stream, no task unless it fires."""

    media_type = "text/event-stream"

    def __init__(
        self,
        frames: AsyncIterator[bytes],
        headers: Mapping[str, str],
        *,
        heartbeat: float | None = None,
        gauge: StreamGauge | None = None,
    ) -> None:
        self.frames = frames
        self.status_code = 200
        self.background = None
        self.heartbeat = heartbeat
        self.gauge = gauge
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        sending = True
        gone = False

        def on_disconnect(_: asyncio.Future[None]) -> None:
            nonlocal gone
            if sending:
                gone = True
                task.cancel()

        if self.gauge is not None:
            self.gauge.opened()
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        watcher = asyncio.ensure_future(_disconnected(receive))
        watcher.add_done_callback(on_disconnect)
        pulse = _Pulse(send, self.heartbeat) if self.heartbeat else None
        try:
            async for frame in self.frames:
                if pulse is not None:  # (inline: this runs once per frame)
                    if pulse.beat is not None:
                        await asyncio.shield(pulse.beat)
                    pulse.last = pulse.loop.time()
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            if pulse is not None:
                await pulse.stop()
            sending = False
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not gone:
                raise
            task.uncancel()  # the client left: nothing more to send, nothing to report
        finally:
            sending = False
            if pulse is not None:
                await pulse.stop()
            watcher.remove_done_callback(on_disconnect)
            watcher.cancel()
            close = getattr(self.frames, "aclose", None)
            try:
                if close is not None:
                    await close()
            finally:
                if self.gauge is not None:
                    self.gauge.closed()


class _Pulse:
    """Sends a heartbeat on `send` once `every` seconds pass with nothing sent."""

    __slots__ = ("beat", "every", "last", "loop", "send", "timer")

    def __init__(self, send: Send, every: float) -> None:
        self.send = send
        self.every = every
        self.loop = asyncio.get_running_loop()
        self.last = self.loop.time()
        self.beat: asyncio.Future[None] | None = None  # a heartbeat being sent
        self.timer: asyncio.TimerHandle | None = self.loop.call_at(self.last + every, self._due)

    def _due(self) -> None:
        self.timer = None
        if self.beat is None and self.loop.time() - self.last >= self.every * 0.999:
            self.beat = asyncio.ensure_future(self._send())
        else:
            self.timer = self.loop.call_at(self.last + self.every, self._due)

    async def _send(self) -> None:
        try:
            await self.send({"type": "http.response.body", "body": HEARTBEAT, "more_body": True})
        except Exception:  # the client is gone: the stream notices it on its own
            return
        finally:
            self.beat = None
            self.last = self.loop.time()
            if self.every:
                self.timer = self.loop.call_at(self.last + self.every, self._due)

    async def stop(self) -> None:
        timer, self.timer, self.every = self.timer, None, 0.0
        if timer is not None:
            timer.cancel()
        if self.beat is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.beat)


async def _disconnected(receive: Receive) -> None:
    """Returns when the client has disconnected (or the response is complete)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def read_body(request: Incoming, limit: int) -> bytes:
    """The request body, refusing with 413 as soon as it exceeds `limit` bytes."""
    declared = ascii_int(request.headers.get("content-length"))
    if declared is not None and declared > limit:
        raise _too_large(limit)
    if isinstance(request, Exchange):
        whole = await request.whole()
        if whole is not None:
            if len(whole) > limit:
                raise _too_large(limit)
            return whole
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def decode_json(body: bytes) -> Any:
    """The body's JSON value, read strictly (services/web/body.py), or a 400."""
    return parse_json(body)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")


def error_response(error: APIError, path: str) -> Response:
    """`error` in the envelope the client of `path` expects (services.errors.envelope_for)."""
    return JSONBytesResponse(render(path, error), status_code=error.status, headers=error.headers)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return error_response(exc, request.url.path)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"Unknown request URL: {request.method} {request.url.path}."
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}."
    else:
        message = str(exc.detail)
    return error_response(error_from_status(exc.status_code, message), request.url.path)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(_internal(), request.url.path)


def _internal() -> APIError:
    return APIError("The server had an error while processing your request.")


def install_error_handlers(app: Starlette) -> None:
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
