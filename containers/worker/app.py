"""The AI worker: an ASGI app that serves chat completions from the configured providers.

Run it with `uvicorn containers.worker.app:create_app --factory`. It answers only callers
it can authenticate (an API key, or the internal credential of a front door); `/health`
is open so the load balancer can probe it and says nothing about the deployment.
`/ready` says whether the worker can do real work: 200, or 503 with the reason in the
OpenAI error envelope (today: no real model provider is configured, which is also logged
as a warning at start).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import resource
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import boto3
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from containers.worker import ecs
from containers.worker.agents_api import agent_routes
from containers.worker.documents_api import document_routes
from containers.worker.runs_api import accepted, deadline, idempotency_key, run_routes
from containers.worker.settings import WorkerSettings
from containers.worker.tools_api import tool_routes
from services.chat.completions import ChatService
from services.chat.conversation import (
    ConversationChat,
    conversation_id_of,
)
from services.chat.messages import (
    MessagesService,
    parse_messages_json,
    parse_messages_request,
)
from services.conversations.store import ConversationSettings
from services.documents.embeddings import EmbeddingLimits, Embeddings
from services.documents.store import DocumentSettings, DocumentStore, build_store
from services.errors import InvalidRequest, ServiceUnavailable
from services.models.catalogue import ROUTE_HEADER, Catalogue, CatalogueConfig
from services.models.provider_keys import provider_env
from services.models.routing import RoutingSettings
from services.providers import build_providers
from services.providers.base import Provider
from services.providers.timeouts import Timeouts
from services.runs.service import RunService, RunSettings
from services.runs.store import RunStore
from services.tenancy.auth import Authenticator, Principal
from services.tenancy.keys import KeyStore
from services.tenancy.limits import Admission, guard
from services.usage.calls import CallRecorder
from services.usage.context import bind as bind_caller
from services.usage.writer import UsageWriter, writer_for_table
from services.web.asgi import (
    App,
    EventStream,
    Exchange,
    JSONBytesResponse,
    Plain,
    decode_json,
    install_error_handlers,
    read_body,
)
from services.web.sse import HEADERS as SSE_HEADERS
from services.wire.openai import ChatCompletionRequest, parse_chat_json, parse_chat_request

GIL_SWITCH_SECONDS = 0.0005
log = logging.getLogger("switchboard.worker")


def create_app(
    settings: WorkerSettings | None = None,
    *,
    providers: dict[str, Provider] | None = None,
    authenticator: Authenticator | None = None,
    runs: RunService | None = None,
    admission: Admission | None = None,
    usage: CallRecorder | None = None,
) -> Starlette:
    """`usage` is told of every provider call; by default, when the app reads API keys
    from the table itself (no `authenticator` passed), calls are written to that table."""
    settings = settings or WorkerSettings.from_env()
    writer: UsageWriter | None = None
    if usage is None and authenticator is None:
        usage = writer = writer_for_table(settings.table, os.environ)
    if providers is None:
        providers = build_providers(
            provider_env(os.environ, lambda: boto3.client("secretsmanager"))
        )
    if authenticator is None:
        keys = KeyStore(boto3.client("dynamodb"), settings.table)
        authenticator = Authenticator(
            keys, internal_token=settings.internal_token, cache_seconds=settings.key_cache_seconds
        )
    if admission is None:
        admission = Admission(
            boto3.client("dynamodb"), settings.table, cache_seconds=settings.limits_cache_seconds
        )
    # AI routes: authenticated, then admitted against the budget and rate limits.
    admitted = functools.partial(guard, authenticator, admission)
    catalogue = Catalogue(
        providers,
        CatalogueConfig.load(settings.catalogue_path),
        routing=RoutingSettings.from_env(os.environ),
        timeouts={name: Timeouts.from_env(os.environ, name) for name in providers},
        recorder=usage,
        simulator=settings.simulator,
    )
    not_ready = _readiness(catalogue)
    if not_ready is not None:
        log.warning("%s", not_ready.message)
    chat = ChatService(catalogue)
    messages = MessagesService(catalogue)
    conversation_settings = ConversationSettings.from_env(os.environ)

    @functools.cache
    def conversations() -> ConversationChat:
        """Built on the first conversation turn, so a worker without one needs no AWS."""
        store = conversation_settings.store(settings.table)
        return ConversationChat(chat, store, max_turn_chars=conversation_settings.max_turn_chars)

    @functools.cache
    def documents() -> DocumentStore:
        """The tenant documents (S3 and the table), built on first use."""
        return build_store(settings.table, DocumentSettings.from_env(os.environ))

    @functools.cache
    def embeddings() -> Embeddings:
        return Embeddings(
            catalogue, documents(), EmbeddingLimits.from_env(os.environ), recorder=usage
        )

    if runs is None and settings.run_queue_url:
        runs = _run_service(settings, catalogue)
    if runs is not None:  # what agent runs use, built on first use
        runs.use(documents, embeddings, lambda: conversations().store)

    async def health(request: Request) -> Response:
        return JSONBytesResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        if not_ready is not None:
            raise not_ready
        return JSONBytesResponse({"status": "ready"})

    async def list_models(request: Request) -> Response:
        await authenticator.authenticate_async(request.headers)
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": catalogue.owner(name)}
            for name in catalogue.names()
        ]
        data += [
            {"id": name, "object": "model", "created": 0, "owned_by": name.partition("/")[0]}
            for name in catalogue.embedding_names()  # for POST /v1/embeddings only
        ]
        return JSONBytesResponse({"object": "list", "data": data})

    # The AI routes are served as plain ASGI (services.web.asgi.App): they are the hot path.
    async def chat_completions(request: Exchange, principal: Principal) -> Response:
        bind_caller(principal, "/v1/chat/completions")
        raw = await read_body(request, settings.max_request_bytes)
        parsed = parse_chat_json(raw) or parse_chat_request(decode_json(raw))
        conversation_id = conversation_id_of(parsed)
        if conversation_id is not None:
            return await _conversation_turn(
                conversations(), principal.tenant_id, parsed, conversation_id
            )
        key = idempotency_key(request)
        asked = {ROUTE_HEADER: parsed.model}  # the body's `model` is the one that answered
        if parsed.stream:
            if key is not None:
                raise InvalidRequest(
                    "Idempotency-Key applies to non-streamed chat completions; for a streamed "
                    "completion that survives a retry, create a run and follow its events.",
                    param="Idempotency-Key",
                    code="unsupported_parameter",
                )
            return EventStream(await chat.stream(parsed), {**SSE_HEADERS, **asked})
        wait = deadline(request)
        if runs is None or (key is None and wait is None):
            return JSONBytesResponse(await chat.complete(parsed), headers=asked)
        if key is not None:
            # A retried request with the same key gets the same run, and so the same answer.
            run, _ = await runs.create(
                principal,
                "chat.completion",
                decode_json(raw),
                background=False,
                idempotency_key=key,
            )
            run = await runs.wait(
                principal, run, wait if wait is not None else settings.run_wait_seconds
            )
            if run.status == "succeeded":
                return JSONBytesResponse(run.result, headers=asked)
            if run.terminal:
                return JSONBytesResponse({"error": run.error}, status_code=_status_of(run.error))
            return accepted(run)
        # Past the front door's deadline, the answer would be lost to API Gateway's wall:
        # hand the work to a run and answer 202 with where its result will be.
        work = asyncio.create_task(chat.complete(parsed))
        done, _ = await asyncio.wait({work}, timeout=wait)
        if done:
            return JSONBytesResponse(work.result(), headers=asked)
        return accepted(await runs.promote(principal, decode_json(raw), work))

    async def anthropic_messages(request: Exchange, principal: Principal) -> Response:
        """Anthropic's Messages API, for the `anthropic` SDK, on every provider."""
        bind_caller(principal, "/v1/messages")
        raw = await read_body(request, settings.max_request_bytes)
        parsed = parse_messages_json(raw) or parse_messages_request(decode_json(raw))
        asked = {ROUTE_HEADER: parsed.model}
        if parsed.stream:
            return EventStream(await messages.stream(parsed), {**SSE_HEADERS, **asked})
        return JSONBytesResponse(await messages.complete(parsed), headers=asked)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        _allow_open_files()
        consumer = asyncio.create_task(runs.consume()) if runs is not None else None
        if writer is not None:
            await asyncio.to_thread(writer.prepare)
            writer.start()
        # What start-up built (modules, models, clients) lives as long as the process: out
        # of the collector's sight, a full collection no longer walks it, and no longer
        # stalls every request for a few hundred milliseconds (the worker's p99). Young
        # collections come every `gc_threshold` allocations (see WorkerSettings).
        gc.collect()
        gc.freeze()
        gc.set_threshold(settings.gc_threshold, *gc.get_threshold()[1:])
        # A thread doing Python work (a cache refresh's boto3 call, the run consumer) holds
        # the GIL for up to the switch interval before the event loop gets it back: 5 ms by
        # default, which was most of the worker's p99. Half a millisecond bounds that.
        sys.setswitchinterval(GIL_SWITCH_SECONDS)
        yield
        if runs is not None and consumer is not None:
            await runs.stop()
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
        if conversations.cache_info().currsize:
            await conversations().aclose()  # let abandoned streams finish storing
        if writer is not None:
            await writer.aclose()  # every call made so far is accounted
        for provider in providers.values():
            await provider.aclose()

    app = App(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/ready", ready, methods=["GET"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/chat/completions", Plain(admitted(chat_completions)), methods=["POST"]),
            Route("/v1/messages", Plain(admitted(anthropic_messages)), methods=["POST"]),
            *run_routes(
                runs,
                authenticator,
                settings.max_request_bytes,
                settings.run_wait_seconds,
                admission=admission,
            ),
            *agent_routes(authenticator),
            *document_routes(
                authenticator,
                settings.max_request_bytes,
                documents=documents,
                embeddings=embeddings,
                admission=admission,
            ),
            *tool_routes(
                authenticator,
                catalogue,
                settings.max_request_bytes,
                documents=documents,
                embeddings=embeddings,
                admission=admission,
            ),
        ],
        lifespan=lifespan,
    )
    install_error_handlers(app)
    return app


def _readiness(catalogue: Catalogue) -> ServiceUnavailable | None:
    """Why this worker cannot do real work, or None when it can."""
    if catalogue.real_models():
        return None
    if catalogue.simulator == "off":
        also = "and the simulator is off: no model can answer"
    else:
        also = f"only the simulator answers (SWITCHBOARD_SIMULATOR={catalogue.simulator})"
    return ServiceUnavailable(
        "No real model provider is configured (no provider key in the environment or in "
        f"the provider-keys secret), {also}. Set a provider's key; see the README's "
        "Providers section.",
        code="no_provider_configured",
    )


def _allow_open_files() -> None:
    """Raise this process's open-file limit to its hard limit (the image's default soft
    limit is often 1,024): each streamed completion holds two descriptors, the client's
    connection and the upstream's."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _run_service(settings: WorkerSettings, catalogue: Catalogue) -> RunService:
    assert settings.run_queue_url is not None and settings.run_dlq_url is not None
    store = RunStore(
        boto3.client("dynamodb"), settings.table, retention_days=settings.run_retention_days
    )
    return RunService(
        store,
        boto3.client("sqs"),
        catalogue,
        RunSettings(
            queue_url=settings.run_queue_url,
            dlq_url=settings.run_dlq_url,
            worker_id=settings.worker_id,
            advertise_url=settings.advertise_url or ecs.advertise_url(os.environ),
            lease_seconds=settings.run_lease_seconds,
            heartbeat_seconds=settings.run_heartbeat_seconds,
            watchdog_seconds=settings.run_watchdog_seconds,
            max_attempts=settings.run_max_attempts,
            poll_seconds=settings.run_poll_seconds,
        ),
        internal_token=settings.internal_token,
    )


def _status_of(error: dict[str, Any] | None) -> int:
    """The HTTP status a retried request gets for its run's failure."""
    error = error or {}
    if error.get("code") == "run_cancelled":
        return 409
    return {"upstream_error": 502, "timeout": 504, "invalid_request_error": 400}.get(
        str(error.get("type")), 500
    )


async def _conversation_turn(
    conversations: ConversationChat, tenant: str, parsed: ChatCompletionRequest, cid: str
) -> Response:
    """A chat completion in a stored conversation (see services.chat.conversation)."""
    asked = {ROUTE_HEADER: parsed.model}
    if parsed.stream:
        frames, headers = await conversations.stream(tenant, parsed, cid)
        return EventStream(frames, {**SSE_HEADERS, **headers, **asked})
    body, headers = await conversations.complete(tenant, parsed, cid)
    return JSONBytesResponse(body, headers={**headers, **asked})
