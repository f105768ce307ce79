"""A lean, pooled HTTP/1.1 client for the worker's hot path to OpenAI-compatible upstreams.

General-purpose clients spend more time per request than the whole of Switchboard's own
work (the benchmark in `bench/` measures it): this one writes a request in one call,
parses the answer with httptools (the parser uvicorn uses), keeps connections alive per
origin, and hands a streamed body over chunk by chunk as it arrives. It does only what
the upstream calls need: one origin, HTTP/1.1, Content-Length or chunked bodies, TLS.

Errors: `ConnectError` (could not connect), `ConnectionLost` (the peer closed or reset
mid-answer), `ProtocolError` (an answer that is not HTTP). Timeouts are the caller's,
except `connect_timeout`.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import AsyncIterator, Mapping
from urllib.parse import urlsplit

import httptools


class HTTPError(Exception):
    pass


class ConnectError(HTTPError):
    pass


class ConnectionLost(HTTPError):
    pass


class ProtocolError(HTTPError):
    pass


class _Connection(asyncio.Protocol):
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self.transport: asyncio.WriteTransport | None = None
        self.response: Response | None = None
        self.reusable = True
        self._parser = httptools.HttpResponseParser(self)

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport

    def data_received(self, data: bytes) -> None:
        if self.response is None:
            self.reusable = False
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.reusable = False
            self.response._fail(ProtocolError(f"not a valid HTTP answer: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        if self.response is not None and not self.response.complete:
            self.response._fail(ConnectionLost("the upstream closed the connection mid-answer"))
        self._pool._forget(self)

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.response is not None
        self.response.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        assert self.response is not None
        self.response.status = self._parser.get_status_code()
        if not self.response._head.done():
            self.response._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        assert self.response is not None
        self.response._push(body)

    def on_message_complete(self) -> None:
        assert self.response is not None
        self.reusable = self.reusable and self._parser.should_keep_alive()
        self.response._finish()

    def begin(self, request: bytes, response: Response) -> None:
        assert self.transport is not None
        self.response = response
        self._parser = httptools.HttpResponseParser(self)
        self.transport.write(request)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Response:
    """An answer whose head has arrived. Read the body whole (`read`) or as it comes
    (`chunks`); `aclose` when done. Leaving a body unread closes the connection."""

    def __init__(self, connection: _Connection, pool: ConnectionPool) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.complete = False
        self._connection = connection
        self._pool = pool
        self._loop = asyncio.get_running_loop()
        self._head: asyncio.Future[None] = self._loop.create_future()
        self._chunks: collections.deque[bytes] = collections.deque()
        self._error: HTTPError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._released = False

    def _push(self, data: bytes) -> None:
        self._chunks.append(data)
        self._wake()

    def _finish(self) -> None:
        self.complete = True
        self._wake()

    def _fail(self, error: HTTPError) -> None:
        self._error = error
        if not self._head.done():
            self._head.set_exception(error)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body, chunk by chunk as it arrives."""
        try:
            while True:
                while self._chunks:
                    yield self._chunks.popleft()
                if self.complete:
                    return
                if self._error is not None:
                    raise self._error
                self._waiter = self._loop.create_future()
                await self._waiter
                self._waiter = None
        finally:
            await self.aclose()

    async def read(self) -> bytes:
        if self.complete and self._error is None:  # it came whole, with its head
            body = b"".join(self._chunks)
            self._chunks.clear()
            await self.aclose()
            return body
        return b"".join([chunk async for chunk in self.chunks()])

    async def aclose(self) -> None:
        if self._released:
            return
        self._released = True
        self._pool._release(self._connection, reusable=self.complete and self._error is None)


def encode_headers(headers: Mapping[str, str]) -> bytes:
    """Header lines for `ConnectionPool.request` (without the last line break)."""
    return b"\r\n".join(f"{k}: {v}".encode("latin-1") for k, v in headers.items())


class ConnectionPool:
    """Keep-alive connections to one origin (`http://host:port` or `https://...`)."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float = 5.0,
        max_idle: int = 256,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")
        self._ssl = (
            (ssl_context or ssl.create_default_context()) if parts.scheme == "https" else None
        )
        default_port = self.port == (443 if parts.scheme == "https" else 80)
        self._host_header = (self.host if default_port else f"{self.host}:{self.port}").encode()
        self._connect_timeout = connect_timeout
        self._max_idle = max_idle
        self._idle: collections.deque[_Connection] = collections.deque()
        self._open: set[_Connection] = set()

    async def request(
        self, method: str, path: str, headers: Mapping[str, str] | bytes, body: bytes = b""
    ) -> Response:
        """Send a request; returns once the answer's status and headers have arrived.
        `headers` may be given already encoded (`encode_headers`), as a caller sending the
        same ones on every request does."""
        head = [f"{method} {self.base_path}{path} HTTP/1.1".encode(), b"host: " + self._host_header]
        lines = headers if isinstance(headers, bytes) else encode_headers(headers)
        if lines:
            head.append(lines)
        head.append(b"content-length: %d" % len(body))
        payload = b"\r\n".join(head) + b"\r\n\r\n" + body
        for attempt in range(2):
            connection, reused = await self._acquire()
            response = Response(connection, self)
            connection.begin(payload, response)
            try:
                await response._head
            except ConnectionLost:
                # A kept-alive connection the server had already closed: once, on a new one.
                if reused and attempt == 0 and not response._chunks:
                    continue
                raise
            except BaseException:
                # Cancelled (a timeout, a caller that went away) while the upstream works
                # on the request: the connection is closed, so the upstream sees the caller
                # leave, and is never reused mid-request.
                await response.aclose()
                raise
            return response
        raise AssertionError("unreachable")

    async def _acquire(self) -> tuple[_Connection, bool]:
        while self._idle:
            connection = self._idle.pop()
            if connection.transport is not None and not connection.transport.is_closing():
                return connection, True
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(self), self.host, self.port, ssl=self._ssl
                ),
                self._connect_timeout,
            )
        except TimeoutError:
            raise ConnectError(
                f"connecting to {self.host}:{self.port} took over {self._connect_timeout:g} s"
            ) from None
        except OSError as exc:
            raise ConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        self._open.add(connection)
        return connection, False

    def _release(self, connection: _Connection, *, reusable: bool) -> None:
        connection.response = None
        if reusable and connection.reusable and len(self._idle) < self._max_idle:
            self._idle.append(connection)
        else:
            connection.close()

    def _forget(self, connection: _Connection) -> None:
        self._open.discard(connection)

    async def aclose(self) -> None:
        for connection in list(self._open):
            connection.close()
        self._idle.clear()
