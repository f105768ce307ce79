"""The address other workers reach this one at, read from the ECS task metadata endpoint."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping

METADATA_ENV = "ECS_CONTAINER_METADATA_URI_V4"


def advertise_url(env: Mapping[str, str], port: int = 8000) -> str | None:
    """`http://<task private IP>:<port>` in ECS (awsvpc networking), else None."""
    base = env.get(METADATA_ENV)
    if not base:
        return None
    with urllib.request.urlopen(f"{base}/task", timeout=2) as response:
        task = json.load(response)
    for container in task.get("Containers", []):
        for network in container.get("Networks", []):
            addresses = network.get("IPv4Addresses") or []
            if addresses:
                return f"http://{addresses[0]}:{port}"
    return None
