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
import collections
import concurrent.futures
import contextlib
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson

from services import metrics_names as names
from services.canonical import CompletionRequest, Usage
from services.config import env_float, env_int, env_str
from services.telemetry import metrics as telemetry_metrics
from services.usage.calls import ABANDONED, OK, ProviderCall
from services.usage.prices import DEFAULT_PRICES, PriceTable
from services.usage.store import UsageRecord, UsageStore, already_written, batches
from services.usage.transactions import DynamoDBTransactions

log = logging.getLogger("switchboard.usage")

# Rough tokens for text a provider did not count: about four characters a token, and a
# few tokens of framing per message.
CHARS_PER_TOKEN = 4
SLICE = 4  # calls priced (or items built) on the event loop between two requests' turns
TOKENS_PER_MESSAGE = 3


@dataclass(frozen=True, slots=True)
class UsageSettings:
    retention_days: int = 400
    prices_path: Path = DEFAULT_PRICES
    # One writer: concurrent transactions on one tenant's spend counter would conflict.
    writers: int = 1
    batch: int = 500  # calls taken from the queue for one write (split per transaction)
    # How long a write waits for more calls to join it: under load one write carries many
    # calls (a boto3 call costs the worker milliseconds of CPU; per call it would cost more
    # than the request itself), and a record reaches the table this much later.
    linger_seconds: float = 0.1
    # Where the usage transactions go, if not to the table's own endpoint (the benchmark
    # points them at a stub, so that it measures the worker and not the database).
    endpoint_url: str | None = None
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
            linger_seconds=env_float(env, "SWITCHBOARD_USAGE_LINGER_SECONDS", d.linger_seconds),
            endpoint_url=env.get("SWITCHBOARD_USAGE_ENDPOINT_URL") or None,
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
    missing = usage is None or (
        call.streamed_chars > 0
        and not (usage.input_tokens or usage.output_tokens or usage.cached_input_tokens)
    )
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
        request_id=call.request_id,
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
        # Reports waiting to be written, and how many the writers hold: a deque and two
        # events rather than an asyncio.Queue, whose bookkeeping per report showed in the
        # worker's CPU per request.
        self._pending: collections.deque[ProviderCall] = collections.deque()
        self._writing = 0
        self._arrived = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._closing = asyncio.Event()  # set at shutdown: nothing lingers any more
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.written = 0
        self.dropped = 0

    def record(self, call: ProviderCall) -> None:
        if len(self._pending) < self.settings.max_pending:
            self._pending.append(call)
            self._drained.clear()
            if not self._arrived.is_set():
                self._arrived.set()
        else:
            self.dropped += 1
            log.error(
                "usage queue full (%d reports): a %s call on %s was not accounted",
                self.settings.max_pending,
                call.outcome,
                call.model,
            )

    def prepare(self) -> None:
        """Build the DynamoDB client now rather than at the first write (blocking), so
        that it is part of what a worker sets up before it serves. A failure is logged:
        the first write tries again."""
        try:
            self.store.transactions  # noqa: B018 - built on first access
        except Exception:
            log.exception("usage writer: could not build its DynamoDB client yet")

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
        return len(self._pending)

    async def flush(self, seconds: float | None = None) -> bool:
        """Wait until every queued report is written (or given up); False past `seconds`."""
        try:
            await asyncio.wait_for(self._drained.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def aclose(self, grace_seconds: float = 20.0) -> None:
        """Write what is queued (at shutdown), then stop."""
        if not self._tasks:
            self.start()
        self._closing.set()
        if not await self.flush(grace_seconds):
            log.error("usage writer stopped with %d reports not written", self.pending)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
        close = getattr(getattr(self.store, "_transactions", None), "aclose", None)
        if close is not None:
            await close()

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self.prepare)
        send = self._sender()
        while True:
            # Group commit: the calls that arrive within `linger_seconds` of the first (or
            # while the last write was in flight) go in one write.
            while not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
            linger = self.settings.linger_seconds
            lingers = linger > 0 and len(self._pending) < self.settings.batch
            if lingers and not self._closing.is_set():
                with contextlib.suppress(TimeoutError):  # a shutdown cuts the wait short
                    await asyncio.wait_for(self._closing.wait(), linger)
            take = min(self.settings.batch, len(self._pending))
            calls = [self._pending.popleft() for _ in range(take)]
            self._writing += take
            try:
                if send is None:
                    await loop.run_in_executor(self._pool, self.write_all, calls)
                else:
                    await self._write_on_loop(calls, send)
            except Exception:
                log.exception("could not account %d calls", len(calls))
            finally:
                self._writing -= take
                if not self._pending and not self._writing:
                    self._drained.set()

    def _sender(self) -> Callable[[list[bytes], str], Awaitable[None]] | None:
        """The store's async transaction, if its transport has one (else writes go to a
        thread, as boto3's do)."""
        try:
            transactions = self.store.transactions
        except Exception:
            return None
        send: Callable[[list[bytes], str], Awaitable[None]] | None = getattr(
            transactions, "transact_async", None
        )
        return send

    async def _write_on_loop(
        self,
        calls: list[ProviderCall],
        send: Callable[[list[bytes], str], Awaitable[None]],
    ) -> None:
        """`write_all` on the event loop, in slices of `SLICE` calls between which the loop
        serves requests: no slice holds a request up for more than a fraction of a ms."""
        records: list[UsageRecord] = []
        for start in range(0, len(calls), SLICE):
            records += self._records(calls[start : start + SLICE])
            await asyncio.sleep(0)
        put = self.store.put_action
        for group in batches(records):
            actions: list[bytes] = []
            for start in range(0, len(group), SLICE):
                actions += [orjson.dumps(put(r)) for r in group[start : start + SLICE]]
                await asyncio.sleep(0)
            actions += [orjson.dumps(a) for a in self.store.counter_actions(group)]
            delay = 0.1
            for attempt in range(1, self.settings.attempts + 1):
                try:
                    await send(actions, group[0].call_id[:36])
                except Exception as exc:
                    if already_written(exc, len(group)):
                        break
                    if attempt == self.settings.attempts:
                        log.exception("could not write usage records %s", group)
                        break
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                self.written += len(group)
                break

    def write(self, call: ProviderCall) -> None:
        """Price and write one call (blocking); see `write_all`."""
        self.write_all([call])

    def write_all(self, calls: list[ProviderCall]) -> None:
        """Price and write calls, a transaction per group that fits one, retrying
        transient failures (blocking)."""
        for group in batches(self._records(calls)):
            self._write_group(group)

    def _records(self, calls: list[ProviderCall]) -> list[UsageRecord]:
        """The calls' records, priced; their tokens and cost are counted as metrics here,
        off the request's path."""
        records: list[UsageRecord] = []
        metrics = telemetry_metrics.current()
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
                metrics.count(names.TOKENS, record.tokens)
                if record.cost_usd_micros is not None:
                    metrics.count(names.COST_USD, record.cost_usd_micros / 1_000_000)
        return records

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
    """The writer a worker uses: the price table and settings from `env`, and its lean
    DynamoDB transactions (services.usage.transactions), made on the first write."""
    settings = UsageSettings.from_env(env)

    def client() -> object:
        import boto3

        return boto3.client("dynamodb")

    store = UsageStore(
        client,
        table,
        retention_days=settings.retention_days,
        transactions=lambda: DynamoDBTransactions(endpoint_url=settings.endpoint_url),
    )
    return UsageWriter(store, PriceTable.load(settings.prices_path), settings)
