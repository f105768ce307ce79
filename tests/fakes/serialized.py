"""A boto3 client whose calls run one at a time, for moto in-process (`mock_aws`).

The code under test calls DynamoDB and S3 from several threads at once (its blocking calls
go to `asyncio.to_thread`, and a tool reads documents in parallel), as it may against AWS.
In-process moto is not thread-safe: a transaction deep-copies the table while another
thread adds to it ("dictionary changed size during iteration"). Serializing the calls
keeps the concurrency in the code and takes the race out of the fake.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from moto import mock_aws

from devstack.tables import create_table
from services.documents.model import DocumentSettings
from services.documents.store import DocumentStore

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


@contextmanager
def moto_documents(table: str, bucket: str) -> Iterator[DocumentStore]:
    """A DocumentStore on in-process moto (a fresh table and bucket), its clients serialized."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        s3 = boto3.client("s3", region_name="us-east-1")
        create_table(dynamodb, table)
        s3.create_bucket(Bucket=bucket)
        yield DocumentStore(
            Serialized(dynamodb), Serialized(s3), table, DocumentSettings(bucket=bucket)
        )
