"""`tenant create | show | list | set-limits`."""

from __future__ import annotations

import argparse
import time
from typing import Any

from services.admin.cli import Context
from services.tenancy.tenants import (
    UNSET,
    Limits,
    Tenant,
    TenantStore,
    parse_budget,
    parse_per_minute,
)

COLUMNS = ("id", "name", "status", "created", "budget_usd", "rpm", "tpm")


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser("tenant", help="create, show, list tenants and set their limits")
    sub = group.add_subparsers(dest="command", required=True, metavar="COMMAND")

    create = sub.add_parser("create", parents=[common], help="create a tenant")
    create.add_argument("tenant_id", nargs="?", help="its id (default: a generated one)")
    create.add_argument("--name", help="a display name (default: the id)")
    _limit_options(create, clearable=False)
    create.set_defaults(run=create_tenant)

    show = sub.add_parser("show", parents=[common], help="show a tenant and its limits")
    show.add_argument("tenant_id")
    show.set_defaults(run=show_tenant)

    listing = sub.add_parser("list", parents=[common], help="list tenants, in id order")
    listing.set_defaults(run=list_tenants)

    limits = sub.add_parser(
        "set-limits",
        parents=[common],
        help="set or clear a tenant's monthly budget and per-key rate limits",
        description="Options not given are left as they are; --no-X removes limit X.",
    )
    limits.add_argument("tenant_id")
    _limit_options(limits, clearable=True)
    limits.set_defaults(run=set_limits)


def _limit_options(parser: argparse.ArgumentParser, *, clearable: bool) -> None:
    options: tuple[tuple[str, str, type, str], ...] = (
        ("budget", "--budget-usd", str, "monthly budget of the tenant, in US dollars"),
        ("rpm", "--rpm", int, "requests per minute, for each of the tenant's keys"),
        ("tpm", "--tpm", int, "tokens per minute, for each of the tenant's keys"),
    )
    for dest, flag, kind, help in options:
        target = parser.add_mutually_exclusive_group() if clearable else parser
        target.add_argument(flag, dest=dest, type=kind, default=None, metavar="N", help=help)
        if clearable:
            target.add_argument(
                f"--no-{dest}", dest=f"clear_{dest}", action="store_true", help=f"remove: {help}"
            )


def row(tenant: Tenant) -> dict[str, Any]:
    limits = tenant.limits.public()
    return {
        "id": tenant.tenant_id,
        "name": tenant.name,
        "status": tenant.status,
        "created": when(tenant.created_at),
        "budget_usd": limits["monthly_budget_usd"],
        "rpm": limits["rpm"],
        "tpm": limits["tpm"],
    }


def when(epoch: int | None) -> str | None:
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def _store(context: Context) -> TenantStore:
    return TenantStore(context.dynamodb(), context.table_name)


def create_tenant(args: argparse.Namespace, context: Context) -> int:
    limits = Limits(
        monthly_budget_usd=parse_budget(args.budget, "--budget-usd"),
        rpm=parse_per_minute(args.rpm, "--rpm"),
        tpm=parse_per_minute(args.tpm, "--tpm"),
    )
    store = _store(context)
    tenant = store.create(args.tenant_id or TenantStore.new_id(), args.name, limits)
    context.emit(tenant.public(), record=row(tenant))
    return 0


def show_tenant(args: argparse.Namespace, context: Context) -> int:
    tenant = _store(context).require(args.tenant_id)
    context.emit(tenant.public(), record=row(tenant))
    return 0


def list_tenants(args: argparse.Namespace, context: Context) -> int:
    store = _store(context)
    tenants: list[Tenant] = []
    after: str | None = None
    while True:
        page, more = store.page(limit=100, after=after)
        tenants += page
        if not more or not page:
            break
        after = page[-1].tenant_id
    context.emit(
        {"object": "list", "data": [t.public() for t in tenants]},
        [row(t) for t in tenants],
        COLUMNS,
    )
    return 0


def set_limits(args: argparse.Namespace, context: Context) -> int:
    changes: dict[str, Any] = {}
    if args.clear_budget:
        changes["monthly_budget_usd"] = None
    elif args.budget is not None:
        changes["monthly_budget_usd"] = parse_budget(args.budget, "--budget-usd")
    for name in ("rpm", "tpm"):
        if getattr(args, f"clear_{name}"):
            changes[name] = None
        elif getattr(args, name) is not None:
            changes[name] = parse_per_minute(getattr(args, name), f"--{name}")
    if not changes:
        raise ValueError("nothing to change: give --budget-usd, --rpm, --tpm or a --no-... option")
    tenant = _store(context).set_limits(
        args.tenant_id,
        monthly_budget_usd=changes.get("monthly_budget_usd", UNSET),
        rpm=changes.get("rpm", UNSET),
        tpm=changes.get("tpm", UNSET),
    )
    context.emit(tenant.public(), record=row(tenant))
    return 0
