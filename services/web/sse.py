"""Server-sent events, as the OpenAI and Anthropic streaming APIs frame them."""

from __future__ import annotations

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
