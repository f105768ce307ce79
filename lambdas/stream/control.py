"""The CONTROL routes the stream front door answers itself, from DynamoDB: conversations,
usage and run reads (the same short work the gateway Lambda does behind API Gateway).

Which routes these are comes from the route table (`services/frontdoor/routes.py`); this
module only implements them. A CONTROL route without an implementation here (the admin
API) is answered 404, naming the URL that serves it. The stores are blocking (boto3), so
each call runs in a thread; each is built on first use, so importing and starting the
door needs no AWS.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from services.conversations.api import ConversationsAPI
from services.conversations.store import ConversationSettings
from services.frontdoor.routes import Owner, routes_of
from services.tenancy.auth import Principal
from services.usage.report import UsageReports, reports_for_table
from services.web.body import parse_json
from services.web.params import page_limit

if TYPE_CHECKING:
    from services.runs.store import RunStore


@dataclass(frozen=True, slots=True)
class Call:
    """A CONTROL request, authenticated."""

    principal: Principal
    params: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Answer:
    body: bytes
    status: int = 200
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Call], Awaitable[Answer]]


class Control:
    """The CONTROL routes' implementations, by (method, path template) of the table."""

    def __init__(
        self,
        table: str,
        env: Mapping[str, str],
        *,
        conversations: ConversationsAPI | None = None,
        runs: RunStore | None = None,
        usage: UsageReports | None = None,
    ) -> None:
        self._table = table
        self._conversation_settings = ConversationSettings.from_env(env)
        self._conversations = conversations
        self._runs = runs
        self._usage = usage
        self.handlers: dict[tuple[str, str], Handler] = {
            ("POST", "/v1/conversations"): self.create_conversation,
            ("GET", "/v1/conversations"): self.list_conversations,
            ("GET", "/v1/conversations/{conversation_id}"): self.get_conversation,
            ("PATCH", "/v1/conversations/{conversation_id}"): self.rename_conversation,
            ("DELETE", "/v1/conversations/{conversation_id}"): self.delete_conversation,
            ("GET", "/v1/usage"): self.usage,
            ("GET", "/v1/runs"): self.list_runs,
            ("GET", "/v1/runs/{run_id}"): self.get_run,
        }
        table_routes = {(r.method, r.path) for r in routes_of(Owner.CONTROL)}
        unknown = set(self.handlers) - table_routes
        if unknown:  # a route moved to the worker, or renamed, in the table
            raise RuntimeError(f"not CONTROL routes in the route table: {sorted(unknown)}")

    # Conversations (services/conversations/api.py, as the gateway Lambda serves them).
    @functools.cached_property
    def conversations(self) -> ConversationsAPI:
        if self._conversations is None:
            self._conversations = ConversationsAPI(self._conversation_settings.store(self._table))
        return self._conversations

    async def create_conversation(self, call: Call) -> Answer:
        body = _json_or_empty(call.body)
        return _json(await asyncio.to_thread(self.conversations.create, call.principal, body))

    async def list_conversations(self, call: Call) -> Answer:
        return _json(await asyncio.to_thread(self.conversations.list, call.principal, call.query))

    async def get_conversation(self, call: Call) -> Answer:
        cid = call.params["conversation_id"]
        found = await asyncio.to_thread(self.conversations.get, call.principal, cid, call.query)
        return _json(found)

    async def rename_conversation(self, call: Call) -> Answer:
        cid, body = call.params["conversation_id"], _json_or_empty(call.body)
        return _json(await asyncio.to_thread(self.conversations.rename, call.principal, cid, body))

    async def delete_conversation(self, call: Call) -> Answer:
        cid = call.params["conversation_id"]
        return _json(await asyncio.to_thread(self.conversations.delete, call.principal, cid))

    # Usage (services/usage/report.py).
    @functools.cached_property
    def usage_reports(self) -> UsageReports:
        if self._usage is None:
            self._usage = reports_for_table(self._table)
        return self._usage

    async def usage(self, call: Call) -> Answer:
        content_type, body = await asyncio.to_thread(
            self.usage_reports.answer,
            call.principal.tenant_id,
            call.query,
            call.headers.get("accept"),
        )
        return Answer(body.encode(), content_type=content_type)

    # Run reads (services/runs/store.py); creating, following and cancelling a run is the
    # worker's, and relayed.
    @functools.cached_property
    def runs(self) -> RunStore:
        if self._runs is None:
            import boto3

            from services.runs.store import RunStore  # botocore: imported on first use

            self._runs = RunStore(boto3.client("dynamodb"), self._table)
        return self._runs

    async def list_runs(self, call: Call) -> Answer:
        limit = page_limit(call.query.get("limit"))
        page, cursor = await asyncio.to_thread(
            self.runs.page, call.principal.tenant_id, limit=limit, cursor=call.query.get("after")
        )
        return _json(
            {
                "object": "list",
                "data": [run.public() for run in page],
                "has_more": cursor is not None,
                "next_cursor": cursor,
            }
        )

    async def get_run(self, call: Call) -> Answer:
        run_id = call.params["run_id"]
        run = await asyncio.to_thread(self.runs.require, call.principal.tenant_id, run_id)
        return _json(run.public())


def _json(body: Any) -> Answer:
    return Answer(orjson.dumps(body))


def _json_or_empty(body: bytes) -> Any:
    """A JSON body, or {} for none (every field of these routes is optional), by the
    strict parser every door uses (depth, UTF-8, surrogates: services/web/body.py)."""
    return parse_json(body) if body else {}
