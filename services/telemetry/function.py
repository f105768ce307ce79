"""A Lambda function's telemetry: its log output and metrics, set up on the first
invocation of an execution environment, and what every log line of an invocation says
about it (the field names Powertools Logger uses, so the same queries work)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from services.telemetry import logs
from services.telemetry import metrics as telemetry_metrics


class FunctionTelemetry:
    """The telemetry of one function (`service`: its `Service` dimension and log name);
    `routes` gives the route templates its metrics may name (read on first use)."""

    def __init__(self, service: str, routes: Callable[[], Iterable[str]]) -> None:
        self.service = service
        self.routes = routes
        self.output: logs.Output | None = None
        self.metrics: telemetry_metrics.Metrics | None = None
        self.cold = True

    def get(self) -> tuple[logs.Output, telemetry_metrics.Metrics]:
        if self.output is None or self.metrics is None:
            self.output = logs.configure(self.service, os.environ)
            self.metrics = telemetry_metrics.install(
                telemetry_metrics.Metrics(self.service, routes=self.routes())
            )
        return self.output, self.metrics

    def invocation(self, context: Any) -> dict[str, Any]:
        """The fields of this invocation's log lines; the first is the cold start."""
        cold, self.cold = self.cold, False
        return {
            "function_request_id": getattr(context, "aws_request_id", None),
            "cold_start": cold,
            "xray_trace_id": os.environ.get("_X_AMZN_TRACE_ID"),
        }
