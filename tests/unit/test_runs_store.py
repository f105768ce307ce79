from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devstack.tables import create_table
from services.errors import APIError, InvalidRequest
from services.models.catalogue import Catalogue
from services.providers.local import LocalProvider
from services.runs.events import Channel, EventLog
from services.runs.model import Event, Run
from services.runs.service import RunService, RunSettings
from services.runs.store import IdempotencyMismatch, RunStore, new_run_id

TABLE = "runs-test"
STEP = {"model": "local/simulator", "messages": [{"role": "user", "content": "x"}]}


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(dynamodb, TABLE)
        sqs = boto3.client("sqs", region_name="us-east-1")
        dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        queue = sqs.create_queue(QueueName="runs")["QueueUrl"]
        yield {"dynamodb": dynamodb, "sqs": sqs, "queue": queue, "dlq": dlq}


def new_run(tenant: str = "t", **fields: Any) -> Run:
    now = time.time()
    values: dict[str, Any] = {
        "id": new_run_id(),
        "tenant_id": tenant,
        "key_id": "k",
        "kind": "pipeline",
        "status": "queued",
        "input": {"steps": [STEP]},
        "created_at": now,
        "updated_at": now,
        **fields,
    }
    return Run(**values)


def test_round_trip_and_tenant_scoping(aws: dict[str, Any]) -> None:
    store = RunStore(aws["dynamodb"], TABLE)
    run, created = store.create(new_run())
    assert created
    loaded = store.get("t", run.id)
    assert loaded is not None and loaded.input == run.input and loaded.status == "queued"
    assert store.get("other-tenant", run.id) is None
    with pytest.raises(APIError) as info:
        store.require("other-tenant", run.id)
    assert info.value.status == 404


def test_idempotency_returns_the_same_run(aws: dict[str, Any]) -> None:
    store = RunStore(aws["dynamodb"], TABLE)
    first, created = store.create(new_run(idempotency_key="k1"), body_hash="h")
    again, created_again = store.create(new_run(idempotency_key="k1"), body_hash="h")
    assert created and not created_again and again.id == first.id
    with pytest.raises(IdempotencyMismatch):
        store.create(new_run(idempotency_key="k1"), body_hash="different")
    other_tenant, created_other = store.create(new_run("t2", idempotency_key="k1"), body_hash="h")
    assert created_other and other_tenant.id != first.id  # keys are per tenant


def test_claim_is_exclusive_and_waits_for_the_lease(aws: dict[str, Any]) -> None:
    now = [time.time()]
    store = RunStore(aws["dynamodb"], TABLE, clock=lambda: now[0])
    run, _ = store.create(new_run(created_at=now[0], updated_at=now[0]))
    a = store.claim(run, "a", "http://a", lease_seconds=10)
    assert a is not None and a.owner == "a" and a.attempts == 1
    assert store.claim(run, "b", "http://b", lease_seconds=10) is None  # lease alive
    now[0] += 11
    b = store.claim(run, "b", "http://b", lease_seconds=10)
    assert b is not None and b.owner == "b" and b.attempts == 2
    # The old owner lost it: its writes are refused.
    assert not store.renew(run, "a", 10)
    assert not store.checkpoint(run, "a", {"outputs": ["x"]}, {})
    assert not store.finish(run, "a", result={"x": 1})
    assert store.finish(run, "b", result={"ok": True})
    assert store.get("t", run.id).status == "succeeded"  # type: ignore[union-attr]


def test_cancel_wins_over_the_owner(aws: dict[str, Any]) -> None:
    store = RunStore(aws["dynamodb"], TABLE)
    run, _ = store.create(new_run())
    store.claim(run, "a", None, 30)
    assert store.cancel("t", run.id).status == "cancelled"
    assert not store.renew(run, "a", 30)
    assert not store.finish(run, "a", result={})
    with pytest.raises(APIError) as info:
        store.cancel("t", run.id)
    assert info.value.status == 409


def test_events_in_order_after_a_sequence_number(aws: dict[str, Any]) -> None:
    store = RunStore(aws["dynamodb"], TABLE)
    run, _ = store.create(new_run())
    store.append_events(run, [Event(i, "text.delta", {"i": i}, 0.0) for i in range(1, 61)])
    assert [e.seq for e in store.events(run)] == list(range(1, 61))
    assert [e.seq for e in store.events(run, 57)] == [58, 59, 60]
    assert store.last_seq(run) == 60


def test_list_newest_first_with_an_opaque_cursor(aws: dict[str, Any]) -> None:
    store = RunStore(aws["dynamodb"], TABLE)
    ids = []
    start = time.time()
    for i in range(5):
        run, _ = store.create(new_run(created_at=start + i, updated_at=start + i))
        ids.append(run.id)
    store.create(new_run("someone-else"))
    page, cursor = store.page("t", limit=3)
    assert [r.id for r in page] == ids[::-1][:3] and cursor
    rest, end = store.page("t", limit=3, cursor=cursor)
    assert [r.id for r in rest] == ids[::-1][3:] and end is None
    _, other_cursor = store.page("someone-else", limit=1)
    for bad in ("garbage", other_cursor or "x"):
        with pytest.raises(InvalidRequest):
            store.page("t", cursor=bad)


def test_event_log_persists_before_it_publishes() -> None:
    persisted: list[int] = []

    async def scenario() -> list[int]:
        channel = Channel(first_seq=5)
        log = EventLog(
            new_run(),
            channel,
            lambda run, batch: persisted.extend(e.seq for e in batch),
            flush_interval=0.01,
        )
        seen: list[int] = []

        async def follow() -> None:
            async for event in channel.after(4):
                assert event.seq in persisted  # never published before it is persisted
                seen.append(event.seq)

        follower = asyncio.create_task(follow())
        for _ in range(30):
            log.emit("text.delta")
        await asyncio.sleep(0.05)
        log.emit("run.succeeded")
        await log.close()
        await follower
        return seen

    seen = asyncio.run(scenario())
    assert seen == list(range(5, 36)) == persisted


def service(aws: dict[str, Any], **settings: Any) -> RunService:
    defaults: dict[str, Any] = {
        "queue_url": aws["queue"],
        "dlq_url": aws["dlq"],
        "worker_id": "w1",
        "advertise_url": None,
        "lease_seconds": 5,
        "heartbeat_seconds": 1,
    }
    return RunService(
        RunStore(aws["dynamodb"], TABLE),
        aws["sqs"],
        Catalogue({"local": LocalProvider()}),
        RunSettings(**{**defaults, **settings}),
    )


def receive(aws: dict[str, Any], queue: str) -> list[dict[str, Any]]:
    return list(
        aws["sqs"].receive_message(QueueUrl=aws[queue], MaxNumberOfMessages=10).get("Messages", [])
    )


def test_a_queued_run_is_claimed_and_finished_from_its_message(aws: dict[str, Any]) -> None:
    async def scenario() -> Run:
        svc = service(aws)
        from services.tenancy.auth import Principal

        run, _ = await svc.create(
            Principal("t", "k"), "pipeline", {"steps": [STEP, STEP]}, background=True
        )
        [message] = receive(aws, "queue")
        await svc._handle(message)
        await svc.stop()
        return svc.store.require("t", run.id)

    done = asyncio.run(scenario())
    assert done.status == "succeeded" and done.attempts == 1
    assert done.progress == {"completed_steps": 2, "total_steps": 2}


def test_out_of_attempts_fails_the_run_and_moves_the_message_to_the_dlq(
    aws: dict[str, Any],
) -> None:
    store = RunStore(aws["dynamodb"], TABLE)
    run, _ = store.create(
        new_run(
            status="running",
            owner="dead",
            lease_until=0.0,
            attempts=3,
            progress={"completed_steps": 1},
        )
    )
    aws["sqs"].send_message(
        QueueUrl=aws["queue"], MessageBody=json.dumps({"run_id": run.id, "tenant_id": "t"})
    )

    async def scenario() -> None:
        svc = service(aws, max_attempts=3)
        [message] = receive(aws, "queue")
        await svc._handle(message)
        await svc.stop()

    asyncio.run(scenario())
    failed = store.require("t", run.id)
    assert failed.status == "failed"
    assert failed.error is not None and failed.error["code"] == "run_attempts_exhausted"
    assert "after 1 finished steps" in failed.error["message"]
    assert [json.loads(m["Body"])["run_id"] for m in receive(aws, "dlq")] == [run.id]
    assert receive(aws, "queue") == []


def test_a_run_with_a_live_owner_is_left_alone(aws: dict[str, Any]) -> None:
    store = RunStore(aws["dynamodb"], TABLE)
    run, _ = store.create(
        new_run(status="running", owner="alive", lease_until=time.time() + 60, attempts=1)
    )
    aws["sqs"].send_message(
        QueueUrl=aws["queue"], MessageBody=json.dumps({"run_id": run.id, "tenant_id": "t"})
    )

    async def scenario() -> None:
        svc = service(aws, watchdog_seconds=30)
        [message] = receive(aws, "queue")
        await svc._handle(message)
        await svc.stop()

    asyncio.run(scenario())
    still = store.require("t", run.id)
    assert still.owner == "alive" and still.attempts == 1 and still.status == "running"


def test_concurrent_flushes_publish_in_order() -> None:
    """A checkpoint's flush and the timer's flush overlap; subscribers still see 1, 2, 3..."""
    import random
    import time as time_

    def slow_persist(run: Run, batch: list[Event]) -> None:
        time_.sleep(random.uniform(0, 0.01))

    async def scenario() -> list[int]:
        channel = Channel(first_seq=1)
        log = EventLog(new_run(), channel, slow_persist, flush_interval=0.001)
        for _ in range(50):
            log.emit("text.delta")
            if random.random() < 0.3:
                await log.flush()
            await asyncio.sleep(0)
        await log.close()
        return [e.seq for e in channel.events]

    random.seed(7)
    for _ in range(5):
        assert asyncio.run(scenario()) == list(range(1, 51))


# -- never stranded: an owner with a live lease, or a message, until the run ends -------


def slow_service(aws: dict[str, Any], worker_id: str, **settings: Any) -> RunService:
    """A run service whose model takes 0.2 s per call, on serialized clients (its blocking
    calls run in threads; in-process moto is not thread-safe)."""
    from services.providers.local import LocalSettings
    from tests.fakes.serialized import Serialized

    defaults: dict[str, Any] = {
        "queue_url": aws["queue"],
        "dlq_url": aws["dlq"],
        "worker_id": worker_id,
        "advertise_url": None,
        "lease_seconds": 30,
        "heartbeat_seconds": 1,
        "watchdog_seconds": 30,
    }
    return RunService(
        RunStore(Serialized(aws["dynamodb"]), TABLE),
        Serialized(aws["sqs"]),
        Catalogue({"local": LocalProvider(LocalSettings(first_token_ms=200))}),
        RunSettings(**{**defaults, **settings}),
    )


async def until(condition: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_the_owner_stops_a_run_only_for_its_tenant_once_its_cancel_is_recorded(
    aws: dict[str, Any],
) -> None:
    """Issue 15, item 9: telling the owner to stop a run used to check neither the caller's
    tenant nor the run's status; another tenant got `{"stopped": true}`, the message was
    deleted and the run stayed `running` forever."""
    from services.tenancy.auth import Principal

    owner_a, stranger = Principal("tenant-a", "ka"), Principal("tenant-b", "kb")

    async def scenario() -> tuple[list[int], Run]:
        svc = slow_service(aws, "w1")
        run, _ = await svc.create(owner_a, "pipeline", {"steps": [STEP] * 4}, background=True)
        [message] = receive(aws, "queue")
        handling = asyncio.create_task(svc._handle(message))
        await until(lambda: svc.owns(run.id))
        refused = []
        for caller in (stranger, owner_a):  # another tenant; the owner, without a cancel
            with pytest.raises(APIError) as info:
                await svc.stop_cancelled(caller, run.id)
            refused.append(info.value.status)
        assert svc.owns(run.id)  # still executing
        await handling
        await svc.stop()
        return refused, svc.store.require("tenant-a", run.id)

    refused, done = asyncio.run(scenario())
    assert refused == [404, 409]
    assert done.status == "succeeded" and done.progress["completed_steps"] == 4
    assert receive(aws, "queue") == []  # the message went once the run had ended


def test_a_recorded_cancel_stops_the_owner_at_once(aws: dict[str, Any]) -> None:
    from services.tenancy.auth import Principal

    caller = Principal("tenant-a", "ka")

    async def scenario() -> tuple[Run, list[str]]:
        svc = slow_service(aws, "w1")
        run, _ = await svc.create(caller, "pipeline", {"steps": [STEP] * 20}, background=True)
        [message] = receive(aws, "queue")
        handling = asyncio.create_task(svc._handle(message))
        await until(lambda: svc.owns(run.id))
        svc.store.cancel("tenant-a", run.id)  # another worker recorded it
        stopped = await svc.stop_cancelled(caller, run.id)
        assert stopped.status == "cancelled"
        await asyncio.wait_for(handling, 5)  # not at the next renewal: now
        await svc.stop()
        events = [e.type for e in svc.store.events(run)]
        return svc.store.require("tenant-a", run.id), events

    done, events = asyncio.run(scenario())
    assert done.status == "cancelled" and done.progress.get("completed_steps", 0) < 20
    assert events[-1] == "run.cancelled"
    assert receive(aws, "queue") == []


def test_an_execution_stopped_without_an_ending_is_left_to_a_takeover(
    aws: dict[str, Any],
) -> None:
    """Whatever stops an execution without recording an ending, the run keeps its message
    and loses its lease: the next worker takes it over at once."""
    from services.tenancy.auth import Principal

    async def scenario() -> tuple[Run, Run, int]:
        first, second = slow_service(aws, "w1"), slow_service(aws, "w2")
        run, _ = await first.create(
            Principal("tenant-a", "ka"), "pipeline", {"steps": [STEP] * 3}, background=True
        )
        [message] = receive(aws, "queue")
        handling = asyncio.create_task(first._handle(message))
        await until(lambda: first.owns(run.id))
        first._stop_local(run.id)
        await handling
        left = first.store.require("tenant-a", run.id)
        messages = receive(aws, "queue")  # visible again at once
        for m in messages:
            await second._handle(m)
        await first.stop()
        await second.stop()
        return left, second.store.require("tenant-a", run.id), len(messages)

    left, done, messages = asyncio.run(scenario())
    assert (left.status, left.owner, left.lease_until, left.attempts) == ("running", "w1", 0, 0)
    assert messages == 1
    assert done.status == "succeeded" and done.owner == "w2" and done.attempts == 1


def test_a_stopping_worker_releases_its_runs_for_an_immediate_takeover(
    aws: dict[str, Any],
) -> None:
    """Graceful shutdown: the runs a worker holds (one from the queue, one it started for a
    synchronous call) are released, not left until their 30 s leases lapse."""
    from services.tenancy.auth import Principal

    caller = Principal("tenant-a", "ka")

    async def scenario() -> tuple[list[Run], list[Run]]:
        first, second = slow_service(aws, "w1"), slow_service(aws, "w2")
        queued, _ = await first.create(caller, "pipeline", {"steps": [STEP] * 5}, background=True)
        [message] = receive(aws, "queue")
        handling = asyncio.create_task(first._handle(message))
        direct, _ = await first.create(caller, "pipeline", {"steps": [STEP] * 5}, background=False)
        await until(lambda: first.owns(queued.id) and first.owns(direct.id))
        await asyncio.sleep(0.3)  # a step is under way in each
        await first.stop()
        handling.cancel()
        released = [first.store.require("tenant-a", r.id) for r in (queued, direct)]
        started, handlers = time.monotonic(), []
        while time.monotonic() - started < 10 and any(
            second.store.require("tenant-a", r.id).status == "running" for r in released
        ):
            handlers += [asyncio.create_task(second._handle(m)) for m in receive(aws, "queue")]
            await asyncio.sleep(0.1)
        await second.stop()
        return released, [second.store.require("tenant-a", r.id) for r in released]

    released, done = asyncio.run(scenario())
    for run in released:
        assert (run.status, run.owner, run.lease_until) == ("running", "w1", 0)
    for run in done:
        assert run.status == "succeeded" and run.owner == "w2", run
