from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.stack import LocalStack, StackConfig

# Small enough that the over-limit test sends little, large enough for every other test.
MAX_REQUEST_BYTES = 64 * 1024
CHUNK_MS = 40.0


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The whole platform on loopback, shared by the integration tests."""
    log_dir: Path = tmp_path_factory.mktemp("stack-logs")
    config = StackConfig(
        chunk_ms=CHUNK_MS,
        max_request_bytes=MAX_REQUEST_BYTES,
        log_dir=log_dir,
    )
    with LocalStack(config) as running:
        yield running
