"""Operations telemetry (issue 13): the correlation id, the JSON log lines and the EMF
metrics of the worker, the gateway Lambda, the authorizer and the stream door."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from starlette.testclient import TestClient

import services
from containers.worker.app import create_app
from containers.worker.ecs import TaskProtection
from containers.worker.settings import WorkerSettings
from devstack.tables import create_table
from lambdas.gateway import authorizer as edge
from lambdas.gateway import handler as gateway
from lambdas.stream.relay import forwarded_headers
from services import metrics_names as names
from services.canonical import Completion, CompletionRequest, StreamEvent, TextDelta, Usage
from services.errors import ERROR_TYPES
from services.frontdoor.routes import paths
from services.models.routing import Breakers, Router, RoutingSettings, Target
from services.providers.base import Provider
from services.providers.errors import ProviderError
from services.telemetry import ids, logs, metrics
from services.telemetry.context import begin
from services.tenancy.auth import Authenticator
from services.tenancy.keys import KeyStore
from services.tenancy.limits import Admission
from tests.fakes.keys import StaticKeys, bearer

KEY = "sb-telemetry-test-key"
SECRET_PROMPT = "the-prompt-nobody-may-log"
UNITS = {"Count", "Milliseconds", "Seconds", "None"}
DIMENSION_NAMES = set(names.DIMENSIONS)


class Flaky(Provider):
    """Fails its first `failures` calls retryably (a 503), then answers."""

    name = "flaky"

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures

    def models(self) -> list[str]:
        return ["m"]

    def _maybe_fail(self) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ProviderError("busy", provider=self.name, retryable=True, status=503)

    async def complete(self, request: CompletionRequest) -> Completion:
        self._maybe_fail()
        return Completion("the answer", "stop", Usage(3, 2))

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        self._maybe_fail()
        yield TextDelta("the answer")


class NoTenants:
    def get_item(self, **request: object) -> dict[str, object]:
        return {}


class Probe:
    """A `TableProbe` stand-in."""

    def __init__(self, problem: str | None = None) -> None:
        self.problem_text = problem

    def problem(self) -> str | None:
        return self.problem_text

    async def problem_async(self) -> str | None:
        return self.problem_text


def output_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def check_emf(document: dict[str, Any], service: str, providers: set[str]) -> None:
    """`document` is valid EMF, and every dimension is one of the fixed set, bounded."""
    aws = document["_aws"]
    assert isinstance(aws["Timestamp"], int)
    directives = aws["CloudWatchMetrics"]
    assert directives
    members = set(document) - {"_aws"}
    metric_names: set[str] = set()
    for directive in directives:
        assert directive["Namespace"] == names.NAMESPACE
        for dimension_set in directive["Dimensions"]:
            assert dimension_set and set(dimension_set) <= DIMENSION_NAMES
            for dimension in dimension_set:
                assert isinstance(document[dimension], str)
        for metric in directive["Metrics"]:
            assert metric["Name"] in names.ALL and metric["Unit"] in UNITS
            value = document[metric["Name"]]
            if isinstance(value, list):
                assert 0 < len(value) <= 100 and all(isinstance(v, int | float) for v in value)
            else:
                assert isinstance(value, int | float)
            metric_names.add(metric["Name"])
    # Nothing but dimensions and metrics: no tenant, key or request id in a metric record.
    assert members - metric_names <= DIMENSION_NAMES, members - metric_names
    assert document[names.SERVICE] == service
    assert document.get(names.ROUTE, "other") in {*paths(), metrics.OTHER}
    assert document.get(names.ERROR_TYPE, "other") in {*ERROR_TYPES, metrics.OTHER}
    assert document.get(names.PROVIDER, "other") in {*providers, metrics.OTHER}


# -- the correlation id ----------------------------------------------------------------


def test_a_sane_client_id_wins_then_the_edges_then_a_new_one() -> None:
    assert ids.choose("client-1", "edge-1") == "client-1"
    assert ids.choose(b"client-1", None) == "client-1"
    for insane in ("", "has space", "x" * 129, "caf\u00e9", "tab\there", b"\xff\xfe"):
        assert ids.choose(insane, "edge-1") == "edge-1", insane
    fresh = ids.choose(None, "bad edge")
    assert len(fresh) == 36 and fresh != ids.choose(None, None)


# -- log lines -----------------------------------------------------------------------------


def test_a_log_line_is_json_with_the_calls_id_and_fields() -> None:
    stream = io.StringIO()
    output = logs.Output("worker", stream=stream)
    handler = logs.Handler(output)
    record_logger = logging.getLogger("switchboard.test.telemetry")
    record_logger.addHandler(handler)
    record_logger.propagate = False
    try:
        record_logger.warning("outside any call")
        _, token = begin("req-7", "POST", "/v1/chat/completions", {"cold_start": True})
        try:
            record_logger.error("inside %s", "it", extra={"fields": {"attempt": 2}})
            output.access({"method": "POST", "route": "/v1/chat/completions", "status": 201,
                           "duration_ms": 3.5, "model": "m", "tenant_id": "t"})  # fmt: skip
        finally:
            from services.telemetry.context import CURRENT

            CURRENT.reset(token)
    finally:
        record_logger.removeHandler(handler)
    outside, inside, access = output_lines(stream.getvalue())
    assert set(outside) == {"timestamp", "level", "service", "message", "logger"}
    assert outside["timestamp"].endswith("Z") and outside["level"] == "WARNING"
    assert inside["request_id"] == "req-7" and inside["attempt"] == 2
    assert inside["cold_start"] is True and inside["message"] == "inside it"
    assert access["kind"] == "access" and access["request_id"] == "req-7"
    assert access["message"] == "POST /v1/chat/completions 201"
    assert {"method", "route", "status", "duration_ms", "model", "tenant_id"} <= set(access)


def test_console_mode_prints_one_readable_line_per_request_and_no_info_or_metrics() -> None:
    stream = io.StringIO()
    output = logs.Output("worker", "console", stream=stream)
    _, token = begin("req-8", "POST", "/v1/chat/completions")
    try:
        output.line("INFO", "chatty")
        output.access({"method": "POST", "route": "/v1/chat/completions", "status": 200,
                       "duration_ms": 312.4, "model": "local/simulator", "tenant_id": "dev"},
                      path="/v1/chat/completions")  # fmt: skip
        output.line("WARNING", "look here")
        output.metrics([b'{"_aws": {}}'])
    finally:
        from services.telemetry.context import CURRENT

        CURRENT.reset(token)
    assert stream.getvalue().splitlines() == [
        "POST /v1/chat/completions 200 312ms model=local/simulator tenant=dev req=req-8 [worker]",
        "WARNING [worker] look here req=req-8",
    ]


def test_console_lines_show_a_clients_control_characters_escaped() -> None:
    """A path (percent-decoded by the server) with a newline or an escape sequence cannot
    forge a console line or recolour the terminal."""
    stream = io.StringIO()
    output = logs.Output("worker", "console", stream=stream)
    forged = "/v1/x\n GET /v1/models 200 1ms tenant=admin [worker]\x1b[31m"
    output.access({"method": "GET", "route": None, "status": 404, "duration_ms": 1.0},
                  path=forged)  # fmt: skip
    output.line("WARNING", "upstream said", {"error_code": "bad\r\ncode"})
    printed = stream.getvalue()
    assert printed.splitlines() == [
        "GET /v1/x\\n GET /v1/models 200 1ms tenant=admin [worker]\\x1b[31m 404 1ms [worker]",
        "WARNING [worker] upstream said error_code=bad\\r\\ncode",
    ]
    assert "\x1b" not in printed


def test_a_bad_log_setting_is_refused() -> None:
    from services.config import ConfigError

    with pytest.raises(ConfigError, match="SWITCHBOARD_LOG_FORMAT"):
        logs.Output("worker", "yaml")
    with pytest.raises(ConfigError, match="SWITCHBOARD_LOG_LEVEL"):
        logs.configure("worker", {"SWITCHBOARD_LOG_LEVEL": "LOUD"})


# -- metrics ---------------------------------------------------------------------------------


def test_dimension_values_stay_bounded_whatever_is_reported() -> None:
    measured = metrics.Metrics("worker", routes=paths())
    measured.count(names.ERRORS, route="/v1/chat/completions", error_type="server_error")
    measured.count(names.ERRORS, route="/v1/runs/run_123/events", error_type="sk-secret-type")
    for n in range(40):
        measured.count(names.PROVIDER_ATTEMPTS, provider=f"p{n}")
    measured.count(names.PROVIDER_ATTEMPTS, provider="Bad Name!")
    documents = [json.loads(d) for d in measured.documents(now=1000.0)]
    routes = {d.get(names.ROUTE) for d in documents} - {None}
    assert routes == {"/v1/chat/completions", metrics.OTHER}
    assert {d.get(names.ERROR_TYPE) for d in documents} - {None} == {"server_error", "other"}
    providers = {d.get(names.PROVIDER) for d in documents} - {None}
    assert len(providers) == 17 and metrics.OTHER in providers  # 16 names, then `other`
    for document in documents:
        check_emf(document, "worker", {f"p{n}" for n in range(16)})
    errors = next(d for d in documents if d.get(names.ROUTE) == "/v1/chat/completions")
    assert sorted(errors["_aws"]["CloudWatchMetrics"][0]["Dimensions"]) == [
        ["Service"], ["Service", "ErrorType"], ["Service", "Route"]
    ]  # fmt: skip
    assert measured.documents(now=1001.0) == []  # each flush takes what was counted since


def test_every_error_type_the_code_declares_is_a_dimension_value() -> None:
    """An error type missing from services.errors.ERROR_TYPES would be counted as `other`:
    read every `type = "..."` (a class's) and `type="..."` (a raise's) in services/."""
    declared = {
        found
        for source in Path(services.__file__).parent.rglob("*.py")
        for found in re.findall(r'\btype\s*=\s*"([a-z_]+)"', source.read_text())
    }
    assert {"invalid_request_error", "insufficient_quota", "agent_error"} <= declared
    assert declared <= ERROR_TYPES, declared - ERROR_TYPES


def test_more_than_100_values_go_in_several_documents_and_gauges_once_a_minute() -> None:
    measured = metrics.Metrics("worker")
    measured.gauge(names.STREAMS_OPEN, lambda: 7)
    for n in range(250):
        measured.observe(names.LATENCY, float(n))
    measured.count(names.REQUESTS, 250)
    documents = [json.loads(d) for d in measured.documents(now=1000.0)]
    assert [len(d[names.LATENCY]) for d in documents] == [100, 100, 50]
    assert documents[0][names.REQUESTS] == 250 and documents[0][names.STREAMS_OPEN] == 7
    assert names.REQUESTS not in documents[1]
    measured.count(names.REQUESTS)
    again = [json.loads(d) for d in measured.documents(now=1030.0)]
    assert names.STREAMS_OPEN not in again[0]  # sampled once a minute
    later = [json.loads(d) for d in measured.documents(now=1061.0)]
    assert later[0][names.STREAMS_OPEN] == 7


def test_the_router_counts_attempts_retries_fallbacks_and_circuit_opens() -> None:
    measured = metrics.install(metrics.Metrics("worker"))
    try:
        settings = RoutingSettings(max_attempts=2, backoff_base=0.0, breaker_failures=2)
        first, second = Flaky(failures=99), Flaky(failures=1)
        second.name = "backup"

        async def no_sleep(seconds: float) -> None:
            return None

        router = Router(
            "route",
            [Target("flaky/m", first, "m"), Target("backup/m", second, "m")],
            settings,
            Breakers(settings),
            sleep=no_sleep,
        )
        request = CompletionRequest(model="m", messages=[])
        completion = asyncio.run(router.complete(request))
        assert completion.text == "the answer"
        documents = [json.loads(d) for d in measured.documents()]
    finally:
        metrics.install(metrics.NullMetrics())
    by_provider = {
        d[names.PROVIDER]: {k: v for k, v in d.items() if k in names.ALL}
        for d in documents
        if names.PROVIDER in d
    }
    assert by_provider["flaky"] == {"ProviderAttempts": 2, "ProviderRetries": 1, "CircuitOpens": 1}
    assert by_provider["backup"] == {"ProviderAttempts": 2, "ProviderRetries": 1, "Fallbacks": 1}
    for document in documents:
        check_emf(document, "worker", {"flaky", "backup"})


# -- the worker --------------------------------------------------------------------------------


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("SWITCHBOARD_RETRY_BACKOFF_SECONDS", "0")
    monkeypatch.setenv("SWITCHBOARD_RETRY_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("SWITCHBOARD_BREAKER_FAILURES", "2")
    broken = Flaky(failures=99)
    broken.name = "broken"
    app = create_app(
        WorkerSettings(table="t", metrics_interval_seconds=60.0),
        providers={"flaky": Flaky(failures=1), "broken": broken},
        authenticator=Authenticator(StaticKeys({KEY: ("tenant-a", "key-a")})),  # type: ignore[arg-type]
        admission=Admission(NoTenants(), "t"),
        protection=TaskProtection(None),
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    metrics.install(metrics.NullMetrics())


def test_the_workers_answers_access_lines_and_metrics(
    worker: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {"model": "flaky/m", "messages": [{"role": "user", "content": SECRET_PROMPT}]}
    trace = "Root=1-67891233-abcdef012345678912345678;Parent=53995c3f42cd8ad8;Sampled=1"
    headers = {**bearer(KEY), "x-request-id": "client-chosen-1", "x-amzn-trace-id": trace}
    broken = {**body, "model": "broken/m"}
    answers = [
        worker.post("/v1/chat/completions", json=body, headers=headers),  # retried once
        worker.post("/v1/chat/completions", json={**body, "stream": True}, headers=bearer(KEY)),
        worker.post("/v1/chat/completions", json=broken, headers=bearer(KEY)),  # breaker opens
        worker.post("/v1/chat/completions", json=body, headers=bearer("sb-wrong")),
        worker.post("/v1/chat/completions", content=b"{", headers=bearer(KEY)),
        worker.get("/v1/no/such/path", headers=bearer(KEY)),
        worker.get("/v1/models", headers={**bearer(KEY), "x-request-id": "bad id"}),
    ]
    worker.__exit__(None, None, None)  # the shutdown writes the last metrics
    statuses = [a.status_code for a in answers]
    assert statuses == [200, 200, 503, 401, 400, 404, 200], [a.text for a in answers]
    request_ids = [a.headers["x-request-id"] for a in answers]
    assert request_ids[0] == "client-chosen-1"
    assert len(set(request_ids)) == len(request_ids) and "bad id" not in request_ids

    printed = capsys.readouterr().out
    assert SECRET_PROMPT not in printed and KEY not in printed and "sb-wrong" not in printed
    lines = output_lines(printed)
    access = [line for line in lines if line.get("kind") == "access"]
    assert [line["request_id"] for line in access] == request_ids  # one per request
    assert [line["status"] for line in access] == statuses
    assert [line["route"] for line in access] == [
        "/v1/chat/completions", "/v1/chat/completions", "/v1/chat/completions",
        "/v1/chat/completions", "/v1/chat/completions", None, "/v1/models",
    ]  # fmt: skip
    assert access[0]["model"] == "flaky/m" and access[0]["tenant_id"] == "tenant-a"
    assert access[1]["model"] == "flaky/m" and access[2]["error_type"] == "upstream_error"
    assert access[3]["tenant_id"] is None and access[3]["error_type"] == "authentication_error"
    assert all(line["service"] == "worker" and line["duration_ms"] >= 0 for line in access)
    # The edge's X-Ray trace id joins the worker's lines of that call to the trace.
    traced = [line for line in lines if line.get("request_id") == "client-chosen-1"]
    assert traced and all(line["xray_trace_id"] == trace for line in traced)
    assert all("xray_trace_id" not in line for line in access[1:])
    # Each failed attempt has its line, with the call's id and no upstream message.
    failed = [line for line in lines if line.get("message") == "provider attempt failed"]
    assert [(f["request_id"], f["target"], f["next"]) for f in failed][:1] == [
        ("client-chosen-1", "flaky/m", "retry")
    ]
    assert {f["request_id"] for f in failed} <= set(request_ids)

    documents = [line for line in lines if "_aws" in line]
    for document in documents:
        check_emf(document, "worker", {"flaky", "broken"})
    emitted: dict[str, float] = {}
    for document in documents:
        for name in names.ALL:
            value = document.get(name)
            if value is not None:
                emitted[name] = emitted.get(name, 0) + (
                    len(value) if isinstance(value, list) else value
                )
    assert emitted[names.REQUESTS] == 7 and emitted[names.LATENCY] == 7
    assert emitted[names.ERRORS] == 1 and emitted[names.CLIENT_ERRORS] == 3
    assert emitted[names.PROVIDER_ATTEMPTS] == 5 and emitted[names.PROVIDER_RETRIES] == 2
    assert emitted[names.CIRCUIT_OPENS] == 1
    assert emitted[names.TIME_TO_FIRST_TOKEN] == 1 and names.STREAMS_OPEN in emitted


def test_the_worker_is_ready_only_when_its_table_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(
        WorkerSettings(table="t"),
        providers={"flaky": Flaky()},
        authenticator=Authenticator(StaticKeys({KEY: ("tenant-a", "key-a")})),  # type: ignore[arg-type]
        admission=Admission(NoTenants(), "t"),
        protection=TaskProtection(None),
    )
    probes = [Probe("the table t does not answer (EndpointConnectionError)"), Probe()]
    monkeypatch.setattr(
        "services.web.ready.TableProbe.problem_async", lambda self: probes[0].problem_async()
    )
    with TestClient(app) as client:
        down = client.get("/ready")
        probes.pop(0)
        up = client.get("/ready")
        alive = client.get("/health")
    metrics.install(metrics.NullMetrics())
    assert down.status_code == 503 and down.json()["error"]["code"] == "not_ready"
    assert "does not answer" in down.json()["error"]["message"]
    assert up.status_code == 200 and up.json() == {"status": "ready"}
    assert alive.status_code == 200 and down.headers["x-request-id"]


# -- the gateway Lambda and the authorizer --------------------------------------------------


@pytest.fixture
def lambdas(
    monkeypatch: pytest.MonkeyPatch, fresh_gateway: None
) -> Iterator[tuple[Any, io.StringIO]]:
    with mock_aws():
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("SWITCHBOARD_TABLE", "telemetry")
        monkeypatch.setattr(edge, "_authenticator", None)
        stream = io.StringIO()
        for module in (gateway, edge):
            monkeypatch.setattr(module.TELEMETRY, "output", None)
            monkeypatch.setattr(module.TELEMETRY, "metrics", None)
            monkeypatch.setattr(module.TELEMETRY, "cold", True)
        real_configure = logs.configure
        monkeypatch.setattr(
            logs, "configure", lambda service, env: real_configure(service, env, stream=stream)
        )
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(dynamodb, "telemetry")
        yield dynamodb, stream
    metrics.install(metrics.NullMetrics())
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logs.Handler)]:
        root.removeHandler(handler)


def event(method: str, path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers or {},
        "requestContext": {"requestId": "apigw-req-1", "path": f"/api{path}"},
        "methodArn": f"arn:aws:execute-api:us-east-1:1:a/api/{method}{path}",
        "body": None,
        "isBase64Encoded": False,
    }


class Context:
    aws_request_id = "lambda-req-1"


def test_the_gateway_answers_with_the_id_logs_the_call_and_emits_its_metrics(
    lambdas: tuple[Any, io.StringIO],
) -> None:
    dynamodb, stream = lambdas
    key = KeyStore(dynamodb, "telemetry").create("acme").secret
    ok = gateway.handler(
        event("GET", "/v1/conversations", {"Authorization": f"Bearer {key}"}), Context()
    )
    refused = gateway.handler(
        event("GET", "/v1/conversations", {"X-Request-Id": "mine-2"}), Context()
    )
    assert ok["statusCode"] == 200 and ok["headers"]["x-request-id"] == "apigw-req-1"
    assert refused["statusCode"] == 401 and refused["headers"]["x-request-id"] == "mine-2"
    lines = output_lines(stream.getvalue())
    assert key not in stream.getvalue()
    access = [line for line in lines if line.get("kind") == "access"]
    assert [(a["request_id"], a["status"], a["route"]) for a in access] == [
        ("apigw-req-1", 200, "/v1/conversations"), ("mine-2", 401, "/v1/conversations")
    ]  # fmt: skip
    assert access[0]["tenant_id"] == "acme" and access[0]["function_request_id"] == "lambda-req-1"
    assert access[0]["cold_start"] is True and access[1]["cold_start"] is False
    assert access[1]["error_type"] == "authentication_error"
    documents = [line for line in lines if "_aws" in line]
    assert documents  # one invocation, its metrics written at its end
    for document in documents:
        check_emf(document, "gateway", set())


def test_the_gateway_answers_health_and_readiness_through_the_catch_all(
    lambdas: tuple[Any, io.StringIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    health = gateway.handler(event("GET", "/health"), Context())
    ready = gateway.handler(event("GET", "/ready"), Context())
    assert health["statusCode"] == 200 and json.loads(health["body"]) == {"status": "ok"}
    assert ready["statusCode"] == 200 and json.loads(ready["body"]) == {"status": "ready"}
    monkeypatch.setattr(gateway, "_probe", Probe("the table telemetry does not answer (X)"))
    down = gateway.handler(event("GET", "/ready"), Context())
    assert down["statusCode"] == 503 and down["headers"]["x-request-id"] == "apigw-req-1"
    assert json.loads(down["body"])["error"]["code"] == "not_ready"


def test_a_missing_table_makes_the_gateway_not_ready(
    lambdas: tuple[Any, io.StringIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_TABLE", "no-such-table")
    down = gateway.handler(event("GET", "/ready"), Context())
    assert down["statusCode"] == 503
    assert "no-such-table does not answer" in json.loads(down["body"])["error"]["message"]


def test_the_authorizer_logs_each_decision_with_the_calls_id(
    lambdas: tuple[Any, io.StringIO],
) -> None:
    dynamodb, stream = lambdas
    key = KeyStore(dynamodb, "telemetry").create("acme").secret
    allowed = event("POST", "/v1/chat/completions", {"authorization": f"Bearer {key}"})
    allowed["resource"] = "/v1/chat/completions"
    edge.handler(allowed, Context())
    with pytest.raises(Exception, match="Unauthorized"):
        edge.handler(event("POST", "/v1/chat/completions", {"x-request-id": "c-9"}), Context())
    lines = output_lines(stream.getvalue())
    decisions = [line for line in lines if line.get("service") == "authorizer" and "message"
                 in line]  # fmt: skip
    assert [(d["message"], d["request_id"]) for d in decisions] == [
        ("authorized", "apigw-req-1"), ("refused", "c-9")
    ]  # fmt: skip
    assert decisions[0]["tenant_id"] == "acme" and decisions[0]["route"] == "/v1/chat/completions"
    assert key not in stream.getvalue()
    documents = [line for line in lines if "_aws" in line]
    for document in documents:
        check_emf(document, "authorizer", set())
    # Each decision's time, for the dashboard's latency beside the worker's.
    assert sum(len(d.get(names.LATENCY, [])) for d in documents) == 2


# -- the stream door ------------------------------------------------------------------------------


def test_the_stream_door_sends_the_calls_id_upstream_in_place_of_the_clients() -> None:
    head = forwarded_headers(
        [(b"authorization", b"Bearer k"), (b"x-request-id", b"bad id"), (b"accept", b"*/*")],
        "chosen-1",
    )
    assert head.split(b"\r\n") == [
        b"authorization: Bearer k", b"accept: */*", b"x-request-id: chosen-1"
    ]  # fmt: skip


def test_the_stream_door_is_ready_when_its_table_answers() -> None:
    from lambdas.stream.app import create_app as door_app
    from lambdas.stream.settings import StreamSettings

    door = door_app(StreamSettings(table="t", upstream_url="http://127.0.0.1:9"))
    with TestClient(door) as client:  # type: ignore[arg-type]
        door.probe = Probe("the table t does not answer (X)")  # type: ignore[assignment]
        down = client.get("/ready", headers={"x-request-id": "probe-1"})
        door.probe = Probe()  # type: ignore[assignment]
        up = client.get("/ready")
    metrics.install(metrics.NullMetrics())
    assert down.status_code == 503 and down.json()["error"]["code"] == "not_ready"
    assert down.headers["x-request-id"] == "probe-1"
    assert up.status_code == 200 and up.json() == {"status": "ready"}
