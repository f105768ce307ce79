"""`python -m bench.dynamo`: the one DynamoDB serializer (services/dynamo.py), measured.

A usage record is the item the worker writes most (one per provider call, rendered on its
event loop), so it is the one measured: the record's item written by hand as literal
attribute values (what the stores did before), by `attributes` (what they do now), by
boto3's `TypeSerializer`, and the whole Put as the JSON the usage writer sends
(`orjson.dumps(put_action(record))`). CPU time per item, the best of several rounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from boto3.dynamodb.types import TypeSerializer

from services.usage.store import RECORD_PREFIX, UsageRecord, UsageStore, iso

RECORD = UsageRecord(
    call_id="call_0123456789abcdef01234567", tenant_id="acme", key_id="key_0123456789abcdef",
    endpoint="/v1/chat/completions", route="fast", model="openai/gpt-4o-mini",
    at=1_790_000_000.123456, ended_at=1_790_000_000.9, input_tokens=1200,
    cached_input_tokens=0, output_tokens=200, latency_ms=780, first_token_ms=120,
    outcome="ok", cost_usd_micros=300, price_version="2025-06",
)  # fmt: skip
EXPIRES = 1_824_560_000


def by_hand(r: UsageRecord, expires_at: int) -> dict[str, Any]:
    at = iso(r.at)
    item: dict[str, Any] = {
        "pk": {"S": f"TENANT#{r.tenant_id}"},
        "sk": {"S": f"{RECORD_PREFIX}{at}#{r.call_id}"},
        "call_id": {"S": r.call_id},
        "tenant_id": {"S": r.tenant_id},
        "key_id": {"S": r.key_id},
        "endpoint": {"S": r.endpoint},
        "route": {"S": r.route},
        "model": {"S": r.model},
        "at": {"S": at},
        "input_tokens": {"N": str(r.input_tokens)},
        "cached_input_tokens": {"N": str(r.cached_input_tokens)},
        "output_tokens": {"N": str(r.output_tokens)},
        "latency_ms": {"N": str(r.latency_ms)},
        "outcome": {"S": r.outcome},
        "price_version": {"S": r.price_version},
        "estimated": {"BOOL": r.estimated},
        "streamed": {"BOOL": r.streamed},
        "expires_at": {"N": str(expires_at)},
    }
    if r.first_token_ms is not None:
        item["first_token_ms"] = {"N": str(r.first_token_ms)}
    if r.cost_usd_micros is not None:
        item["cost_usd_micros"] = {"N": str(r.cost_usd_micros)}
    return item


def by_boto3(r: UsageRecord, expires_at: int, serializer: TypeSerializer) -> dict[str, Any]:
    at = iso(r.at)
    values = {
        "pk": f"TENANT#{r.tenant_id}", "sk": f"{RECORD_PREFIX}{at}#{r.call_id}",
        "call_id": r.call_id, "tenant_id": r.tenant_id, "key_id": r.key_id,
        "endpoint": r.endpoint, "route": r.route, "model": r.model, "at": at,
        "input_tokens": r.input_tokens, "cached_input_tokens": r.cached_input_tokens,
        "output_tokens": r.output_tokens, "latency_ms": r.latency_ms, "outcome": r.outcome,
        "price_version": r.price_version, "estimated": r.estimated, "streamed": r.streamed,
        "expires_at": expires_at, "first_token_ms": r.first_token_ms,
        "cost_usd_micros": r.cost_usd_micros,
    }  # fmt: skip
    return {k: serializer.serialize(v) for k, v in values.items() if v is not None}


def per_item(work: Callable[[], Any], rounds: int = 7, number: int = 20_000) -> float:
    """Microseconds of CPU per call: the best of `rounds` rounds of `number` calls."""
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(number):
            work()
        best = min(best, time.process_time() - start)
    return best / number * 1e6


def main() -> None:
    store = UsageStore(lambda: None, "switchboard")
    serializer = TypeSerializer()
    assert RECORD.item(EXPIRES) == by_hand(RECORD, EXPIRES) == by_boto3(RECORD, EXPIRES, serializer)
    cases = {
        "item written by hand (before)": lambda: by_hand(RECORD, EXPIRES),
        "item by attributes() (now)": lambda: RECORD.item(EXPIRES),
        "item by boto3 TypeSerializer": lambda: by_boto3(RECORD, EXPIRES, serializer),
        "Put as JSON: orjson.dumps(put_action)": lambda: orjson.dumps(store.put_action(RECORD)),
    }
    print("DynamoDB serializer, one usage record (CPU time per item, best of 7 rounds):")
    for name, work in cases.items():
        print(f"  {name:40s} {per_item(work):6.2f} us")


if __name__ == "__main__":
    main()
