"""The AI worker: an ASGI app that serves the AI routes of the route table.

Run it with `uvicorn containers.worker.app:create_app --factory`. This module only wires:
what a route does lives in the API modules beside it and in `services/` (chat policy:
`services.runs.chat_policy`; the sync deadline: `services.runs.sync`; how the worker stops:
`containers.worker.lifecycle`), and which routes it serves comes from
`services.frontdoor.routes` (`containers.worker.routing`).

It answers only callers it can authenticate, each with their own API key, on every path;
`/health` is open so the load balancer can probe it and says nothing about the deployment.
`/ready` says whether the worker can do real work: 200, or 503 with the reason in the
OpenAI error envelope (no real model provider is configured, which is also logged as a
warning at start; or the state table does not answer).

Every request is served through the observer (`services.web.access`): its correlation id
in `x-request-id`, one JSON access line, and its metrics, which the worker writes as EMF
every `SWITCHBOARD_METRICS_INTERVAL_SECONDS` and at shutdown (`services.telemetry`).
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
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import boto3
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from containers.worker import ecs
from containers.worker.agents_api import agent_endpoints
from containers.worker.documents_api import document_endpoints
from containers.worker.lifecycle import Drain, Streams
from containers.worker.models_api import model_endpoints
from containers.worker.routing import table_405, table_routes
from containers.worker.runs_api import internal_routes, run_endpoints
from containers.worker.settings import WorkerSettings
from containers.worker.tools_api import tool_endpoints
from services import metrics_names
from services.agents.kind import AgentKind
from services.chat.completions import ChatService
from services.chat.conversation import ConversationChat
from services.chat.messages import MessagesService
from services.conversations.store import ConversationSettings
from services.documents.embeddings import EmbeddingLimits, Embeddings
from services.documents.model import DocumentSettings
from services.documents.store import DocumentStore, build_store
from services.errors import ServiceUnavailable
from services.frontdoor.routes import paths, template
from services.models.catalogue import Catalogue, CatalogueConfig
from services.models.provider_keys import provider_env
from services.models.routing import RoutingSettings
from services.providers import build_providers
from services.providers.base import Provider
from services.providers.timeouts import Timeouts
from services.runs.chat_policy import ChatPolicy
from services.runs.kinds import BUILTIN
from services.runs.service import RunService, RunSettings
from services.runs.store import RunStore
from services.runs.sync import Caller, SyncCalls, idempotency_key
from services.telemetry import logs, metrics
from services.tenancy.auth import Authenticator, Principal
from services.tenancy.keys import KeyStore
from services.tenancy.limits import Admission, guard
from services.usage.calls import CallRecorder
from services.usage.context import bind as bind_caller
from services.usage.writer import UsageWriter, writer_for_table
from services.web.access import Observer
from services.web.asgi import (
    App,
    EventStream,
    Exchange,
    JSONBytesResponse,
    Plain,
    install_error_handlers,
    read_body,
)
from services.web.ready import TableProbe

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
    protection: ecs.TaskProtection | None = None,
) -> Starlette:
    """`usage` is told of every provider call; by default, when the app reads API keys
    from the table itself (no `authenticator` passed), calls are written to that table."""
    settings = settings or WorkerSettings.from_env()
    output = logs.configure(metrics_names.WORKER_SERVICE, os.environ)
    measured = metrics.install(metrics.Metrics(metrics_names.WORKER_SERVICE, routes=paths()))
    emitter = metrics.Emitter(measured, output, settings.metrics_interval_seconds)
    writer: UsageWriter | None = None
    if usage is None and authenticator is None:
        usage = writer = writer_for_table(settings.table, os.environ)
    if providers is None:
        providers = build_providers(
            provider_env(os.environ, lambda: boto3.client("secretsmanager"))
        )
    if authenticator is None:
        keys = KeyStore(boto3.client("dynamodb"), settings.table)
        authenticator = Authenticator(keys, cache_seconds=settings.key_cache_seconds)
    if admission is None:
        admission = Admission(
            boto3.client("dynamodb"), settings.table, cache_seconds=settings.limits_cache_seconds
        )
    if protection is None:
        protection = ecs.TaskProtection(
            os.environ.get(ecs.AGENT_ENV), minutes=settings.task_protection_minutes
        )
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
    conversation_settings = ConversationSettings.from_env(os.environ)
    chat = ChatService(catalogue)

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

    streams = Streams(protection.changed)
    measured.gauge(metrics_names.STREAMS_OPEN, lambda: streams.open)
    table = TableProbe(settings.table)
    stream = functools.partial(EventStream, heartbeat=settings.heartbeat_seconds, gauge=streams)
    calls = SyncCalls(runs, settings.sync_deadline_seconds)
    policy = ChatPolicy(chat, MessagesService(catalogue), conversations, calls, stream)
    tools, tool_kind = tool_endpoints(
        authenticator,
        catalogue,
        settings.max_request_bytes,
        calls,
        documents=documents,
        embeddings=embeddings,
        admission=admission,
    )
    docs, embedding_kind = document_endpoints(
        authenticator,
        settings.max_request_bytes,
        calls,
        documents=documents,
        embeddings=embeddings,
        admission=admission,
    )
    if runs is not None:  # a late call's run, should another worker take it over
        for kind in (*policy.kinds(), tool_kind, embedding_kind):
            runs.register(kind)

    async def health(request: Request) -> Response:
        return JSONBytesResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        if not_ready is not None:
            raise not_ready
        problem = await table.problem_async()
        if problem is not None:
            raise ServiceUnavailable(f"Not ready: {problem}.", code="not_ready")
        return JSONBytesResponse({"status": "ready"})

    # The two chat routes are the hot path: plain ASGI (services.web.asgi.Plain).
    async def chat_completions(request: Exchange, principal: Principal) -> Response:
        bind_caller(principal, "/v1/chat/completions")
        raw = await read_body(request, settings.max_request_bytes)
        caller = Caller.of(principal, request.headers)
        return await policy.chat_completion(caller, raw, idempotency_key(request.headers))

    async def anthropic_messages(request: Exchange, principal: Principal) -> Response:
        bind_caller(principal, "/v1/messages")
        raw = await read_body(request, settings.max_request_bytes)
        return await policy.message(Caller.of(principal, request.headers), raw)

    admitted = functools.partial(guard, authenticator, admission)
    endpoints: dict[tuple[str, str], Callable[..., Any]] = {
        **model_endpoints(authenticator, catalogue),
        ("POST", "/v1/chat/completions"): Plain(admitted(chat_completions)),
        ("POST", "/v1/messages"): Plain(admitted(anthropic_messages)),
        **run_endpoints(
            runs, authenticator, settings.max_request_bytes, calls, stream, admission=admission
        ),
        **agent_endpoints(authenticator),
        **docs,
        **tools,
    }

    async def close_conversations() -> None:
        if conversations.cache_info().currsize:
            await conversations().aclose()  # let abandoned streams finish storing

    async def close_providers() -> None:
        for provider in providers.values():
            await provider.aclose()

    closers = [
        ("conversations", close_conversations),
        *([("usage writer", writer.aclose)] if writer is not None else []),
        ("task protection", protection.aclose),
        ("providers", close_providers),
        ("metrics", emitter.aclose),  # last: the usage writer's final tokens and cost
    ]
    drain = Drain(streams, runs, closers)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        _allow_open_files()
        if runs is not None:
            runs.start()
        if writer is not None:
            await asyncio.to_thread(writer.prepare)
            writer.start()
        protection.start()
        emitter.start()
        drain.install()
        _tune_for_the_hot_path(settings.gc_threshold)
        yield
        await drain.finish()

    app = App(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/ready", ready, methods=["GET"]),
            *table_routes(endpoints),
            *internal_routes(runs, authenticator, stream),
        ],
        lifespan=lifespan,
        observer=Observer(output, template),
    )
    install_error_handlers(app)
    app.add_exception_handler(HTTPException, table_405)
    app.state.drain = drain
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


def _tune_for_the_hot_path(gc_threshold: int) -> None:
    # What start-up built (modules, models, clients) lives as long as the process: out
    # of the collector's sight, a full collection no longer walks it, and no longer
    # stalls every request for a few hundred milliseconds (the worker's p99). Young
    # collections come every `gc_threshold` allocations (see WorkerSettings).
    gc.collect()
    gc.freeze()
    gc.set_threshold(gc_threshold, *gc.get_threshold()[1:])
    # A thread doing Python work (a cache refresh's boto3 call, the run consumer) holds
    # the GIL for up to the switch interval before the event loop gets it back: 5 ms by
    # default, which was most of the worker's p99. Half a millisecond bounds that.
    sys.setswitchinterval(GIL_SWITCH_SECONDS)


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
        kinds=(*BUILTIN, AgentKind()),
    )
