"""Errors as values a client can act on: every error response has the OpenAI error shape,

`{"error": {"message": str, "type": str, "param": str | null, "code": str | null}}`,

except on Anthropic's Messages API (`/v1/messages`), where it has Anthropic's,
`{"type": "error", "error": {"type": str, "message": str}}`, with Anthropic's error type
for the status, so the `anthropic` SDK raises the exception class it would raise for
Anthropic itself. `envelope_for(path, error)` picks the shape: every door renders an
`APIError` through it.

An error never echoes unbounded input: every message and param is bounded here, in
`bounded`, whichever code raised it. A run of more than `MAX_ECHO_CHARS` characters without
a space (a 2 MB model name, a path, a header value) is cut to that length, and the whole
text to `MAX_MESSAGE_CHARS`, each cut marked with "…".
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_ECHO_CHARS = 200
MAX_MESSAGE_CHARS = 2000
_LONG_RUN = re.compile(rf"\S{{{MAX_ECHO_CHARS + 1},}}")


def bounded(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text` with each run of more than `MAX_ECHO_CHARS` non-space characters cut to that
    length, and the whole cut to `limit` characters; "…" marks each cut."""
    if len(text) > MAX_ECHO_CHARS:
        text = _LONG_RUN.sub(lambda m: m.group()[: MAX_ECHO_CHARS - 1] + "…", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class APIError(Exception):
    """An error that answers the request with `status` and the OpenAI error body."""

    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        message = bounded(message)
        super().__init__(message)
        self.message = message
        self.param = None if param is None else bounded(param, MAX_ECHO_CHARS)
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, param=self.param, code=self.code)

    def json(self) -> bytes:
        return json.dumps(self.body(), separators=(",", ":")).encode()


class InvalidRequest(APIError):
    status = 400
    type = "invalid_request_error"


class AuthenticationFailed(APIError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(APIError):
    status = 403
    type = "permission_error"


class NotFound(APIError):
    status = 404
    type = "not_found_error"


class MethodNotAllowed(APIError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class PayloadTooLarge(APIError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UnsupportedMediaType(APIError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class RateLimited(APIError):
    """429: a rate limit or the tenant's budget; `headers` carry Retry-After where known."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class ToolFailed(APIError):
    """A tool could not do what it was asked (a corrupt document, a model that answered
    something unusable). 422: the request was well formed, the work failed. Here, not in
    the tool port, so what tools read (the documents) can raise it without pydantic."""

    status = 422
    type = "tool_error"
    code = "tool_failed"


class UpstreamError(APIError):
    status = 502
    type = "upstream_error"
    code = "bad_gateway"


class ServiceUnavailable(APIError):
    status = 503
    type = "server_error"
    code = "service_unavailable"


class GatewayTimeout(APIError):
    status = 504
    type = "timeout"
    code = "gateway_timeout"


def error_body(
    message: str, type: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def error_from_status(status: int, message: str) -> APIError:
    """The error class a bare HTTP status maps to, for errors raised outside our code."""
    classes: dict[int, type[APIError]] = {
        400: InvalidRequest,
        401: AuthenticationFailed,
        403: PermissionDenied,
        404: NotFound,
        405: MethodNotAllowed,
        413: PayloadTooLarge,
        415: UnsupportedMediaType,
        429: RateLimited,
        502: UpstreamError,
        503: ServiceUnavailable,
        504: GatewayTimeout,
    }
    cls = classes.get(status)
    if cls is None:
        kind = "server_error" if status >= 500 else "invalid_request_error"
        return APIError(message, status=status, type=kind)
    return cls(message)


# Anthropic's error type for each status (docs.claude.com/en/api/errors); any other 4xx is
# an invalid_request_error and any other 5xx an api_error, as Anthropic's API does.
ANTHROPIC_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
# Every error `type` an envelope of ours can carry: the types the code declares in OpenAI's
# shape (this module's classes, and those raised with `type=`) and Anthropic's above. The
# metrics' ErrorType dimension takes only these (services/telemetry/metrics.py);
# tests/unit/test_telemetry.py reads the code for any type missing here.
ERROR_TYPES: frozenset[str] = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "rate_limit_error",
        "insufficient_quota",
        "tool_error",
        "agent_error",
        "upstream_error",
        "server_error",
        "timeout",
        *ANTHROPIC_ERROR_TYPES.values(),
    }
)
# The routes that speak Anthropic's wire format (and so its errors).
ANTHROPIC_PATHS = ("/v1/messages",)


def speaks_anthropic(path: str) -> bool:
    """Whether `path` (with or without a stage prefix such as `/api`) is an Anthropic route."""
    path = path.rstrip("/")
    return any(path.endswith(p) or f"{p}/" in path for p in ANTHROPIC_PATHS)


def anthropic_error_type(status: int) -> str:
    found = ANTHROPIC_ERROR_TYPES.get(status)
    if found is not None:
        return found
    return "api_error" if status >= 500 else "invalid_request_error"


def anthropic_body(error: APIError) -> dict[str, Any]:
    """Anthropic's error body for `error`."""
    return {
        "type": "error",
        "error": {"type": anthropic_error_type(error.status), "message": error.message},
    }


def envelope_for(path: str, error: APIError) -> dict[str, Any]:
    """The error body a client of `path` expects: Anthropic's on `/v1/messages`, else OpenAI's."""
    return anthropic_body(error) if speaks_anthropic(path) else error.body()


def render(path: str, error: APIError) -> bytes:
    """`envelope_for(path, error)` as compact JSON bytes."""
    if not speaks_anthropic(path):
        return error.json()
    return json.dumps(anthropic_body(error), separators=(",", ":")).encode()


def untranslatable(param: str, message: str) -> APIError:
    """A request field the target provider or wire format cannot express: a 400 naming
    the field (never dropped silently)."""
    return InvalidRequest(message, param=param, code="unsupported_by_provider")
