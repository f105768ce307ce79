"""The API's Lambda authorizer (REST, REQUEST type) on the routes that go to the worker.

API Gateway calls it before any `WORKER` route reaches the VPC. It authenticates the API
key the client sent, as `Authorization: Bearer <key>` or as Anthropic's `x-api-key`, with
the same key store and 5 s cache as every component:

- a valid key: an IAM policy that allows this one call (the method ARN of the request:
  caching is off, so a policy never outlives the request it was made for), with the
  tenant and key id in the context (`$context.authorizer.tenant`, `.key_id`);
- a missing, unknown or revoked key: `Exception("Unauthorized")`, which API Gateway
  answers with 401 (its UNAUTHORIZED gateway response, in the OpenAI error shape); the
  request goes no further.

The authorizer has no identity sources, and its result cache is off: API Gateway ANDs
identity sources and refuses a request that lacks one before the authorizer runs, so
naming `Authorization` would refuse every Anthropic client; and caching needs identity
sources. The worker authenticates the same key again: this is the edge's check, not the
only one. Like the gateway it imports no provider SDK and builds its clients on first use.

Each decision is one log line (`authorized` or `refused`, with the route, the tenant when
known, and the call's correlation id: the client's sane `x-request-id`, else API Gateway's
`requestId`, as the worker will pick it) and counted (`Requests`; a refusal as a
`ClientErrors` of type `authentication_error`), one EMF line per invocation.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from services import metrics_names as names
from services.errors import AuthenticationFailed
from services.frontdoor.settings import FrontDoorSettings
from services.telemetry.context import CURRENT, begin
from services.telemetry.function import FunctionTelemetry
from services.telemetry.ids import REQUEST_ID_HEADER, choose
from services.tenancy.auth import Authenticator, Principal

log = logging.getLogger("switchboard.authorizer")

UNAUTHORIZED = "Unauthorized"  # the message API Gateway turns into a 401

_authenticator: Authenticator | None = None


def authenticator() -> Authenticator:
    """The key store's authenticator, built once per execution environment."""
    global _authenticator
    if _authenticator is None:
        import boto3

        from services.tenancy.keys import KeyStore

        settings = FrontDoorSettings.from_env(os.environ)
        keys = KeyStore(boto3.client("dynamodb"), settings.table)
        _authenticator = Authenticator(keys, cache_seconds=settings.key_cache_seconds)
    return _authenticator


def _route_paths() -> list[str]:
    from services.frontdoor.routes import paths

    return list(paths())


TELEMETRY = FunctionTelemetry(names.AUTHORIZER_SERVICE, _route_paths)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Allow the request for a valid key; raise `Exception("Unauthorized")` otherwise.
    Anything else (the table unreachable) raises as it is: API Gateway answers 500."""
    method_arn = event.get("methodArn")
    if not isinstance(method_arn, str) or not method_arn.startswith("arn:"):
        raise ValueError("not a REQUEST authorizer event: no methodArn")
    output, measured = TELEMETRY.get()
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    edge = (event.get("requestContext") or {}).get("requestId")
    route = event.get("resource") if isinstance(event.get("resource"), str) else None
    call, token = begin(
        choose(headers.get(REQUEST_ID_HEADER), edge),
        str(event.get("httpMethod") or ""),
        route,
        TELEMETRY.invocation(context),
    )
    fields: dict[str, Any] = {"method": call.method, "route": route}
    try:
        try:
            principal = authenticator().authenticate(headers)
        except AuthenticationFailed as refused:
            measured.count(names.REQUESTS, route=route)
            measured.count(names.CLIENT_ERRORS, route=route, error_type=refused.type)
            fields.update(error_code=refused.code, duration_ms=_ms(call.started))
            output.line("INFO", "refused", fields)
            raise Exception(UNAUTHORIZED) from None
        except Exception:
            measured.count(names.REQUESTS, route=route)
            measured.count(names.ERRORS, route=route, error_type="server_error")
            raise
        measured.count(names.REQUESTS, route=route)
        fields.update(tenant_id=principal.tenant_id, duration_ms=_ms(call.started))
        output.line("INFO", "authorized", fields)
        return allow(principal, method_arn)
    finally:
        # The authorizer's time is in front of every AI call (no cache): the dashboard
        # shows it beside the worker's.
        measured.observe(names.LATENCY, _ms(call.started), route=route)
        output.metrics(measured.documents())
        CURRENT.reset(token)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def allow(principal: Principal, method_arn: str) -> dict[str, Any]:
    """The authorizer's answer for `principal`: invoke this method only."""
    return {
        "principalId": f"{principal.tenant_id}/{principal.key_id}",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": method_arn}
            ],
        },
        "context": context_of(principal),
    }


def context_of(principal: Principal) -> Mapping[str, str]:
    return {"tenant": principal.tenant_id, "key_id": principal.key_id}
