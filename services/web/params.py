"""Query parameters and request headers every route shares, checked the same way on every
front door and the worker: a malformed value is a 400 naming it, never a 500.

Numbers are ASCII digits only: `str.isdigit()` also accepts "²" (which `int()` then
refuses) and the digits of other scripts (which `int()` reads as another number).
"""

from __future__ import annotations

from collections.abc import Mapping

from services.errors import InvalidRequest

DEFAULT_PAGE = 20
MAX_PAGE = 100
MAX_IDEMPOTENCY_KEY = 255
IDEMPOTENCY_HEADER = "idempotency-key"
LAST_EVENT_ID_HEADER = "last-event-id"
# An event number: at most 10 digits, as the run store keys them (`EVT#<seq:010d>`).
MAX_EVENT_DIGITS = 10


def ascii_int(raw: str | None, *, max_digits: int = 18) -> int | None:
    """`raw` as a non-negative integer when it is 1 to `max_digits` ASCII digits, else None."""
    if raw is None or not 0 < len(raw) <= max_digits or not raw.isascii() or not raw.isdigit():
        return None
    return int(raw)


def page_limit(raw: str | None) -> int:
    """`?limit=`: an integer from 1 to `MAX_PAGE` (`DEFAULT_PAGE` when absent), else 400."""
    if raw is None:
        return DEFAULT_PAGE
    value = ascii_int(raw, max_digits=3)
    if value is None or not 1 <= value <= MAX_PAGE:
        raise InvalidRequest(
            f"'limit' must be an integer from 1 to {MAX_PAGE}.", param="limit", code="invalid_value"
        )
    return value


def event_number(name: str, raw: str) -> int:
    """A run event's sequence number from `Last-Event-ID` or `?after=` (surrounding
    whitespace ignored), or a 400 naming `name`."""
    value = ascii_int(raw.strip(), max_digits=MAX_EVENT_DIGITS)
    if value is None:
        raise InvalidRequest(
            f"{name} must be an event number (a non-negative integer of at most "
            f"{MAX_EVENT_DIGITS} digits), got {raw[:40]!r}.",
            param=name,
            code="invalid_last_event_id",
        )
    return value


def idempotency_key(raw: str | None) -> str | None:
    """The `Idempotency-Key` header: 1 to `MAX_IDEMPOTENCY_KEY` printable ASCII characters
    (surrounding whitespace ignored), None when absent, else 400."""
    if raw is None:
        return None
    key = raw.strip()
    if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY or not key.isascii() or not key.isprintable():
        raise InvalidRequest(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters.",
            param="Idempotency-Key",
            code="invalid_idempotency_key",
        )
    return key


def forwarded_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The client headers a front door passes on to the worker (`Idempotency-Key`,
    `Last-Event-ID`), checked and in normal form; a malformed one is the client's 400
    here, not a failed call to the worker. `headers` has lower-case names."""
    out: dict[str, str] = {}
    key = idempotency_key(headers.get(IDEMPOTENCY_HEADER))
    if key is not None:
        out[IDEMPOTENCY_HEADER] = key
    last = headers.get(LAST_EVENT_ID_HEADER)
    if last is not None:
        out[LAST_EVENT_ID_HEADER] = str(event_number("Last-Event-ID", last))
    return out
