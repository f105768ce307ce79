"""Tenants, the key lifecycle (list, revoke, rotate), the admin API's checks and the admin
CLI, on moto's DynamoDB."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devstack.tables import create_table
from services.admin import main as admin
from services.errors import (
    APIError,
    AuthenticationFailed,
    InvalidRequest,
    NotFound,
    PermissionDenied,
)
from services.tenancy.admin_api import AdminAPI, AdminCredential
from services.tenancy.auth import Authenticator, Principal
from services.tenancy.keys import KeyRevoked, KeyStore, hash_key
from services.tenancy.tenants import Limits, TenantExists, TenantStore
from services.usage.prices import PriceTable
from services.usage.store import UsageRecord, UsageStore

TABLE = "switchboard-test"
ADMIN_KEY = "sb-admin-0123456789abcdefghijklmnop"


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, TABLE)
        yield client


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


def api(dynamodb: Any, admin_key: str | None = ADMIN_KEY) -> AdminAPI:
    keys = KeyStore(dynamodb, TABLE)
    return AdminAPI(
        TenantStore(dynamodb, TABLE),
        keys,
        AdminCredential(admin_key, None, lambda: None),
        Authenticator(keys, cache_seconds=0),
    )


# Tenants


def test_tenant_create_get_and_limits(dynamodb: Any) -> None:
    store = TenantStore(dynamodb, TABLE)
    created = store.create("acme", "Acme Corp", Limits(rpm=60))
    assert store.get("acme") == created
    assert created.limits == Limits(rpm=60)
    assert store.get("nobody") is None
    with pytest.raises(TenantExists):
        store.create("acme")

    updated = store.set_limits("acme", monthly_budget_usd=Decimal("12.5"), tpm=1000)
    assert updated.limits == Limits(Decimal("12.5"), 60, 1000)
    cleared = store.set_limits("acme", rpm=None)
    assert cleared.limits == Limits(Decimal("12.5"), None, 1000)
    assert store.limits("acme") == cleared.limits
    assert store.limits("nobody") is None
    with pytest.raises(NotFound):
        store.set_limits("nobody", rpm=5)
    assert cleared.public()["limits"] == {"monthly_budget_usd": 12.5, "rpm": None, "tpm": 1000}


def test_tenants_page_in_id_order(dynamodb: Any) -> None:
    store = TenantStore(dynamodb, TABLE)
    for tenant in ("c", "a", "b"):
        store.create(tenant)
    first, more = store.page(limit=2)
    assert [t.tenant_id for t in first] == ["a", "b"] and more
    rest, _ = store.page(limit=2, after="b")
    assert [t.tenant_id for t in rest] == ["c"]


@pytest.mark.parametrize("tenant_id", ["", "a#b", "-x", "x" * 65, "a b"])
def test_bad_tenant_ids_are_refused(dynamodb: Any, tenant_id: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        TenantStore(dynamodb, TABLE).create(tenant_id)
    assert info.value.param == "id"


# Keys


def test_list_never_shows_a_hash_or_secret(dynamodb: Any) -> None:
    keys = KeyStore(dynamodb, TABLE)
    first = keys.create("acme", "ci")
    second = keys.create("acme", "web")
    keys.create("other", "x")
    listed = keys.for_tenant("acme")
    assert {k.key_id for k in listed} == {first.record.key_id, second.record.key_id}
    dump = json.dumps([k.public() for k in listed])
    assert hash_key(first.secret) not in dump and first.secret not in dump
    assert first.record.prefix in dump


def test_revoke_stops_the_key_and_is_idempotent(dynamodb: Any) -> None:
    keys = KeyStore(dynamodb, TABLE)
    minted = keys.create("acme")
    revoked = keys.revoke("acme", minted.record.key_id)
    assert revoked.status == "revoked" and revoked.revoked_at is not None
    assert keys.lookup(minted.secret).status == "revoked"  # type: ignore[union-attr]
    assert keys.revoke("acme", minted.record.key_id) == revoked
    with pytest.raises(AuthenticationFailed) as info:
        Authenticator(keys).authenticate(bearer(minted.secret))
    assert info.value.code == "revoked_api_key"
    with pytest.raises(NotFound):
        keys.revoke("other-tenant", minted.record.key_id)  # a key id alone reaches nothing


def test_rotate_mints_a_successor_and_revokes_the_old_key(dynamodb: Any) -> None:
    keys = KeyStore(dynamodb, TABLE)
    old = keys.create("acme", "ci")
    new = keys.rotate("acme", old.record.key_id)
    assert new.secret != old.secret and new.record.name == "ci"
    auth = Authenticator(keys, cache_seconds=0)
    assert auth.authenticate(bearer(new.secret)) == Principal("acme", new.record.key_id)
    with pytest.raises(AuthenticationFailed):
        auth.authenticate(bearer(old.secret))
    with pytest.raises(KeyRevoked):
        keys.rotate("acme", old.record.key_id)
    statuses = {k.key_id: k.status for k in keys.for_tenant("acme")}
    assert statuses == {old.record.key_id: "revoked", new.record.key_id: "active"}


def test_a_revoked_key_stays_accepted_only_for_the_cache_bound(dynamodb: Any) -> None:
    keys = KeyStore(dynamodb, TABLE)
    minted = keys.create("acme")
    now = [100.0]
    auth = Authenticator(keys, cache_seconds=5, clock=lambda: now[0])
    auth.authenticate(bearer(minted.secret))
    keys.revoke("acme", minted.record.key_id)
    now[0] += 4.9
    assert auth.authenticate(bearer(minted.secret)).tenant_id == "acme"  # cached
    now[0] += 0.2
    with pytest.raises(AuthenticationFailed):
        auth.authenticate(bearer(minted.secret))


# The admin API


def test_admin_key_checks(dynamodb: Any) -> None:
    admin_api = api(dynamodb)
    admin_api.authorize(bearer(ADMIN_KEY))
    tenant_key = KeyStore(dynamodb, TABLE).create("acme").secret
    cases: list[tuple[dict[str, str], type[APIError], str]] = [
        ({}, AuthenticationFailed, "missing_admin_key"),
        (bearer(ADMIN_KEY + "x"), AuthenticationFailed, "invalid_admin_key"),
        (bearer("sb-unknown-key-00000000000000"), AuthenticationFailed, "invalid_admin_key"),
        (bearer(tenant_key), PermissionDenied, "admin_key_required"),
        ({"x-api-key": tenant_key}, PermissionDenied, "admin_key_required"),
    ]
    for headers, error, code in cases:
        with pytest.raises(error) as info:
            admin_api.authorize(headers)
        assert info.value.code == code, headers
    with pytest.raises(AuthenticationFailed) as off:
        api(dynamodb, admin_key=None).authorize(bearer(ADMIN_KEY))
    assert off.value.code == "admin_api_disabled"


def test_admin_key_from_secrets_manager_is_cached_then_reread() -> None:
    calls: list[str] = []

    class Secrets:
        def get_secret_value(self, SecretId: str) -> dict[str, str]:
            calls.append(SecretId)
            return {"SecretString": f"value-{len(calls)}"}

    now = [0.0]
    credential = AdminCredential(
        None, "arn:secret", lambda: Secrets(), cache_seconds=300, clock=lambda: now[0]
    )
    assert credential.value() == "value-1"
    now[0] = 299
    assert credential.value() == "value-1"
    now[0] = 301
    assert credential.value() == "value-2"
    assert calls == ["arn:secret", "arn:secret"]


def test_admin_api_lifecycle(dynamodb: Any) -> None:
    admin_api = api(dynamodb)
    tenant = admin_api.create_tenant({"id": "acme", "limits": {"rpm": 10}})
    assert tenant["limits"] == {"monthly_budget_usd": None, "rpm": 10, "tpm": None}
    generated = admin_api.create_tenant({})
    assert generated["id"].startswith("tenant_")
    listed = admin_api.list_tenants({"limit": "1"})
    assert len(listed["data"]) == 1 and listed["has_more"]

    patched = admin_api.update_tenant(
        "acme", {"limits": {"monthly_budget_usd": 25, "rpm": None, "tpm": 500}}
    )
    assert patched["limits"] == {"monthly_budget_usd": 25, "rpm": None, "tpm": 500}

    created = admin_api.create_key("acme", {"name": "ci"})
    assert created["secret"].startswith("sb-") and created["status"] == "active"
    (shown,) = admin_api.list_keys("acme")["data"]
    assert "secret" not in shown and shown["id"] == created["id"]
    rotated = admin_api.rotate_key("acme", created["id"])
    assert rotated["replaces"] == created["id"] and rotated["name"] == "ci"
    assert admin_api.get_key("acme", created["id"])["status"] == "revoked"
    assert admin_api.revoke_key("acme", rotated["id"])["status"] == "revoked"
    assert admin_api.list_keys(generated["id"])["data"] == []


@pytest.mark.parametrize(
    ("call", "error", "param"),
    [
        (lambda a: a.update_tenant("acme", {"limits": {"rpm": 0}}), InvalidRequest, "limits.rpm"),
        (lambda a: a.update_tenant("acme", {"limits": {"tpm": 1.5}}), InvalidRequest, "limits.tpm"),
        (
            lambda a: a.update_tenant("acme", {"limits": {"rpm": True}}),
            InvalidRequest,
            "limits.rpm",
        ),
        (
            lambda a: a.update_tenant("acme", {"limits": {"monthly_budget_usd": -1}}),
            InvalidRequest,
            "limits.monthly_budget_usd",
        ),
        (
            lambda a: a.update_tenant("acme", {"limits": {"monthly_budget_usd": "0.0000001"}}),
            InvalidRequest,
            "limits.monthly_budget_usd",
        ),
        (lambda a: a.update_tenant("acme", {"limits": {"rph": 1}}), InvalidRequest, "limits.rph"),
        (lambda a: a.update_tenant("acme", {"name": "x"}), InvalidRequest, "name"),
        (lambda a: a.update_tenant("nobody", {"limits": {"rpm": 1}}), NotFound, None),
        (lambda a: a.get_tenant("nobody"), NotFound, None),
        (lambda a: a.create_key("nobody", {}), NotFound, None),
        (lambda a: a.list_keys("nobody"), NotFound, None),
        (lambda a: a.revoke_key("acme", "key_missing"), NotFound, None),
        (lambda a: a.create_tenant({"id": "acme"}), TenantExists, "id"),
        (lambda a: a.create_tenant({"id": "a/b"}), InvalidRequest, "id"),
        (lambda a: a.list_tenants({"limit": "0"}), InvalidRequest, "limit"),
        (lambda a: a.create_key("acme", {"name": ""}), InvalidRequest, "name"),
    ],
)
def test_admin_api_refusals_name_the_field(
    dynamodb: Any, call: Any, error: type[APIError], param: str | None
) -> None:
    admin_api = api(dynamodb)
    admin_api.create_tenant({"id": "acme"})
    with pytest.raises(error) as info:
        call(admin_api)
    assert info.value.param == param
    assert info.value.status == error.status


# The admin CLI


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = admin([*args, "--table", TABLE, "--region", "us-east-1"])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_tenant_and_key_lifecycle(dynamodb: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "tenant", "create", "acme", "--name", "Acme", "--rpm", "30")
    assert code == 0 and "acme" in out and "30" in out
    code, out, _ = run(capsys, "tenant", "set-limits", "acme", "--budget-usd", "9.99", "--no-rpm")
    assert code == 0
    code, out, _ = run(capsys, "tenant", "show", "acme", "--json")
    assert json.loads(out)["limits"] == {"monthly_budget_usd": 9.99, "rpm": None, "tpm": None}
    code, out, _ = run(capsys, "tenant", "list")
    header, row = out.splitlines()[:2]
    assert header.split() == ["ID", "NAME", "STATUS", "CREATED", "BUDGET_USD", "RPM", "TPM"]
    assert row.split()[0] == "acme" and "9.99" in row

    code, out, _ = run(capsys, "key", "create", "--tenant", "acme", "--name", "ci", "--json")
    created = json.loads(out)
    secret, key_id = created["secret"], created["id"]
    assert Authenticator(KeyStore(dynamodb, TABLE)).authenticate(bearer(secret)).key_id == key_id
    code, out, _ = run(capsys, "key", "list", "--tenant", "acme")
    assert key_id in out and secret not in out and "active" in out
    code, out, _ = run(capsys, "key", "rotate", "--tenant", "acme", key_id)
    new_secret = next(line.split()[-1] for line in out.splitlines() if line.startswith("API key:"))
    assert new_secret.startswith("sb-") and new_secret != secret
    code, out, _ = run(capsys, "key", "revoke", "--tenant", "acme", key_id)
    assert code == 0 and "revoked" in out
    statuses = {k.status for k in KeyStore(dynamodb, TABLE).for_tenant("acme")}
    assert statuses == {"active", "revoked"}


def test_cli_errors(dynamodb: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "key", "create", "--tenant", "ghost")
    assert code == 1 and "no tenant 'ghost'" in err
    code, _, err = run(capsys, "tenant", "set-limits", "ghost", "--rpm", "5")
    assert code == 1 and "No tenant" in err
    code, _, err = run(capsys, "tenant", "create", "acme", "--budget-usd", "lots")
    assert code == 1 and "--budget-usd" in err
    code, _, err = run(capsys, "tenant", "set-limits", "acme")
    assert code == 1
    with pytest.raises(SystemExit):
        run(capsys, "tenant", "set-limits", "acme", "--rpm", "5", "--no-rpm")


def test_cli_usage_report(dynamodb: Any, capsys: pytest.CaptureFixture[str]) -> None:
    at = datetime.datetime(2026, 11, 3, 10, tzinfo=datetime.UTC).timestamp()
    store = UsageStore(dynamodb, TABLE)
    for i, (model, cost) in enumerate([("openai/gpt-4o-mini", 240), ("mystery/x", None)]):
        record = UsageRecord(
            call_id=f"c{i}", tenant_id="acme", key_id="key_a", endpoint="/v1/chat/completions",
            route="fast", model=model, at=at, ended_at=at + 0.1, input_tokens=1000,
            cached_input_tokens=400, output_tokens=200, latency_ms=100, first_token_ms=100,
            outcome="ok", cost_usd_micros=cost, price_version=PriceTable.load().version,
        )  # fmt: skip
        assert store.write(record)
    args = ("--start", "2026-11-01", "--end", "2026-11-30", "--group-by", "model")
    code, out, _ = run(capsys, "usage", "acme", *args)
    assert code == 0
    lines = out.splitlines()
    assert any(line.startswith("openai/gpt-4o-mini") and "0.000240" in line for line in lines)
    assert "1 calls were on models with no price" in out
    code, out, _ = run(capsys, "usage", "acme", *args, "--json")
    body = json.loads(out)
    assert body["totals"]["calls"] == 2 and body["totals"]["cost_usd_micros"] == 240
    code, out, _ = run(capsys, "usage", "acme", *args, "--csv")
    assert out.splitlines()[0].startswith("model,")
    code, _, err = run(capsys, "usage", "acme", "--start", "yesterday")
    assert code == 1 and "start" in err
