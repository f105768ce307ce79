"""Errors as values a client can act on: every error response has the OpenAI error shape.

`{"error": {"message": str, "type": str, "param": str | null, "code": str | null}}`

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
