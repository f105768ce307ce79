"""The agent loop with an in-process scripted provider and tools declared here: parallel
tool calls, the step limit, a tool that raises, resuming from a checkpoint without
redoing finished work, and the person in the loop (questions, approvals, rejections)."""

from __future__ import annotations

import asyncio
import collections
import json
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel

from services.agents.base import ASK_USER, Agent, AgentEnv, Opening, PlannedCall
from services.agents.loop import AgentFailed, AgentLoop
from services.documents.embeddings import Embeddings
from services.errors import InvalidRequest
from services.models.catalogue import Catalogue, CatalogueConfig
from services.providers.base import (
    Completion,
    CompletionRequest,
    Finish,
    Message,
    Provider,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from services.providers.local import LocalProvider
from services.runs.inputs import AwaitingInput, parse_answer
from services.runs.kinds import RunContext
from services.runs.model import Run
from services.tools.base import Tool, ToolContext, ToolFailed
from services.usage.calls import ProviderCall

ROUTE = "scripted/agent"


@dataclass
class Turn:
    """One model answer: text, then tool calls (name, arguments)."""

    text: str = ""
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


class ScriptedProvider(Provider):
    """Answers each stream with the next planned turn and keeps every request."""

    name = "scripted"

    def __init__(self, *turns: Turn) -> None:
        self.turns = collections.deque(turns)
        self.requests: list[CompletionRequest] = []

    def models(self) -> list[str]:
        return ["agent"]

    async def complete(self, request: CompletionRequest) -> Completion:
        raise AssertionError("the agent loop streams")

    async def stream(self, request: CompletionRequest):  # type: ignore[override]
        self.requests.append(request)
        turn = self.turns.popleft() if self.turns else Turn(text="(no more turns)")
        events: list[StreamEvent] = []
        for word in turn.text.split(" "):
            if word:
                events.append(TextDelta(word + " "))
        for index, (name, arguments) in enumerate(turn.calls):
            text = json.dumps(arguments)
            call_id = f"call_{len(self.requests)}_{index}"
            events.append(ToolCallDelta(index, id=call_id, name=name, arguments=text[:3]))
            events.append(ToolCallDelta(index, arguments=text[3:]))
        events.append(Finish("tool_calls" if turn.calls else "stop"))
        events.append(UsageReport(Usage(10, 5)))
        for event in events:
            yield event


class Args(BaseModel):
    value: str
    seconds: float = 0.0


class Out(BaseModel):
    echoed: str


class Echo(Tool):
    name = "echo"
    description = "Echo the value, after `seconds`."
    Input = Args
    Output = Out

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def run(self, ctx: ToolContext, input: Any) -> BaseModel:
        self.calls.append(input.value)
        await asyncio.sleep(input.seconds)
        return Out(echoed=input.value)


class Boom(Tool):
    name = "boom"
    description = "Raises."
    Input = Args
    Output = Out

    async def run(self, ctx: ToolContext, input: Any) -> BaseModel:
        raise RuntimeError(f"disk on fire at {input.value}")


class Fussy(Tool):
    name = "fussy"
    description = "Fails at its work."
    Input = Args
    Output = Out

    async def run(self, ctx: ToolContext, input: Any) -> BaseModel:
        if input.value == "bad":
            raise InvalidRequest("value must not be 'bad'", param="input.value")
        raise ToolFailed(f"cannot work on {input.value}")


class Move(Tool):
    name = "move"
    description = "Moves things (needs approval)."
    Input = Args
    Output = Out

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def run(self, ctx: ToolContext, input: Any) -> BaseModel:
        self.calls.append(input.value)
        return Out(echoed=f"moved {input.value}")


class Summarizer(Tool):
    """Asks a model (its `route`), as the built-in tools do, and embeds its input."""

    name = "summarizer"
    description = "Summarizes with a model."
    Input = Args
    Output = Out
    route = "writer/m"

    async def run(self, ctx: ToolContext, input: Any) -> BaseModel:
        await ctx.embeddings.embed(None, [input.value])
        answer = await ctx.complete([Message("user", [TextPart(input.value)])], max_tokens=20)
        if input.seconds:
            raise ToolFailed("the summary came back empty")  # after its model calls
        return Out(echoed=answer.text)


class Writer(Provider):
    """The tools' model: answers `complete` with usage 7 in, 3 out."""

    name = "writer"

    def models(self) -> list[str]:
        return ["m"]

    async def complete(self, request: CompletionRequest) -> Completion:
        return Completion("a summary", "stop", Usage(7, 3))

    async def stream(self, request: CompletionRequest):  # type: ignore[override]
        raise AssertionError("tools complete")
        yield


class Calls:
    """A usage recorder: every provider call, as /v1/usage counts them."""

    def __init__(self) -> None:
        self.calls: list[ProviderCall] = []

    def record(self, call: ProviderCall) -> None:
        self.calls.append(call)


class Empty(BaseModel):
    pass


def agent(**fields: Any) -> Agent:
    values: dict[str, Any] = {
        "name": "tester",
        "description": "test agent",
        "instructions": "Use the tools.",
        "tools": ("echo", "boom", "fussy", "move", ASK_USER),
        "route": ROUTE,
        "max_steps": 6,
        "Input": Empty,
        "approval_required": frozenset({"move"}),
    }
    return Agent(**{**values, **fields})


class Crash(Exception):
    """The worker dies (raised from a checkpoint once it is saved)."""


class Events:
    def __init__(self) -> None:
        self.all: list[tuple[str, dict[str, Any]]] = []

    def emit(self, type: str, data: dict[str, Any] | None = None) -> None:
        self.all.append((type, data or {}))

    def types(self) -> list[str]:
        return [t for t, _ in self.all]

    def of(self, type: str) -> list[dict[str, Any]]:
        return [d for t, d in self.all if t == type]


class Harness:
    """One run, executed by successive 'workers' (loops) that share only the run record."""

    def __init__(self, provider: ScriptedProvider, definition: Agent | None = None) -> None:
        self.provider = provider
        self.agent = definition or agent()
        self.recorded = Calls()
        providers = {"scripted": provider, "writer": Writer(), "local": LocalProvider()}
        embedding = CatalogueConfig(embeddings={"local/embedding": 256})
        self.catalogue = Catalogue(providers, embedding, recorder=self.recorded)
        self.embeddings = Embeddings(self.catalogue, recorder=self.recorded)
        self.echo, self.move = Echo(), Move()
        self.tools: dict[str, Tool] = {
            "echo": self.echo,
            "boom": Boom(),
            "fussy": Fussy(),
            "move": self.move,
            "summarizer": Summarizer(),
        }
        now = time.time()
        self.run_record = Run("run_x", "t", "k", "agent", "running", {}, now, now)
        self.events = Events()
        self.saves = 0

    async def execute(self, *, crash_when: Any = None) -> dict[str, Any]:
        async def checkpoint(state: dict[str, Any], progress: dict[str, Any]) -> None:
            self.run_record.checkpoint = state
            self.run_record.progress = progress
            self.saves += 1
            if crash_when is not None and crash_when(state["agent"], progress):
                raise Crash

        ctx = RunContext(self.run_record, self.events, self.catalogue, checkpoint)  # type: ignore[arg-type]
        env = AgentEnv("t", "k", self.catalogue, embeddings=self.embeddings)
        return await AgentLoop(self.agent, ctx, env, tools=self.tools).run(Empty())

    def answer(self, body: dict[str, Any], pending: AwaitingInput) -> None:
        self.run_record.answer = parse_answer(pending.pending.public(), body)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_parallel_calls_run_together_and_their_results_go_back_to_the_model() -> None:
    provider = ScriptedProvider(
        Turn(
            "Looking.",
            [("echo", {"value": "a", "seconds": 0.3}), ("echo", {"value": "b", "seconds": 0.3})],
        ),
        Turn("Both are back."),
    )
    harness = Harness(provider)
    started = time.monotonic()
    result = run(harness.execute())
    assert time.monotonic() - started < 0.55  # the two 0.3 s calls overlapped
    assert result["outcome"] == "answered" and result["output"] == "Both are back. "
    assert result["usage"] == {"input_tokens": 20, "output_tokens": 10}
    assert sorted(harness.echo.calls) == ["a", "b"]
    second = provider.requests[1].messages
    assert second[0].role == "system" and second[0].text == "Use the tools."
    assistant, *tool_messages = second[-3:]
    assert [c.name for c in assistant.tool_calls] == ["echo", "echo"]
    assert [m.tool_call_id for m in tool_messages] == [c.id for c in assistant.tool_calls]
    assert [json.loads(m.text)["echoed"] for m in tool_messages] == ["a", "b"]
    assert {d.name for d in provider.requests[0].tools} == {
        "echo",
        "boom",
        "fussy",
        "move",
        ASK_USER,
    }
    types = harness.events.types()
    assert types[0] == "step.started" and "text.delta" in types
    assert [d["name"] for d in harness.events.of("tool.called")] == ["echo", "echo"]
    assert [d["output"]["echoed"] for d in harness.events.of("tool.result")] == ["a", "b"]
    assert [d["step"] for d in harness.events.of("step.completed")] == [0, 1]
    assert harness.run_record.progress["completed_steps"] == 2


def test_the_step_limit_ends_the_run_with_the_steps_taken() -> None:
    provider = ScriptedProvider(*[Turn(calls=[("echo", {"value": str(i)})]) for i in range(10)])
    harness = Harness(provider, agent(max_steps=3))
    with pytest.raises(AgentFailed) as failed:
        run(harness.execute())
    assert failed.value.code == "step_limit_reached"
    assert "limit of 3 steps" in failed.value.message
    assert len(provider.requests) == 3  # no model call beyond the limit
    assert [s["step"] for s in failed.value.result["steps"]] == [0, 1, 2]
    assert harness.echo.calls == ["0", "1", "2"]
    assert failed.value.body()["error"]["type"] == "agent_error"


def test_a_tool_that_raises_ends_the_run_with_its_message() -> None:
    provider = ScriptedProvider(
        Turn(calls=[("echo", {"value": "fine"}), ("boom", {"value": "step 0"})]),
        Turn("never asked"),
    )
    harness = Harness(provider)
    with pytest.raises(AgentFailed) as failed:
        run(harness.execute())
    assert failed.value.code == "tool_error"
    assert failed.value.message == "Tool 'boom' failed at step 0: disk on fire at step 0"
    assert len(provider.requests) == 1
    assert harness.echo.calls == ["fine"]  # the other call of the step still finished
    errors = [d for d in harness.events.of("tool.result") if "error" in d]
    assert errors[0]["name"] == "boom" and errors[0]["error"]["code"] == "tool_raised"


def test_a_tool_failing_at_its_work_ends_the_run_too() -> None:
    harness = Harness(ScriptedProvider(Turn(calls=[("fussy", {"value": "x"})])))
    with pytest.raises(AgentFailed) as failed:
        run(harness.execute())
    assert failed.value.code == "tool_error" and "cannot work on x" in failed.value.message


def test_a_call_the_model_got_wrong_goes_back_to_it() -> None:
    provider = ScriptedProvider(
        Turn(calls=[("fussy", {"value": "bad"}), ("echo", {"nope": 1}), ("teleport", {})]),
        Turn("I will stop guessing."),
    )
    harness = Harness(provider)
    result = run(harness.execute())
    assert result["outcome"] == "answered"
    replies = [json.loads(m.text) for m in provider.requests[1].messages if m.role == "tool"]
    assert [r["error"]["code"] for r in replies] == [None, "invalid_tool_input", "unknown_tool"]
    assert replies[0]["error"]["message"] == "value must not be 'bad'"
    assert replies[1]["error"]["param"] == "input.value"
    assert "not one of this agent's tools" in replies[2]["error"]["message"]


def test_a_crash_between_steps_resumes_at_the_next_step() -> None:
    provider = ScriptedProvider(
        Turn(calls=[("echo", {"value": "first"})]),
        Turn(calls=[("echo", {"value": "second"})]),
        Turn("done"),
    )
    harness = Harness(provider)
    with pytest.raises(Crash):
        run(harness.execute(crash_when=lambda s, p: p["completed_steps"] == 1))
    before = len(harness.events.all)
    result = run(harness.execute())
    assert result["output"] == "done "
    assert harness.echo.calls == ["first", "second"]  # nothing done twice
    assert len(provider.requests) == 3
    resumed = harness.events.all[before:]
    assert [d["step"] for t, d in resumed if t == "step.started"] == [1, 2]
    assert [s["step"] for s in result["steps"]] == [0, 1, 2]


def test_a_crash_inside_a_step_redoes_neither_the_model_call_nor_finished_tools() -> None:
    provider = ScriptedProvider(
        Turn(calls=[("echo", {"value": "quick"}), ("echo", {"value": "slow", "seconds": 0.2})]),
        Turn("done"),
    )
    harness = Harness(provider)

    def after_the_quick_call(state: dict[str, Any], progress: dict[str, Any]) -> bool:
        current = state["current"]
        return current is not None and any(c.get("output") for c in current["calls"])

    with pytest.raises(Crash):
        run(harness.execute(crash_when=after_the_quick_call))
    assert harness.echo.calls == ["quick", "slow"]  # 'slow' was cut short by the crash
    before = len(harness.events.all)
    result = run(harness.execute())
    assert harness.echo.calls == ["quick", "slow", "slow"]  # only the unfinished call again
    assert len(provider.requests) == 2  # step 0's model call was not asked again
    assert harness.events.all[before] == (
        "step.started",
        {"step": 0, "planned": False, "resumed": True},
    )
    assert [c["output"]["echoed"] for c in result["steps"][0]["calls"]] == ["quick", "slow"]


def test_approval_with_a_change_request_then_approval_runs_the_revised_call_once() -> None:
    provider = ScriptedProvider(
        Turn("Proposal A.", [("move", {"value": "plan A"})]),
        Turn("Proposal B.", [("move", {"value": "plan B"})]),
        Turn("Moved per plan B."),
    )
    harness = Harness(provider)
    with pytest.raises(AwaitingInput) as first:
        run(harness.execute())
    pending = first.value.pending.public()
    assert pending["type"] == "approval" and pending["detail"]["arguments"] == {"value": "plan A"}
    assert harness.move.calls == []
    harness.answer({"approve": False, "feedback": "Put the cats apart."}, first.value)
    with pytest.raises(AwaitingInput) as second:
        run(harness.execute())
    assert second.value.pending.detail["arguments"] == {"value": "plan B"}
    feedback = [json.loads(m.text) for m in provider.requests[1].messages if m.role == "tool"]
    assert feedback[-1]["error"]["code"] == "changes_requested"
    assert "Put the cats apart." in feedback[-1]["error"]["message"]
    harness.answer({"approve": True}, second.value)
    result = run(harness.execute())
    assert harness.move.calls == ["plan B"]
    assert result["outcome"] == "answered" and result["output"] == "Moved per plan B. "
    assert harness.events.of("approval.granted")


def test_a_rejection_runs_nothing_and_ends_the_run() -> None:
    provider = ScriptedProvider(Turn(calls=[("move", {"value": "all"}), ("echo", {"value": "e"})]))
    harness = Harness(provider)
    with pytest.raises(AwaitingInput) as waiting:
        run(harness.execute())
    assert harness.echo.calls == ["e"]  # calls that need nobody's approval ran meanwhile
    harness.answer({"approve": False}, waiting.value)
    result = run(harness.execute())
    assert result["outcome"] == "rejected" and harness.move.calls == []
    assert len(provider.requests) == 1  # the model was not asked again
    assert "nothing was done" in result["output"]


def test_a_question_waits_for_the_answer_and_gives_it_to_the_model() -> None:
    provider = ScriptedProvider(
        Turn(calls=[(ASK_USER, {"question": "Which colour?", "options": ["red", "blue"]})]),
        Turn("Blue it is."),
    )
    harness = Harness(provider)
    with pytest.raises(AwaitingInput) as waiting:
        run(harness.execute())
    assert waiting.value.pending.public()["options"] == ["red", "blue"]
    with pytest.raises(Exception) as wrong_shape:
        parse_answer(waiting.value.pending.public(), {"approve": True})
    assert getattr(wrong_shape.value, "param", None) == "approve"
    # An answer meant for another question (a stale one) does not count: it waits again.
    harness.run_record.answer = {"to": "call_other", "type": "question", "input": "red"}
    with pytest.raises(AwaitingInput):
        run(harness.execute())
    harness.answer({"input": "blue"}, waiting.value)
    result = run(harness.execute())
    assert result["output"] == "Blue it is. "
    told = [m for m in provider.requests[1].messages if m.role == "tool"]
    assert json.loads(told[0].text) == {"answer": "blue"}


def test_declared_steps_run_through_the_loop_and_may_need_no_model() -> None:
    async def opening(input: Any, env: AgentEnv) -> Opening:
        return Opening(
            [Message("user", [TextPart("go")])],
            plan=[[PlannedCall("echo", {"value": "one"})], [PlannedCall("echo", {"value": "two"})]],
        )

    provider = ScriptedProvider()
    harness = Harness(provider, agent(opening=opening, model_after_plan=False, max_steps=2))
    result = run(harness.execute())
    assert result["outcome"] == "planned" and provider.requests == []
    assert harness.echo.calls == ["one", "two"]
    assert [d["planned"] for d in harness.events.of("step.started")] == [True, True]


def test_an_error_in_a_declared_step_ends_the_run() -> None:
    async def opening(input: Any, env: AgentEnv) -> Opening:
        return Opening([], plan=[[PlannedCall("fussy", {"value": "bad"})]])

    harness = Harness(ScriptedProvider(), agent(opening=opening))
    with pytest.raises(AgentFailed) as failed:
        run(harness.execute())
    assert failed.value.code == "tool_error" and "value must not be 'bad'" in failed.value.message


def test_the_runs_usage_adds_up_every_model_call_its_tools_made() -> None:
    """`result.usage` is what /v1/usage counts for the run: the agent's steps, and the model
    calls and embeddings of its tools (those of a tool that then failed included)."""
    provider = ScriptedProvider(
        Turn("Summarizing.", [("summarizer", {"value": "tides and turbines"})]),
        Turn("Again.", [("summarizer", {"value": "wind", "seconds": 1})]),  # fails at its work
    )
    harness = Harness(provider, agent(tools=("summarizer", "echo"), approval_required=frozenset()))
    with pytest.raises(AgentFailed) as failed:
        run(harness.execute())
    result = failed.value.result
    recorded = [c.usage for c in harness.recorded.calls if c.usage is not None]
    assert len(recorded) == 6  # 2 agent steps; 2 tool calls x (1 embedding + 1 completion)
    assert result["usage"] == {
        "input_tokens": sum(u.input_tokens for u in recorded),
        "output_tokens": sum(u.output_tokens for u in recorded),
    }
    # 2 x (10, 5) for the steps, 2 x (7, 3) for the tools' completions, plus the embeddings.
    assert result["usage"]["output_tokens"] == 16 and result["usage"]["input_tokens"] > 34
    assert result["models"] == ["scripted/agent", "local/embedding", "writer/m"]


def test_tool_usage_survives_a_takeover() -> None:
    provider = ScriptedProvider(
        Turn("Summarizing.", [("summarizer", {"value": "tides"}), ("echo", {"value": "x"})]),
        Turn("Done."),
    )
    harness = Harness(provider, agent(tools=("summarizer", "echo"), approval_required=frozenset()))
    with pytest.raises(Crash):  # dies once the summarizer's result is saved
        run(harness.execute(crash_when=lambda state, _: _finished(state, "summarizer")))
    result = run(harness.execute())
    tokens = [c.usage for c in harness.recorded.calls if c.usage is not None]
    assert result["usage"]["output_tokens"] == sum(u.output_tokens for u in tokens) == 5 + 3 + 5
    assert result["usage"]["input_tokens"] == sum(u.input_tokens for u in tokens)


def _finished(state: dict[str, Any], name: str) -> bool:
    current = state.get("current") or {}
    return any(c["name"] == name and c["status"] == "done" for c in current.get("calls", []))
