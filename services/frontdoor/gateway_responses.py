"""The bodies API Gateway itself answers with when a request never reaches (or never
returns from) its integration: the gateway Lambda, or the worker behind the private
integration. The CDK front-door stack configures them as gateway responses and the local
API Gateway emulator answers with the same ones, so clients see the OpenAI error shape
even from API Gateway."""

from __future__ import annotations

from services.errors import error_body

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
# The Lambda authorizer refused the key (it raised "Unauthorized"): no key, or an unknown
# or revoked one. API Gateway cannot say which, so the message names both.
UNAUTHORIZED = error_body(
    "Missing or incorrect API key. Send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'.",
    "authentication_error",
    code="invalid_api_key",
)
# The authorizer failed (it could not read the key store): not the client's fault.
AUTHORIZER_FAILURE = error_body(
    "The API could not check the API key; try again.", "server_error", code="authorizer_failure"
)
