"""Budgets and rate limits on the local stack, with two workers sharing the state in
DynamoDB. Provider calls are seen through their usage records (services/usage)."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack.stack import LocalStack
from tests.integration.doors import api_door
from tests.integration.tenancy import (
    CHAT,
    LIMITS_CACHE_SECONDS,
    admin,
    bearer,
    fresh_window,
    new_key,
    new_tenant,
    stack_config,
)

LIMIT_HEADERS = {
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(stack_config(tmp_path_factory.mktemp("limits-stack-logs"))) as running:
        yield running


def provider_calls(stack: LocalStack, tenant: str) -> int:
    """The tenant's usage records: one per provider call."""
    response = stack.client("dynamodb").query(
        TableName=stack.config.table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :usage)",
        ExpressionAttributeValues={":pk": {"S": f"TENANT#{tenant}"}, ":usage": {"S": "USAGE#"}},
        ConsistentRead=True,
    )
    return len(response["Items"])


def wait_for_calls(stack: LocalStack, tenant: str, count: int, timeout: float = 15) -> int:
    deadline = time.monotonic() + timeout
    while (found := provider_calls(stack, tenant)) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def set_spend(stack: LocalStack, tenant: str, micros: int) -> None:
    """The spend counter of this UTC month, as the usage recorder keeps it."""
    month = time.strftime("%Y-%m", time.gmtime())
    stack.client("dynamodb").put_item(
        TableName=stack.config.table,
        Item={
            "pk": {"S": f"TENANT#{tenant}"},
            "sk": {"S": f"SPEND#{month}"},
            "cost_usd_micros": {"N": str(micros)},
            "calls": {"N": "1"},
        },
    )


def add_tokens(stack: LocalStack, key_id: str, tokens: int) -> None:
    """Tokens in the key's current window, as the usage recorder adds them."""
    minute = int(time.time() // 60)
    stack.client("dynamodb").update_item(
        TableName=stack.config.table,
        Key={"pk": {"S": f"RATE#{key_id}"}, "sk": {"S": f"MIN#{minute}"}},
        UpdateExpression="ADD tokens :t",
        ExpressionAttributeValues={":t": {"N": str(tokens)}},
    )


def post(url: str, key: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.post(url, headers=bearer(key), json=body or CHAT, timeout=30)


def test_budget_wall_refuses_before_any_provider_call(stack: LocalStack) -> None:
    tenant = new_tenant(stack, {"monthly_budget_usd": 2.5})
    key = new_key(stack, tenant)["secret"]
    set_spend(stack, tenant, 2_500_000)  # exactly the budget
    anthropic_body = {**CHAT, "max_tokens": 10}
    refused = [
        post(f"{api_door(stack)}/chat/completions", key),
        post(f"{stack.stream_url}/chat/completions", key, {**CHAT, "stream": True}),
        post(f"{stack.worker_urls[1]}/v1/chat/completions", key),
        post(f"{api_door(stack)}/messages", key, anthropic_body),
        post(f"{api_door(stack)}/runs", key, {"kind": "chat.completion", "input": CHAT}),
    ]
    for response in refused:
        assert response.status_code == 429, response.text
        error = response.json()["error"]
        if response.url.path.endswith("/messages"):  # Anthropic's envelope and error type
            assert response.json()["type"] == "error" and error["type"] == "rate_limit_error"
        else:
            assert (error["type"], error["code"]) == ("insufficient_quota", "budget_exceeded")
        assert "monthly budget of $2.50" in error["message"]
        assert response.headers["x-should-retry"] == "false"

    set_spend(stack, tenant, 2_499_999)  # one micro-dollar below
    below = post(f"{api_door(stack)}/chat/completions", key)
    assert below.status_code == 200, below.text
    # The one call admitted is recorded; the five refused made no provider call.
    assert wait_for_calls(stack, tenant, 1) == 1
    time.sleep(1)
    assert provider_calls(stack, tenant) == 1

    # Removing the budget lets the tenant through within the settings' cache bound.
    admin(stack, "PATCH", f"/tenants/{tenant}", {"limits": {"monthly_budget_usd": None}})
    set_spend(stack, tenant, 10_000_000)
    time.sleep(LIMITS_CACHE_SECONDS + 0.2)
    assert post(f"{stack.stream_url}/chat/completions", key).status_code == 200


def test_requests_per_minute_hold_across_two_workers(stack: LocalStack) -> None:
    tenant = new_tenant(stack, {"rpm": 5})
    key = new_key(stack, tenant)["secret"]
    fresh_window()
    targets = [f"{url}/v1/chat/completions" for url in stack.worker_urls] * 4
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda url: (url, post(url, key, CHAT)), targets))
    ok = [(url, r) for url, r in responses if r.status_code == 200]
    refused = [r for _, r in responses if r.status_code != 200]
    assert len(ok) == 5 and len(refused) == 3, [r.status_code for _, r in responses]
    served = {url for url, _ in ok}
    assert len(served) == 2, "each worker admitted some: the count is shared"
    # Each admission saw its own count: the window held 1, 2, ... 5 requests.
    remaining = sorted(r.headers["x-ratelimit-remaining-requests"] for _, r in ok)
    assert remaining == ["0", "1", "2", "3", "4"]
    for _, response in ok:
        assert response.headers["x-ratelimit-limit-requests"] == "5"
    for response in refused:
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "rate_limit_exceeded"
        assert response.json()["error"]["type"] == "rate_limit_error"
        assert 1 <= int(response.headers["retry-after"]) <= 60
        assert response.headers["x-ratelimit-remaining-requests"] == "0"


def test_requests_per_minute_through_both_front_doors(stack: LocalStack) -> None:
    tenant = new_tenant(stack, {"rpm": 5})
    key = new_key(stack, tenant)["secret"]
    fresh_window()
    targets = [f"{api_door(stack)}/chat/completions", f"{stack.stream_url}/chat/completions"] * 4
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda url: (url, post(url, key, CHAT)), targets))
    codes = sorted(r.status_code for _, r in responses)
    assert codes == [200] * 5 + [429] * 3
    for url, response in responses:
        assert set(response.headers) >= LIMIT_HEADERS, url  # relayed by both doors
        if response.status_code == 429:
            assert "retry-after" in response.headers
            assert response.json()["error"]["code"] == "rate_limit_exceeded"


def test_tokens_per_minute(stack: LocalStack) -> None:
    tenant = new_tenant(stack, {"tpm": 1000})
    created = new_key(stack, tenant)
    key = created["secret"]
    fresh_window()
    first = post(f"{api_door(stack)}/chat/completions", key, CHAT)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-tokens"] == "1000"
    assert "x-ratelimit-limit-requests" not in first.headers  # no request limit is set
    add_tokens(stack, created["id"], 1000)
    for url in (f"{api_door(stack)}/chat/completions", f"{stack.stream_url}/chat/completions"):
        response = post(url, key, CHAT)
        assert response.status_code == 429
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("rate_limit_error", "token_rate_limit_exceeded")
        assert response.headers["x-ratelimit-remaining-tokens"] == "0"
        assert 1 <= int(response.headers["retry-after"]) <= 60


def test_a_stream_carries_the_headers_and_unlimited_keys_none(stack: LocalStack) -> None:
    tenant = new_tenant(stack, {"rpm": 100, "tpm": 100000})
    key = new_key(stack, tenant)["secret"]
    with httpx.stream(
        "POST",
        f"{stack.stream_url}/chat/completions",
        headers=bearer(key),
        json={**CHAT, "stream": True},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-ratelimit-limit-requests"] == "100"
        assert response.headers["x-ratelimit-limit-tokens"] == "100000"
        body = response.read()
    assert b"[DONE]" in body
    plain = post(f"{api_door(stack)}/chat/completions", stack.api_key, CHAT)
    assert plain.status_code == 200
    assert not any(h.startswith("x-ratelimit-") for h in plain.headers)
