"""API keys: minted once, stored only as a SHA-256 hash, looked up by that hash.

Items: the "API key by hash" and "API key under tenant" rows of the key layout in
services/dynamo.py.

The by-hash item also holds tenant_id, the one under the tenant key_hash; both hold
key_id, prefix, name, status (`active` or `revoked`), created_at, and once revoked,
revoked_at; a rotated key also names its successor (`replaced_by`) and the new key
its predecessor (`replaces`).

The by-hash item answers "whose key is this?" in one GetItem; the tenant item lets a
tenant list its keys without a scan. Both are written in one transaction. Keys are 256
bits of randomness, so a plain SHA-256 (no salt, no slow hash) is safe to store: it cannot
be reversed or guessed, and it keeps the lookup a single read.

Revoking sets both items' status in one transaction; rotating mints the successor and
revokes the old key in one transaction, so there is no moment with neither key valid. A
front door or worker that cached the old key's record keeps accepting it for at most its
key cache bound (services/tenancy/auth.py).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from services.dynamo import attributes, error_code, plain
from services.errors import APIError, NotFound
from services.tenancy.tenants import TENANT_ID

KEY_PREFIX = "sb-"
KEY_ID = re.compile(r"key_[0-9a-f]{16}")
_RECOGNITION_CHARS = 10


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key record. The secret itself is never stored; `prefix` is for recognition."""

    key_id: str
    tenant_id: str
    prefix: str
    name: str
    status: str
    created_at: int
    revoked_at: int | None = None

    @property
    def active(self) -> bool:
        return self.status == "active"

    def public(self) -> dict[str, Any]:
        """What an admin may see of a key: never its hash, and the secret is not stored."""
        return {
            "object": "api_key",
            "id": self.key_id,
            "tenant_id": self.tenant_id,
            "name": self.name,
            "prefix": self.prefix,
            "status": self.status,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


@dataclass(frozen=True, slots=True)
class MintedKey:
    """A newly created key: `secret` is shown once and never stored."""

    secret: str
    record: ApiKey


class KeyRevoked(APIError):
    status = 409
    type = "invalid_request_error"
    code = "key_revoked"


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyStore:
    """API key records in the DynamoDB table. Takes a boto3 DynamoDB client."""

    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    def create(
        self, tenant_id: str, name: str = "default", *, secret: str | None = None
    ) -> MintedKey:
        minted = self._mint(tenant_id, name, secret)
        self._client.transact_write_items(TransactItems=self._puts(minted))
        return minted

    def _mint(self, tenant_id: str, name: str, secret: str | None) -> MintedKey:
        secret = secret or generate_secret()
        if not secret.startswith(KEY_PREFIX) or len(secret) < 24:
            raise ValueError(f"an API key must start with {KEY_PREFIX!r} and be >= 24 characters")
        record = ApiKey(
            key_id="key_" + secrets.token_hex(8),
            tenant_id=tenant_id,
            prefix=secret[:_RECOGNITION_CHARS],
            name=name,
            status="active",
            created_at=int(time.time()),
        )
        return MintedKey(secret=secret, record=record)

    def _puts(self, minted: MintedKey, **extra: str) -> list[dict[str, Any]]:
        """The two Puts that store a new key (by hash, and under its tenant)."""
        record, digest = minted.record, hash_key(minted.secret)
        common = {
            "key_id": record.key_id,
            "prefix": record.prefix,
            "name": record.name,
            "status": record.status,
            "created_at": record.created_at,
            **extra,
        }
        return [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": attributes(
                        {
                            "pk": f"APIKEY#{digest}",
                            "sk": "APIKEY",
                            "tenant_id": record.tenant_id,
                            **common,
                        }
                    ),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Put": {
                    "TableName": self._table,
                    "Item": attributes(
                        {
                            "pk": f"TENANT#{record.tenant_id}",
                            "sk": f"KEY#{record.key_id}",
                            "key_hash": digest,
                            **common,
                        }
                    ),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]

    def lookup(self, secret: str) -> ApiKey | None:
        """The record for a presented secret, or None if no such key exists."""
        response = self._client.get_item(
            TableName=self._table,
            Key=attributes({"pk": f"APIKEY#{hash_key(secret)}", "sk": "APIKEY"}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return None if item is None else _record(plain(item))

    def get(self, tenant_id: str, key_id: str) -> ApiKey | None:
        """A key of the tenant by its id; None if the tenant has no such key."""
        item = self._tenant_item(tenant_id, key_id)
        return None if item is None else _record(item)

    def require(self, tenant_id: str, key_id: str) -> ApiKey:
        key = self.get(tenant_id, key_id)
        if key is None:
            raise _not_found(tenant_id, key_id)
        return key

    def for_tenant(self, tenant_id: str) -> list[ApiKey]:
        """The tenant's keys, active and revoked, oldest first (never their hashes)."""
        if not TENANT_ID.match(tenant_id):
            return []
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :key)",
            "ExpressionAttributeValues": attributes(
                {
                    ":pk": f"TENANT#{tenant_id}",
                    ":key": "KEY#",
                }
            ),
            "ConsistentRead": True,
        }
        keys: list[ApiKey] = []
        while True:
            response = self._client.query(**query)
            keys += [_record(plain(i)) for i in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                break
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return sorted(keys, key=lambda k: (k.created_at, k.key_id))

    def revoke(self, tenant_id: str, key_id: str) -> ApiKey:
        """Revoke a key (both items, in one transaction). Revoking a revoked key is a no-op;
        `NotFound` if the tenant has no such key."""
        item = self._tenant_item(tenant_id, key_id)
        if item is None:
            raise _not_found(tenant_id, key_id)
        if item["status"] != "active":
            return _record(item)
        now = int(time.time())
        try:
            self._client.transact_write_items(
                TransactItems=self._revocations(tenant_id, key_id, item["key_hash"], now)
            )
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise  # else revoked meanwhile by another call: the outcome is the same
        return self.require(tenant_id, key_id)

    def rotate(self, tenant_id: str, key_id: str) -> MintedKey:
        """Mint a successor with the same name and revoke the old key, in one transaction.

        `NotFound` if the tenant has no such key, `KeyRevoked` (409) if it is revoked."""
        item = self._tenant_item(tenant_id, key_id)
        if item is None:
            raise _not_found(tenant_id, key_id)
        old = _record(item)
        if not old.active:
            raise KeyRevoked(f"The key '{key_id}' is revoked; create a new key instead.")
        minted = self._mint(tenant_id, old.name, None)
        new_id = minted.record.key_id
        actions = self._puts(minted, replaces=key_id) + self._revocations(
            tenant_id, key_id, item["key_hash"], minted.record.created_at, replaced_by=new_id
        )
        try:
            self._client.transact_write_items(TransactItems=actions)
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise
            raise KeyRevoked(
                f"The key '{key_id}' was revoked while rotating it; create a new key instead."
            ) from None
        return minted

    def _tenant_item(self, tenant_id: str, key_id: str) -> dict[str, Any] | None:
        if not TENANT_ID.match(tenant_id) or not KEY_ID.fullmatch(key_id):
            return None  # no such key, and nothing that long or odd reaches the table
        response = self._client.get_item(
            TableName=self._table,
            Key=attributes({"pk": f"TENANT#{tenant_id}", "sk": f"KEY#{key_id}"}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return None if item is None else plain(item)

    def _revocations(
        self, tenant_id: str, key_id: str, digest: str, now: int, **extra: str
    ) -> list[dict[str, Any]]:
        """Two Updates that revoke an active key, refused if it is no longer active."""
        sets = ["#s = :revoked", "revoked_at = :now", *(f"{k} = :{k}" for k in extra)]
        values = attributes(
            {
                ":revoked": "revoked",
                ":active": "active",
                ":now": now,
                **{f":{k}": v for k, v in extra.items()},
            }
        )
        keys = [
            attributes({"pk": f"APIKEY#{digest}", "sk": "APIKEY"}),
            attributes({"pk": f"TENANT#{tenant_id}", "sk": f"KEY#{key_id}"}),
        ]
        return [
            {
                "Update": {
                    "TableName": self._table,
                    "Key": key,
                    "UpdateExpression": "SET " + ", ".join(sets),
                    "ConditionExpression": "#s = :active",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": values,
                }
            }
            for key in keys
        ]


def _record(item: dict[str, Any]) -> ApiKey:
    """A key record from either item (`plain` values): the by-hash one names its tenant,
    the one under the tenant has it in its pk."""
    revoked_at = item.get("revoked_at")
    return ApiKey(
        key_id=item["key_id"],
        tenant_id=item.get("tenant_id") or item["pk"].removeprefix("TENANT#"),
        prefix=item["prefix"],
        name=item["name"],
        status=item["status"],
        created_at=int(item["created_at"]),
        revoked_at=None if revoked_at is None else int(revoked_at),
    )


def _not_found(tenant_id: str, key_id: str) -> NotFound:
    return NotFound(
        f"Tenant '{tenant_id}' has no API key with id '{key_id}'.", code="key_not_found"
    )
