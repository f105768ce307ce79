"""The run record, its events, and how both appear in the API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from services.web import sse

RunStatus = Literal["queued", "running", "awaiting_input", "succeeded", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
ACTIVE: frozenset[str] = frozenset({"queued", "running", "awaiting_input"})


@dataclass(slots=True)
class Run:
    id: str
    tenant_id: str
    key_id: str
    kind: str
    status: RunStatus
    input: dict[str, Any]
    created_at: float
    updated_at: float
    owner: str | None = None
    owner_url: str | None = None
    lease_until: float = 0.0
    attempts: int = 0
    checkpoint: dict[str, Any] = field(default_factory=dict)
    progress: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    error: dict[str, Any] | None = None
    idempotency_key: str | None = None
    cancel_on_disconnect: bool = False
    expires_at: int = 0
    # Human input: what an `awaiting_input` run asks (`PendingInput.public()`), and the
    # answer stored for the worker that resumes it (see services/runs/inputs.py).
    pending_input: dict[str, Any] | None = None
    answer: dict[str, Any] | None = None
    # The correlation id of the request that created the run: its executions' log lines
    # and provider calls carry it (services/telemetry), whichever worker runs them.
    request_id: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def public(self, prefix: str = "") -> dict[str, Any]:
        """The run as the API shows it to its tenant; `prefix` goes before each URL (the
        API stage's path, such as `/api`, when the call came through API Gateway)."""
        base = f"{prefix}/v1/runs/{self.id}"
        return {
            "id": self.id,
            "object": "run",
            "kind": self.kind,
            "status": self.status,
            "created_at": int(self.created_at),
            "updated_at": int(self.updated_at),
            "attempts": self.attempts,
            "progress": self.progress,
            "result": self.result,
            "error": self.error,
            "pending_input": self.pending_input if self.status == "awaiting_input" else None,
            "urls": {
                "self": base,
                "events": f"{base}/events",
                "cancel": f"{base}/cancel",
                "input": f"{base}/input",
            },
        }


@dataclass(frozen=True, slots=True)
class Event:
    """One numbered event of a run. `seq` starts at 1 and has no gaps."""

    seq: int
    type: str
    data: dict[str, Any]
    at: float

    def frame(self) -> bytes:
        """The event as SSE: `id:` is its number, so `Last-Event-ID` resumes after it."""
        payload = {"seq": self.seq, "type": self.type, "data": self.data, "at": self.at}
        return sse.event(payload, name=self.type, id=self.seq)

    @classmethod
    def from_sse(cls, found: sse.Event) -> Event:
        """The run event an SSE event framed by `frame` carries; ValueError if it is not one."""
        if not found.id.isdigit() or not found.id.isascii():
            raise ValueError(f"a run event needs a numeric id, got {found.id[:20]!r}")
        payload = orjson.loads(found.data)
        if not isinstance(payload, dict):
            raise ValueError("a run event's data is not a JSON object")
        return cls(int(found.id), found.type, payload.get("data", {}), payload.get("at", 0.0))


async def read_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[Event]:
    """Run events from an SSE byte stream (as an owner's events endpoint sends them)."""
    parser = sse.Parser()
    async for chunk in chunks:
        for found in parser.feed(chunk):
            yield Event.from_sse(found)
