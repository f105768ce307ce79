"""API Gateway's integration timeout, and how Switchboard keeps work from hitting it.

The emulator enforces the wall as API Gateway does. A synchronous call that is not done
before the gateway's deadline (set below the wall) is answered 202 with a run; its result
is stored and retrievable through both front doors. Only a deadline set beyond the wall
lets API Gateway answer 504, as the first test documents.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from devstack.stack import LocalStack, StackConfig

CHAT = {"model": "local/simulator", "messages": [{"role": "user", "content": "slow"}]}


def stack(tmp_path_factory: pytest.TempPathFactory, **overrides: float) -> LocalStack:
    config = StackConfig(
        integration_timeout_seconds=2.0,
        first_token_ms=3000,
        log_dir=tmp_path_factory.mktemp("wall-stack-logs"),
        **overrides,  # type: ignore[arg-type]
    )
    return LocalStack(config)


@pytest.fixture(scope="module")
def slow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with stack(tmp_path_factory) as running:
        yield running


def post(
    stack: LocalStack, path: str, body: dict[str, object], base: str | None = None
) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.post(
        f"{base or stack.api_url}{path}",
        json=body,
        headers={"authorization": f"Bearer {stack.api_key}"},
        timeout=15,
    )
    return response, time.monotonic() - started


def test_a_deadline_beyond_the_wall_lets_api_gateway_answer_504(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with stack(tmp_path_factory, sync_deadline_seconds=5.0) as misconfigured:
        response, elapsed = post(misconfigured, "/chat/completions", CHAT)
    assert response.status_code == 504
    assert response.json()["error"] == {
        "message": "The request took longer than the API Gateway integration timeout.",
        "type": "timeout",
        "param": None,
        "code": "gateway_timeout",
    }
    assert 1.9 <= elapsed < 3.0, elapsed  # the wall, not the model, ended the call


def test_slow_chat_completion_is_promoted_to_a_run_before_the_wall(slow_stack: LocalStack) -> None:
    response, elapsed = post(slow_stack, "/chat/completions", CHAT)
    assert response.status_code == 202
    assert elapsed < 2.0, elapsed
    run = response.json()
    assert run["object"] == "run" and run["kind"] == "chat.completion"
    assert response.headers["location"] == f"/v1/runs/{run['id']}"
    results = []
    for base in (slow_stack.api_url, slow_stack.stream_url):
        deadline = time.monotonic() + 15
        while True:
            current = httpx.get(
                f"{base}/runs/{run['id']}",
                headers={"authorization": f"Bearer {slow_stack.api_key}"},
            ).json()
            if current["status"] != "running" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert current["status"] == "succeeded"
        results.append(current["result"])
    assert results[0] == results[1]
    assert results[0]["object"] == "chat.completion"
    assert results[0]["choices"][0]["message"]["content"].startswith("[local simulator")


def test_synchronous_run_is_answered_202_before_the_wall(slow_stack: LocalStack) -> None:
    response, elapsed = post(slow_stack, "/runs", {"kind": "chat.completion", "input": CHAT})
    assert response.status_code == 202 and elapsed < 2.0
    assert response.json()["status"] == "running"


def test_the_stream_front_door_has_no_such_wall(slow_stack: LocalStack) -> None:
    response, elapsed = post(slow_stack, "/chat/completions", CHAT, base=slow_stack.stream_url)
    assert response.status_code == 200
    assert response.json()["choices"][0]["finish_reason"] == "stop"
    assert elapsed >= 3.0
