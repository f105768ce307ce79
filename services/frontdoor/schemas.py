"""The shapes the contract (`services.frontdoor.openapi`) describes that no pydantic model
validates at run time.

Two kinds live here:

- **Bodies checked by hand.** The gateway Lambda loads no pydantic (its cold start), so the
  routes it answers (conversations, admin, usage) validate in plain Python, and a few worker
  routes do too (the tool call's envelope, a run's create body and its answer). Their
  models here take every limit from the module that checks it, so a limit is written once;
  the contract test's fuzz run (tests/integration/test_contract.py) sends what these models
  refuse and fails if the code accepts it.
- **Answers.** Responses are built as dicts (`public()` methods); these models name their
  fields for the contract, and the contract test checks every answer against them.

Nothing here is imported by a front door or on a request's path.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.conversations import api as conversations
from services.conversations.store import MAX_PAGE as MAX_CONVERSATION_PAGE
from services.documents.store import DocumentKind, DocumentStatus
from services.runs.inputs import MAX_ANSWER_CHARS
from services.runs.model import RunStatus
from services.tenancy import admin_api
from services.tenancy.tenants import MAX_BUDGET_USD, MAX_NAME_CHARS, MAX_PER_MINUTE, TENANT_ID
from services.usage.report import GROUPS, METRICS
from services.web import params

NonBlank = r"\S"


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- errors -------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    message: str
    type: str = Field(description="invalid_request_error, authentication_error, ...")
    param: str | None = Field(description="The parameter at fault, when one is")
    code: str | None = Field(description="A stable, machine-readable reason")


class Error(BaseModel):
    """Every error outside `/v1/messages`: OpenAI's envelope."""

    error: ErrorDetail


class AnthropicErrorDetail(BaseModel):
    type: str = Field(description="invalid_request_error, authentication_error, ...")
    message: str


class AnthropicError(BaseModel):
    """Errors of `/v1/messages`: Anthropic's envelope, as the `anthropic` SDK reads it."""

    type: Literal["error"]
    error: AnthropicErrorDetail


# -- models, chat, embeddings ---------------------------------------------------------------


class Model(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[Model]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: dict[str, Any] | None = None


class FunctionCall(BaseModel):
    name: str
    arguments: str


class ToolCall(BaseModel):
    id: str
    type: Literal["function"]
    function: FunctionCall


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str | None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: str | None
    logprobs: None = None


class ChatCompletion(BaseModel):
    """A non-streamed chat completion. Streamed (`stream: true`), the answer is
    `text/event-stream`: `data: <chat.completion.chunk JSON>` events ending in
    `data: [DONE]`."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str = Field(description="The model that answered (`local/simulator` when simulated)")
    choices: list[Choice]
    usage: Usage
    switchboard: dict[str, Any] | None = Field(
        default=None, description="Conversation turns: the id and how many messages were left out"
    )


class AnthropicMessage(BaseModel):
    """A non-streamed Messages answer. Streamed, it is `text/event-stream` with Anthropic's
    events: `message_start`, content blocks, `message_delta`, `message_stop`."""

    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[dict[str, Any]]
    stop_reason: str | None
    stop_sequence: str | None
    usage: dict[str, Any]


class Embedding(BaseModel):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str = Field(description="Floats, or base64 of float32 LE")


class EmbeddingList(BaseModel):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: dict[str, int]


# -- tools and agents --------------------------------------------------------------------


class ToolInfo(BaseModel):
    object: Literal["tool"]
    name: str
    description: str
    route: str | None = Field(description="The model route it uses; null when it calls none")
    limits: dict[str, float | int]
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]


class ToolList(BaseModel):
    object: Literal["list"]
    data: list[ToolInfo]


class ToolCallBody(_Request):
    """`POST /v1/tools/{name}`; each tool's own path in this contract has its exact input."""

    input: dict[str, Any] = Field(description="The tool's arguments (its `input_schema`)")
    model: str | None = Field(
        default=None, min_length=1, description="A model or route in place of the tool's own"
    )


class ToolResult(BaseModel):
    object: Literal["tool.result"]
    tool: str
    model: str | None
    output: dict[str, Any]
    usage: Usage | None


class AgentInfo(BaseModel):
    object: Literal["agent"]
    name: str
    description: str
    tools: list[str]
    route: str
    max_steps: int
    approval_required: list[str]
    input_schema: dict[str, Any]


class AgentList(BaseModel):
    object: Literal["list"]
    data: list[AgentInfo]


# -- runs ------------------------------------------------------------------------------------


class RunFlags(_Request):
    background: bool = Field(default=False, description="202 at once; the run is queued")
    stream: bool = Field(default=False, description="Answer with the run's events (SSE)")
    cancel_on_disconnect: bool = Field(
        default=False, description="With `stream`: a client that leaves cancels the run"
    )


class Question(_Request):
    """The answer to a run's question (`pending_input.type` "question")."""

    input: Annotated[str, Field(min_length=1, max_length=MAX_ANSWER_CHARS, pattern=NonBlank)]


class Approval(_Request):
    """The answer to an approval: `approve: false` with `feedback` asks for a change."""

    approve: bool
    feedback: str | None = Field(default=None, max_length=MAX_ANSWER_CHARS)


class PendingInput(BaseModel):
    id: str
    type: Literal["question", "approval"]
    prompt: str
    options: list[str] | None = None
    detail: dict[str, Any] | None = None
    answer_with: dict[str, Any]


class RunUrls(BaseModel):
    self: str
    events: str
    cancel: str
    input: str


class Run(BaseModel):
    id: str
    object: Literal["run"]
    kind: str
    status: RunStatus
    created_at: int
    updated_at: int
    attempts: int
    progress: dict[str, Any]
    result: Any = Field(description="The kind's result once it has succeeded")
    error: dict[str, Any] | None
    pending_input: PendingInput | None
    urls: RunUrls


class RunList(BaseModel):
    object: Literal["list"]
    data: list[Run]
    has_more: bool
    next_cursor: str | None


# -- documents -------------------------------------------------------------------------------


class Document(BaseModel):
    id: str
    object: Literal["document"]
    filename: str
    content_type: str
    kind: DocumentKind
    size_bytes: int
    pages: int | None
    folder: str
    status: DocumentStatus
    created_at: int
    text_chars: int | None
    error: dict[str, Any] | None = Field(default=None, description="Why a failed upload failed")


class DocumentList(BaseModel):
    object: Literal["list"]
    data: list[Document]
    has_more: bool
    next_cursor: str | None


class UploadTarget(BaseModel):
    url: str
    method: Literal["PUT"]
    headers: dict[str, str]
    expires_at: int


class UploadStarted(BaseModel):
    document: Document
    upload: UploadTarget


class Deleted(BaseModel):
    id: str
    object: str
    deleted: Literal[True]


# -- conversations -----------------------------------------------------------------------------


Metadata = Annotated[
    dict[
        Annotated[str, Field(max_length=conversations.MAX_METADATA_KEY_CHARS)],
        Annotated[str, Field(max_length=conversations.MAX_METADATA_VALUE_CHARS)],
    ],
    Field(max_length=conversations.MAX_METADATA_PAIRS),
]


class ConversationCreate(_Request):
    title: str | None = Field(default=None, max_length=conversations.MAX_TITLE_CHARS)
    model: str | None = Field(default=None, min_length=1, max_length=conversations.MAX_MODEL_CHARS)
    system_prompt: str | None = Field(
        default=None, max_length=conversations.MAX_SYSTEM_PROMPT_CHARS
    )
    metadata: Metadata | None = None


class ConversationRename(_Request):
    title: str | None = Field(max_length=conversations.MAX_TITLE_CHARS)


class Conversation(BaseModel):
    id: str
    object: Literal["conversation"]
    created_at: int
    updated_at: int
    title: str | None
    model: str | None
    system_prompt: str | None
    metadata: dict[str, str]
    message_count: int


class ConversationList(BaseModel):
    object: Literal["list"]
    data: list[Conversation]
    has_more: bool
    next_cursor: str | None


class ConversationMessage(BaseModel):
    id: str
    object: Literal["conversation.message"]
    created_at: int
    role: str
    content: str | list[dict[str, Any]] | None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None


class MessagePage(BaseModel):
    object: Literal["list"]
    data: list[ConversationMessage]
    has_more: bool
    next_cursor: str | None


class ConversationWithMessages(Conversation):
    messages: MessagePage


# -- usage ---------------------------------------------------------------------------------------


class UsageReport(BaseModel):
    """JSON; `format=csv` (or `Accept: text/csv`) gives the rows as CSV, the group columns
    first, then the metrics."""

    object: Literal["usage.report"]
    tenant_id: str
    start: str
    end: str
    group_by: list[Literal[GROUPS]]  # type: ignore[valid-type]
    currency: Literal["USD"]
    price_table: dict[str, Any]
    cost_complete: bool
    data: list[dict[str, Any]] = Field(description=f"Rows: the groups, then {', '.join(METRICS)}")
    totals: dict[str, Any]


# -- admin -------------------------------------------------------------------------------------


PerMinute = Annotated[int, Field(ge=1, le=MAX_PER_MINUTE)]


class LimitChanges(_Request):
    """A field set to null removes that limit; a field left out keeps it."""

    monthly_budget_usd: Annotated[float, Field(ge=0, le=float(MAX_BUDGET_USD))] | str | None = (
        Field(default=None, description="US dollars, at most 6 decimal places")
    )
    rpm: PerMinute | None = None
    tpm: PerMinute | None = None


AdminName = Annotated[str, Field(min_length=1, pattern=NonBlank)]


class TenantCreate(_Request):
    id: Annotated[str, Field(pattern=TENANT_ID.pattern)] | None = None
    name: Annotated[AdminName, Field(max_length=MAX_NAME_CHARS)] | None = None
    limits: LimitChanges | None = None


class TenantUpdate(_Request):
    limits: LimitChanges | None = None


class KeyCreate(_Request):
    name: Annotated[AdminName, Field(max_length=admin_api.MAX_KEY_NAME_CHARS)] | None = None


class Limits(BaseModel):
    monthly_budget_usd: float | None
    rpm: int | None
    tpm: int | None


class Tenant(BaseModel):
    object: Literal["tenant"]
    id: str
    name: str
    status: str
    created_at: int
    limits: Limits


class TenantList(BaseModel):
    object: Literal["list"]
    data: list[Tenant]
    has_more: bool
    last_id: str | None


class ApiKey(BaseModel):
    object: Literal["api_key"]
    id: str
    tenant_id: str
    name: str
    prefix: str
    status: str
    created_at: int
    revoked_at: int | None


class ApiKeyList(BaseModel):
    object: Literal["list"]
    data: list[ApiKey]
    has_more: bool


class NewApiKey(ApiKey):
    """The secret is in this answer only."""

    secret: str
    replaces: str | None = Field(default=None, description="Rotation: the key it revoked")


PAGE_LIMITS = {"conversations": MAX_CONVERSATION_PAGE, "tenants": params.MAX_PAGE}
