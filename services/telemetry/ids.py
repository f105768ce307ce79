"""The correlation id of a call: which one a component uses, and the headers that carry it.

One rule everywhere (the gateway Lambda, the authorizer, the stream door, the worker): the
client's own `x-request-id` when it sent a sane one (1 to 128 printable ASCII characters,
no spaces), else the edge's request id (API Gateway's `requestId`: in the proxy event for
the gateway Lambda and the authorizer, in `x-switchboard-request-id` for the worker, which
API Gateway's integration sets from `context.requestId`), else a new UUID. Every answer
carries the id in `x-request-id`.
"""

from __future__ import annotations

import os
import re
from typing import Final

REQUEST_ID_HEADER: Final = "x-request-id"
# Set by API Gateway's integration request on every WORKER route (a client's own value is
# replaced), and by the local API Gateway emulator the same way.
EDGE_REQUEST_ID_HEADER: Final = "x-switchboard-request-id"
MAX_LENGTH: Final = 128
_SANE = re.compile(f"[!-~]{{1,{MAX_LENGTH}}}")


def sane(value: str | bytes | None) -> str | None:
    """`value` if it may serve as a correlation id (bounded, printable ASCII), else None."""
    if not value:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    return value if _SANE.fullmatch(value) else None


def new_id() -> str:
    """A random (version 4) UUID, as API Gateway's ids are; made here rather than with the
    `uuid` module, whose import costs a front door's cold start 3 ms."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def choose(client: str | bytes | None, edge: str | bytes | None = None) -> str:
    """The id of a call: the client's if sane, else the edge's if sane, else a new one."""
    return sane(client) or sane(edge) or new_id()
