"""Run events: numbered, persisted in batches, then published to live subscribers.

The worker that owns a run writes its events through an `EventLog`: each event gets the
next sequence number, waits in a buffer for at most `flush_interval` (or until a batch is
full), is written to DynamoDB, and only then goes to subscribers. Because nothing is
published before it is persisted, a subscriber never sees an event that a replay would
not contain, and a worker that takes a run over continues the numbering after the last
persisted event.

Subscribers on the owning worker read the run's `Channel` here. Subscribers elsewhere (on
another worker, or behind the stream front door, which reaches a worker through the load
balancer) find the owner's address in the run record (`owner_url`) and read the owner's
internal events endpoint; when the owner cannot be reached they read the persisted events
from DynamoDB. See `services.runs.service.RunService.subscribe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from services.runs.model import Event, Run

Persist = Callable[[Run, list[Event]], Any]


class Channel:
    """The live events of one run on its owning worker, from `first_seq` on."""

    def __init__(self, first_seq: int) -> None:
        self.first_seq = first_seq
        self.events: list[Event] = []
        self.closed = False
        self._changed = asyncio.Condition()

    async def publish(self, events: list[Event]) -> None:
        async with self._changed:
            self.events.extend(events)
            self._changed.notify_all()

    async def close(self) -> None:
        async with self._changed:
            self.closed = True
            self._changed.notify_all()

    async def after(self, seq: int) -> AsyncIterator[Event]:
        """Events with a number above `seq` (>= first_seq - 1), live until the channel closes."""
        index = max(0, seq - self.first_seq + 1)
        while True:
            async with self._changed:
                while index >= len(self.events) and not self.closed:
                    await self._changed.wait()
                batch = self.events[index:]
                done = self.closed
            for event in batch:
                yield event
            index += len(batch)
            if done and index >= len(self.events):
                return


class EventLog:
    """The owner's writer for one run's events."""

    def __init__(
        self,
        run: Run,
        channel: Channel,
        persist: Persist,
        *,
        flush_interval: float = 0.05,
        batch_size: int = 25,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.run = run
        self.channel = channel
        self._persist = persist
        self._next_seq = channel.first_seq
        self._pending: list[Event] = []
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._clock = clock
        self._wake = asyncio.Event()
        # One flush at a time: batches must reach subscribers in the order of their numbers.
        self._flushing = asyncio.Lock()
        self._closing = False
        self._flusher = asyncio.create_task(self._flush_loop(), name=f"events-{run.id}")

    def emit(self, type: str, data: dict[str, Any] | None = None) -> Event:
        event = Event(self._next_seq, type, data or {}, self._clock())
        self._next_seq += 1
        self._pending.append(event)
        if len(self._pending) >= self._batch_size:
            self._wake.set()
        return event

    async def flush(self) -> None:
        """Persist and publish everything emitted so far."""
        async with self._flushing:
            while self._pending:
                batch, self._pending = self._pending, []
                await asyncio.to_thread(self._persist, self.run, batch)
                await self.channel.publish(batch)

    async def last(
        self, type: str, data: dict[str, Any], record: Callable[[], Awaitable[None]]
    ) -> None:
        """Emit the run's final event: persisted, then the outcome recorded by `record`,
        then published. A subscriber that sees it finds the run ended; a reader that finds
        the run ended finds it among the persisted events."""
        final = self.emit(type, data)
        self._pending.remove(final)
        await self.flush()
        async with self._flushing:
            await asyncio.to_thread(self._persist, self.run, [final])
            await record()
            await self.channel.publish([final])

    async def close(self) -> None:
        """Flush what is left, then end every subscriber's stream."""
        self._closing = True
        self._wake.set()
        await self._flusher
        await self.flush()
        await self.channel.close()

    async def _flush_loop(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_interval)
            self._wake.clear()
            await self.flush()


class Hub:
    """The channels of the runs this worker owns."""

    def __init__(self) -> None:
        self._channels: dict[str, Channel] = {}

    def open(self, run_id: str, first_seq: int) -> Channel:
        channel = Channel(first_seq)
        self._channels[run_id] = channel
        return channel

    def get(self, run_id: str) -> Channel | None:
        return self._channels.get(run_id)

    def release(self, run_id: str, channel: Channel) -> None:
        if self._channels.get(run_id) is channel:
            del self._channels[run_id]
