"""Usage and cost through the local platform: every provider's fake (their real wire
protocols), streamed and not, with cached tokens; concurrent calls and the spend counter;
a stream the client abandons; `GET /v1/usage` as JSON and CSV, tenant by tenant.

Each test mints its own tenant, so its records are its own.
"""

from __future__ import annotations

import datetime
import json
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from devstack.stack import LocalStack, StackConfig
from services.canonical import Usage
from services.tenancy.keys import KeyStore
from services.usage.prices import PriceTable
from services.usage.store import UsageStore
from tests.fakes import anthropic, bedrock, openai, openai_compatible
from tests.fakes.script import Script
from tests.fakes.upstream import FakeUpstream
from tests.integration.doors import api_door

PRICES = PriceTable.load()
FAKES = {
    "openai": openai,
    "anthropic": anthropic,
    "bedrock": bedrock,
    "openai_compatible": openai_compatible,
}


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeUpstream]]:
    started = {name: module.BINDING.fake().start() for name, module in FAKES.items()}
    yield started
    for fake in started.values():
        fake.stop()


@pytest.fixture(scope="module")
def stack(
    fakes: dict[str, FakeUpstream], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    env: dict[str, str] = {}
    for name, module in FAKES.items():
        env.update(module.BINDING.env(fakes[name].url))
    config = StackConfig(extra_env=env, log_dir=tmp_path_factory.mktemp("usage-logs"))
    with LocalStack(config) as running:
        yield running


@pytest.fixture
def store(stack: LocalStack) -> UsageStore:
    return UsageStore(stack.client("dynamodb"), stack.config.table)


@pytest.fixture(autouse=True)
def fresh(fakes: dict[str, FakeUpstream]) -> None:
    for fake in fakes.values():
        fake.reset()


def tenant_key(stack: LocalStack) -> tuple[str, dict[str, str]]:
    """A new tenant and the headers of a key of it."""
    tenant = "t-" + secrets.token_hex(4)
    minted = KeyStore(stack.client("dynamodb"), stack.config.table).create(tenant, "usage")
    return tenant, {"authorization": f"Bearer {minted.secret}"}


def chat(model: str, *, stream: bool = False, text: str = "hi") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream}


def records(
    store: UsageStore, tenant: str, count: int, timeout: float = 15.0
) -> list[dict[str, Any]]:
    """The tenant's records once there are `count` (they are written in the background)."""
    today = datetime.datetime.now(datetime.UTC).date()
    deadline = time.monotonic() + timeout
    while True:
        found = list(store.records(tenant, today - datetime.timedelta(days=1), today))
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def stream_text(url: str, body: dict[str, Any], headers: dict[str, str]) -> str:
    text = []
    with httpx.stream("POST", url, json=body, headers=headers, timeout=30) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("data: {"):
                chunk = json.loads(line[len("data: ") :])
                for choice in chunk.get("choices", []):
                    text.append(choice["delta"].get("content") or "")
    return "".join(text)


@pytest.mark.parametrize("provider", sorted(FAKES))
def test_plain_and_streamed_calls_are_recorded_with_cached_tokens(
    provider: str, stack: LocalStack, store: UsageStore, fakes: dict[str, FakeUpstream]
) -> None:
    tenant, headers = tenant_key(stack)
    model = f"{provider}/{FAKES[provider].BINDING.model}"
    plain, streamed = Usage(120, 9, 80), Usage(64, 5, 32)
    fakes[provider].enqueue(
        Script(text=["plain ", "answer"], usage=plain),
        Script(text=["streamed ", "answer"], usage=streamed),
    )
    answer = httpx.post(f"{api_door(stack)}/chat/completions", json=chat(model), headers=headers)
    assert answer.status_code == 200, answer.text
    assert stream_text(
        f"{stack.stream_url}/chat/completions", chat(model, stream=True), headers
    ) == ("streamed answer")
    found = records(store, tenant, 2)
    by_stream = {r["streamed"]: r for r in found}
    assert len(found) == 2 and set(by_stream) == {False, True}
    for is_stream, usage in ((False, plain), (True, streamed)):
        record = by_stream[is_stream]
        assert record["model"] == model and record["route"] == model
        assert record["endpoint"] == "/v1/chat/completions" and record["outcome"] == "ok"
        assert (
            record["input_tokens"],
            record["cached_input_tokens"],
            record["output_tokens"],
        ) == (usage.input_tokens, usage.cached_input_tokens, usage.output_tokens)
        assert record["estimated"] is False
        assert record["cost_usd_micros"] == PRICES.cost_micros(model, usage)
        assert record["first_token_ms"] is not None and record["latency_ms"] >= 0
    spend = store.spend(tenant, datetime.datetime.now(datetime.UTC).strftime("%Y-%m"))
    assert spend["calls"] == 2
    assert spend["unpriced_calls"] == (2 if PRICES.price(model) is None else 0)


def test_anthropic_messages_calls_are_recorded(
    stack: LocalStack, store: UsageStore, fakes: dict[str, FakeUpstream]
) -> None:
    tenant, headers = tenant_key(stack)
    fakes["openai"].enqueue(Script(usage=Usage(30, 4, 10)))
    body = {
        "model": f"openai/{openai.MODEL}",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    }
    answer = httpx.post(f"{api_door(stack)}/messages", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    [record] = records(store, tenant, 1)
    assert record["endpoint"] == "/v1/messages"
    assert (record["input_tokens"], record["cached_input_tokens"]) == (30, 10)


def test_concurrent_calls_add_up_in_the_spend_counter(
    stack: LocalStack, store: UsageStore, fakes: dict[str, FakeUpstream]
) -> None:
    tenant, headers = tenant_key(stack)
    count = 24
    usages = [Usage(1000 + 37 * i, 100 + 11 * i, 13 * i) for i in range(count)]
    fakes["openai"].enqueue(*(Script(usage=u) for u in usages))
    model = f"openai/{openai.MODEL}"

    def call(i: int) -> int:
        if i % 2:
            url = f"{stack.stream_url}/chat/completions"
            return len(stream_text(url, chat(model, stream=True), headers))
        response = httpx.post(
            f"{api_door(stack)}/chat/completions", json=chat(model), headers=headers, timeout=30
        )
        assert response.status_code == 200, response.text
        return 1

    with ThreadPoolExecutor(12) as pool:
        assert all(list(pool.map(call, range(count))))
    found = records(store, tenant, count)
    assert len(found) == count
    expected = sum(PRICES.cost_micros(model, u) or 0 for u in usages)
    assert sum(r["cost_usd_micros"] for r in found) == expected > 0
    month = datetime.datetime.now(datetime.UTC).strftime("%Y-%m")
    assert store.spend(tenant, month) == {
        "cost_usd_micros": expected,
        "calls": count,
        "unpriced_calls": 0,
    }


def test_retries_are_recorded_one_per_attempt(
    stack: LocalStack, store: UsageStore, fakes: dict[str, FakeUpstream]
) -> None:
    from tests.fakes.script import Fault

    tenant, headers = tenant_key(stack)
    fakes["openai"].enqueue(Script(fault=Fault("status", status=503)), Script(usage=Usage(10, 2)))
    model = f"openai/{openai.MODEL}"
    answer = httpx.post(f"{api_door(stack)}/chat/completions", json=chat(model), headers=headers)
    assert answer.status_code == 200, answer.text
    found = records(store, tenant, 2)
    assert sorted(r["outcome"] for r in found) == ["ok", "upstream_unavailable"]
    failed = next(r for r in found if r["outcome"] != "ok")
    assert (failed["input_tokens"], failed["output_tokens"], failed["cost_usd_micros"]) == (
        0,
        0,
        0,
    )


def abandon(url: str, body: dict[str, Any], headers: dict[str, str], chunks: int) -> str:
    """Read `chunks` content chunks of a stream, then hang up."""
    seen: list[str] = []
    with httpx.stream("POST", url, json=body, headers=headers, timeout=30) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: {"):
                for choice in json.loads(line[len("data: ") :]).get("choices", []):
                    if choice["delta"].get("content"):
                        seen.append(choice["delta"]["content"])
            if len(seen) >= chunks:
                break
    return "".join(seen)


@pytest.mark.parametrize("door", ["worker", "stream"])
def test_a_stream_the_client_abandons_is_recorded_with_an_estimate(
    door: str, stack: LocalStack, store: UsageStore, fakes: dict[str, FakeUpstream]
) -> None:
    tenant, headers = tenant_key(stack)
    words = [f"word{i} " for i in range(40)]
    # The usage would come with the last chunk: the client is gone long before.
    fakes["openai"].enqueue(Script(text=words, usage=Usage(500, 40), chunk_delay=0.1))
    model = f"openai/{openai.MODEL}"
    base = f"{stack.worker_url}/v1" if door == "worker" else stack.stream_url
    prompt = "tell me a long story " * 20
    seen = abandon(f"{base}/chat/completions", chat(model, stream=True, text=prompt), headers, 3)
    assert seen == "".join(words[:3])
    [record] = records(store, tenant, 1)
    assert record["outcome"] == "abandoned" and record["estimated"] is True
    # Estimated from what passed (a few words, ~4 characters a token) and from the prompt.
    assert 3 <= record["output_tokens"] < 40
    assert record["input_tokens"] >= len(prompt) // 4
    assert record["cost_usd_micros"] == PRICES.cost_micros(
        model, Usage(record["input_tokens"], record["output_tokens"])
    )
    # The upstream stream was closed, not read to its end.
    assert record["latency_ms"] < 40 * 100


def test_usage_report_as_json_and_csv_for_the_callers_tenant_only(
    stack: LocalStack, store: UsageStore, fakes: dict[str, FakeUpstream]
) -> None:
    tenant, headers = tenant_key(stack)
    other, other_headers = tenant_key(stack)
    model = f"openai/{openai.MODEL}"
    fakes["openai"].enqueue(Script(usage=Usage(100, 10, 40)), Script(usage=Usage(200, 20)))
    for _ in range(2):
        response = httpx.post(
            f"{api_door(stack)}/chat/completions", json=chat(model), headers=headers
        )
        assert response.status_code == 200
    records(store, tenant, 2)
    expected = (PRICES.cost_micros(model, Usage(100, 10, 40)) or 0) + (
        PRICES.cost_micros(model, Usage(200, 20)) or 0
    )
    for base in (stack.api_url, stack.stream_url):
        body = httpx.get(f"{base}/usage", params={"group_by": "day,model"}, headers=headers).json()
        assert body["price_table"] == PRICES.describe()
        assert body["totals"]["calls"] == 2 and body["totals"]["cost_usd_micros"] == expected
        assert body["totals"]["input_tokens"] == 300
        assert body["totals"]["cached_input_tokens"] == 40
        [row] = body["data"]
        assert row["model"] == model and row["calls"] == 2
        csv = httpx.get(
            f"{base}/usage", params={"group_by": "key"}, headers={**headers, "accept": "text/csv"}
        )
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        lines = csv.text.splitlines()
        assert lines[0].startswith("key,calls,") and len(lines) == 2
        assert lines[1].split(",")[1] == "2"
        # Another tenant sees none of it.
        theirs = httpx.get(f"{base}/usage", headers=other_headers).json()
        assert theirs["totals"]["calls"] == 0 and theirs["data"] == []
        assert theirs["tenant_id"] == other


def test_usage_report_refuses_a_bad_parameter(stack: LocalStack) -> None:
    _, headers = tenant_key(stack)
    for base in (stack.api_url, stack.stream_url):
        answer = httpx.get(f"{base}/usage", params={"start": "yesterday"}, headers=headers)
        assert answer.status_code == 400
        assert answer.json()["error"]["param"] == "start"
        assert httpx.get(f"{base}/usage").status_code == 401


def test_a_background_run_and_a_conversation_turn_are_attributed(
    stack: LocalStack, store: UsageStore, fakes: dict[str, FakeUpstream]
) -> None:
    """The run executes in a task started from the queue, the conversation's streamed reply
    in a producer task: both calls still belong to the tenant that asked."""
    tenant, headers = tenant_key(stack)
    model = f"openai/{openai.MODEL}"
    fakes["openai"].enqueue(Script(usage=Usage(21, 2)), Script(usage=Usage(33, 3)))
    run = httpx.post(
        f"{api_door(stack)}/runs",
        json={"kind": "chat.completion", "input": chat(model), "background": True},
        headers=headers,
    )
    assert run.status_code == 202, run.text
    conversation = httpx.post(f"{stack.api_url}/conversations", json={}, headers=headers).json()
    turn = {**chat(model, stream=True), "metadata": {"conversation_id": conversation["id"]}}
    assert stream_text(f"{stack.stream_url}/chat/completions", turn, headers)
    found = records(store, tenant, 2, timeout=30)
    assert sorted((r["endpoint"], r["input_tokens"]) for r in found) in (
        [("/v1/chat/completions", 21), ("/v1/runs", 33)],
        [("/v1/chat/completions", 33), ("/v1/runs", 21)],
    )
