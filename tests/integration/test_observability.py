"""Operations, shown on the running platform (issue 13): one request's correlation id is in
its answer, in the access line of the component that served it and in its usage records;
every component's log is JSON, and real traffic leaves no key, provider key, prompt or
answer in any of them.

The stack runs with a fake OpenAI (tests/fakes) behind a fake provider key, so that key
goes over the wire on every provider call, and every answer is a marked text."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.stack import LocalStack, StackConfig
from services.dynamo import plain
from tests.fakes import openai as openai_fake
from tests.fakes.script import Script

MODEL = f"openai/{openai_fake.MODEL}"
PROVIDER_KEY = "sk-fake-provider-" + secrets.token_hex(12)
PROMPT = "prompt-marker-" + secrets.token_hex(8)
ANSWER = "answer-marker-" + secrets.token_hex(8)
JSON_LOGS = ("worker-0", "stream", "apigw")  # the components' own (the Lambdas' in apigw)


@pytest.fixture(scope="module")
def fake() -> Iterator[openai_fake.FakeOpenAI]:
    upstream = openai_fake.FakeOpenAI()
    upstream.start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def stack(
    fake: openai_fake.FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    config = StackConfig(
        log_dir=tmp_path_factory.mktemp("observability-logs"),
        extra_env={
            "OPENAI_API_KEY": PROVIDER_KEY,
            "SWITCHBOARD_OPENAI_BASE_URL": f"{fake.url}/v1",
            "SWITCHBOARD_METRICS_INTERVAL_SECONDS": "0.5",
        },
    )
    with LocalStack(config) as running:
        yield running


def auth(stack: LocalStack, **headers: str) -> dict[str, str]:
    return {"authorization": f"Bearer {stack.api_key}", **headers}


def lines(stack: LocalStack, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stack.logs(name).splitlines() if line.strip()]


def usage_records(stack: LocalStack) -> list[dict[str, Any]]:
    items = stack.client("dynamodb").query(
        TableName=stack.config.table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :sk)",
        ExpressionAttributeValues={":pk": {"S": "TENANT#dev"}, ":sk": {"S": "USAGE#"}},
    )["Items"]
    return [plain(item) for item in items]


def eventually(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def chat(stack: LocalStack, door: str, *, stream: bool = False, **headers: str) -> httpx.Response:
    body = {"model": MODEL, "stream": stream,
            "messages": [{"role": "user", "content": f"Say {PROMPT}"}]}  # fmt: skip
    return httpx.post(f"{door}/chat/completions", json=body, headers=auth(stack, **headers),
                      timeout=60)  # fmt: skip


def test_a_worker_routes_id_is_in_its_answer_its_access_line_and_its_usage_record(
    stack: LocalStack, fake: openai_fake.FakeOpenAI
) -> None:
    fake.enqueue(Script(text=[ANSWER]))
    answered = chat(stack, stack.api_url, **{"x-request-id": "obs-chat-1"})
    assert answered.status_code == 200, answered.text
    assert answered.headers["x-request-id"] == "obs-chat-1"

    access = eventually(
        lambda: [
            line
            for line in lines(stack, "worker-0")
            if line.get("kind") == "access" and line.get("request_id") == "obs-chat-1"
        ]
    )
    assert len(access) == 1
    assert access[0]["route"] == "/v1/chat/completions" and access[0]["status"] == 200
    assert access[0]["model"] == MODEL and access[0]["tenant_id"] == "dev"
    assert access[0]["duration_ms"] > 0 and access[0]["service"] == "worker"
    # The client's id won; API Gateway's own (its access log's) is kept beside it.
    assert access[0]["edge_request_id"] == answered.headers["x-amzn-requestid"]
    authorized = [
        line for line in lines(stack, "apigw")
        if line.get("service") == "authorizer" and line.get("request_id") == "obs-chat-1"
    ]  # fmt: skip
    assert [line["message"] for line in authorized] == ["authorized"]
    records = eventually(
        lambda: [r for r in usage_records(stack) if r.get("request_id") == "obs-chat-1"]
    )
    assert len(records) == 1 and records[0]["model"] == MODEL


def test_without_a_client_id_the_edge_request_id_is_the_one(stack: LocalStack) -> None:
    """No x-request-id (or an insane one): API Gateway's request id, which the emulator
    also gives in x-amzn-requestid, is used from the edge to the usage record."""
    answered = chat(stack, stack.api_url, **{"x-request-id": "has spaces " + "x" * 200})
    assert answered.status_code == 200, answered.text
    request_id = answered.headers["x-request-id"]
    assert request_id == answered.headers["x-amzn-requestid"]
    assert eventually(
        lambda: any(
            line.get("kind") == "access" and line.get("request_id") == request_id
            for line in lines(stack, "worker-0")
        )
    )
    assert eventually(
        lambda: [r for r in usage_records(stack) if r.get("request_id") == request_id]
    )


def test_a_streamed_call_through_the_stream_door_keeps_its_id_to_the_worker(
    stack: LocalStack,
) -> None:
    answered = chat(stack, stack.stream_url, stream=True, **{"x-request-id": "obs-stream-1"})
    assert answered.status_code == 200 and "data: [DONE]" in answered.text
    assert answered.headers["x-request-id"] == "obs-stream-1"
    for component in ("stream", "worker-0"):
        assert eventually(
            lambda c=component: any(
                line.get("kind") == "access" and line.get("request_id") == "obs-stream-1"
                for line in lines(stack, c)
            )
        ), component
    assert eventually(
        lambda: [r for r in usage_records(stack) if r.get("request_id") == "obs-stream-1"]
    )


def test_a_control_routes_id_is_in_its_answer_and_the_gateways_access_line(
    stack: LocalStack,
) -> None:
    answered = httpx.get(
        f"{stack.api_url}/conversations", headers=auth(stack, **{"x-request-id": "obs-conv-1"})
    )
    assert answered.status_code == 200, answered.text
    assert answered.headers["x-request-id"] == "obs-conv-1"
    gateway = [
        line for line in lines(stack, "apigw")
        if line.get("service") == "gateway" and line.get("request_id") == "obs-conv-1"
    ]  # fmt: skip
    assert len(gateway) == 1 and gateway[0]["kind"] == "access"
    assert gateway[0]["route"] == "/v1/conversations" and gateway[0]["tenant_id"] == "dev"
    assert gateway[0]["function_request_id"]  # the Lambda's own id, beside it
    # An error answer carries it too.
    missing = httpx.get(
        f"{stack.api_url}/conversations/conv_missing",
        headers=auth(stack, **{"x-request-id": "obs-conv-2"}),
    )
    assert missing.status_code == 400 and missing.headers["x-request-id"] == "obs-conv-2"


def test_real_traffic_leaves_no_secret_and_no_prompt_or_answer_in_any_log(
    stack: LocalStack, fake: openai_fake.FakeOpenAI
) -> None:
    fake.enqueue(*[Script(text=[ANSWER]) for _ in range(40)])
    key = auth(stack)
    api, door = stack.api_url, stack.stream_url
    prompt = [{"role": "user", "content": f"Tell me {PROMPT}"}]
    calls: list[httpx.Response] = [
        chat(stack, api),
        chat(stack, door, stream=True),
        httpx.post(f"{api}/messages", headers={"x-api-key": stack.api_key},
                   json={"model": MODEL, "max_tokens": 50, "messages": prompt}, timeout=60),
        httpx.post(f"{door}/messages", headers={"x-api-key": stack.api_key},
                   json={"model": MODEL, "max_tokens": 50, "messages": prompt, "stream": True},
                   timeout=60),
        httpx.post(f"{api}/tools/summarize", headers=key, timeout=60,
                   json={"input": {"text": f"{PROMPT} " * 20}, "model": MODEL}),
        httpx.post(f"{door}/documents", headers=key, timeout=60,
                   json={"filename": "notes.txt",
                         "data": base64.b64encode(f"{PROMPT} in a file".encode()).decode()}),
        httpx.get(f"{api}/models", headers={"authorization": "Bearer sb-not-a-key"}),
        httpx.get(f"{api}/admin/tenants",
                  headers={"authorization": f"Bearer {stack.admin_key}"}),
    ]  # fmt: skip
    run = httpx.post(f"{door}/runs", headers=key, timeout=60,
                     json={"kind": "chat.completion", "background": True,
                           "input": {"model": MODEL, "messages": prompt}})  # fmt: skip
    agent = httpx.post(f"{door}/runs", headers=key, timeout=60,
                       json={"kind": "agent", "background": True,
                             "input": {"agent": "docs_chat", "model": MODEL,
                                       "input": {"message": f"What is {PROMPT}?"}}})  # fmt: skip
    conversation = httpx.post(f"{api}/conversations", headers=key, json={"title": "t"})
    cid = conversation.json()["id"]
    calls += [
        run,
        agent,
        conversation,
        httpx.post(f"{door}/chat/completions", headers=key, timeout=60,
                   json={"model": MODEL, "metadata": {"conversation_id": cid},
                         "messages": prompt}),
        httpx.get(f"{door}/conversations/{cid}", headers=key),
    ]  # fmt: skip
    statuses = [c.status_code for c in calls]
    assert statuses[:6] == [200] * 6, [c.text for c in calls]
    assert statuses[6:8] == [401, 200] and statuses[8:] == [202, 202, 200, 200, 200], statuses
    assert ANSWER in calls[0].text and PROMPT in calls[-1].text  # they were there to leak
    assert all(c.headers.get("x-request-id") for c in calls if c.status_code != 401)
    for created in (run, agent):
        run_id = created.json()["id"]
        assert eventually(
            lambda r=run_id: (
                httpx.get(f"{door}/runs/{r}", headers=key).json()["status"]
                in ("succeeded", "failed")
            )
        )
    # A run's provider calls, made later by whichever worker took it, carry the id of the
    # request that created it.
    assert eventually(
        lambda: [r for r in usage_records(stack)
                 if r.get("request_id") == run.headers["x-request-id"]]
    )  # fmt: skip
    assert fake.requests and all(
        r.headers["authorization"] == f"Bearer {PROVIDER_KEY}" for r in fake.requests
    )
    time.sleep(1.5)  # the usage writer's and the metrics' last lines

    secrets_ = {"API key": stack.api_key, "admin key": stack.admin_key,
                "provider key": PROVIDER_KEY, "prompt": PROMPT, "answer": ANSWER}  # fmt: skip
    assert stack.config.log_dir is not None
    logs = sorted(Path(stack.config.log_dir).glob("*.log"))
    assert {p.stem for p in logs} >= {"worker-0", "stream", "apigw", "balancer", "aws"}
    for path in logs:
        text = path.read_text(errors="replace")
        for what, secret in secrets_.items():
            assert secret not in text, f"the {what} is in {path.name}"
    for name in JSON_LOGS:
        parsed = lines(stack, name)  # each line is one JSON object
        assert parsed and all("timestamp" in line or "_aws" in line for line in parsed)
    # Every request of the traffic above has its access line in one of them.
    ids = {c.headers["x-request-id"] for c in calls if c.status_code != 401}
    logged = {
        line.get("request_id")
        for name in JSON_LOGS
        for line in lines(stack, name)
        if line.get("kind") == "access"
    }
    assert ids <= logged
