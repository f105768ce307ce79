"""`python -m services.admin usage TENANT`: a tenant's usage and cost (services.usage)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from services.admin.cli import Context
from services.usage.__main__ import render
from services.usage.prices import PriceTable
from services.usage.report import parse_query, report, to_csv
from services.usage.store import UsageStore


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    usage = commands.add_parser(
        "usage", parents=[common], help="a tenant's usage and cost by day, key or model"
    )
    usage.add_argument("tenant_id")
    usage.add_argument("--start", help="first UTC day, YYYY-MM-DD (default: this month's first)")
    usage.add_argument("--end", help="last UTC day, YYYY-MM-DD (default: today)")
    usage.add_argument(
        "--group-by", default="day", help="comma-separated: day, key, model, route (default: day)"
    )
    usage.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    usage.set_defaults(run=show_usage)


def show_usage(args: argparse.Namespace, context: Context) -> int:
    """Bad dates or groups raise `APIError`, which the admin CLI prints as an error."""
    store, prices = UsageStore(context.dynamodb(), context.table_name), PriceTable.load()
    params = {"start": args.start, "end": args.end, "group_by": args.group_by}
    query = parse_query({k: v for k, v in params.items() if v is not None})
    body = report(
        store.records(args.tenant_id, query.start, query.end), query, prices, args.tenant_id
    )
    if context.as_json:
        context.emit(body)
    else:
        sys.stdout.write(to_csv(body) if args.csv else render(body))
    return 0
