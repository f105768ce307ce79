"""Reading a workload file and a price table (TOML), with errors that name the field.

Workload file (every key but ``classes`` is optional)::

    hours_per_month = 730        # converts requests_per_hour to a month
    bytes_per_token = 4          # payload bytes per token (data transfer, item sizes)
    envelope_bytes = 512         # JSON around each request and response
    sse_bytes_per_token = 180    # a streamed token as an SSE chunk

    [peak]
    concurrency = 50             # requests in flight at the busiest moment, all classes
    hours_per_month = 220        # the busy hours (22 business days x 10 h)
    share_of_requests = 0.8      # share of the month's requests in those hours

    [lambda_only]                # the old platform: memory_mb, cold_starts_per_month, init_seconds
    [switchboard]                # any SwitchboardSizing field (costmodel/model.py)

    [[classes]]
    name = "chat agent"
    requests_per_month = 2000    # or requests_per_hour (times hours_per_month)
    latency_seconds = 15         # every request takes 15 s, or buckets of [seconds, share]:
    # latency = [[5, 0.5], [15, 0.4], [40, 0.1]]   (shares add up to 1)
    input_tokens = 1500
    output_tokens = 400
    modes = { stream = 1.0 }     # shares of sync, stream, background; sync takes the rest
    conversation = true          # history kept server-side (one Query + one transaction)
    lambda_memory_mb = 1024      # the old platform's function memory for this class
    peak_concurrency = 20        # this class's own peak, instead of a share of [peak]
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from costmodel.model import (
    HOURS_PER_MONTH,
    Bucket,
    LambdaOnly,
    Modes,
    Peak,
    Price,
    Prices,
    RequestClass,
    SwitchboardSizing,
    Workload,
)

DEFAULT_PRICES = Path(__file__).with_name("prices.toml")
PRICE_KEYS = (
    "lambda_request",
    "lambda_gb_second",
    "lambda_provisioned_gb_second",
    "lambda_provisioned_duration_gb_second",
    "apigw_rest_request",
    "lambda_arm_gb_second",
    "fargate_vcpu_hour",
    "fargate_gb_hour",
    "fargate_arm_vcpu_hour",
    "fargate_arm_gb_hour",
    "vpc_link_v2_hour",
    "alb_hour",
    "alb_lcu_hour",
    "nat_gateway_hour",
    "nat_gateway_gb",
    "public_ipv4_hour",
    "dynamodb_write_request_unit",
    "dynamodb_read_request_unit",
    "sqs_request",
    "secrets_manager_secret_month",
    "data_transfer_out_gb",
    "cloudwatch_alarm_metric_month",
    "cloudwatch_dashboard_month",
    "cloudwatch_custom_metric_month",
    "cloudwatch_logs_ingested_gb",
)
_SHARE_TOLERANCE = 1e-9
_T = TypeVar("_T", LambdaOnly, SwitchboardSizing)


class WorkloadError(ValueError):
    """A workload file or price table is unreadable or invalid; the message names the
    field (``classes[2].latency``) and what it must be."""


def load_workload(path: str | Path) -> Workload:
    return parse_workload(_read_toml(path), source=str(path))


def load_prices(path: str | Path = DEFAULT_PRICES) -> Prices:
    return parse_prices(_read_toml(path), source=str(path))


def _read_toml(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise WorkloadError(f"{path}: no such file") from None
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot be read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise WorkloadError(f"{path}: not valid TOML ({exc})") from None


def parse_workload(data: Mapping[str, Any], *, source: str = "") -> Workload:
    top = _Table(data, "")
    top.only(
        "hours_per_month",
        "bytes_per_token",
        "envelope_bytes",
        "sse_bytes_per_token",
        "peak",
        "lambda_only",
        "switchboard",
        "classes",
    )
    hours = top.number("hours_per_month", HOURS_PER_MONTH, minimum=1.0)
    peak = _peak(top.table("peak"), hours)
    raw_classes = data.get("classes")
    if not isinstance(raw_classes, list) or not raw_classes:
        raise WorkloadError("classes: at least one [[classes]] table is required")
    classes = tuple(_class(item, f"classes[{i}]", hours) for i, item in enumerate(raw_classes))
    names = [c.name for c in classes]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise WorkloadError(f"classes[{i}].name: {name!r} is used by another class")
    if peak.concurrency is None and any(c.peak_concurrency is None for c in classes):
        raise WorkloadError(
            "peak.concurrency: required unless every class sets its own peak_concurrency"
        )
    return Workload(
        classes=classes,
        peak=peak,
        lambda_only=_dataclass(LambdaOnly, top.table("lambda_only")),
        switchboard=_sizing(top.table("switchboard")),
        hours_per_month=hours,
        bytes_per_token=top.number("bytes_per_token", 4.0, minimum=0.0),
        envelope_bytes=top.number("envelope_bytes", 512.0, minimum=0.0),
        sse_bytes_per_token=top.number("sse_bytes_per_token", 180.0, minimum=0.0),
        source=source,
    )


def parse_prices(data: Mapping[str, Any], *, source: str = "") -> Prices:
    top = _Table(data, "")
    top.only("as_of", "region", "currency", *PRICE_KEYS)
    entries = {}
    for key in PRICE_KEYS:
        if key not in data:
            raise WorkloadError(f"{key}: missing from the price table")
        table = top.table(key)
        table.only("price", "per", "unit", "source", "note")
        entries[key] = Price(
            key=key,
            value=table.number("price", None, minimum=0.0),
            per=table.number("per", 1.0, minimum=1e-12),
            unit=table.text("unit", None),
            source=table.text("source", None),
            note=table.text("note", ""),
        )
    return Prices(
        as_of=top.text("as_of", None),
        region=top.text("region", None),
        currency=top.text("currency", "USD"),
        entries=entries,
        path=source,
    )


def _peak(table: _Table, hours: float) -> Peak:
    table.only("concurrency", "hours_per_month", "share_of_requests")
    concurrency = table.optional_number("concurrency", minimum=0.0)
    peak_hours = table.number("hours_per_month", 220.0, minimum=0.0)
    if peak_hours > hours:
        raise WorkloadError(
            f"peak.hours_per_month: {peak_hours:g} is more than hours_per_month {hours:g}"
        )
    share = table.number("share_of_requests", 0.8, minimum=0.0, maximum=1.0)
    if peak_hours == hours and share != 1.0:
        raise WorkloadError("peak.share_of_requests: must be 1 when the peak lasts the whole month")
    if peak_hours == 0 and share != 0.0:
        raise WorkloadError("peak.share_of_requests: must be 0 when peak.hours_per_month is 0")
    return Peak(concurrency=concurrency, hours_per_month=peak_hours, share_of_requests=share)


def _class(raw: Any, path: str, hours: float) -> RequestClass:
    if not isinstance(raw, Mapping):
        raise WorkloadError(f"{path}: must be a table")
    table = _Table(raw, path)
    table.only(
        "name",
        "requests_per_month",
        "requests_per_hour",
        "latency_seconds",
        "latency",
        "input_tokens",
        "output_tokens",
        "modes",
        "conversation",
        "lambda_memory_mb",
        "peak_concurrency",
    )
    name = table.text("name", None)
    if ("requests_per_month" in raw) == ("requests_per_hour" in raw):
        raise WorkloadError(f"{path}: give exactly one of requests_per_month, requests_per_hour")
    if "requests_per_month" in raw:
        requests = table.number("requests_per_month", None, minimum=0.0)
    else:
        requests = table.number("requests_per_hour", None, minimum=0.0) * hours
    memory = table.optional_number("lambda_memory_mb", minimum=128.0, maximum=10240.0)
    return RequestClass(
        name=name,
        requests_per_month=requests,
        latency=_latency(raw, table, path),
        input_tokens=table.number("input_tokens", 1000.0, minimum=0.0),
        output_tokens=table.number("output_tokens", 500.0, minimum=0.0),
        modes=_modes(table.table("modes")),
        conversation=table.boolean("conversation", False),
        lambda_memory_mb=memory,
        peak_concurrency=table.optional_number("peak_concurrency", minimum=0.0),
    )


def _latency(raw: Mapping[str, Any], table: _Table, path: str) -> tuple[Bucket, ...]:
    if ("latency_seconds" in raw) == ("latency" in raw):
        raise WorkloadError(
            f"{path}: give exactly one of latency_seconds (a number) or latency "
            "(a list of [seconds, share] buckets)"
        )
    if "latency_seconds" in raw:
        seconds = table.number("latency_seconds", None, minimum=0.0, maximum=86400.0)
        return (Bucket(seconds=seconds, share=1.0),)
    buckets = raw["latency"]
    where = f"{path}.latency"
    if not isinstance(buckets, list) or not buckets:
        raise WorkloadError(f"{where}: must be a non-empty list of [seconds, share] pairs")
    result = []
    for i, pair in enumerate(buckets):
        if not isinstance(pair, list) or len(pair) != 2 or not all(_is_number(v) for v in pair):
            raise WorkloadError(f"{where}[{i}]: must be a pair [seconds, share], got {pair!r}")
        seconds, share = float(pair[0]), float(pair[1])
        if not 0 <= seconds <= 86400:
            raise WorkloadError(f"{where}[{i}]: seconds must be 0-86400, got {seconds:g}")
        if not 0 < share <= 1:
            raise WorkloadError(f"{where}[{i}]: share must be > 0 and <= 1, got {share:g}")
        result.append(Bucket(seconds=seconds, share=share))
    total = sum(b.share for b in result)
    if abs(total - 1.0) > _SHARE_TOLERANCE:
        raise WorkloadError(f"{where}: the shares must add up to 1, got {total:g}")
    return tuple(result)


def _modes(table: _Table) -> Modes:
    table.only("sync", "stream", "background")
    stream = table.number("stream", 0.0, minimum=0.0, maximum=1.0)
    background = table.number("background", 0.0, minimum=0.0, maximum=1.0)
    sync = table.optional_number("sync", minimum=0.0, maximum=1.0)
    if sync is None:
        sync = 1.0 - stream - background
        if sync < -_SHARE_TOLERANCE:
            raise WorkloadError(
                f"{table.path}: stream + background must be at most 1, got {stream + background:g}"
            )
        sync = max(sync, 0.0)
    elif abs(sync + stream + background - 1.0) > _SHARE_TOLERANCE:
        raise WorkloadError(
            f"{table.path}: sync + stream + background must add up to 1, "
            f"got {sync + stream + background:g}"
        )
    return Modes(sync=sync, stream=stream, background=background)


def _sizing(table: _Table) -> SwitchboardSizing:
    sizing = _dataclass(SwitchboardSizing, table)
    if sizing.worker_max_count < sizing.worker_min_count:
        raise WorkloadError(
            f"{table.path}.worker_max_count: {sizing.worker_max_count} is below "
            f"worker_min_count {sizing.worker_min_count}"
        )
    return sizing


def _dataclass(cls: type[_T], table: _Table) -> _T:
    """Build ``cls`` from a table whose keys are its field names, each >= 0 (> 0 where a
    zero would divide), with the field's own type."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    table.only(*fields)
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in table.data:
            continue
        default = field.default
        if isinstance(default, bool) or not isinstance(default, int | float):
            continue
        value = table.number(name, None, minimum=0.0)
        if isinstance(default, int):
            if value != int(value):
                raise WorkloadError(f"{table.path}.{name}: must be a whole number, got {value:g}")
            kwargs[name] = int(value)
        else:
            kwargs[name] = value
    instance = cls(**kwargs)
    for name in _POSITIVE:
        if name in fields and name in kwargs and getattr(instance, name) <= 0:
            raise WorkloadError(f"{table.path}.{name}: must be > 0")
    return instance


# Fields that divide or size something, so zero is meaningless.
_POSITIVE = (
    "memory_mb",
    "worker_cpu",
    "worker_memory_mib",
    "worker_min_count",
    "worker_max_count",
    "gateway_memory_mib",
    "stream_memory_mib",
    "authorizer_memory_mib",
    "sync_deadline_seconds",
    "availability_zones",
    "run_heartbeat_seconds",
    "run_watchdog_seconds",
    "receive_wait_seconds",
    "concurrency_per_task",
    "poll_interval_seconds",
)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class _Table:
    """A TOML table with the path used in error messages."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, Mapping):
            raise WorkloadError(f"{path or 'file'}: must be a table")
        self.data: Mapping[str, Any] = data
        self.path = path

    def _where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def only(self, *known: str) -> None:
        unknown = sorted(set(self.data) - set(known))
        if unknown:
            raise WorkloadError(
                f"{self._where(unknown[0])}: unknown field; known: {', '.join(known)}"
            )

    def table(self, key: str) -> _Table:
        value = self.data.get(key, {})
        if not isinstance(value, Mapping):
            raise WorkloadError(f"{self._where(key)}: must be a table")
        return _Table(value, self._where(key))

    def number(
        self,
        key: str,
        default: float | None,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        value = self.optional_number(key, minimum=minimum, maximum=maximum)
        if value is not None:
            return value
        if default is None:
            raise WorkloadError(f"{self._where(key)}: required")
        return default

    def optional_number(
        self, key: str, *, minimum: float | None = None, maximum: float | None = None
    ) -> float | None:
        if key not in self.data:
            return None
        value = self.data[key]
        if not _is_number(value):
            raise WorkloadError(f"{self._where(key)}: must be a number, got {value!r}")
        number = float(value)
        if minimum is not None and number < minimum:
            raise WorkloadError(f"{self._where(key)}: must be >= {minimum:g}, got {number:g}")
        if maximum is not None and number > maximum:
            raise WorkloadError(f"{self._where(key)}: must be <= {maximum:g}, got {number:g}")
        return number

    def text(self, key: str, default: str | None) -> str:
        if key not in self.data:
            if default is None:
                raise WorkloadError(f"{self._where(key)}: required")
            return default
        value = self.data[key]
        if isinstance(value, datetime.date):  # as_of = 2026-11-29, unquoted
            return value.isoformat()
        if not isinstance(value, str) or (default is None and not value.strip()):
            raise WorkloadError(f"{self._where(key)}: must be a non-empty string")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise WorkloadError(f"{self._where(key)}: must be true or false, got {value!r}")
        return value
