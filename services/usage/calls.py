"""What the router reports for each provider call, and the port a recorder implements.

This is the hot path: the router builds one `ProviderCall` per attempt and hands it to
`CallRecorder.record`, which must only queue it. Pricing, estimating and writing happen
later, off the event loop (`services.usage.writer`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from services.canonical import CompletionRequest, StreamEvent, TextDelta, ToolCallDelta, Usage
from services.canonical import UsageReport as _UsageReport
from services.errors import APIError
from services.usage.context import Caller

ABANDONED = "abandoned"
OK = "ok"


@dataclass(slots=True)
class ProviderCall:
    """One attempt on one provider model, as the router saw it.

    `usage` is None when the provider reported none (a failure before it did, a stream
    abandoned before its usage event, an upstream that never sends it); the writer then
    records zero tokens for a failure, and an estimate for a call that produced output or
    was abandoned (marked `estimated`).
    """

    caller: Caller | None
    route: str  # the public name asked for
    model: str  # the provider model, `<provider>/<model>`
    started_at: float  # epoch seconds
    latency_ms: float
    first_token_ms: float | None
    outcome: str  # "ok", an error code, or "abandoned"
    usage: Usage | None
    streamed: bool
    request: CompletionRequest | None = None  # kept only to estimate a missing usage
    streamed_chars: int = 0  # characters of text and tool-call arguments the reply had
    request_id: str | None = None  # the correlation id of the request that made the call


class CallRecorder(Protocol):
    def record(self, call: ProviderCall) -> None:
        """Take one call's report. Runs on the request's path: it must only queue."""


def outcome_of(exc: BaseException) -> str:
    """The outcome of an attempt that raised `exc`."""
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return ABANDONED
    if isinstance(exc, APIError):
        return exc.code or exc.type
    return "internal_error"


class StreamMeter:
    """Adds up a stream's usage reports and counts its text as batches pass."""

    __slots__ = ("chars", "usage")

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.chars = 0

    def see(self, batch: list[StreamEvent]) -> None:
        for event in batch:
            if type(event) is TextDelta:
                self.chars += len(event.text)
            elif type(event) is _UsageReport:
                self.usage = event.usage if self.usage is None else self.usage + event.usage
            elif type(event) is ToolCallDelta:
                self.chars += len(event.arguments)
