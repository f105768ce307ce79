"""Admission on moto's DynamoDB: the budget wall, the per-key rate limits, their headers,
and no DynamoDB call per request for a tenant without limits."""

from __future__ import annotations

import asyncio
import calendar
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from moto import mock_aws
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from devstack.tables import create_table
from services.errors import InvalidRequest, RateLimited
from services.tenancy.auth import Authenticator
from services.tenancy.auth import Principal as P
from services.tenancy.keys import KeyStore
from services.tenancy.limits import Admission, AdmissionResult, guard
from services.tenancy.tenants import Limits, TenantStore
from services.web.asgi import JSONBytesResponse, install_error_handlers

TABLE = "switchboard-test"
# 2026-11-30 23:59:00 UTC: the last minute of a month.
NOW = float(calendar.timegm((2026, 11, 30, 23, 59, 0)))
KEY = P("acme", "key_1")


class Counting:
    """The boto3 client, counting the calls made through it."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.exceptions = client.exceptions
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(**kwargs: Any) -> Any:
            self.calls.append(name)
            return method(**kwargs)

        return call


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, TABLE)
        yield client


class Clocks:
    def __init__(self) -> None:
        self.wall = NOW
        self.mono = 1000.0


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


def admission(client: Any, clocks: Clocks, cache_seconds: float = 5.0) -> Admission:
    return Admission(
        client,
        TABLE,
        cache_seconds=cache_seconds,
        clock=lambda: clocks.wall,
        monotonic=lambda: clocks.mono,
    )


def admit(a: Admission, principal: P = KEY) -> AdmissionResult:
    return asyncio.run(a.admit(principal))


def refusal(a: Admission, principal: P = KEY) -> RateLimited:
    with pytest.raises(RateLimited) as info:
        admit(a, principal)
    return info.value


def spend(client: Any, tenant: str, micros: int, month: str = "2026-11") -> None:
    client.update_item(
        TableName=TABLE,
        Key={"pk": {"S": f"TENANT#{tenant}"}, "sk": {"S": f"SPEND#{month}"}},
        UpdateExpression="ADD cost_usd_micros :c, calls :one",
        ExpressionAttributeValues={":c": {"N": str(micros)}, ":one": {"N": "1"}},
    )


def add_tokens(client: Any, key_id: str, tokens: int, minute: int) -> None:
    client.update_item(
        TableName=TABLE,
        Key={"pk": {"S": f"RATE#{key_id}"}, "sk": {"S": f"MIN#{minute}"}},
        UpdateExpression="ADD tokens :t",
        ExpressionAttributeValues={":t": {"N": str(tokens)}},
    )


def test_without_limits_no_dynamodb_call_per_request(dynamodb: Any, clocks: Clocks) -> None:
    TenantStore(dynamodb, TABLE).create("acme")
    counting = Counting(dynamodb)
    a = admission(counting, clocks)
    for _ in range(50):
        assert admit(a).headers == {}
    assert admit(a, P("no-record", "k")).headers == {}
    assert counting.calls == ["get_item", "get_item"]  # one settings read per tenant
    clocks.mono += 5.1
    admit(a)
    assert counting.calls == ["get_item"] * 3  # re-read after the cache bound


def test_limits_take_effect_within_the_cache_bound(dynamodb: Any, clocks: Clocks) -> None:
    tenants = TenantStore(dynamodb, TABLE)
    tenants.create("acme")
    a = admission(dynamodb, clocks)
    admit(a)
    tenants.set_limits("acme", monthly_budget_usd=Decimal(0))
    clocks.mono += 4.9
    admit(a)  # the cached settings still say "no limits"
    clocks.mono += 0.2
    assert refusal(a).code == "budget_exceeded"


def test_budget_wall_is_at_the_budget_inclusive(dynamodb: Any, clocks: Clocks) -> None:
    TenantStore(dynamodb, TABLE).create("acme", limits=Limits(monthly_budget_usd=Decimal("10")))
    a = admission(dynamodb, clocks)
    admit(a)  # nothing spent yet
    spend(dynamodb, "acme", 9_999_999)
    admit(a)
    spend(dynamodb, "acme", 1, month="2026-10")  # last month's spend does not count
    admit(a)
    spend(dynamodb, "acme", 1)  # exactly $10.00
    error = refusal(a)
    assert (error.status, error.type, error.code) == (429, "insufficient_quota", "budget_exceeded")
    assert "monthly budget of $10.00" in error.message
    assert "($10.00 so far this month)" in error.message
    assert "2026-12-01" in error.message
    assert error.headers == {"x-should-retry": "false"}


def test_the_spend_counter_is_read_consistently_on_every_request(
    dynamodb: Any, clocks: Clocks
) -> None:
    TenantStore(dynamodb, TABLE).create("acme", limits=Limits(monthly_budget_usd=Decimal(1)))
    counting = Counting(dynamodb)
    a = admission(counting, clocks)
    admit(a)
    admit(a)
    assert counting.calls == ["get_item", "get_item", "get_item"]  # settings once, spend twice
    spend(dynamodb, "acme", 1_000_000)
    refusal(a)


def test_requests_per_minute(dynamodb: Any, clocks: Clocks) -> None:
    TenantStore(dynamodb, TABLE).create("acme", limits=Limits(rpm=3))
    a = admission(dynamodb, clocks)
    clocks.wall = NOW + 15  # 45 s to the end of the window
    remaining = [admit(a).headers["x-ratelimit-remaining-requests"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    error = refusal(a)
    assert (error.status, error.type, error.code) == (
        429,
        "rate_limit_error",
        "rate_limit_exceeded",
    )
    assert error.headers == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "45s",
        "retry-after": "45",
    }
    assert admit(a, P("acme", "key_2")).headers["x-ratelimit-remaining-requests"] == "2"
    clocks.wall = NOW + 60  # the next window
    assert admit(a).headers["x-ratelimit-remaining-requests"] == "2"
    window = dynamodb.get_item(
        TableName=TABLE, Key={"pk": {"S": "RATE#key_1"}, "sk": {"S": f"MIN#{int(NOW) // 60}"}}
    )["Item"]
    assert window["requests"] == {"N": "3"}, "a refused request is not counted"
    assert int(window["expires_at"]["N"]) == int(NOW) + 60 + 120


def test_tokens_per_minute(dynamodb: Any, clocks: Clocks) -> None:
    TenantStore(dynamodb, TABLE).create("acme", limits=Limits(tpm=1000))
    a = admission(dynamodb, clocks)
    minute = int(NOW) // 60
    headers = admit(a).headers
    assert headers["x-ratelimit-remaining-tokens"] == "1000"
    assert "x-ratelimit-limit-requests" not in headers  # no request limit set
    add_tokens(dynamodb, "key_1", 999, minute)
    assert admit(a).headers["x-ratelimit-remaining-tokens"] == "1"
    add_tokens(dynamodb, "key_1", 1, minute)
    error = refusal(a)
    assert error.code == "token_rate_limit_exceeded"
    assert error.headers["x-ratelimit-remaining-tokens"] == "0"
    assert error.headers["retry-after"] == "60"


def test_both_limits_and_the_budget_first(dynamodb: Any, clocks: Clocks) -> None:
    limits = Limits(monthly_budget_usd=Decimal(5), rpm=2, tpm=100)
    TenantStore(dynamodb, TABLE).create("acme", limits=limits)
    a = admission(dynamodb, clocks)
    headers = admit(a).headers
    assert headers["x-ratelimit-remaining-requests"] == "1"
    assert headers["x-ratelimit-remaining-tokens"] == "100"
    spend(dynamodb, "acme", 5_000_000)
    assert refusal(a).code == "budget_exceeded"
    spend(dynamodb, "acme", -1)
    # The refused request used no request of the window.
    assert admit(a).headers["x-ratelimit-remaining-requests"] == "0"
    assert refusal(a).code == "rate_limit_exceeded"


def test_guard_puts_the_headers_on_answers_and_errors(dynamodb: Any) -> None:
    TenantStore(dynamodb, TABLE).create("acme", limits=Limits(rpm=2))
    TenantStore(dynamodb, TABLE).create("free")
    keys = KeyStore(dynamodb, TABLE)
    secrets = {tenant: keys.create(tenant).secret for tenant in ("acme", "free")}
    auth = Authenticator(keys)
    a = Admission(dynamodb, TABLE)

    async def ok(request: Request, principal: P) -> Response:
        return JSONBytesResponse({"tenant": principal.tenant_id})

    async def bad(request: Request, principal: P) -> Response:
        raise InvalidRequest("no", param="x")

    app = Starlette(
        routes=[
            Route("/ok", guard(auth, a, ok), methods=["POST"]),
            Route("/bad", guard(auth, a, bad), methods=["POST"]),
        ]
    )
    install_error_handlers(app)
    client = TestClient(app)

    def caller(tenant: str) -> dict[str, str]:
        return {"authorization": f"Bearer {secrets[tenant]}"}

    first = client.post("/ok", headers=caller("acme"))
    assert first.json() == {"tenant": "acme"}
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    second = client.post("/bad", headers=caller("acme"))
    assert second.status_code == 400
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    third = client.post("/ok", headers=caller("acme"))
    assert third.status_code == 429 and int(third.headers["retry-after"]) >= 1
    assert third.json()["error"]["code"] == "rate_limit_exceeded"
    free = client.post("/ok", headers=caller("free"))
    assert free.status_code == 200 and "x-ratelimit-limit-requests" not in free.headers
    assert client.post("/ok").status_code == 401
