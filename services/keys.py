"""API keys: minted once, stored only as a SHA-256 hash, looked up by that hash.

Table layout (the single table shared by every component; `pk`/`sk` strings):

| item             | pk                    | sk             | attributes                        |
| ---------------- | --------------------- | -------------- | --------------------------------- |
| key by hash      | `APIKEY#<sha256 hex>` | `APIKEY`       | tenant_id, key_id + common fields |
| key under tenant | `TENANT#<tenant id>`  | `KEY#<key id>` | key_hash + common fields          |

Common fields: key_id, prefix, name, status (`active` or `revoked`), created_at.

The by-hash item answers "whose key is this?" in one GetItem; the tenant item lets a
tenant list its keys without a scan. Both are written in one transaction. Keys are 256
bits of randomness, so a plain SHA-256 (no salt, no slow hash) is safe to store: it cannot
be reversed or guessed, and it keeps the lookup a single read.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

KEY_PREFIX = "sb-"
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

    @property
    def active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True, slots=True)
class MintedKey:
    """A newly created key: `secret` is shown once and never stored."""

    secret: str
    record: ApiKey


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
        secret = secret or generate_secret()
        if not secret.startswith(KEY_PREFIX) or len(secret) < 24:
            raise ValueError(f"an API key must start with {KEY_PREFIX!r} and be >= 24 characters")
        digest = hash_key(secret)
        record = ApiKey(
            key_id="key_" + secrets.token_hex(8),
            tenant_id=tenant_id,
            prefix=secret[:_RECOGNITION_CHARS],
            name=name,
            status="active",
            created_at=int(time.time()),
        )
        common = {
            "key_id": {"S": record.key_id},
            "prefix": {"S": record.prefix},
            "name": {"S": record.name},
            "status": {"S": record.status},
            "created_at": {"N": str(record.created_at)},
        }
        self._client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": {
                            "pk": {"S": f"APIKEY#{digest}"},
                            "sk": {"S": "APIKEY"},
                            "tenant_id": {"S": tenant_id},
                            **common,
                        },
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": {
                            "pk": {"S": f"TENANT#{tenant_id}"},
                            "sk": {"S": f"KEY#{record.key_id}"},
                            "key_hash": {"S": digest},
                            **common,
                        },
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
        return MintedKey(secret=secret, record=record)

    def lookup(self, secret: str) -> ApiKey | None:
        """The record for a presented secret, or None if no such key exists."""
        response = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": f"APIKEY#{hash_key(secret)}"}, "sk": {"S": "APIKEY"}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        if item is None:
            return None
        return ApiKey(
            key_id=item["key_id"]["S"],
            tenant_id=item["tenant_id"]["S"],
            prefix=item["prefix"]["S"],
            name=item["name"]["S"],
            status=item["status"]["S"],
            created_at=int(item["created_at"]["N"]),
        )


def main(argv: list[str] | None = None) -> int:
    """`python -m services.keys create --table T --tenant ID`: mint a key, print it once.

    The minimal way to get a first key into a deployed table (the credentials and region
    are boto3's usual ones); the admin CLI and endpoints are a later capability.
    """
    import argparse

    import boto3

    parser = argparse.ArgumentParser(prog="python -m services.keys")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create an API key for a tenant")
    create.add_argument("--table", required=True, help="the State stack's table name")
    create.add_argument("--tenant", required=True, help="the tenant the key belongs to")
    create.add_argument("--name", default="default", help="a label for the key")
    create.add_argument("--region", default=None, help="the stack's region (default: boto3's)")
    args = parser.parse_args(argv)
    client = boto3.client("dynamodb", region_name=args.region)
    minted = KeyStore(client, args.table).create(args.tenant, args.name)
    print(f"key id:  {minted.record.key_id}")
    print(f"tenant:  {minted.record.tenant_id}")
    print(f"API key: {minted.secret}")
    print("Store the key now: only its hash is kept, it cannot be shown again.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
