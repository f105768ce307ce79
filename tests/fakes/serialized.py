"""A boto3 client whose calls run one at a time, for moto in-process (`mock_aws`).

The code under test calls DynamoDB and S3 from several threads at once (its blocking calls
go to `asyncio.to_thread`, and a tool reads documents in parallel), as it may against AWS.
In-process moto is not thread-safe: a transaction deep-copies the table while another
thread adds to it ("dictionary changed size during iteration"). Serializing the calls
keeps the concurrency in the code and takes the race out of the fake.
"""

from __future__ import annotations

import threading
from typing import Any

_LOCK = threading.RLock()  # one for every wrapped client: they share moto's backends


class Serialized:
    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute) or isinstance(attribute, type):
            return attribute  # meta, exceptions, ...

        def call(*args: Any, **kwargs: Any) -> Any:
            with _LOCK:
                return attribute(*args, **kwargs)

        return call
