"""Helpers for the tenant, key and limit tests: a local stack with two workers and short
cache bounds, and the admin API as a client would call it."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from devstack.stack import LocalStack, StackConfig

# How long a front door or worker may keep accepting a revoked key, and keep a tenant's
# limits, in these tests (deployed: 5 s each).
KEY_CACHE_SECONDS = 1.0
LIMITS_CACHE_SECONDS = 0.5
CHAT = {"model": "local/simulator", "messages": [{"role": "user", "content": "Hello"}]}


def stack_config(log_dir: Path, extra_env: Mapping[str, str] | None = None) -> StackConfig:
    return StackConfig(
        workers=2,
        log_dir=log_dir,
        # Two workers start slowly on a loaded 2-core host; the tests do not time start-up.
        ready_timeout_seconds=120,
        extra_env={
            "SWITCHBOARD_KEY_CACHE_SECONDS": str(KEY_CACHE_SECONDS),
            "SWITCHBOARD_LIMITS_CACHE_SECONDS": str(LIMITS_CACHE_SECONDS),
            **(extra_env or {}),
        },
    )


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def admin(stack: LocalStack, method: str, path: str, body: Any = None) -> httpx.Response:
    """Call the admin API through the gateway with the stack's admin key."""
    return httpx.request(
        method, f"{stack.api_url}/admin{path}", headers=bearer(stack.admin_key), json=body
    )


def new_tenant(stack: LocalStack, limits: dict[str, Any] | None = None) -> str:
    tenant = "t-" + secrets.token_hex(4)
    response = admin(stack, "POST", "/tenants", {"id": tenant, "limits": limits or {}})
    assert response.status_code == 200, response.text
    return tenant


def new_key(stack: LocalStack, tenant: str, name: str = "test") -> dict[str, Any]:
    response = admin(stack, "POST", f"/tenants/{tenant}/keys", {"name": name})
    assert response.status_code == 200, response.text
    return dict(response.json())


def doors(stack: LocalStack) -> dict[str, str]:
    """Every place a client can send a chat completion: both front doors and each worker
    (the API port, behind the authorizer, as deployed)."""
    return {
        "gateway": f"{stack.api_url}/chat/completions",
        "stream": f"{stack.stream_url}/chat/completions",
        **{f"worker-{i}": f"{url}/v1/chat/completions" for i, url in enumerate(stack.worker_urls)},
    }


def fresh_window(needed_seconds: float = 15.0) -> None:
    """Wait, if need be, so the next `needed_seconds` fall in one rate-limit minute."""
    left = 60 - time.time() % 60
    if left < needed_seconds:
        time.sleep(left + 0.2)
