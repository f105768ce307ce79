"""The tool port: a single-purpose AI function with a declared input, output, route and limits.

A tool is one module in `services/tools/` that defines `TOOL`, an instance of a `Tool`
subclass. The registry (`services.tools.registry`) finds every such module, so adding a
tool is adding one file. The same declaration serves three callers:

- `GET /v1/tools` lists each tool with its input and output JSON Schema;
- `POST /v1/tools/{name}` runs one synchronously (`invoke` validates input and output);
- an agent offers it to the model as a function-call tool (`definition`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError

from services.errors import APIError, InvalidRequest
from services.providers.base import ToolDefinition


class ToolFailed(APIError):
    """The tool could not do what it was asked (a corrupt document, a model that answered
    something unusable). 422: the request was well formed, the work failed."""

    status = 422
    type = "tool_error"
    code = "tool_failed"


@dataclass(frozen=True, slots=True)
class ToolLimits:
    """Named limits a tool enforces; shown in `GET /v1/tools`."""

    max_input_chars: int = 200_000
    max_output_tokens: int = 1024
    timeout_seconds: float = 120.0

    def public(self) -> dict[str, Any]:
        return {
            "max_input_chars": self.max_input_chars,
            "max_output_tokens": self.max_output_tokens,
            "timeout_seconds": self.timeout_seconds,
        }


@dataclass(slots=True)
class ToolContext:
    """What a tool may use. Built per call by the worker (or the agent loop).

    - `tenant_id`/`key_id`: the caller; every document access is scoped to `tenant_id`.
    - `catalogue`: resolve `route` (or the caller's override) to a provider; usage is
      accounted per provider call by the router, not by the tool.
    - `documents`: the tenant's document store (`services.documents.DocumentStore`).
    - `embeddings`: the embeddings service (`services.embeddings`), for `suggest_related`.
    - `emit`: progress events (`tool.progress`), a no-op outside a run.
    """

    tenant_id: str
    key_id: str
    catalogue: Any
    route: str
    documents: Any = None
    embeddings: Any = None
    emit: Callable[[str, dict[str, Any]], None] = field(default=lambda _type, _data: None)


class Tool(ABC):
    """Subclasses set the class attributes and implement `run`."""

    name: ClassVar[str]
    description: ClassVar[str]
    Input: ClassVar[type[BaseModel]]
    Output: ClassVar[type[BaseModel]]
    route: ClassVar[str] = "fast"  # the model route used unless the caller names another
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
            "route": self.route,
            "limits": self.limits.public(),
            "input_schema": self.Input.model_json_schema(),
            "output_schema": self.Output.model_json_schema(),
        }

    def definition(self) -> ToolDefinition:
        """The tool as a function a model may call."""
        return ToolDefinition(self.name, self.description, self.Input.model_json_schema())

    def parse_input(self, raw: Any) -> BaseModel:
        """`raw` as `Input`, or a 400 naming the first bad field (`input.<path>`)."""
        try:
            return self.Input.model_validate(raw)
        except ValidationError as exc:
            error = exc.errors()[0]
            path = ".".join(str(p) for p in error["loc"])
            raise InvalidRequest(
                f"Invalid input for tool '{self.name}': {path or 'input'}: {error['msg']}.",
                param=f"input.{path}" if path else "input",
                code="invalid_tool_input",
            ) from None

    async def invoke(self, ctx: ToolContext, raw: Any) -> dict[str, Any]:
        """Validate `raw`, run, and validate what the tool produced."""
        parsed = self.parse_input(raw)
        output = await self.run(ctx, parsed)
        try:
            checked = self.Output.model_validate(output.model_dump())
        except ValidationError as exc:
            raise ToolFailed(
                f"Tool '{self.name}' produced output that does not match its schema: {exc}"
            ) from None
        return checked.model_dump(mode="json")
