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
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from services.errors import AuthenticationFailed
from services.frontdoor.settings import FrontDoorSettings
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


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Allow the request for a valid key; raise `Exception("Unauthorized")` otherwise.
    Anything else (the table unreachable) raises as it is: API Gateway answers 500."""
    method_arn = event.get("methodArn")
    if not isinstance(method_arn, str) or not method_arn.startswith("arn:"):
        raise ValueError("not a REQUEST authorizer event: no methodArn")
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    try:
        principal = authenticator().authenticate(headers)
    except AuthenticationFailed as refused:
        log.info("refused %s: %s", event.get("path"), refused.code)
        raise Exception(UNAUTHORIZED) from None
    return allow(principal, method_arn)


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
