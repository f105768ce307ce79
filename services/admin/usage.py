"""`python -m services.admin usage TENANT`: a tenant's usage and cost (services.usage)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from services.admin.cli import Context
from services.usage.__main__ import add_report_options, build_report, render
from services.usage.prices import PriceTable
from services.usage.report import UsageReports, to_csv
from services.usage.store import UsageStore


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    usage = commands.add_parser(
        "usage", parents=[common], help="a tenant's usage and cost by day, key or model"
    )
    usage.add_argument("tenant_id")
    add_report_options(usage)
    usage.set_defaults(run=show_usage)


def show_usage(args: argparse.Namespace, context: Context) -> int:
    """Bad dates or groups raise `APIError`, which the admin CLI prints as an error."""
    store = UsageStore(context.dynamodb(), context.table_name)
    body = build_report(UsageReports(store, PriceTable.load()), args.tenant_id, args)
    if context.as_json:
        context.emit(body)
    else:
        sys.stdout.write(to_csv(body) if args.csv else render(body))
    return 0
