"""Server-sent events, as the OpenAI and Anthropic streaming APIs frame them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"
HEADERS = {
    "cache-control": "no-cache",
    "x-accel-buffering": "no",
}


def event(data: Any, *, name: str | None = None, id: int | None = None) -> bytes:
    """One SSE event carrying `data` as JSON."""
    head = b""
    if id is not None:
        head += b"id: %d\n" % id
    if name is not None:
        head += b"event: " + name.encode() + b"\n"
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


async def coalesce(frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The same bytes, with frames that are ready together sent as one write.

    An upstream often delivers many events in one network read; writing each as its own
    chunk costs a send, a write and a client wake-up apiece. Here a task drains `frames`
    into a queue, and each write takes everything queued by then: nothing waits for more
    to arrive, so every event still goes out as soon as it exists.
    """
    queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for frame in frames:
                queue.put_nowait(frame)
        except Exception as exc:
            queue.put_nowait(exc)
        else:
            queue.put_nowait(None)

    task = asyncio.create_task(pump())
    try:
        while True:
            items = [await queue.get()]
            while not queue.empty():
                items.append(queue.get_nowait())
            ready = [item for item in items if isinstance(item, bytes)]
            if ready:
                yield b"".join(ready)
            last = items[-1]
            if isinstance(last, BaseException):
                raise last
            if last is None:
                return
    finally:
        task.cancel()
