"""The usage writer: takes the router's call reports and writes them, off the hot path.

`record` (on the request's path) only puts the report on a queue. A few consumer tasks
take every report queued (group commit) and, each in a thread of the writer's own pool
(boto3 blocks), price the calls, estimate what the provider did not report, and write
them (`UsageStore.write_many`, one transaction per group), retrying transient
failures; the write is idempotent, so a retry never counts a call twice. A failure never
reaches the client: it is logged with the records. `aclose` (at worker shutdown) waits
for the queue to drain.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from services.config import env_int, env_str
from services.providers.base import CompletionRequest, Usage
from services.usage.calls import ABANDONED, OK, ProviderCall
from services.usage.prices import DEFAULT_PRICES, PriceTable
from services.usage.store import UsageRecord, UsageStore, batches

log = logging.getLogger("switchboard.usage")

# Rough tokens for text a provider did not count: about four characters a token, and a
# few tokens of framing per message.
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 3


@dataclass(frozen=True, slots=True)
class UsageSettings:
    retention_days: int = 400
    prices_path: Path = DEFAULT_PRICES
    writers: int = 2  # concurrent writes (threads)
    batch: int = 200  # calls taken from the queue for one write (split per transaction)
    max_pending: int = 100_000  # reports queued before new ones are dropped (and logged)
    attempts: int = 5

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> UsageSettings:
        d = cls()
        return cls(
            retention_days=env_int(
                env, "SWITCHBOARD_USAGE_RETENTION_DAYS", d.retention_days, minimum=1
            ),
            prices_path=Path(env_str(env, "SWITCHBOARD_PRICES", str(d.prices_path))),
            writers=env_int(env, "SWITCHBOARD_USAGE_WRITERS", d.writers, minimum=1),
            batch=env_int(env, "SWITCHBOARD_USAGE_BATCH", d.batch, minimum=1),
            max_pending=env_int(env, "SWITCHBOARD_USAGE_MAX_PENDING", d.max_pending, minimum=1),
        )


def estimate_tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)


def prompt_tokens(request: CompletionRequest) -> int:
    """An estimate of a request's prompt tokens, from its text."""
    chars = sum(
        len(m.text) + sum(len(c.arguments) + len(c.name) for c in m.tool_calls)
        for m in request.messages
    )
    chars += sum(
        len(t.name) + len(t.description or "") + len(str(t.parameters)) for t in request.tools
    )
    return estimate_tokens(chars) + TOKENS_PER_MESSAGE * len(request.messages)


def to_record(call: ProviderCall, prices: PriceTable, call_id: str) -> UsageRecord | None:
    """The record of `call`, priced; None if nobody can be charged for it."""
    caller = call.caller
    if caller is None:
        return None
    usage, estimated = call.usage, False
    # No usage, or none counted for a reply that had text: the provider did not report it.
    missing = usage is None or (usage == Usage() and call.streamed_chars > 0)
    if missing and (call.outcome in (OK, ABANDONED) or call.streamed_chars):
        # The provider did not say (an abandoned stream, an upstream that never reports
        # usage): estimate from what was sent and what came back, and say so.
        prompt = prompt_tokens(call.request) if call.request is not None else 0
        usage = Usage(input_tokens=prompt, output_tokens=estimate_tokens(call.streamed_chars))
        estimated = True
    usage = usage or Usage()
    latency = round(call.latency_ms)
    first = call.first_token_ms if call.streamed else call.latency_ms
    return UsageRecord(
        call_id=call_id,
        tenant_id=caller.tenant_id,
        key_id=caller.key_id,
        endpoint=caller.route,
        route=call.route,
        model=call.model,
        at=call.started_at,
        ended_at=call.started_at + call.latency_ms / 1000,
        input_tokens=usage.input_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        output_tokens=usage.output_tokens,
        latency_ms=latency,
        first_token_ms=None if first is None else round(first),
        outcome=call.outcome,
        cost_usd_micros=prices.cost_micros(call.model, usage),
        price_version=prices.version,
        estimated=estimated,
        streamed=call.streamed,
    )


class UsageWriter:
    """A `CallRecorder` that writes every call to DynamoDB in the background."""

    def __init__(
        self,
        store: UsageStore,
        prices: PriceTable,
        settings: UsageSettings | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.prices = prices
        self.settings = settings or UsageSettings()
        self._sleep = sleep
        self._queue: asyncio.Queue[ProviderCall] = asyncio.Queue(self.settings.max_pending)
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.written = 0
        self.dropped = 0

    def record(self, call: ProviderCall) -> None:
        try:
            self._queue.put_nowait(call)
        except asyncio.QueueFull:
            self.dropped += 1
            log.error(
                "usage queue full (%d reports): a %s call on %s was not accounted",
                self.settings.max_pending,
                call.outcome,
                call.model,
            )

    def start(self) -> None:
        """Start writing (in the running event loop)."""
        if self._tasks:
            return
        self._pool = concurrent.futures.ThreadPoolExecutor(
            self.settings.writers, thread_name_prefix="usage-writer"
        )
        self._tasks = [
            asyncio.create_task(self._consume(), name=f"usage-writer-{i}")
            for i in range(self.settings.writers)
        ]

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def flush(self, seconds: float | None = None) -> bool:
        """Wait until every queued report is written (or given up); False past `seconds`."""
        try:
            await asyncio.wait_for(self._queue.join(), seconds)
        except TimeoutError:
            return False
        return True

    async def aclose(self, grace_seconds: float = 20.0) -> None:
        """Write what is queued (at shutdown), then stop."""
        if not self._tasks:
            self.start()
        if not await self.flush(grace_seconds):
            log.error("usage writer stopped with %d reports not written", self.pending)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # Group commit: everything queued while the last write was in flight goes in
            # the next one, so a busy worker makes one write per group, not per call.
            calls = [await self._queue.get()]
            while len(calls) < self.settings.batch and not self._queue.empty():
                calls.append(self._queue.get_nowait())
            try:
                await loop.run_in_executor(self._pool, self.write_all, calls)
            except Exception:
                log.exception("could not account %d calls", len(calls))
            finally:
                for _ in calls:
                    self._queue.task_done()

    def write(self, call: ProviderCall) -> None:
        """Price and write one call (blocking); see `write_all`."""
        self.write_all([call])

    def write_all(self, calls: list[ProviderCall]) -> None:
        """Price and write calls, a transaction per group that fits one, retrying
        transient failures (blocking)."""
        records: list[UsageRecord] = []
        for call in calls:
            record = to_record(call, self.prices, secrets.token_hex(16))
            if record is None:
                log.error(
                    "a provider call on %s (route %s) had no caller: not accounted",
                    call.model,
                    call.route,
                )
            else:
                records.append(record)
        for group in batches(records):
            self._write_group(group)

    def _write_group(self, group: list[UsageRecord]) -> None:
        delay = 0.1
        for attempt in range(1, self.settings.attempts + 1):
            try:
                self.store.write_many(group)
                self.written += len(group)
                return
            except Exception:
                if attempt == self.settings.attempts:
                    log.exception("could not write usage records %s", group)
                    return
                self._sleep(delay)
                delay = min(delay * 2, 5.0)


def writer_for_table(table: str, env: Mapping[str, str]) -> UsageWriter:
    """The writer a worker uses: the price table and settings from `env`, and a DynamoDB
    client made on the first write."""
    settings = UsageSettings.from_env(env)

    def client() -> object:
        import boto3
        from botocore.config import Config

        # The items are built here, always in the same shape: botocore's validation of
        # each request would only cost the writer CPU (about a sixth of a write's).
        return boto3.client("dynamodb", config=Config(parameter_validation=False))

    store = UsageStore(client, table, retention_days=settings.retention_days)
    return UsageWriter(store, PriceTable.load(settings.prices_path), settings)
