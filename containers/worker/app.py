"""The AI worker: an ASGI app that serves chat completions from the configured providers.

Run it with `uvicorn containers.worker.app:create_app --factory`. It answers only callers
it can authenticate (an API key, or the internal credential of a front door); `/health`
is open so the load balancer can probe it and says nothing about the deployment.
"""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import boto3
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from containers.worker.settings import WorkerSettings
from services.asgi import JSONBytesResponse, decode_json, install_error_handlers, read_body
from services.auth import Authenticator
from services.catalogue import Catalogue
from services.chat import ChatService
from services.conversation_chat import (
    ConversationChat,
    conversation_id_of,
)
from services.conversations import ConversationSettings
from services.keys import KeyStore
from services.openai_chat import ChatCompletionRequest, parse_chat_request
from services.providers import build_providers
from services.providers.base import Provider
from services.sse import HEADERS as SSE_HEADERS


def create_app(
    settings: WorkerSettings | None = None,
    *,
    providers: dict[str, Provider] | None = None,
    authenticator: Authenticator | None = None,
) -> Starlette:
    settings = settings or WorkerSettings.from_env()
    if providers is None:
        providers = build_providers(os.environ)
    if authenticator is None:
        keys = KeyStore(boto3.client("dynamodb"), settings.table)
        authenticator = Authenticator(
            keys, internal_token=settings.internal_token, cache_seconds=settings.key_cache_seconds
        )
    catalogue = Catalogue(providers)
    chat = ChatService(catalogue)
    conversation_settings = ConversationSettings.from_env(os.environ)

    @functools.cache
    def conversations() -> ConversationChat:
        """Built on the first conversation turn, so a worker without one needs no AWS."""
        store = conversation_settings.store(settings.table)
        return ConversationChat(chat, store, max_turn_chars=conversation_settings.max_turn_chars)

    async def health(request: Request) -> Response:
        return JSONBytesResponse({"status": "ok"})

    async def list_models(request: Request) -> Response:
        await authenticator.authenticate_async(request.headers)
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": catalogue.owner(name)}
            for name in catalogue.names()
        ]
        return JSONBytesResponse({"object": "list", "data": data})

    async def chat_completions(request: Request) -> Response:
        await authenticator.authenticate_async(request.headers)
        body = decode_json(await read_body(request, settings.max_request_bytes))
        parsed = parse_chat_request(body)
        conversation_id = conversation_id_of(parsed)
        if conversation_id is not None:
            principal = await authenticator.authenticate_async(request.headers)
            return await _conversation_turn(
                conversations(), principal.tenant_id, parsed, conversation_id
            )
        if parsed.stream:
            frames = await chat.stream(parsed)
            return StreamingResponse(frames, media_type="text/event-stream", headers=SSE_HEADERS)
        return JSONBytesResponse(await chat.complete(parsed))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if conversations.cache_info().currsize:
            await conversations().aclose()  # let abandoned streams finish storing
        for provider in providers.values():
            await provider.aclose()

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    install_error_handlers(app)
    return app


async def _conversation_turn(
    conversations: ConversationChat, tenant: str, parsed: ChatCompletionRequest, cid: str
) -> Response:
    """A chat completion in a stored conversation (see services.conversation_chat)."""
    if parsed.stream:
        frames, headers = await conversations.stream(tenant, parsed, cid)
        return StreamingResponse(
            frames, media_type="text/event-stream", headers={**SSE_HEADERS, **headers}
        )
    body, headers = await conversations.complete(tenant, parsed, cid)
    return JSONBytesResponse(body, headers=headers)
