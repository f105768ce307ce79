"""The bodies API Gateway itself answers with when the request never reaches (or never
returns from) the gateway Lambda. The CDK front-door stack configures them as gateway
responses and the local API Gateway emulator answers with the same ones, so clients see
the OpenAI error shape even from API Gateway."""

from __future__ import annotations

from services.errors import error_body

INTEGRATION_TIMEOUT = error_body(
    "The request took longer than the API Gateway integration timeout.",
    "timeout",
    code="gateway_timeout",
)
DEFAULT_4XX = error_body(
    "API Gateway rejected the request.", "invalid_request_error", code="gateway_rejected"
)
DEFAULT_5XX = error_body(
    "API Gateway could not get a valid answer from the gateway function.",
    "server_error",
    code="gateway_error",
)
REQUEST_TOO_LARGE = error_body(
    "The request is larger than API Gateway's 10 MB payload limit.",
    "invalid_request_error",
    code="request_too_large",
)
