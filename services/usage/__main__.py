"""The usage report on the command line.

    python -m services.usage report --table T --tenant X [--region R] [--start D]
                                    [--end D] [--group-by day,key,model] [--csv]

`--table` defaults to `$SWITCHBOARD_TABLE` and `--region` to `$AWS_REGION`; an AWS
failure (no region, no credentials, no such table, nothing listening at the endpoint) is
a sentence saying what to do.

The admin CLI adds the same command as `usage` with `services.usage.__main__.register`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from services.cli import explain
from services.errors import APIError
from services.usage.report import (
    METRICS,
    UsageReports,
    parse_query,
    report,
    reports_for_table,
    to_csv,
)

_LABELS = {
    "calls": "calls",
    "input_tokens": "input",
    "cached_input_tokens": "cached",
    "output_tokens": "output",
    "cost_usd": "cost (USD)",
    "unpriced_calls": "unpriced",
    "estimated_calls": "estimated",
    "failed_calls": "failed",
    "abandoned_calls": "abandoned",
}


def register(subparsers: Any, name: str = "usage") -> argparse.ArgumentParser:
    """Add the report command as `name` to an argparse `subparsers`; it runs through
    `args.func(args)`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help="a tenant's usage and cost, summed by day, key or model"
    )
    table = os.environ.get("SWITCHBOARD_TABLE")
    parser.add_argument(
        "--table",
        default=table,
        required=not table,
        help="the State stack's table (default: $SWITCHBOARD_TABLE)",
    )
    parser.add_argument("--tenant", required=True)
    parser.add_argument(
        "--region",
        default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        help="the stack's region (default: $AWS_REGION, then boto3's)",
    )
    add_report_options(parser)
    parser.set_defaults(func=run)
    return parser


def add_report_options(parser: argparse.ArgumentParser) -> None:
    """The report's own options (the admin CLI's `usage` takes them too)."""
    parser.add_argument("--start", help="first UTC day, YYYY-MM-DD (default: this month's first)")
    parser.add_argument("--end", help="last UTC day, YYYY-MM-DD (default: today)")
    parser.add_argument(
        "--group-by", default="day", help="comma-separated: day, key, model, route (default: day)"
    )
    parser.add_argument("--csv", action="store_true", help="print CSV instead of a table")


def build_report(reports: UsageReports, tenant: str, args: argparse.Namespace) -> dict[str, Any]:
    """The report `add_report_options`' options ask for; `APIError` for a bad one."""
    params = {"start": args.start, "end": args.end, "group_by": args.group_by}
    query = parse_query({k: v for k, v in params.items() if v is not None})
    return report(
        reports.store.records(tenant, query.start, query.end), query, reports.prices, tenant
    )


def run(
    args: argparse.Namespace, reports: UsageReports | None = None, out: TextIO = sys.stdout
) -> int:
    try:
        reports = reports or reports_for_table(args.table, getattr(args, "region", None))
        body = build_report(reports, args.tenant, args)
    except APIError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except Exception as exc:
        sentence = explain(exc, table=args.table, region=getattr(args, "region", None))
        if sentence is None:
            raise
        print(f"error: {sentence}", file=sys.stderr)
        return 1
    if args.csv:
        out.write(to_csv(body))
    else:
        out.write(render(body))
    return 0


def _cell(name: str, value: Any) -> str:
    if name == "cost_usd":
        return f"{value:,.6f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def render(body: dict[str, Any]) -> str:
    """The report as an aligned text table with a totals line."""
    groups: list[str] = body["group_by"]
    metrics = [m for m in METRICS if m != "cost_usd_micros"]
    header = [*groups, *(_LABELS[m] for m in metrics)]
    rows = [[str(r[g]) for g in groups] + [_cell(m, r[m]) for m in metrics] for r in body["data"]]
    totals = body["totals"]
    lead = ["total", *[""] * (len(groups) - 1)] if groups else []
    total_row = lead + [_cell(m, totals[m]) for m in metrics]
    widths = [max(len(line[i]) for line in [header, *rows, total_row]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < len(groups) else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    prices = body["price_table"]
    out = [
        f"Usage of tenant {body['tenant_id']}, {body['start']} to {body['end']} (UTC), "
        f"prices: table {prices['version']} of {prices['as_of']}",
        "",
        line(header),
        line(["-" * w for w in widths]),
        *(line(r) for r in rows),
        line(["-" * w for w in widths]),
        line(total_row),
    ]
    if not body["cost_complete"]:
        out += [
            "",
            f"{totals['unpriced_calls']} calls were on models with no price: their cost is "
            "unknown and not in the cost column.",
        ]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.usage")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register(subparsers, "report")
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
