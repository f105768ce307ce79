"""An estimate as a readable table, or as JSON for machines."""

from __future__ import annotations

from typing import Any

from costmodel.costs import TITLES
from costmodel.model import BreakEven, DesignCost, Estimate, LineItem

_NAME = 48
_QUANTITY = 22
_PRICE = 30


def text(result: Estimate) -> str:
    w, p = result.workload, result.prices
    lines = [
        f"Workload: {w.source or '(inline)'}: {len(w.classes)} classes, "
        f"{w.requests_per_month:,.0f} requests/month"
        + (
            f", peak {sum(w.class_peaks()):g} concurrent for {w.peak.hours_per_month:g} h "
            f"of {w.hours_per_month:g} h"
        ),
        f"Prices: {p.region}, {p.currency}, as of {p.as_of} ({p.path or 'inline'}); "
        "no free tier deducted",
    ]
    for design in result.designs:
        lines += ["", *_design(design)]
    lines += ["", "Monthly totals"]
    for design in result.designs:
        lines.append(f"  {design.title:<{_NAME + _QUANTITY}} {_money(design.total):>14}")
    lines += ["", "Break-even (the workload's requests and peak scaled by one factor)"]
    for be in result.break_even:
        lines += _break_even(be)
    return "\n".join(lines) + "\n"


def _design(design: DesignCost) -> list[str]:
    lines = [
        design.title,
        f"  {'item':<{_NAME}} {'quantity':>{_QUANTITY}}  {'unit price':<{_PRICE}} {'monthly':>12}",
    ]
    for item in design.items:
        lines.append(
            f"  {_clip(item.name, _NAME):<{_NAME}} {_quantity(item):>{_QUANTITY}}  "
            f"{item.price.label():<{_PRICE}} {_money(item.cost):>12}"
        )
        if item.detail:
            lines.append(f"      {item.detail}")
    lines.append(f"  {'total':<{_NAME + _QUANTITY + _PRICE + 3}} {_money(design.total):>12}")
    lines += [f"  note: {note}" for note in design.notes]
    return lines


def _break_even(be: BreakEven) -> list[str]:
    first, second = TITLES[be.first], TITLES[be.second]
    head = f"  {first} vs {second}:"
    if not be.crossings:
        cheaper = TITLES[be.cheaper_throughout or be.first]
        return [
            head,
            f"    they do not cross between {be.low:g}x and {be.high:g}x the workload; "
            f"{cheaper} is cheaper throughout",
        ]
    lines = [head]
    for c in be.crossings:
        lines.append(
            f"    at {c.requests_per_month:,.0f} requests/month ({c.factor:.4g}x the workload): "
            f"{TITLES[c.cheaper_below]} is cheaper below, {TITLES[c.cheaper_above]} above"
        )
    return lines


def as_json(result: Estimate) -> dict[str, Any]:
    """The estimate as plain JSON values (numbers unrounded)."""
    w, p = result.workload, result.prices
    return {
        "workload": {
            "source": w.source,
            "requests_per_month": w.requests_per_month,
            "hours_per_month": w.hours_per_month,
            "peak_concurrency": sum(w.class_peaks()),
            "peak_hours_per_month": w.peak.hours_per_month,
            "classes": [
                {
                    "name": c.name,
                    "requests_per_month": c.requests_per_month,
                    "mean_seconds": c.mean_seconds,
                    "peak_concurrency": peak,
                }
                for c, peak in zip(w.classes, w.class_peaks(), strict=True)
            ],
        },
        "prices": {
            "as_of": p.as_of,
            "region": p.region,
            "currency": p.currency,
            "path": p.path,
        },
        "designs": [
            {
                "key": d.key,
                "title": d.title,
                "total": d.total,
                "items": [_item(i) for i in d.items],
                "notes": list(d.notes),
            }
            for d in result.designs
        ],
        "break_even": [
            {
                "first": be.first,
                "second": be.second,
                "range": [be.low, be.high],
                "crossings": [
                    {
                        "factor": c.factor,
                        "requests_per_month": c.requests_per_month,
                        "cheaper_below": c.cheaper_below,
                        "cheaper_above": c.cheaper_above,
                    }
                    for c in be.crossings
                ],
                "cheaper_throughout": be.cheaper_throughout,
            }
            for be in result.break_even
        ],
    }


def _item(item: LineItem) -> dict[str, Any]:
    return {
        "name": item.name,
        "quantity": item.quantity,
        "unit": item.price.unit,
        "unit_price": item.price.value,
        "per": item.price.per,
        "price_key": item.price.key,
        "cost": item.cost,
        "detail": item.detail,
    }


def _quantity(item: LineItem) -> str:
    q = item.quantity
    unit = item.price.unit
    if q == 0:
        return f"0 {unit}"
    if abs(q) >= 100:
        return f"{q:,.0f} {unit}"
    return f"{q:,.4g} {unit}"


def _money(value: float) -> str:
    if value != 0 and abs(value) < 0.01:
        return f"${value:.4f}"
    return f"${value:,.2f}"


def _clip(name: str, width: int) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"
