"""Error bodies API Gateway itself answers with, in the OpenAI error shape.

The static bodies come from `services.frontdoor.gateway_responses`, which the local API Gateway
emulator answers with too, so the two cannot drift apart. (Infrastructure may read
runtime constants; runtime code never imports `infra`.)
"""

from __future__ import annotations

import json

from services.frontdoor import gateway_responses

UNAUTHORIZED_STATUS = 401
UNAUTHORIZED_BODY = gateway_responses.UNAUTHORIZED
ACCESS_DENIED_STATUS = 403
ACCESS_DENIED_BODY = gateway_responses.ACCESS_DENIED
INTEGRATION_TIMEOUT_STATUS = 504
INTEGRATION_TIMEOUT_BODY = gateway_responses.INTEGRATION_TIMEOUT
REQUEST_TOO_LARGE_STATUS = 413
REQUEST_TOO_LARGE_BODY = gateway_responses.REQUEST_TOO_LARGE


def _from_context(type_: str) -> str:
    # API Gateway fills these in: messageString is already a quoted JSON string and
    # responseType a bare word such as THROTTLED or MISSING_AUTHENTICATION_TOKEN. Both
    # envelopes at once, as services/frontdoor/gateway_responses.py explains.
    return (
        '{"type": "error", "error": {"message": $context.error.messageString, '
        f'"type": "{type_}", "param": null, "code": "$context.error.responseType"}}}}'
    )


UNAUTHORIZED_TEMPLATE = json.dumps(UNAUTHORIZED_BODY)
ACCESS_DENIED_TEMPLATE = json.dumps(ACCESS_DENIED_BODY)
INTEGRATION_TIMEOUT_TEMPLATE = json.dumps(INTEGRATION_TIMEOUT_BODY)
REQUEST_TOO_LARGE_TEMPLATE = json.dumps(REQUEST_TOO_LARGE_BODY)
DEFAULT_4XX_TEMPLATE = _from_context("invalid_request_error")
DEFAULT_5XX_TEMPLATE = _from_context("server_error")
