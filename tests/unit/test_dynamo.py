"""The one DynamoDB layer (services/dynamo.py): serializer, cursor codec, conditional check;
and every list's cursor, forged, against the stores that use it."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from devstack.tables import create_table
from services.conversations.store import ConversationStore
from services.dynamo import (
    Listing,
    attributes,
    cancellation_reasons,
    conditional_failed,
    plain,
)
from services.errors import InvalidRequest
from services.runs.model import Run
from services.runs.store import RunStore, new_run_id
from services.tenancy.tenants import LISTING as TENANTS
from tests.fakes.serialized import moto_documents

TABLE = "dynamo-test"


def b64(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# -- the serializer ----------------------------------------------------------------------


def test_attributes_and_plain_round_trip() -> None:
    values = {
        "s": "text é",
        "i": 42,
        "neg": -7,
        "f": 1790000000.123456,
        "d": Decimal("12.5"),
        "yes": True,
        "no": False,
        "b": b"\x00\x01",
        "gone": None,
    }
    item = attributes(values)
    assert item == {
        "s": {"S": "text é"},
        "i": {"N": "42"},
        "neg": {"N": "-7"},
        "f": {"N": "1790000000.123456"},
        "d": {"N": "12.5"},
        "yes": {"BOOL": True},
        "no": {"BOOL": False},
        "b": {"B": b"\x00\x01"},
    }
    back = plain(item)
    assert back == {k: v for k, v in values.items() if v is not None} | {
        "f": Decimal("1790000000.123456")
    }
    assert float(back["f"]) == values["f"]


@pytest.mark.parametrize("value", [{"a": 1}, [1], object()])
def test_json_values_are_the_stores_to_write(value: Any) -> None:
    with pytest.raises(TypeError):
        attributes({"x": value})


# -- the cursor codec --------------------------------------------------------------------

SORT = re.compile(r"[0-9]{13}#run_[0-9a-f]{24}")


def runs_of(tenant: str) -> Listing:
    return Listing(
        f"TENANT#{tenant}#RUNS",
        SORT,
        lambda sk: (f"TENANT#{tenant}#RUN#{sk.partition('#')[2]}", "META"),
    )


def test_a_cursor_stands_for_the_key_after_its_item() -> None:
    sort_key = f"{1_790_000_000_000:013d}#run_{'a' * 24}"
    listing = runs_of("acme")
    cursor = listing.cursor(sort_key)
    assert "TENANT" not in base64.urlsafe_b64decode(cursor + "==").decode(errors="replace")
    assert listing.start_key(cursor) == {
        "pk": {"S": f"TENANT#acme#RUN#run_{'a' * 24}"},
        "sk": {"S": "META"},
        "gsi1pk": {"S": "TENANT#acme#RUNS"},
        "gsi1sk": {"S": sort_key},
    }


FORGED = [
    b64({"gsi1pk": {"S": "TENANT#dev#RUNS"}}),  # the issue's forged run cursor
    b64({"pk": {"S": "TENANT#other#RUN#x"}, "sk": {"S": "META"}}),
    b64(b"garbage"),
    "not base64!",
    "\u00e9\u00e9\u00e9\u00e9",
    "A" * 10_000,
    "",
]


@pytest.mark.parametrize("cursor", FORGED, ids=range(len(FORGED)))
def test_a_forged_cursor_is_a_400(cursor: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        runs_of("dev").start_key(cursor)
    assert (caught.value.status, caught.value.code, caught.value.param) == (
        400,
        "invalid_cursor",
        "after",
    )


def test_a_cursor_of_another_tenant_or_list_is_a_400() -> None:
    sort_key = f"{1_790_000_000_000:013d}#run_{'b' * 24}"
    theirs = runs_of("other").cursor(sort_key)
    with pytest.raises(InvalidRequest):
        runs_of("dev").start_key(theirs)
    # A cursor edited to another sort key, keeping its check value, is refused too.
    raw = base64.urlsafe_b64decode(runs_of("dev").cursor(sort_key) + "==")
    edited = base64.urlsafe_b64encode(raw[:6] + sort_key.replace("b", "c").encode()).decode()
    with pytest.raises(InvalidRequest):
        runs_of("dev").start_key(edited)
    # The admin API's tenants list takes a plain id, checked the same way.
    assert TENANTS.start_key_at("acme")["pk"] == {"S": "TENANT#acme"}
    with pytest.raises(InvalidRequest):
        TENANTS.start_key_at("acme#RUN")


# -- the conditional-failure check -------------------------------------------------------


def client_error(code: str, reasons: list[dict[str, Any]] | None = None) -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": "x"}}
    if reasons is not None:
        response["CancellationReasons"] = reasons
    return ClientError(response, "Op")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (client_error("ConditionalCheckFailedException"), True),
        (
            client_error(
                "TransactionCanceledException",
                [{"Code": "None"}, {"Code": "ConditionalCheckFailed"}],
            ),
            True,
        ),
        (client_error("TransactionCanceledException", []), True),
        (client_error("TransactionCanceledException", [{"Code": "TransactionConflict"}]), False),
        (client_error("ValidationException"), False),
        (ValueError("not AWS"), False),
    ],
)
def test_one_conditional_failure_check(error: BaseException, expected: bool) -> None:
    assert conditional_failed(error) is expected


def test_cancellation_reasons_only_of_a_cancelled_transaction() -> None:
    reasons = [{"Code": "ConditionalCheckFailed"}]
    assert cancellation_reasons(client_error("TransactionCanceledException", reasons)) == reasons
    assert cancellation_reasons(client_error("ConditionalCheckFailedException")) == []


# -- every list's cursor, through its store -----------------------------------------------


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, TABLE)
        yield client


def run_of(tenant: str, at: float) -> Run:
    return Run(
        id=new_run_id(),
        tenant_id=tenant,
        key_id="k",
        kind="pipeline",
        status="queued",
        input={},
        created_at=at,
        updated_at=at,
    )


def test_a_forged_run_cursor_never_reaches_dynamodb(dynamodb: Any) -> None:
    store = RunStore(dynamodb, TABLE)
    now = time.time()
    for i in range(3):
        store.create(run_of("dev", now + i))
        store.create(run_of("other", now + i))
    _, theirs = store.page("other", limit=1)
    assert theirs is not None
    for cursor in (*FORGED[:3], theirs):
        with pytest.raises(InvalidRequest):
            store.page("dev", cursor=cursor)
    first, cursor = store.page("dev", limit=2)
    assert cursor is not None
    rest, end = store.page("dev", limit=2, cursor=cursor)
    assert len(first) == 2 and len(rest) == 1 and end is None


def test_a_conversation_cursor_is_one_of_this_tenants_conversations(dynamodb: Any) -> None:
    clock = [1_790_000_000.0]
    store = ConversationStore(dynamodb, TABLE, clock=lambda: clock[0])
    for tenant in ("dev", "other"):
        for _ in range(3):
            clock[0] += 1
            store.create(tenant)
    theirs = store.list_conversations("other", limit=1).next_cursor
    assert theirs is not None
    runs_cursor = runs_of("dev").cursor(f"{1:013d}#run_{'a' * 24}")
    for cursor in (*FORGED[:3], theirs, runs_cursor):
        with pytest.raises(InvalidRequest):
            store.list_conversations("dev", after=cursor)
    page = store.list_conversations("dev", limit=2)
    assert page.next_cursor is not None
    assert len(store.list_conversations("dev", limit=2, after=page.next_cursor).items) == 1


def test_a_document_cursor_is_one_of_this_tenants_documents() -> None:
    with moto_documents(TABLE, "dynamo-test-bucket") as store:
        for tenant in ("dev", "other"):
            for i in range(3):
                store.put_sync(tenant, f"n{i}.txt", "text/plain", b"hello")
        _, theirs = store.list_sync("other", 1)
        assert theirs is not None
        for cursor in (*FORGED[:3], theirs):
            with pytest.raises(InvalidRequest):
                store.list_sync("dev", 20, cursor)
        _, cursor = store.list_sync("dev", 2)
        assert cursor is not None and len(store.list_sync("dev", 2, cursor)[0]) == 1
