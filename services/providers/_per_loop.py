"""A client that belongs to one event loop (its pooled connections do)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    """Builds a client on first use and again whenever the running loop is another one:
    a client from a loop that has ended holds dead connections. The worker runs one loop,
    so it builds one client; tests that call `asyncio.run` per call get a fresh one."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._client: T | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client, self._loop = self._build(), loop
        return self._client

    def take(self) -> T | None:
        """The current client, now forgotten (for the caller to close)."""
        client, self._client, self._loop = self._client, None, None
        return client
