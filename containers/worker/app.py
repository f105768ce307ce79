"""The AI worker: an ASGI app that serves chat completions from the configured providers.

Run it with `uvicorn containers.worker.app:create_app --factory`. It answers only callers
it can authenticate (an API key, or the internal credential of a front door); `/health`
is open so the load balancer can probe it and says nothing about the deployment.
"""

from __future__ import annotations

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
from services.keys import KeyStore
from services.openai_chat import parse_chat_request
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
        if parsed.stream:
            frames = await chat.stream(parsed)
            return StreamingResponse(frames, media_type="text/event-stream", headers=SSE_HEADERS)
        return JSONBytesResponse(await chat.complete(parsed))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
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
