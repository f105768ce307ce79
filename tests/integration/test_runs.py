"""Durable runs on the local stack, with two worker processes behind the load balancer."""

from __future__ import annotations

import concurrent.futures
import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack.stack import LocalStack, StackConfig
from services.runs.store import RunStore
from services.tenancy.keys import KeyStore
from tests.integration.doors import api_door

STEP = {"model": "local/simulator", "messages": [{"role": "user", "content": "step"}]}


@pytest.fixture(scope="module")
def runs_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    config = StackConfig(
        workers=2,
        first_token_ms=400,
        chunk_ms=10,
        run_lease_seconds=2,
        run_heartbeat_seconds=0.5,
        run_watchdog_seconds=1,
        # Slow enough that a subscriber falling back to polling could not pass the live test.
        run_poll_seconds=5,
        log_dir=tmp_path_factory.mktemp("runs-stack-logs"),
    )
    with LocalStack(config) as running:
        yield running


def auth(stack: LocalStack, key: str | None = None) -> dict[str, str]:
    return {"authorization": f"Bearer {key or stack.api_key}"}


def events_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def wait_for(stack: LocalStack, run_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = httpx.get(f"{stack.stream_url}/runs/{run_id}", headers=auth(stack)).json()
        if run["status"] in ("succeeded", "failed", "cancelled"):
            return dict(run)
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not end in {timeout} s")


def replay(stack: LocalStack, run_id: str, after: int = 0) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{stack.stream_url}/runs/{run_id}/events", params={"after": after}, headers=auth(stack)
    )
    assert response.status_code == 200
    return events_of(response.text)


def create(
    stack: LocalStack, body: dict[str, Any], url: str | None = None, **headers: str
) -> httpx.Response:
    return httpx.post(
        f"{url or stack.stream_url}/runs", json=body, headers={**auth(stack), **headers}, timeout=60
    )


def test_a_background_pipeline_runs_to_the_end_with_numbered_events(runs_stack: LocalStack) -> None:
    second = {**STEP, "messages": [{"role": "user", "content": "quote: {{steps[0].output}}"}]}
    response = create(
        runs_stack, {"kind": "pipeline", "input": {"steps": [STEP, second]}, "background": True}
    )
    assert response.status_code == 202
    run = response.json()
    assert run["status"] in ("queued", "running")
    assert response.headers["location"] == f"/v1/runs/{run['id']}"
    done = wait_for(runs_stack, run["id"])
    assert done["status"] == "succeeded"
    assert done["progress"] == {"completed_steps": 2, "total_steps": 2}
    first_output = done["result"]["steps"][0]["choices"][0]["message"]["content"]
    assert first_output in done["result"]["output"]  # step 2 was given step 1's output
    events = replay(runs_stack, run["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    types = [e["type"] for e in events]
    assert types[0] == "run.started" and types[-1] == "run.succeeded"
    assert [e["data"]["step"] for e in events if e["type"] == "step.completed"] == [0, 1]


def test_disconnect_and_resume_with_last_event_id_equals_a_full_replay(
    runs_stack: LocalStack,
) -> None:
    run = create(
        runs_stack, {"kind": "pipeline", "input": {"steps": [STEP, STEP, STEP]}, "background": True}
    ).json()
    received: list[dict[str, Any]] = []
    with httpx.stream(
        "GET",
        f"{runs_stack.stream_url}/runs/{run['id']}/events",
        headers=auth(runs_stack),
        timeout=30,
    ) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                received.append(json.loads(line[6:]))
            if len(received) == 12:
                break  # the client drops the connection mid-run
    assert (
        httpx.get(f"{runs_stack.stream_url}/runs/{run['id']}", headers=auth(runs_stack)).json()[
            "status"
        ]
        == "running"
    )
    last = received[-1]["seq"]
    with httpx.stream(
        "GET",
        f"{runs_stack.stream_url}/runs/{run['id']}/events",
        headers={**auth(runs_stack), "last-event-id": str(last)},
        timeout=30,
    ) as stream:
        rest = events_of("\n".join(stream.iter_lines()))
    assert wait_for(runs_stack, run["id"])["status"] == "succeeded"  # the drop cancelled nothing
    full = replay(runs_stack, run["id"])
    assert received + rest == full
    # ?after= works the same.
    assert replay(runs_stack, run["id"], after=last) == rest


def test_dropping_a_streamed_run_does_not_cancel_it_unless_asked(runs_stack: LocalStack) -> None:
    outcomes = {}
    for cancel_on_disconnect in (False, True):
        body = {
            "kind": "pipeline",
            "input": {"steps": [STEP, STEP]},
            "stream": True,
            "cancel_on_disconnect": cancel_on_disconnect,
        }
        with httpx.stream(
            "POST", f"{runs_stack.stream_url}/runs", json=body, headers=auth(runs_stack), timeout=30
        ) as stream:
            run_id = None
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    run_id = run_id or runs_for_tenant(runs_stack)[0]
                    break
        assert run_id is not None
        outcomes[cancel_on_disconnect] = wait_for(runs_stack, run_id)["status"]
    assert outcomes == {False: "succeeded", True: "cancelled"}


def runs_for_tenant(stack: LocalStack) -> list[str]:
    page = httpx.get(f"{stack.api_url}/runs", params={"limit": 5}, headers=auth(stack)).json()
    return [r["id"] for r in page["data"]]


def test_cancel_stops_a_running_run_and_a_finished_run_cannot_be_cancelled(
    runs_stack: LocalStack,
) -> None:
    run = create(
        runs_stack, {"kind": "pipeline", "input": {"steps": [STEP] * 5}, "background": True}
    ).json()
    time.sleep(1.0)
    response = httpx.post(
        f"{api_door(runs_stack)}/runs/{run['id']}/cancel", headers=auth(runs_stack)
    )
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    time.sleep(1.5)
    final = httpx.get(f"{runs_stack.api_url}/runs/{run['id']}", headers=auth(runs_stack)).json()
    assert final["status"] == "cancelled"
    assert final["progress"].get("completed_steps", 0) < 5
    events = replay(runs_stack, run["id"])
    assert events[-1]["type"] == "run.cancelled"
    again = httpx.post(f"{runs_stack.stream_url}/runs/{run['id']}/cancel", headers=auth(runs_stack))
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "run_not_cancellable"


def test_same_idempotency_key_sent_twice_at_once_yields_one_run(runs_stack: LocalStack) -> None:
    body = {"kind": "chat.completion", "input": STEP, "background": True}
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        responses = list(
            pool.map(
                lambda _: create(runs_stack, body, **{"idempotency-key": "order-42"}), range(4)
            )
        )
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["id"] for r in responses}) == 1
    run_id = responses[0].json()["id"]
    assert runs_for_tenant(runs_stack).count(run_id) == 1
    other = create(
        runs_stack, {**body, "input": {**STEP, "max_tokens": 3}}, **{"idempotency-key": "order-42"}
    )
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"


def test_idempotent_chat_completion_returns_the_same_answer(runs_stack: LocalStack) -> None:
    headers = {**auth(runs_stack), "idempotency-key": "chat-7"}
    first = httpx.post(
        f"{api_door(runs_stack)}/chat/completions", json=STEP, headers=headers, timeout=30
    )
    second = httpx.post(
        f"{runs_stack.stream_url}/chat/completions", json=STEP, headers=headers, timeout=30
    )
    assert first.status_code == second.status_code == 200
    assert first.json()["object"] == "chat.completion"
    assert first.json()["id"] == second.json()["id"]


def test_bad_input(runs_stack: LocalStack) -> None:
    other_key = (
        KeyStore(runs_stack.client("dynamodb"), runs_stack.config.table).create("tenant-b").secret
    )
    run = create(runs_stack, {"kind": "chat.completion", "input": STEP, "background": True}).json()
    for url in (runs_stack.api_url, runs_stack.stream_url):  # the run reads, on both doors
        missing = httpx.get(f"{url}/runs/run_000000000000000000000000", headers=auth(runs_stack))
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "run_not_found"
        foreign = httpx.get(f"{url}/runs/{run['id']}", headers=auth(runs_stack, other_key))
        assert foreign.status_code == 404
        assert run["id"] not in [
            r["id"]
            for r in httpx.get(f"{url}/runs", headers=auth(runs_stack, other_key)).json()["data"]
        ]
        bad_cursor = httpx.get(
            f"{url}/runs", params={"after": "not-a-cursor"}, headers=auth(runs_stack)
        )
        assert (
            bad_cursor.status_code == 400 and bad_cursor.json()["error"]["code"] == "invalid_cursor"
        )
    # The worker's routes: where the API sends them, and through the stream front door.
    for url in (api_door(runs_stack), runs_stack.stream_url):
        foreign_events = httpx.get(
            f"{url}/runs/{run['id']}/events", headers=auth(runs_stack, other_key)
        )
        assert foreign_events.status_code == 404
        assert (
            httpx.post(
                f"{url}/runs/{run['id']}/cancel", headers=auth(runs_stack, other_key)
            ).status_code
            == 404
        )
        bad_resume = httpx.get(
            f"{url}/runs/{run['id']}/events", headers={**auth(runs_stack), "last-event-id": "abc"}
        )
        assert (
            bad_resume.status_code == 400 and bad_resume.json()["error"]["param"] == "Last-Event-ID"
        )
    unknown_kind = create(runs_stack, {"kind": "teleport", "input": {}})
    assert unknown_kind.status_code == 400 and unknown_kind.json()["error"]["param"] == "kind"
    bad_step = create(
        runs_stack, {"kind": "pipeline", "input": {"steps": [{"model": "local/simulator"}]}}
    )
    assert (
        bad_step.status_code == 400
        and bad_step.json()["error"]["param"] == "input.steps[0].messages"
    )
    forward_ref = {**STEP, "messages": [{"role": "user", "content": "{{steps[1].output}}"}]}
    bad_ref = create(runs_stack, {"kind": "pipeline", "input": {"steps": [forward_ref, STEP]}})
    assert bad_ref.status_code == 400
    unknown_model = create(
        runs_stack, {"kind": "chat.completion", "input": {**STEP, "model": "acme/x"}}
    )
    assert (
        unknown_model.status_code == 404 and unknown_model.json()["error"]["param"] == "input.model"
    )


def test_a_subscriber_on_another_worker_gets_live_events_from_the_owner(
    runs_stack: LocalStack,
) -> None:
    run = create(
        runs_stack, {"kind": "pipeline", "input": {"steps": [STEP] * 3}, "background": True}
    ).json()
    store = RunStore(runs_stack.client("dynamodb"), runs_stack.config.table)
    deadline = time.monotonic() + 10
    while (record := store.get("dev", run["id"])) is None or record.owner is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    other = runs_stack.worker_urls[1 - int(record.owner.rsplit("-", 1)[1])]
    arrivals: list[tuple[float, dict[str, Any]]] = []
    with httpx.stream(
        "GET", f"{other}/v1/runs/{run['id']}/events", headers=auth(runs_stack), timeout=30
    ) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                arrivals.append((time.monotonic(), json.loads(line[6:])))
    ended = arrivals[-1][0]
    assert arrivals[-1][1]["type"] == "run.succeeded"
    assert [e for _, e in arrivals] == replay(runs_stack, run["id"])
    # Live, not polled at the end: the first step's text reached this subscriber on the
    # other worker long before the run ended.
    first_delta = next(t for t, e in arrivals if e["type"] == "text.delta")
    assert ended - first_delta > 0.6


def test_a_streamed_run_names_itself_before_anything_else(runs_stack: LocalStack) -> None:
    """Issue 15, item 8: a client that loses a streamed run's connection can resume it,
    because the run's id came first (Location, then a `run.created` event)."""
    body = {"kind": "pipeline", "input": {"steps": [STEP, STEP]}, "stream": True}
    with httpx.stream(
        "POST",
        f"{api_door(runs_stack)}/runs",
        json=body,
        headers={**auth(runs_stack), "x-forwarded-prefix": "/api"},
        timeout=30,
    ) as stream:
        location = stream.headers["location"]
        lines = stream.iter_lines()
        head = [next(lines), next(lines)]
        # ...and the connection is lost here.
    assert head[0] == "event: run.created" and head[1].startswith("data: ")
    first = json.loads(head[1][6:])
    run = first["data"]
    assert (first["seq"], first["type"]) == (0, "run.created")
    assert location == run["urls"]["self"] == f"/api/v1/runs/{run['id']}"
    assert run["status"] == "running" and run["kind"] == "pipeline"
    # Resumed from the start with the id it was given: every event of the run, in order.
    with httpx.stream(
        "GET",
        f"{runs_stack.stream_url}/runs/{run['id']}/events",
        headers={**auth(runs_stack), "last-event-id": "0"},
        timeout=30,
    ) as resumed:
        events = events_of("\n".join(resumed.iter_lines()))
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "run.started" and events[-1]["type"] == "run.succeeded"
    assert "run.created" not in [e["type"] for e in events]  # not one of the run's events


def test_the_owner_stops_a_run_only_for_its_own_tenant_and_a_recorded_cancel(
    runs_stack: LocalStack,
) -> None:
    """Issue 15, item 9, with two tenants: the owner's stop endpoint, called with another
    tenant's key, or with the owner's own key for a run that is not cancelled, stops
    nothing; the run carries on to its end."""
    keys = KeyStore(runs_stack.client("dynamodb"), runs_stack.config.table)
    stranger = keys.create("tenant-intruder").secret
    run = create(
        runs_stack, {"kind": "pipeline", "input": {"steps": [STEP] * 4}, "background": True}
    ).json()
    store = RunStore(runs_stack.client("dynamodb"), runs_stack.config.table)
    deadline = time.monotonic() + 10
    while (record := store.get("dev", run["id"])) is None or not record.owner_url:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    stop = f"{record.owner_url}/internal/runs/{run['id']}/cancel"
    intruder = httpx.post(stop, headers=auth(runs_stack, stranger))
    assert intruder.status_code == 404 and intruder.json()["error"]["code"] == "run_not_found"
    not_cancelled = httpx.post(stop, headers=auth(runs_stack))
    assert not_cancelled.status_code == 409
    assert not_cancelled.json()["error"]["code"] == "run_not_cancelled"
    done = wait_for(runs_stack, run["id"])
    assert done["status"] == "succeeded" and done["progress"]["completed_steps"] == 4
    # A cancel made on the other worker reaches the owner with the client's own key.
    second = create(
        runs_stack, {"kind": "pipeline", "input": {"steps": [STEP] * 20}, "background": True}
    ).json()
    deadline = time.monotonic() + 10
    while (record := store.get("dev", second["id"])) is None or not record.owner:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    other = runs_stack.worker_urls[1 - int(record.owner.rsplit("-", 1)[1])]
    cancelled = httpx.post(f"{other}/v1/runs/{second['id']}/cancel", headers=auth(runs_stack))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert wait_for(runs_stack, second["id"])["status"] == "cancelled"
    time.sleep(1.0)
    events = replay(runs_stack, second["id"])
    assert events[-1]["type"] == "run.cancelled"
    assert store.require("dev", second["id"]).progress.get("completed_steps", 0) < 20


# Last: it kills a worker of the module's stack.
def test_a_worker_killed_mid_run_is_taken_over_from_its_last_checkpoint(
    runs_stack: LocalStack,
) -> None:
    run = create(
        runs_stack, {"kind": "pipeline", "input": {"steps": [STEP] * 4}, "background": True}
    ).json()
    store = RunStore(runs_stack.client("dynamodb"), runs_stack.config.table)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # wait until the first step is checkpointed
        record = store.get("dev", run["id"])
        if record is not None and record.progress.get("completed_steps", 0) >= 1:
            break
        time.sleep(0.05)
    assert record is not None and record.owner is not None
    victim = int(record.owner.rsplit("-", 1)[1])
    runs_stack.worker_process(victim).send_signal(signal.SIGKILL)
    done = wait_for(runs_stack, run["id"], timeout=40)
    assert done["status"] == "succeeded"
    assert done["attempts"] == 2
    final = store.get("dev", run["id"])
    # A survivor, or the dead worker's replacement (a new task id): not the dead worker.
    assert final is not None and final.owner not in (None, record.owner)
    events = replay(runs_stack, run["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    completed = [e["data"]["step"] for e in events if e["type"] == "step.completed"]
    assert completed == [0, 1, 2, 3]  # no finished step was done twice
    starts = [e for e in events if e["type"] == "run.started"]
    assert [s["data"]["resumed"] for s in starts] == [False, True]
    resumed_at = events.index(starts[1])
    restarted = [e["data"]["step"] for e in events[resumed_at:] if e["type"] == "step.started"]
    assert restarted[0] == max(completed[: completed.index(restarted[0])] or [-1]) + 1
    assert restarted == list(range(restarted[0], 4))
    assert len(done["result"]["steps"]) == 4
