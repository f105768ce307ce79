"""Which door an integration test goes through.

The deployed API sends `WORKER` routes (services/frontdoor/routes.py) from API Gateway
straight to the worker, streamed, behind the authorizer; the gateway Lambda answers only
`CONTROL` routes. The local API Gateway emulator (devstack/apigw.py) does the same, so a
test of a `WORKER` route runs through both doors: the API port and the stream door.

Raw-socket tests read answers themselves; `dechunk` undoes chunked transfer coding.
"""

from __future__ import annotations

from typing import Any


def api_and_stream() -> list[Any]:
    """`door` parameters for a route both doors serve."""
    return ["api", "stream"]


def api_door(stack: Any) -> str:
    """The API port's base URL (what an SDK's `base_url` is through API Gateway)."""
    return str(stack.api_url)


def dechunk(body: bytes) -> bytes:
    """The content of a body sent with `transfer-encoding: chunked` (through the last
    chunk; trailers are not read)."""
    decoded, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        decoded, rest = decoded + rest[:size], rest[size + 2 :]
    return decoded
