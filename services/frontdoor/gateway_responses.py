"""The bodies API Gateway itself answers with when a request never reaches (or never
returns from) its integration: the gateway Lambda, or the worker behind the private
integration. The CDK front-door stack configures them as gateway responses and the local
API Gateway emulator answers with the same ones.

One gateway response serves every path, `/v1/messages` too, so each body is readable as
both envelopes: OpenAI's `{"error": {"message", "type", "param", "code"}}` with Anthropic's
`"type": "error"` beside it (each SDK ignores the other's field), and an error `type` that
both know where one fits (`authentication_error`, `permission_error`...).
"""

from __future__ import annotations

from typing import Any

from services.errors import error_body as _openai_body


def error_body(
    message: str, type: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """An error body both the openai and the anthropic SDK read."""
    return {"type": "error", **_openai_body(message, type, param=param, code=code)}


INTEGRATION_TIMEOUT = error_body(
    "The request took longer than the API Gateway integration timeout.",
    "timeout",
    code="gateway_timeout",
)
# What the stack's DEFAULT_5XX template renders when the function fails (crashes, or
# returns something that is not a proxy result): API Gateway's message and response type.
FUNCTION_FAILED = error_body("Internal server error", "server_error", code="DEFAULT_5XX")
REQUEST_TOO_LARGE = error_body(
    "The request is larger than API Gateway's 10 MB payload limit.",
    "invalid_request_error",
    code="request_too_large",
)
# The edge authorizer on WORKER routes: an unknown, revoked or missing key (UNAUTHORIZED),
# or a key the authorizer's policy denies (ACCESS_DENIED). The worker answers the same
# shapes when it checks the key itself.
UNAUTHORIZED = error_body(
    "Invalid or missing API key: send it as 'Authorization: Bearer <key>' or 'x-api-key'.",
    "authentication_error",
    code="invalid_api_key",
)
ACCESS_DENIED = error_body(
    "This API key is not allowed to call this route.",
    "permission_error",
    code="access_denied",
)
# The authorizer failed (it could not read the key store, raised anything else, timed out
# or answered malformed): not the client's fault. API Gateway answers 500.
AUTHORIZER_FAILURE = error_body(
    "The API could not check the API key; try again.", "server_error", code="authorizer_failure"
)
