"""The worker's settings, parsed once from the environment at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from services.config import env_float, env_int, env_optional, env_str

DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    table: str
    internal_token: str | None
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    key_cache_seconds: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        env = os.environ if env is None else env
        return cls(
            table=env_str(env, "SWITCHBOARD_TABLE"),
            internal_token=env_optional(env, "SWITCHBOARD_INTERNAL_TOKEN"),
            max_request_bytes=env_int(
                env, "SWITCHBOARD_MAX_REQUEST_BYTES", DEFAULT_MAX_REQUEST_BYTES, minimum=1024
            ),
            key_cache_seconds=env_float(env, "SWITCHBOARD_KEY_CACHE_SECONDS", 10.0),
        )
