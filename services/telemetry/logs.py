"""Log lines: one JSON object per line, with the same fields in every process.

Every line has `timestamp` (ISO 8601, UTC, milliseconds), `level`, `service` (`worker`,
`gateway`, `authorizer`, `stream`, `apigw`), `message`, and `request_id` when it is
written while a call is served (`services.telemetry.context`); a line from `logging` also
names its `logger`, and an exception's traceback is in `exception`. A Lambda's lines also
carry `function_request_id`, `cold_start` and `xray_trace_id` (the names Powertools Logger
uses, so the same Logs Insights queries work).

The access line (one per request, `kind: "access"`) adds `method`, `route` (the route
table's template, never the raw path or query), `status`, `duration_ms`, `model` (the
model that answered), `tenant_id`, and for an error `error_type` and `error_code`. What a
line never carries: a key, a provider key, a prompt or an answer; nothing here reads
request bodies or credential headers, and the integration test scans every log for them.

`SWITCHBOARD_LOG_FORMAT=console` (what `make dev` sets) prints for a person instead: one
line per request, `POST /v1/chat/completions 200 312ms model=local/simulator tenant=dev
req=... [worker]`, written by the component that answered it, and warnings and errors;
not the INFO lines, nor metrics (EMF).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import IO, Any, Final

import orjson

from services.config import ConfigError
from services.telemetry.context import CURRENT

FORMATS: Final = ("json", "console")
LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")
# Third-party loggers that say, at INFO, what the access line says better (or every
# request's connection); kept to warnings.
_QUIET: Final = ("botocore", "boto3", "urllib3", "httpx", "httpcore", "uvicorn.access")


def timestamp(epoch: float) -> str:
    """`2025-01-31T12:00:00.123Z`, the formatted second cached (one per request or more)."""
    whole = int(epoch)
    millis = int((epoch - whole) * 1000)
    if whole != _last[0]:
        _last[0] = whole
        _last[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_last[1]}.{millis:03d}Z"


_last: list[Any] = [None, ""]
_UNSHOWN: Final = ("exception", "logger")  # in console mode, besides the message
_QUIET_IN_CONSOLE: Final = ("DEBUG", "INFO")


class Output:
    """Where one process writes its log lines and metrics, and in which format."""

    def __init__(self, service: str, fmt: str = "json", stream: IO[str] | None = None) -> None:
        if fmt not in FORMATS:
            raise ConfigError(f"SWITCHBOARD_LOG_FORMAT must be one of {', '.join(FORMATS)}")
        self.service = service
        self.console = fmt == "console"
        self._stream = stream

    @property
    def stream(self) -> IO[str]:
        return self._stream if self._stream is not None else sys.stdout

    def line(
        self,
        level: str,
        message: str,
        fields: Mapping[str, Any] | None = None,
        *,
        created: float | None = None,
    ) -> None:
        """Write one log line (with the call's request id, when serving one)."""
        call = CURRENT.get()
        if self.console:
            if level in _QUIET_IN_CONSOLE:  # the access line says what a person needs
                return
            text = f"{level} [{self.service}] {message}"
            if fields:
                text += "".join(
                    f" {k}={v}" for k, v in fields.items() if v is not None and k not in _UNSHOWN
                )
            if call is not None:
                text += f" req={call.request_id}"
            exception = fields.get("exception") if fields else None
            self.write(_printable(text) + (f"\n{exception}" if exception else ""))
            return
        record: dict[str, Any] = {
            "timestamp": timestamp(time.time() if created is None else created),
            "level": level,
            "service": self.service,
            "message": message,
        }
        if call is not None:
            record["request_id"] = call.request_id
            if call.extra:
                record.update(call.extra)
        if fields:
            record.update(fields)
        self.write(orjson.dumps(record, default=str).decode())

    def access(self, fields: dict[str, Any], *, path: str = "") -> None:
        """The access line of the call being served: `fields` has method, route, status,
        duration_ms and what else is known. In console mode `path` (the raw path) is shown,
        and nothing for an answer relayed from another component, which prints its own."""
        call = CURRENT.get()
        if self.console:
            if call is not None and call.relayed:
                return
            text = (
                f"{fields.get('method')} {path or fields.get('route')} {fields.get('status')} "
                f"{fields.get('duration_ms', 0):.0f}ms"
            )
            for key, label in (("model", "model"), ("tenant_id", "tenant"),
                               ("error_code", "error")):  # fmt: skip
                if fields.get(key):
                    text += f" {label}={fields[key]}"
            if call is not None:
                text += f" req={call.request_id}"
            self.write(f"{_printable(text)} [{self.service}]")
            return
        record: dict[str, Any] = {
            "timestamp": timestamp(time.time()),
            "level": "INFO",
            "service": self.service,
            "message": f"{fields.get('method')} {fields.get('route')} {fields.get('status')}",
            "kind": "access",
        }
        if call is not None:
            record["request_id"] = call.request_id
            if call.extra:
                record.update(call.extra)
        record.update(fields)
        self.write(orjson.dumps(record, default=str).decode())

    def metrics(self, documents: list[bytes]) -> None:
        """EMF documents, one a line (CloudWatch Logs extracts the metrics); not shown in
        console mode."""
        if self.console or not documents:
            return
        self.write(b"\n".join(documents).decode())

    def write(self, text: str) -> None:
        stream = self.stream
        try:
            stream.write(text + "\n")
            stream.flush()
        except (OSError, ValueError):  # stdout closed at shutdown: nothing to tell
            pass


def _printable(text: str) -> str:
    """`text` as one line a terminal shows as it is: a control character (a newline, an
    escape sequence, from a client's path or an upstream's error code) is written escaped,
    so no client can forge a console line or recolour the terminal. (JSON lines are
    escaped by the encoder.)"""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class Handler(logging.Handler):
    """A `logging` handler writing through an `Output`."""

    def __init__(self, output: Output) -> None:
        super().__init__()
        self.output = output

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, Any] = {"logger": record.name}
            extra = getattr(record, "fields", None)
            if isinstance(extra, Mapping):
                fields.update(extra)
            if record.exc_info:
                fields["exception"] = _FORMATTER.formatException(record.exc_info)
            self.output.line(record.levelname, record.getMessage(), fields, created=record.created)
        except Exception:
            self.handleError(record)


_FORMATTER = logging.Formatter()
_output: Output | None = None


def configure(service: str, env: Mapping[str, str], *, stream: IO[str] | None = None) -> Output:
    """Send every log line of this process (the root logger's, uvicorn's included) through
    one `Output` for `service`, in `SWITCHBOARD_LOG_FORMAT` (json or console) at
    `SWITCHBOARD_LOG_LEVEL` (INFO). Called again, it replaces the previous setup."""
    global _output
    fmt = (env.get("SWITCHBOARD_LOG_FORMAT") or "json").strip().lower()
    level = (env.get("SWITCHBOARD_LOG_LEVEL") or "INFO").strip().upper()
    if level not in LEVELS:
        raise ConfigError(f"SWITCHBOARD_LOG_LEVEL must be one of {', '.join(LEVELS)}")
    output = Output(service, fmt, stream)
    root = logging.getLogger()
    for handler in list(root.handlers):
        # Ours from an earlier call, and the Lambda runtime's (text lines, one more per
        # line); any other (a test's capture) stays.
        if isinstance(handler, Handler) or type(handler).__name__.startswith("LambdaLogger"):
            root.removeHandler(handler)
    root.addHandler(Handler(output))
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    _output = output
    return output


def output() -> Output | None:
    """The process's output, once `configure` has run."""
    return _output
