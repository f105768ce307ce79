"""How a worker stops without cutting a stream or losing a record.

ECS stops a task (a deploy, a scale-in) with SIGTERM and kills it after the stop timeout
(120 s at most on Fargate). From SIGTERM on:

1. the worker takes no more runs from the queue (`Drain.begin`, chained to uvicorn's
   own SIGTERM handler);
2. uvicorn stops accepting connections and lets the open ones finish, streams included,
   for at most `--timeout-graceful-shutdown` (105 s in the image, inside the stop
   timeout); while streams are open, the task also holds ECS scale-in protection
   (`containers.worker.ecs.TaskProtection`), so deploys and scale-in wait for them;
3. then (the app's shutdown, `Drain.finish`): the runs still in progress here are
   stopped and released, so another worker takes each over at once from its last
   checkpoint rather than when its lease lapses; stored conversation turns finish; the
   usage writer writes what is queued; the protection is cleared; provider clients close.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Sequence
from types import FrameType
from typing import Any

from services.runs.service import RunService

log = logging.getLogger("switchboard.worker")


class Streams:
    """The worker's open streams (a `StreamGauge` of `services.web.asgi.EventStream`).
    `on_change(open)` is told when the first one opens and when the last one closes."""

    __slots__ = ("on_change", "open")

    def __init__(self, on_change: Callable[[int], None] | None = None) -> None:
        self.open = 0
        self.on_change = on_change

    def opened(self) -> None:
        self.open += 1
        if self.open == 1 and self.on_change is not None:
            self.on_change(1)

    def closed(self) -> None:
        self.open -= 1
        if self.open == 0 and self.on_change is not None:
            self.on_change(0)


class Drain:
    """The worker's way out, in the order the module gives. `closers` run in order at
    `finish`, after the runs are released; each one's failure is logged, not raised, so
    the next still runs (the usage writer must get its turn)."""

    def __init__(
        self,
        streams: Streams,
        runs: RunService | None,
        closers: Sequence[tuple[str, Callable[[], Awaitable[Any]]]],
    ) -> None:
        self.streams = streams
        self.runs = runs
        self.closers = closers
        self.draining = False

    def install(self) -> None:
        """Chain `begin` to the SIGTERM handler in place (uvicorn's, which starts its own
        graceful shutdown). Signals are only handled in the main thread; elsewhere (a
        test's app) `begin` is called directly."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        previous = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            loop.call_soon_threadsafe(self.begin)
            if callable(previous):
                previous(signum, frame)

        signal.signal(signal.SIGTERM, on_sigterm)

    def begin(self) -> None:
        """Stop taking new work; what is open goes on."""
        if self.draining:
            return
        self.draining = True
        if self.runs is not None:
            self.runs.stop_taking()
        log.info("draining: %d open streams, taking no more runs", self.streams.open)

    async def finish(self) -> None:
        self.begin()
        if self.runs is not None:
            try:
                await self.runs.stop()
            except Exception:
                log.exception("could not stop the runs")
        for name, close in self.closers:
            try:
                await close()
            except Exception:
                log.exception("could not close %s", name)
