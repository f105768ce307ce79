"""TransactWriteItems over HTTP, for the usage writer: the same request boto3 would send,
without botocore's per-attribute request serializer and without a thread: sent on the
worker's event loop through the lean HTTP client (services.web.http1).

The writer builds every item itself, always in the same shape, and writes one transaction
per group of calls all day long; in the worker's process (whose CPU is the product), the
boto3 call cost about 0.2 ms of CPU per record, mostly in walking the request model. This
sends the JSON body built with orjson, signed with botocore's SigV4 signer, through an
http1 pool on the loop: a writer thread holding the GIL
for a group's worth of Python would hold up the requests the loop is serving. Region,
endpoint (`AWS_ENDPOINT_URL*` included) and credentials (the task role's, refreshed) are
resolved by boto3 as for any client.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from services.providers._per_loop import PerLoop
from services.web import http1

_TARGET = "DynamoDB_20120810.TransactWriteItems"


class DynamoDBTransactions:
    """`transact_async(actions, token)`: boto3's `transact_write_items`, raising botocore's
    `ClientError` (with `CancellationReasons`) as boto3 does."""

    def __init__(self, *, endpoint_url: str | None = None, timeout_seconds: float = 10.0) -> None:
        import boto3

        session = boto3.Session()
        client = session.client("dynamodb")
        self._url: str = endpoint_url or client.meta.endpoint_url
        self._region: str = client.meta.region_name
        self._credentials = session.get_credentials()
        self._timeout = timeout_seconds
        self._pools = PerLoop(lambda: http1.ConnectionPool(self._url, max_idle=2))

    async def transact_async(self, actions: list[bytes], token: str) -> None:
        """As `transact_write_items(TransactItems=..., ClientRequestToken=token)`, each
        action given as its JSON, on the running loop (credentials that are due for a
        refresh, which may go over the network, are read in a thread)."""
        credentials = self._credentials
        refresh_needed = getattr(credentials, "refresh_needed", None)
        if refresh_needed is not None and refresh_needed():
            frozen = await asyncio.to_thread(credentials.get_frozen_credentials)
        else:
            frozen = credentials.get_frozen_credentials()
        body, headers = self._signed(actions, token, frozen)
        headers.pop("host", None)  # the pool sends the URL's own
        async with asyncio.timeout(self._timeout):
            try:
                response = await self._pools.get().request("POST", "/", headers, body)
                data = await response.read()
            except http1.HTTPError as exc:
                raise ConnectionError(f"DynamoDB: {exc}") from None
        _raise_for(response.status, data)

    def _signed(
        self, actions: list[bytes], token: str, credentials: Any
    ) -> tuple[bytes, dict[str, str]]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        body = b"".join(
            (
                b'{"TransactItems":[',
                b",".join(actions),
                b'],"ClientRequestToken":',
                orjson.dumps(token),
                b"}",
            )
        )
        request = AWSRequest(
            method="POST",
            url=self._url,
            data=body,
            headers={"content-type": "application/x-amz-json-1.0", "x-amz-target": _TARGET},
        )
        SigV4Auth(credentials, "dynamodb", self._region).add_auth(request)
        return body, {k.lower(): v for k, v in request.headers.items()}

    async def aclose(self) -> None:
        pool = self._pools.take()
        if pool is not None:
            await pool.aclose()


def _raise_for(status: int, payload: bytes | None) -> None:
    """Nothing for a 200; else botocore's `ClientError`, as boto3 raises it."""
    if status == 200:
        return
    from botocore.exceptions import ClientError

    try:
        data = orjson.loads(payload or b"{}")
    except orjson.JSONDecodeError:
        data = {}
    code = str(data.get("__type", "")).rpartition("#")[2] or f"HTTP{status}"
    raise ClientError(
        {
            "Error": {"Code": code, "Message": data.get("message") or data.get("Message", "")},
            "CancellationReasons": data.get("CancellationReasons") or [],
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "TransactWriteItems",
    )
