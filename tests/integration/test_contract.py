"""The OpenAPI contract against the running local stack, through both front doors.

- Every route of the table answers a real call (with real ids) as the contract says: a
  documented status, a documented content type, a body that fits its schema.
- A fuzz run (schemathesis, seeded, bounded) sends what the contract allows and what it
  refuses to every operation on both doors, and counts server errors and answers that break
  the contract (undocumented status or content type, a body that does not fit, something the
  contract refuses that the code accepted). Both counts must be 0; the counts are printed.
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import hypothesis
import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from devstack.stack import LocalStack, StackConfig
from services.contract import openapi
from services.frontdoor.routes import ROUTES
from tests.pdf import make_pdf

CONTRACT = json.loads(openapi.OPENAPI_JSON.read_text())
SEED = 14_2026
EXAMPLES = 6  # per operation, door and mode (positive, negative)
BUDGET_SECONDS = 120.0  # for the whole fuzz run (about 75 s alone); past it, the rest is skipped
REQUEST_TIMEOUT = 15.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A stack of its own: the fuzz run creates tenants, runs and conversations."""
    config = StackConfig(
        log_dir=tmp_path_factory.mktemp("contract-logs"),
        # A run that waits (an agent asking a person) answers 202 quickly, not after 25 s.
        sync_deadline_seconds=2.0,
        max_request_bytes=256 * 1024,
    )
    with LocalStack(config) as running:
        yield running


def door_url(stack: LocalStack, door: str) -> str:
    return (stack.api_url if door == "api" else stack.stream_url).removesuffix("/v1")


def key_for(stack: LocalStack, path: str) -> dict[str, str]:
    route = next((r for r in ROUTES if r.match(path) is not None), None)
    if route is not None and route.public:
        return {}
    key = stack.admin_key if path.startswith("/v1/admin") else stack.api_key
    return {"authorization": f"Bearer {key}"}


# -- checking one answer against the contract ----------------------------------------------------


def problems(method: str, template: str, response: httpx.Response) -> list[str]:
    """What in `response` the contract for `method template` does not allow."""
    operation = CONTRACT["paths"][template][method.lower()]
    documented = operation["responses"].get(str(response.status_code))
    if documented is None:
        return [f"status {response.status_code} is not documented: {response.text[:300]}"]
    content = documented.get("content", {})
    if not content:
        return []
    media = response.headers.get("content-type", "").split(";")[0].strip()
    if media not in content:
        return [f"content type {media!r} is not one of {sorted(content)}"]
    if media != "application/json":
        return []
    schema = {**content[media]["schema"], "components": CONTRACT["components"]}
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path)) or 'body'}: {e.message[:200]}"
        for e in validator.iter_errors(response.json())
    ]


def test_the_contract_is_a_valid_openapi_3_1_document() -> None:
    from openapi_spec_validator import validate

    validate(CONTRACT)
    assert CONTRACT["openapi"] == "3.1.0"


@pytest.mark.parametrize("door", ["api", "stream"])
def test_both_doors_serve_the_contract_and_the_reference_page_without_a_key(
    stack: LocalStack, door: str
) -> None:
    base = door_url(stack, door)
    served = httpx.get(f"{base}/v1/openapi.json")
    assert served.status_code == 200 and served.json() == CONTRACT
    page = httpx.get(f"{base}/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "reference.js"):
        got = httpx.get(f"{base}/docs/{asset}")
        assert got.status_code == 200 and len(got.content) > 500, asset
    missing = httpx.get(f"{base}/docs/index.html")  # only the listed files are served
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"


# -- every route, called as a client would ------------------------------------------------------


@dataclass
class Calls:
    """Real resources to call the routes with, made once per door."""

    stack: LocalStack
    base: str
    seen: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def call(
        self, method: str, template: str, path: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        path = path or template
        headers = {**key_for(self.stack, path), **kwargs.pop("headers", {})}
        response = httpx.request(
            method, self.base + path, headers=headers, timeout=REQUEST_TIMEOUT, **kwargs
        )
        self.seen.setdefault((method, template), []).extend(
            f"{response.status_code}: {p}" for p in problems(method, template, response)
        )
        self.seen[(method, template)].append(f"answered {response.status_code}")
        return response


def exercise(calls: Calls) -> None:
    """Call every route of the table, with ids that exist, and some that do not."""
    c = calls.call
    chat = {"model": "local/simulator", "messages": [{"role": "user", "content": "Hi"}]}
    c("POST", "/v1/chat/completions", json=chat)
    c("POST", "/v1/chat/completions", json={**chat, "stream": True})
    c("POST", "/v1/chat/completions", json={**chat, "n": 2})
    c("POST", "/v1/chat/completions", json={**chat, "model": "no/such-model"})
    anthropic = {"model": "local/simulator", "max_tokens": 20, "messages": chat["messages"]}
    c("POST", "/v1/messages", json=anthropic)
    c("POST", "/v1/messages", json={**anthropic, "stream": True})
    c("POST", "/v1/embeddings", json={"input": ["tides", "wind"], "model": "local/embedding"})
    c("GET", "/v1/models")
    c("GET", "/v1/models", headers={"authorization": "Bearer sb-wrong"})

    c("GET", "/v1/tools")
    c("GET", "/v1/tools/{name}", "/v1/tools/generate_tags")
    c("GET", "/v1/tools/{name}", "/v1/tools/no_such_tool")
    tags = {"input": {"text": "Tides, turbines and the sea"}}
    c("POST", "/v1/tools/{name}", "/v1/tools/generate_tags", json=tags)
    c("POST", "/v1/tools/generate_tags", json=tags)
    c("POST", "/v1/tools/generate_tags", json={"input": {"max_tags": "x"}})
    c("GET", "/v1/agents")
    c("GET", "/v1/agents/{name}", "/v1/agents/document_analyst")
    c("GET", "/v1/agents/{name}", "/v1/agents/nobody")

    run = c("POST", "/v1/runs", json={"kind": "chat.completion", "input": chat}).json()
    c("POST", "/v1/runs", json={"kind": "pipeline", "input": {"steps": [chat]}, "stream": True})
    queued = c(
        "POST", "/v1/runs", json={"kind": "chat.completion", "input": chat, "background": True}
    ).json()
    c("GET", "/v1/runs", params={"limit": 2})
    c("GET", "/v1/runs/{run_id}", f"/v1/runs/{run['id']}")
    c("GET", "/v1/runs/{run_id}", "/v1/runs/run_nope")
    c("GET", "/v1/runs/{run_id}/events", f"/v1/runs/{run['id']}/events")
    c("POST", "/v1/runs/{run_id}/cancel", f"/v1/runs/{run['id']}/cancel")  # ended: 409
    c("POST", "/v1/runs/{run_id}/cancel", f"/v1/runs/{queued['id']}/cancel")
    c("POST", "/v1/runs/{run_id}/input", f"/v1/runs/{run['id']}/input", json={"input": "yes"})

    pdf = base64.b64encode(make_pdf(["Tides and turbines"])).decode()
    doc = c("POST", "/v1/documents", json={"filename": "a.pdf", "data": pdf}).json()
    c("POST", "/v1/documents", json={"filename": "a.bin", "data": "AAAA"})
    c("GET", "/v1/documents", params={"kind": "pdf"})
    started = c("POST", "/v1/documents/uploads", json={"filename": "b.txt"}).json()
    pending = started["document"]["id"]
    httpx.put(started["upload"]["url"], content=b"hello", headers=started["upload"]["headers"])
    c("POST", "/v1/documents/{document_id}/complete", f"/v1/documents/{pending}/complete")
    c("GET", "/v1/documents/{document_id}", f"/v1/documents/{doc['id']}")
    c("GET", "/v1/documents/{document_id}/content", f"/v1/documents/{doc['id']}/content")
    c("DELETE", "/v1/documents/{document_id}", f"/v1/documents/{doc['id']}")
    c("GET", "/v1/documents/{document_id}", f"/v1/documents/{doc['id']}")  # deleted: 404

    conv = c("POST", "/v1/conversations", json={"title": "t", "metadata": {"a": "b"}}).json()
    c("POST", "/v1/chat/completions", json={**chat, "metadata": {"conversation_id": conv["id"]}})
    one = f"/v1/conversations/{conv['id']}"
    c("GET", "/v1/conversations", params={"limit": 5})
    c("GET", "/v1/conversations/{conversation_id}", one)
    c("PATCH", "/v1/conversations/{conversation_id}", one, json={"title": "renamed"})
    c("PATCH", "/v1/conversations/{conversation_id}", one, json={"name": "x"})
    c("DELETE", "/v1/conversations/{conversation_id}", one)
    c("GET", "/v1/conversations/{conversation_id}", "/v1/conversations/bad-id")

    c("GET", "/v1/usage", params={"group_by": "day,model"})
    c("GET", "/v1/usage", params={"format": "csv"})
    c("GET", "/v1/usage", params={"start": "yesterday"})

    c("GET", "/v1/openapi.json")
    c("GET", "/docs")
    c("GET", "/docs/{asset}", "/docs/swagger-ui.css")
    c("GET", "/docs/{asset}", "/docs/nothing.js")


def exercise_admin(calls: Calls) -> None:
    c = calls.call
    tenant = c("POST", "/v1/admin/tenants", json={"name": "contract"}).json()
    t = f"/v1/admin/tenants/{tenant['id']}"
    c("GET", "/v1/admin/tenants", params={"limit": 3})
    c("GET", "/v1/admin/tenants/{tenant_id}", t)
    c("PATCH", "/v1/admin/tenants/{tenant_id}", t, json={"limits": {"rpm": 100}})
    key = c("POST", "/v1/admin/tenants/{tenant_id}/keys", f"{t}/keys", json={"name": "k"}).json()
    k = f"{t}/keys/{key['id']}"
    c("GET", "/v1/admin/tenants/{tenant_id}/keys", f"{t}/keys")
    c("GET", "/v1/admin/tenants/{tenant_id}/keys/{key_id}", k)
    rotated = c("POST", "/v1/admin/tenants/{tenant_id}/keys/{key_id}/rotate", f"{k}/rotate")
    c("POST", "/v1/admin/tenants/{tenant_id}/keys/{key_id}/revoke", f"{k}/revoke")  # 409
    fresh = f"{t}/keys/{rotated.json()['id']}"
    c("POST", "/v1/admin/tenants/{tenant_id}/keys/{key_id}/revoke", f"{fresh}/revoke")
    tenant_key = {"authorization": f"Bearer {calls.stack.api_key}"}
    c("GET", "/v1/admin/tenants", headers=tenant_key)  # a tenant's key: 403


@pytest.mark.parametrize("door", ["api", "stream"])
def test_every_route_answers_as_the_contract_says(stack: LocalStack, door: str) -> None:
    calls = Calls(stack, door_url(stack, door))
    exercise(calls)
    if door == "api":
        exercise_admin(calls)
    table = {(r.method, r.path) for r in ROUTES if door == "api" or not r.admin}
    assert table <= set(calls.seen), f"routes not called: {sorted(table - set(calls.seen))}"
    broken = {
        f"{method} {path}": [p for p in found if not p.startswith("answered")]
        for (method, path), found in calls.seen.items()
    }
    broken = {k: v for k, v in broken.items() if v}
    assert not broken, json.dumps(broken, indent=1)


def test_the_stream_door_sends_the_admin_api_to_the_api_url(stack: LocalStack) -> None:
    """The admin API is the gateway's only (the admin key's secret is the gateway's alone):
    the stream door answers its routes with a 404 that names the URL to use."""
    response = httpx.get(f"{stack.stream_url}/admin/tenants", headers=key_for(stack, "/v1"))
    assert response.status_code == 404
    assert "API" in response.json()["error"]["message"]


@pytest.mark.parametrize("door", ["api", "stream"])
def test_messages_errors_have_anthropics_envelope(stack: LocalStack, door: str) -> None:
    calls = Calls(stack, door_url(stack, door))
    body = {"model": "local/simulator", "max_tokens": 5, "top_k": 5, "messages": []}
    calls.call("POST", "/v1/messages", json=body)
    calls.call("POST", "/v1/messages", json=body, headers={"authorization": "Bearer sb-wrong"})
    assert not [p for p in calls.seen[("POST", "/v1/messages")] if not p.startswith("answered")]


# -- the fuzz run -------------------------------------------------------------------------------

SCHEMA = schemathesis.openapi.from_dict(CONTRACT)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@dataclass
class Tally:
    started: float = field(default_factory=time.monotonic)
    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)


TALLY = Tally()


def fuzz(door: str, operation: Any, base_url: str, headers: dict[str, str], mode: Any) -> list[str]:
    """Send EXAMPLES cases of `mode` to `operation`; every failure, described."""
    failures: list[str] = []
    try:
        strategy = operation.as_strategy(generation_mode=mode)
    except Exception as exc:  # an operation with nothing to negate, e.g. no parameters
        return [] if mode.is_negative else [f"cannot generate: {exc}"]

    @hypothesis.seed(SEED)
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        derandomize=False,
    )
    @hypothesis.given(case=strategy)
    def run(case: Any) -> None:
        if time.monotonic() - TALLY.started > BUDGET_SECONDS:
            return
        try:
            response = case.call(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT)
        except Exception as exc:
            failures.append(f"no answer ({exc.__class__.__name__}): {case.as_curl_command()}")
            return
        TALLY.requests[operation.label] += 1
        TALLY.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            failures.extend(describe(case, response, f) for f in group.exceptions)

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        if not mode.is_negative:  # nothing to negate: no parameters and no body
            raise
    return failures


def describe(case: Any, response: Any, failure: Failure) -> str:
    body = response.content[:300].decode(errors="replace")
    return (
        f"{failure.title} [{failure.__class__.__name__}]: {case.method} {case.formatted_path} "
        f"query={case.query} body={str(case.body)[:300]} -> {response.status_code} {body}"
    )


def fuzz_params() -> Iterator[Any]:
    for door in ("api", "stream"):
        for operation in OPERATIONS:
            path = operation.path
            if door == "stream" and path.startswith("/v1/admin"):
                continue  # the admin API is the gateway's only (see the test above)
            yield pytest.param(door, operation, id=f"{door} {operation.label}")


@pytest.fixture(scope="module")
def tally(stack: LocalStack) -> Iterator[Tally]:
    TALLY.started = time.monotonic()
    yield TALLY
    elapsed = time.monotonic() - TALLY.started
    print(
        f"\nfuzz run (seed {SEED}, {EXAMPLES} examples per operation, door and mode): "
        f"{sum(TALLY.requests.values())} requests to {len(TALLY.requests)} operations in "
        f"{elapsed:.0f} s; {len(TALLY.server_errors)} server errors, "
        f"{len(TALLY.broken)} answers that break the contract; statuses "
        f"{dict(sorted(TALLY.statuses.items()))}"
    )


@pytest.mark.parametrize(("door", "operation"), list(fuzz_params()))
def test_fuzz(stack: LocalStack, tally: Tally, door: str, operation: Any) -> None:
    if time.monotonic() - tally.started > BUDGET_SECONDS:
        pytest.skip(f"the fuzz run's budget of {BUDGET_SECONDS:g} s is spent (a loaded host?)")
    base = door_url(stack, door)
    headers = key_for(stack, operation.path)
    failures = [
        *fuzz(door, operation, base, headers, schemathesis.GenerationMode.POSITIVE),
        *fuzz(door, operation, base, headers, schemathesis.GenerationMode.NEGATIVE),
    ]
    server = [f for f in failures if "Server error" in f or "no answer" in f]
    tally.server_errors.extend(f"{door}: {f}" for f in server)
    tally.broken.extend(f"{door}: {f}" for f in failures if f not in server)
    assert not failures, "\n".join(failures)


# -- what the fuzz run once found: each a regression test now ---------------------------------


def test_a_body_that_is_not_utf8_is_a_400_on_the_api_door(stack: LocalStack) -> None:
    response = httpx.post(
        f"{stack.api_url}/chat/completions", content=b"\xe3", headers=key_for(stack, "/v1")
    )
    assert response.status_code == 400, response.text


def test_an_odd_path_is_a_json_404_on_the_api_door(stack: LocalStack) -> None:
    response = httpx.get(f"{stack.api_url}/runs/%0A", headers=key_for(stack, "/v1/runs"))
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


def test_a_control_character_in_a_path_is_not_a_500_on_the_stream_door(stack: LocalStack) -> None:
    response = httpx.get(f"{stack.stream_url}/tools/%14", headers=key_for(stack, "/v1/tools"))
    assert response.status_code == 404, response.text
