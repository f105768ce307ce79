"""The end of a call, written once for every entry point: its access line and its request
metrics (the ASGI observer in `services.web.access` and the gateway Lambda use it).

The error's type and code come from the answer's own envelope (OpenAI's or Anthropic's),
so whatever raised it is counted the same.
"""

from __future__ import annotations

import time
from typing import Any, Final

import orjson

from services import metrics_names as names
from services.telemetry import metrics as telemetry_metrics
from services.telemetry.context import Call
from services.telemetry.logs import Output

BUDGET_EXCEEDED: Final = "budget_exceeded"
_ERROR_BODY_LIMIT: Final = 65_536  # an error envelope is small; a larger body is not read


def read_error(call: Call, body: bytes | str) -> None:
    """Note the type and code of an error envelope on `call`, if `body` is one."""
    if not body or len(body) > _ERROR_BODY_LIMIT:
        return
    try:
        error = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return
    if isinstance(error, dict):
        kind, code = error.get("type"), error.get("code")
        call.error_type = kind if isinstance(kind, str) else None
        call.error_code = code if isinstance(code, str) else None


def finish(output: Output, call: Call, status: int, path: str = "") -> float:
    """Write the call's access line and count it; its duration in milliseconds."""
    duration = (time.perf_counter() - call.started) * 1000
    fields: dict[str, Any] = {
        "method": call.method,
        "route": call.route,
        "status": status,
        "duration_ms": round(duration, 2),
        "model": call.model,
        "tenant_id": call.tenant_id,
    }
    if call.error_type is not None:
        fields["error_type"] = call.error_type
        fields["error_code"] = call.error_code
    output.access(fields, path=path[:120])
    count(call, status, duration)
    return duration


def count(call: Call, status: int, duration_ms: float) -> None:
    """A finished call's request metrics, in the process's `Metrics`: `Requests` and
    `Latency`, `Errors` (5xx) or `ClientErrors` (4xx) by route and error type, and
    `BudgetRefusals`."""
    metrics = telemetry_metrics.current()
    if not metrics.enabled:
        return
    route = call.route
    metrics.count(names.REQUESTS, route=route)
    metrics.observe(names.LATENCY, duration_ms, route=route)
    if status >= 400:
        server = status >= 500
        error_type = call.error_type or ("server_error" if server else "invalid_request_error")
        name = names.ERRORS if server else names.CLIENT_ERRORS
        metrics.count(name, route=route, error_type=error_type)
        if call.error_code == BUDGET_EXCEEDED:
            metrics.count(names.BUDGET_REFUSALS)
