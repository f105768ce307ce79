"""The API's OpenAPI 3.1 contract, built from the code: the route table
(`services.frontdoor.routes`: method, path, summary, parameters, body, streaming, admin) and
the pydantic models the code validates with (the OpenAI and Anthropic request bodies, each
tool's `Input` and `Output`, each agent's `Input`, the documents' requests), plus, for what
the code checks by hand, the models of `services.frontdoor.schemas`.

`build()` is pure and cached. The front doors do not call it (they load no pydantic); they
serve `openapi.json`, beside this file, which this module writes:

    python -m services.frontdoor.openapi          # write openapi.json
    python -m services.frontdoor.openapi --check  # exit 1 if openapi.json is not up to date

A unit test runs the check, so the served file cannot drift from the code.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, create_model
from pydantic.json_schema import models_json_schema

from services.agents.registry import agents
from services.chat.messages import MessagesRequest
from services.documents.requests import DocumentUpload, EmbeddingRequest, UploadRequest
from services.frontdoor import schemas as s
from services.frontdoor.routes import ROUTES, Body, Owner, RouteSpec
from services.runs.kinds import MAX_STEPS as MAX_PIPELINE_STEPS
from services.tenancy.tenants import TENANT_ID
from services.tools import registry as tool_registry
from services.usage.report import GROUPS
from services.web.params import DEFAULT_PAGE, MAX_PAGE
from services.wire.openai import _UNSUPPORTED_UNLESS_DEFAULT, ChatCompletionRequest

OPENAPI_JSON = Path(__file__).with_name("openapi.json")
VERSION = "1.0.0"
REF = "#/components/schemas/{model}"

TENANT_KEY: list[dict[str, list[str]]] = [{"ApiKey": []}, {"ApiKeyHeader": []}]
ADMIN_KEY: list[dict[str, list[str]]] = [{"AdminKey": []}]

# -- request bodies the code assembles from several declarations ------------------------------


class ChatRunInput(ChatCompletionRequest):
    """A chat completion request as a run's input: a run streams through its events."""

    stream: Literal[False] = False
    stream_options: None = None


class PipelineInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: list[ChatRunInput] = Field(
        min_length=1,
        max_length=MAX_PIPELINE_STEPS,
        description="Chat completions in order; a step may quote `{{steps[N].output}}`",
    )


def _const(value: str) -> Any:
    """`Literal[value]` for a value known at run time (a model built from the registries)."""
    return Literal.__getitem__(value)


def _agent_input(name: str) -> type[BaseModel]:
    agent = agents()[name]
    return create_model(
        f"AgentRun_{name}",
        __config__=ConfigDict(extra="forbid"),
        __doc__=agent.description,
        agent=(_const(name), ...),
        input=(agent.Input, Field(default_factory=dict)),
        model=(str | None, Field(default=None, description="Replaces the agent's route")),
        max_steps=(int | None, Field(default=None, ge=1, le=agent.max_steps)),
    )


def _run_create() -> type[BaseModel]:
    agent_inputs = tuple(_agent_input(name) for name in sorted(agents()))
    agent_union: Any = agent_inputs[0]
    for model in agent_inputs[1:]:
        agent_union = agent_union | model
    if len(agent_inputs) > 1:
        agent_union = Annotated[agent_union, Field(discriminator="agent")]

    chat = create_model(
        "ChatRun", __base__=s.RunFlags, kind=(_const("chat.completion"), ...), input=ChatRunInput
    )
    pipeline = create_model(
        "PipelineRun", __base__=s.RunFlags, kind=(_const("pipeline"), ...), input=PipelineInput
    )
    agent = create_model(
        "AgentRun", __base__=s.RunFlags, kind=(_const("agent"), ...), input=(agent_union, ...)
    )

    class RunCreate(RootModel[Annotated[chat | pipeline | agent, Field(discriminator="kind")]]):  # type: ignore[valid-type]
        """`POST /v1/runs`: what to run (`kind` and its `input`) and how to answer."""

    return RunCreate


class RunAnswer(RootModel[s.Question | s.Approval]):
    """`POST /v1/runs/{run_id}/input`: the answer the run's `pending_input` asks for."""


def _tool_call_body(name: str) -> tuple[type[BaseModel], type[BaseModel]]:
    tool = tool_registry.tools()[name]
    fields: dict[str, Any] = {"input": (tool.Input, ...)}
    if tool.uses_model:
        fields["model"] = (
            str | None,
            Field(default=None, min_length=1, description=f"Replaces the route `{tool.route}`"),
        )
    title = "".join(part.title() for part in name.split("_"))
    body = create_model(f"{title}Call", __config__=ConfigDict(extra="forbid"), **fields)
    result = create_model(f"{title}Result", __base__=s.ToolResult, output=(tool.Output, ...))
    return body, result


# -- operations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    schema: dict[str, Any]
    description: str = ""
    where: Literal["query", "header"] = "query"


@dataclass(frozen=True)
class Op:
    """What the route table does not say about a route: its body, answers and errors."""

    body: Any = None  # a model (required body) or (model, False) for an optional body
    ok: Any = None  # the 200 answer's model, or a content map
    ok_status: int = 200
    accepted: bool = False  # may answer 202 with a run (Location: the run)
    stream: str = ""  # what the text/event-stream answer carries
    query: tuple[Param, ...] = ()
    errors: dict[int, str] = field(default_factory=dict)
    description: str = ""
    tag: str = ""


LIMIT = Param(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE},
    "Page size",
)
AFTER = Param("after", {"type": "string"}, "The previous page's `next_cursor`")
PAGE = (LIMIT, AFTER)
IDEMPOTENCY = Param(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": 255},
    "The same key returns the same run (and answer) for 24 hours",
    "header",
)
MODEL_404 = "An unknown model or route (`model_not_found`)"
ADMITTED = {429: "A rate limit or the tenant's monthly budget (`Retry-After` when known)"}
RUN_ID = "`run_not_found`"
_GROUP = rf"\s*({'|'.join(GROUPS)})?\s*"
GROUP_BY = rf"^{_GROUP}(,{_GROUP})*$"
GROUP_BY_TEXT = f"Comma-separated, of {', '.join(GROUPS)}, without repeats (default: day)"


def _operations(run_create: type[BaseModel]) -> dict[tuple[str, str], Op]:
    return {
        ("POST", "/v1/chat/completions"): Op(
            body=ChatCompletionRequest,
            ok=s.ChatCompletion,
            accepted=True,
            stream="`data: <chat.completion.chunk>` events, then `data: [DONE]`",
            query=(IDEMPOTENCY,),
            errors={
                404: MODEL_404 + " or conversation",
                409: "Another turn of the conversation was stored first: send it again",
                422: "The same Idempotency-Key with another body",
                **ADMITTED,
            },
            tag="AI",
        ),
        ("POST", "/v1/messages"): Op(
            body=MessagesRequest,
            ok=s.AnthropicMessage,
            stream="Anthropic's events: `message_start`, content blocks, `message_delta`, "
            "`message_stop`",
            errors={404: MODEL_404, **ADMITTED},
            description="Anthropic's Messages API: point the `anthropic` SDK's `base_url` here "
            "(without `/v1`); `x-api-key` works as well as `Authorization: Bearer`.",
            tag="AI",
        ),
        ("POST", "/v1/embeddings"): Op(
            body=EmbeddingRequest, ok=s.EmbeddingList, errors={404: MODEL_404, **ADMITTED}, tag="AI"
        ),
        ("GET", "/v1/models"): Op(ok=s.ModelList, tag="AI"),
        ("GET", "/v1/tools"): Op(ok=s.ToolList, tag="Tools"),
        ("GET", "/v1/tools/{name}"): Op(ok=s.ToolInfo, errors={404: "`tool_not_found`"}),
        ("POST", "/v1/tools/{name}"): Op(
            body=s.ToolCallBody,
            ok=s.ToolResult,
            errors={
                404: "An unknown tool, model or document",
                422: "`tool_failed`: the tool could not do the work, and says why",
                504: "`tool_timeout`: past the tool's time limit or the front door's deadline",
                **ADMITTED,
            },
            description="Each tool's own path below has its exact input and output.",
        ),
        ("GET", "/v1/agents"): Op(ok=s.AgentList, tag="Agents"),
        ("GET", "/v1/agents/{name}"): Op(ok=s.AgentInfo, errors={404: "`agent_not_found`"}),
        ("POST", "/v1/runs"): Op(
            body=run_create,
            ok=s.Run,
            accepted=True,
            stream="The run's events (`id:` numbered from 1), as for `GET .../events`",
            query=(IDEMPOTENCY,),
            errors={
                404: MODEL_404,
                422: "The same Idempotency-Key with another body",
                **ADMITTED,
            },
            tag="Runs",
        ),
        ("GET", "/v1/runs"): Op(ok=s.RunList, query=PAGE),
        ("GET", "/v1/runs/{run_id}"): Op(ok=s.Run, errors={404: RUN_ID}),
        ("POST", "/v1/runs/{run_id}/cancel"): Op(
            ok=s.Run, errors={404: RUN_ID, 409: "The run has ended (`run_conflict`)"}
        ),
        ("POST", "/v1/runs/{run_id}/input"): Op(
            body=RunAnswer,
            ok=s.Run,
            errors={404: RUN_ID, 409: "The run is not awaiting input (`run_not_awaiting_input`)"},
        ),
        ("GET", "/v1/runs/{run_id}/events"): Op(
            stream="`event: <type>`, `id: <seq>`, `data: <JSON>`; resume with `Last-Event-ID` "
            "or `after`. Through API Gateway: the events so far, then the answer ends.",
            query=(
                Param("after", {"type": "integer", "minimum": 0}, "Events after this number"),
                Param("Last-Event-ID", {"type": "string"}, "Events after this number", "header"),
            ),
            errors={404: RUN_ID},
        ),
        ("POST", "/v1/documents"): Op(
            body=DocumentUpload,
            ok=s.Document,
            errors={
                415: "`unsupported_document_type`: the bytes are not a PDF, text or image",
                422: "A PDF that is corrupt, encrypted or too long, or text that is not UTF-8",
            },
            tag="Documents",
        ),
        ("GET", "/v1/documents"): Op(
            ok=s.DocumentList,
            query=(
                *PAGE,
                Param("kind", {"enum": ["pdf", "text", "markdown", "image"]}, "Only this kind"),
            ),
        ),
        ("POST", "/v1/documents/uploads"): Op(body=UploadRequest, ok=s.UploadStarted),
        ("GET", "/v1/documents/{document_id}"): Op(ok=s.Document),
        ("DELETE", "/v1/documents/{document_id}"): Op(ok=s.Deleted),
        ("POST", "/v1/documents/{document_id}/complete"): Op(
            ok=s.Document,
            errors={
                409: "Not a pending upload",
                413: "The uploaded file is over the limit",
                415: "`unsupported_document_type`",
                422: "The uploaded file could not be read",
            },
        ),
        ("GET", "/v1/documents/{document_id}/content"): Op(
            ok={}, ok_status=307, description="A redirect to a presigned S3 URL (5 minutes)."
        ),
        ("POST", "/v1/conversations"): Op(
            body=(s.ConversationCreate, False), ok=s.Conversation, tag="Conversations"
        ),
        ("GET", "/v1/conversations"): Op(ok=s.ConversationList, query=PAGE),
        ("GET", "/v1/conversations/{conversation_id}"): Op(
            ok=s.ConversationWithMessages, query=PAGE
        ),
        ("PATCH", "/v1/conversations/{conversation_id}"): Op(
            body=s.ConversationRename, ok=s.Conversation
        ),
        ("DELETE", "/v1/conversations/{conversation_id}"): Op(ok=s.Deleted),
        ("GET", "/v1/usage"): Op(
            ok={
                "application/json": {"schema": _ref(s.UsageReport)},
                "text/csv": {"schema": {"type": "string"}},
            },
            query=(
                Param("start", {"type": "string"}, "YYYY-MM-DD (UTC), included; default: the 1st"),
                Param("end", {"type": "string"}, "YYYY-MM-DD (UTC), included; default: today"),
                Param("group_by", {"type": "string", "pattern": GROUP_BY}, GROUP_BY_TEXT),
                Param("format", {"enum": ["json", "csv"]}, "Or `Accept: text/csv`"),
            ),
            tag="Usage",
        ),
        ("POST", "/v1/admin/tenants"): Op(
            body=(s.TenantCreate, False),
            ok=s.Tenant,
            errors={409: "A tenant with this id exists"},
            tag="Admin",
        ),
        ("GET", "/v1/admin/tenants"): Op(
            ok=s.TenantList,
            query=(
                Param(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": s.PAGE_LIMITS["tenants"]},
                    "Page size",
                ),
                Param("after", {"type": "string", "pattern": TENANT_ID.pattern}, "Last id seen"),
            ),
        ),
        ("GET", "/v1/admin/tenants/{tenant_id}"): Op(ok=s.Tenant),
        ("PATCH", "/v1/admin/tenants/{tenant_id}"): Op(body=(s.TenantUpdate, False), ok=s.Tenant),
        ("POST", "/v1/admin/tenants/{tenant_id}/keys"): Op(
            body=(s.KeyCreate, False), ok=s.NewApiKey
        ),
        ("GET", "/v1/admin/tenants/{tenant_id}/keys"): Op(ok=s.ApiKeyList),
        ("GET", "/v1/admin/tenants/{tenant_id}/keys/{key_id}"): Op(ok=s.ApiKey),
        ("POST", "/v1/admin/tenants/{tenant_id}/keys/{key_id}/revoke"): Op(
            ok=s.ApiKey, errors={409: "`key_revoked`: already revoked"}
        ),
        ("POST", "/v1/admin/tenants/{tenant_id}/keys/{key_id}/rotate"): Op(
            ok=s.NewApiKey, errors={409: "`key_revoked`: a revoked key is not rotated"}
        ),
        ("GET", "/v1/openapi.json"): Op(
            ok={"application/json": {"schema": {"type": "object"}}}, tag="Reference"
        ),
        ("GET", "/docs"): Op(ok={"text/html": {"schema": {"type": "string"}}}),
        ("GET", "/docs/{asset}"): Op(
            ok={
                "text/javascript": {"schema": {"type": "string"}},
                "text/css": {"schema": {"type": "string"}},
                "text/plain": {"schema": {"type": "string"}},
            },
            errors={404: "No such file"},
        ),
    }


def _ref(model: Any) -> dict[str, Any]:
    return {"$ref": REF.format(model=model.__name__)}


# -- errors ----------------------------------------------------------------------------------

_ERRORS = {
    400: "A malformed body or a bad parameter: `param` names it",
    401: "No key, or an unknown or revoked one",
    403: "A tenant's API key where the admin key is needed (`admin_key_required`)",
    404: "Not found (another tenant's resource is not found either)",
    413: "The body is over the route's limit (`request_too_large`)",
    500: "An unexpected error",
    502: "The worker or the provider failed",
    503: "The worker or the provider is unavailable",
    504: "The worker or the provider did not answer in time",
}


def _error_statuses(route: RouteSpec, op: Op) -> dict[int, str]:
    found: dict[int, str] = {500: _ERRORS[500]}
    if not route.public:
        found[401] = _ERRORS[401]
    if route.admin:
        found[403] = _ERRORS[403]
    if route.body is not Body.NONE or op.query or (route.params and not route.public):
        found[400] = _ERRORS[400]
    if route.params:
        found[404] = _ERRORS[404]
    if route.body is not Body.NONE:
        found[413] = _ERRORS[413]
    if route.owner is Owner.WORKER or route.sync:
        found |= {502: _ERRORS[502], 503: _ERRORS[503], 504: _ERRORS[504]}
    else:
        # API Gateway's own answers (the integration failed or timed out).
        found |= {502: "The gateway function failed", 504: "The gateway did not answer in time"}
    for status, why in op.errors.items():
        found[status] = f"{found[status]}; {why}" if status in (500, 502, 503) else why
    return dict(sorted(found.items()))


def _error_response(route: RouteSpec, why: str) -> dict[str, Any]:
    model = s.AnthropicError if route.path == "/v1/messages" else s.Error
    return {"description": why, "content": {"application/json": {"schema": _ref(model)}}}


# -- the document ------------------------------------------------------------------------------


def _tag(route: RouteSpec, op: Op) -> str:
    if op.tag:
        return op.tag
    segment = route.path.split("/")[2] if route.path.startswith("/v1/") else "docs"
    return {
        "tools": "Tools",
        "agents": "Agents",
        "runs": "Runs",
        "documents": "Documents",
        "conversations": "Conversations",
        "admin": "Admin",
        "docs": "Reference",
    }.get(segment, "AI")


def _operation_id(method: str, path: str) -> str:
    words = [w.strip("{}").replace(".", "_") for w in path.split("/") if w and w != "v1"]
    return "_".join([method.lower(), *words])


def _parameters(route: RouteSpec, op: Op) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in route.params
    ]
    for p in op.query:
        entry: dict[str, Any] = {"name": p.name, "in": p.where, "required": False}
        entry["schema"] = p.schema
        if p.description:
            entry["description"] = p.description
        params.append(entry)
    return params


def _responses(route: RouteSpec, op: Op, ok: Any = None) -> dict[str, Any]:
    ok = op.ok if ok is None else ok
    content: dict[str, Any]
    if isinstance(ok, dict):
        content = ok
    elif ok is not None:
        content = {"application/json": {"schema": _ref(ok)}}
    else:
        content = {}
    if op.stream:
        event = {"description": f"Each event's data: {op.stream}"}
        content = {**content, "text/event-stream": {"schema": event}}
    answer: dict[str, Any] = {"description": "OK"}
    if op.stream:
        answer["description"] = f"OK. Streamed (server-sent events): {op.stream}"
    if content:
        answer["content"] = content
    if op.ok_status == 307:
        answer = {
            "description": "A redirect to the file",
            "headers": {"Location": {"schema": {"type": "string"}}},
        }
    responses: dict[str, Any] = {str(op.ok_status): answer}
    if op.accepted:
        responses["202"] = {
            "description": "Accepted: the work goes on as a run (`Location`: the run); its "
            "result is kept",
            "headers": {"Location": {"schema": {"type": "string"}}},
            "content": {"application/json": {"schema": _ref(s.Run)}},
        }
    for status, why in _error_statuses(route, op).items():
        responses[str(status)] = _error_response(route, why)
    return responses


def _operation(route: RouteSpec, op: Op, body: Any = None, ok: Any = None) -> dict[str, Any]:
    body = op.body if body is None else body
    operation: dict[str, Any] = {
        "operationId": _operation_id(route.method, route.path),
        "summary": route.summary,
        "tags": [_tag(route, op)],
    }
    if op.description:
        operation["description"] = op.description
    params = _parameters(route, op)
    if params:
        operation["parameters"] = params
    if body is not None:
        model, required = body if isinstance(body, tuple) else (body, True)
        operation["requestBody"] = {
            "required": required,
            "content": {"application/json": {"schema": _ref(model)}},
        }
    operation["responses"] = _responses(route, op, ok)
    operation["security"] = [] if route.public else ADMIN_KEY if route.admin else TENANT_KEY
    operation["x-switchboard"] = {
        "owner": route.owner.value,
        "body_limit": route.body.value,
        "sync": route.sync,
        "streams": route.streams,
    }
    return operation


def _components(models: Iterable[type[BaseModel]]) -> dict[str, Any]:
    unique = list(dict.fromkeys(models))
    keyed: list[tuple[type[BaseModel], Literal["validation"]]] = [(m, "validation") for m in unique]
    _, top = models_json_schema(keyed, ref_template=REF)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    _refine(schemas)
    return dict(sorted(schemas.items()))


def _refine(schemas: dict[str, Any]) -> None:
    """What the code refuses after its model has passed a body (each named at its check)."""
    # services.wire.openai._checked: recognised parameters refused unless at their default.
    for name in ("ChatCompletionRequest", "ChatRunInput"):
        properties = schemas[name]["properties"]
        for param, default in _UNSUPPORTED_UNLESS_DEFAULT.items():
            allowed = [None] if default is None else [default, None]
            properties[param] = {
                "enum": allowed,
                "description": "Not supported yet: leave it out",
            }
    # services.chat.messages._checked.
    properties = schemas["MessagesRequest"]["properties"]
    properties["top_k"] = {"type": "null", "description": "Not supported: leave it out"}
    properties["thinking"] = {
        "anyOf": [
            {
                "type": "object",
                "properties": {"type": {"const": "disabled"}},
                "required": ["type"],
            },
            {"type": "null"},
        ],
        "description": "Extended thinking is not supported yet",
    }
    choice = schemas["_ToolChoice"]["properties"]
    choice["disable_parallel_tool_use"] = {"enum": [False, None]}


def _document(run_create: type[BaseModel]) -> dict[str, Any]:
    ops = _operations(run_create)
    missing = [(r.method, r.path) for r in ROUTES if (r.method, r.path) not in ops]
    if missing:
        raise LookupError(f"routes without a contract entry: {missing}")
    models: list[type[BaseModel]] = [s.Error, s.AnthropicError, s.Run]
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        op = ops[(route.method, route.path)]
        item = paths.setdefault(route.path, {})
        item[route.method.lower()] = _operation(route, op)
        models.extend(_models_of(op))
    # Each tool's own path: its exact input and output (the route is `/v1/tools/{name}`).
    run_tool = next(r for r in ROUTES if (r.method, r.path) == ("POST", "/v1/tools/{name}"))
    for name, tool in sorted(tool_registry.tools().items()):
        body, result = _tool_call_body(name)
        models.extend((body, result))
        concrete = RouteSpec(
            "POST", f"/v1/tools/{name}", run_tool.owner, run_tool.body, sync=run_tool.sync,
            summary=f"Run {name}: {tool.description.split('.')[0]}",
        )  # fmt: skip
        op = ops[("POST", "/v1/tools/{name}")]
        operation = _operation(concrete, op, body=body, ok=result)
        operation["tags"] = ["Tools"]
        operation["description"] = tool.description
        paths[concrete.path] = {"post": operation}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Switchboard",
            "version": VERSION,
            "summary": "One API for AI tools and agents, in front of any model provider",
            "description": _DESCRIPTION,
        },
        "servers": [
            {"url": "..", "description": "The front door that served this document"},
            {"url": "http://127.0.0.1:3000", "description": "make dev: API Gateway (emulated)"},
            {"url": "http://127.0.0.1:3001", "description": "make dev: the stream front door"},
        ],
        "tags": [{"name": t} for t in _TAGS],
        "paths": paths,
        "components": {
            "schemas": _components(models),
            "securitySchemes": {
                "ApiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A Switchboard API key: `Authorization: Bearer sb-...`",
                },
                "ApiKeyHeader": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-api-key",
                    "description": "The same key, as Anthropic's SDK sends it",
                },
                "AdminKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The admin key (`SWITCHBOARD_ADMIN_KEY` locally, a Secrets "
                    "Manager secret when deployed), never a tenant's key",
                },
            },
        },
    }


def _models_of(op: Op) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    for item in (op.body, op.ok):
        candidate = item[0] if isinstance(item, tuple) else item
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            found.append(candidate)
    if op.ok is not None and isinstance(op.ok, dict) and op.ok.get("application/json"):
        ref = op.ok["application/json"]["schema"].get("$ref", "")
        if ref.endswith("/UsageReport"):
            found.append(s.UsageReport)
    return found


_TAGS = ("AI", "Tools", "Agents", "Runs", "Documents", "Conversations", "Usage", "Admin",
         "Reference")  # fmt: skip

_DESCRIPTION = """\
Switchboard answers like OpenAI (`/v1/chat/completions`, `/v1/embeddings`, `/v1/models`)
and like Anthropic (`/v1/messages`), in front of any provider, and adds tools, agents,
durable runs, documents, conversations, usage and an admin API.

Two front doors serve the same paths: API Gateway (buffered; long work answers 202 with a
run) and the stream door (a Lambda Function URL that streams server-sent events).

Errors have OpenAI's envelope, `{"error": {"message", "type", "param", "code"}}`, except on
`/v1/messages`, which has Anthropic's, `{"type": "error", "error": {"type", "message"}}`.
"""


@functools.cache
def build() -> dict[str, Any]:
    """The contract, as a dict (built once per process)."""
    return _document(_run_create())


def render() -> str:
    """`build()` as the text of openapi.json."""
    return json.dumps(build(), indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if openapi.json is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OPENAPI_JSON.is_file() or OPENAPI_JSON.read_text() != text:
            print(
                f"{OPENAPI_JSON} is not what the code describes: run "
                "`python -m services.frontdoor.openapi` (or `make openapi`) and commit it.",
                file=sys.stderr,
            )
            return 1
        return 0
    OPENAPI_JSON.write_text(text)
    print(f"wrote {OPENAPI_JSON} ({len(text.encode()):,} bytes, {len(build()['paths'])} paths)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
