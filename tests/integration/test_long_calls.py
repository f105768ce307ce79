"""Long calls are safe for SDKs: the worker's own sync deadline, with the official openai and
anthropic SDKs unchanged.

Deployed, API Gateway streams from the worker and cuts a response that sends nothing for
5 minutes, so the worker bounds a non-streamed call itself (240 s deployed, 3 s here).
Past it the work goes on as a run: `Prefer: respond-async` gets a 202 with the run;
otherwise the SDK gets a 504 in its own error shape, naming the run, with
`x-should-retry: false`, so it raises once instead of retrying (and starting the work
again), and the run then holds the answer. Streams send heartbeats while they are quiet.

The simulator here takes 0.1 s a word: a one-word prompt is answered in about 2 s, a
25-word one in about 7 s. These tests call the worker where the deployed API sends these
routes (its load balancer); the same through the local API port are marked to run once
the emulator routes by the table (tests/integration/doors.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from devstack.stack import LocalStack, StackConfig
from services.tenancy.keys import KeyStore
from tests.integration.doors import api_door

DEADLINE = 3.0
SHORT = "Lisbon"
LONG = " ".join(f"word{i}" for i in range(25))


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    config = StackConfig(
        chunk_ms=100,
        sync_deadline_seconds=DEADLINE,
        log_dir=tmp_path_factory.mktemp("long-calls-logs"),
        extra_env={"SWITCHBOARD_STREAM_HEARTBEAT_SECONDS": "0.05"},
    )
    with LocalStack(config) as running:
        yield running


def new_key(stack: LocalStack, tenant: str) -> str:
    return KeyStore(stack.client("dynamodb"), stack.config.table).create(tenant).secret


def runs_of(stack: LocalStack, key: str) -> list[dict[str, Any]]:
    """The tenant's runs, read through the API port (a control-plane route)."""
    page = httpx.get(f"{stack.api_url}/runs", headers={"authorization": f"Bearer {key}"})
    assert page.status_code == 200, page.text
    return list(page.json()["data"])


def finished(stack: LocalStack, key: str, location: str, timeout: float = 20) -> dict[str, Any]:
    """The run at `location` (a path that may carry the stage) once it has ended, read
    through the API port."""
    origin = stack.api_url[: -len("/v1")]
    deadline = time.monotonic() + timeout
    while True:
        run = httpx.get(f"{origin}{location}", headers={"authorization": f"Bearer {key}"}).json()
        if run["status"] != "running" or time.monotonic() > deadline:
            return dict(run)
        time.sleep(0.2)


def chat(text: str) -> dict[str, Any]:
    return {"model": "local/simulator", "messages": [{"role": "user", "content": text}]}


def test_a_long_call_within_the_deadline_is_answered(slow: LocalStack) -> None:
    client = openai.OpenAI(base_url=api_door(slow), api_key=new_key(slow, "long-ok"))
    started = time.monotonic()
    completion = client.chat.completions.create(**chat(SHORT))
    elapsed = time.monotonic() - started
    assert 1.2 < elapsed < DEADLINE, elapsed  # slow, yet within the deadline
    assert completion.choices[0].message.content is not None
    assert f'you said "{SHORT}"' in completion.choices[0].message.content


def test_past_the_deadline_the_openai_sdk_raises_once_and_the_run_holds_the_answer(
    slow: LocalStack,
) -> None:
    key = new_key(slow, "long-openai")
    client = openai.OpenAI(base_url=api_door(slow), api_key=key)  # 2 retries by default
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(**chat(LONG))
    elapsed = time.monotonic() - started
    error = raised.value
    assert isinstance(error, openai.InternalServerError) and error.status_code == 504
    assert DEADLINE <= elapsed < DEADLINE + 1.5, elapsed  # once: a retry would wait again
    assert error.code == "run_pending" and error.type == "timeout"
    location = error.response.headers["location"]
    run_id = location.rsplit("/", 1)[1]
    assert run_id in error.message and error.response.headers["x-should-retry"] == "false"
    assert [r["id"] for r in runs_of(slow, key)] == [run_id]  # the work was started once
    run = finished(slow, key, location)
    assert run["status"] == "succeeded" and run["kind"] == "chat.completion"
    assert f'you said "{LONG}"' in run["result"]["choices"][0]["message"]["content"]
    assert len(runs_of(slow, key)) == 1


def test_past_the_deadline_the_anthropic_sdk_raises_once_in_its_own_shape(
    slow: LocalStack,
) -> None:
    key = new_key(slow, "long-anthropic")
    client = anthropic.Anthropic(base_url=api_door(slow)[: -len("/v1")], api_key=key)
    started = time.monotonic()
    with pytest.raises(anthropic.APIStatusError) as raised:
        client.messages.create(
            model="local/simulator",
            max_tokens=200,
            messages=[{"role": "user", "content": LONG}],
        )
    elapsed = time.monotonic() - started
    error = raised.value
    assert isinstance(error, anthropic.InternalServerError) and error.status_code == 504
    assert DEADLINE <= elapsed < DEADLINE + 1.5, elapsed
    assert error.type == "timeout_error"
    location = error.response.headers["location"]
    assert error.api_message is not None and location.rsplit("/", 1)[1] in error.api_message
    assert len(runs_of(slow, key)) == 1
    run = finished(slow, key, location)
    assert run["status"] == "succeeded" and run["kind"] == "message"
    assert run["result"]["type"] == "message" and LONG in run["result"]["content"][0]["text"]


def test_prefer_respond_async_gets_a_202_with_urls_that_carry_the_stage(slow: LocalStack) -> None:
    key = new_key(slow, "long-async")
    client = openai.OpenAI(
        base_url=api_door(slow),  # the emulator adds X-Forwarded-Prefix: /api, as deployed
        api_key=key,
    )
    started = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(
        **chat(LONG), extra_headers={"Prefer": "respond-async"}
    )
    assert raw.status_code == 202 and time.monotonic() - started < DEADLINE + 1
    run = raw.http_response.json()
    assert raw.headers["preference-applied"] == "respond-async"
    assert raw.headers["location"] == run["urls"]["self"] == f"/api/v1/runs/{run['id']}"
    assert run["urls"]["events"] == f"/api/v1/runs/{run['id']}/events"
    # The Location works as it is against the API's origin: the stage is in it.
    done = finished(slow, key, raw.headers["location"])
    assert done["status"] == "succeeded"
    assert done["urls"]["self"] == f"/api/v1/runs/{run['id']}"  # the gateway's answer too
    # `wait` asks for less than the deadline.
    quick = httpx.post(
        f"{api_door(slow)}/chat/completions",
        json=chat(LONG),
        headers={"authorization": f"Bearer {key}", "prefer": "respond-async, wait=1"},
        timeout=30,
    )
    assert quick.status_code == 202 and quick.json()["urls"]["self"].startswith("/api/v1/runs/")


def test_a_stage_prefix_that_is_not_a_path_is_ignored(slow: LocalStack) -> None:
    """Straight to the worker: through API Gateway the header is API Gateway's own."""
    key = new_key(slow, "long-prefix")
    response = httpx.post(
        f"{slow.worker_url}/v1/runs",
        json={"kind": "chat.completion", "input": chat(SHORT), "background": True},
        headers={"authorization": f"Bearer {key}", "x-forwarded-prefix": "https://evil.example"},
    )
    assert response.status_code == 202
    assert response.headers["location"] == f"/v1/runs/{response.json()['id']}"


def test_a_synchronous_run_past_the_deadline_is_named_not_lost(slow: LocalStack) -> None:
    key = new_key(slow, "long-run")
    headers = {"authorization": f"Bearer {key}"}
    body = {"kind": "chat.completion", "input": chat(LONG)}
    late = httpx.post(f"{api_door(slow)}/runs", json=body, headers=headers, timeout=30)
    assert late.status_code == 504 and late.json()["error"]["code"] == "run_pending"
    assert finished(slow, key, late.headers["location"])["status"] == "succeeded"
    quick = httpx.post(f"{api_door(slow)}/runs", json={**body, "input": chat(SHORT)},
                       headers=headers, timeout=30)  # fmt: skip
    assert quick.status_code == 200 and quick.json()["status"] == "succeeded"


def test_an_idempotency_key_past_the_deadline_then_gets_the_answer(slow: LocalStack) -> None:
    key = new_key(slow, "long-idempotent")
    headers = {"authorization": f"Bearer {key}", "idempotency-key": "report-2026-11"}
    url = f"{api_door(slow)}/chat/completions"
    first = httpx.post(url, json=chat(LONG), headers=headers, timeout=30)
    assert first.status_code == 504
    run = finished(slow, key, first.headers["location"])
    again = httpx.post(url, json=chat(LONG), headers=headers, timeout=30)
    assert again.status_code == 200
    assert again.json() == run["result"]  # the same answer, not a second call
    assert len(runs_of(slow, key)) == 1


def test_a_quiet_stream_sends_heartbeats_the_sdk_ignores(slow: LocalStack) -> None:
    key = new_key(slow, "long-stream")
    with httpx.stream(
        "POST",
        f"{api_door(slow)}/chat/completions",
        json={**chat(SHORT), "stream": True},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    ) as response:
        lines = list(response.iter_lines())
    assert lines.count(": keep-alive") >= 10  # 0.1 s between words, a heartbeat every 0.05 s
    client = openai.OpenAI(base_url=api_door(slow), api_key=key)
    text = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(**chat(SHORT), stream=True)
        if chunk.choices
    )
    assert f'you said "{SHORT}"' in text


# -- the same through the local API port, once it routes WORKER routes to the worker --------


def test_api_port_a_long_call_within_the_deadline_is_answered(slow: LocalStack) -> None:
    client = openai.OpenAI(base_url=slow.api_url, api_key=new_key(slow, "api-long-ok"))
    completion = client.chat.completions.create(**chat(SHORT))
    assert f'you said "{SHORT}"' in str(completion.choices[0].message.content)


def test_api_port_past_the_deadline_the_sdk_raises_once(slow: LocalStack) -> None:
    key = new_key(slow, "api-long-late")
    client = openai.OpenAI(base_url=slow.api_url, api_key=key)
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(**chat(LONG))
    assert raised.value.status_code == 504 and raised.value.code == "run_pending"
    location = raised.value.response.headers["location"]
    assert location.startswith("/api/v1/runs/")  # the emulator adds X-Forwarded-Prefix: /api
    assert len(runs_of(slow, key)) == 1
    assert finished(slow, key, location)["status"] == "succeeded"


def test_api_port_prefer_respond_async_gets_a_202_with_the_stage_in_its_urls(
    slow: LocalStack,
) -> None:
    key = new_key(slow, "api-long-async")
    client = openai.OpenAI(base_url=slow.api_url, api_key=key)
    raw = client.chat.completions.with_raw_response.create(
        **chat(LONG), extra_headers={"Prefer": "respond-async"}
    )
    run = raw.http_response.json()
    assert raw.status_code == 202
    assert raw.headers["location"] == run["urls"]["self"] == f"/api/v1/runs/{run['id']}"
    assert finished(slow, key, raw.headers["location"])["status"] == "succeeded"


def test_api_port_streamed_chat_arrives_word_by_word(slow: LocalStack) -> None:
    client = openai.OpenAI(base_url=slow.api_url, api_key=new_key(slow, "api-stream"))
    arrivals = [
        time.monotonic()
        for chunk in client.chat.completions.create(**chat(SHORT), stream=True)
        if chunk.choices and chunk.choices[0].delta.content
    ]
    assert len(arrivals) > 10 and arrivals[-1] - arrivals[0] >= (len(arrivals) - 1) * 0.08


def test_api_port_a_bad_key_is_401_before_the_worker(slow: LocalStack) -> None:
    """The authorizer refuses it: the worker never sees the request (its log stays silent)."""
    before = slow.logs("worker-0")
    response = httpx.post(
        f"{slow.api_url}/chat/completions",
        json=chat(SHORT),
        headers={"authorization": "Bearer sb-not-a-key-anyone-was-given"},
    )
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert slow.logs("worker-0") == before
