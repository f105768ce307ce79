"""Agent runs through the run service (moto's DynamoDB and SQS): a run that waits for a
person holds no lease and no queue message; one answer wins; the answer queues the run
again and the next worker resumes it from its checkpoint. And the `agent` kind's input
checks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devstack.tables import create_table
from services.agents.base import AgentEnv, Outcome
from services.agents.builtin import docs_chat
from services.agents.kind import AgentKind, parse_request
from services.agents.registry import agents
from services.conversations.store import ConversationStore
from services.errors import APIError
from services.models.catalogue import Catalogue
from services.providers.local import LocalProvider
from services.runs.kinds import KINDS
from services.runs.service import RunService, RunSettings
from services.runs.store import RunStore
from services.tenancy.auth import Principal
from tests.unit.test_agents_loop import Echo, Move, ScriptedProvider, Turn, agent

TABLE = "agents-test"
ME = Principal("t", "k")


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(dynamodb, TABLE)
        sqs = boto3.client("sqs", region_name="us-east-1")
        dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        queue = sqs.create_queue(QueueName="runs")["QueueUrl"]
        yield {"dynamodb": dynamodb, "sqs": sqs, "queue": queue, "dlq": dlq}


def service(aws: dict[str, Any], provider: ScriptedProvider, worker: str) -> RunService:
    return RunService(
        RunStore(aws["dynamodb"], TABLE),
        aws["sqs"],
        Catalogue({"scripted": provider}),
        RunSettings(
            queue_url=aws["queue"],
            dlq_url=aws["dlq"],
            worker_id=worker,
            advertise_url=None,
            lease_seconds=5,
            heartbeat_seconds=1,
        ),
    )


def messages(aws: dict[str, Any]) -> list[dict[str, Any]]:
    response = aws["sqs"].receive_message(QueueUrl=aws["queue"], MaxNumberOfMessages=10)
    return list(response.get("Messages", []))


def test_waiting_for_approval_holds_nothing_and_one_answer_resumes_it(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    move, echo = Move(), Echo()
    monkeypatch.setitem(
        KINDS,
        "agent",
        AgentKind(
            found=lambda: {"tester": agent(tools=("move", "echo"))},
            tools={"move": move, "echo": echo},
        ),
    )
    provider = ScriptedProvider(
        Turn("I propose.", [("move", {"value": "plan"})]), Turn("All moved.")
    )

    async def scenario() -> None:
        first = service(aws, provider, "w1")
        run, _ = await first.create(ME, "agent", {"agent": "tester"}, background=True)
        [message] = messages(aws)
        await first._handle(message)
        waiting = first.store.require("t", run.id)
        assert waiting.status == "awaiting_input"
        assert waiting.owner is None and waiting.lease_until == 0
        shown = waiting.public()["pending_input"]
        assert shown["type"] == "approval" and shown["detail"]["arguments"] == {"value": "plan"}
        assert messages(aws) == []  # the message was let go: the run holds no worker
        events = [e.type for e in first.store.events(waiting)]
        assert events[-1] == "awaiting_input" and "run.succeeded" not in events
        # Following the run ends at the question, not at a timeout.
        followed = [e.type async for e in first.subscribe(ME, waiting, 0)]
        assert followed == events

        with pytest.raises(APIError) as wrong:
            await first.answer(ME, run.id, {"input": "yes"})
        assert wrong.value.status == 400 and wrong.value.param == "input"

        # One after the other: the answer is a conditional update, which DynamoDB applies
        # atomically, but in-process moto does not under threads (two racing answers can
        # both pass its check), so a race here would test moto, not the store.
        results: list[Any] = []
        for answer in ({"approve": True}, {"approve": False}):
            try:
                results.append(await first.answer(ME, run.id, answer))
            except APIError as exc:
                results.append(exc)
        errors = [r for r in results if isinstance(r, Exception)]
        assert len(errors) == 1 and getattr(errors[0], "code", None) == "run_not_awaiting_input"
        assert getattr(errors[0], "status", None) == 409
        queued = first.store.require("t", run.id)
        assert queued.status == "queued" and queued.attempts == 0
        await first.stop()

        second = service(aws, provider, "w2")  # another worker takes the next turn
        [again] = messages(aws)
        await second._handle(again)
        done = second.store.require("t", run.id)
        winner = next(r for r in results if not isinstance(r, Exception))
        if queued.answer and queued.answer["approve"]:
            assert done.status == "succeeded" and move.calls == ["plan"]
            assert done.result["output"] == "All moved. "
        else:
            assert done.status == "succeeded" and move.calls == []
            assert done.result["outcome"] == "rejected"
        assert winner is not None and done.pending_input is None
        starts = [e for e in second.store.events(done) if e.type == "run.started"]
        assert [s.data["resumed"] for s in starts] == [False, True]
        with pytest.raises(APIError) as late:
            await second.answer(ME, run.id, {"approve": True})
        assert late.value.status == 409
        await second.stop()

    asyncio.run(scenario())


def test_a_failed_agent_run_keeps_its_steps(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        KINDS,
        "agent",
        AgentKind(
            found=lambda: {"tester": agent(tools=("echo",), approval_required=frozenset())},
            tools={"echo": Echo()},
        ),
    )
    provider = ScriptedProvider(*[Turn(calls=[("echo", {"value": str(i)})]) for i in range(5)])

    async def scenario() -> None:
        svc = service(aws, provider, "w1")
        run, _ = await svc.create(ME, "agent", {"agent": "tester", "max_steps": 2}, background=True)
        [message] = messages(aws)
        await svc._handle(message)
        failed = svc.store.require("t", run.id)
        assert failed.status == "failed"
        assert failed.error is not None and failed.error["code"] == "step_limit_reached"
        assert [s["step"] for s in failed.result["steps"]] == [0, 1]
        assert failed.progress["completed_steps"] == 2
        await svc.stop()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ("nope", "input", "invalid_value"),
        ({"agent": "teleporter"}, "input.agent", "unknown_agent"),
        ({"input": {}}, "input.agent", "missing_required_parameter"),
        (
            {"agent": "document_analyst", "input": {}},
            "input.input.document_id",
            "invalid_agent_input",
        ),
        (
            {"agent": "document_analyst", "input": {"document_id": "x"}},
            "input.input.document_id",
            "invalid_agent_input",
        ),
        (
            {"agent": "docs_chat", "input": {"message": "hi", "extra": 1}},
            "input.input.extra",
            "invalid_agent_input",
        ),
        (
            {"agent": "docs_chat", "input": {"message": "hi"}, "model": "acme/x"},
            "input.model",
            "model_not_found",
        ),
        (
            {"agent": "docs_chat", "input": {"message": "hi"}, "max_steps": 99},
            "input.max_steps",
            "invalid_value",
        ),
        (
            {"agent": "docs_chat", "input": {"message": "hi"}, "temperature": 1},
            "input.temperature",
            "unknown_parameter",
        ),
    ],
)
def test_agent_input_is_checked_when_the_run_is_created(body: Any, param: str, code: str) -> None:
    with pytest.raises(APIError) as refused:
        parse_request(body, Catalogue({"local": LocalProvider()}))
    assert (refused.value.param, refused.value.code) == (param, code)


def test_the_built_in_agents_are_declared_over_registered_tools() -> None:
    from services.agents.actions import ACTIONS
    from services.tools.registry import tools

    found = agents()
    assert set(found) == {"document_analyst", "asset_organizer", "docs_chat"}
    for declared in found.values():
        for name in declared.tools:
            assert name == "ask_user" or name in tools() or name in ACTIONS, (declared.name, name)
        assert json.dumps(declared.public())
    assert found["asset_organizer"].approval_required == frozenset({"move_documents"})
    assert "move_documents" not in tools()  # acts for a person: never a bare tool call


def test_docs_chat_stores_its_turn_once_when_a_takeover_concludes_again() -> None:
    """A worker that dies after storing the turn but before the run's last checkpoint
    makes the next worker conclude again: the turn is not stored twice."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        s3 = boto3.client("s3", region_name="us-east-1")
        create_table(dynamodb, "t")
        s3.create_bucket(Bucket="agents-test")
        store = ConversationStore(dynamodb, "t", s3=s3, bucket="agents-test")
        env = AgentEnv(tenant_id="acme", key_id="k", catalogue=None, conversations=store)
        opening = asyncio.run(
            docs_chat.opening(docs_chat.DocsChatInput(message="What is in q3?"), env)
        )
        outcome = Outcome("succeeded", "Revenue grew [doc_1].", [], opening.context)
        first = asyncio.run(docs_chat.conclude(outcome, env))
        again = asyncio.run(docs_chat.conclude(outcome, env))
        cid = first["conversation_id"]
        assert again["conversation_id"] == cid
        messages = [m.message.text for m in store.history("acme", cid).messages]
        assert messages == ["What is in q3?", "Revenue grew [doc_1]."]
        # A later turn with the same words is a new turn, and is stored.
        later = asyncio.run(
            docs_chat.opening(
                docs_chat.DocsChatInput(message="What is in q3?", conversation_id=cid), env
            )
        )
        asyncio.run(docs_chat.conclude(replace(outcome, context=later.context), env))
        assert len(store.history("acme", cid).messages) == 4
