"""Lambda handlers the API Gateway emulator's tests run, each in an execution environment
of its own (`devstack.lambda_runtime` imports this module in a new process)."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

INVOCATIONS = 0  # per environment: module globals live as long as it does


def _header(event: dict[str, Any], name: str, default: str = "") -> str:
    return str((event.get("headers") or {}).get(name, default))


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Sleeps `x-sleep` seconds, then answers with what it saw and when."""
    global INVOCATIONS
    INVOCATIONS += 1
    started = time.time()
    time.sleep(float(_header(event, "x-sleep", "0")))
    marker = _header(event, "x-marker")
    if marker:
        Path(marker).write_text("finished")
    body = {
        "pid": os.getpid(),
        "invocations": INVOCATIONS,
        "started": started,
        "ended": time.time(),
        "body": event["body"],
        "remaining_ms": context.get_remaining_time_in_millis(),
        "request_id": context.aws_request_id,
    }
    return {"statusCode": 200, "body": json.dumps(body)}


def crash(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global INVOCATIONS
    INVOCATIONS += 1
    if _header(event, "x-exit"):
        os._exit(3)
    raise RuntimeError("boom")


def malformed(event: dict[str, Any], context: Any) -> Any:
    return "not a proxy result"


def unserializable(event: dict[str, Any], context: Any) -> Any:
    return {"statusCode": 200, "body": object()}


def binary(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {
        "statusCode": 201,
        "headers": {
            "content-type": "application/octet-stream",
            "x-event": base64.b64encode(
                json.dumps(
                    {
                        "isBase64Encoded": event["isBase64Encoded"],
                        "body": event["body"],
                        "resource": event["resource"],
                        "pathParameters": event["pathParameters"],
                        "contextPath": event["requestContext"]["path"],
                    }
                ).encode()
            ).decode(),
        },
        "multiValueHeaders": {"set-cookie": ["a=1", "b=2"]},
        "body": base64.b64encode(b"\x00\xff").decode(),
        "isBase64Encoded": True,
    }


def authorize(event: dict[str, Any], context: Any) -> Any:
    """A REQUEST authorizer on the contract of `lambdas.gateway.authorizer`: the key is
    `Authorization: Bearer <key>` or `x-api-key`. `good` is allowed (this method only),
    `deny` gets a Deny policy, `other-method` an Allow for another method, `crash` and
    `malformed` fail as a broken authorizer would; anything else is "Unauthorized".
    With `x-event-file`, the event is written there first."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    record = headers.get("x-event-file")
    if record:
        Path(record).write_text(json.dumps(event))
    key = headers.get("authorization", "").removeprefix("Bearer ") or headers.get("x-api-key")
    arn = event["methodArn"]
    if key in ("good", "deny", "other-method"):
        effect = "Deny" if key == "deny" else "Allow"
        stage = "/".join(arn.split("/")[:2])  # arn:aws:execute-api:...:<api>/<stage>
        resource = f"{stage}/DELETE/*" if key == "other-method" else arn
        statement = {"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}
        return {
            "principalId": f"tenant/{key}",
            "policyDocument": {"Version": "2012-10-17", "Statement": [statement]},
            "context": {"tenant": "tenant", "key_id": key},
        }
    if key == "crash":
        raise RuntimeError("the key store is unreachable")
    if key == "malformed":
        return {"principalId": "x", "policyDocument": {"Statement": "nope"}}
    if key == "slow":
        time.sleep(5)
    raise Exception("Unauthorized")
