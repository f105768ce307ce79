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
