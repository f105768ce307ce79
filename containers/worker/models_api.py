"""`GET /v1/models` on the worker: the model names a caller can use (provider models,
aliases and routes), and the embedding models (for `POST /v1/embeddings` only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from services.models.catalogue import Catalogue
from services.tenancy.auth import Authenticator
from services.web.asgi import JSONBytesResponse


def model_endpoints(
    authenticator: Authenticator, catalogue: Catalogue
) -> dict[tuple[str, str], Callable[[Request], Any]]:
    """The endpoints by the route table's (method, path)."""

    async def list_models(request: Request) -> Response:
        await authenticator.authenticate_async(request.headers)
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": catalogue.owner(name)}
            for name in catalogue.names()
        ]
        data += [
            {"id": name, "object": "model", "created": 0, "owned_by": name.partition("/")[0]}
            for name in catalogue.embedding_names()
        ]
        return JSONBytesResponse({"object": "list", "data": data})

    return {("GET", "/v1/models"): list_models}
