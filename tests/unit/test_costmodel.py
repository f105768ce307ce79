"""The cost model against hand-computed cases: every expected figure is written out as
the arithmetic a reviewer can redo with a calculator."""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from costmodel import costs as est
from costmodel.__main__ import main
from costmodel.files import (
    DEFAULT_PRICES,
    PRICE_KEYS,
    WorkloadError,
    load_prices,
    load_workload,
    parse_prices,
    parse_workload,
)
from costmodel.model import GIB, DesignCost, Prices, SwitchboardSizing

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "workload.toml"
TIGHT = 1e-12

# The table the hand computations use (us-east-1 list prices as of the shipped table);
# the tests do not depend on later edits of prices.toml.
LAMBDA_GB_S = 0.0000166667
LAMBDA_REQUEST = 0.20 / 1e6
PC_GB_S = 0.0000041667
PC_DURATION_GB_S = 0.0000097222
APIGW = 3.50 / 1e6
VCPU_HOUR = 0.04048
GB_HOUR = 0.004445
DATA_OUT_GB = 0.09
ARM_GB_S = 0.0000133334
ARM_VCPU_HOUR = 0.03238
ARM_GB_HOUR = 0.00356
VALUES = {
    "lambda_request": (0.20, 1_000_000),
    "lambda_gb_second": (LAMBDA_GB_S, 1),
    "lambda_provisioned_gb_second": (PC_GB_S, 1),
    "lambda_provisioned_duration_gb_second": (PC_DURATION_GB_S, 1),
    "apigw_rest_request": (3.50, 1_000_000),
    "lambda_arm_gb_second": (ARM_GB_S, 1),
    "fargate_vcpu_hour": (VCPU_HOUR, 1),
    "fargate_gb_hour": (GB_HOUR, 1),
    "fargate_arm_vcpu_hour": (ARM_VCPU_HOUR, 1),
    "fargate_arm_gb_hour": (ARM_GB_HOUR, 1),
    "vpc_link_v2_hour": (0.0, 1),
    "alb_hour": (0.0225, 1),
    "alb_lcu_hour": (0.008, 1),
    "nat_gateway_hour": (0.045, 1),
    "nat_gateway_gb": (0.045, 1),
    "public_ipv4_hour": (0.005, 1),
    "dynamodb_write_request_unit": (0.625, 1_000_000),
    "dynamodb_read_request_unit": (0.125, 1_000_000),
    "sqs_request": (0.40, 1_000_000),
    "secrets_manager_secret_month": (0.40, 1),
    "data_transfer_out_gb": (DATA_OUT_GB, 1),
    "cloudwatch_alarm_metric_month": (0.10, 1),
    "cloudwatch_dashboard_month": (3.0, 1),
    "cloudwatch_custom_metric_month": (0.30, 1),
    "cloudwatch_logs_ingested_gb": (0.50, 1),
}


def prices(**overrides: float) -> Prices:
    """The table above; ``overrides`` set a price (per its ``per``), e.g. to zero."""
    table: dict[str, Any] = {"as_of": "2026-11-29", "region": "us-east-1", "currency": "USD"}
    for key, (value, per) in VALUES.items():
        table[key] = {
            "price": overrides.get(key, value),
            "per": per,
            "unit": "units",
            "source": "https://aws.amazon.com/pricing/",
        }
    return parse_prices(table)


def only(*keys: str) -> Prices:
    """Every price zero except ``keys``: a design's total is then those items alone."""
    return prices(**{k: 0.0 for k in PRICE_KEYS if k not in keys})


def workload(classes: list[dict[str, Any]], **top: Any) -> Any:
    return parse_workload({"classes": classes, **top})


def one_class(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "c",
        "requests_per_month": 1000,
        "latency_seconds": 10,
        "input_tokens": 1000,
        "output_tokens": 500,
    }
    return {**base, **fields}


def item(design: DesignCost, name: str) -> Any:
    matches = [i for i in design.items if i.name == name]
    assert len(matches) == 1, [i.name for i in design.items]
    return matches[0]


# -- Lambda-only ----------------------------------------------------------------------------


def test_on_demand_one_class_1000_requests_of_10_s_at_1024_mb() -> None:
    w = workload([one_class()], peak={"concurrency": 5}, lambda_only={"memory_mb": 1024})
    d = est.lambda_only(w, prices())

    duration = item(d, "Lambda duration: c")
    assert duration.quantity == 1000 * 10 * (1024 / 1024)  # 10,000 GB-s
    assert duration.cost == pytest.approx(10_000 * 0.0000166667, rel=TIGHT)  # $0.166667
    assert item(d, "Lambda requests").cost == pytest.approx(1000 * 0.20 / 1e6, rel=TIGHT)
    assert item(d, "API Gateway REST requests").cost == pytest.approx(1000 * 3.50 / 1e6, rel=TIGHT)
    # Each request carries 1000 tokens x 4 bytes + 512, each answer 500 x 4 + 512.
    out_bytes = 1000 * ((1000 * 4 + 512) + (500 * 4 + 512))  # 7,024,000 bytes
    assert item(d, "Data transfer out (answers, provider requests)").cost == pytest.approx(
        out_bytes / 2**30 * 0.09, rel=TIGHT
    )
    assert d.total == pytest.approx(
        0.166667 + 0.0002 + 0.0035 + 7_024_000 / 1_073_741_824 * 0.09, rel=TIGHT
    )


def test_latency_buckets_bill_their_mean_and_a_class_memory_overrides_the_default() -> None:
    w = workload(
        [
            {
                "name": "c",
                "requests_per_month": 1000,
                "latency": [[5, 0.5], [15, 0.5]],
                "lambda_memory_mb": 512,
            }
        ],
        peak={"concurrency": 5},
    )
    d = est.lambda_only(w, only("lambda_gb_second"))
    # 1000 x (5 x 0.5 + 15 x 0.5) s x 0.5 GB = 5,000 GB-s
    assert d.total == pytest.approx(5_000 * 0.0000166667, rel=TIGHT)


def test_provisioned_concurrency_is_environments_x_gb_x_peak_hours() -> None:
    w = workload(
        [one_class(peak_concurrency=9.2)],
        peak={"hours_per_month": 200, "share_of_requests": 0.75},
        lambda_only={"memory_mb": 2048},
    )
    d = est.lambda_only(w, prices(), provisioned=True)

    pc = item(d, "Lambda provisioned concurrency: c")
    assert pc.quantity == 10 * 2 * 200 * 3600  # ceil(9.2) environments x 2 GB x 200 h
    assert pc.cost == pytest.approx(14_400_000 * 0.0000041667, rel=TIGHT)  # $60.00048
    # 3/4 of 1000 x 10 s x 2 GB in the provisioned hours, the rest on demand.
    served = item(d, "Lambda duration on provisioned: c")
    assert served.cost == pytest.approx(15_000 * 0.0000097222, rel=TIGHT)
    rest = item(d, "Lambda duration on demand: c")
    assert rest.cost == pytest.approx(5_000 * 0.0000166667, rel=TIGHT)


def test_cold_starts_bill_init_and_provisioned_hours_remove_theirs() -> None:
    w = workload(
        [one_class()],
        peak={"concurrency": 1, "hours_per_month": 219, "share_of_requests": 0.5},
        lambda_only={"memory_mb": 1024, "cold_starts_per_month": 100, "init_seconds": 8},
    )
    on_demand = est.lambda_only(w, prices())
    assert item(on_demand, "Lambda cold starts (INIT): c").quantity == 100 * 8 * 1
    provisioned = est.lambda_only(w, prices(), provisioned=True)
    # Only the off-peak share of the month keeps its cold starts: (730 - 219) / 730 = 0.7.
    assert item(provisioned, "Lambda cold starts (INIT): c").quantity == pytest.approx(
        100 * 0.7 * 8 * 1, rel=TIGHT
    )


def test_class_peaks_share_the_workload_peak_by_busy_seconds() -> None:
    w = workload(
        [
            one_class(name="a", requests_per_month=1000, latency_seconds=10),  # 10,000 s
            one_class(name="b", requests_per_month=3000, latency_seconds=10),  # 30,000 s
            one_class(name="c", requests_per_month=1, latency_seconds=1, peak_concurrency=4),
        ],
        peak={"concurrency": 10},
    )
    assert w.class_peaks() == (2.5, 7.5, 4)
    d = est.lambda_only(w, only("lambda_provisioned_gb_second"), provisioned=True)
    # ceil(2.5) + ceil(7.5) + 4 = 3 + 8 + 4 environments of 1 GB for 220 h
    assert d.total == pytest.approx((3 + 8 + 4) * 1 * 220 * 3600 * 0.0000041667, rel=TIGHT)


# -- Switchboard ----------------------------------------------------------------------------


def test_fargate_is_tasks_x_hours_x_graviton_vcpu_and_gb_prices() -> None:
    w = workload([one_class()], peak={"concurrency": 50})
    d = est.switchboard(w, only("fargate_arm_vcpu_hour", "fargate_arm_gb_hour"))
    # 50 concurrent fit one task (1,000 per task): 1 task x 730 h of 1 vCPU and 2 GB.
    assert item(d, "Fargate vCPU").quantity == 730 * 1
    assert item(d, "Fargate memory").quantity == 730 * 2
    assert d.total == pytest.approx(730 * (1 * 0.03238 + 2 * 0.00356), rel=TIGHT)  # $28.8348


def test_fargate_steps_up_when_the_peak_exceeds_one_tasks_capacity() -> None:
    w = workload(
        [one_class()],
        peak={"concurrency": 2500, "hours_per_month": 220},
        switchboard={"concurrency_per_task": 1000, "worker_cpu": 2048, "worker_memory_mib": 4096},
    )
    d = est.switchboard(w, only("fargate_arm_vcpu_hour", "fargate_arm_gb_hour"))
    # ceil(2500 / 1000) = 3 tasks in the 220 peak hours, the minimum of 1 in the other 510.
    task_hours = 3 * 220 + 1 * 510  # 1,170
    assert item(d, "Fargate vCPU").quantity == task_hours * 2
    assert d.total == pytest.approx(1170 * (2 * 0.03238 + 4 * 0.00356), rel=TIGHT)
    assert d.notes == ()

    over = workload([one_class()], peak={"concurrency": 12_345})
    d = est.switchboard(over, only("fargate_arm_vcpu_hour"))
    # 13 tasks are costed, and the note says the stage's maximum of 10 would not hold them.
    assert d.total == pytest.approx((13 * 220 + 1 * 510) * 0.03238, rel=TIGHT)
    assert "needs 13 tasks" in d.notes[0] and "worker_max_count 10" in d.notes[0]


def test_a_sync_call_bills_no_lambda_for_the_wait_and_past_the_deadline_a_run() -> None:
    fast = workload([one_class(latency_seconds=10)], peak={"concurrency": 1})
    d = est.switchboard(fast, prices())
    assert item(d, "API Gateway REST requests").quantity == 1000
    # No Lambda waits on the model: only the authorizer runs, 0.02 s at 1 GB.
    assert item(d, "Gateway Lambda duration").quantity == 0
    assert item(d, "Authorizer Lambda requests").quantity == 1000
    assert item(d, "Authorizer Lambda duration").quantity == pytest.approx(1000 * 0.02 * 1.0)
    assert item(d, "SQS requests (runs)").quantity == 0

    slow = workload([one_class(latency_seconds=265)], peak={"concurrency": 1})
    d = est.switchboard(slow, prices())
    # Past the 240 s deadline a run, then ceil((265 - 240) / 5) = 5 polls of 0.05 s each
    # on the gateway (1792 MB).
    assert item(d, "API Gateway REST requests").quantity == 1000 * (1 + 5)
    assert item(d, "Gateway Lambda duration").quantity == pytest.approx(
        1000 * 5 * 0.05 * 1.75, rel=TIGHT
    )
    # The run item holds the request (1000 x 4 + 512 B) and 512 B more: ceil(5024 / 1024) = 5
    # KB; the answer is 500 x 4 + 512 = 2512 B (3 KB); finished, 7536 B (8 KB, 2 x 4 KB).
    # Writes: create 3 x 5 (transaction 2x, GSI) + 26 renewals x 2 x 5 + 2 small events
    # + the answer event 3 + completion 2 x 8, then the usage transaction 3 x 2 and the
    # rate-limit window 1.
    writes = 3 * 5 + 26 * 2 * 5 + 2 + 3 + 2 * 8 + 6 + 1
    assert item(d, "DynamoDB writes").quantity == 1000 * writes
    # Reads: the key at the edge and in the worker, then on each of 5 polls the key and the
    # run (2 units), the tenant's spend once.
    assert item(d, "DynamoDB reads").quantity == 1000 * (2 + 5 * (1 + 2) + 1)
    # SQS: send, receive, delete, and floor(265 / 60) = 4 watchdog receives.
    assert item(d, "SQS requests (runs)").quantity == 1000 * 7


def test_a_stream_goes_through_the_api_and_the_function_url_share_keeps_a_lambda() -> None:
    w = workload([one_class(latency_seconds=30, modes={"stream": 1.0})], peak={"concurrency": 1})
    d = est.switchboard(w, prices())
    assert item(d, "API Gateway REST requests").quantity == 1000
    assert item(d, "Stream Lambda requests").quantity == 0
    # Data out: the provider request (4512 B) and 500 SSE chunks of 180 B + 512.
    assert item(d, "Data transfer out (answers, provider requests)").quantity == pytest.approx(
        1000 * (4512 + 500 * 180 + 512) / GIB, rel=TIGHT
    )
    via_url = workload(
        [one_class(latency_seconds=30, modes={"stream": 1.0})],
        peak={"concurrency": 1},
        switchboard={"stream_url_share": 0.5},
    )
    d = est.switchboard(via_url, prices())
    assert item(d, "API Gateway REST requests").quantity == 1000  # the relay goes through it
    assert item(d, "Stream Lambda requests").quantity == 500
    assert item(d, "Stream Lambda duration").quantity == pytest.approx(
        500 * (30 + 0.05) * 1.75, rel=TIGHT
    )


def test_a_background_run_is_a_post_and_polls_until_done() -> None:
    w = workload(
        [one_class(latency_seconds=12, modes={"background": 1.0})],
        peak={"concurrency": 1},
        switchboard={"poll_interval_seconds": 4},
    )
    d = est.switchboard(w, prices())
    # POST (to the worker) + ceil(12 / 4) = 3 polls, each a short gateway invocation.
    assert item(d, "API Gateway REST requests").quantity == 1000 * 4
    assert item(d, "Gateway Lambda requests").quantity == 1000 * 3
    assert item(d, "Gateway Lambda duration").quantity == pytest.approx(
        1000 * 3 * 0.05 * 1.75, rel=TIGHT
    )
    # One renewal (12 s / 10 s) in the run's writes: 3 x 5 + 1 x 2 x 5 + 2 + 3 + 2 x 8,
    # and 6 + 1 for usage and the rate limit.
    assert item(d, "DynamoDB writes").quantity == 1000 * (15 + 10 + 2 + 3 + 16 + 7)


def test_fixed_items_follow_the_stage_shape() -> None:
    w = workload([one_class()], peak={"concurrency": 1})
    d = est.switchboard(w, prices())
    assert item(d, "ALB hours (internal)").cost == pytest.approx(730 * 0.0225, rel=TIGHT)
    assert not [i for i in d.items if i.name.startswith("NAT")]
    # The ALB is internal (no public address); without NAT every task has one.
    assert item(d, "Public IPv4 addresses").quantity == 730
    assert item(d, "Secrets Manager secrets").cost == pytest.approx(2 * 0.40, rel=TIGHT)
    assert item(d, "SQS requests (workers' idle long polls)").quantity == 730 * 3600 / 5

    # What operators watch: 16 alarm metrics, one dashboard, 14 custom metrics.
    assert item(d, "CloudWatch alarms").cost == pytest.approx(16 * 0.10, rel=TIGHT)
    assert item(d, "CloudWatch dashboard").cost == pytest.approx(3.0, rel=TIGHT)
    assert item(d, "CloudWatch custom metrics (EMF)").cost == pytest.approx(14 * 0.30, rel=TIGHT)

    nat = workload([one_class()], peak={"concurrency": 1}, switchboard={"nat_gateways": 1})
    d = est.switchboard(nat, prices())
    assert item(d, "NAT gateway hours").cost == pytest.approx(730 * 0.045, rel=TIGHT)
    # With NAT the tasks are private: only the NAT gateway's address.
    assert item(d, "Public IPv4 addresses").quantity == 730


def test_the_seed_workload_costs_under_60_dollars_and_crosses_on_demand_lambda() -> None:
    seed = est.estimate(load_workload(SEED), load_prices(DEFAULT_PRICES))
    switchboard = next(d for d in seed.designs if d.key == est.SWITCHBOARD)
    assert switchboard.total < 60
    on_demand = next(b for b in seed.break_even if b.second == est.LAMBDA_ON_DEMAND)
    assert on_demand.crossings, "Switchboard must become cheaper than on-demand Lambda"
    assert on_demand.crossings[-1].cheaper_above == est.SWITCHBOARD


def test_sizing_defaults_are_the_stage_config_defaults() -> None:
    """The cost model cannot import infra; this keeps its copy of the defaults honest."""
    stage = _defaults(ROOT / "infra" / "config.py", "StageConfig")
    worker = _defaults(ROOT / "containers" / "worker" / "settings.py", "WorkerSettings")
    runs = _defaults(ROOT / "services" / "runs" / "service.py", "RunSettings")
    sizing = SwitchboardSizing()
    shared = [
        "worker_cpu",
        "worker_memory_mib",
        "worker_min_count",
        "worker_max_count",
        "nat_gateways",
        "gateway_memory_mib",
        "stream_memory_mib",
        "authorizer_memory_mib",
        "sync_deadline_seconds",
    ]
    for name in shared:
        assert getattr(sizing, name) == stage[name], name
    assert sizing.run_heartbeat_seconds == worker["run_heartbeat_seconds"]
    assert sizing.run_watchdog_seconds == worker["run_watchdog_seconds"]
    assert sizing.receive_wait_seconds == runs["receive_wait_seconds"]
    stateful = (ROOT / "infra" / "stacks" / "stateful.py").read_text()
    assert sizing.secrets == stateful.count("secretsmanager.Secret(")
    worker = (ROOT / "infra" / "stacks" / "worker.py").read_text()
    assert f"max_azs={sizing.availability_zones}," in worker


def _defaults(path: Path, class_name: str) -> dict[str, Any]:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return {
                stmt.target.id: ast.literal_eval(stmt.value)
                for stmt in node.body
                if isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and stmt.value is not None
                and _literal(stmt.value)
            }
    raise AssertionError(f"{class_name} not in {path}")


def _literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except ValueError:
        return False
    return True


# -- Break-even -----------------------------------------------------------------------------


def test_break_even_where_the_hand_computed_totals_cross() -> None:
    # Only x86 Lambda duration (the old design's) and Graviton Fargate vCPU cost anything.
    # At factor f:
    #   Lambda-only:  f x 1000 x 10 s x 1 GB x p  = f x 10,000 p
    #   Switchboard:  730 x v (no Lambda waits on the model)
    # (one task throughout: the peak, f x 1, stays under 1,000 per task.)
    # They cross at f = 730 v / (10,000 p).
    w = workload([one_class()], peak={"concurrency": 1})
    table = only("lambda_gb_second", "fargate_arm_vcpu_hour")
    result = est.estimate(w, table)
    crossing_at = 730 * 0.03238 / (10_000 * 0.0000166667)  # 141.82...
    on_demand = result.break_even[0]
    assert (on_demand.first, on_demand.second) == (est.SWITCHBOARD, est.LAMBDA_ON_DEMAND)
    assert len(on_demand.crossings) == 1
    c = on_demand.crossings[0]
    assert c.factor == pytest.approx(crossing_at, rel=1e-9)
    assert c.requests_per_month == pytest.approx(1000 * crossing_at, rel=1e-9)
    assert (c.cheaper_below, c.cheaper_above) == (est.LAMBDA_ON_DEMAND, est.SWITCHBOARD)
    # And the totals do agree there.
    at = w.scaled(c.factor)
    assert est.switchboard(at, table).total == pytest.approx(
        est.lambda_only(at, table).total, rel=1e-8
    )


def test_break_even_at_a_step_and_when_nothing_crosses() -> None:
    w = workload([one_class()], peak={"concurrency": 1})
    # A step from 10 to 30 at f = 3 crosses a flat 20 there.
    stepped = est.break_even(w, "a", "b", lambda f: 10.0 if f < 3 else 30.0, lambda f: 20.0)
    assert [c.factor for c in stepped.crossings] == [pytest.approx(3, rel=1e-9)]
    assert (stepped.crossings[0].cheaper_below, stepped.crossings[0].cheaper_above) == ("a", "b")
    apart = est.break_even(w, "a", "b", lambda f: 2 * f, lambda f: f)
    assert apart.crossings == () and apart.cheaper_throughout == "b"


# -- Workload files -------------------------------------------------------------------------


def test_requests_per_hour_convert_with_730_hours_or_the_files_own() -> None:
    w = workload(
        [{"name": "c", "requests_per_hour": 10, "latency_seconds": 1}], peak={"concurrency": 1}
    )
    assert w.classes[0].requests_per_month == 10 * 730
    w = workload(
        [{"name": "c", "requests_per_hour": 10, "latency_seconds": 1}],
        peak={"concurrency": 1, "hours_per_month": 200},
        hours_per_month=720,
    )
    assert w.classes[0].requests_per_month == 10 * 720


def test_modes_default_to_sync_and_sync_takes_the_remainder() -> None:
    w = workload(
        [one_class(name="a"), one_class(name="b", modes={"stream": 0.25, "background": 0.25})],
        peak={"concurrency": 1},
    )
    assert (w.classes[0].modes.sync, w.classes[1].modes.sync) == (1.0, 0.5)


@pytest.mark.parametrize(
    ("classes", "top", "message"),
    [
        ([], {}, "classes: at least one"),
        (
            [{"name": "c", "requests_per_month": 1}],
            {},
            "classes[0]: give exactly one of latency_seconds",
        ),
        (
            [{"name": "c", "latency_seconds": 1}],
            {},
            "classes[0]: give exactly one of requests_per_month",
        ),
        (
            [{"name": "c", "requests_per_month": 1, "latency": [[5, 0.5], [9, 0.4]]}],
            {},
            "classes[0].latency: the shares must add up to 1, got 0.9",
        ),
        (
            [{"name": "c", "requests_per_month": 1, "latency": [[5, "x"]]}],
            {},
            "classes[0].latency[0]: must be a pair [seconds, share]",
        ),
        (
            [{"name": "c", "requests_per_month": "many", "latency_seconds": 1}],
            {},
            "classes[0].requests_per_month: must be a number, got 'many'",
        ),
        (
            [{"name": "c", "requests_per_month": 1, "latncy_seconds": 1}],
            {},
            "classes[0].latncy_seconds: unknown field",
        ),
        (
            [
                {
                    "name": "c",
                    "requests_per_month": 1,
                    "latency_seconds": 1,
                    "modes": {"stream": 0.7, "background": 0.6},
                }
            ],
            {},
            "classes[0].modes: stream + background must be at most 1",
        ),
        ([one_class()], {}, "peak.concurrency: required unless every class"),
        (
            [one_class()],
            {"peak": {"concurrency": 1, "hours_per_month": 800}},
            "peak.hours_per_month: 800",
        ),
        (
            [one_class()],
            {"peak": {"concurrency": 1}, "switchboard": {"worker_cpu": 0}},
            "switchboard.worker_cpu: must be > 0",
        ),
        (
            [one_class()],
            {"peak": {"concurrency": 1}, "switchboard": {"worker_min_count": 1.5}},
            "switchboard.worker_min_count: must be a whole number",
        ),
    ],
)
def test_bad_workloads_name_the_field(
    classes: list[Any], top: dict[str, Any], message: str
) -> None:
    with pytest.raises(WorkloadError) as caught:
        parse_workload({"classes": classes, **top})
    assert message in str(caught.value)


def test_the_command_reports_a_bad_file_with_status_2_and_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "w.toml"
    bad.write_text('[[classes]]\nname = "c"\nrequests_per_month = 10\nlatency_seconds = -3\n')
    assert main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {bad}: classes[0].latency_seconds: must be >= 0, got -3\n"

    assert main([str(tmp_path / "missing.toml")]) == 2
    assert "no such file" in capsys.readouterr().err

    broken = tmp_path / "broken.toml"
    broken.write_text("classes = [\n")
    assert main([str(broken)]) == 2
    assert "not valid TOML" in capsys.readouterr().err

    table = tmp_path / "prices.toml"
    table.write_text('as_of = "2026-01-01"\nregion = "us-east-1"\n')
    assert main([str(SEED), "--prices", str(table)]) == 2
    assert "lambda_request: missing from the price table" in capsys.readouterr().err


# -- The shipped table and the seed workload ------------------------------------------------


def test_the_shipped_price_table_is_dated_and_every_price_has_a_source() -> None:
    table = load_prices(DEFAULT_PRICES)
    assert table.region == "us-east-1" and table.as_of
    for key in PRICE_KEYS:
        assert table[key].source.startswith("https://aws.amazon.com/"), key
        assert table[key].note.startswith(("checked", "not checked")), key
    # The November 2024 on-demand cut: $0.625 per million writes, $0.125 per million reads.
    assert table["dynamodb_write_request_unit"].cost(1e6) == 0.625
    assert table["dynamodb_read_request_unit"].cost(1e6) == 0.125


def test_the_seed_workload_is_the_issues() -> None:
    w = load_workload(SEED)
    assert [(c.name, c.requests_per_month, c.mean_seconds) for c in w.classes] == [
        ("document summarizer", 1200, 8),
        ("image classifier", 800, 12),
        ("content generator", 400, 18),
        ("chat agent", 2000, 15),
        ("tag suggester", 3000, 5),
        ("PDF analyzer", 200, 22),
        ("report builder", 100, 35),
    ]
    assert w.peak.concurrency == 50
    # 1200x8 + 800x12 + 400x18 + 2000x15 + 3000x5 + 200x22 + 100x35 = 79,300 s at 1 GB.
    d = est.lambda_only(w, only("lambda_gb_second"))
    assert d.total == pytest.approx(79_300 * 0.0000166667, rel=TIGHT)


def test_the_seed_workload_prints_every_design_and_the_break_even() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "costmodel", str(SEED)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    out = run.stdout
    for title in est.TITLES.values():
        assert out.count(title) >= 2, title  # its table and its total
    assert "Fargate vCPU" in out and "Lambda provisioned concurrency: chat agent" in out
    assert "Break-even" in out and "requests/month" in out

    as_json = subprocess.run(
        [sys.executable, "-m", "costmodel", str(SEED), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(as_json.stdout)
    assert [d["key"] for d in data["designs"]] == list(est.TITLES)
    for d in data["designs"]:
        assert math.isclose(d["total"], sum(i["cost"] for i in d["items"]), rel_tol=1e-12)
        assert d["total"] > 0
    assert len(data["break_even"]) == 2
