"""Usage and cost: the price arithmetic, one report per provider attempt from the router,
the records' write (one transaction, idempotent) against moto, and the report."""

from __future__ import annotations

import asyncio
import datetime
import io
import random
import time
import tomllib
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from moto import mock_aws

from devstack.tables import create_table
from services.chat.completions import ChatService
from services.config import ConfigError
from services.errors import APIError
from services.models.catalogue import DEFAULT_CONFIG, Catalogue
from services.models.routing import Breakers, Router, RoutingSettings, Target
from services.providers.base import (
    Completion,
    CompletionRequest,
    Finish,
    Message,
    Provider,
    StreamEvent,
    TextDelta,
    TextPart,
    Usage,
    UsageReport,
)
from services.providers.errors import ProviderError, from_status
from services.usage import __main__ as cli
from services.usage.calls import ProviderCall
from services.usage.context import CALLER, Caller, bind
from services.usage.prices import Price, PriceTable
from services.usage.report import UsageReports, parse_query, report, summarize, to_csv
from services.usage.store import (
    UsageRecord,
    UsageStore,
    batches,
    iso,
    month_of,
    record_from_item,
)
from services.usage.writer import UsageSettings, UsageWriter, prompt_tokens, to_record
from services.wire.openai import parse_chat_request

TABLE = "usage-test"
PROMPT = "please summarise the attached quarterly report for the board"
REQUEST = CompletionRequest(model="m", messages=[Message("user", [TextPart(PROMPT)])])
CALLER_A = Caller("acme", "key_a", "/v1/chat/completions")
PRICES = PriceTable.load()

# -- prices --------------------------------------------------------------------------------


def test_cost_is_tokens_times_price_with_the_cached_input_split_out() -> None:
    price = Price(Decimal("0.15"), Decimal("0.075"), Decimal("0.60"))
    # 600 uncached x 0.15 + 400 cached x 0.075 + 200 output x 0.60 = 90 + 30 + 120 micro-USD
    usage = Usage(input_tokens=1000, output_tokens=200, cached_input_tokens=400)
    assert price.cost_micros(usage) == 240


def test_cost_of_a_million_tokens_on_the_shipped_table() -> None:
    # gpt-4o: 750,000 x $2.50 + 250,000 x $1.25 + 100,000 x $10 per million = $3.1875
    usage = Usage(input_tokens=1_000_000, output_tokens=100_000, cached_input_tokens=250_000)
    assert PRICES.cost_micros("openai/gpt-4o", usage) == 3_187_500
    # claude-haiku-4-5: 2,000 x $1 + 0 cached + 500 x $5 per million = 4,500 micro-USD
    assert PRICES.cost_micros("anthropic/claude-haiku-4-5", Usage(2000, 500)) == 4_500


def test_fractions_of_a_micro_dollar_round_half_up() -> None:
    price = Price(Decimal("0.15"), Decimal("0.075"), Decimal("0.60"))
    assert price.cost_micros(Usage(input_tokens=20, cached_input_tokens=20)) == 2  # 1.5
    assert price.cost_micros(Usage(input_tokens=3)) == 0  # 0.45
    assert price.cost_micros(Usage(output_tokens=1)) == 1  # 0.6


@pytest.mark.parametrize(
    "price",
    [
        Price(Decimal("0.15"), Decimal("0.075"), Decimal("0.60")),
        Price(Decimal("3"), Decimal("0.3"), Decimal("15")),
        Price(Decimal("0.1234567891"), Decimal("0"), Decimal("1e-10")),  # beyond 9 decimals
    ],
)
def test_integer_pricing_agrees_with_the_decimal_sum(price: Price) -> None:
    """Prices with up to nine decimals are summed in integers (each call is priced on the
    worker's loop); the answer is the decimal sum rounded half up, whatever the counts."""
    for usage in (
        Usage(0, 0),
        Usage(1, 1, 1),
        Usage(20, 0, 20),
        Usage(3, 7, 1),
        Usage(10**7, 12345, 999),
    ):
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        exact = (
            (usage.input_tokens - cached) * price.input
            + cached * price.cached_input
            + usage.output_tokens * price.output
        )
        assert price.cost_micros(usage) == int(exact.to_integral_value(rounding="ROUND_HALF_UP"))


def test_the_simulator_is_free_and_an_unknown_model_has_no_price() -> None:
    assert PRICES.cost_micros("local/simulator", Usage(1000, 1000)) == 0
    assert PRICES.cost_micros("openai_compatible/llama3.2", Usage(1000, 1000)) is None


def test_every_catalogue_model_has_a_price() -> None:
    catalogue = tomllib.loads(DEFAULT_CONFIG.read_text())
    models = {*catalogue["models"], *catalogue.get("embeddings", {})}
    assert models <= set(PRICES.prices)
    assert PRICES.version and PRICES.as_of <= datetime.date.today()


def test_a_malformed_price_table_is_refused() -> None:
    base: dict[str, Any] = {"version": "1", "as_of": datetime.date(2026, 1, 1)}
    with pytest.raises(ConfigError, match="cached_input"):
        PriceTable.parse({**base, "prices": {"a/b": {"input": 1, "output": 2}}})
    with pytest.raises(ConfigError, match=">= 0"):
        PriceTable.parse({**base, "prices": {"a/b": {"input": -1, "cached_input": 0, "output": 0}}})
    with pytest.raises(ConfigError, match="as_of"):
        PriceTable.parse({"version": "1", "as_of": "yesterday"})


# -- the router reports every attempt -------------------------------------------------------


class Calls:
    def __init__(self) -> None:
        self.calls: list[ProviderCall] = []

    def record(self, call: ProviderCall) -> None:
        self.calls.append(call)


class Scripted(Provider):
    """Fails with the queued errors (None: answer), streaming `events` when it answers."""

    def __init__(
        self,
        name: str,
        *failures: ProviderError | None,
        events: list[StreamEvent] | None = None,
        pause: float = 0.0,
    ) -> None:
        self.name = name
        self.failures = list(failures)
        self.events = events or [TextDelta("hello"), Finish("stop"), UsageReport(Usage(9, 1))]
        self.pause = pause

    def models(self) -> list[str]:
        return ["m"]

    async def complete(self, request: CompletionRequest) -> Completion:
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            raise failure
        return Completion(f"from {self.name}", "stop", Usage(11, 3, 2))

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            raise failure
        for event in self.events:
            yield event
            if self.pause:
                await asyncio.sleep(self.pause)


def router(*providers: Provider, recorder: Calls) -> Router:
    config = RoutingSettings(backoff_base=0.0)

    async def no_sleep(seconds: float) -> None:
        return None

    targets = [Target(f"{p.name}/m", p, "m") for p in providers]
    return Router("fast", targets, config, Breakers(config), sleep=no_sleep, recorder=recorder)


def down() -> ProviderError:
    return from_status("p", 503, "unavailable")


def in_caller_context(coro: Any) -> Any:
    async def main() -> Any:
        CALLER.set(CALLER_A)
        return await coro

    return asyncio.run(main())


def test_one_report_per_attempt_with_retries_and_fallback() -> None:
    calls = Calls()
    primary, secondary = Scripted("a", down(), down(), down()), Scripted("b", down())
    completion = in_caller_context(router(primary, secondary, recorder=calls).complete(REQUEST))
    assert completion.text == "from b"
    outcomes = [(c.model, c.outcome) for c in calls.calls]
    assert outcomes == [
        ("a/m", "upstream_unavailable"),
        ("a/m", "upstream_unavailable"),
        ("a/m", "upstream_unavailable"),
        ("b/m", "upstream_unavailable"),
        ("b/m", "ok"),
    ]
    assert all(c.caller == CALLER_A and c.route == "fast" for c in calls.calls)
    assert [c.usage for c in calls.calls] == [None] * 4 + [Usage(11, 3, 2)]
    assert not any(c.streamed for c in calls.calls)


def test_a_refused_request_is_reported_with_its_code() -> None:
    calls = Calls()
    refused = from_status("p", 400, "bad request")
    with pytest.raises(APIError):
        in_caller_context(router(Scripted("a", refused), recorder=calls).complete(REQUEST))
    assert [c.outcome for c in calls.calls] == [refused.code]
    record = to_record(calls.calls[0], PRICES, "id")
    assert record is not None
    assert (record.input_tokens, record.output_tokens, record.estimated) == (0, 0, False)


async def drain(stream: AsyncIterator[list[StreamEvent]]) -> list[StreamEvent]:
    return [event async for batch in stream for event in batch]


def test_a_stream_reports_its_usage_summed_from_split_reports() -> None:
    events: list[StreamEvent] = [
        UsageReport(Usage(input_tokens=40, cached_input_tokens=30)),
        TextDelta("one "),
        TextDelta("two"),
        Finish("stop"),
        UsageReport(Usage(output_tokens=2)),
    ]
    calls = Calls()
    r = router(Scripted("a", down(), events=events), recorder=calls)
    in_caller_context(drain(r.stream_batches(REQUEST)))
    assert [(c.outcome, c.streamed) for c in calls.calls] == [
        ("upstream_unavailable", True),
        ("ok", True),
    ]
    ok = calls.calls[1]
    assert ok.usage == Usage(input_tokens=40, output_tokens=2, cached_input_tokens=30)
    assert ok.first_token_ms is not None and ok.first_token_ms <= ok.latency_ms
    record = to_record(ok, PRICES, "id")
    assert record is not None and not record.estimated
    assert (record.input_tokens, record.cached_input_tokens, record.output_tokens) == (40, 30, 2)


def test_a_stream_closed_early_is_recorded_as_abandoned_with_an_estimate() -> None:
    events: list[StreamEvent] = [TextDelta("x" * 40), TextDelta("y" * 40), Finish("stop")]
    calls = Calls()
    r = router(Scripted("a", events=events), recorder=calls)

    async def read_one_then_leave() -> None:
        stream = r.stream_batches(REQUEST)
        async for _ in stream:
            break
        await stream.aclose()  # type: ignore[attr-defined]

    in_caller_context(read_one_then_leave())
    [call] = calls.calls
    assert (call.outcome, call.usage, call.streamed_chars) == ("abandoned", None, 40)
    record = to_record(call, PRICES, "id")
    assert record is not None and record.estimated
    assert record.output_tokens == 10  # 40 characters, about 4 a token
    assert record.input_tokens == prompt_tokens(REQUEST) > 0


def test_leaving_a_chat_stream_ends_the_provider_stream_at_once() -> None:
    """The SSE frames of a chat completion, closed after the first write (the client left):
    the provider's stream is closed with them and its call reported as abandoned then, not
    when the garbage collector finds it."""
    events: list[StreamEvent] = [TextDelta("x" * 40), Finish("stop")]
    calls = Calls()
    provider = Scripted("a", events=events)
    catalogue = Catalogue({"a": provider}, recorder=calls)
    chat = parse_chat_request({"model": "a/m", "messages": [{"role": "user", "content": "hi"}]})
    kept: list[Any] = []

    async def first_write_then_leave() -> None:
        frames = await ChatService(catalogue).stream(chat)
        kept.append(frames)  # still referenced: only an explicit close can end it
        async for _ in frames:
            break
        await frames.aclose()  # type: ignore[attr-defined]
        assert [c.outcome for c in calls.calls] == ["abandoned"]

    in_caller_context(first_write_then_leave())


def test_a_cancelled_stream_is_recorded_as_abandoned() -> None:
    calls = Calls()
    r = router(Scripted("a", events=[TextDelta("abc")] * 100, pause=0.01), recorder=calls)

    async def main() -> None:
        bind(CALLER_A, "/v1/chat/completions")
        task = asyncio.create_task(drain(r.stream_batches(REQUEST)))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    [call] = calls.calls
    assert call.outcome == "abandoned" and call.caller == CALLER_A
    assert 0 < call.streamed_chars < 300


def test_without_a_recorder_nothing_is_reported() -> None:
    config = RoutingSettings()
    r = Router("fast", [Target("a/m", Scripted("a"), "m")], config, Breakers(config))
    assert asyncio.run(r.complete(REQUEST)).text == "from a"


def call(**fields: Any) -> ProviderCall:
    values: dict[str, Any] = {
        "caller": CALLER_A,
        "route": "fast",
        "model": "openai/gpt-4o-mini",
        "started_at": datetime.datetime(2026, 11, 3, 10, tzinfo=datetime.UTC).timestamp(),
        "latency_ms": 120.4,
        "first_token_ms": None,
        "outcome": "ok",
        "usage": Usage(1000, 200, 400),
        "streamed": False,
    }
    values.update(fields)
    return ProviderCall(**values)


def test_a_record_prices_the_call_and_an_unpriced_model_costs_unknown() -> None:
    record = to_record(call(), PRICES, "c1")
    assert record is not None
    assert (record.cost_usd_micros, record.latency_ms, record.first_token_ms) == (240, 120, 120)
    assert record.price_version == PRICES.version
    unpriced = to_record(call(model="openai_compatible/llama3.2"), PRICES, "c2")
    assert unpriced is not None and unpriced.cost_usd_micros is None


def test_a_reply_with_text_but_no_counted_tokens_is_estimated_not_zero() -> None:
    record = to_record(call(usage=Usage(), streamed_chars=80, request=REQUEST), PRICES, "c")
    assert record is not None and record.estimated
    assert record.output_tokens == 20 and record.input_tokens > 0


def test_a_call_without_a_caller_is_not_written() -> None:
    assert to_record(call(caller=None), PRICES, "c") is None


# -- writing: one transaction per call ------------------------------------------------------


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, TABLE)
        yield client


def spend_item(client: Any, tenant: str, month: str) -> dict[str, Any]:
    key = {"pk": {"S": f"TENANT#{tenant}"}, "sk": {"S": f"SPEND#{month}"}}
    item: dict[str, Any] = client.get_item(TableName=TABLE, Key=key).get("Item", {})
    return item


def test_a_write_puts_the_record_and_adds_to_the_spend_counter_and_rate_window(
    dynamodb: Any,
) -> None:
    store = UsageStore(dynamodb, TABLE, retention_days=10)
    record = to_record(call(), PRICES, "c1")
    assert record is not None and store.write(record)
    assert store.spend("acme", "2026-11") == {
        "cost_usd_micros": 240,
        "calls": 1,
        "unpriced_calls": 0,
    }
    [stored] = store.records("acme", datetime.date(2026, 11, 3), datetime.date(2026, 11, 3))
    assert stored["call_id"] == "c1" and stored["input_tokens"] == 1000
    assert stored["cost_usd_micros"] == 240 and stored["outcome"] == "ok"
    raw = dynamodb.get_item(
        TableName=TABLE, Key={"pk": {"S": "TENANT#acme"}, "sk": {"S": record.sk}}
    )["Item"]
    assert int(raw["expires_at"]["N"]) == int(record.at) + 10 * 86_400
    minute = int(record.ended_at // 60)
    window = dynamodb.get_item(
        TableName=TABLE, Key={"pk": {"S": "RATE#key_a"}, "sk": {"S": f"MIN#{minute}"}}
    )["Item"]
    assert window["tokens"] == {"N": "1200"}
    assert int(window["expires_at"]["N"]) == (minute + 1) * 60 + 120


def test_a_retried_write_counts_the_call_once(dynamodb: Any) -> None:
    store = UsageStore(dynamodb, TABLE)
    record = to_record(call(), PRICES, "same-call")
    assert record is not None
    assert store.write(record) is True
    assert store.write(record) is False
    assert store.spend("acme", "2026-11")["calls"] == 1
    assert store.spend("acme", "2026-11")["cost_usd_micros"] == 240


def test_an_unpriced_call_is_counted_apart_and_adds_no_cost(dynamodb: Any) -> None:
    store = UsageStore(dynamodb, TABLE)
    record = to_record(call(model="openai_compatible/llama3.2"), PRICES, "c")
    assert record is not None and store.write(record)
    assert store.spend("acme", "2026-11") == {
        "cost_usd_micros": 0,
        "calls": 1,
        "unpriced_calls": 1,
    }
    [stored] = store.records("acme", datetime.date(2026, 11, 1), datetime.date(2026, 11, 30))
    assert stored["cost_usd_micros"] is None


def test_records_are_read_by_day_range_and_tenant(dynamodb: Any) -> None:
    store = UsageStore(dynamodb, TABLE)
    for day, tenant in [(1, "acme"), (2, "acme"), (3, "acme"), (2, "other")]:
        at = datetime.datetime(2026, 11, day, 23, 59, tzinfo=datetime.UTC).timestamp()
        record = to_record(
            call(started_at=at, caller=Caller(tenant, "k", "/v1/messages")), PRICES, f"{day}"
        )
        assert record is not None and store.write(record)
    found = store.records("acme", datetime.date(2026, 11, 2), datetime.date(2026, 11, 3))
    assert [r["at"][:10] for r in found] == ["2026-11-02", "2026-11-03"]


def test_the_writer_writes_in_the_background_and_flushes_at_shutdown(dynamodb: Any) -> None:
    store = UsageStore(dynamodb, TABLE)
    # One writer thread: in-process moto does not apply concurrent updates atomically
    # (DynamoDB does; tests/integration/test_usage.py writes concurrently through the
    # local stack, whose moto serves DynamoDB requests one at a time).
    writer = UsageWriter(store, PRICES, UsageSettings(writers=1))
    usages = [Usage(100 * i, 10 * i, 7 * i) for i in range(1, 21)]

    async def main() -> None:
        for usage in usages[:10]:
            writer.record(call(usage=usage))  # queued before the writer starts
        writer.start()
        for usage in usages[10:]:
            writer.record(call(usage=usage))
        await writer.aclose()

    asyncio.run(main())
    records = list(store.records("acme", datetime.date(2026, 11, 1), datetime.date(2026, 11, 30)))
    assert len(records) == 20 and writer.pending == 0
    expected = sum(PRICES.cost_micros("openai/gpt-4o-mini", u) or 0 for u in usages)
    assert sum(r["cost_usd_micros"] for r in records) == expected
    assert store.spend("acme", "2026-11") == {
        "cost_usd_micros": expected,
        "calls": 20,
        "unpriced_calls": 0,
    }


def test_shutdown_does_not_wait_out_the_linger(dynamodb: Any) -> None:
    """A worker that stops writes its queued calls at once, even while its writer lingers
    for more calls to group (a shutdown used to wait for the linger, past its grace)."""
    store = UsageStore(dynamodb, TABLE)
    writer = UsageWriter(store, PRICES, UsageSettings(writers=1, linger_seconds=30))

    async def main() -> float:
        writer.start()
        writer.record(call(usage=Usage(10, 1)))
        await asyncio.sleep(0.05)  # the writer is lingering now
        started = time.monotonic()
        await writer.aclose(grace_seconds=5)
        return time.monotonic() - started

    assert asyncio.run(main()) < 2
    records = list(store.records("acme", datetime.date(2026, 11, 1), datetime.date(2026, 11, 30)))
    assert len(records) == 1 and writer.pending == 0


def test_a_group_is_one_transaction_per_hundred_actions_and_counts_each_call_once(
    dynamodb: Any,
) -> None:
    """Group commit: 250 calls of 3 tenants and 5 keys are written in 3 transactions (each
    at most 100 actions, each counter added to once per transaction), and every counter
    equals the sum of its records."""
    store = UsageStore(dynamodb, TABLE)
    writer = UsageWriter(store, PRICES, sleep=lambda s: None)
    transactions: list[int] = []
    dynamodb.meta.events.register(
        "provide-client-params.dynamodb.TransactWriteItems",
        lambda params, **_: transactions.append(len(params["TransactItems"])),
    )
    calls = [
        call(
            caller=Caller(f"tenant{i % 3}", f"key{i % 5}", "/v1/chat/completions"),
            usage=Usage(100 + i, 10 + i, i % 7),
            model="openai/gpt-4o-mini" if i % 4 else "openai_compatible/llama3.2",
        )
        for i in range(250)
    ]
    writer.write_all(calls)
    assert writer.written == 250
    assert len(transactions) == 3 and max(transactions) <= 100
    for t in range(3):
        records = list(
            store.records(f"tenant{t}", datetime.date(2026, 11, 1), datetime.date(2026, 11, 30))
        )
        assert store.spend(f"tenant{t}", "2026-11") == {
            "cost_usd_micros": sum(r["cost_usd_micros"] or 0 for r in records),
            "calls": len(records),
            "unpriced_calls": sum(r["cost_usd_micros"] is None for r in records),
        }
    assert (
        sum(
            len(
                list(
                    store.records(
                        f"tenant{t}", datetime.date(2026, 11, 1), datetime.date(2026, 11, 30)
                    )
                )
            )
            for t in range(3)
        )
        == 250
    )


def test_a_group_retried_after_it_was_applied_changes_nothing(dynamodb: Any) -> None:
    store = UsageStore(dynamodb, TABLE)
    records = [to_record(call(usage=Usage(10 * i, i)), PRICES, f"call-{i}") for i in range(1, 4)]
    group = [r for r in records if r is not None]
    assert store.write_many(group) == 3
    assert store.write_many(group) == 0
    assert store.spend("acme", "2026-11")["calls"] == 3


def test_batches_keep_each_transaction_within_dynamodbs_limit() -> None:
    records = [
        to_record(call(caller=Caller(f"t{i}", f"k{i}", "/v1/messages")), PRICES, f"c{i}")
        for i in range(120)
    ]
    parts = list(batches([r for r in records if r is not None]))
    # Every record here has its own tenant and key: a Put and two counter updates each.
    assert [len(p) for p in parts] == [33, 33, 33, 21]


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"cost_usd_micros": None, "first_token_ms": None, "estimated": True, "streamed": True},
        {"tenant_id": 'quo"te\\s', "route": "caf\u00e9/\u00fcber", "outcome": "line\nbreak"},
    ],
)
def test_a_record_item_reads_back_as_the_record(changes: dict[str, Any]) -> None:
    """The writer sends `put_action` as JSON; its item reads back as the record it wrote."""
    record = to_record(call(usage=Usage(1200, 34, 200)), PRICES, "c-1")
    assert record is not None
    record = record._replace(**changes)
    store = UsageStore(lambda: None, TABLE, retention_days=30)
    action = orjson.loads(orjson.dumps(store.put_action(record)))
    assert action["Put"]["ConditionExpression"] == "attribute_not_exists(pk)"
    stored = record_from_item(action["Put"]["Item"])
    expected = {k: v for k, v in record._asdict().items() if k != "ended_at"}
    assert stored == {**expected, "at": iso(record.at)}


def test_reports_beyond_the_pending_limit_are_dropped_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer = UsageWriter(Flaky(failures=0), PRICES, UsageSettings(max_pending=2))
    for _ in range(3):
        writer.record(call())
    assert writer.pending == 2 and writer.dropped == 1
    assert "usage queue full (2 reports)" in caplog.text


def test_timestamps_are_formatted_as_datetime_does() -> None:
    """`iso` formats by hand (it runs per record on the worker's loop): it must agree with
    datetime to the microsecond, its rounding included, across days and years."""
    rng = random.Random(7)
    samples = [rng.uniform(0, 4e9) for _ in range(20_000)]
    samples += [1.9999995, 86_399.9999995, 1_795_900_000.0000005, 951_782_400.25, 0.0]
    month_end = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC).timestamp()
    samples += [month_end - 4e-7, month_end - 6e-7]  # rounds into December, or not
    for epoch in samples:
        t = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
        assert iso(epoch) == t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), epoch
        assert month_of(epoch) == t.strftime("%Y-%m"), epoch


class Flaky(UsageStore):
    """Fails its first `failures` writes, as a throttled or unreachable table would."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.written: list[UsageRecord] = []

    def write_many(self, records: list[UsageRecord]) -> int:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("throttled")
        self.written.extend(records)
        return len(records)


def test_a_failed_write_is_retried_with_the_same_record() -> None:
    store = Flaky(failures=2)
    writer = UsageWriter(store, PRICES, sleep=lambda s: None)
    writer.write(call())
    assert len(store.written) == 1 and writer.written == 1


def test_a_write_that_keeps_failing_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    writer = UsageWriter(Flaky(failures=99), PRICES, sleep=lambda s: None)
    writer.write(call())
    assert writer.written == 0 and "could not write usage records" in caplog.text


# -- reading --------------------------------------------------------------------------------


def stored(day: int, key: str, model: str, cost: int | None, **fields: Any) -> dict[str, Any]:
    return {
        "at": f"2026-11-{day:02d}T10:00:00.000000Z",
        "key_id": key,
        "model": model,
        "route": "fast",
        "input_tokens": 100,
        "cached_input_tokens": 10,
        "output_tokens": 20,
        "cost_usd_micros": cost,
        "outcome": "ok",
        "estimated": False,
        **fields,
    }


RECORDS = [
    stored(1, "k1", "openai/gpt-4o-mini", 27),
    stored(1, "k1", "openai/gpt-4o-mini", 27, outcome="upstream_unavailable"),
    stored(1, "k2", "openai_compatible/llama3.2", None),
    stored(2, "k1", "openai/gpt-4o-mini", 1_500_000, outcome="abandoned", estimated=True),
]


def query(**params: str) -> Any:
    return parse_query(params, today=lambda: datetime.date(2026, 11, 29))


def test_the_default_report_is_this_month_by_day() -> None:
    q = query()
    assert (q.start, q.end, q.group_by, q.csv) == (
        datetime.date(2026, 11, 1),
        datetime.date(2026, 11, 29),
        ("day",),
        False,
    )
    assert parse_query({}, "text/csv").csv


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"start": "2026-13-01"}, "start"),
        ({"start": "2026-11-10", "end": "2026-11-09"}, "end"),
        ({"group_by": "day,tenant"}, "group_by"),
        ({"format": "xml"}, "format"),
        ({"tenant": "other"}, "tenant"),
        ({"start": "2024-01-01", "end": "2026-01-01"}, "start"),
        # The day after `end` must exist: no OverflowError (a 500) past the calendar.
        ({"start": "9999-12-31", "end": "9999-12-31"}, "start"),
        ({"start": "9999-12-30", "end": "9999-12-31"}, "end"),
        ({"start": "0001-01-01", "end": "0001-01-02"}, "start"),
    ],
)
def test_a_bad_query_names_its_parameter(params: dict[str, str], param: str) -> None:
    with pytest.raises(APIError) as caught:
        query(**params)
    assert caught.value.status == 400 and caught.value.param == param


def test_rows_are_summed_by_day_and_model_and_unpriced_calls_stay_unknown() -> None:
    rows, totals = summarize(RECORDS, query(group_by="day,model"))
    assert [(r["day"], r["model"], r["calls"], r["cost_usd_micros"]) for r in rows] == [
        ("2026-11-01", "openai/gpt-4o-mini", 2, 54),
        ("2026-11-01", "openai_compatible/llama3.2", 1, 0),
        ("2026-11-02", "openai/gpt-4o-mini", 1, 1_500_000),
    ]
    assert rows[1]["unpriced_calls"] == 1
    assert totals["calls"] == 4 and totals["cost_usd_micros"] == 1_500_054
    assert totals["cost_usd"] == 1.500054
    assert (totals["failed_calls"], totals["abandoned_calls"], totals["estimated_calls"]) == (
        1,
        1,
        1,
    )
    assert (totals["input_tokens"], totals["cached_input_tokens"]) == (400, 40)


def test_the_json_report_shows_the_price_table_and_whether_the_cost_is_complete() -> None:
    body = report(RECORDS, query(group_by="key"), PRICES, "acme")
    assert body["price_table"] == {"version": PRICES.version, "as_of": PRICES.as_of.isoformat()}
    assert body["cost_complete"] is False
    assert [r["key"] for r in body["data"]] == ["k1", "k2"]
    assert report(RECORDS[:1], query(), PRICES, "acme")["cost_complete"] is True


def test_csv_has_the_group_columns_then_the_figures() -> None:
    lines = to_csv(report(RECORDS, query(group_by="key,model"), PRICES, "acme")).splitlines()
    assert lines[0].startswith("key,model,calls,input_tokens,cached_input_tokens,output_tokens")
    assert lines[1].startswith("k1,openai/gpt-4o-mini,3,300,30,60,1500054,1.500054,0,1,1,1")
    assert len(lines) == 3


def test_the_cli_prints_a_readable_table(dynamodb: Any) -> None:
    store = UsageStore(dynamodb, TABLE)
    for i, model in enumerate(["openai/gpt-4o-mini", "openai_compatible/llama3.2"]):
        record = to_record(call(model=model), PRICES, f"c{i}")
        assert record is not None and store.write(record)
    parser = cli.argparse.ArgumentParser()
    cli.register(parser.add_subparsers(), "usage")
    args = parser.parse_args(
        ["usage", "--table", TABLE, "--tenant", "acme", "--start", "2026-11-01",
         "--end", "2026-11-30", "--group-by", "model"]
    )  # fmt: skip
    out = io.StringIO()
    assert cli.run(args, UsageReports(store, PRICES), out) == 0
    text = out.getvalue()
    assert f"table {PRICES.version} of {PRICES.as_of.isoformat()}" in text
    assert "openai/gpt-4o-mini" in text and "openai_compatible/llama3.2" in text
    total = next(line for line in text.splitlines() if line.startswith("total"))
    assert total.split()[1:3] == ["2", "2,000"] and "0.000240" in total
    assert "1 calls were on models with no price" in text


def test_the_price_file_is_next_to_the_module() -> None:
    assert (Path(cli.__file__).parent / "prices.toml").exists()
