"""Fixtures shared by unit test modules."""

from __future__ import annotations

import pytest

from lambdas.gateway import handler as gateway


@pytest.fixture
def fresh_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway handler with none of the services it builds once per execution
    environment (another module's tests may have built them on a table gone with its
    mock); whatever a test builds is dropped after it."""
    for cached in ("_runtime", "_conversations", "_usage", "_admin_api", "_probe"):
        monkeypatch.setattr(gateway, cached, None)
