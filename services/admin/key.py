"""`key create | list | rotate | revoke`: a new key's secret is printed once, never again."""

from __future__ import annotations

import argparse
from typing import Any

from services.admin.cli import Context
from services.admin.tenant import when
from services.tenancy.keys import ApiKey, KeyStore, MintedKey
from services.tenancy.tenants import TenantStore

COLUMNS = ("id", "name", "prefix", "status", "created", "revoked")
SHOWN_ONCE = "Store the key now: only its hash is kept, it cannot be shown again."


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser("key", help="create, list, rotate and revoke API keys")
    sub = group.add_subparsers(dest="command", required=True, metavar="COMMAND")

    create = sub.add_parser("create", parents=[common], help="create a key (shown once)")
    create.add_argument("--tenant", required=True, help="the tenant the key belongs to")
    create.add_argument("--name", default="default", help="a label for the key")
    create.add_argument(
        "--create-tenant", action="store_true", help="create the tenant first if it is missing"
    )
    create.set_defaults(run=create_key)

    listing = sub.add_parser("list", parents=[common], help="list a tenant's keys")
    listing.add_argument("--tenant", required=True)
    listing.set_defaults(run=list_keys)

    rotate = sub.add_parser(
        "rotate",
        parents=[common],
        help="replace a key: a new one (shown once) with the same name; the old one is revoked",
    )
    rotate.add_argument("--tenant", required=True)
    rotate.add_argument("key_id")
    rotate.set_defaults(run=rotate_key)

    revoke = sub.add_parser("revoke", parents=[common], help="revoke a key")
    revoke.add_argument("--tenant", required=True)
    revoke.add_argument("key_id")
    revoke.set_defaults(run=revoke_key)


def row(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.key_id,
        "tenant": key.tenant_id,
        "name": key.name,
        "prefix": key.prefix,
        "status": key.status,
        "created": when(key.created_at),
        "revoked": when(key.revoked_at),
    }


def minted_json(minted: MintedKey) -> dict[str, Any]:
    return {**minted.record.public(), "secret": minted.secret}


def _emit_minted(context: Context, minted: MintedKey, **extra: Any) -> None:
    note = f"\nAPI key: {minted.secret}\n{SHOWN_ONCE}"
    context.emit(
        {**minted_json(minted), **extra}, record={**row(minted.record), **extra}, note=note
    )


def create_key(args: argparse.Namespace, context: Context) -> int:
    tenants = TenantStore(context.dynamodb(), context.table_name)
    if tenants.get(args.tenant) is None:
        if not args.create_tenant:
            raise ValueError(
                f"no tenant '{args.tenant}': create it with `tenant create {args.tenant}`, "
                "or pass --create-tenant"
            )
        tenants.create(args.tenant)
    minted = KeyStore(context.dynamodb(), context.table_name).create(args.tenant, args.name)
    _emit_minted(context, minted)
    return 0


def list_keys(args: argparse.Namespace, context: Context) -> int:
    keys = KeyStore(context.dynamodb(), context.table_name).for_tenant(args.tenant)
    if not keys:
        TenantStore(context.dynamodb(), context.table_name).require(args.tenant)
    context.emit(
        {"object": "list", "data": [k.public() for k in keys]}, [row(k) for k in keys], COLUMNS
    )
    return 0


def rotate_key(args: argparse.Namespace, context: Context) -> int:
    minted = KeyStore(context.dynamodb(), context.table_name).rotate(args.tenant, args.key_id)
    _emit_minted(context, minted, replaces=args.key_id)
    return 0


def revoke_key(args: argparse.Namespace, context: Context) -> int:
    key = KeyStore(context.dynamodb(), context.table_name).revoke(args.tenant, args.key_id)
    context.emit(key.public(), record=row(key))
    return 0
