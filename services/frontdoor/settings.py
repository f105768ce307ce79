"""What both front doors (the gateway Lambda and the stream Lambda) share: their settings.

Neither holds a credential of its own for the worker: a door authenticates the caller's
API key, and whatever reaches the worker carries that same key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.config import ConfigError, env_float, env_int, env_optional, env_str

DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FrontDoorSettings:
    table: str
    # Where the stream front door relays AI work; the gateway Lambda never calls the worker.
    worker_url: str | None = None
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    key_cache_seconds: float = 5.0
    # The admin API's credential (gateway only; with neither, the admin API is off).
    admin_key: str | None = None
    admin_key_secret_arn: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FrontDoorSettings:
        worker_url = env_optional(env, "SWITCHBOARD_WORKER_URL")
        settings = cls(
            table=env_str(env, "SWITCHBOARD_TABLE"),
            worker_url=worker_url.rstrip("/") if worker_url else None,
            max_request_bytes=env_int(
                env, "SWITCHBOARD_MAX_REQUEST_BYTES", DEFAULT_MAX_REQUEST_BYTES, minimum=1024
            ),
            key_cache_seconds=env_float(env, "SWITCHBOARD_KEY_CACHE_SECONDS", 5.0),
            admin_key=env_optional(env, "SWITCHBOARD_ADMIN_KEY"),
            admin_key_secret_arn=env_optional(env, "SWITCHBOARD_ADMIN_KEY_SECRET_ARN"),
        )
        if settings.worker_url is not None and not settings.worker_url.startswith(
            ("http://", "https://")
        ):
            raise ConfigError(
                f"SWITCHBOARD_WORKER_URL must be an http(s) URL, got {settings.worker_url!r}"
            )
        return settings
