"""``python -m costmodel [WORKLOAD] [--prices FILE] [--json]``.

Prints the monthly cost of the Lambda-only design (on demand, and with provisioned
concurrency) and of Switchboard for the workload, and the traffic where they cross. A bad
workload or price file is reported on stderr, naming the field, with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from costmodel.costs import estimate
from costmodel.files import DEFAULT_PRICES, WorkloadError, load_prices, load_workload
from costmodel.report import as_json, text

DEFAULT_WORKLOAD = "examples/workload.toml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m costmodel",
        description="Monthly infrastructure cost: Lambda-only vs Switchboard, and break-even.",
    )
    parser.add_argument(
        "workload", nargs="?", default=DEFAULT_WORKLOAD, help=f"TOML file ({DEFAULT_WORKLOAD})"
    )
    parser.add_argument(
        "--prices", default=str(DEFAULT_PRICES), help="price table (TOML); default: %(default)s"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    try:
        workload = load_workload(args.workload)
    except WorkloadError as exc:
        print(f"error: {args.workload}: {exc}", file=sys.stderr)
        return 2
    try:
        prices = load_prices(args.prices)
    except WorkloadError as exc:
        print(f"error: {args.prices}: {exc}", file=sys.stderr)
        return 2
    result = estimate(workload, prices)
    if args.json:
        json.dump(as_json(result), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(text(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
