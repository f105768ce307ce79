"""A Powertools handler for the emulator's tests: like the gateway Lambda's, its router
keeps the current event in one attribute, which two invocations in one environment at
once would share."""

from __future__ import annotations

import os
import time
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import APIGatewayRestResolver

app = APIGatewayRestResolver()


@app.post("/v1/things")
def things() -> dict[str, Any]:
    first = app.current_event.json_body
    time.sleep(float(app.current_event.headers.get("x-sleep", "0")))
    event = app.current_event  # read again after a pause: still this invocation's event?
    return {
        "first": first,
        "body": event.json_body,
        "query": event.get_query_string_value("q"),
        "header": event.headers.get("x-custom"),
        "stage": event.request_context.stage,
        "remaining_ms": app.lambda_context.get_remaining_time_in_millis(),
        "pid": os.getpid(),
    }


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
