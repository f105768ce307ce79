"""The chat policy and the sync deadline, decision by decision, with fakes for the model
and the run service (services/chat/policy.py, services/runs/sync.py)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from starlette.responses import Response

from services.chat.policy import ChatPolicy
from services.errors import APIError
from services.frontdoor.prefix import stage_prefix
from services.runs.model import Run
from services.runs.store import new_run_id
from services.runs.sync import Caller, SyncCalls, parse_prefer
from services.tenancy.auth import Principal
from services.web.asgi import EventStream

PRINCIPAL = Principal("acme", "key_1")
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


# -- headers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("respond-async", (True, None)),
        ("RESPOND-ASYNC", (True, None)),
        ("respond-async, wait=10", (True, 10.0)),
        ("wait=3, respond-async; foo=bar", (True, 3.0)),
        ('respond-async, wait="7"', (True, 7.0)),
        ("return=minimal", (False, None)),
        ("respond-async, wait=²", (True, None)),  # a Unicode digit is no number
        ("respond-async, wait=-1", (True, None)),
        ("respond-asyncx", (False, None)),
        ("", (False, None)),
        ("," * 1000, (False, None)),
    ],
)
def test_prefer_is_read_as_rfc_7240_says(raw: str, expected: tuple[bool, float | None]) -> None:
    assert parse_prefer(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/api", "/api"),
        ("/api/", "/api"),
        ("/prod/v2", "/prod/v2"),
        ("/", ""),
        ("", ""),
        ("api", ""),
        ("https://evil.example", ""),
        ("//evil.example", ""),
        ("/a/../b", ""),
        ("/a/./b", ""),
        ("/a%2f..", ""),
        ("/a?x=1", ""),
        ("/a#x", ""),
        ("/a b", ""),
        ("/a\r\nlocation: x", ""),
        ("/é", ""),
        ("/" + "a" * 200, ""),
    ],
)
def test_the_stage_prefix_is_a_path_prefix_or_nothing(raw: str, expected: str) -> None:
    assert stage_prefix(raw) == expected


def test_a_caller_reads_its_headers() -> None:
    headers = {
        "authorization": "Bearer sb-x",
        "x-api-key": "sb-y",
        "prefer": "respond-async, wait=5",
        "x-forwarded-prefix": "/api",
        "x-switchboard-tenant": "someone-else",
    }
    caller = Caller.of(PRINCIPAL, headers)
    assert caller.credentials == {"authorization": "Bearer sb-x", "x-api-key": "sb-y"}
    assert (caller.prefix, caller.respond_async, caller.wait) == ("/api", True, 5.0)
    assert Caller.of(PRINCIPAL, {}) == Caller(PRINCIPAL, {}, "", False, None)


# -- fakes ------------------------------------------------------------------------------------


def a_run(kind: str, status: str = "running", **fields: Any) -> Run:
    now = time.time()
    return Run(new_run_id(), "acme", "key_1", kind, status, {}, now, now, **fields)  # type: ignore[arg-type]


class FakeRuns:
    """What SyncCalls asks of a RunService."""

    def __init__(self, finished: Run | None = None) -> None:
        self.promoted: list[tuple[str, Any, asyncio.Future[Any]]] = []
        self.created: list[tuple[str, Any, str | None]] = []
        self.finished = finished

    async def promote(
        self, principal: Principal, kind: str, input: Any, work: asyncio.Future[Any]
    ) -> Run:
        self.promoted.append((kind, input, work))
        return a_run(kind)

    async def create(self, principal: Principal, kind: str, input: Any, **options: Any) -> Any:
        self.created.append((kind, input, options.get("idempotency_key")))
        return a_run(kind), True

    async def wait(
        self, principal: Principal, run: Run, seconds: float, credentials: Any = None
    ) -> Run:
        if self.finished is not None:
            return self.finished
        await asyncio.sleep(seconds)
        return run


class FakeChat:
    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.calls = 0

    async def complete(self, chat: Any) -> dict[str, Any]:
        self.calls += 1
        await asyncio.sleep(self.seconds)
        return {"object": "chat.completion", "id": "chatcmpl-1"}

    async def stream(self, chat: Any) -> AsyncIterator[bytes]:
        async def frames() -> AsyncIterator[bytes]:
            yield b"data: {}\n\n"

        return frames()


class FakeMessages(FakeChat):
    async def complete(self, request: Any) -> dict[str, Any]:
        await asyncio.sleep(self.seconds)
        return {"type": "message", "id": "msg_1"}


class FakeConversations:
    async def complete(self, tenant: str, chat: Any, cid: str) -> tuple[Any, dict[str, str]]:
        return {"object": "chat.completion", "conversation": cid}, {
            "x-switchboard-trimmed-messages": "0"
        }


def policy(
    runs: FakeRuns | None, *, seconds: float = 0.0, deadline: float = 1.0
) -> tuple[ChatPolicy, FakeChat]:
    chat = FakeChat(seconds)
    calls = SyncCalls(runs, deadline)  # type: ignore[arg-type]
    made = ChatPolicy(
        chat,  # type: ignore[arg-type]
        FakeMessages(seconds),  # type: ignore[arg-type]
        lambda: FakeConversations(),  # type: ignore[arg-type, return-value]
        calls,
        lambda frames, headers: EventStream(frames, headers, heartbeat=15.0),
    )
    return made, chat


def body_of(response: Response) -> Any:
    return json.loads(bytes(response.body))


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)


def raw(**extra: Any) -> bytes:
    return json.dumps({**CHAT, **extra}).encode()


# -- the walk -------------------------------------------------------------------------------


def test_a_completion_within_the_deadline_is_answered() -> None:
    made, chat = policy(FakeRuns(), seconds=0.01)
    response = run_async(made.chat_completion(Caller(PRINCIPAL, {}), raw(), None))
    assert response.status_code == 200 and body_of(response)["id"] == "chatcmpl-1"
    assert chat.calls == 1


def test_past_the_deadline_the_work_goes_on_as_a_run_and_the_caller_gets_a_504() -> None:
    runs = FakeRuns()
    made, _ = policy(runs, seconds=0.3, deadline=0.05)

    async def main() -> tuple[Response, Any]:
        response = await made.chat_completion(Caller(PRINCIPAL, {}, "/api"), raw(), None)
        [(kind, input, work)] = runs.promoted
        assert (kind, input) == ("chat.completion", CHAT)
        return response, await work  # the work was not cancelled: the run gets its answer

    response, result = run_async(main())
    assert response.status_code == 504
    error = body_of(response)["error"]
    location = response.headers["location"]
    assert location.startswith("/api/v1/runs/run_")
    assert error["code"] == "run_pending" and error["type"] == "timeout"
    assert location.rsplit("/", 1)[1] in error["message"] and "respond-async" in error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    assert response.headers["x-should-retry"] == "false"
    assert result["id"] == "chatcmpl-1"


def test_with_prefer_respond_async_the_caller_gets_the_run() -> None:
    made, _ = policy(FakeRuns(), seconds=0.3, deadline=5.0)
    caller = Caller.of(PRINCIPAL, {"prefer": "respond-async, wait=0", "x-forwarded-prefix": "/api"})
    response = run_async(made.chat_completion(caller, raw(), None))
    assert response.status_code == 202
    run = body_of(response)
    assert run["object"] == "run" and run["kind"] == "chat.completion"
    assert response.headers["location"] == run["urls"]["self"] == f"/api/v1/runs/{run['id']}"
    assert response.headers["preference-applied"] == "respond-async"


def test_a_streamed_completion_is_an_event_stream_and_refuses_an_idempotency_key() -> None:
    made, _ = policy(FakeRuns())
    caller = Caller(PRINCIPAL, {})
    response = run_async(made.chat_completion(caller, raw(stream=True), None))
    assert isinstance(response, EventStream) and response.heartbeat == 15.0
    with pytest.raises(APIError) as info:
        run_async(made.chat_completion(caller, raw(stream=True), "key-1"))
    assert (info.value.status, info.value.param) == (400, "Idempotency-Key")


def test_an_idempotency_key_answers_with_the_keys_run() -> None:
    done = a_run("chat.completion", "succeeded", result={"id": "chatcmpl-stored"})
    runs = FakeRuns(finished=done)
    made, chat = policy(runs)
    response = run_async(made.chat_completion(Caller(PRINCIPAL, {}), raw(), "order-42"))
    assert body_of(response) == {"id": "chatcmpl-stored"}
    assert runs.created == [("chat.completion", CHAT, "order-42")]
    assert chat.calls == 0  # the run does the work, once per key
    failed = a_run("chat.completion", "failed", error={"type": "upstream_error", "code": "x"})
    made, _ = policy(FakeRuns(finished=failed))
    assert run_async(made.chat_completion(Caller(PRINCIPAL, {}), raw(), "k")).status_code == 502


def test_a_conversation_turn_keeps_its_headers() -> None:
    made, chat = policy(FakeRuns())
    turn = raw(metadata={"conversation_id": "conv_0123456789abcdefghjkmnpqrs"})
    response = run_async(made.chat_completion(Caller(PRINCIPAL, {}), turn, None))
    assert body_of(response)["conversation"] == "conv_0123456789abcdefghjkmnpqrs"
    assert response.headers["x-switchboard-trimmed-messages"] == "0"
    assert chat.calls == 0


def test_a_late_message_is_answered_in_anthropics_envelope() -> None:
    made, _ = policy(FakeRuns(), seconds=0.3, deadline=0.05)
    body = json.dumps(
        {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    response = run_async(made.message(Caller(PRINCIPAL, {}), body))
    assert response.status_code == 504
    answer = body_of(response)
    assert answer["type"] == "error" and answer["error"]["type"] == "timeout_error"
    assert "run_" in answer["error"]["message"]
    assert response.headers["x-should-retry"] == "false"


def test_without_a_run_service_nothing_is_bounded() -> None:
    """A worker with no run queue has nowhere to keep a late answer: it waits for it."""
    made, _ = policy(None, seconds=0.2, deadline=0.01)
    response = run_async(made.chat_completion(Caller(PRINCIPAL, {}), raw(), "key"))
    assert response.status_code == 200


def test_a_call_cancelled_from_outside_cancels_its_work() -> None:
    chat = FakeChat(seconds=5)
    calls = SyncCalls(FakeRuns(), 10.0)  # type: ignore[arg-type]

    async def main() -> bool:
        work = chat.complete(None)
        task = asyncio.create_task(calls.call(Caller(PRINCIPAL, {}), "k", dict, work))
        await asyncio.sleep(0.05)
        before = {t for t in asyncio.all_tasks() if t is not task}
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        return all(t.done() for t in before if t is not asyncio.current_task())

    assert run_async(main())


def test_headers_that_reach_the_policy_are_plain_mappings() -> None:
    headers: Mapping[str, str] = {"prefer": "respond-async"}
    assert Caller.of(PRINCIPAL, headers).respond_async
