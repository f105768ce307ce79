"""The cost model: what a workload costs per month on the Lambda-only design and on
Switchboard, and the traffic where one overtakes the other.

Pure functions over frozen dataclasses; no AWS calls. ``python -m costmodel``
is the command; ``load_workload``, ``load_prices`` and ``estimate`` are the library.
"""

from __future__ import annotations

from costmodel.costs import estimate, lambda_only, switchboard
from costmodel.files import WorkloadError, load_prices, load_workload, parse_workload

__all__ = [
    "WorkloadError",
    "estimate",
    "lambda_only",
    "load_prices",
    "load_workload",
    "parse_workload",
    "switchboard",
]
