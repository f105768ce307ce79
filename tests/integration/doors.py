"""Which door an integration test goes through, and what the local API port cannot do yet.

The deployed API sends `WORKER` routes (services/frontdoor/routes.py) from API Gateway
straight to the worker, streamed; the gateway Lambda answers only `CONTROL` routes. The
local API Gateway emulator (devstack/apigw.py) does not route by the table yet: it sends
everything to the gateway handler, which answers a `WORKER` route with 500
`route_not_served_here`. Tests of `WORKER` routes through the API port are marked with
`NEEDS_EMULATOR_ROUTING`; set `EMULATOR_ROUTES_BY_TABLE` once the emulator routes by the
table (issue 17 item 5) and they all run.
"""

from __future__ import annotations

from typing import Any

import pytest

EMULATOR_ROUTES_BY_TABLE = False

NEEDS_EMULATOR_ROUTING = pytest.mark.skipif(
    not EMULATOR_ROUTES_BY_TABLE,
    reason=(
        "API port, WORKER route: needs the local API Gateway emulator (devstack/apigw.py) to "
        "send WORKER routes straight to the worker as the deployed API does (issue 17 item 5); "
        "until then the gateway handler answers them 500 route_not_served_here"
    ),
)


def api_and_stream() -> list[Any]:
    """`door` parameters for a WORKER route: the API port (once it routes by the table) and
    the stream front door."""
    return [pytest.param("api", marks=NEEDS_EMULATOR_ROUTING), "stream"]


def worker_door(stack: Any) -> str:
    """The base URL the deployed API sends a WORKER route to: the worker behind its load
    balancer. Tests of what the API door does for such a route call it here until the
    local API port routes by the table."""
    return f"{stack.worker_url}/v1"
