"""What a run can do. Each kind validates its input when the run is created and executes
it on the worker that owns the run, emitting events and checkpoints as it goes.

- `chat.completion`: one chat completion (the chat completions request body as `input`).
  Text arrives as `text.delta` events; the result is the `chat.completion` object. On a
  takeover it restarts.
- `pipeline`: up to `MAX_STEPS` chat completions in order (`input.steps`). A step's
  messages may quote an earlier step's output as `{{steps[N].output}}`. Each finished step
  is a checkpoint: on a takeover the pipeline continues at the first unfinished step.
- `agent`: one run of a declared agent (see services.agents.kind and services.agents.loop).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from services.agents.kind import AgentKind
from services.errors import APIError, InvalidRequest
from services.models.catalogue import Catalogue
from services.providers.base import (
    Completion,
    Finish,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from services.runs.events import EventLog
from services.runs.model import Run
from services.usage.context import Tally, counting
from services.wire.openai import (
    ChatCompletionRequest,
    completion_json,
    new_completion_id,
    parse_chat_request,
    to_canonical,
)

MAX_STEPS = 20
_REFERENCE = re.compile(r"\{\{\s*steps\[(\d+)\]\.output\s*\}\}")

Checkpoint = Callable[[dict[str, Any], dict[str, Any]], Awaitable[None]]


@dataclass
class RunContext:
    run: Run
    log: EventLog
    catalogue: Catalogue
    checkpoint: Checkpoint
    # What tools may use (services.documents.store.DocumentStore and
    # services.documents.embeddings.Embeddings).
    documents: Any = None
    embeddings: Any = None
    conversations: Any = None  # services.conversations.store.ConversationStore


class Kind(Protocol):
    name: str

    def validate(self, input: Any, catalogue: Catalogue) -> None:
        """Raise `InvalidRequest` naming the bad field (`input.<...>`)."""

    async def execute(self, ctx: RunContext) -> Any:
        """Do the work from `ctx.run.checkpoint` on and return the result."""


def _chat(body: Any, param: str, catalogue: Catalogue) -> ChatCompletionRequest:
    try:
        chat = parse_chat_request(body)
    except InvalidRequest as exc:
        exc.param = f"{param}.{exc.param}" if exc.param else param
        raise
    if chat.stream:
        raise InvalidRequest(
            "A run streams through its events: leave 'stream' out of its input.",
            param=f"{param}.stream",
            code="invalid_value",
        )
    try:
        catalogue.resolve(chat.model)
    except APIError as exc:
        exc.param = f"{param}.model"
        raise
    return chat


async def complete(
    catalogue: Catalogue, chat: ChatCompletionRequest, log: EventLog, **tags: Any
) -> dict[str, Any]:
    """One chat completion through the provider's stream, its text emitted as it comes."""
    route = catalogue.resolve(chat.model)
    text: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    usage, stop = Usage(), "stop"
    with counting(Tally()) as tally:
        async for event in route.provider.stream(to_canonical(chat, route.model)):
            if isinstance(event, TextDelta):
                text.append(event.text)
                log.emit("text.delta", {"content": event.text, **tags})
            elif isinstance(event, ToolCallDelta):
                call = calls.setdefault(event.index, {"id": "", "name": "", "arguments": ""})
                call["id"] = event.id or call["id"]
                call["name"] = event.name or call["name"]
                call["arguments"] += event.arguments
            elif isinstance(event, Finish):
                stop = event.stop_reason
            elif isinstance(event, UsageReport):
                usage = usage + event.usage
    completion = Completion(
        text="".join(text),
        stop_reason=stop,  # type: ignore[arg-type]
        usage=usage,
        tool_calls=[ToolCall(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())],
    )
    model = tally.model or route.public_name  # the model that answered, not the route
    return completion_json(completion, id=new_completion_id(), model=model)


class ChatCompletionKind:
    name = "chat.completion"

    def validate(self, input: Any, catalogue: Catalogue) -> None:
        _chat(input, "input", catalogue)

    async def execute(self, ctx: RunContext) -> Any:
        chat = parse_chat_request(ctx.run.input)
        return await complete(ctx.catalogue, chat, ctx.log)


class PipelineKind:
    name = "pipeline"

    def validate(self, input: Any, catalogue: Catalogue) -> None:
        steps = input.get("steps") if isinstance(input, dict) else None
        if not isinstance(input, dict) or set(input) - {"steps"}:
            raise InvalidRequest(
                'A pipeline\'s input is {"steps": [...]}.', param="input", code="invalid_value"
            )
        if not isinstance(steps, list) or not 1 <= len(steps) <= MAX_STEPS:
            raise InvalidRequest(
                f"'steps' must be a list of 1 to {MAX_STEPS} chat completion requests.",
                param="input.steps",
                code="invalid_value",
            )
        for index, step in enumerate(steps):
            _chat(step, f"input.steps[{index}]", catalogue)
            for ref in _REFERENCE.findall(str(step.get("messages"))):
                if int(ref) >= index:
                    raise InvalidRequest(
                        f"Step {index} quotes steps[{ref}], which has not run yet.",
                        param=f"input.steps[{index}].messages",
                        code="invalid_value",
                    )

    async def execute(self, ctx: RunContext) -> Any:
        steps: list[dict[str, Any]] = ctx.run.input["steps"]
        outputs: list[str] = list(ctx.run.checkpoint.get("outputs", []))
        results: list[Any] = list(ctx.run.checkpoint.get("results", []))
        for index in range(len(outputs), len(steps)):
            ctx.log.emit("step.started", {"step": index})
            chat = parse_chat_request(_quote(steps[index], outputs))
            result = await complete(ctx.catalogue, chat, ctx.log, step=index)
            outputs.append(result["choices"][0]["message"]["content"] or "")
            results.append(result)
            ctx.log.emit("step.completed", {"step": index, "output": outputs[-1]})
            await ctx.checkpoint(
                {"outputs": outputs, "results": results},
                {"completed_steps": len(outputs), "total_steps": len(steps)},
            )
        return {"steps": results, "output": outputs[-1]}


def _quote(step: dict[str, Any], outputs: list[str]) -> dict[str, Any]:
    def replace(value: Any) -> Any:
        if isinstance(value, str):
            return _REFERENCE.sub(lambda m: outputs[int(m.group(1))], value)
        if isinstance(value, list):
            return [replace(v) for v in value]
        if isinstance(value, dict):
            return {k: replace(v) for k, v in value.items()}
        return value

    return {**step, "messages": replace(step["messages"])}


KINDS: dict[str, Kind] = {k.name: k for k in (ChatCompletionKind(), PipelineKind(), AgentKind())}
