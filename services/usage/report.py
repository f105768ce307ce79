"""`GET /v1/usage` and the CLI's report: a tenant's usage records, summed by group.

Plain Python (the gateway Lambda loads no pydantic); the store is passed in.

Query parameters (all optional):
- `start`, `end`: UTC dates, YYYY-MM-DD, both included; by default this month so far.
- `group_by`: comma-separated, any of `day`, `key`, `model`, `route`; by default `day`.
- `format`: `json` (the default) or `csv` (also chosen by `Accept: text/csv`).

Every row has calls, input_tokens (cached included), cached_input_tokens, output_tokens,
cost_usd_micros and cost_usd (of the priced calls), unpriced_calls (calls on a model with
no price: their cost is unknown, not zero), estimated_calls (tokens estimated because the
provider did not report them), and failed and abandoned calls. The JSON has the totals
and the price table's version and date.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from services.errors import InvalidRequest
from services.usage.prices import PriceTable
from services.usage.store import UsageStore

GROUPS = ("day", "key", "model", "route")
_GROUP_FIELDS = {"day": "day", "key": "key_id", "model": "model", "route": "route"}
MAX_DAYS = 366
# A report reads up to the day after `end`, which must exist.
FIRST_DAY = datetime.date(1970, 1, 1)
LAST_DAY = datetime.date.max - datetime.timedelta(days=1)
METRICS = (
    "calls",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "cost_usd_micros",
    "cost_usd",
    "unpriced_calls",
    "estimated_calls",
    "failed_calls",
    "abandoned_calls",
)


@dataclass(frozen=True, slots=True)
class UsageQuery:
    start: datetime.date
    end: datetime.date
    group_by: tuple[str, ...]
    csv: bool = False


def parse_query(
    params: Mapping[str, str],
    accept: str | None = None,
    *,
    today: Callable[[], datetime.date] = lambda: datetime.datetime.now(datetime.UTC).date(),
) -> UsageQuery:
    """The report asked for, or an `InvalidRequest` naming the parameter."""
    unknown = sorted(set(params) - {"start", "end", "group_by", "format"})
    if unknown:
        raise InvalidRequest(
            f"Unknown query parameter '{unknown[0]}'; use start, end, group_by and format.",
            param=unknown[0],
            code="unknown_parameter",
        )
    now = today()
    start = _date(params, "start", now.replace(day=1))
    end = _date(params, "end", now)
    if end < start:
        raise InvalidRequest("'end' is before 'start'.", param="end", code="invalid_value")
    if (end - start).days >= MAX_DAYS:
        raise InvalidRequest(
            f"A report covers at most {MAX_DAYS} days; ask for a shorter period.",
            param="start",
            code="invalid_value",
        )
    raw = params.get("group_by", "day")
    groups = tuple(g.strip() for g in raw.split(",") if g.strip())
    bad = [g for g in groups if g not in GROUPS]
    if bad or len(set(groups)) != len(groups):
        raise InvalidRequest(
            f"'group_by' is a comma-separated list of {', '.join(GROUPS)} without repeats; "
            f"got '{raw}'.",
            param="group_by",
            code="invalid_value",
        )
    fmt = params.get("format")
    if fmt not in (None, "json", "csv"):
        raise InvalidRequest("'format' is 'json' or 'csv'.", param="format", code="invalid_value")
    wants_csv = fmt == "csv" or (fmt is None and "text/csv" in (accept or ""))
    return UsageQuery(start, end, groups, wants_csv)


def _date(params: Mapping[str, str], name: str, default: datetime.date) -> datetime.date:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        day = datetime.date.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest(
            f"'{name}' must be a date, YYYY-MM-DD; got '{raw}'.", param=name, code="invalid_value"
        ) from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidRequest(
            f"'{name}' must be a date from {FIRST_DAY} to {LAST_DAY}; got '{raw}'.",
            param=name,
            code="invalid_value",
        )
    return day


def _empty() -> dict[str, int]:
    return {name: 0 for name in METRICS if name != "cost_usd"}


def _add(into: dict[str, int], record: Mapping[str, Any]) -> None:
    into["calls"] += 1
    into["input_tokens"] += int(record.get("input_tokens") or 0)
    into["cached_input_tokens"] += int(record.get("cached_input_tokens") or 0)
    into["output_tokens"] += int(record.get("output_tokens") or 0)
    cost = record.get("cost_usd_micros")
    if cost is None:
        into["unpriced_calls"] += 1
    else:
        into["cost_usd_micros"] += int(cost)
    if record.get("estimated"):
        into["estimated_calls"] += 1
    outcome = record.get("outcome")
    if outcome == "abandoned":
        into["abandoned_calls"] += 1
    elif outcome != "ok":
        into["failed_calls"] += 1


def _finish(sums: dict[str, int]) -> dict[str, Any]:
    row: dict[str, Any] = dict(sums)
    row["cost_usd"] = round(sums["cost_usd_micros"] / 1_000_000, 6)
    return row


def summarize(
    records: Iterable[Mapping[str, Any]], query: UsageQuery
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows (one per group, in order of their keys) and totals."""
    groups: dict[tuple[str, ...], dict[str, int]] = {}
    totals = _empty()
    for record in records:
        values = {**record, "day": str(record.get("at", ""))[:10]}
        key = tuple(str(values.get(_GROUP_FIELDS[g], "")) for g in query.group_by)
        _add(groups.setdefault(key, _empty()), record)
        _add(totals, record)
    rows = [
        {**dict(zip(query.group_by, key, strict=True)), **_finish(sums)}
        for key, sums in sorted(groups.items())
    ]
    return rows, _finish(totals)


def report(
    records: Iterable[Mapping[str, Any]], query: UsageQuery, prices: PriceTable, tenant: str
) -> dict[str, Any]:
    """The JSON body of `GET /v1/usage`."""
    rows, totals = summarize(records, query)
    return {
        "object": "usage.report",
        "tenant_id": tenant,
        "start": query.start.isoformat(),
        "end": query.end.isoformat(),
        "group_by": list(query.group_by),
        "currency": "USD",
        "price_table": prices.describe(),
        # A cost is complete only when every call was on a priced model.
        "cost_complete": totals["unpriced_calls"] == 0,
        "data": rows,
        "totals": totals,
    }


def to_csv(body: Mapping[str, Any]) -> str:
    """The report's rows as CSV, one header line, the group columns first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = [*body["group_by"], *METRICS]
    writer.writerow(columns)
    for row in body["data"]:
        writer.writerow([row[c] for c in columns])
    return out.getvalue()


class UsageReports:
    """Reports for one tenant at a time, from a `UsageStore` (blocking: run in a thread
    where the caller has an event loop)."""

    def __init__(self, store: UsageStore, prices: PriceTable) -> None:
        self.store = store
        self.prices = prices

    def answer(
        self, tenant: str, params: Mapping[str, str], accept: str | None = None
    ) -> tuple[str, str]:
        """The response to `GET /v1/usage`: (content type, body)."""
        query = parse_query(params, accept)
        body = report(
            self.store.records(tenant, query.start, query.end), query, self.prices, tenant
        )
        if query.csv:
            return "text/csv; charset=utf-8", to_csv(body)
        return "application/json", json.dumps(body)


def reports_for_table(table: str, region: str | None = None) -> UsageReports:
    """Reports on `table`, with a boto3 client (in `region`, else boto3's) made on first
    use (imported lazily: the gateway Lambda must stay light at import)."""

    def client() -> Any:
        import boto3

        return boto3.client("dynamodb", region_name=region)

    return UsageReports(UsageStore(client, table), PriceTable.load())
