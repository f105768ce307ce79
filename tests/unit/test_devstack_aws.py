"""The local DynamoDB (devstack.aws): moto, with transactions that back up only the items
they touch. A failed transaction must still change nothing."""

from __future__ import annotations

import asyncio
import datetime
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import boto3
import orjson
import pytest
from botocore.exceptions import ClientError

from devstack.stack import ROOT, free_port
from devstack.tables import create_table
from services.providers.base import Usage
from services.usage.calls import ProviderCall
from services.usage.context import Caller
from services.usage.prices import PriceTable
from services.usage.store import UsageRecord, UsageStore, already_written
from services.usage.transactions import DynamoDBTransactions
from services.usage.writer import UsageSettings, UsageWriter

TABLE = "t"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """A `python -m devstack.aws` server on a free port, with the table created."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "devstack.aws", "--port", str(port)], cwd=ROOT)
    client = boto3.client(
        "dynamodb",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    try:
        for _ in range(200):
            try:
                create_table(client, TABLE)
                break
            except Exception:
                if server.poll() is not None:
                    raise
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture(scope="module")
def dynamodb(endpoint: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def item(pk: str, **attrs: int) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": "x"}, **{k: {"N": str(v)} for k, v in attrs.items()}}


def get(client: Any, pk: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = client.get_item(
        TableName=TABLE, Key={"pk": {"S": pk}, "sk": {"S": "x"}}
    ).get("Item")
    return found


def test_a_transaction_applies_every_action(dynamodb: Any) -> None:
    for i in range(300):  # a table with something in it
        dynamodb.put_item(TableName=TABLE, Item=item(f"bulk{i}", n=i))
    dynamodb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": TABLE, "Item": item("a", n=1)}},
            {
                "Update": {
                    "TableName": TABLE,
                    "Key": {"pk": {"S": "bulk1"}, "sk": {"S": "x"}},
                    "UpdateExpression": "ADD n :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                }
            },
        ]
    )
    assert get(dynamodb, "a") == item("a", n=1)
    assert get(dynamodb, "bulk1") == item("bulk1", n=2)


def test_a_failed_transaction_changes_nothing(dynamodb: Any) -> None:
    dynamodb.put_item(TableName=TABLE, Item=item("kept", n=5))
    dynamodb.put_item(TableName=TABLE, Item=item("guard", n=0))
    with pytest.raises(ClientError) as info:
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": item("new", n=1)}},
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": {"pk": {"S": "kept"}, "sk": {"S": "x"}},
                        "UpdateExpression": "ADD n :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
                {"Delete": {"TableName": TABLE, "Key": {"pk": {"S": "bulk2"}, "sk": {"S": "x"}}}},
                {
                    "ConditionCheck": {
                        "TableName": TABLE,
                        "Key": {"pk": {"S": "guard"}, "sk": {"S": "x"}},
                        "ConditionExpression": "n = :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
            ]
        )
    assert info.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert get(dynamodb, "new") is None
    assert get(dynamodb, "kept") == item("kept", n=5)
    assert get(dynamodb, "bulk2") == item("bulk2", n=2)


# The usage writer's lean TransactWriteItems (services.usage.transactions), against the
# same server: it must behave as boto3's call does.


@pytest.fixture
def lean(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> DynamoDBTransactions:
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    return DynamoDBTransactions()


def usage(call_id: str, tenant: str = "lean", cost: int | None = 100) -> UsageRecord:
    at = 1_795_900_000.0
    return UsageRecord(
        call_id=call_id, tenant_id=tenant, key_id="k", endpoint="/v1/chat/completions",
        route="fast", model="openai/gpt-4o-mini", at=at, ended_at=at + 1, input_tokens=10,
        cached_input_tokens=0, output_tokens=5, latency_ms=1000, first_token_ms=100,
        outcome="ok", cost_usd_micros=cost, price_version="v1",
    )  # fmt: skip


def send(lean: DynamoDBTransactions, store: UsageStore, group: list[UsageRecord]) -> None:
    actions = [orjson.dumps(store.put_action(r)) for r in group]
    actions += [orjson.dumps(a) for a in store.counter_actions(group)]
    asyncio.run(lean.transact_async(actions, group[0].call_id))


def test_usage_is_written_by_the_lean_transaction_as_by_boto3(
    dynamodb: Any, lean: DynamoDBTransactions
) -> None:
    store = UsageStore(dynamodb, TABLE)
    group = [usage("lean-1"), usage("lean-2", cost=None), usage("lean-3", tenant="other")]
    send(lean, store, group)
    with pytest.raises(ClientError) as retried:  # a retry of an applied group
        send(lean, store, group)
    assert already_written(retried.value, len(group))
    assert store.spend("lean", "2026-11") == {
        "cost_usd_micros": 100,
        "calls": 2,
        "unpriced_calls": 1,
    }
    assert store.spend("other", "2026-11")["calls"] == 1


def test_the_lean_transaction_raises_other_errors_as_boto3_would(
    dynamodb: Any, lean: DynamoDBTransactions
) -> None:
    with pytest.raises(ClientError) as info:
        send(lean, UsageStore(dynamodb, "no-such-table"), [usage("lost")])
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert not already_written(info.value, 1)


def test_the_writer_sends_its_groups_from_the_event_loop(
    dynamodb: Any, lean: DynamoDBTransactions
) -> None:
    """With a transport that can send asynchronously, the writer prices and sends on the
    event loop (no thread): 150 calls, one spend counter equal to their sum."""
    store = UsageStore(dynamodb, TABLE, transactions=lean)
    writer = UsageWriter(store, PriceTable.load(), UsageSettings(linger_seconds=0.05))
    sent: list[int] = []
    send = lean.transact_async

    async def counted(actions: list[bytes], token: str) -> None:
        sent.append(len(actions))
        await send(actions, token)

    lean.transact_async = counted  # type: ignore[method-assign]
    at = datetime.datetime(2026, 11, 20, tzinfo=datetime.UTC).timestamp()

    async def main() -> None:
        writer.start()
        for i in range(150):
            call = ProviderCall(
                caller=Caller("looped", "k", "/v1/chat/completions"), route="fast",
                model="openai/gpt-4o-mini", started_at=at, latency_ms=5.0,
                first_token_ms=None, outcome="ok", usage=Usage(1000 + i, 100, 0),
                streamed=False,
            )  # fmt: skip
            writer.record(call)
        await writer.aclose()

    asyncio.run(main())
    assert writer.written == 150 and len(sent) >= 2 and max(sent) <= 100
    records = list(
        store.records("looped", datetime.date(2026, 11, 20), datetime.date(2026, 11, 20))
    )
    assert len(records) == 150
    assert store.spend("looped", "2026-11")["cost_usd_micros"] == sum(
        r["cost_usd_micros"] for r in records
    )


def test_free_ports_are_not_in_the_ephemeral_range() -> None:
    """A component's port is chosen before it binds it: one from the range the kernel gives
    outgoing connections could be taken in between (a start-up failure seen in CI)."""
    from devstack.stack import _ephemeral_range

    low, _ = _ephemeral_range()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    if low > 21000:
        assert all(p < low for p in ports)
