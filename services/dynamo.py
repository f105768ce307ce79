"""The single DynamoDB table: its key layout, written down once, and what every store
shares to use it: one serializer, one cursor codec, one conditional-failure check.

## Key layout

Every store (runs, conversations, documents, API keys, tenants, usage and limits) keeps its
items in one table, `pk`/`sk` strings, with one global secondary index `gsi1`
(`gsi1pk`/`gsi1sk`, all attributes projected) for the lists. `expires_at` (epoch seconds)
is the TTL attribute; DynamoDB deletes expired items late, so readers skip them.

| item                 | pk                                | sk                         |
| -------------------- | --------------------------------- | -------------------------- |
| tenant               | `TENANT#<t>`                      | `TENANT`                   |
| API key by hash      | `APIKEY#<sha256 of the secret>`   | `APIKEY`                   |
| API key under tenant | `TENANT#<t>`                      | `KEY#<key id>`             |
| usage record         | `TENANT#<t>`                      | `USAGE#<ISO start>#<call>` |
| spend counter        | `TENANT#<t>`                      | `SPEND#<YYYY-MM>`          |
| rate window          | `RATE#<key id>`                   | `MIN#<epoch minute>`       |
| conversation         | `TENANT#<t>#CONV#<conv id>`       | `META`                     |
| message              | `TENANT#<t>#CONV#<conv id>`       | `MSG#<seq:010d>`           |
| run                  | `TENANT#<t>#RUN#<run id>`         | `META`                     |
| run event            | `TENANT#<t>#RUN#<run id>`         | `EVT#<seq:010d>`           |
| idempotency key      | `TENANT#<t>#IDEMPOTENCY#<sha256>` | `IDEMPOTENCY`              |
| document             | `TENANT#<t>#DOC#<doc id>`         | `META`                     |
| cached vector        | `TENANT#<t>#DOC#<doc id>`         | `EMB#<model>`              |

Who writes them: tenants and API keys by `tenancy/tenants.py` and
`tenancy/keys.py`; usage records and spend counters by `usage/store.py`; rate windows by
`tenancy/limits.py` (requests) and `usage/store.py` (tokens, with ADD); conversations and
messages by `conversations/store.py`; runs, run events and idempotency keys by
`runs/store.py`; documents and cached vectors by `documents/store.py`.

The lists, on `gsi1` (each item above that is listed carries both attributes):

| list                             | gsi1pk             | gsi1sk                          |
| -------------------------------- | ------------------ | ------------------------------- |
| tenants, in id order             | `TENANTS`          | `<t>`                           |
| a tenant's conversations, newest | `TENANT#<t>#CONVS` | `<updated ms:015d>#<conv id>`   |
| a tenant's runs, newest          | `TENANT#<t>#RUNS`  | `<created ms:013d>#<run id>`    |
| a tenant's documents, newest     | `TENANT#<t>#DOCS`  | `<created ms:015d>#<doc id>`    |

Isolation is structural: every key of a tenant's data begins with `TENANT#<t>` (a tenant id
never contains `#`, see `tenancy/tenants.py`), and each store builds its keys from the
caller's tenant only. The two exceptions hold no tenant data a client can list: a key by
its hash (found only by presenting the secret) and a key's rate window.

A run, a conversation and a document each keep their children in their own partition, so
one Query reads the whole thing ("META" sorts before "EVT#", "EMB#" and "MSG#").

## What the stores share

- `attributes` / `plain`: the one serializer between Python values and DynamoDB's
  attribute values (str, int, float, Decimal, bool, bytes; JSON-valued fields are stored
  as JSON text by their store). `python -m bench.dynamo` measures it on the item written
  most, a usage record: about 1.5 us more than the same dict written out by hand
  (4.5 against 3.1 us of CPU), and 3.5 times faster than boto3's `TypeSerializer`
  (16 us), which also refuses floats.
- `Listing`: the one cursor codec of every list read from `gsi1`. A cursor carries only
  the sort key of the last item returned, and a check value of it and of the list it came
  from; the partition comes from the caller's request, never from the cursor, and the sort
  key must look like one of that list's. So a cursor of another tenant's list or of
  another list is refused (400 `invalid_cursor`), and one a client forges or edits is
  refused or, at worst, starts the caller's own list at another place: it can never reach
  another tenant's keys or another list's.
- `conditional_failed`: whether an error is DynamoDB refusing a write because its
  condition failed (alone or in a transaction).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from services.errors import InvalidRequest

GSI1 = "gsi1"
_MAX_CURSOR_CHARS = 512
_CHECK_BYTES = 6


# -- the serializer ---------------------------------------------------------------------


def attributes(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Attribute values for an item, a key or `ExpressionAttributeValues`: str is S, bool
    BOOL, int and Decimal N, float N (its repr, which reads back exactly), bytes B; a
    None value leaves the attribute out. Anything else is a TypeError: a store writes
    JSON-valued fields as JSON text itself."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        kind = type(value)
        if kind is str:
            out[name] = {"S": value}
        elif kind is int:
            out[name] = {"N": str(value)}
        elif kind is bool:
            out[name] = {"BOOL": value}
        elif value is not None:
            out[name] = _other(value)
    return out


def _other(value: Any) -> dict[str, Any]:
    if isinstance(value, float):
        return {"N": repr(value)}
    if isinstance(value, Decimal):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": str(value)}
    if isinstance(value, bool):
        return {"BOOL": bool(value)}
    if isinstance(value, int):
        return {"N": str(int(value))}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"B": bytes(value)}
    raise TypeError(f"no DynamoDB attribute value for {type(value).__name__}")


def plain(item: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """An item's attributes as Python values: S str, BOOL bool, B bytes, N int when it is
    a whole number written without a point, else Decimal (exact; `float()` it where a
    float is meant)."""
    out: dict[str, Any] = {}
    for name, value in item.items():
        if "S" in value:
            out[name] = value["S"]
        elif "N" in value:
            text = value["N"]
            out[name] = int(text) if text.lstrip("-").isdigit() else Decimal(text)
        elif "BOOL" in value:
            out[name] = value["BOOL"]
        elif "B" in value:
            out[name] = bytes(value["B"])
        elif "NULL" in value:
            out[name] = None
    return out


# -- the cursor codec -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listing:
    """One list read from `gsi1`: the partition `gsi1pk` of the caller's own list, what its
    sort keys look like, and how an item's table key follows from its sort key.

    `cursor(gsi1sk)` is the opaque `next_cursor` a page ends with; `start_key(cursor)` the
    `ExclusiveStartKey` it stands for, or a 400 when it is not a cursor of this list."""

    partition: str
    sort_key: re.Pattern[str]
    table_key: Callable[[str], tuple[str, str]]

    def cursor(self, sort_key: str) -> str:
        raw = self._check(sort_key) + sort_key.encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def start_key(self, cursor: str, *, param: str = "after") -> dict[str, dict[str, str]]:
        try:
            if len(cursor) > _MAX_CURSOR_CHARS or not cursor.isascii():
                raise ValueError
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            check, sort_key = raw[:_CHECK_BYTES], raw[_CHECK_BYTES:].decode()
        except (binascii.Error, ValueError):
            raise invalid_cursor(param) from None
        if not hmac.compare_digest(check, self._check(sort_key)):
            raise invalid_cursor(param)
        return self.start_key_at(sort_key, param=param)

    def _check(self, sort_key: str) -> bytes:
        """Binds a cursor to this list: another tenant's or another list's does not match."""
        digest = hashlib.sha256(f"{self.partition}\n{sort_key}".encode()).digest()
        return digest[:_CHECK_BYTES]

    def start_key_at(self, sort_key: str, *, param: str = "after") -> dict[str, dict[str, str]]:
        """The `ExclusiveStartKey` after the item of `sort_key` (a list whose `after` is a
        plain id, such as the admin API's tenants, passes the id here)."""
        if not self.sort_key.fullmatch(sort_key):
            raise invalid_cursor(param)
        pk, sk = self.table_key(sort_key)
        return attributes({"pk": pk, "sk": sk, "gsi1pk": self.partition, "gsi1sk": sort_key})


def invalid_cursor(param: str = "after") -> InvalidRequest:
    return InvalidRequest(
        f"Invalid value for '{param}': use the next_cursor of a previous page of this list.",
        param=param,
        code="invalid_cursor",
    )


# -- the conditional-failure check ------------------------------------------------------


def error_code(error: BaseException) -> str:
    """The AWS error code of a botocore `ClientError` ("" for any other exception)."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def cancellation_reasons(error: BaseException) -> list[dict[str, Any]]:
    """The per-action reasons of a cancelled transaction (empty for any other error)."""
    if error_code(error) != "TransactionCanceledException":
        return []
    response: dict[str, Any] = getattr(error, "response", {})
    return list(response.get("CancellationReasons") or [])


def conditional_failed(error: BaseException) -> bool:
    """Whether `error` is a write refused because its condition did not hold: a
    `ConditionalCheckFailedException`, or a cancelled transaction with a failed condition
    among its reasons (or with no reasons given, as some clients report it)."""
    code = error_code(error)
    if code == "ConditionalCheckFailedException":
        return True
    if code == "TransactionCanceledException":
        reasons = cancellation_reasons(error)
        return not reasons or any(r.get("Code") == "ConditionalCheckFailed" for r in reasons)
    return False
