"""What every admin subcommand shares: the common options, the DynamoDB client and output
as a readable table or as JSON.

A command group module defines

    def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser):
        p = commands.add_parser("usage", help="...").add_subparsers(...).add_parser(
            "report", parents=[common], help="...")
        p.set_defaults(run=report)

where `run(args, context) -> int` prints through `context.emit` and returns the exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.config import ConfigError

Run = Callable[[argparse.Namespace, "Context"], int]


def common_options() -> argparse.ArgumentParser:
    """The options every leaf subcommand takes (after its name)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--table",
        default=os.environ.get("SWITCHBOARD_TABLE"),
        help="the State stack's table (default: $SWITCHBOARD_TABLE)",
    )
    common.add_argument(
        "--region",
        default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        help="the stack's region (default: $AWS_REGION, then boto3's)",
    )
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return common


@dataclass
class Context:
    """The table and the output format of one command; builds the client on first use."""

    table: str | None
    region: str | None
    as_json: bool
    _client: Any = field(default=None, repr=False)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Context:
        return cls(
            table=getattr(args, "table", None),
            region=getattr(args, "region", None),
            as_json=bool(getattr(args, "json", False)),
        )

    @property
    def table_name(self) -> str:
        if not self.table:
            raise ConfigError("set --table or SWITCHBOARD_TABLE to the State stack's table")
        return self.table

    def dynamodb(self) -> Any:
        """The client; the table is checked first, so its absence is what a caller hears."""
        if self._client is None:
            self.table_name  # noqa: B018 - raises ConfigError naming --table when it is unset
            import boto3

            self._client = boto3.client("dynamodb", region_name=self.region)
        return self._client

    def emit(
        self,
        data: Any,
        rows: Sequence[Mapping[str, Any]] | None = None,
        columns: Sequence[str] = (),
        *,
        record: Mapping[str, Any] | None = None,
        note: str | None = None,
    ) -> None:
        """Print `data` as JSON; or else `rows` as a table, or one `record` as `field  value`
        lines, then `note` (never in JSON, which must stay parseable)."""
        if self.as_json:
            print(json.dumps(data, indent=2, default=str))
            return
        if rows is not None:
            print(table(rows, columns))
        elif record is not None:
            print(pairs(record))
        if note:
            print(note)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Rows as aligned columns under upper-case headings; None shows as '-'."""
    cells = [[column.upper() for column in columns]]
    cells += [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
             for line in cells]  # fmt: skip
    if not rows:
        lines.append("(none)")
    return "\n".join(lines)


def pairs(data: Mapping[str, Any]) -> str:
    width = max((len(k) for k in data), default=0)
    return "\n".join(f"{k.ljust(width)}  {_cell(v)}" for k, v in data.items())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items())
    return str(value)


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1
