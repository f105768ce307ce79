"""Relaying one request to the upstream and its answer back, as plain ASGI.

The request goes as the client sent it (method, raw path and query, body, headers with
the client's own credential), except the headers of this hop and those a client must not
set (see `forwarded_headers`). The answer comes back as the upstream gave it: status,
headers (but this hop's), and a body that is passed on chunk by chunk as it arrives, so
server-sent events keep their timing. Per chunk the relay does no more than hand the
bytes to the server: no framework, no task group, one watcher task per request.

When the client goes away, the upstream connection is closed at once (the worker then
stops a streamed completion, as it does for a client of its own). Failures before the
answer's head are errors in the route's envelope: 503 when the upstream cannot be reached,
502 when it answers with something that is not HTTP or drops the connection, 504 past the
first-byte timeout. After the head has gone out the status cannot change: a stream of
server-sent events ends with an `error` event, any other body is cut short (the client
sees the connection close before the body's end).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from services.errors import (
    APIError,
    GatewayTimeout,
    ServiceUnavailable,
    UpstreamError,
    anthropic_body,
)
from services.telemetry.context import CURRENT
from services.telemetry.ids import REQUEST_ID_HEADER
from services.web import http1
from services.web.sse import event

log = logging.getLogger("switchboard.stream")

Headers = Iterable[tuple[bytes, bytes]]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# This hop's headers (RFC 9110 7.6.1), and what the connection to the upstream sets itself.
_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
        b"expect",
    }
)
# Never taken from a client: Switchboard's internal headers, what proxies say about the
# request (API Gateway sets X-Forwarded-* itself, and the worker builds URLs from them),
# and AWS's own headers about this invocation (the Lambda Web Adapter adds x-amzn-*).
_NOT_FROM_CLIENTS = (b"x-switchboard-", b"x-forwarded-", b"forwarded", b"x-amzn-", b"x-amz-")
_REQUEST_ID = REQUEST_ID_HEADER.encode()
# Not relayed back: this hop's, and those the server in front of the door writes itself.
_NOT_RELAYED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "date",
        "server",
    }
)


def forwarded_headers(headers: Headers, request_id: str | None = None) -> bytes:
    """The header lines sent upstream for a client's `headers` (lower-case names, as ASGI
    servers give them): all of them but this hop's and those a client must not set; with
    `request_id`, the call's correlation id in `x-request-id` (the client's own, if it
    sent one, is replaced: it is that id when it was sane)."""
    lines = [
        name + b": " + value
        for name, value in headers
        if name not in _HOP and not name.startswith(_NOT_FROM_CLIENTS) and name != _REQUEST_ID
    ]
    if request_id is not None:
        lines.append(_REQUEST_ID + b": " + request_id.encode())
    return b"\r\n".join(lines)


def relayed_headers(headers: dict[str, str], base_path: str = "") -> list[tuple[bytes, bytes]]:
    """The answer's headers for the client. A `Location` under the upstream's own base path
    (the API's stage, `/api`) names the same resource on this door without it."""
    out = []
    for name, value in headers.items():
        if name in _NOT_RELAYED:
            continue
        if name == "location" and base_path and value.startswith(base_path + "/"):
            value = value[len(base_path) :]
        out.append((name.encode("latin-1"), value.encode("latin-1")))
    return out


class Relay:
    """Relays requests to one upstream origin over a pool of kept-alive connections.

    `first_byte_timeout` bounds the wait for the answer's head; `idle_timeout` cuts a body
    that stops flowing (after that long to twice that long without a chunk)."""

    def __init__(
        self,
        pool: http1.ConnectionPool,
        *,
        first_byte_timeout: float,
        idle_timeout: float,
    ) -> None:
        self.pool = pool
        self.first_byte_timeout = first_byte_timeout
        self.idle_timeout = idle_timeout

    async def __call__(
        self,
        receive: Receive,
        send: Send,
        *,
        method: str,
        target: str,
        head: bytes,
        body: bytes,
        error_event: str | None,
    ) -> None:
        """Relay one request (`target`: raw path and query) and its answer. An `APIError`
        raised is for the caller to answer: nothing has been sent yet. `error_event` names
        the SSE event that reports a failure mid-stream (None: a `data:`-only event)."""
        task = asyncio.current_task()
        assert task is not None
        watch = _Watch(task)
        watcher = asyncio.ensure_future(_disconnected(receive))
        watcher.add_done_callback(watch.client_gone)
        upstream: http1.Response | None = None
        try:
            upstream = await self._open(method, target, head, body)
            await self._answer(upstream, send, watch, error_event)
        except asyncio.CancelledError:
            if watch.reason != "gone":
                raise
            task.uncancel()  # the client left: nothing more to send, nothing to report
        finally:
            watch.stop()
            watcher.remove_done_callback(watch.client_gone)
            watcher.cancel()
            if upstream is not None:
                await upstream.aclose()  # unread, the connection is closed, not reused

    async def _open(self, method: str, target: str, head: bytes, body: bytes) -> http1.Response:
        try:
            async with asyncio.timeout(self.first_byte_timeout):
                return await self.pool.request(method, target, head, body)
        except TimeoutError:
            log.warning("upstream gave no answer within %g s: %s %s",
                        self.first_byte_timeout, method, _path(target))  # fmt: skip
            raise GatewayTimeout(
                f"The upstream API did not answer within {self.first_byte_timeout:g} s."
            ) from None
        except http1.ConnectError as exc:
            log.warning("upstream unreachable: %s", exc)
            raise ServiceUnavailable("The upstream API is unreachable; try again.") from None
        except http1.HTTPError as exc:
            log.warning("upstream failed before answering: %s %s: %s", method, _path(target), exc)
            raise UpstreamError(
                "The upstream API closed the connection without a valid answer."
            ) from None

    async def _answer(
        self, upstream: http1.Response, send: Send, watch: _Watch, error_event: str | None
    ) -> None:
        headers = relayed_headers(upstream.headers, self.pool.base_path)
        no_body = upstream.status in (204, 304) or upstream.status < 200
        call = CURRENT.get()
        if call is not None:  # the upstream answered: its own logs have the access line
            call.relayed = True
        if upstream.complete:  # the usual JSON answer: it came whole with its head
            data = await upstream.read()
            if not no_body:
                headers.append((b"content-length", b"%d" % len(data)))
            await send({"type": "http.response.start", "status": upstream.status,
                        "headers": headers})  # fmt: skip
            await send({"type": "http.response.body", "body": data})
            return
        length = upstream.headers.get("content-length")
        if length is not None and not no_body:
            headers.append((b"content-length", length.encode("latin-1")))
        await send({"type": "http.response.start", "status": upstream.status, "headers": headers})
        sse = upstream.headers.get("content-type", "").startswith("text/event-stream")
        watch.arm(self.idle_timeout)
        try:
            async for chunk in upstream.chunks():
                watch.progress += 1
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except asyncio.CancelledError:
            if watch.reason != "idle":
                raise
            watch.task.uncancel()
            failure: APIError = GatewayTimeout(
                f"The upstream API sent nothing for {self.idle_timeout:g} s; the stream was cut."
            )
        except http1.HTTPError as exc:
            failure = UpstreamError("The upstream API ended the answer before its end.")
            log.warning("upstream failed mid-answer: %s", exc)
        else:
            await send({"type": "http.response.body", "body": b""})
            return
        if sse:
            body = anthropic_body(failure) if error_event else failure.body()
            frame = event(body, name=error_event)
            await send({"type": "http.response.body", "body": frame})
        # Otherwise the answer stays unfinished: the server closes the connection, and the
        # client sees a body cut short rather than a shorter one passed off as whole.


class _Watch:
    """Why the relaying task was cancelled, when the relay cancelled it: the client left
    (`gone`) or the upstream fell silent (`idle`). One timer per idle period, not per chunk:
    a chunk only counts `progress`."""

    __slots__ = ("_limit", "_seen", "_timer", "active", "progress", "reason", "task")

    def __init__(self, task: asyncio.Task[object]) -> None:
        self.task = task
        self.active = True
        self.reason: str | None = None
        self.progress = 0
        self._seen = 0
        self._limit = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def client_gone(self, _: asyncio.Future[None]) -> None:
        self._cancel("gone")

    def arm(self, limit: float) -> None:
        self._limit = limit
        self._timer = asyncio.get_running_loop().call_later(limit, self._check)

    def _check(self) -> None:
        if self.progress == self._seen:
            self._cancel("idle")
        elif self.active:
            self._seen = self.progress
            self._timer = asyncio.get_running_loop().call_later(self._limit, self._check)

    def _cancel(self, reason: str) -> None:
        if self.active:
            self.active = False
            self.reason = reason
            self.task.cancel()

    def stop(self) -> None:
        self.active = False
        if self._timer is not None:
            self._timer.cancel()


async def _disconnected(receive: Receive) -> None:
    """Returns when the client has disconnected (or the response is complete)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _path(target: str) -> str:
    """The path of a target, for a log line: never the query, which may carry anything."""
    return target.partition("?")[0][:200]
