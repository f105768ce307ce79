"""The gateway Lambda: the control plane only, routed by the route table, with API Gateway's
REST proxy events and a table on moto."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devstack.tables import create_table
from lambdas.gateway import handler as gateway
from services.frontdoor.routes import ROUTES, Owner, routes_of
from services.runs.model import Run
from services.runs.store import RunStore, new_run_id
from services.tenancy.keys import KeyStore

TABLE = "switchboard-gateway-test"


def proxy(
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: str | None = None,
    resource: str = "/{proxy+}",
    stage_path: str | None = None,
) -> dict[str, Any]:
    """A REST API Lambda proxy event, as API Gateway sends it for `method path`."""
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers or {},
        "multiValueHeaders": {k: [v] for k, v in (headers or {}).items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": stage_path if stage_path is not None else f"/api{path}",
            "stage": "api",
            "requestId": "r-1",
            "accountId": "123456789012",
            "apiId": "a1b2c3d4e5",
            "identity": {"sourceIp": "203.0.113.7"},
        },
        "body": body,
        "isBase64Encoded": False,
    }


def call(event: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    result = gateway.handler(event, None)
    return result["statusCode"], result["headers"], json.loads(result["body"])


def test_every_control_route_has_a_handler_and_no_other_route_has_one() -> None:
    assert set(gateway.HANDLERS) == {(r.method, r.path) for r in routes_of(Owner.CONTROL)}


def test_a_handler_for_a_route_the_table_does_not_give_the_control_plane_is_refused() -> None:
    with pytest.raises(LookupError, match="POST /v1/chat/completions"):
        gateway.control("POST", "/v1/chat/completions")
    with pytest.raises(LookupError):
        gateway.control("GET", "/v1/somewhere")


def test_404_and_405_come_from_the_table() -> None:
    status, headers, body = call(proxy("PUT", "/v1/runs"))
    assert status == 405
    assert body["error"]["message"] == "Method PUT is not allowed on /v1/runs; use POST or GET."
    assert body["error"]["code"] == "method_not_allowed" and headers["allow"] == "POST, GET"
    status, _, body = call(proxy("DELETE", "/v1/usage"))
    assert status == 405 and body["error"]["message"].endswith("use GET.")
    status, _, body = call(proxy("GET", "/v1/nowhere"))
    assert status == 404 and body["error"]["type"] == "not_found_error"
    status, _, body = call(proxy("GET", "/v1/" + "x" * 5000))
    assert status == 404 and len(body["error"]["message"]) < 300  # the path is not echoed whole


@pytest.mark.parametrize("route", routes_of(Owner.WORKER), ids=lambda r: f"{r.method} {r.path}")
def test_ai_work_never_reaches_the_worker_through_the_gateway(route: Any) -> None:
    """API Gateway sends `WORKER` routes to the worker; one that reaches this function
    finds no worker client here, only an error saying the routing is wrong."""
    path = route.path.replace("{", "").replace("}", "")
    status, _, body = call(proxy(route.method, path, body="{}"))
    assert status == 500
    if route.path == "/v1/messages":  # Anthropic's envelope there: no `code`
        assert body["type"] == "error" and "misconfigured" in body["error"]["message"]
    else:
        assert body["error"]["code"] == "route_not_served_here"


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch, fresh_gateway: None) -> Iterator[Any]:
    with mock_aws():
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("SWITCHBOARD_TABLE", TABLE)
        monkeypatch.delenv("SWITCHBOARD_WORKER_URL", raising=False)
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(dynamodb, TABLE)
        yield dynamodb
    gateway._runtime = None


def a_run(dynamodb: Any, tenant: str) -> Run:
    now = time.time()
    run = Run(new_run_id(), tenant, "k", "chat.completion", "succeeded", {}, now, now)
    return RunStore(dynamodb, TABLE).create(run)[0]


def test_run_reads_carry_the_stage_prefix_and_stay_in_the_tenant(table: Any) -> None:
    keys = KeyStore(table, TABLE)
    mine, theirs = keys.create("acme").secret, keys.create("globex").secret
    run = a_run(table, "acme")
    auth = {"Authorization": f"Bearer {mine}"}
    status, _, body = call(proxy("GET", f"/v1/runs/{run.id}", headers=auth))
    assert status == 200 and body["id"] == run.id
    assert body["urls"]["self"] == f"/api/v1/runs/{run.id}"
    assert body["urls"]["events"] == f"/api/v1/runs/{run.id}/events"
    status, _, listed = call(proxy("GET", "/v1/runs", headers=auth))
    assert [r["urls"]["self"] for r in listed["data"]] == [f"/api/v1/runs/{run.id}"]
    # Called without a stage in the path (a custom domain at its root): no prefix.
    status, _, body = call(
        proxy("GET", f"/v1/runs/{run.id}", headers=auth, stage_path=f"/v1/runs/{run.id}")
    )
    assert body["urls"]["self"] == f"/v1/runs/{run.id}"
    # Another tenant's run does not exist for the caller; no key is a 401.
    status, _, body = call(proxy("GET", f"/v1/runs/{run.id}", headers={"x-api-key": theirs}))
    assert status == 404
    status, _, body = call(proxy("GET", f"/v1/runs/{run.id}"))
    assert status == 401 and body["error"]["code"] == "missing_api_key"


def test_a_route_is_found_by_its_api_gateway_resource(table: Any) -> None:
    """With the stack's resources (one per table path), the route is the resource: a path
    that carries a custom domain's base path still finds it."""
    keys = KeyStore(table, TABLE)
    secret = keys.create("acme").secret
    run = a_run(table, "acme")
    event = proxy(
        "GET",
        f"/v2-base/v1/runs/{run.id}",
        headers={"authorization": f"Bearer {secret}"},
        resource="/v1/runs/{run_id}",
    )
    event["pathParameters"] = {"run_id": run.id}
    status, _, body = call(event)
    assert status == 200 and body["id"] == run.id


def test_conversations_are_served_here(table: Any) -> None:
    secret = KeyStore(table, TABLE).create("acme").secret
    auth = {"authorization": f"Bearer {secret}"}
    status, _, created = call(
        proxy("POST", "/v1/conversations", headers=auth, body=json.dumps({"title": "Tides"}))
    )
    assert status == 200 and created["title"] == "Tides"
    status, _, listed = call(proxy("GET", "/v1/conversations", headers=auth))
    assert [c["id"] for c in listed["data"]] == [created["id"]]
    status, _, body = call(proxy("POST", "/v1/conversations", headers=auth, body="[1]"))
    assert status == 400 and body["error"]["code"] == "invalid_body"


def test_the_table_has_a_route_for_every_handler_path() -> None:
    paths = {r.path for r in ROUTES}
    assert {path for _, path in gateway.HANDLERS} <= paths
