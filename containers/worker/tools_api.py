"""The tools API on the worker: list the tools and run one synchronously.

- `GET /v1/tools`: every registered tool with its input and output JSON Schema, default
  route and limits; `GET /v1/tools/{name}`: one of them.
- `POST /v1/tools/{name}` with `{"input": {...}, "model": "<name>"?}`: runs the tool and
  answers `{"object": "tool.result", "tool", "model", "models", "output", "usage"}`. The
  request's `model` overrides the tool's default route with any name `GET /v1/models`
  lists (a tool that calls no chat model refuses it). The answer's `model` is the model
  that answered (the last one, when several did: `models` lists each, in order; the
  simulator shows there as `local/simulator`), null when the tool called none; the route
  asked for is in the `x-switchboard-route` header. `usage` adds up every model call the
  tool made, embeddings included (null when it made none).

Errors: 400 naming the field for bad input (`input.<field>`), 404 for an unknown tool,
model or document, 422 `tool_failed` when the tool could not do the work, provider errors
as the router raised them, and 504 `tool_timeout` past the tool's own time limit.

A tool call is bounded by the worker's sync deadline (services/runs/sync.py): past it, it
goes on as a run of kind `tool` that will hold the result (202 with `Prefer:
respond-async`, otherwise a 504 `run_pending` naming the run).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from services.errors import InvalidRequest
from services.models.catalogue import ROUTE_HEADER, Catalogue
from services.runs.model import Run
from services.runs.sync import Caller, CallKind, SyncCalls, reply
from services.tenancy.auth import Authenticator, Principal
from services.tenancy.limits import Admission, guard
from services.tools import registry
from services.tools.base import Tool, ToolContext
from services.usage.context import bind
from services.web.asgi import JSONBytesResponse, decode_json, read_body
from services.wire.openai import usage_json

TOOL = "tool"  # the run kind of a tool call promoted past the sync deadline

_FIELDS = ("input", "model")


def tool_endpoints(
    authenticator: Authenticator,
    catalogue: Catalogue,
    max_request_bytes: int,
    calls: SyncCalls,
    *,
    documents: Callable[[], Any],
    embeddings: Callable[[], Any],
    admission: Admission | None = None,
) -> tuple[dict[tuple[str, str], Callable[[Request], Any]], CallKind]:
    """The endpoints by the route table's (method, path), over `documents()` and
    `embeddings()`: the worker's DocumentStore and Embeddings, built by the app (on first
    use, so a worker that runs no tool needs none); and the run kind of a late tool call.
    Running a tool is admitted like every AI route (budget and rate limits)."""

    async def invoke(tool: Tool, tenant_id: str, key_id: str, raw: Any, model: str | None) -> Any:
        route = model or tool.route
        ctx = ToolContext(
            tenant_id=tenant_id,
            key_id=key_id,
            catalogue=catalogue,
            route=route,
            documents=documents(),
            embeddings=embeddings(),
        )
        output = await tool.invoke(ctx, raw)
        tally = ctx.tally
        return {
            "object": "tool.result",
            "tool": tool.name,
            "model": tally.model,
            "models": tally.models,
            "output": output,
            "usage": usage_json(tally.usage) if tally.calls else None,
        }

    async def again(run: Run) -> Any:
        body = run.input
        tool = registry.get(body["tool"])
        return await invoke(tool, run.tenant_id, run.key_id, body["input"], body.get("model"))

    async def list_tools(request: Request) -> Response:
        await authenticator.authenticate_async(request.headers)
        data = [tool.public() for tool in registry.tools().values()]
        return JSONBytesResponse({"object": "list", "data": data})

    async def get_tool(request: Request) -> Response:
        await authenticator.authenticate_async(request.headers)
        return JSONBytesResponse(registry.get(request.path_params["name"]).public())

    async def run_tool(request: Request, principal: Principal) -> Response:
        tool = registry.get(request.path_params["name"])
        bind(principal, f"/v1/tools/{tool.name}")
        caller = Caller.of(principal, request.headers)
        body = decode_json(await read_body(request, max_request_bytes))
        raw, model = _parse_body(body, uses_model=tool.uses_model)
        if tool.uses_model:
            catalogue.resolve(model or tool.route)  # an unknown model: 404, before any work
        work = invoke(tool, principal.tenant_id, principal.key_id, raw, model)
        input = {"tool": tool.name, "input": raw, "model": model}
        headers = {ROUTE_HEADER: model or tool.route} if tool.uses_model else None
        return reply(await calls.call(caller, TOOL, lambda: input, work), caller, headers=headers)

    endpoints: dict[tuple[str, str], Callable[[Request], Any]] = {
        ("GET", "/v1/tools"): list_tools,
        ("GET", "/v1/tools/{name}"): get_tool,
        ("POST", "/v1/tools/{name}"): guard(authenticator, admission, run_tool),
    }
    return endpoints, CallKind(TOOL, again)


def _parse_body(body: Any, *, uses_model: bool) -> tuple[dict[str, Any], str | None]:
    if not isinstance(body, dict):
        raise InvalidRequest(
            'The request body must be a JSON object: {"input": {...}}.', code="invalid_body"
        )
    unknown = sorted(set(body) - set(_FIELDS))
    if unknown:
        raise InvalidRequest(
            f"Unrecognized request argument supplied: {unknown[0]}. A tool call is "
            '{"input": {...}, "model": "<optional model or route>"}.',
            param=unknown[0],
            code="unknown_parameter",
        )
    raw = body.get("input")
    if not isinstance(raw, dict):
        raise InvalidRequest(
            "'input' is required: a JSON object of the tool's arguments (GET /v1/tools "
            "shows each tool's input_schema).",
            param="input",
            code="missing_required_parameter" if raw is None else "invalid_type",
        )
    model = body.get("model")
    if model is not None:
        if not isinstance(model, str) or not model:
            raise InvalidRequest(
                "'model' must be a model or route name.", param="model", code="invalid_type"
            )
        if not uses_model:
            raise InvalidRequest(
                "This tool calls no model; leave 'model' out.",
                param="model",
                code="unsupported_parameter",
            )
    return raw, model
