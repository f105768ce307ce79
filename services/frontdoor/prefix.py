"""The stage prefix: the path API Gateway puts before the API's own paths (`/api`).

A URL the API answers with (a `Location`, a run's `urls`) must carry it to be usable from
`ApiUrl`. The worker reads it from `X-Forwarded-Prefix` (API Gateway adds the header to
every request it forwards); the gateway Lambda from its proxy event. It is put in front
of URLs, so only a plain path prefix is accepted: no scheme, host, query, `.` or `..`
segment or encoded character.
"""

from __future__ import annotations

import re

MAX_PREFIX = 128
_PREFIX = re.compile(r"(?:/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+")


def stage_prefix(raw: str | None) -> str:
    """The path prefix in `raw` (`/api`), or "" for none or for anything else."""
    if not raw or len(raw) > MAX_PREFIX:
        return ""
    raw = raw.strip().rstrip("/")
    if not _PREFIX.fullmatch(raw) or any(s in (".", "..") for s in raw.split("/")):
        return ""
    return raw
