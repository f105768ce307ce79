"""Two tenants at once through the API Gateway emulator's port: no request may see another's
event. (The emulator once ran the gateway handler in threads, and Powertools' router keeps
the current event in one attribute: concurrent requests swapped bodies and tenants.)"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack.stack import LocalStack, StackConfig
from tests.integration.tenancy import bearer, new_key, new_tenant

CREATES_PER_TENANT = 60
CHATS_PER_TENANT = 40
RUNS_PER_TENANT = 20
LAMBDA_CONCURRENCY = 8


@pytest.fixture(scope="module")
def busy_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    config = StackConfig(
        lambda_concurrency=LAMBDA_CONCURRENCY,
        log_dir=tmp_path_factory.mktemp("apigw-concurrency-logs"),
    )
    with LocalStack(config) as running:
        yield running


async def _send(
    client: httpx.AsyncClient, kind: str, tenant: str, key: str, i: int, tag: str
) -> tuple[str, str, int, httpx.Response]:
    marker = f"{tag}-{tenant}-{kind}-{i}"
    if kind == "create":
        body: dict[str, Any] = {"title": marker, "metadata": {"tenant": tenant}}
        path = "/conversations"
    elif kind == "chat":
        body = {"model": "local/simulator", "messages": [{"role": "user", "content": marker}]}
        path = "/chat/completions"
    else:
        step = {"model": "local/simulator", "messages": [{"role": "user", "content": marker}]}
        body = {"kind": "pipeline", "input": {"steps": [step]}, "background": True}
        path = "/runs"
    response = await client.post(path, json=body, headers=bearer(key))
    return kind, tenant, i, response


async def _burst(stack: LocalStack, keys: dict[str, str], tag: str) -> list[Any]:
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    async with httpx.AsyncClient(base_url=stack.api_url, limits=limits, timeout=60) as client:
        jobs = []
        for tenant, key in keys.items():
            for kind, count in (
                ("create", CREATES_PER_TENANT),
                ("chat", CHATS_PER_TENANT),
                ("run", RUNS_PER_TENANT),
            ):
                jobs += [_send(client, kind, tenant, key, i, tag) for i in range(count)]
        return list(await asyncio.gather(*jobs))


def _titles(stack: LocalStack, key: str, tag: str) -> set[str]:
    titles: set[str] = set()
    after: str | None = None
    while True:
        params = {"limit": "100", **({"after": after} if after else {})}
        page = httpx.get(f"{stack.api_url}/conversations", params=params, headers=bearer(key))
        assert page.status_code == 200, page.text
        data = page.json()
        titles |= {c["title"] for c in data["data"] if (c["title"] or "").startswith(tag)}
        if not data["has_more"]:
            return titles
        after = data["next_cursor"]


def test_two_tenants_at_once_see_no_cross_talk_through_the_api_port(
    busy_stack: LocalStack,
) -> None:
    stack = busy_stack
    other = new_tenant(stack)
    keys = {"dev": stack.api_key, other: new_key(stack, other)["secret"]}
    tag = "x" + secrets.token_hex(3)
    results = asyncio.run(_burst(stack, keys, tag))
    assert len(results) >= 200

    wrong: list[str] = []
    runs: dict[str, tuple[str, str]] = {}
    for kind, tenant, i, response in results:
        marker = f"{tag}-{tenant}-{kind}-{i}"
        if kind == "create":
            body = response.json()
            if response.status_code != 200 or body.get("title") != marker:
                wrong.append(f"{marker}: {response.status_code} {response.text[:200]}")
            elif body.get("metadata") != {"tenant": tenant}:
                wrong.append(f"{marker}: metadata {body.get('metadata')}")
        elif kind == "chat":
            content = (
                response.json()["choices"][0]["message"]["content"]
                if response.status_code == 200
                else ""
            )
            if f'you said "{marker}"' not in content:
                wrong.append(f"{marker}: {response.status_code} {response.text[:200]}")
        else:
            if response.status_code != 202:
                wrong.append(f"{marker}: {response.status_code} {response.text[:200]}")
            else:
                runs[response.json()["id"]] = (tenant, marker)
    assert wrong == [], f"{len(wrong)} of {len(results)} requests saw another's event"

    # What was stored: each tenant holds exactly its own conversations...
    for tenant, key in keys.items():
        expected = {f"{tag}-{tenant}-create-{i}" for i in range(CREATES_PER_TENANT)}
        assert _titles(stack, key, tag) == expected

    # ...and each run belongs to the tenant that asked for it, and ran that tenant's step.
    deadline = time.monotonic() + 90
    pending = dict(runs)
    while pending and time.monotonic() < deadline:
        for run_id, (tenant, marker) in list(pending.items()):
            response = httpx.get(f"{stack.api_url}/runs/{run_id}", headers=bearer(keys[tenant]))
            assert response.status_code == 200, f"{marker}: {response.text}"
            run = response.json()
            if run["status"] in ("succeeded", "failed", "cancelled"):
                assert run["status"] == "succeeded", run
                assert f'you said "{marker}"' in run["result"]["output"], run["result"]
                del pending[run_id]
        time.sleep(0.2)
    assert pending == {}, f"{len(pending)} runs did not finish"
