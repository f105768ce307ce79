"""Usage records, the monthly spend counter and the rate window, in the shared table.

| item            | pk               | sk                                   |
| --------------- | ---------------- | ------------------------------------ |
| usage record    | `TENANT#<t>`     | `USAGE#<ISO 8601 UTC start>#<call id>` |
| spend counter   | `TENANT#<t>`     | `SPEND#<YYYY-MM>` (UTC month of the call's start) |
| rate window     | `RATE#<key id>`  | `MIN#<epoch minute>` (the minute the call ended) |

A record's attributes: tenant_id, key_id, endpoint (the API the call came through), route
(the public model name asked for), model (the provider model), input_tokens (every prompt
token, cached ones included), cached_input_tokens, output_tokens, latency_ms,
first_token_ms, outcome (`ok`, an error code, or `abandoned`), cost_usd_micros (absent:
unknown), price_version, estimated, streamed, call_id, at, expires_at.

`write` is one TransactWriteItems: Put the record (only if absent), ADD its cost and one
call (and one unpriced call) to the spend counter, ADD its tokens to the key's rate
window. A retried write of the same record fails its condition and changes nothing, so a
call is never counted twice. The counter is only ever changed with ADD: concurrent
writers cannot lose an update.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

RECORD_PREFIX = "USAGE#"
SPEND_PREFIX = "SPEND#"
RATE_WINDOW_GRACE_SECONDS = 120


def iso(epoch: float) -> str:
    """A fixed-width UTC timestamp, so sort keys order by time."""
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def month_of(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m")


@dataclass(frozen=True, slots=True)
class UsageRecord:
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

    @property
    def sk(self) -> str:
        return f"{RECORD_PREFIX}{iso(self.at)}#{self.call_id}"

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def item(self, expires_at: int) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": {"S": f"TENANT#{self.tenant_id}"},
            "sk": {"S": self.sk},
            "call_id": {"S": self.call_id},
            "tenant_id": {"S": self.tenant_id},
            "key_id": {"S": self.key_id},
            "endpoint": {"S": self.endpoint},
            "route": {"S": self.route},
            "model": {"S": self.model},
            "at": {"S": iso(self.at)},
            "input_tokens": {"N": str(self.input_tokens)},
            "cached_input_tokens": {"N": str(self.cached_input_tokens)},
            "output_tokens": {"N": str(self.output_tokens)},
            "latency_ms": {"N": str(self.latency_ms)},
            "outcome": {"S": self.outcome},
            "price_version": {"S": self.price_version},
            "estimated": {"BOOL": self.estimated},
            "streamed": {"BOOL": self.streamed},
            "expires_at": {"N": str(expires_at)},
        }
        if self.first_token_ms is not None:
            item["first_token_ms"] = {"N": str(self.first_token_ms)}
        if self.cost_usd_micros is not None:
            item["cost_usd_micros"] = {"N": str(self.cost_usd_micros)}
        return item


def record_from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A stored record as plain values (what reports work with)."""
    out: dict[str, Any] = {}
    for name, value in item.items():
        if name in ("pk", "sk", "expires_at"):
            continue
        if "S" in value:
            out[name] = value["S"]
        elif "N" in value:
            out[name] = int(value["N"])
        elif "BOOL" in value:
            out[name] = value["BOOL"]
    out.setdefault("cost_usd_micros", None)
    out.setdefault("first_token_ms", None)
    return out


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
    ) -> None:
        self._client = None if callable(dynamodb) else dynamodb
        self._factory = dynamodb if callable(dynamodb) else None
        self.table = table
        self.retention_days = retention_days

    @property
    def client(self) -> Any:
        if self._client is None:
            assert self._factory is not None
            self._client = self._factory()
        return self._client

    def write(self, record: UsageRecord) -> bool:
        """Write one call; False if this record was already written (nothing changed)."""
        tenant = f"TENANT#{record.tenant_id}"
        expires = int(record.at) + self.retention_days * 86_400
        spend_add = "ADD cost_usd_micros :c, calls :one"
        values: dict[str, Any] = {
            ":c": {"N": str(record.cost_usd_micros or 0)},
            ":one": {"N": "1"},
        }
        if record.cost_usd_micros is None:
            spend_add += ", unpriced_calls :one"
        minute = int(record.ended_at // 60)
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": record.item(expires),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": {
                                "pk": {"S": tenant},
                                "sk": {"S": f"{SPEND_PREFIX}{month_of(record.at)}"},
                            },
                            "UpdateExpression": spend_add,
                            "ExpressionAttributeValues": values,
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": {
                                "pk": {"S": f"RATE#{record.key_id}"},
                                "sk": {"S": f"MIN#{minute}"},
                            },
                            "UpdateExpression": "ADD tokens :t SET expires_at = :e",
                            "ExpressionAttributeValues": {
                                ":t": {"N": str(record.tokens)},
                                ":e": {"N": str((minute + 1) * 60 + RATE_WINDOW_GRACE_SECONDS)},
                            },
                        }
                    },
                ],
                ClientRequestToken=record.call_id[:36],
            )
        except self.client.exceptions.TransactionCanceledException as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                return False
            raise
        return True

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
            "ExpressionAttributeValues": {
                ":pk": {"S": f"TENANT#{tenant}"},
                ":low": {"S": low},
                ":high": {"S": high},
            },
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
                Key={"pk": {"S": f"TENANT#{tenant}"}, "sk": {"S": f"{SPEND_PREFIX}{month}"}},
                ConsistentRead=True,
            ).get("Item")
            or {}
        )
        return {
            name: int(item[name]["N"]) if name in item else 0
            for name in ("cost_usd_micros", "calls", "unpriced_calls")
        }
