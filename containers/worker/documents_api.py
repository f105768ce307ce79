"""The documents API and `POST /v1/embeddings` on the worker.

Documents (`services/documents/store.py` has the types, limits and errors):
- `POST /v1/documents` with a JSON body `{"filename", "content_type"?, "data": <base64>,
  "folder"?}`: a small file in the request itself. JSON, not multipart: API Gateway (REST)
  passes a JSON body through unchanged, while a binary multipart body would need binary
  media types on the API and arrive base64-encoded anyway. The body may be up to
  `DocumentSettings.max_body_bytes` (the base64 of the largest file, and some room).
- `POST /v1/documents/uploads` with `{"filename", "content_type"?, "size_bytes"?,
  "folder"?}`: a `pending_upload` document and a presigned S3 PUT URL (`upload`: `url`,
  `method`, `headers` to send with the PUT, `expires_at`); then
  `POST /v1/documents/{id}/complete` checks the uploaded file and extracts its text.
- `GET /v1/documents` (`limit` 1-100, `after` cursor, `kind`), `GET /v1/documents/{id}`,
  `DELETE /v1/documents/{id}`, and `GET /v1/documents/{id}/content`, a 307 redirect to a
  short-lived presigned S3 GET URL (files never pass through the front doors' Lambdas).

Embeddings: `POST /v1/embeddings`, OpenAI's Embeddings API (`input` a string or a list of
strings, `model` defaulting to `local/embedding`, `encoding_format` float or base64,
`dimensions`, `user`). It is AI work: admitted like every AI route, and bounded by the
sync deadline (services/runs/sync.py; past it, a run of kind `embedding` holds the result).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.documents.embeddings import Embeddings
from services.documents.requests import DocumentUpload, EmbeddingRequest, UploadRequest
from services.documents.store import DocumentStore, check_document_id
from services.errors import InvalidRequest
from services.runs.model import Run
from services.runs.sync import Caller, CallKind, SyncCalls, reply
from services.tenancy.auth import Authenticator, Principal
from services.tenancy.limits import Admission, guard
from services.usage.context import bind
from services.web.asgi import JSONBytesResponse, decode_json, read_body
from services.web.params import page_limit
from services.wire.openai import invalid_request

CONTENT_URL_SECONDS = 300
EMBEDDING = "embedding"  # the run kind of an embeddings call promoted past the deadline


def _parse(model: type[BaseModel], body: Any) -> Any:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_body")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise invalid_request(exc) from None


def document_endpoints(
    authenticator: Authenticator,
    max_request_bytes: int,
    calls: SyncCalls,
    *,
    documents: Callable[[], DocumentStore],
    embeddings: Callable[[], Embeddings],
    admission: Admission | None = None,
) -> tuple[dict[tuple[str, str], Callable[[Request], Any]], CallKind]:
    """The endpoints by the route table's (method, path), over the worker's `documents()`
    and `embeddings()` (built by the app); and the run kind of a late embeddings call."""

    async def principal_of(request: Request, route: str) -> Principal:
        principal = await authenticator.authenticate_async(request.headers)
        bind(principal, route)
        return principal

    async def upload(request: Request) -> Response:
        principal = await principal_of(request, "/v1/documents")
        store = documents()
        body = decode_json(await read_body(request, store.settings.max_body_bytes))
        parsed: DocumentUpload = _parse(DocumentUpload, body)
        try:
            data = base64.b64decode(parsed.data, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest(
                "'data' must be the file's bytes, base64-encoded.",
                param="data",
                code="invalid_value",
            ) from None
        document = await store.put(
            principal.tenant_id, parsed.filename, parsed.content_type, data, folder=parsed.folder
        )
        return JSONBytesResponse(document.public())

    async def create_upload(request: Request) -> Response:
        principal = await principal_of(request, "/v1/documents/uploads")
        body = decode_json(await read_body(request, max_request_bytes))
        parsed: UploadRequest = _parse(UploadRequest, body)
        document, target = await documents().create_upload(
            principal.tenant_id,
            parsed.filename,
            parsed.content_type,
            size_bytes=parsed.size_bytes,
            folder=parsed.folder,
        )
        return JSONBytesResponse({"document": document.public(), "upload": target.public()})

    async def complete(request: Request) -> Response:
        principal = await principal_of(request, "/v1/documents/complete")
        document_id = request.path_params["document_id"]
        document = await documents().complete(principal.tenant_id, document_id)
        return JSONBytesResponse(document.public())

    async def list_documents(request: Request) -> Response:
        principal = await principal_of(request, "/v1/documents")
        query = request.query_params
        page, cursor = await documents().list(
            principal.tenant_id,
            limit=page_limit(query.get("limit")),
            cursor=query.get("after"),
            kind=query.get("kind"),
        )
        return JSONBytesResponse(
            {
                "object": "list",
                "data": [d.public() for d in page],
                "has_more": cursor is not None,
                "next_cursor": cursor,
            }
        )

    async def document(request: Request) -> Response:
        principal = await principal_of(request, "/v1/documents")
        document_id = request.path_params["document_id"]
        store = documents()
        if request.method == "DELETE":
            await store.delete(principal.tenant_id, document_id)
            return JSONBytesResponse(
                {"id": document_id, "object": "document.deleted", "deleted": True}
            )
        return JSONBytesResponse((await store.get(principal.tenant_id, document_id)).public())

    async def content(request: Request) -> Response:
        principal = await principal_of(request, "/v1/documents/content")
        document_id = check_document_id(request.path_params["document_id"])
        url = await documents().download_url(principal.tenant_id, document_id, CONTENT_URL_SECONDS)
        return RedirectResponse(url, status_code=307)

    async def embed(request: Request, principal: Principal) -> Response:
        bind(principal, "/v1/embeddings")
        caller = Caller.of(principal, request.headers)
        body = decode_json(await read_body(request, max_request_bytes))
        work = compute(_embedding_request(body))
        return reply(await calls.call(caller, EMBEDDING, lambda: body, work), caller)

    async def compute(parsed: EmbeddingRequest) -> Any:
        inputs = [parsed.input] if isinstance(parsed.input, str) else parsed.input
        result = await embeddings().embed(parsed.model, inputs, dimensions=parsed.dimensions)
        return result.public(parsed.encoding_format)

    async def again(run: Run) -> Any:
        return await compute(_embedding_request(run.input))

    endpoints: dict[tuple[str, str], Callable[[Request], Any]] = {
        ("POST", "/v1/documents"): upload,
        ("GET", "/v1/documents"): list_documents,
        ("POST", "/v1/documents/uploads"): create_upload,
        ("GET", "/v1/documents/{document_id}"): document,
        ("DELETE", "/v1/documents/{document_id}"): document,
        ("POST", "/v1/documents/{document_id}/complete"): complete,
        ("GET", "/v1/documents/{document_id}/content"): content,
        ("POST", "/v1/embeddings"): guard(authenticator, admission, embed),
    }
    return endpoints, CallKind(EMBEDDING, again)


def _embedding_request(body: Any) -> EmbeddingRequest:
    raw = body.get("input") if isinstance(body, dict) else None
    if isinstance(raw, list) and raw and not all(isinstance(i, str) for i in raw):
        raise InvalidRequest(
            "'input' must be a string or a list of strings; token arrays are not supported.",
            param="input",
            code="unsupported_parameter",
        )
    parsed: EmbeddingRequest = _parse(EmbeddingRequest, body)
    return parsed
