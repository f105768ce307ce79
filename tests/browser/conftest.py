"""The web console in a real browser: headless Chromium from Debian's packages
(`/usr/bin/chromium`, installed by `make install`), driven by the pinned `playwright`
package (its own browser downloads are never used), against a local stack.

Screenshots are kept under `test-artifacts/browser/` (git-ignored), one or more per test.
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.stack import LocalStack
from services.tenancy.keys import KeyStore
from services.tenancy.tenants import TenantStore

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the session, with a fresh profile (user data dir)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make install` installs it (apt-get chromium)")
    from playwright.sync_api import sync_playwright

    profile = tempfile.TemporaryDirectory(prefix="switchboard-chromium-")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile.name,
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1200, "height": 900},
            env={**os.environ, "HOME": profile.name},
        )
        context.set_default_timeout(30_000)  # a busy 2-core machine runs an agent slowly
        yield context
        context.close()
    profile.cleanup()


@pytest.fixture
def page(chromium: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A new tab (its own sessionStorage). Page errors fail the test; a screenshot of the
    tab is kept when the test fails."""
    tab = chromium.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    if getattr(request.node, "failed", False):
        screenshot(tab, f"{request.node.name}-failed")
    tab.close()
    assert not errors, f"the page raised: {errors}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.failed:
        item.failed = True  # type: ignore[attr-defined]
    return report


def screenshot(tab: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    return path


class Tenant:
    """A tenant of the test's own, with an API key, calling the stack over HTTP."""

    def __init__(self, stack: LocalStack, name: str) -> None:
        dynamodb = stack.client("dynamodb")
        TenantStore(dynamodb, stack.config.table).create(name, name)
        self.stack = stack
        self.id = name
        self.key = KeyStore(dynamodb, stack.config.table).create(name, "browser").secret
        self.headers = {"authorization": f"Bearer {self.key}"}

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.stack.stream_url}{path}", headers=self.headers, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, body: Any) -> Any:
        response = httpx.post(
            f"{self.stack.stream_url}{path}", json=body, headers=self.headers, timeout=60
        )
        assert response.status_code in (200, 201, 202), response.text
        return response.json()

    def upload(self, filename: str, data: bytes) -> dict[str, Any]:
        body = {"filename": filename, "data": base64.b64encode(data).decode()}
        return dict(self.post("/documents", body))


def console_url(stack: LocalStack, door: str) -> str:
    """The console as a front door serves it: `stream` (the Function URL's app) or `api`
    (the gateway Lambda behind the API Gateway emulator)."""
    base = stack.stream_url if door == "stream" else stack.api_url
    return base.removesuffix("/v1") + "/console/"


def sign_in(tab: Any, stack: LocalStack, door: str, key: str, hash: str = "") -> None:
    tab.goto(console_url(stack, door) + hash)
    tab.fill("#api-key", key)
    tab.click("form.signin button[type=submit]")
    tab.wait_for_selector("#sign-out")
