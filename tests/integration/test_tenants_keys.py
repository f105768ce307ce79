"""Tenants and keys on the local stack (two workers): the admin API and CLI, the key
lifecycle on every front door and worker, and nothing readable across tenants."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from devstack.stack import REGION, ROOT, LocalStack
from tests.integration.tenancy import (
    CHAT,
    KEY_CACHE_SECONDS,
    admin,
    bearer,
    doors,
    new_key,
    new_tenant,
    stack_config,
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(stack_config(tmp_path_factory.mktemp("tenants-stack-logs"))) as running:
        yield running


def statuses(stack: LocalStack, key: str) -> dict[str, tuple[int, str | None]]:
    """Each door's status for a chat completion with `key`, and the error code if any."""
    found: dict[str, tuple[int, str | None]] = {}
    for door, url in doors(stack).items():
        response = httpx.post(url, headers=bearer(key), json=CHAT, timeout=30)
        code = response.json()["error"]["code"] if response.status_code != 200 else None
        found[door] = (response.status_code, code)
    return found


def all_ok(stack: LocalStack) -> dict[str, tuple[int, str | None]]:
    return {door: (200, None) for door in doors(stack)}


def all_revoked(stack: LocalStack) -> dict[str, tuple[int, str | None]]:
    """API Gateway's authorizer refuses a revoked key as any bad key (it cannot say why);
    every other door names the revocation."""
    return {
        door: (401, "invalid_api_key" if door == "gateway" else "revoked_api_key")
        for door in doors(stack)
    }


def test_key_created_by_the_admin_api_works_then_revocation_reaches_every_door(
    stack: LocalStack,
) -> None:
    tenant = new_tenant(stack)
    created = new_key(stack, tenant, "ci")
    assert created["secret"].startswith("sb-") and created["tenant_id"] == tenant
    assert statuses(stack, created["secret"]) == all_ok(stack)  # every cache now holds it

    listed = admin(stack, "GET", f"/tenants/{tenant}/keys").json()["data"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert "secret" not in listed[0] and created["secret"] not in json.dumps(listed)
    assert listed[0]["prefix"] == created["secret"][:10]

    revoked = admin(stack, "POST", f"/tenants/{tenant}/keys/{created['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    time.sleep(KEY_CACHE_SECONDS + 0.2)  # the bound on how long a revoked key may work
    assert statuses(stack, created["secret"]) == all_revoked(stack)


def test_rotation_the_new_key_works_at_once_and_the_old_stops_within_the_bound(
    stack: LocalStack,
) -> None:
    tenant = new_tenant(stack)
    old = new_key(stack, tenant, "web")
    assert statuses(stack, old["secret"]) == all_ok(stack)
    response = admin(stack, "POST", f"/tenants/{tenant}/keys/{old['id']}/rotate")
    assert response.status_code == 200
    new = response.json()
    assert new["replaces"] == old["id"] and new["name"] == "web" and new["secret"] != old["secret"]
    assert statuses(stack, new["secret"]) == all_ok(stack)
    time.sleep(KEY_CACHE_SECONDS + 0.2)
    assert statuses(stack, old["secret"]) == all_revoked(stack)
    assert statuses(stack, new["secret"]) == all_ok(stack)
    again = admin(stack, "POST", f"/tenants/{tenant}/keys/{old['id']}/rotate")
    assert again.status_code == 409 and again.json()["error"]["code"] == "key_revoked"


def test_a_key_created_with_the_cli_works(stack: LocalStack) -> None:
    tenant = new_tenant(stack)
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": stack.aws_endpoint,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "SWITCHBOARD_TABLE": stack.config.table,
        "AWS_REGION": REGION,
    }
    done = subprocess.run(
        [sys.executable, "-m", "services.admin", "key", "create", "--tenant", tenant, "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    secret = json.loads(done.stdout)["secret"]
    assert statuses(stack, secret) == all_ok(stack)
    listed = subprocess.run(
        [sys.executable, "-m", "services.admin", "key", "list", "--tenant", tenant],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert listed.splitlines()[0].split()[:4] == ["ID", "NAME", "PREFIX", "STATUS"]
    assert secret[:10] in listed and secret not in listed


def test_admin_api_refuses_without_the_admin_key(stack: LocalStack) -> None:
    tenant = new_tenant(stack)
    tenant_key = new_key(stack, tenant)["secret"]
    url = f"{stack.api_url}/admin/tenants"
    cases = [
        ({}, 401, "missing_admin_key"),
        (bearer(stack.admin_key + "x"), 401, "invalid_admin_key"),
        (bearer(tenant_key), 403, "admin_key_required"),
        ({"x-api-key": tenant_key}, 403, "admin_key_required"),
    ]
    for headers, status, code in cases:
        response = httpx.get(url, headers=headers)
        assert response.status_code == status, headers
        error = response.json()["error"]
        assert error["code"] == code
        assert error["type"] == ("permission_error" if status == 403 else "authentication_error")
    # No other door serves it.
    assert (
        httpx.get(f"{stack.stream_url}/admin/tenants", headers=bearer(stack.admin_key)).status_code
        == 404
    )
    assert httpx.delete(url, headers=bearer(stack.admin_key)).status_code == 405


def test_admin_api_not_found_and_bad_limits(stack: LocalStack) -> None:
    tenant = new_tenant(stack)
    missing = admin(stack, "GET", "/tenants/no-such-tenant")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "tenant_not_found"
    no_key = admin(stack, "POST", f"/tenants/{tenant}/keys/key_0000/revoke")
    assert no_key.status_code == 404 and no_key.json()["error"]["code"] == "key_not_found"
    for limits, param in (
        ({"rpm": 0}, "limits.rpm"),
        ({"tpm": "lots"}, "limits.tpm"),
        ({"monthly_budget_usd": -5}, "limits.monthly_budget_usd"),
        ({"burst": 3}, "limits.burst"),
    ):
        response = admin(stack, "PATCH", f"/tenants/{tenant}", {"limits": limits})
        assert response.status_code == 400, limits
        assert response.json()["error"]["param"] == param
    ok = admin(stack, "PATCH", f"/tenants/{tenant}", {"limits": {"rpm": 100, "tpm": None}})
    assert ok.json()["limits"] == {"monthly_budget_usd": None, "rpm": 100, "tpm": None}
    shown = admin(stack, "GET", f"/tenants/{tenant}").json()
    assert shown["id"] == tenant and shown["limits"]["rpm"] == 100
    ids = [t["id"] for t in admin(stack, "GET", "/tenants?limit=100").json()["data"]]
    assert tenant in ids and "dev" in ids


def test_one_tenant_reads_nothing_of_another(stack: LocalStack) -> None:
    a, b = new_tenant(stack), new_tenant(stack, {"rpm": 1000})
    key_a = new_key(stack, a)["secret"]
    key_b = new_key(stack, b)
    for path in (f"/tenants/{b}", f"/tenants/{b}/keys", f"/tenants/{b}/keys/{key_b['id']}"):
        response = httpx.get(f"{stack.api_url}/admin{path}", headers=bearer(key_a))
        assert response.status_code == 403, path
        assert key_b["id"] not in response.text and "1000" not in response.text
    revoke = httpx.post(
        f"{stack.api_url}/admin/tenants/{b}/keys/{key_b['id']}/revoke", headers=bearer(key_a)
    )
    assert revoke.status_code == 403
    assert statuses(stack, key_b["secret"])["stream"] == (200, None)  # the key still works
    # Keys are addressed under their tenant: tenant A's path does not reach B's key.
    wrong = admin(stack, "POST", f"/tenants/{a}/keys/{key_b['id']}/revoke")
    assert wrong.status_code == 404
