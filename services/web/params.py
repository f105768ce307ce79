"""Query parameters every list endpoint shares, checked the same way on every front door."""

from __future__ import annotations

from services.errors import InvalidRequest

DEFAULT_PAGE = 20
MAX_PAGE = 100


def page_limit(raw: str | None) -> int:
    """`?limit=`: an integer from 1 to `MAX_PAGE` (`DEFAULT_PAGE` when absent), else 400."""
    if raw is None:
        return DEFAULT_PAGE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise InvalidRequest(
            f"'limit' must be an integer from 1 to {MAX_PAGE}.", param="limit", code="invalid_value"
        )
    return int(raw)
