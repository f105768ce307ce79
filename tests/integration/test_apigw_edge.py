"""The API port as the deployed edge: AI routes pass the REQUEST authorizer, then stream
straight from the workers' load balancer (HTTP_PROXY, STREAM) with the stage prefix; the
control plane goes to the gateway function; `/health` and `/ready` are answered.

Streams are checked the way the stream port's are (tests/integration/test_openai_sdk.py):
the simulator waits CHUNK_MS between words, so chunks relayed one by one arrive spread
out, and buffering anywhere would bunch them at the end."""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from devstack.stack import LocalStack
from services.frontdoor import gateway_responses
from tests.integration.conftest import CHUNK_MS
from tests.integration.tenancy import bearer, new_key, new_tenant

MESSAGES = [{"role": "user", "content": "What is Switchboard?"}]
STEP = {"model": "local/simulator", "messages": MESSAGES}
GAP = CHUNK_MS / 1000


def assert_spread(arrivals: list[float], label: str, spaced_share: float = 0.7) -> None:
    """Arrived CHUNK_MS apart as they were made, not all at once at the end. (A run's
    events may come two to a chunk: `spaced_share` of the gaps must be a pause.)"""
    assert len(arrivals) >= 10, f"{label}: {len(arrivals)} arrivals"
    span = arrivals[-1] - arrivals[0]
    assert span >= (len(arrivals) - 1) * GAP * spaced_share, f"{label}: within {span:.3f} s"
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    spaced = [g for g in gaps if g >= GAP * 0.5]
    assert len(spaced) >= len(gaps) * spaced_share, f"{label}: {gaps}"


def staged(stack: LocalStack) -> str:
    """The API's URL with the stage, as the deployed `ApiUrl` has it."""
    return stack.api_url.removesuffix("/v1") + "/api/v1"


def sse(response: httpx.Response) -> Iterator[tuple[float, dict[str, Any]]]:
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            yield time.monotonic(), json.loads(line[6:])


def test_a_streamed_chat_arrives_chunk_by_chunk_through_the_api_port(stack: LocalStack) -> None:
    client = openai.OpenAI(base_url=staged(stack), api_key=stack.api_key)
    arrivals = []
    text = ""
    for chunk in client.chat.completions.create(
        model="local/simulator", messages=MESSAGES, stream=True
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic())
            text += chunk.choices[0].delta.content
    assert text.startswith("[local simulator, not a model]")
    assert_spread(arrivals, "chat")


def test_run_events_arrive_as_they_happen_through_the_api_port(stack: LocalStack) -> None:
    body = {"kind": "pipeline", "input": {"steps": [STEP, STEP]}, "stream": True}
    with httpx.stream(
        "POST", f"{stack.api_url}/runs", json=body, headers=bearer(stack.api_key), timeout=60
    ) as created:
        assert created.status_code == 200, created.read()
        events = list(sse(created))
    deltas = [t for t, e in events if e["type"] == "text.delta"]
    assert events[-1][1]["type"] == "run.succeeded"
    assert_spread(deltas, "a streamed run", 0.5)

    # A background run followed live through the API port: its events come as they are
    # made, long before the run ends.
    body = {"kind": "pipeline", "input": {"steps": [STEP, STEP, STEP]}, "background": True}
    started = httpx.post(f"{stack.api_url}/runs", json=body, headers=bearer(stack.api_key))
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    with httpx.stream(
        "GET", f"{stack.api_url}/runs/{run_id}/events", headers=bearer(stack.api_key), timeout=60
    ) as followed:
        assert followed.status_code == 200
        assert followed.headers["content-type"].startswith("text/event-stream")
        events = list(sse(followed))
    assert events[-1][1]["type"] == "run.succeeded"
    deltas = [t for t, e in events if e["type"] == "text.delta"]
    assert_spread(deltas, "a followed run", 0.5)  # live: a replay would come all at once


def test_the_worker_builds_urls_with_the_stage_prefix(stack: LocalStack) -> None:
    """API Gateway adds `X-Forwarded-Prefix: /api`: what the worker answers with names the
    stage, so a client can follow it on the API's URL."""
    body = {"kind": "pipeline", "input": {"steps": [STEP]}, "background": True}
    started = httpx.post(f"{stack.api_url}/runs", json=body, headers=bearer(stack.api_key))
    assert started.status_code == 202, started.text
    location = started.headers["location"]
    assert location.startswith("/api/v1/runs/"), location
    origin = stack.api_url.removesuffix("/v1")
    followed = httpx.get(origin + location, headers=bearer(stack.api_key))
    assert followed.status_code == 200 and followed.json()["id"] == started.json()["id"]
    direct = httpx.post(f"{stack.worker_url}/v1/runs", json=body, headers=bearer(stack.api_key))
    assert direct.headers["location"].startswith("/v1/runs/")  # no prefix, no stage


def test_a_bad_key_gets_a_401_without_reaching_the_worker(stack: LocalStack) -> None:
    """With the workers' load balancer frozen, anything that reached it would hang; a bad
    key is answered at once by the authorizer, a good one waits."""
    chat = {"model": "local/simulator", "messages": MESSAGES}
    url = f"{stack.api_url}/chat/completions"
    httpx.post(url, json=chat, headers=bearer("sb-warm-the-authorizer-up-0000000"))
    balancer = stack.process("balancer")
    balancer.send_signal(signal.SIGSTOP)
    try:
        for headers in (bearer("sb-" + "x" * 40), {"x-api-key": "sb-nope-nope-nope-nope-no"}, {}):
            started = time.monotonic()
            refused = httpx.post(url, json=chat, headers=headers, timeout=10)
            assert refused.status_code == 401
            assert refused.json() == gateway_responses.UNAUTHORIZED
            assert time.monotonic() - started < 5
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url, json=chat, headers=bearer(stack.api_key), timeout=1.5)
    finally:
        balancer.send_signal(signal.SIGCONT)
    answered = httpx.post(url, json=chat, headers=bearer(stack.api_key), timeout=30)
    assert answered.status_code == 200


def test_two_tenants_streaming_at_once_see_only_their_own(stack: LocalStack) -> None:
    other = new_tenant(stack)
    keys = {"dev": stack.api_key, other: new_key(stack, other)["secret"]}

    jobs = [(tenant, i) for tenant in keys for i in range(3)]
    together = threading.Barrier(len(jobs))

    def stream(tenant: str, i: int) -> tuple[str, list[float], str]:
        marker = f"{tenant}-{i}"
        client = openai.OpenAI(base_url=staged(stack), api_key=keys[tenant])
        text, arrivals = "", []
        together.wait(30)
        for chunk in client.chat.completions.create(
            model="local/simulator",
            messages=[{"role": "user", "content": marker}],
            stream=True,
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
                arrivals.append(time.monotonic())
        return marker, arrivals, text

    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(lambda job: stream(*job), jobs))
    for marker, arrivals, text in results:
        assert f'you said "{marker}"' in text, text
        others = [m for m, _, _ in results if m != marker]
        assert not any(f'"{m}"' in text for m in others), text
        assert_spread(arrivals, marker)
    # They streamed at the same time, not one after another: one after another would take
    # the sum of their durations (a loaded host may start one late, so not all at once).
    span = max(a[-1] for _, a, _ in results) - min(a[0] for _, a, _ in results)
    assert span < 0.5 * sum(a[-1] - a[0] for _, a, _ in results), span


def test_health_and_readiness_on_the_api_port(stack: LocalStack) -> None:
    origin = stack.api_url.removesuffix("/v1")
    for base in (origin, f"{origin}/api"):  # with the stage, as the deployed URL has it
        assert httpx.get(f"{base}/health").json() == {"status": "ok"}
        ready = httpx.get(f"{base}/ready")
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}
