"""The tool port: a single-purpose AI function with a declared input, output, route and limits.

A tool is one module in `services/tools/` that defines `TOOL`, an instance of a `Tool`
subclass. The registry (`services.tools.registry`) finds every such module, so adding a
tool is adding one file. The same declaration serves three callers:

- `GET /v1/tools` lists each tool with its input and output JSON Schema;
- `POST /v1/tools/{name}` runs one synchronously (`invoke` validates input and output);
- an agent offers it to the model as a function-call tool (`definition`).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError

from services.errors import APIError, InvalidRequest
from services.errors import ToolFailed as ToolFailed  # the tools' own error, defined low
from services.providers.base import (
    Completion,
    CompletionRequest,
    Message,
    ToolDefinition,
    Usage,
)
from services.usage.context import Tally, counting


class ToolTimedOut(APIError):
    """The tool did not finish within its `timeout_seconds`."""

    status = 504
    type = "timeout"
    code = "tool_timeout"


@dataclass(frozen=True, slots=True)
class ToolLimits:
    """Named limits a tool enforces; shown in `GET /v1/tools`."""

    max_input_chars: int = 200_000  # of text read (inline or from documents)
    max_output_tokens: int = 1024  # per model call
    timeout_seconds: float = 120.0
    max_image_bytes: int | None = None  # tools that read an image

    def public(self) -> dict[str, Any]:
        limits: dict[str, Any] = {
            "max_input_chars": self.max_input_chars,
            "max_output_tokens": self.max_output_tokens,
            "timeout_seconds": self.timeout_seconds,
        }
        if self.max_image_bytes is not None:
            limits["max_image_bytes"] = self.max_image_bytes
        return limits


@dataclass(slots=True)
class ToolContext:
    """What a tool may use. Built per call by the worker (or the agent loop).

    - `tenant_id`/`key_id`: the caller; every document access is scoped to `tenant_id`.
    - `catalogue`: resolve `route` (or the caller's override) to a provider; usage is
      accounted per provider call by the router, not by the tool.
    - `documents`: the tenant's document store (`services.documents.store.DocumentStore`).
    - `embeddings`: the embeddings service (`services.documents.embeddings`), for `suggest_related`.
    - `emit`: progress events (`tool.progress`), a no-op outside a run.
    - `usage`/`model_calls`: what `complete` has spent so far in this context.
    - `tally`: every model call of the tool (its `complete` calls and its embeddings),
      counted while `Tool.invoke` runs it: the models that answered and their usage.
    """

    tenant_id: str
    key_id: str
    catalogue: Any
    route: str
    documents: Any = None
    embeddings: Any = None
    emit: Callable[[str, dict[str, Any]], None] = field(default=lambda _type, _data: None)
    usage: Usage = field(default_factory=Usage)
    model_calls: int = 0
    tally: Tally = field(default_factory=Tally)

    async def complete(
        self, messages: list[Message], *, max_tokens: int, temperature: float | None = None
    ) -> Completion:
        """One model call on `route`, through the router (retries, fallback, timeouts);
        its usage is added to `usage`. Provider failures are raised as they are."""
        target = self.catalogue.resolve(self.route)
        with counting(self.tally):
            completion: Completion = await target.provider.complete(
                CompletionRequest(
                    model=target.model,
                    messages=messages,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    user=self.tenant_id,
                )
            )
        self.usage = self.usage + completion.usage
        self.model_calls += 1
        return completion


class Tool(ABC):
    """Subclasses set the class attributes and implement `run`."""

    name: ClassVar[str]
    description: ClassVar[str]
    Input: ClassVar[type[BaseModel]]
    Output: ClassVar[type[BaseModel]]
    route: ClassVar[str] = "fast"  # the model route used unless the caller names another
    uses_model: ClassVar[bool] = True  # False: `route` is unused and no override is taken
    limits: ClassVar[ToolLimits] = ToolLimits()

    @abstractmethod
    async def run(self, ctx: ToolContext, input: Any) -> BaseModel:
        """Do the work. Raise `ToolFailed` (or another `APIError`) with a clear message."""

    def public(self) -> dict[str, Any]:
        """The tool as `GET /v1/tools` shows it."""
        return {
            "object": "tool",
            "name": self.name,
            "description": self.description,
            "route": self.route if self.uses_model else None,
            "limits": self.limits.public(),
            "input_schema": self.Input.model_json_schema(),
            "output_schema": self.Output.model_json_schema(),
        }

    def definition(self) -> ToolDefinition:
        """The tool as a function a model may call: its input schema with every `$ref`
        inlined (an object with `properties` and no `$defs`), which OpenAI, Anthropic and
        Bedrock all accept."""
        return ToolDefinition(
            self.name, self.description, inline_refs(self.Input.model_json_schema())
        )

    def parse_input(self, raw: Any) -> BaseModel:
        """`raw` as `Input`, or a 400 naming the first bad field (`input.<path>`).

        A model-level check (one of two fields required) names its field by raising a
        `PydanticCustomError` whose context has `field`."""
        try:
            return self.Input.model_validate(raw)
        except ValidationError as exc:
            error = exc.errors()[0]
            loc = list(error["loc"])
            named = (error.get("ctx") or {}).get("field")
            if isinstance(named, str):
                loc.append(named)
            path = ".".join(str(p) for p in loc)
            raise InvalidRequest(
                f"Invalid input for tool '{self.name}': {path or 'input'}: {error['msg']}.",
                param=f"input.{path}" if path else "input",
                code="invalid_tool_input",
            ) from None

    async def invoke(self, ctx: ToolContext, raw: Any) -> dict[str, Any]:
        """Validate `raw`, run within `limits.timeout_seconds` (else `ToolTimedOut`), and
        validate what the tool produced (else `ToolFailed`). Its model calls are counted
        in `ctx.tally`."""
        parsed = self.parse_input(raw)
        try:
            async with asyncio.timeout(self.limits.timeout_seconds):
                with counting(ctx.tally):
                    output = await self.run(ctx, parsed)
        except TimeoutError:
            raise ToolTimedOut(
                f"Tool '{self.name}' did not finish within its limit of "
                f"{self.limits.timeout_seconds:g} s."
            ) from None
        try:
            checked = self.Output.model_validate(output.model_dump())
        except ValidationError as exc:
            raise ToolFailed(
                f"Tool '{self.name}' produced output that does not match its schema: {exc}"
            ) from None
        return checked.model_dump(mode="json")


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with each local `$ref` (`#/$defs/Name`) replaced by its definition and
    `$defs` removed. Tool inputs are not recursive; a recursive one is refused."""
    defs: dict[str, Any] = schema.get("$defs", {})

    def resolve(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [resolve(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.removeprefix("#/$defs/")
            if name in seen:
                raise ValueError(f"recursive schema at {name!r} cannot be inlined")
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return {**resolve(defs[name], (*seen, name)), **resolve(rest, seen)}
        return {k: resolve(v, seen) for k, v in node.items() if k != "$defs"}

    resolved: dict[str, Any] = resolve(schema, ())
    return resolved
