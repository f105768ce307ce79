"""The arithmetic: each design's monthly line items, and where two designs' totals cross.

Conventions (every figure is per month):

- Lambda GB-s are seconds x memory MB / 1024. No free tier is deducted anywhere.
- Bytes: a request carries ``input_tokens x bytes_per_token + envelope_bytes``, an answer
  ``output_tokens x bytes_per_token + envelope_bytes``, a streamed answer
  ``output_tokens x sse_bytes_per_token + envelope_bytes``. GB are 2^30 bytes.
- DynamoDB: a write request unit per 1 KB written (twice that in a transaction), a read
  request unit per 4 KB read; a write to an item in the GSI writes the index too.
- Peak: ``peak.hours_per_month`` hours carry ``peak.share_of_requests`` of the requests
  and reach the peak concurrency; the other hours carry the rest at their average
  concurrency (busy seconds / seconds in those hours).

Lambda-only, on demand: per request one API Gateway REST request, one invocation of the
class's function, billed for the whole latency (past API Gateway's 29 s the client gets a
504, but the function runs on and is billed). Each answer and each provider request leaves
AWS (data transfer out).

Lambda-only, provisioned: the same, plus ceil(class peak concurrency) environments per
function during the peak hours; requests in those hours are billed at the provisioned
duration price, the others on demand. Cold starts remain only outside the peak hours.

Switchboard (see ``SwitchboardSizing``), as ``infra/`` deploys it: no Lambda waits on a
model. By mode,
- sync and stream (through the API): an API Gateway REST request that goes straight to
  the worker through the VPC link (HTTP_PROXY, STREAM), and one run of the edge
  authorizer (``authorizer_seconds``; TTL 0, so every request). A sync call past
  ``sync_deadline_seconds`` becomes a run the client polls every
  ``poll_interval_seconds`` (each poll an API request and a short gateway invocation).
- stream through the Function URL (``stream_url_share`` of streamed answers): the stream
  Lambda, open for the whole answer, relays to the API: the request and authorizer run
  above, plus the stream Lambda's duration.
- background: an API request and an authorizer run for the POST, then
  ceil(latency / interval) polls as above.
A run (background, or a promoted sync call) costs: its creation (a transaction, and the
GSI), a lease renewal every ``run_heartbeat_seconds`` (item and GSI), ``run_events``
event items, its completion (item and GSI); and SQS: a send, a receive, a delete, and one
receive more per ``run_watchdog_seconds``. Every request reads the API key at the edge
and again in the worker (``auth_reads_per_request`` each, before the caches); every
logical request writes its usage record and spend counter and rate window
(``usage_writes_per_request``), reads the tenant's spend for its budget and adds to the
key's rate-limit window. A conversation turn reads ``conversation_history_turns`` turns
and writes both messages and the conversation's version in one transaction.
Fixed and stepped: Fargate tasks on Graviton (peak: max(worker_min_count, ceil(peak
concurrency / concurrency_per_task)); off peak the same on the average concurrency; a
count above ``worker_max_count`` is costed as needed, with a note), the internal ALB
(hours, and LCU-hours on the highest dimension; no public address), the VPC link, NAT
gateways if configured (hours, and every provider byte processed), public IPv4 addresses
(one per task without NAT, one per NAT gateway), idle SQS long polls (one per task per
``receive_wait_seconds``), Secrets Manager secrets, and what operators watch: alarms,
the dashboard, the EMF custom metrics and the log lines.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from costmodel.model import (
    GIB,
    BreakEven,
    Crossing,
    DesignCost,
    Estimate,
    LineItem,
    Prices,
    RequestClass,
    SwitchboardSizing,
    Workload,
)

LAMBDA_ON_DEMAND = "lambda_on_demand"
LAMBDA_PROVISIONED = "lambda_provisioned"
SWITCHBOARD = "switchboard"
TITLES = {
    LAMBDA_ON_DEMAND: "Lambda-only, on demand",
    LAMBDA_PROVISIONED: "Lambda-only, provisioned concurrency in the peak hours",
    SWITCHBOARD: "Switchboard (as the CDK app deploys it)",
}

# The break-even search: factors of the workload from 1/1000 to 10,000 times, scanned at
# SCAN_POINTS log-spaced points, each sign change bisected to a relative width of 1e-9.
BREAK_EVEN_LOW = 0.001
BREAK_EVEN_HIGH = 10_000.0
SCAN_POINTS = 2000
_BISECTIONS = 80
ALB_NEW_CONNECTIONS_PER_LCU = 25.0  # per second
ALB_ACTIVE_CONNECTIONS_PER_LCU = 3000.0
ALB_GB_PER_LCU = 1.0  # per hour
KB = 1024.0
LAMBDA_DEFAULT_CONCURRENCY = 1000
READ_UNIT_BYTES = 4096.0


def estimate(workload: Workload, prices: Prices) -> Estimate:
    """Every design at the workload's volume, and the break-even between Switchboard
    and each Lambda-only design."""
    designs = (
        lambda_only(workload, prices),
        lambda_only(workload, prices, provisioned=True),
        switchboard(workload, prices),
    )

    def total(key: str) -> Callable[[float], float]:
        return lambda f: design(key, workload.scaled(f), prices).total

    crossings = tuple(
        break_even(workload, SWITCHBOARD, other, total(SWITCHBOARD), total(other))
        for other in (LAMBDA_ON_DEMAND, LAMBDA_PROVISIONED)
    )
    return Estimate(workload=workload, prices=prices, designs=designs, break_even=crossings)


def design(key: str, workload: Workload, prices: Prices) -> DesignCost:
    if key == SWITCHBOARD:
        return switchboard(workload, prices)
    return lambda_only(workload, prices, provisioned=key == LAMBDA_PROVISIONED)


# -- Lambda-only --------------------------------------------------------------------------


def lambda_only(workload: Workload, prices: Prices, *, provisioned: bool = False) -> DesignCost:
    """The old platform: one function per class behind API Gateway REST."""
    options = workload.lambda_only
    peak = workload.peak
    off_peak_fraction = (workload.hours_per_month - peak.hours_per_month) / workload.hours_per_month
    requests = workload.requests_per_month
    items = [
        LineItem("API Gateway REST requests", requests, prices["apigw_rest_request"]),
        LineItem("Lambda requests", requests, prices["lambda_request"]),
    ]
    class_peaks = workload.class_peaks()
    for cls, class_peak in zip(workload.classes, class_peaks, strict=True):
        gb = (cls.lambda_memory_mb or options.memory_mb) / 1024
        gb_s = cls.busy_seconds * gb
        if provisioned:
            environments = math.ceil(class_peak)
            served = gb_s * peak.share_of_requests
            items += [
                LineItem(
                    f"Lambda provisioned concurrency: {cls.name}",
                    environments * gb * peak.hours_per_month * 3600,
                    prices["lambda_provisioned_gb_second"],
                    f"{environments} x {gb:g} GB x {peak.hours_per_month:g} h",
                ),
                LineItem(
                    f"Lambda duration on provisioned: {cls.name}",
                    served,
                    prices["lambda_provisioned_duration_gb_second"],
                    f"{peak.share_of_requests:g} of {cls.busy_seconds:,.0f} s x {gb:g} GB",
                ),
                LineItem(
                    f"Lambda duration on demand: {cls.name}",
                    gb_s - served,
                    prices["lambda_gb_second"],
                    f"{1 - peak.share_of_requests:g} of {cls.busy_seconds:,.0f} s x {gb:g} GB",
                ),
            ]
        else:
            items.append(
                LineItem(
                    f"Lambda duration: {cls.name}",
                    gb_s,
                    prices["lambda_gb_second"],
                    f"{cls.requests_per_month:,.0f} x {cls.mean_seconds:g} s x {gb:g} GB",
                )
            )
        cold = options.cold_starts_per_month * (off_peak_fraction if provisioned else 1.0)
        if cold > 0:
            items.append(
                LineItem(
                    f"Lambda cold starts (INIT): {cls.name}",
                    cold * options.init_seconds * gb,
                    prices["lambda_gb_second"],
                    f"{cold:g} x {options.init_seconds:g} s x {gb:g} GB",
                )
            )
    egress = sum(
        c.requests_per_month * (_request_bytes(workload, c) + _answer_bytes(workload, c))
        for c in workload.classes
    )
    items.append(
        LineItem(
            "Data transfer out (answers, provider requests)",
            egress / GIB,
            prices["data_transfer_out_gb"],
        )
    )
    key = LAMBDA_PROVISIONED if provisioned else LAMBDA_ON_DEMAND
    notes = ["each function is billed for the whole model wait, past API Gateway's 29 s too"]
    if sum(class_peaks) > LAMBDA_DEFAULT_CONCURRENCY:
        notes.append(
            f"the peak ({sum(class_peaks):,.0f} concurrent) is above Lambda's default quota "
            f"of {LAMBDA_DEFAULT_CONCURRENCY:,} concurrent executions per region"
        )
    return DesignCost(key=key, title=TITLES[key], items=tuple(items), notes=tuple(notes))


# -- Switchboard --------------------------------------------------------------------------


def switchboard(workload: Workload, prices: Prices) -> DesignCost:
    """Switchboard as ``infra/`` deploys it, sized by ``workload.switchboard``."""
    s = workload.switchboard
    hours = workload.hours_per_month
    peak_hours = workload.peak.hours_per_month
    off_hours = hours - peak_hours
    lambda_gb_s = prices["lambda_arm_gb_second" if s.arm64 else "lambda_gb_second"]
    gateway_gb = s.gateway_memory_mib / 1024
    stream_gb = s.stream_memory_mib / 1024
    authorizer_gb = s.authorizer_memory_mib / 1024
    overhead = s.frontdoor_overhead_seconds

    api_requests = authorizer_runs = gateway_invocations = gateway_seconds = 0.0
    stream_invocations = stream_seconds = 0.0
    wru = rru = sqs = 0.0
    nat_bytes = egress = 0.0
    for cls in workload.classes:
        n = cls.requests_per_month
        request_bytes = _request_bytes(workload, cls)
        answer_bytes = _answer_bytes(workload, cls)
        stream_bytes = cls.output_tokens * workload.sse_bytes_per_token + workload.envelope_bytes
        in_kb = math.ceil((request_bytes + s.run_item_overhead_bytes) / KB)
        done_bytes = request_bytes + s.run_item_overhead_bytes + answer_bytes
        done_kb = math.ceil(done_bytes / KB)
        done_read = math.ceil(done_bytes / READ_UNIT_BYTES)
        answer_kb = math.ceil(answer_bytes / KB)

        for bucket in cls.latency:
            t = bucket.seconds
            sync_n = n * bucket.share * cls.modes.sync
            stream_n = n * bucket.share * cls.modes.stream
            background_n = n * bucket.share * cls.modes.background

            # Every WORKER request: one API request, one authorizer run, key reads at the
            # edge and in the worker.
            worker_requests = sync_n + stream_n + background_n
            api_requests += worker_requests
            authorizer_runs += worker_requests
            rru += worker_requests * 2 * s.auth_reads_per_request

            polls = (
                math.ceil((t - s.sync_deadline_seconds) / s.poll_interval_seconds)
                if t > s.sync_deadline_seconds
                else 0
            )
            bg_polls = max(1, math.ceil(t / s.poll_interval_seconds))
            poll_requests = sync_n * polls + background_n * bg_polls
            api_requests += poll_requests
            gateway_invocations += poll_requests
            gateway_seconds += poll_requests * overhead
            rru += poll_requests * (s.auth_reads_per_request + done_read)
            if polls:
                writes, messages = _run_units(s, t, in_kb, answer_kb, done_kb)
                wru += sync_n * writes
                sqs += sync_n * messages
            writes, messages = _run_units(s, t, in_kb, answer_kb, done_kb)
            wru += background_n * writes
            sqs += background_n * messages

            via_url = stream_n * s.stream_url_share
            stream_invocations += via_url
            stream_seconds += via_url * (t + overhead)

            egress += (sync_n + background_n) * answer_bytes + stream_n * stream_bytes
            egress += poll_requests * workload.envelope_bytes

        wru += n * (s.usage_writes_per_request + s.rate_limit_writes_per_request)
        rru += n * s.budget_reads_per_request
        if cls.conversation:
            history = s.conversation_history_turns * (request_bytes + answer_bytes)
            rru += n * math.ceil(history / READ_UNIT_BYTES)
            # Both messages and the conversation's version in one transaction (2x), and
            # the conversation's entry in the GSI.
            wru += n * (2 * (math.ceil(request_bytes / KB) + answer_kb + 1) + 1)
        provider_bytes = request_bytes + answer_bytes
        nat_bytes += n * provider_bytes
        egress += n * request_bytes  # the provider request leaves AWS

    tasks_peak, tasks_off, over_max = _tasks(workload)
    task_hours = tasks_peak * peak_hours + tasks_off * off_hours
    lcu_hours = _lcu_hours(workload)
    arch = "Graviton" if s.arm64 else "x86"
    vcpu_price = prices["fargate_arm_vcpu_hour" if s.arm64 else "fargate_vcpu_hour"]
    gb_price = prices["fargate_arm_gb_hour" if s.arm64 else "fargate_gb_hour"]

    items = [
        LineItem(
            "API Gateway REST requests",
            api_requests,
            prices["apigw_rest_request"],
            "AI calls streamed straight to the worker, and run polls",
        ),
        LineItem("Authorizer Lambda requests", authorizer_runs, prices["lambda_request"]),
        LineItem(
            "Authorizer Lambda duration",
            authorizer_runs * s.authorizer_seconds * authorizer_gb,
            lambda_gb_s,
            f"{authorizer_runs:,.0f} x {s.authorizer_seconds:g} s x {authorizer_gb:g} GB",
        ),
        LineItem("Gateway Lambda requests", gateway_invocations, prices["lambda_request"]),
        LineItem(
            "Gateway Lambda duration",
            gateway_seconds * gateway_gb,
            lambda_gb_s,
            f"{gateway_seconds:,.0f} s x {gateway_gb:g} GB (control plane only, no model wait)",
        ),
        LineItem("Stream Lambda requests", stream_invocations, prices["lambda_request"]),
        LineItem(
            "Stream Lambda duration",
            stream_seconds * stream_gb,
            lambda_gb_s,
            f"{stream_seconds:,.0f} s x {stream_gb:g} GB (Function URL streams only)",
        ),
        LineItem(
            "Fargate vCPU",
            task_hours * s.worker_vcpu,
            vcpu_price,
            f"{tasks_peak} task(s) x {peak_hours:g} h + {tasks_off} x {off_hours:g} h, "
            f"{s.worker_vcpu:g} {arch} vCPU each",
        ),
        LineItem(
            "Fargate memory",
            task_hours * s.worker_memory_gb,
            gb_price,
            f"{task_hours:g} task-hours x {s.worker_memory_gb:g} GB ({arch})",
        ),
        LineItem("ALB hours (internal)", hours, prices["alb_hour"]),
        LineItem("ALB LCU-hours", lcu_hours, prices["alb_lcu_hour"]),
        LineItem("VPC link v2", hours, prices["vpc_link_v2_hour"]),
    ]
    if s.nat_gateways:
        items += [
            LineItem(
                "NAT gateway hours",
                s.nat_gateways * hours,
                prices["nat_gateway_hour"],
                f"{s.nat_gateways} x {hours:g} h",
            ),
            LineItem(
                "NAT gateway data processed (provider traffic)",
                nat_bytes / GIB,
                prices["nat_gateway_gb"],
            ),
        ]
    alb_addresses = 0 if s.internal_alb else s.availability_zones
    addresses = (alb_addresses + s.nat_gateways) * hours
    detail = f"{alb_addresses} ALB + {s.nat_gateways} NAT, {hours:g} h"
    if not s.nat_gateways:
        addresses += task_hours
        detail += f" + {task_hours:g} task-hours"
    items += [
        LineItem("Public IPv4 addresses", addresses, prices["public_ipv4_hour"], detail),
        LineItem("DynamoDB writes", wru, prices["dynamodb_write_request_unit"]),
        LineItem("DynamoDB reads", rru, prices["dynamodb_read_request_unit"]),
        LineItem("SQS requests (runs)", sqs, prices["sqs_request"]),
        LineItem(
            "SQS requests (workers' idle long polls)",
            task_hours * 3600 / s.receive_wait_seconds,
            prices["sqs_request"],
            f"one per task every {s.receive_wait_seconds:g} s",
        ),
        LineItem(
            "Secrets Manager secrets", float(s.secrets), prices["secrets_manager_secret_month"]
        ),
        LineItem(
            "Data transfer out (answers, provider requests)",
            egress / GIB,
            prices["data_transfer_out_gb"],
        ),
        LineItem(
            "CloudWatch alarms", float(s.alarm_metrics), prices["cloudwatch_alarm_metric_month"]
        ),
        LineItem("CloudWatch dashboard", float(s.dashboards), prices["cloudwatch_dashboard_month"]),
        LineItem(
            "CloudWatch custom metrics (EMF)",
            float(s.custom_metrics),
            prices["cloudwatch_custom_metric_month"],
        ),
        LineItem(
            "CloudWatch Logs ingested",
            (workload.requests_per_month + api_requests) * s.log_bytes_per_request / GIB,
            prices["cloudwatch_logs_ingested_gb"],
            "access lines at the edge and in the worker, EMF records",
        ),
    ]
    notes = []
    if over_max:
        notes.append(
            f"the peak needs {tasks_peak} tasks, more than worker_max_count "
            f"{s.worker_max_count}: costed at {tasks_peak}; raise worker_max_count to match"
        )
    return DesignCost(
        key=SWITCHBOARD, title=TITLES[SWITCHBOARD], items=tuple(items), notes=tuple(notes)
    )


def _run_units(
    s: SwitchboardSizing, seconds: float, in_kb: int, answer_kb: int, done_kb: int
) -> tuple[float, float]:
    """Write units and SQS requests of one run lasting ``seconds``."""
    renewals = math.floor(seconds / s.run_heartbeat_seconds)
    writes = (
        3 * in_kb  # TransactWriteItems (2x) and the GSI
        + renewals * 2 * in_kb  # lease renewals: the item and the GSI
        + (s.run_events - 1)
        + answer_kb  # the last event carries the answer
        + 2 * done_kb  # completion: the item and the GSI
    )
    return writes, 3 + math.floor(seconds / s.run_watchdog_seconds)


def _tasks(workload: Workload) -> tuple[int, int, bool]:
    """Fargate tasks in the peak hours and outside them, and whether the peak needs more
    than ``worker_max_count`` (the cost is then of the tasks the load needs)."""
    s = workload.switchboard
    peak_concurrency = sum(workload.class_peaks())
    off_concurrency = _off_peak_concurrency(workload)

    def needed(concurrency: float) -> int:
        return max(s.worker_min_count, math.ceil(concurrency / s.concurrency_per_task))

    peak, off = needed(peak_concurrency), needed(off_concurrency)
    return peak, off, max(peak, off) > s.worker_max_count


def _off_peak_concurrency(workload: Workload) -> float:
    off_seconds = (workload.hours_per_month - workload.peak.hours_per_month) * 3600
    if off_seconds <= 0:
        return 0.0
    busy = sum(c.busy_seconds for c in workload.classes)
    return busy * (1 - workload.peak.share_of_requests) / off_seconds


def _lcu_hours(workload: Workload) -> float:
    """LCU-hours: each hour bills its highest dimension (new connections, active
    connections, GB processed; the app has one listener rule, within the free 10)."""
    peak = workload.peak
    processed = sum(
        c.requests_per_month * (_request_bytes(workload, c) + _answer_bytes(workload, c))
        for c in workload.classes
    )
    requests = workload.requests_per_month

    def per_hour(share: float, hours: float, concurrency: float) -> float:
        if hours <= 0:
            return 0.0
        new_per_second = requests * share / hours / 3600
        gb_per_hour = processed * share / hours / GIB
        return hours * max(
            new_per_second / ALB_NEW_CONNECTIONS_PER_LCU,
            concurrency / ALB_ACTIVE_CONNECTIONS_PER_LCU,
            gb_per_hour / ALB_GB_PER_LCU,
        )

    return per_hour(
        peak.share_of_requests, peak.hours_per_month, sum(workload.class_peaks())
    ) + per_hour(
        1 - peak.share_of_requests,
        workload.hours_per_month - peak.hours_per_month,
        _off_peak_concurrency(workload),
    )


def _request_bytes(workload: Workload, cls: RequestClass) -> float:
    return cls.input_tokens * workload.bytes_per_token + workload.envelope_bytes


def _answer_bytes(workload: Workload, cls: RequestClass) -> float:
    return cls.output_tokens * workload.bytes_per_token + workload.envelope_bytes


# -- Break-even ---------------------------------------------------------------------------


def break_even(
    workload: Workload,
    first: str,
    second: str,
    first_total: Callable[[float], float],
    second_total: Callable[[float], float],
    *,
    low: float = BREAK_EVEN_LOW,
    high: float = BREAK_EVEN_HIGH,
    points: int = SCAN_POINTS,
) -> BreakEven:
    """Every factor in [low, high] where ``first_total(f) - second_total(f)`` changes sign.

    Both totals are piecewise linear in the factor with steps (tasks, provisioned
    environments), so the difference is scanned at ``points`` log-spaced factors and each
    sign change is bisected; a crossing at a step is reported at the step. Crossings
    closer together than the scan's spacing can be missed. ``Workload.scaled`` scales the
    requests and the peak concurrency, not the cold starts per month.
    """

    def diff(f: float) -> float:
        return first_total(f) - second_total(f)

    ratio = (high / low) ** (1 / (points - 1))
    factors = [low * ratio**i for i in range(points)]
    factors[-1] = high
    values = [diff(f) for f in factors]
    crossings = []
    for i in range(points - 1):
        fa, fb = values[i], values[i + 1]
        if (fa < 0) == (fb < 0):
            continue
        # Invariant: diff(lo) has fa's sign, diff(hi) has fb's.
        lo, hi = factors[i], factors[i + 1]
        for _ in range(_BISECTIONS):
            if hi - lo <= hi * 1e-12:
                break
            mid = (lo + hi) / 2
            if (diff(mid) < 0) == (fa < 0):
                lo = mid
            else:
                hi = mid
        crossings.append(
            Crossing(
                factor=hi,
                requests_per_month=workload.requests_per_month * hi,
                cheaper_below=first if fa < 0 else second,
                cheaper_above=second if fa < 0 else first,
            )
        )
    cheaper = None
    if not crossings:
        cheaper = first if values[0] < 0 else second
    return BreakEven(
        first=first,
        second=second,
        low=low,
        high=high,
        crossings=tuple(crossings),
        cheaper_throughout=cheaper,
    )
