"""Hostile input on both front doors (issue 15): no 500, the documented error envelope, and
nothing stored for a refused request.

Two parts:
- the regressions issue 15 names (items 2, 3 and 4), each through both doors;
- a sweep generated from the route table (services/frontdoor/routes.py): for every public
  route, malformed and deeply nested JSON, wrong types, NUL, lone surrogates and invalid
  UTF-8, Unicode digits, forged cursors, over-long names, headers and URLs, and the methods
  a path does not allow. A new route is covered with no new test. Each run sends a seeded
  sample of the generated cases (`SWITCHBOARD_HOSTILE_SEED`, `SWITCHBOARD_HOSTILE_CASES`
  per route and door), small enough for CI.

Where a refused request could have written (a route's own POST, PATCH or DELETE), the
tenant's items and objects are compared before and after it: a refused request stores
nothing. The sweep uses a tenant of its own, so nothing else writes there meanwhile.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from devstack.stack import LocalStack
from services.frontdoor.routes import ROUTES, Body, RouteSpec, match, paths
from services.tenancy.keys import KeyStore
from services.tenancy.tenants import TenantStore
from tests.integration.doors import dechunk

DOORS = ("api", "stream")
SEED = int(os.environ.get("SWITCHBOARD_HOSTILE_SEED", "15"))
CASES_PER_ROUTE = int(os.environ.get("SWITCHBOARD_HOSTILE_CASES", "4"))
TENANT = "hostile-" + secrets.token_hex(3)
ANTHROPIC_ROUTE = "/v1/messages"
# What an error body may hold at most, whatever the request echoed (services/errors.py).
MAX_ERROR_BODY = 4096
CHAT = {"model": "local/simulator", "messages": [{"role": "user", "content": "hi"}]}
# The forged cursor, for the caller's own runs: it used to reach DynamoDB.
FORGED_RUN_CURSOR = base64.b64encode(
    json.dumps({"gsi1pk": {"S": f"TENANT#{TENANT}#RUNS"}}).encode()
).decode()
WRITES = ("POST", "PATCH", "PUT", "DELETE")

# -- the platform under test -------------------------------------------------------------


@dataclass
class Hostile:
    """The stack, a tenant of the sweep's own, its keys, and ids its routes can name."""

    stack: LocalStack
    key: str
    victim_key_id: str  # revoked or rotated by the admin cases, never the one in use
    conversation_id: str
    tool: str
    agent: str
    # A request was accepted since the last snapshot: it may still be writing (usage records).
    dirty: bool = True
    last: frozenset[str] | None = None

    def base(self, door: str) -> str:
        return {"api": self.stack.api_url, "stream": self.stack.stream_url}[door]

    def auth(self, path: str) -> dict[str, str]:
        admin = path.startswith("/v1/admin/")
        return {"authorization": f"Bearer {self.stack.admin_key if admin else self.key}"}

    def param(self, template: str, name: str) -> str:
        if name == "name":
            return self.tool if template.startswith("/v1/tools/") else self.agent
        return {
            "conversation_id": self.conversation_id,
            "run_id": "run_" + "0" * 24,
            "document_id": "doc_" + "0" * 24,
            "tenant_id": TENANT,
            "key_id": self.victim_key_id,
        }.get(name, "x")

    def snapshot(self) -> frozenset[str]:
        """Every item of the sweep's tenant (its partition and its lists), every tenant, and
        the tenant's S3 objects, as digests of their full content."""
        dynamodb = self.stack.client("dynamodb")
        table = self.stack.config.table
        items: list[dict[str, Any]] = []
        queries = [{"KeyConditionExpression": "pk = :p", "value": f"TENANT#{TENANT}"}]
        for gsi1pk in ("TENANTS", *(f"TENANT#{TENANT}#{n}" for n in ("CONVS", "RUNS", "DOCS"))):
            queries.append({"IndexName": "gsi1", "KeyConditionExpression": "gsi1pk = :p",
                            "value": gsi1pk})  # fmt: skip
        for query in queries:
            value = query.pop("value")
            params: dict[str, Any] = {
                "TableName": table,
                "ExpressionAttributeValues": {":p": {"S": value}},
                **query,
            }
            while True:
                page = dynamodb.query(**params)
                items += page["Items"]
                if "LastEvaluatedKey" not in page:
                    break
                params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        listed = self.stack.client("s3").list_objects_v2(
            Bucket=self.stack.config.bucket, Prefix=f"tenants/{TENANT}/"
        )
        digests = {
            hashlib.sha256(json.dumps(item, sort_keys=True, default=str).encode()).hexdigest()
            for item in items
        }
        digests |= {f"s3:{o['Key']}:{o['ETag']}" for o in listed.get("Contents", [])}
        self.last = frozenset(digests)
        return self.last

    def settled(self) -> frozenset[str]:
        """The snapshot once asynchronous writes (usage records) have landed (the last one
        taken, when nothing was accepted since: nothing else writes to this tenant)."""
        if not self.dirty and self.last is not None:
            return self.last
        last = self.snapshot()
        for _ in range(20):
            time.sleep(0.15)
            now = self.snapshot()
            if now == last:
                self.dirty = False
                return now
            last = now
        return last


@pytest.fixture(scope="module")
def hostile(stack: LocalStack) -> Hostile:
    dynamodb = stack.client("dynamodb")
    TenantStore(dynamodb, stack.config.table).create(TENANT, "Hostile input")
    keys = KeyStore(dynamodb, stack.config.table)
    key = keys.create(TENANT, "sweep").secret
    victim = keys.create(TENANT, "victim").record.key_id
    auth = {"authorization": f"Bearer {key}"}
    created = httpx.post(f"{stack.api_url}/conversations", json={"title": "t"}, headers=auth)
    assert created.status_code == 200, created.text
    tools = httpx.get(f"{stack.api_url}/tools", headers=auth).json()["data"]
    agents = httpx.get(f"{stack.api_url}/agents", headers=auth).json()["data"]
    return Hostile(stack, key, victim, created.json()["id"], tools[0]["name"], agents[0]["name"])


# -- what every answer must be -----------------------------------------------------------


def assert_envelope(path: str, response: httpx.Response) -> dict[str, Any]:
    """The documented error body: OpenAI's envelope, Anthropic's on /v1/messages."""
    assert response.headers.get("content-type", "").startswith("application/json"), (
        response.status_code,
        response.text[:300],
    )
    body = response.json()
    if path == ANTHROPIC_ROUTE:
        assert body.get("type") == "error", body
        assert set(body["error"]) >= {"type", "message"}, body
        return dict(body["error"])
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    return dict(error)


def assert_answer(path: str, response: httpx.Response, *, refused: bool) -> None:
    status = response.status_code
    assert status < 500, (status, response.text[:500])
    if refused:
        assert 400 <= status < 500, (status, response.text[:300])
    if status >= 400:
        assert len(response.content) <= MAX_ERROR_BODY, len(response.content)
        assert_envelope(path, response)


def raw_request(base: str, method: str, target: str, head: bytes, body: bytes = b"") -> bytes:
    """One request written by hand (what httpx refuses to send), and the answer's bytes."""
    host, _, rest = base.partition("//")[2].partition(":")
    port, _, prefix = rest.partition("/")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            f"{method} /{prefix}{target} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n"
            f"content-length: {len(body)}\r\n".encode()
            + head
            + b"\r\n"
            + body
        )
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def parse_raw(answer: bytes) -> httpx.Response:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = [tuple(x.strip() for x in line.split(b":", 1)) for line in lines[1:] if b":" in line]
    if any(k.lower() == b"transfer-encoding" for k, _ in headers):
        body = dechunk(body)
    return httpx.Response(status, headers=headers, content=body)


# -- the regressions issue 15 names ------------------------------------------------------


def send(
    hostile: Hostile,
    door: str,
    method: str,
    path: str,
    *,
    content: bytes | None = None,
    params: dict[str, str] | None = None,
    headers: Any = None,
) -> httpx.Response:
    assert path.startswith("/v1/")
    all_headers = [*hostile.auth(path).items(), ("content-type", "application/json")]
    all_headers += list(headers.items() if isinstance(headers, dict) else headers or [])
    response = httpx.request(
        method,
        hostile.base(door) + path[3:],
        content=content,
        params=params,
        headers=all_headers,
        timeout=60,
    )
    hostile.dirty = hostile.dirty or response.status_code < 400
    return response


def refused_storing_nothing(
    hostile: Hostile, door: str, method: str, path: str, content: bytes, status: int = 400
) -> dict[str, Any]:
    before = hostile.settled()
    response = send(hostile, door, method, path, content=content)
    assert response.status_code == status, response.text[:300]
    error = assert_envelope(path, response)
    assert hostile.snapshot() == before, "a refused request stored something"
    return error


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("depth", [5_000, 30_000])
def test_json_nested_thousands_deep_is_a_400(hostile: Hostile, door: str, depth: int) -> None:
    body = b'{"title": ' + b"[" * depth + b"]" * depth + b"}"
    error = refused_storing_nothing(hostile, door, "POST", "/v1/conversations", body)
    assert error["code"] == "json_too_deep"
    chat = b'{"model": "local/simulator", "messages": ' + b"[" * depth + b"]" * depth + b"}"
    response = send(hostile, door, "POST", "/v1/chat/completions", content=chat)
    assert response.status_code == 400 and assert_envelope("/", response)["code"] == "json_too_deep"


LONE_SURROGATES = [
    ("POST", "/v1/conversations", b'{"title": "\\ud800"}'),
    ("PATCH", "/v1/conversations/{conversation_id}", b'{"title": "a\\udfff"}'),
    ("POST", "/v1/conversations", b'{"metadata": {"k": "\\udc00"}}'),
    ("POST", "/v1/admin/tenants", b'{"id": "surrogate-1", "name": "\\ud800"}'),
    ("POST", "/v1/admin/tenants/{tenant_id}/keys", b'{"name": "\\ud800"}'),
]


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize(("method", "template", "body"), LONE_SURROGATES)
def test_a_lone_surrogate_never_reaches_dynamodb(
    hostile: Hostile, door: str, method: str, template: str, body: bytes
) -> None:
    if template.startswith("/v1/admin/") and door == "stream":
        pytest.skip("the stream door does not serve the admin API")
    path = template.format(conversation_id=hostile.conversation_id, tenant_id=TENANT)
    error = refused_storing_nothing(hostile, door, method, path, body)
    assert error["code"] == "invalid_json" and "surrogate" in error["message"]


@pytest.mark.parametrize("door", DOORS)
def test_a_body_that_is_not_utf8_is_a_400(hostile: Hostile, door: str) -> None:
    for body in (b'{"title": "\xff\xfe"}', b'{"title": "\xed\xa0\x80"}'):
        error = refused_storing_nothing(hostile, door, "POST", "/v1/conversations", body)
        assert error["code"] == "invalid_json" and "UTF-8" in error["message"]
    response = send(hostile, door, "POST", "/v1/chat/completions", content=b'{"model": "\xff"}')
    assert response.status_code == 400, response.text


LISTS = ["/v1/conversations", "/v1/runs", "/v1/documents", "/v1/admin/tenants"]
UNICODE_DIGITS = ["²", "\u0661\u0660", "\U0001d7d9", "1\u00b2"]


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("path", LISTS)
def test_unicode_digits_in_limit_are_a_400(hostile: Hostile, door: str, path: str) -> None:
    if path.startswith("/v1/admin/") and door == "stream":
        pytest.skip("the stream door does not serve the admin API")
    for digits in UNICODE_DIGITS:
        response = send(hostile, door, "GET", path, params={"limit": digits})
        assert response.status_code == 400, response.text
        assert assert_envelope(path, response)["param"] == "limit"


@pytest.mark.parametrize("door", DOORS)
def test_unicode_digits_in_after_and_last_event_id_are_a_400(hostile: Hostile, door: str) -> None:
    events = "/v1/runs/run_" + "0" * 24 + "/events"
    for digits in UNICODE_DIGITS:
        for params, headers in (({"after": digits}, {}), ({}, {"last-event-id": digits.encode()})):
            response = send(hostile, door, "GET", events, params=params, headers=headers)
            assert response.status_code == 400, response.text
            assert assert_envelope(events, response)["code"] == "invalid_last_event_id"
        response = send(hostile, door, "GET", "/v1/runs", params={"after": digits})
        assert response.status_code == 400 and assert_envelope("/", response)["param"] == "after"


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("path", ["/v1/runs", "/v1/conversations", "/v1/documents"])
def test_a_forged_cursor_never_reaches_dynamodb(hostile: Hostile, door: str, path: str) -> None:
    forged = [
        FORGED_RUN_CURSOR,
        FORGED_RUN_CURSOR.rstrip("=").replace("+", "-").replace("/", "_"),
        base64.urlsafe_b64encode(f"0000000000000#run_{'0' * 24}".encode()).decode(),
        "A" * 5_000,
    ]
    for cursor in forged:
        response = send(hostile, door, "GET", path, params={"after": cursor})
        assert response.status_code == 400, response.text
        assert assert_envelope(path, response)["code"] == "invalid_cursor"


@pytest.mark.parametrize("door", DOORS)
def test_a_usage_report_past_the_calendar_is_a_400(hostile: Hostile, door: str) -> None:
    for start, end in (("9999-12-31", "9999-12-31"), ("9999-12-30", "9999-12-31")):
        response = send(hostile, door, "GET", "/v1/usage", params={"start": start, "end": end})
        assert response.status_code == 400, response.text
        assert assert_envelope("/v1/usage", response)["code"] == "invalid_value"


@pytest.mark.parametrize("door", DOORS)
def test_an_upload_with_a_huge_content_type_is_a_400(hostile: Hostile, door: str) -> None:
    # 60 KB, as large as the test stack's 64 KB body limit allows (500 KB is refused at it).
    body = json.dumps({"filename": "a.txt", "content_type": "text/" + "x" * 60_000}).encode()
    error = refused_storing_nothing(hostile, door, "POST", "/v1/documents/uploads", body)
    assert error["param"] == "content_type"
    upload = {"filename": "a.txt", "content_type": "x" * 60_000, "data": "aGk="}
    content = json.dumps(upload).encode()
    error = refused_storing_nothing(hostile, door, "POST", "/v1/documents", content)
    assert error["param"] == "content_type"


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize(
    "path",
    ["/v1/runs/run_%00abc", "/v1/runs/run_%00/events", "/v1/documents/doc_%00", "/v1/tools/a%00b",
     "/v1/agents/a%00b", "/v1/conversations/conv_%00"],
)  # fmt: skip
def test_a_nul_in_a_path_id_is_a_404(hostile: Hostile, door: str, path: str) -> None:
    response = send(hostile, door, "GET", path)
    assert response.status_code == 404, response.text
    assert_envelope(path, response)


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize(
    ("header", "value"),
    [("last-event-id", "\u00e9".encode("latin-1")), ("last-event-id", "²".encode()),
     ("idempotency-key", "\u00e9".encode("latin-1")), ("idempotency-key", "€".encode())],
)  # fmt: skip
def test_a_non_ascii_header_is_a_400(
    hostile: Hostile, door: str, header: str, value: bytes
) -> None:
    if header == "last-event-id":
        path, method, body = "/v1/runs/run_" + "0" * 24 + "/events", "GET", None
    else:
        path, method, body = "/v1/chat/completions", "POST", json.dumps(CHAT).encode()
    response = send(hostile, door, method, path, content=body, headers=[(header, value)])
    assert response.status_code == 400, response.text
    assert assert_envelope(path, response)["param"] in ("Last-Event-ID", "Idempotency-Key")


@pytest.mark.parametrize("door", DOORS)
def test_a_padded_last_event_id_is_no_outage(hostile: Hostile, door: str) -> None:
    """`Last-Event-ID: " 5 "` is the client's event 5, never a 503 "worker unreachable"."""
    target = "/runs/run_" + "0" * 24 + "/events"
    auth = hostile.auth("/v1/runs").popitem()
    for padded in (b" 5 ", b"\t5\t"):
        head = f"{auth[0]}: {auth[1]}\r\n".encode() + b"last-event-id:" + padded + b"\r\n"
        response = parse_raw(raw_request(hostile.base(door), "GET", target, head))
        assert response.status_code == 404, response.text  # no such run; the number was read
        assert assert_envelope("/v1/runs", response)["code"] == "run_not_found"


@pytest.mark.parametrize("door", DOORS)
def test_the_simulator_answers_a_malformed_json_schema(hostile: Hostile, door: str) -> None:
    for schema in ('{"type": "object", "properties": [1, 2]}', '{"type": "array", "minItems": 1e12}',
                   '{"$ref": "#/$defs/nowhere"}', "[" * 3_000):  # fmt: skip
        system = {"role": "system", "content": "Reply as JSON. JSON Schema: " + schema}
        body = {"model": "local/simulator", "messages": [system, *CHAT["messages"]]}
        response = send(
            hostile, door, "POST", "/v1/chat/completions", content=json.dumps(body).encode()
        )
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize("door", DOORS)
def test_a_huge_model_name_is_not_echoed(hostile: Hostile, door: str) -> None:
    model = "m" * 60_000  # a 2 MB one is over the test stack's body limit
    body = json.dumps({**CHAT, "model": model}).encode()
    response = send(hostile, door, "POST", "/v1/chat/completions", content=body)
    assert response.status_code == 404, response.text[:300]
    assert len(response.content) < 2_500
    assert assert_envelope("/", response)["code"] == "model_not_found"


@pytest.mark.parametrize("door", DOORS)
def test_headers_are_bounded_as_api_gateway_bounds_them(hostile: Hostile, door: str) -> None:
    big = send(hostile, door, "GET", "/v1/models", headers={"x-big": "a" * 2_000_000})
    many = send(
        hostile, door, "GET", "/v1/models", headers=[(f"x-h{i}", "v") for i in range(10_000)]
    )
    for response in (big, many):
        assert response.status_code == 431, response.text[:300]
        assert assert_envelope("/v1/models", response)["code"] == "request_headers_too_large"
    long_url = send(hostile, door, "GET", "/v1/documents/doc_" + "0" * 11_000)
    assert long_url.status_code == 414
    assert assert_envelope("/v1/documents", long_url)["code"] == "request_uri_too_long"
    fine = send(
        hostile, door, "GET", "/v1/models", headers=[(f"x-h{i}", "v" * 90) for i in range(90)]
    )
    assert fine.status_code == 200, fine.text[:300]


# -- the sweep, generated from the route table --------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    template: str
    route: RouteSpec | None  # the route whose handler runs; None: the method is refused
    params: tuple[tuple[str, str], ...] = ()  # path parameters, already percent-encoded
    query: str = ""
    headers: tuple[tuple[str, bytes], ...] = ()
    body: bytes | None = None
    raw_head: bytes | None = None  # written by hand: what httpx will not send
    refused: bool = True  # must be answered 4xx


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


FIELDS = ("title", "name", "model", "id", "kind", "input", "filename", "content_type", "data",
          "messages", "metadata", "limits", "folder", "system_prompt", "approve", "stream")  # fmt: skip
WRONG = (1, -1.5, True, None, [], {}, [[[]]], "", {"$gt": ""})
LONG = "L" * 60_000


def body_cases(route: RouteSpec, rng: random.Random) -> Iterator[Case]:
    def case(name: str, body: bytes, *, refused: bool = True) -> Case:
        return Case(name, route.method, route.path, route, body=body, refused=refused)

    yield case("malformed-json", b'{"a": ')
    yield case("trailing-garbage", b'{"a": 1} x')
    yield case("deep-json", b'{"a": ' + deep(5_000) + b"}")
    yield case("deep-json-65", b'{"a": ' + deep(64) + b"}")
    yield case("invalid-utf8", b'{"title": "\xff\xfe"}')
    yield case("encoded-surrogate", b'{"name": "\xed\xa0\x80"}')
    for name in rng.sample(FIELDS, 2):
        yield case(f"surrogate-{name}", b'{"%s": "x\\ud800"}' % name.encode())
    for body in (b"[]", b'"x"', b"1", b"null", b"true"):
        yield case(f"not-an-object-{body.decode()}", body)
    wrong = {name: rng.choice(WRONG) for name in rng.sample(FIELDS, 5)}
    yield case("wrong-types", json.dumps(wrong).encode(), refused=False)
    nul = {name: "a\u0000b" for name in rng.sample(FIELDS, 3)}
    yield case("nul-strings", json.dumps(nul).encode(), refused=False)
    long = {rng.choice(FIELDS): LONG}
    # Whatever the answer, an error echoes none of it (assert_answer bounds every error body).
    yield case("over-long-value", json.dumps(long).encode(), refused=False)
    yield case("over-long-key", json.dumps({LONG: 1}).encode(), refused=False)
    yield case("unicode-digits", json.dumps({"limit": "²", "max_tokens": "\u0661"}).encode(),
               refused=False)  # fmt: skip


def path_cases(route: RouteSpec) -> Iterator[Case]:
    body = b"{}" if route.body is not Body.NONE else None
    for name in route.params:
        for label, value, refused in (
            ("nul", "a%00b", True),
            ("encoded-surrogate", "%ED%A0%80", True),
            ("invalid-utf8", "%FF%FE", True),
            ("unicode-digit", quote("²"), True),
            ("dot-dot", "..", False),
            ("long-id", "i" * 5_000, True),
            ("url-over-limit", "i" * 11_000, True),
        ):
            yield Case(f"path-{name}-{label}", route.method, route.path, route,
                       params=((name, value),), body=body, refused=refused)  # fmt: skip


def query_cases(route: RouteSpec, rng: random.Random) -> Iterator[Case]:
    body = b"{}" if route.body is not Body.NONE else None
    values = [
        ("limit-unicode-digit", "limit=" + quote("²")),
        ("limit-arabic-digits", "limit=" + quote("\u0661\u0660")),
        ("limit-huge", "limit=" + "9" * 400),
        ("after-forged-run-cursor", "after=" + quote(FORGED_RUN_CURSOR)),
        ("after-unicode-digit", "after=" + quote("²")),
        ("after-long", "after=" + "A" * 6_000),
        ("usage-end-of-time", "start=9999-12-31&end=9999-12-31"),
        ("nul", "kind=%00&group_by=%00"),
        ("invalid-utf8", "%FF=%FE&format=%ED%A0%80"),
    ]
    for label, query in rng.sample(values, 4):
        yield Case(f"query-{label}", route.method, route.path, route, query=query, body=body,
                   refused=False)  # fmt: skip


def header_cases(route: RouteSpec) -> Iterator[Case]:
    body = b"{}" if route.body is not Body.NONE else None

    def case(
        name: str, headers: Any = (), *, refused: bool = False, raw: bytes | None = None
    ) -> Case:
        return Case(name, route.method, route.path, route, headers=tuple(headers), body=body,
                    raw_head=raw, refused=refused)  # fmt: skip

    yield case("last-event-id-unicode-digit", [("last-event-id", "²".encode())])
    yield case("last-event-id-latin1", [("last-event-id", b"\xe9")])
    yield case("idempotency-key-latin1", [("idempotency-key", b"\xe9\xe9")])
    yield case("header-over-limit", [("x-big", b"a" * 20_000)], refused=True)
    yield case("too-many-headers", [(f"x-h{i}", b"v") for i in range(150)], refused=True)
    yield case("padded-last-event-id", raw=b"last-event-id:  5 \r\n")
    yield case("vertical-tab-in-header", raw=b"last-event-id: 5\x0b\r\n", refused=True)


def method_cases() -> Iterator[Case]:
    for path in paths():
        allowed = match("GET", concrete_example(path)).allowed
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "FOO"):
            if method not in allowed:
                yield Case(f"method-{method}", method, path, None, body=b"{}")


def concrete_example(template: str) -> str:
    return template.replace("{", "x").replace("}", "")


def generated() -> list[Any]:
    """The sample of cases this run sends, as pytest params (door, case)."""
    out: list[Any] = []
    methods = list(method_cases())
    for door in DOORS:
        for route in ROUTES:
            rng = random.Random(f"{SEED}:{door}:{route.method} {route.path}")
            pool = [*path_cases(route), *header_cases(route)]
            pool += list(query_cases(route, rng))
            if route.body is not Body.NONE:
                pool += list(body_cases(route, rng))
            for case in rng.sample(pool, min(CASES_PER_ROUTE, len(pool))):
                out.append(param(door, case))
        rng = random.Random(f"{SEED}:{door}:methods")
        for case in rng.sample(methods, min(len(methods), len(paths()) // 2)):
            out.append(param(door, case))
    return out


def param(door: str, case: Case) -> Any:
    return pytest.param(door, case, id=f"{door}-{case.method}-{case.template}-{case.name}")


@pytest.mark.parametrize(("door", "case"), generated())
def test_hostile_input_sweep(hostile: Hostile, door: str, case: Case) -> None:
    template = case.template
    values = {name: hostile.param(template, name) for name in params_of(template)}
    values.update(dict(case.params))
    path = template
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    writes = case.route is not None and case.method in WRITES
    before = hostile.settled() if writes else None
    target = path[3:] + (f"?{case.query}" if case.query else "")
    if case.raw_head is not None:
        auth = "".join(f"{k}: {v}\r\n" for k, v in hostile.auth(template).items())
        head = auth.encode() + b"content-type: application/json\r\n" + case.raw_head
        answer = raw_request(hostile.base(door), case.method, target, head, case.body or b"")
        response = parse_raw(answer)
    else:
        headers = [*hostile.auth(template).items(), ("content-type", "application/json")]
        response = httpx.request(
            case.method,
            hostile.base(door) + target,
            headers=[*headers, *case.headers],
            content=case.body,
            timeout=60,
        )
    hostile.dirty = hostile.dirty or response.status_code < 400
    assert_answer(template, response, refused=case.refused)
    if before is not None and response.status_code >= 400:
        assert hostile.snapshot() == before, "a refused request stored something"


def params_of(template: str) -> list[str]:
    return [part[1:-1] for part in template.split("/") if part.startswith("{")]


def test_the_sweep_covers_every_route() -> None:
    """Every route of the table is in the sweep, on both doors (a new route needs no test)."""
    covered = {(p.values[0], p.values[1].template) for p in generated()}
    for door in DOORS:
        assert {path for d, path in covered if d == door} == set(paths())
    assert len(generated()) <= 2 * (len(ROUTES) * CASES_PER_ROUTE + len(paths()) * 2)
