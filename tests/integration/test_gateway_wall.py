"""API Gateway's integration timeout, as the local emulator enforces it.

With a 1 s integration timeout and a simulator that takes 2 s before its first token, a
synchronous call through API Gateway gets 504, as it would on AWS. (Durable runs will let
the gateway answer 202 before the wall instead; until then this documents it.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from devstack.stack import LocalStack, StackConfig


@pytest.fixture(scope="module")
def slow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    config = StackConfig(
        integration_timeout_seconds=1.0,
        first_token_ms=2000,
        log_dir=tmp_path_factory.mktemp("slow-stack-logs"),
    )
    with LocalStack(config) as running:
        yield running


def test_synchronous_call_past_the_integration_timeout_gets_504(slow_stack: LocalStack) -> None:
    started = time.monotonic()
    response = httpx.post(
        f"{slow_stack.api_url}/chat/completions",
        json={"model": "local/simulator", "messages": [{"role": "user", "content": "slow"}]},
        headers={"authorization": f"Bearer {slow_stack.api_key}"},
        timeout=10,
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "gateway_timeout"
    assert response.json()["error"]["type"] == "timeout"
    assert 0.9 <= elapsed < 2.0, elapsed  # the wall, not the model, ended the call


def test_the_stream_front_door_has_no_such_wall(slow_stack: LocalStack) -> None:
    response = httpx.post(
        f"{slow_stack.stream_url}/chat/completions",
        json={"model": "local/simulator", "messages": [{"role": "user", "content": "slow"}]},
        headers={"authorization": f"Bearer {slow_stack.api_key}"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["choices"][0]["finish_reason"] == "stop"
