"""Switchboard's own CloudWatch metrics, as embedded metric format (EMF) log lines.

Names, units and which dimension sets each metric is published under are declared once in
`services/metrics_names.py`, which the CDK dashboard and alarms read too. Code counts and
observes through the process's `Metrics` (`current()`; a `NullMetrics` until an entry point
installs one), and the entry point writes the EMF documents out: the Lambdas at the end of
each invocation, the worker every `SWITCHBOARD_METRICS_INTERVAL_SECONDS` and at shutdown
(`Emitter`), so the hot path only adds to a dict.

Dimensions stay bounded whatever the traffic: a value outside its set becomes `other`
(a route not in the route table, an error type not in `ERROR_TYPES`, a provider name not
shaped like one or beyond the 16th seen). Counters are summed per flush (read them with
Sum); latencies are sent as value arrays (at most 100 a document), so percentiles are
CloudWatch's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

import orjson

from services import metrics_names as names
from services.errors import ERROR_TYPES
from services.telemetry.logs import Output

log = logging.getLogger("switchboard.metrics")

OTHER: Final = "other"
MAX_VALUES: Final = 100  # values of one metric in one EMF document
GAUGE_SECONDS: Final = 60.0  # a gauge is sampled once a minute: Sum over a minute adds tasks
_PROVIDER_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_MAX_PROVIDERS = 16
# Which dimension sets each metric is published under (services/metrics_names.py).
DIMENSION_SETS: Final[dict[str, tuple[tuple[str, ...], ...]]] = {
    name: (
        names.PER_SERVICE,
        *((names.PER_SERVICE_AND_ROUTE,) if name in names.PER_ROUTE else ()),
        *((names.PER_SERVICE_AND_ERROR_TYPE,) if name in names.PER_ERROR_TYPE else ()),
        *((names.PER_SERVICE_AND_PROVIDER,) if name in names.PER_PROVIDER else ()),
    )
    for name in names.ALL
}
_Key = tuple[str | None, str | None, str | None]  # route, error type, provider


class _Group:
    """What was counted and observed with one set of dimension values since the last flush."""

    __slots__ = ("sums", "values")

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.values: dict[str, list[float]] = {}


class Metrics:
    """The metrics of one process (`service`: a `metrics_names` service value)."""

    enabled = True

    def __init__(self, service: str, *, routes: Iterable[str] = ()) -> None:
        self.service = service
        self.routes = frozenset(routes)
        self._providers: set[str] = set()
        self._groups: dict[_Key, _Group] = {}
        self._gauges: dict[str, Callable[[], float]] = {}
        self._gauged_at = 0.0

    def count(
        self,
        name: str,
        value: float = 1.0,
        *,
        route: str | None = None,
        error_type: str | None = None,
        provider: str | None = None,
    ) -> None:
        group = self._group(route, error_type, provider)
        group.sums[name] = group.sums.get(name, 0.0) + value

    def observe(
        self,
        name: str,
        value: float,
        *,
        route: str | None = None,
        error_type: str | None = None,
        provider: str | None = None,
    ) -> None:
        group = self._group(route, error_type, provider)
        values = group.values.get(name)
        if values is None:
            group.values[name] = [round(value, 3)]
        else:
            values.append(round(value, 3))

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        """Sample `read()` as `name` at most once a minute, when documents are made."""
        self._gauges[name] = read

    def _group(self, route: str | None, error_type: str | None, provider: str | None) -> _Group:
        key = (route, error_type, provider)
        group = self._groups.get(key)
        if group is None:
            bounded = (
                None if route is None else route if route in self.routes else OTHER,
                None if error_type is None else error_type if error_type in ERROR_TYPES else OTHER,
                None if provider is None else self._provider(provider),
            )
            group = self._groups.get(bounded)
            if group is None:
                group = self._groups[bounded] = _Group()
            if len(self._groups) < 1024:  # the raw key too, so the next lookup is one get
                self._groups[key] = group
        return group

    def _provider(self, name: str) -> str:
        if name in self._providers:
            return name
        if _PROVIDER_NAME.fullmatch(name) and len(self._providers) < _MAX_PROVIDERS:
            self._providers.add(name)
            return name
        return OTHER

    def documents(self, now: float | None = None) -> list[bytes]:
        """Everything since the last call, as EMF documents (JSON, one a line); resets."""
        now = time.time() if now is None else now
        groups, self._groups = self._groups, {}
        if self._gauges and now - self._gauged_at >= GAUGE_SECONDS:
            self._gauged_at = now
            gauges = groups.setdefault((None, None, None), _Group())
            for name, read in self._gauges.items():
                try:
                    gauges.sums[name] = float(read())
                except Exception:
                    log.exception("could not read the gauge %s", name)
        seen: set[int] = set()
        out: list[bytes] = []
        for (route, error_type, provider), group in groups.items():
            if id(group) in seen or not (group.sums or group.values):
                continue
            seen.add(id(group))
            properties: dict[str, Any] = {names.SERVICE: self.service}
            if route is not None:
                properties[names.ROUTE] = route
            if error_type is not None:
                properties[names.ERROR_TYPE] = error_type
            if provider is not None:
                properties[names.PROVIDER] = provider
            out += _documents(properties, group, int(now * 1000))
        return out


class NullMetrics(Metrics):
    """Counts nothing: what code reports to before an entry point installs `Metrics`."""

    enabled = False

    def __init__(self) -> None:
        super().__init__("none")

    def count(self, name: str, value: float = 1.0, **_: Any) -> None:
        return None

    def observe(self, name: str, value: float, **_: Any) -> None:
        return None

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        return None


def _documents(properties: dict[str, Any], group: _Group, timestamp: int) -> list[bytes]:
    """One group's EMF documents: its sums and the first 100 values of each series in the
    first, the next 100 values in the next, and so on."""
    out: list[bytes] = []
    first = True
    offset = 0
    while True:
        members: dict[str, Any] = {}
        if first:
            members.update(group.sums)
        for name, values in group.values.items():
            part = values[offset : offset + MAX_VALUES]
            if part:
                members[name] = part
        if not members:
            return out
        out.append(orjson.dumps(_document(properties, members, timestamp)))
        first = False
        offset += MAX_VALUES


def _document(properties: dict[str, Any], members: dict[str, Any], timestamp: int) -> Any:
    present = set(properties)
    by_sets: dict[tuple[tuple[str, ...], ...], list[dict[str, str]]] = {}
    for name in members:
        sets = tuple(s for s in DIMENSION_SETS[name] if present.issuperset(s))
        by_sets.setdefault(sets, []).append({"Name": name, "Unit": names.UNITS[name]})
    directives = [
        {"Namespace": names.NAMESPACE, "Dimensions": [list(s) for s in sets], "Metrics": metrics}
        for sets, metrics in by_sets.items()
    ]
    return {"_aws": {"Timestamp": timestamp, "CloudWatchMetrics": directives},
            **properties, **members}  # fmt: skip


_current: Metrics = NullMetrics()


def current() -> Metrics:
    """The process's metrics (a `NullMetrics` until `install`)."""
    return _current


def install(metrics: Metrics) -> Metrics:
    global _current
    _current = metrics
    return metrics


class Emitter:
    """Writes a process's metrics every `interval` seconds on its event loop, and at
    `aclose` (the worker's shutdown). Making the documents only swaps a dict; the write is
    one line per document to stdout, which the awslogs driver ships."""

    def __init__(self, metrics: Metrics, output: Output, interval: float) -> None:
        self.metrics = metrics
        self.output = output
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="metrics-emitter")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.flush()

    def flush(self) -> None:
        try:
            self.output.metrics(self.metrics.documents())
        except Exception:
            log.exception("could not write the metrics")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.flush()
