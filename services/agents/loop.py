"""The one agent loop: it runs every agent declaration.

A run of an agent is a sequence of *steps*. A step is either a declared step (tool calls
from the agent's plan) or a model call (streamed: its text goes out as `text.delta`
events) together with the tool calls the model asked for. The calls of one step run in
parallel (`asyncio.gather`); their results go back to the model as tool messages, and
the loop goes on until the model answers without calling a tool (or, for a plan-only
agent, the plan is done).

Checkpoints. The run's checkpoint holds the messages so far, the finished steps and the
step in progress. The loop saves it when a model call has answered, when each tool call
finishes, and when a step completes, so a worker that takes the run over resumes at the
step in progress and never redoes a finished model call or tool call.

Accounting. `result.usage` adds up every model call the run made: the agent's own steps
and every call its tools made (their model calls and embeddings), as `/v1/usage` counts
them; `result.models` names each model that answered, in order.

Ending. Every end is clean, with its reason in the run:
- the model answers: the run succeeds with the agent's result;
- `max_steps` steps have run and the model still calls tools: the run fails with code
  `step_limit_reached`, the finished steps in its result;
- a tool fails at its work (a `ToolFailed`, a provider error, an unexpected exception):
  the run fails with code `tool_error` and the tool's message. A call the model got wrong
  (unknown tool, arguments that are not JSON or not valid for the tool, an id that does
  not exist: a 400 or 404) is not the tool failing: the error goes back to the model as
  the call's result, so it can correct itself. In a declared step nobody chose the
  arguments, so every error there ends the run.

People. `ask_user` and every tool in `approval_required` wait for a person: the loop saves
the step in progress and raises `AwaitingInput`; the run's owner parks it (see
services/runs/inputs.py). The answer comes back in `Run.answer`. An approval with
`approve: false` and feedback is a change request: the call is not run, and the feedback
goes to the model, which may propose again. Without feedback it is a rejection: nothing
the call guarded is done and the run ends (it succeeds with outcome `rejected`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from services.agents.actions import ACTIONS, ASK_USER_DEFINITION, AskUserInput
from services.agents.base import ASK_USER, Agent, AgentEnv, Outcome, OutcomeStatus
from services.conversations.store import message_from_json, message_to_json
from services.errors import APIError, InvalidRequest, NotFound
from services.providers.base import (
    CompletionRequest,
    Message,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolDefinition,
)
from services.runs.inputs import AwaitingInput, PendingInput
from services.tools import registry
from services.tools.base import Tool, ToolContext
from services.usage.context import Tally, counting

if TYPE_CHECKING:
    from services.runs.kinds import RunContext

# Longest string kept from a tool's output in the run (messages, steps, result): the
# checkpoint lives in one DynamoDB item (400 KB).
MAX_KEPT_CHARS = 8_000


class AgentFailed(APIError):
    """The agent could not finish. `result` holds what it did before it stopped."""

    status = 422
    type = "agent_error"

    def __init__(self, message: str, *, code: str, result: dict[str, Any]) -> None:
        super().__init__(message, code=code)
        self.result = result


@dataclass
class AgentState:
    """What the checkpoint holds (as JSON)."""

    messages: list[dict[str, Any]]
    plan: list[list[dict[str, Any]]]
    context: dict[str, Any]
    planned_done: int = 0
    steps: list[dict[str, Any]] = field(default_factory=list)
    current: dict[str, Any] | None = None
    outcome: str | None = None
    output: str = ""
    usage: dict[str, int] = field(default_factory=lambda: {"input_tokens": 0, "output_tokens": 0})
    result: dict[str, Any] | None = None
    models: list[str] = field(default_factory=list)  # that answered, each once, in order

    def count(self, tally: Tally) -> None:
        """Add what the calls counted in `tally` used, and the models that answered them."""
        self.usage = {
            "input_tokens": self.usage["input_tokens"] + tally.usage.input_tokens,
            "output_tokens": self.usage["output_tokens"] + tally.usage.output_tokens,
        }
        self.models += [m for m in tally.models if m not in self.models]

    @classmethod
    def load(cls, data: dict[str, Any]) -> AgentState | None:
        return cls(**data["agent"]) if "agent" in data else None

    def dump(self) -> dict[str, Any]:
        return {"agent": asdict(self)}


class AgentLoop:
    """Runs `agent` inside the run of `ctx`. `tools` (name to tool) replaces where tools
    are found (the agent actions, then the registry); `route` and `max_steps` override
    the declaration's (a run may lower the step limit, not raise it)."""

    def __init__(
        self,
        agent: Agent,
        ctx: RunContext,
        env: AgentEnv,
        *,
        tools: Mapping[str, Tool] | None = None,
        route: str | None = None,
        max_steps: int | None = None,
    ) -> None:
        self.agent = agent
        self.ctx = ctx
        self.env = env
        self.route = route or agent.route
        self.max_steps = min(max_steps or agent.max_steps, agent.max_steps)
        self._tools = tools
        self._saving = asyncio.Lock()
        self.state = AgentState(messages=[], plan=[], context={})

    # -- the loop ----------------------------------------------------------------------

    async def run(self, input: BaseModel) -> dict[str, Any]:
        loaded = AgentState.load(self.ctx.run.checkpoint)
        if loaded is None:
            opening = await self.agent.opening(input, self.env)
            self.state = AgentState(
                messages=[message_to_json(m) for m in opening.messages],
                plan=[[asdict(c) for c in step] for step in opening.plan],
                context=dict(opening.context),
            )
        else:
            self.state = loaded
        state = self.state
        if state.result is not None:
            return state.result
        if state.current is not None:
            current = state.current
            self.ctx.log.emit(
                "step.started",
                {"step": current["step"], "planned": current["planned"], "resumed": True},
            )
        while state.outcome is None:
            if state.current is None:
                if state.planned_done < len(state.plan):
                    self._begin_planned_step()
                elif not self.agent.model_after_plan:
                    state.outcome = "planned"
                    break
                else:
                    await self._model_step()
                    continue
            await self._run_step()
        return await self._conclude()

    def _begin_planned_step(self) -> None:
        state = self.state
        index = len(state.steps)
        self._check_limit(index)
        calls = [
            {"id": f"plan_{index}_{n}", "name": c["tool"], "arguments": json.dumps(c["arguments"])}
            for n, c in enumerate(state.plan[state.planned_done])
        ]
        self.ctx.log.emit("step.started", {"step": index, "planned": True})
        state.current = self._new_step(index, planned=True, text="", calls=calls)

    async def _model_step(self) -> None:
        state = self.state
        index = len(state.steps)
        self._check_limit(index)
        self.ctx.log.emit("step.started", {"step": index, "planned": False})
        with counting(Tally()) as tally:
            text, calls = await self._call_model(index)
        state.count(tally)
        if not calls:
            state.messages.append(message_to_json(Message("assistant", [TextPart(text)])))
            state.steps.append({"step": index, "planned": False, "text": text, "calls": []})
            state.output, state.outcome = text, "answered"
            self.ctx.log.emit("step.completed", {"step": index, "tools": [], "text": text})
            await self._save()
            return
        state.current = self._new_step(index, planned=False, text=text, calls=calls)
        await self._save()  # the model's answer is not asked for twice
        await self._run_step()

    def _new_step(
        self, index: int, *, planned: bool, text: str, calls: list[dict[str, Any]]
    ) -> dict[str, Any]:
        records: list[dict[str, Any]] = []
        for n, call in enumerate(calls):
            call_id = call["id"] or f"call_{index}_{n}"
            record = {"id": call_id, "name": call["name"], "arguments": call["arguments"]}
            record["status"] = "pending"
            self.ctx.log.emit(
                "tool.called",
                {"step": index, "id": call_id, "name": call["name"], "arguments": _args(call)},
            )
            self._check_call(record, index, planned=planned)
            records.append(record)
        return {"step": index, "planned": planned, "text": text, "calls": records, "waiting": None}

    async def _run_step(self) -> None:
        step = self.state.current
        assert step is not None
        if step["waiting"] is not None:
            self._take_answer(step)
        runnable = [c for c in step["calls"] if c["status"] == "approved"]
        runnable += [
            c for c in step["calls"] if c["status"] == "pending" and not self._gated(c["name"])
        ]
        if runnable:
            await asyncio.gather(*(self._invoke(step, c) for c in runnable))
        failed = next((c for c in step["calls"] if c.get("fatal")), None)
        if failed is not None:
            await self._save()
            raise self._failure(
                "tool_error",
                f"Tool '{failed['name']}' failed at step {step['step']}: "
                f"{failed['error']['message']}",
            )
        waiting = next((c for c in step["calls"] if c["status"] == "pending"), None)
        if waiting is not None:
            step["waiting"] = waiting["id"]
            await self._save()
            raise AwaitingInput(self._pending(waiting))
        self._complete_step(step)
        await self._save()

    def _complete_step(self, step: dict[str, Any]) -> None:
        state = self.state
        calls = step["calls"]
        assistant = Message(
            "assistant",
            [TextPart(step["text"])] if step["text"] else [],
            tool_calls=[ToolCall(c["id"], c["name"], c["arguments"]) for c in calls],
        )
        state.messages.append(message_to_json(assistant))
        for call in calls:
            content = call["output"] if "output" in call else {"error": call["error"]}
            state.messages.append(
                message_to_json(
                    Message("tool", [TextPart(json.dumps(content))], tool_call_id=call["id"])
                )
            )
        kept = {"step": step["step"], "planned": step["planned"], "text": step["text"]}
        kept["calls"] = [
            {k: c[k] for k in ("id", "name", "arguments", "output", "error") if k in c}
            for c in calls
        ]
        state.steps.append(kept)
        state.current = None
        if step["planned"]:
            state.planned_done += 1
        if any(c.get("error", {}).get("code") == "rejected" for c in calls):
            state.outcome = "rejected"
            state.output = "The user rejected the proposal; nothing was done."
        self.ctx.log.emit(
            "step.completed", {"step": step["step"], "tools": [c["name"] for c in calls]}
        )

    async def _conclude(self) -> dict[str, Any]:
        state = self.state
        status: OutcomeStatus = "rejected" if state.outcome == "rejected" else "answered"
        if state.outcome == "planned":
            status = "planned"
        outcome = Outcome(status, state.output, state.steps, state.context)
        result = await self.agent.conclude(outcome, self.env)
        state.result = {
            "agent": self.agent.name,
            **result,
            "usage": state.usage,
            "models": state.models,
        }
        await self._save()
        return state.result

    # -- tools -------------------------------------------------------------------------

    def tool(self, name: str) -> Tool:
        if self._tools is not None:
            found = self._tools.get(name)
            if found is None:
                raise NotFound(f"There is no tool named '{name}'.", code="tool_not_found")
            return found
        return ACTIONS.get(name) or registry.get(name)

    def definitions(self) -> list[ToolDefinition]:
        return [
            ASK_USER_DEFINITION if name == ASK_USER else self.tool(name).definition()
            for name in self.agent.tools
        ]

    def _gated(self, name: str) -> bool:
        return name == ASK_USER or name in self.agent.approval_required

    def _check_call(self, call: dict[str, Any], index: int, *, planned: bool) -> None:
        """Settle at once a call that cannot run: not one of the agent's tools, or
        arguments that are not valid for it."""
        try:
            if call["name"] not in self.agent.tools:
                raise InvalidRequest(
                    f"'{call['name']}' is not one of this agent's tools: "
                    f"{', '.join(self.agent.tools)}.",
                    code="unknown_tool",
                )
            arguments = json.loads(call["arguments"] or "{}")
            if call["name"] == ASK_USER:
                AskUserInput.model_validate(arguments)
            else:
                self.tool(call["name"]).parse_input(arguments)
        except (ValueError, ValidationError, APIError) as exc:
            call.update(status="done", error=_error_of(exc), fatal=planned)
            self._emit_result(index, call)

    async def _invoke(self, step: dict[str, Any], call: dict[str, Any]) -> None:
        name = call["name"]
        tool = self.tool(name)
        context = ToolContext(
            tenant_id=self.env.tenant_id,
            key_id=self.env.key_id,
            catalogue=self.env.catalogue,
            route=tool.route,
            documents=self.env.documents,
            embeddings=self.env.embeddings,
            emit=lambda type, data: self._emit(type, {**data, "step": step["step"]}),
        )
        try:
            output = await tool.invoke(context, json.loads(call["arguments"] or "{}"))
        except (InvalidRequest, NotFound) as exc:
            call.update(status="done", error=_error_of(exc))
            call["fatal"] = step["planned"]  # nobody chose a declared step's arguments
        except APIError as exc:
            call.update(status="done", error=_error_of(exc), fatal=True)
        except Exception as exc:
            message = str(exc) or type(exc).__name__
            error = {"message": message, "type": "tool_error", "code": "tool_raised"}
            call.update(status="done", error=error, fatal=True)
        else:
            call.update(status="done", output=_clip(output))
        finally:
            self.state.count(context.tally)  # what the tool's model calls used, even if it failed
        self._emit_result(step["step"], call)
        await self._save()

    def _emit(self, type: str, data: dict[str, Any]) -> None:
        self.ctx.log.emit(type, data)

    def _emit_result(self, step: int, call: dict[str, Any]) -> None:
        data: dict[str, Any] = {"step": step, "id": call["id"], "name": call["name"]}
        if "output" in call:
            data["output"] = call["output"]
        else:
            data["error"] = call["error"]
        self.ctx.log.emit("tool.result", data)

    # -- people ------------------------------------------------------------------------

    def _pending(self, call: dict[str, Any]) -> PendingInput:
        arguments = json.loads(call["arguments"] or "{}")
        if call["name"] == ASK_USER:
            asked = AskUserInput.model_validate(arguments)
            return PendingInput("question", asked.question, call["id"], list(asked.options))
        return PendingInput(
            "approval",
            self.agent.describe(call["name"], arguments, self.state.context),
            call["id"],
            ["approve", "reject"],
            {"tool": call["name"], "arguments": arguments},
        )

    def _take_answer(self, step: dict[str, Any]) -> None:
        call = next(c for c in step["calls"] if c["id"] == step["waiting"])
        answer = self.ctx.run.answer
        if not answer or answer.get("to") != call["id"]:
            # Taken over between saving the step and parking the run: park it again.
            raise AwaitingInput(self._pending(call))
        step["waiting"] = None
        if call["name"] == ASK_USER:
            call.update(status="done", output={"answer": answer["input"]})
        elif answer.get("approve"):
            call["status"] = "approved"
            self.ctx.log.emit("approval.granted", {"step": step["step"], "id": call["id"]})
            return
        elif answer.get("feedback"):
            message = (
                f"The user did not approve this call and asked for changes: {answer['feedback']}"
            )
            call.update(
                status="done",
                error={"message": message, "type": "not_approved", "code": "changes_requested"},
            )
        else:
            message = "The user rejected this call; it was not run."
            call.update(
                status="done",
                error={"message": message, "type": "not_approved", "code": "rejected"},
            )
            for other in step["calls"]:
                if other["status"] == "pending":
                    other.update(
                        status="done",
                        error={
                            "message": "Not run: the user rejected another call of this step.",
                            "type": "not_approved",
                            "code": "rejected",
                        },
                    )
                    self._emit_result(step["step"], other)
        self._emit_result(step["step"], call)

    # -- the model ---------------------------------------------------------------------

    async def _call_model(self, index: int) -> tuple[str, list[dict[str, Any]]]:
        target = self.env.catalogue.resolve(self.route)
        messages = [Message("system", [TextPart(self.agent.instructions)])]
        messages += [message_from_json(m) for m in self.state.messages]
        request = CompletionRequest(
            model=target.model,
            messages=messages,
            max_tokens=self.agent.max_tokens,
            tools=self.definitions(),
            user=self.env.tenant_id,
        )
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        async for event in target.provider.stream(request):
            if isinstance(event, TextDelta):
                text.append(event.text)
                self.ctx.log.emit("text.delta", {"content": event.text, "step": index})
            elif isinstance(event, ToolCallDelta):
                call = calls.setdefault(event.index, {"id": "", "name": "", "arguments": ""})
                call["id"] = event.id or call["id"]
                call["name"] = event.name or call["name"]
                call["arguments"] += event.arguments
        return "".join(text), [c for _, c in sorted(calls.items())]

    # -- bookkeeping -------------------------------------------------------------------

    def _check_limit(self, index: int) -> None:
        if index >= self.max_steps:
            raise self._failure(
                "step_limit_reached",
                f"Agent '{self.agent.name}' reached its limit of {self.max_steps} steps "
                "without finishing; the steps it took are in the run's result.",
            )

    def _failure(self, code: str, message: str) -> AgentFailed:
        state = self.state
        result = {
            "agent": self.agent.name,
            "outcome": "failed",
            "output": "",
            "steps": state.steps,
            "usage": state.usage,
            "models": state.models,
        }
        return AgentFailed(message, code=code, result=result)

    async def _save(self) -> None:
        async with self._saving:
            state = self.state
            progress = {
                "completed_steps": len(state.steps),
                "max_steps": self.max_steps,
                "tools": [[c["name"] for c in s["calls"]] for s in state.steps],
            }
            if state.current is not None:
                progress["current_step"] = state.current["step"]
            await self.ctx.checkpoint(json.loads(json.dumps(state.dump())), progress)


def _args(call: dict[str, Any]) -> Any:
    with contextlib.suppress(ValueError):
        return json.loads(call["arguments"] or "{}")
    return call["arguments"]


def _error_of(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, APIError):
        body = exc.body()["error"]
        return {k: body[k] for k in ("message", "type", "param", "code")}
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "arguments"
        return {
            "message": f"Invalid arguments: {where}: {first['msg']}.",
            "type": "invalid_request_error",
            "param": where,
            "code": "invalid_tool_input",
        }
    return {
        "message": f"The arguments are not valid JSON: {exc}.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_json",
    }


def _clip(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_KEPT_CHARS:
        return value[:MAX_KEPT_CHARS] + f"… [{len(value) - MAX_KEPT_CHARS} more characters]"
    if isinstance(value, list):
        return [_clip(v) for v in value]
    if isinstance(value, dict):
        return {k: _clip(v) for k, v in value.items()}
    return value
