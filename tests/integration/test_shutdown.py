"""A worker stopped as ECS stops a task (SIGTERM) cuts no stream and loses nothing.

On a local stack of two workers with a fake ECS agent (`ECS_AGENT_URI`): while worker-0
holds a stream it holds scale-in protection; SIGTERM then lets the stream finish, writes
the usage records still queued (the writer here waits 60 s before writing, so only the
shutdown can have written them), clears the protection, and releases the run it was
still executing, which worker-1 takes over at once rather than when the run's 30 s lease
lapses.
"""

from __future__ import annotations

import datetime
import json
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack.stack import LocalStack, StackConfig
from services.runs.store import RunStore
from services.tenancy.keys import KeyStore
from services.usage.store import UsageStore
from tests.fakes.ecs_agent import FakeAgent

STEP = {"model": "local/simulator", "messages": [{"role": "user", "content": "step"}]}


@pytest.fixture(scope="module")
def agent() -> Iterator[FakeAgent]:
    fake = FakeAgent()
    yield fake
    fake.server.shutdown()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, agent: FakeAgent) -> Iterator[LocalStack]:
    config = StackConfig(
        workers=2,
        first_token_ms=500,
        chunk_ms=10,
        log_dir=tmp_path_factory.mktemp("shutdown-logs"),
        extra_env={
            "ECS_AGENT_URI": agent.uri,
            "SWITCHBOARD_USAGE_LINGER_SECONDS": "60",
            "SWITCHBOARD_RUN_WATCHDOG_SECONDS": "60",
        },
    )
    with LocalStack(config) as running:
        yield running


def wait(condition: Any, seconds: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"{what}: not within {seconds} s"
        time.sleep(0.05)
    return time.monotonic() - started


def test_sigterm_drains_streams_flushes_usage_and_releases_runs(
    stack: LocalStack, agent: FakeAgent
) -> None:
    secret = KeyStore(stack.client("dynamodb"), stack.config.table).create("drained").secret
    headers = {"authorization": f"Bearer {secret}"}
    worker = f"{stack.worker_urls[0]}/v1"
    runs = RunStore(stack.client("dynamodb"), stack.config.table)
    store = UsageStore(stack.client("dynamodb"), stack.config.table)
    today = datetime.datetime.now(datetime.UTC).date()

    def chat_calls() -> int:
        found = store.records("drained", today - datetime.timedelta(days=1), today)
        return [r["endpoint"] for r in found].count("/v1/chat/completions")

    # A long run that worker-0 executes (started for this call, answered 202 at once).
    long = httpx.post(
        f"{worker}/runs",
        json={"kind": "pipeline", "input": {"steps": [STEP] * 20}},
        headers={**headers, "prefer": "respond-async, wait=0"},
        timeout=30,
    )
    assert long.status_code == 202, long.text
    long_id = long.json()["id"]
    # A call whose usage record waits in worker-0's writer.
    assert httpx.post(f"{worker}/chat/completions", json=STEP, headers=headers).status_code == 200
    # A stream open on worker-0: a streamed run of 6 steps, about 3 s.
    events: list[dict[str, Any]] = []

    def follow() -> None:
        body = {"kind": "pipeline", "input": {"steps": [STEP] * 6}, "stream": True}
        with httpx.stream(
            "POST", f"{worker}/runs", json=body, headers=headers, timeout=60
        ) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))

    reader = threading.Thread(target=follow)
    reader.start()
    wait(lambda: agent.states() == [True], 10, "scale-in protection while a stream is open")
    assert agent.puts[0]["ExpiresInMinutes"] == 10
    assert chat_calls() == 0  # still queued in the writer (60 s linger)

    stack.worker_process(0).send_signal(signal.SIGTERM)
    reader.join(30)
    assert not reader.is_alive()
    # The stream was not cut: it ran to its end after the SIGTERM.
    assert [e["type"] for e in events][-1] == "run.succeeded", events[-2:]
    stack.worker_process(0).wait(30)
    exited = time.monotonic()
    # uvicorn re-raises the SIGTERM once its graceful shutdown is done: killed by it, cleanly.
    assert stack.worker_process(0).returncode in (0, -signal.SIGTERM)
    assert "Traceback" not in stack.logs("worker-0")
    # Protection was cleared; the queued usage record was written before the process ended.
    assert agent.states()[-1] is False
    assert chat_calls() == 1
    # The long run was released: worker-1 took it over at once, not after the 30 s lease.
    taken = wait(
        lambda: (r := runs.get("drained", long_id)) is not None and r.owner == "worker-1",
        15,
        "a takeover of the released run",
    )
    assert taken < 15
    assert runs.require("drained", long_id).status in ("running", "succeeded")
    assert time.monotonic() - exited < 15
