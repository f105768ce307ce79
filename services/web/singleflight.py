"""One blocking call per key at a time, shared by every coroutine that asks meanwhile.

A cache entry that expires under load is missed by every request in flight at once; each
would start its own DynamoDB read in a thread, and the thread pool (a handful of threads)
would queue the requests behind them. With `SingleFlight` the first miss starts the read
and the others wait for its answer; `refresh` renews an entry in the background before it
expires, so that under steady traffic no request waits for a read at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger("switchboard.singleflight")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._pending: dict[Hashable, asyncio.Future[T]] = {}

    async def run(self, key: Hashable, call: Callable[[], T]) -> T:
        """`call()` in a thread, or the result of the one already running for `key`. A
        waiter that is cancelled does not cancel the call the others wait for."""
        return await asyncio.shield(self._start(key, call))

    def refresh(self, key: Hashable, call: Callable[[], T]) -> None:
        """Start `call()` for `key` in the background, unless it is already running (to
        renew a cache entry before it expires). A failure is logged; the next `run` after
        the entry expires meets it again."""
        self._start(key, call, background=True)

    def _start(
        self, key: Hashable, call: Callable[[], T], *, background: bool = False
    ) -> asyncio.Future[T]:
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(asyncio.to_thread(call))
            self._pending[key] = pending
            pending.add_done_callback(lambda _: self._pending.pop(key, None))
            if background:
                pending.add_done_callback(_log_failure)
        return pending


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("background refresh failed: %r", future.exception())
