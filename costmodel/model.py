"""The cost model's values: a workload, a price table, line items and designs.

Everything here is a frozen dataclass and every figure a float in US dollars, hours,
seconds, bytes or counts per month. Nothing calls AWS; the arithmetic is in
``costmodel.estimate``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

HOURS_PER_MONTH = 730.0
"""AWS's own convention for a month (8,760 hours a year / 12)."""

GIB = 1024.0**3
"""Data transfer and NAT processing are metered in GB of 2^30 bytes."""


@dataclass(frozen=True, slots=True)
class Price:
    """One entry of the price table: ``value`` dollars per ``per`` ``unit``.

    ``source`` is the AWS pricing page the value comes from; ``note`` says how (and
    whether) it was checked.
    """

    key: str
    value: float
    per: float
    unit: str
    source: str
    note: str = ""

    def cost(self, quantity: float) -> float:
        return quantity * self.value / self.per

    def label(self) -> str:
        per = "" if self.per == 1 else f"{_compact(self.per)} "
        return f"${_plain(self.value)} / {per}{self.unit}"


@dataclass(frozen=True, slots=True)
class Prices:
    """A dated price table for one region."""

    as_of: str
    region: str
    currency: str
    entries: dict[str, Price]
    path: str = ""

    def __getitem__(self, key: str) -> Price:
        return self.entries[key]


@dataclass(frozen=True, slots=True)
class Bucket:
    """A share of a class's requests that each take ``seconds`` end to end."""

    seconds: float
    share: float


@dataclass(frozen=True, slots=True)
class Modes:
    """How a class's requests reach Switchboard; the three shares add up to 1.

    ``sync``: through API Gateway straight to the worker (VPC link), waiting for the answer
    (past the sync deadline, a run the client polls). ``stream``: a streamed answer; through
    API Gateway (STREAM) unless ``SwitchboardSizing.stream_url_share`` of them use the stream
    Lambda's Function URL. ``background``: ``Prefer: respond-async``, a 202 at once, then the
    client polls the run.
    """

    sync: float = 1.0
    stream: float = 0.0
    background: float = 0.0


@dataclass(frozen=True, slots=True)
class RequestClass:
    """One kind of request in the workload (one AI Lambda in the old platform)."""

    name: str
    requests_per_month: float
    latency: tuple[Bucket, ...]
    input_tokens: float = 1000.0
    output_tokens: float = 500.0
    modes: Modes = Modes()
    conversation: bool = False
    lambda_memory_mb: float | None = None
    peak_concurrency: float | None = None

    @property
    def mean_seconds(self) -> float:
        return sum(b.seconds * b.share for b in self.latency)

    @property
    def busy_seconds(self) -> float:
        """Seconds of waiting per month: requests times the mean latency."""
        return self.requests_per_month * self.mean_seconds


@dataclass(frozen=True, slots=True)
class Peak:
    """The busy part of the month: ``concurrency`` requests in flight at once (all
    classes together), during ``hours_per_month`` hours that carry ``share_of_requests``
    of the month's requests."""

    concurrency: float | None = None
    hours_per_month: float = 220.0
    share_of_requests: float = 0.8


@dataclass(frozen=True, slots=True)
class LambdaOnly:
    """The old platform: one AI Lambda per class behind API Gateway REST.

    ``cold_starts_per_month`` (per function) times ``init_seconds`` is billed as duration
    (Lambda bills the INIT phase of on-demand functions since 1 August 2025); with
    provisioned concurrency, only the cold starts outside the provisioned hours remain.
    """

    memory_mb: float = 1024.0
    cold_starts_per_month: float = 0.0
    init_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class SwitchboardSizing:
    """What the CDK app deploys, and how the runtime uses it.

    The first group's defaults are ``infra/config.py``'s ``StageConfig`` defaults (same
    field names); the second group comes from ``infra/stacks`` and the worker's settings;
    the third is this model's own assumptions, each overridable in the workload file's
    ``[switchboard]`` table.
    """

    # StageConfig (infra/config.py)
    worker_cpu: int = 1024
    worker_memory_mib: int = 2048
    worker_min_count: int = 1
    worker_max_count: int = 10
    nat_gateways: int = 0
    gateway_memory_mib: int = 1792
    stream_memory_mib: int = 1792
    authorizer_memory_mib: int = 1024
    sync_deadline_seconds: float = 240.0
    # infra/stacks: Vpc(max_azs=2), an internal ALB (no public IPv4 of its own), Graviton
    # for Fargate and the Lambdas; the State stack holds 2 secrets (ProviderKeys, AdminKey).
    # Worker settings: run lease renewed every 10 s, watchdog 60 s, SQS long poll 5 s
    # (services/runs/service.py).
    availability_zones: int = 2
    secrets: int = 2
    arm64: bool = True
    internal_alb: bool = True
    run_heartbeat_seconds: float = 10.0
    run_watchdog_seconds: float = 60.0
    receive_wait_seconds: float = 5.0
    # Assumptions of this model. A task holds 1,000 calls in flight: `make bench` held
    # 10,000 streams in 379 MiB, but the official provider SDKs cost a few ms of CPU per
    # call (README, Performance): 1,000 calls of ~12 s are ~83 calls/s, ~40% of a vCPU at
    # 5 ms each, under the 60% autoscaling target.
    concurrency_per_task: int = 1000
    frontdoor_overhead_seconds: float = 0.05
    # The edge authorizer's run per WORKER request (TTL 0: every request): one GetItem.
    authorizer_seconds: float = 0.02
    # Streamed answers through the stream Lambda's Function URL (it relays to the API, so
    # they also pay an API request and an authorizer run); the rest stream through the API.
    stream_url_share: float = 0.0
    # Observability (infra/stacks/observability.py, services/metrics_names.py): 15 alarms,
    # the 5xx-rate alarm's metric math reading 2 metrics; one dashboard; 10 metrics per
    # service plus Errors per route (4 routes in use assumed); log lines per request (the
    # edge access line, the worker's access line and its EMF record).
    alarm_metrics: int = 16
    dashboards: int = 1
    custom_metrics: int = 14
    log_bytes_per_request: float = 2048.0
    poll_interval_seconds: float = 5.0
    auth_reads_per_request: float = 1.0
    # services/usage/store.py: one TransactWriteItems of 3 items of < 1 KB (the record, the
    # spend counter, the rate window), 2 units each; services/tenancy/limits.py: the budget check
    # (a strongly consistent GetItem) and the rate-limit UpdateItem, for tenants and keys
    # that have them.
    usage_writes_per_request: float = 6.0
    budget_reads_per_request: float = 1.0
    rate_limit_writes_per_request: float = 1.0
    run_events: int = 3
    run_item_overhead_bytes: int = 512
    conversation_history_turns: int = 5

    @property
    def worker_vcpu(self) -> float:
        return self.worker_cpu / 1024

    @property
    def worker_memory_gb(self) -> float:
        return self.worker_memory_mib / 1024


@dataclass(frozen=True, slots=True)
class Workload:
    """A month of traffic, and the knobs of both designs."""

    classes: tuple[RequestClass, ...]
    peak: Peak = Peak()
    lambda_only: LambdaOnly = LambdaOnly()
    switchboard: SwitchboardSizing = SwitchboardSizing()
    hours_per_month: float = HOURS_PER_MONTH
    bytes_per_token: float = 4.0
    envelope_bytes: float = 512.0
    sse_bytes_per_token: float = 180.0
    source: str = ""

    @property
    def requests_per_month(self) -> float:
        return sum(c.requests_per_month for c in self.classes)

    def scaled(self, factor: float) -> Workload:
        """The same workload with ``factor`` times the requests and the peak concurrency."""
        classes = tuple(
            dataclasses.replace(
                c,
                requests_per_month=c.requests_per_month * factor,
                peak_concurrency=(
                    None if c.peak_concurrency is None else c.peak_concurrency * factor
                ),
            )
            for c in self.classes
        )
        concurrency = self.peak.concurrency
        peak = dataclasses.replace(
            self.peak, concurrency=None if concurrency is None else concurrency * factor
        )
        return dataclasses.replace(self, classes=classes, peak=peak)

    def class_peaks(self) -> tuple[float, ...]:
        """Each class's concurrency at the peak.

        A class's own ``peak_concurrency`` wins; the others share ``peak.concurrency`` in
        proportion to their busy seconds.
        """
        unset = [c for c in self.classes if c.peak_concurrency is None]
        busy = sum(c.busy_seconds for c in unset)
        total = self.peak.concurrency or 0.0
        peaks = []
        for c in self.classes:
            if c.peak_concurrency is not None:
                peaks.append(c.peak_concurrency)
            elif busy > 0:
                peaks.append(total * c.busy_seconds / busy)
            else:
                peaks.append(0.0)
        return tuple(peaks)


@dataclass(frozen=True, slots=True)
class LineItem:
    """One billed resource: ``quantity`` of ``price.unit`` at ``price``."""

    name: str
    quantity: float
    price: Price
    detail: str = ""

    @property
    def cost(self) -> float:
        return self.price.cost(self.quantity)


@dataclass(frozen=True, slots=True)
class DesignCost:
    """A design's monthly bill, item by item."""

    key: str
    title: str
    items: tuple[LineItem, ...]
    notes: tuple[str, ...] = ()

    @property
    def total(self) -> float:
        return sum(item.cost for item in self.items)


@dataclass(frozen=True, slots=True)
class Crossing:
    """Where two designs' monthly totals cross: at ``factor`` times the workload."""

    factor: float
    requests_per_month: float
    cheaper_below: str
    cheaper_above: str


@dataclass(frozen=True, slots=True)
class BreakEven:
    """Every crossing of ``first`` and ``second`` for factors in [low, high]."""

    first: str
    second: str
    low: float
    high: float
    crossings: tuple[Crossing, ...]
    cheaper_throughout: str | None = None


@dataclass(frozen=True, slots=True)
class Estimate:
    """The whole answer for one workload and price table."""

    workload: Workload
    prices: Prices
    designs: tuple[DesignCost, ...]
    break_even: tuple[BreakEven, ...]


def _compact(number: float) -> str:
    if number >= 1_000_000 and number % 1_000_000 == 0:
        return f"{number / 1_000_000:g}M"
    return f"{number:,g}"


def _plain(number: float) -> str:
    """A price without exponent notation: 0.0000166667, 3.5, 0.008."""
    text = f"{number:.10f}".rstrip("0").rstrip(".")
    return text or "0"
