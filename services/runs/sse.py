"""Run events as server-sent events: `id:` is the sequence number, so `Last-Event-ID`
resumes after the last event a client received."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from services.runs.model import Event
from services.web.params import event_number


async def parse_sse(lines: AsyncIterator[str]) -> AsyncIterator[Event]:
    """Run events from an SSE stream of `id:`/`event:`/`data:` lines (comments skipped)."""
    seq: int | None = None
    type_ = "message"
    data: list[str] = []
    async for line in lines:
        if not line:
            if seq is not None and data:
                payload = json.loads("\n".join(data))
                yield Event(seq, type_, payload.get("data", {}), payload.get("at", 0.0))
            seq, type_, data = None, "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("id:"):
            seq = int(line[3:].strip())
        elif line.startswith("event:"):
            type_ = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def sse_frame(event: Event) -> bytes:
    payload = json.dumps({"seq": event.seq, "type": event.type, "data": event.data, "at": event.at})
    return f"id: {event.seq}\nevent: {event.type}\ndata: {payload}\n\n".encode()


def parse_after(last_event_id: str | None, after: str | None) -> int:
    """The sequence number to resume after, from `Last-Event-ID` or `?after=` (400 if malformed)."""
    for name, raw in (("Last-Event-ID", last_event_id), ("after", after)):
        if raw is not None:
            return event_number(name, raw)
    return 0
