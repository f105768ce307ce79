"""The price table (`prices.toml`): USD per million tokens per provider model, versioned
and dated.

Cost of one call, in integer micro-dollars: since a price is USD per million tokens,
tokens x price is micro-dollars exactly:

    (input - cached) x input price + cached x cached_input price + output x output price

computed in decimal and rounded half up to a whole micro-dollar. Canonical usage counts
cached tokens inside `input_tokens` (services/providers/base.py), so they are split out
here. A model without a price has cost `None`: unknown, never zero.
"""

from __future__ import annotations

import datetime
import tomllib
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from services.canonical import Usage
from services.config import ConfigError

DEFAULT_PRICES = Path(__file__).with_name("prices.toml")
_FIELDS = ("input", "cached_input", "output")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens."""

    input: Decimal
    cached_input: Decimal
    output: Decimal

    def cost_micros(self, usage: Usage) -> int:
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        scaled = _scaled(self)
        if scaled is not None:  # the same sum in integers (each call is priced on the hot path)
            a, b, c = scaled
            exact_scaled = (usage.input_tokens - cached) * a + cached * b + usage.output_tokens * c
            return (exact_scaled + _SCALE // 2) // _SCALE  # half up: a cost is never negative
        exact = (
            (usage.input_tokens - cached) * self.input
            + cached * self.cached_input
            + usage.output_tokens * self.output
        )
        return int(exact.to_integral_value(rounding=ROUND_HALF_UP))


_SCALE = 10**9  # prices with up to 9 decimals (of a dollar per million tokens) price in integers
_SCALED: dict[Price, tuple[int, int, int] | None] = {}


def _scaled(price: Price) -> tuple[int, int, int] | None:
    """`price` in units of 1e-9 USD per million tokens, if that is exact (else None)."""
    if price in _SCALED:
        return _SCALED[price]
    parts = tuple(value * _SCALE for value in (price.input, price.cached_input, price.output))
    exact = all(part == part.to_integral_value() for part in parts)
    scaled = (int(parts[0]), int(parts[1]), int(parts[2])) if exact else None
    _SCALED[price] = scaled
    return scaled


@dataclass(frozen=True, slots=True)
class PriceTable:
    version: str
    as_of: datetime.date
    prices: dict[str, Price] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def price(self, model: str) -> Price | None:
        return self.prices.get(model)

    def cost_micros(self, model: str, usage: Usage) -> int | None:
        """The cost of `usage` on `model`, or None when the model has no price."""
        price = self.prices.get(model)
        return None if price is None else price.cost_micros(usage)

    def describe(self) -> dict[str, str]:
        """The version and date, as /v1/usage and the CLI show them."""
        return {"version": self.version, "as_of": self.as_of.isoformat()}

    @classmethod
    def load(cls, path: Path = DEFAULT_PRICES) -> PriceTable:
        try:
            raw = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read the price table {path}: {exc}") from None
        return cls.parse(raw, str(path))

    @classmethod
    def parse(cls, raw: dict[str, Any], source: str = "price table") -> PriceTable:
        version, as_of = raw.get("version"), raw.get("as_of")
        if not isinstance(version, str) or not version:
            raise ConfigError(f"{source}: 'version' must be a non-empty string")
        if not isinstance(as_of, datetime.date) or isinstance(as_of, datetime.datetime):
            raise ConfigError(f"{source}: 'as_of' must be a date (YYYY-MM-DD)")
        prices: dict[str, Price] = {}
        for model, entry in (raw.get("prices") or {}).items():
            if "/" not in model:
                raise ConfigError(f"{source}: '{model}' must be <provider>/<model>")
            if not isinstance(entry, dict) or set(entry) != set(_FIELDS):
                raise ConfigError(f"{source}: '{model}' needs exactly {', '.join(_FIELDS)}")
            values = []
            for name in _FIELDS:
                value = entry[name]
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise ConfigError(f"{source}: '{model}'.{name} must be a number >= 0")
                values.append(Decimal(repr(value)))
            prices[model] = Price(*values)
        sources = {str(k): str(v) for k, v in (raw.get("sources") or {}).items()}
        return cls(version, as_of, prices, sources)
