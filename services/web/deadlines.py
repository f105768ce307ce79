"""Timeouts for the hot path: `async with deadline(seconds):` behaves as `asyncio.timeout`,
at a fraction of its cost per use.

`asyncio.timeout` schedules (and then cancels) a loop timer per use, and the router sets
one on every provider call and stream; in the worker's benchmark those timers were ~5% of
its CPU time per request. Here the deadlines of a loop share one timer: entering puts the
task in the bucket of its deadline, rounded up to `RESOLUTION`, and leaving takes it out
(a set add and discard). The timer is set for the earliest bucket; when it fires, it
cancels the tasks in the buckets whose time has come, and each of them leaves its
`async with` with `TimeoutError`, as from `asyncio.timeout`. A deadline fires at most
`RESOLUTION` late, never early.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from types import TracebackType

RESOLUTION = 0.01  # seconds


class _Deadlines:
    """The deadlines of one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.buckets: dict[int, set[Deadline]] = {}
        self.armed: int | None = None  # the tick the timer is set for
        self.timer: asyncio.TimerHandle | None = None

    def add(self, entry: Deadline, when: float) -> int:
        tick = math.ceil(when / RESOLUTION)
        bucket = self.buckets.get(tick)
        if bucket is None:
            bucket = self.buckets[tick] = set()
            if self.armed is None or tick < self.armed:
                self._arm(tick)
        bucket.add(entry)
        return tick

    def remove(self, entry: Deadline, tick: int) -> None:
        bucket = self.buckets.get(tick)
        if bucket is not None:
            bucket.discard(entry)
            if not bucket:
                del self.buckets[tick]
        # The timer stays set: firing for a bucket that is gone costs one look.

    def _arm(self, tick: int) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.armed = tick
        self.timer = self.loop.call_at(tick * RESOLUTION, self._fire)

    def _fire(self) -> None:
        self.timer = self.armed = None
        now = self.loop.time()
        for tick in [t for t in self.buckets if t * RESOLUTION <= now]:
            for entry in self.buckets.pop(tick):
                entry._expire()
        if self.buckets:
            self._arm(min(self.buckets))


_LOOPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Deadlines] = (
    weakref.WeakKeyDictionary()
)
_last: tuple[asyncio.AbstractEventLoop, _Deadlines] | None = None


def _deadlines(loop: asyncio.AbstractEventLoop) -> _Deadlines:
    global _last
    if _last is not None and _last[0] is loop:
        return _last[1]
    found = _LOOPS.get(loop)
    if found is None:
        found = _LOOPS[loop] = _Deadlines(loop)
    _last = (loop, found)
    return found


class Deadline:
    """`async with Deadline(seconds)`: see the module. `None` seconds: no deadline."""

    __slots__ = ("_cancelling", "_expired", "_seconds", "_task", "_tick", "_wheel")

    def __init__(self, seconds: float | None) -> None:
        self._seconds = seconds
        self._expired = False
        self._tick: int | None = None

    async def __aenter__(self) -> Deadline:
        if self._seconds is None:
            return self
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._wheel = _deadlines(task.get_loop())
        self._tick = self._wheel.add(self, self._wheel.loop.time() + self._seconds)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._tick is None:
            return
        self._wheel.remove(self, self._tick)
        self._tick = None
        # (uncancel() first: an expired deadline always takes back the cancel it made)
        expired = self._expired and self._task.uncancel() <= self._cancelling
        if expired and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc

    @property
    def expired(self) -> bool:
        return self._expired

    def _expire(self) -> None:
        if self._tick is not None and not self._expired:
            self._expired = True
            self._task.cancel()


def deadline(seconds: float | None) -> Deadline:
    return Deadline(seconds)
