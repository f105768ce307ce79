from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devstack.tables import create_table
from services.errors import AuthenticationFailed
from services.tenancy.auth import Authenticator, Principal, credential_headers
from services.tenancy.keys import KeyStore, hash_key

TABLE = "switchboard-test"


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, TABLE)
        yield client


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


def test_key_is_stored_only_as_a_hash(dynamodb: Any) -> None:
    minted = KeyStore(dynamodb, TABLE).create("tenant-a", "ci")
    assert minted.secret.startswith("sb-") and len(minted.secret) >= 40
    items = dynamodb.scan(TableName=TABLE)["Items"]
    assert len(items) == 2  # by hash, and under the tenant
    dump = json.dumps(items)
    assert minted.secret not in dump
    assert minted.secret[12:] not in dump
    assert hash_key(minted.secret) in dump
    assert {i["pk"]["S"] for i in items} == {f"APIKEY#{hash_key(minted.secret)}", "TENANT#tenant-a"}


def test_lookup(dynamodb: Any) -> None:
    keys = KeyStore(dynamodb, TABLE)
    minted = keys.create("tenant-a")
    found = keys.lookup(minted.secret)
    assert found == minted.record
    assert keys.lookup(minted.secret + "x") is None


def test_authenticate(dynamodb: Any) -> None:
    keys = KeyStore(dynamodb, TABLE)
    minted = keys.create("tenant-a")
    auth = Authenticator(keys)
    assert auth.authenticate(bearer(minted.secret)) == Principal("tenant-a", minted.record.key_id)
    assert asyncio.run(auth.authenticate_async(bearer(minted.secret))).tenant_id == "tenant-a"


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"authorization": ""}, "missing_api_key"),
        ({"authorization": "Bearer"}, "invalid_authorization_header"),
        ({"authorization": "Token abc"}, "invalid_authorization_header"),
        ({"authorization": "Bearer sb-unknown-key-000000000000000"}, "invalid_api_key"),
    ],
)
def test_refusals(dynamodb: Any, headers: dict[str, str], code: str) -> None:
    auth = Authenticator(KeyStore(dynamodb, TABLE))
    with pytest.raises(AuthenticationFailed) as info:
        auth.authenticate(headers)
    assert info.value.code == code
    assert info.value.status == 401


def test_revoked_key_is_refused_once_the_cache_expires(dynamodb: Any) -> None:
    keys = KeyStore(dynamodb, TABLE)
    minted = keys.create("tenant-a")
    now = [0.0]
    auth = Authenticator(keys, cache_seconds=5, clock=lambda: now[0])
    auth.authenticate(bearer(minted.secret))
    dynamodb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": f"APIKEY#{hash_key(minted.secret)}"}, "sk": {"S": "APIKEY"}},
        UpdateExpression="SET #s = :r",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":r": {"S": "revoked"}},
    )
    now[0] = 4.9
    auth.authenticate(bearer(minted.secret))  # still cached: the documented bound
    now[0] = 5.1
    with pytest.raises(AuthenticationFailed) as info:
        auth.authenticate(bearer(minted.secret))
    assert info.value.code == "revoked_api_key"


def test_a_busy_key_is_reread_in_the_background_and_revocation_keeps_its_bound(
    dynamodb: Any,
) -> None:
    """In the last fifth of an entry's life a request renews it without waiting; the
    renewed entry sees the revocation, so the bound is still `cache_seconds`."""
    keys = KeyStore(dynamodb, TABLE)
    minted = keys.create("tenant-a")
    reads: list[int] = []
    dynamodb.meta.events.register("before-call.dynamodb.GetItem", lambda **kw: reads.append(1))
    now = [0.0]
    auth = Authenticator(keys, cache_seconds=5, clock=lambda: now[0])

    async def call() -> Principal:
        principal = await auth.authenticate_async(bearer(minted.secret))
        await asyncio.sleep(0.05)  # let a background read finish
        return principal

    asyncio.run(call())
    now[0] = 3.0
    asyncio.run(call())
    assert len(reads) == 1  # fresh: no read
    keys.revoke("tenant-a", minted.record.key_id)
    before = len(reads)
    now[0] = 4.5  # in the last fifth: answered from the cache, renewed behind it
    assert asyncio.run(call()).key_id == minted.record.key_id
    assert len(reads) == before + 1
    now[0] = 4.9  # the renewed entry already knows
    with pytest.raises(AuthenticationFailed) as info:
        asyncio.run(call())
    assert info.value.code == "revoked_api_key"


def test_cache_saves_reads(dynamodb: Any) -> None:
    keys = KeyStore(dynamodb, TABLE)
    minted = keys.create("tenant-a")
    calls = []
    dynamodb.meta.events.register("before-call.dynamodb.GetItem", lambda **kw: calls.append(1))
    auth = Authenticator(keys, cache_seconds=60)
    for _ in range(5):
        auth.authenticate(bearer(minted.secret))
    assert len(calls) == 1


def test_no_header_speaks_for_a_tenant(dynamodb: Any) -> None:
    """The internal token and tenant headers of old are not credentials: only a key is."""
    keys = KeyStore(dynamodb, TABLE)
    minted = keys.create("tenant-a")
    auth = Authenticator(keys)
    forged = {
        "x-switchboard-internal-token": "anything",
        "x-switchboard-tenant": "tenant-a",
        "x-switchboard-key-id": minted.record.key_id,
    }
    with pytest.raises(AuthenticationFailed) as info:
        auth.authenticate(forged)
    assert info.value.code == "missing_api_key"
    assert auth.authenticate({**forged, **bearer(minted.secret)}).tenant_id == "tenant-a"
    assert credential_headers({**forged, **bearer(minted.secret), "x-api-key": "k"}) == {
        "authorization": f"Bearer {minted.secret}",
        "x-api-key": "k",
    }


def test_the_key_command_mints_a_working_key(
    dynamodb: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from services.admin import main

    args = [
        "key",
        "create",
        "--create-tenant",
        "--table",
        TABLE,
        "--tenant",
        "acme",
        "--name",
        "ci",
        "--region",
        "us-east-1",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    secret = next(line.split()[-1] for line in printed.splitlines() if line.startswith("API key:"))
    assert Authenticator(KeyStore(dynamodb, TABLE)).authenticate(bearer(secret)).tenant_id == "acme"
