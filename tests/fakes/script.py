"""What a fake upstream answers, in provider-neutral terms. Each fake renders a `Script` in
its own wire protocol, so one conformance suite can drive every provider."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from services.canonical import StopReason, Usage

FaultKind = Literal["status", "reset", "slow_first_byte", "stall", "malformed"]


@dataclass(frozen=True)
class Fault:
    """How the upstream misbehaves.

    - status: answer `status` (with `retry_after` seconds in a Retry-After header if set)
      and the provider's native error body carrying `message`.
    - reset: close the connection without answering (a TCP reset).
    - slow_first_byte: wait `seconds` before answering at all, then answer normally.
    - stall: in a stream, after `after_chunks` chunks, wait `seconds`, then close.
    - malformed: in a stream, after `after_chunks` chunks, send a chunk that is not valid
      for the protocol (for example `data: {not json`), then close.
    """

    kind: FaultKind
    status: int = 500
    retry_after: float | None = None
    message: str = "injected failure"
    seconds: float = 0.0
    after_chunks: int = 0


@dataclass(frozen=True)
class ToolCallScript:
    id: str
    name: str
    fragments: list[str]  # the arguments JSON, as the stream delivers it

    @property
    def arguments(self) -> str:
        return "".join(self.fragments)


@dataclass(frozen=True)
class Script:
    """One upstream answer. `native_stop` overrides the provider-native stop reason the
    fake sends (to exercise a mapping such as Bedrock's `guardrail_intervened`)."""

    text: list[str] = field(default_factory=lambda: ["Hello", ", ", "world"])
    tool_calls: list[ToolCallScript] = field(default_factory=list)
    stop: StopReason = "stop"
    native_stop: str | None = None
    usage: Usage = field(default_factory=lambda: Usage(input_tokens=12, output_tokens=3))
    fault: Fault | None = None
    chunk_delay: float = 0.0  # seconds between stream chunks

    @property
    def full_text(self) -> str:
        return "".join(self.text)
