"""Usage records, the monthly spend counter and the rate window, in the shared table (the
usage record, spend counter and rate window rows of the key layout in services/dynamo.py).
A record's sort key holds its call's ISO 8601 UTC start, a spend counter the UTC month of
its calls' starts, a rate window the minute its calls ended.

A record's attributes: tenant_id, key_id, endpoint (the API the call came through), route
(the public model name asked for), model (the provider model), input_tokens (every prompt
token, cached ones included), cached_input_tokens, output_tokens, latency_ms,
first_token_ms, outcome (`ok`, an error code, or `abandoned`), cost_usd_micros (absent:
unknown), price_version, estimated, streamed, call_id, at, expires_at, and request_id (the
correlation id of the request that made the call, as in its logs: services/telemetry).

`write_many` is one TransactWriteItems for a group of calls (group commit: under load a
writer takes every call queued, so a busy worker makes one write per group, not per call):
Put each record (only if absent), ADD the group's cost and calls (and unpriced calls) to
each spend counter, ADD its tokens to each key's rate window. Each call's cost is added
once, in the same transaction as its record, so the counter always equals the sum of the
records; a retried write of the same group fails its conditions and changes nothing. The
counter is only ever changed with ADD: concurrent writers cannot lose an update.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from services.dynamo import attributes, cancellation_reasons, plain

RECORD_PREFIX = "USAGE#"
SPEND_PREFIX = "SPEND#"
RATE_WINDOW_GRACE_SECONDS = 120
MAX_ACTIONS = 100  # DynamoDB's limit for one TransactWriteItems


def batches(records: list[UsageRecord]) -> Iterator[list[UsageRecord]]:
    """`records` in order, split so that each part's transaction has at most
    `MAX_ACTIONS` actions (a Put each, plus one ADD per tenant-month and key-minute)."""
    part: list[UsageRecord] = []
    counters: set[tuple[str, str, str | int]] = set()
    for record in records:
        spend = ("spend", record.tenant_id, month_of(record.at))
        rate = ("rate", record.key_id, int(record.ended_at // 60))
        new = (spend not in counters) + (rate not in counters)
        if len(part) + 1 + len(counters) + new > MAX_ACTIONS:
            yield part
            part, counters = [], set()
        part.append(record)
        counters.add(spend)
        counters.add(rate)
    if part:
        yield part


def iso(epoch: float) -> str:
    """A fixed-width UTC timestamp, so sort keys order by time (`%Y-%m-%dT%H:%M:%S.%fZ`,
    as `datetime.fromtimestamp(epoch, UTC)` gives it, microseconds rounded half to even).
    Formatted by hand, with the date cached per day: datetime costs the writer ~6 us a
    record, on the worker's event loop."""
    whole, micros = _split(epoch)
    if whole == _last_second[0]:  # records come in bursts: the same second as the last
        return f"{_last_second[1]}.{micros:06d}Z"
    day, second = divmod(whole, 86_400)
    hour, second = divmod(second, 3600)
    minute, second = divmod(second, 60)
    prefix = f"{_date(day)}T{hour:02d}:{minute:02d}:{second:02d}"
    _last_second[:] = [whole, prefix]
    return f"{prefix}.{micros:06d}Z"


def month_of(epoch: float) -> str:
    """The UTC month of `epoch`, as `iso(epoch)` begins (rounded to the microsecond)."""
    return _date(_split(epoch)[0] // 86_400)[:7]


def _split(epoch: float) -> tuple[int, int]:
    """Whole seconds and microseconds, rounded as datetime rounds them."""
    whole = math.floor(epoch)
    micros = round((epoch - whole) * 1_000_000)
    if micros == 1_000_000:
        return whole + 1, 0
    return whole, micros


def _date(day: int) -> str:
    """`YYYY-MM-DD` of a UTC day number, cached (the writer asks per record)."""
    date = _DATES.get(day)
    if date is None:
        date = datetime.datetime.fromtimestamp(day * 86_400, datetime.UTC).strftime("%Y-%m-%d")
        if len(_DATES) >= 1024:
            _DATES.clear()
        _DATES[day] = date
    return date


_DATES: dict[int, str] = {}
_last_second: list[Any] = [None, ""]  # the last whole second formatted, and its text


class UsageRecord(NamedTuple):
    """One provider call, priced (a tuple: the writer makes one per call)."""

    call_id: str
    tenant_id: str
    key_id: str
    endpoint: str
    route: str
    model: str
    at: float  # when the call started, epoch seconds
    ended_at: float
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    latency_ms: int
    first_token_ms: int | None
    outcome: str
    cost_usd_micros: int | None  # None: the model has no price
    price_version: str
    estimated: bool = False
    streamed: bool = False
    request_id: str | None = None

    @property
    def sk(self) -> str:
        return f"{RECORD_PREFIX}{iso(self.at)}#{self.call_id}"

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def item(self, expires_at: int) -> dict[str, Any]:
        at = iso(self.at)
        return attributes(
            {
                "pk": "TENANT#" + self.tenant_id,
                "sk": f"{RECORD_PREFIX}{at}#{self.call_id}",
                "call_id": self.call_id,
                "tenant_id": self.tenant_id,
                "key_id": self.key_id,
                "endpoint": self.endpoint,
                "route": self.route,
                "model": self.model,
                "at": at,
                "input_tokens": self.input_tokens,
                "cached_input_tokens": self.cached_input_tokens,
                "output_tokens": self.output_tokens,
                "latency_ms": self.latency_ms,
                "outcome": self.outcome,
                "price_version": self.price_version,
                "estimated": self.estimated,
                "streamed": self.streamed,
                "expires_at": expires_at,
                "first_token_ms": self.first_token_ms,
                "cost_usd_micros": self.cost_usd_micros,
                "request_id": self.request_id,
            }
        )


def record_from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A stored record as plain values (what reports work with)."""
    out = plain(item)
    for name in ("pk", "sk", "expires_at"):
        out.pop(name, None)
    out.setdefault("cost_usd_micros", None)
    out.setdefault("first_token_ms", None)
    out.setdefault("request_id", None)
    return out


def already_written(error: BaseException, records: int) -> bool:
    """Whether `error` says a transaction of `records` Puts was applied before (every Put's
    condition failed): a retry after a lost answer, which must count nothing again."""
    puts = cancellation_reasons(error)[:records]
    return bool(puts) and all(r.get("Code") == "ConditionalCheckFailed" for r in puts)


class UsageStore:
    """The usage items of the shared table. Blocking (boto3): call it from a thread.

    `dynamodb` is a boto3 DynamoDB client, or a function that makes one (called once, on
    first use, so building a store costs nothing).
    """

    def __init__(
        self,
        dynamodb: Any | Callable[[], Any],
        table: str,
        *,
        retention_days: int = 400,
        transactions: Any | Callable[[], Any] | None = None,
    ) -> None:
        self._client = None if callable(dynamodb) else dynamodb
        self._transactions = transactions
        self._factory = dynamodb if callable(dynamodb) else None
        self.table = table
        self.retention_days = retention_days

    @property
    def client(self) -> Any:
        if self._client is None:
            assert self._factory is not None
            self._client = self._factory()
        return self._client

    @property
    def transactions(self) -> Any:
        """What writes run on: `transactions` if given (or made by it), else the client.
        `write_many` calls its `transact_write_items`; the usage writer sends on the event
        loop with its `transact_async` when it has one (services.usage.transactions)."""
        if callable(self._transactions):
            self._transactions = self._transactions()
        return self._transactions if self._transactions is not None else self.client

    def write(self, record: UsageRecord) -> bool:
        """Write one call; False if it was already written (nothing changed)."""
        return self.write_many([record]) == 1

    def write_many(self, records: list[UsageRecord]) -> int:
        """Write calls in one transaction (group commit); how many were new.

        Each record is a Put (only if absent); the spend counter of each tenant-month and
        the rate window of each key-minute get one ADD of their records' sum, since one
        transaction may not touch an item twice. At most `MAX_ACTIONS` actions: use
        `batches` to split a longer list. A transaction applies whole or not at all, so a
        retry of one that was applied fails every Put's condition and returns 0.
        """
        if not records:
            return 0
        actions = [self.put_action(r) for r in records] + self.counter_actions(records)
        try:
            self.transactions.transact_write_items(
                TransactItems=actions, ClientRequestToken=records[0].call_id[:36]
            )
        except Exception as exc:
            if already_written(exc, len(records)):
                return 0
            raise
        return len(records)

    def put_action(self, record: UsageRecord) -> dict[str, Any]:
        expires = int(record.at) + self.retention_days * 86_400
        return {
            "Put": {
                "TableName": self.table,
                "Item": record.item(expires),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def counter_actions(self, records: list[UsageRecord]) -> list[dict[str, Any]]:
        """One ADD per spend counter (tenant-month) and rate window (key-minute)."""
        spend: dict[tuple[str, str], list[int]] = {}
        rate: dict[tuple[str, int], int] = {}
        for record in records:
            totals = spend.setdefault((record.tenant_id, month_of(record.at)), [0, 0, 0])
            totals[0] += record.cost_usd_micros or 0
            totals[1] += 1
            totals[2] += record.cost_usd_micros is None
            minute = (record.key_id, int(record.ended_at // 60))
            rate[minute] = rate.get(minute, 0) + record.tokens
        actions: list[dict[str, Any]] = []
        for (tenant, month), (cost, calls, unpriced) in spend.items():
            add = "ADD cost_usd_micros :c, calls :n" + (", unpriced_calls :u" if unpriced else "")
            actions.append(
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": attributes(
                            {"pk": f"TENANT#{tenant}", "sk": f"{SPEND_PREFIX}{month}"}
                        ),
                        "UpdateExpression": add,
                        "ExpressionAttributeValues": attributes(
                            {":c": cost, ":n": calls, ":u": unpriced or None}
                        ),
                    }
                }
            )
        for (key_id, minute_no), tokens in rate.items():
            actions.append(
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": attributes({"pk": f"RATE#{key_id}", "sk": f"MIN#{minute_no}"}),
                        "UpdateExpression": "ADD tokens :t SET expires_at = :e",
                        "ExpressionAttributeValues": attributes(
                            {
                                ":t": tokens,
                                ":e": (minute_no + 1) * 60 + RATE_WINDOW_GRACE_SECONDS,
                            }
                        ),
                    }
                }
            )
        return actions

    def records(
        self, tenant: str, start: datetime.date, end: datetime.date
    ) -> Iterator[dict[str, Any]]:
        """The tenant's records of calls started from `start` to `end` (inclusive, UTC
        days), oldest first, as plain values."""
        low = f"{RECORD_PREFIX}{start.isoformat()}T"
        high = f"{RECORD_PREFIX}{(end + datetime.timedelta(days=1)).isoformat()}T"
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": attributes(
                {":pk": f"TENANT#{tenant}", ":low": low, ":high": high}
            ),
        }
        while True:
            page = self.client.query(**kwargs)
            for item in page.get("Items", []):
                if not item["sk"]["S"].startswith(high):
                    yield record_from_item(item)
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def spend(self, tenant: str, month: str) -> dict[str, int]:
        """The tenant's spend counter for `month` (YYYY-MM): cost_usd_micros, calls,
        unpriced_calls (zeros when nothing was recorded)."""
        item = (
            self.client.get_item(
                TableName=self.table,
                Key=attributes({"pk": f"TENANT#{tenant}", "sk": f"{SPEND_PREFIX}{month}"}),
                ConsistentRead=True,
            ).get("Item")
            or {}
        )
        return {
            name: int(plain(item).get(name, 0))
            for name in ("cost_usd_micros", "calls", "unpriced_calls")
        }
