"""The request head (request line and headers), bounded as API Gateway bounds it, before
any route reads it. The front doors call it: the stream door as ASGI middleware
(`check_head` on the ASGI scope), the gateway Lambda on its proxy event
(`check_proxy_event`).

API Gateway's REST API quotas (Amazon API Gateway developer guide, "Quotas for configuring
and running a REST API"; neither can be raised):

- "Total combined size of all header values": 10,240 bytes (`MAX_HEADER_VALUE_BYTES`);
  more is 431 `request_headers_too_large`;
- "Length, in characters, of the URL for a regional API": 10,240 (`MAX_URL_CHARS`); we
  count the path and query string, and answer more with 414 `request_uri_too_long`.

API Gateway documents no limit on the number of headers; we allow `MAX_HEADERS` (100) and
answer more with 431, so that no client can make a door walk 10,000 headers per request.

A path with a control character (NUL, CR, LF, DEL...) names no resource: 404, before a
door looks it up or passes it on. Plain Python: the gateway Lambda imports this.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from services.errors import APIError, NotFound

if TYPE_CHECKING:
    pass

MAX_HEADER_VALUE_BYTES = 10_240
MAX_URL_CHARS = 10_240
MAX_HEADERS = 100
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class HeadersTooLarge(APIError):
    status = 431
    type = "invalid_request_error"
    code = "request_headers_too_large"


class URITooLong(APIError):
    status = 414
    type = "invalid_request_error"
    code = "request_uri_too_long"


def check_head(
    method: str, path: str, query_length: int, header_values: Iterable[bytes | str]
) -> None:
    """Raise the error for a request head over the limits; `path` is the decoded path."""
    if len(path) + query_length > MAX_URL_CHARS:
        raise URITooLong(
            f"The request URL is longer than API Gateway's limit of {MAX_URL_CHARS} characters."
        )
    count = total = 0
    for value in header_values:
        count += 1
        total += len(value)
    if count > MAX_HEADERS:
        raise HeadersTooLarge(
            f"The request has {count} headers; at most {MAX_HEADERS} are accepted."
        )
    if total > MAX_HEADER_VALUE_BYTES:
        raise HeadersTooLarge(
            f"The request's header values total {total} bytes, over API Gateway's limit of "
            f"{MAX_HEADER_VALUE_BYTES} bytes."
        )
    if _CONTROL.search(path):
        raise NotFound(f"Unknown request URL: {method} {path!r}.")


def check_proxy_event(event: Mapping[str, Any]) -> None:
    """`check_head` for an API Gateway REST proxy event (what the gateway Lambda gets)."""
    multi = event.get("multiValueHeaders")
    if multi:
        values: list[str] = [v for vs in multi.values() for v in vs or ()]
    else:
        values = list((event.get("headers") or {}).values())
    query = event.get("multiValueQueryStringParameters") or {}
    query_length = sum(len(k) + len(v) + 2 for k, vs in query.items() for v in vs or ())
    check_head(event.get("httpMethod", ""), event.get("path") or "", query_length, values)
