"""Readiness: whether the state table answers, for `/ready` on the worker and both doors.

One GetItem of a key nothing stores: it needs no permission beyond what every component's
role already has (describing the table would need another), and it fails as the real work
would (the endpoint, the credentials, the network, the table). A short timeout and no
retries: a probe says "not now" quickly rather than hanging the prober.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

PROBE_KEY = {"pk": {"S": "READY#probe"}, "sk": {"S": "READY#probe"}}


class TableProbe:
    """`problem()` is None when `table` answers, else why not (a sentence)."""

    def __init__(self, table: str, client: Any | None = None) -> None:
        self.table = table
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                config = Config(connect_timeout=2, read_timeout=2, retries={"max_attempts": 1})
                self._client = boto3.session.Session().client("dynamodb", config=config)
            return self._client

    def problem(self) -> str | None:
        """Blocking: one GetItem."""
        try:
            self.client.get_item(TableName=self.table, Key=PROBE_KEY)
        except Exception as exc:
            return f"the table {self.table} does not answer ({type(exc).__name__})"
        return None

    async def problem_async(self) -> str | None:
        return await asyncio.to_thread(self.problem)
