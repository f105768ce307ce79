"""What both front doors (the gateway Lambda and the stream Lambda) share: their settings
and the internal credential they present to the worker."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from services.config import ConfigError, env_float, env_int, env_optional, env_str

DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FrontDoorSettings:
    table: str
    worker_url: str
    internal_token: str | None
    internal_token_secret_arn: str | None
    forward_timeout_seconds: float = 28.0
    sync_deadline_seconds: float = 25.0
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    key_cache_seconds: float = 5.0
    # The admin API's credential (gateway only; with neither, the admin API is off).
    admin_key: str | None = None
    admin_key_secret_arn: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FrontDoorSettings:
        settings = cls(
            table=env_str(env, "SWITCHBOARD_TABLE"),
            worker_url=env_str(env, "SWITCHBOARD_WORKER_URL").rstrip("/"),
            internal_token=env_optional(env, "SWITCHBOARD_INTERNAL_TOKEN"),
            internal_token_secret_arn=env_optional(env, "SWITCHBOARD_INTERNAL_TOKEN_SECRET_ARN"),
            forward_timeout_seconds=env_float(
                env, "SWITCHBOARD_FORWARD_TIMEOUT_SECONDS", 28.0, minimum=0.1
            ),
            sync_deadline_seconds=env_float(
                env, "SWITCHBOARD_SYNC_DEADLINE_SECONDS", 25.0, minimum=0.05
            ),
            max_request_bytes=env_int(
                env, "SWITCHBOARD_MAX_REQUEST_BYTES", DEFAULT_MAX_REQUEST_BYTES, minimum=1024
            ),
            key_cache_seconds=env_float(env, "SWITCHBOARD_KEY_CACHE_SECONDS", 5.0),
            admin_key=env_optional(env, "SWITCHBOARD_ADMIN_KEY"),
            admin_key_secret_arn=env_optional(env, "SWITCHBOARD_ADMIN_KEY_SECRET_ARN"),
        )
        if not settings.worker_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"SWITCHBOARD_WORKER_URL must be an http(s) URL, got {settings.worker_url!r}"
            )
        if settings.internal_token is None and settings.internal_token_secret_arn is None:
            raise ConfigError(
                "set SWITCHBOARD_INTERNAL_TOKEN or SWITCHBOARD_INTERNAL_TOKEN_SECRET_ARN: "
                "the front door needs the internal credential to call the worker"
            )
        return settings

    def resolve_internal_token(self, secrets_client: Callable[[], Any]) -> str:
        """The internal credential: from the environment, or read once from Secrets Manager."""
        if self.internal_token is not None:
            return self.internal_token
        response = secrets_client().get_secret_value(SecretId=self.internal_token_secret_arn)
        return str(response["SecretString"])
