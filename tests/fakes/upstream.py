"""The base of every fake upstream: a queue of scripts, a record of requests, and the
faults every protocol shares. A provider's fake renders success and its native error
body; this base handles when and how things go wrong."""

from __future__ import annotations

import asyncio
import collections
from abc import ABC, abstractmethod
from typing import Any

from services.canonical import Message
from tests.fakes.http import FakeHTTPServer, Request, Writer
from tests.fakes.script import Script


class FakeUpstream(ABC):
    """Start with `start()`; `enqueue` scripts (answered in order; when none is queued, the
    default `Script()` answers); read `requests` to see what the provider sent."""

    def __init__(self) -> None:
        self.scripts: collections.deque[Script] = collections.deque()
        self.requests: list[Request] = []
        self._server = FakeHTTPServer(self._handle)

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> FakeUpstream:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def enqueue(self, *scripts: Script) -> None:
        self.scripts.extend(scripts)

    def reset(self) -> None:
        self.scripts.clear()
        self.requests.clear()

    async def _handle(self, request: Request, writer: Writer) -> None:
        if not self.accepts(request):
            await writer.respond(
                404,
                b'{"error": "no such route in this fake"}',
                {"content-type": "application/json"},
            )
            return
        self.requests.append(request)
        script = self.scripts.popleft() if self.scripts else Script()
        fault = script.fault
        if fault is not None and fault.kind == "reset":
            writer.abort()
            return
        if fault is not None and fault.kind == "slow_first_byte":
            await asyncio.sleep(fault.seconds)
        if fault is not None and fault.kind == "status":
            headers = {"content-type": "application/json"}
            if fault.retry_after is not None:
                headers["retry-after"] = f"{fault.retry_after:g}"
            await writer.respond(
                fault.status, self.error_body(fault.status, fault.message), headers
            )
            return
        if self.is_stream(request):
            await self.stream(request, script, writer)
        else:
            await self.complete(request, script, writer)

    async def chunks(
        self, writer: Writer, script: Script, frames: list[bytes], *, malformed: bytes
    ) -> None:
        """Send a stream's frames, applying the script's stall or malformed fault."""
        fault = script.fault
        for index, frame in enumerate(frames):
            if fault is not None and index == fault.after_chunks:
                if fault.kind == "stall":
                    await asyncio.sleep(fault.seconds)
                    writer.abort()
                    return
                if fault.kind == "malformed":
                    await writer.write(malformed)
                    await writer.end()
                    writer.abort()
                    return
            await writer.write(frame)
            if script.chunk_delay:
                await asyncio.sleep(script.chunk_delay)
        await writer.end()

    def accepts(self, request: Request) -> bool:
        return True

    @abstractmethod
    def is_stream(self, request: Request) -> bool:
        """Whether the request asked for a streamed answer."""

    @abstractmethod
    async def complete(self, request: Request, script: Script, writer: Writer) -> None:
        """Answer with the whole response in the native format."""

    @abstractmethod
    async def stream(self, request: Request, script: Script, writer: Writer) -> None:
        """Answer with the native stream (use `chunks` so faults apply)."""

    @abstractmethod
    def error_body(self, status: int, message: str) -> bytes:
        """The provider's native error body."""

    @abstractmethod
    def canonical_request(self, request: Request) -> dict[str, Any]:
        """What the provider was asked, read back from the native request:
        {"model": str, "messages": list[Message], "tools": list[ToolDefinition],
         "max_tokens": int | None, "stop": list[str], "tool_choice": ...}.
        The conformance suite compares it with what was sent."""


def last_messages(fake: FakeUpstream) -> list[Message]:
    return list(fake.canonical_request(fake.requests[-1])["messages"])
