"""The stream front door's settings, parsed from the environment once at start-up."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from services.config import ConfigError, env_float, env_int, env_str
from services.documents.store import DocumentSettings
from services.frontdoor.settings import DEFAULT_MAX_REQUEST_BYTES

UPSTREAM_VARIABLE = "SWITCHBOARD_UPSTREAM_URL"


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """`upstream_url` is where WORKER routes are relayed: in AWS the REST API's invoke URL
    with its stage (`https://<id>.execute-api.<region>.amazonaws.com/api`), locally the
    API Gateway emulator or the worker's load balancer."""

    table: str
    upstream_url: str
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_document_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    key_cache_seconds: float = 5.0
    connect_timeout_seconds: float = 5.0
    # Nothing comes later through API Gateway (5 min idle on a regional REST API); the
    # worker bounds a non-streamed answer with its own, shorter sync deadline.
    first_byte_timeout_seconds: float = 300.0
    # A stream sends a heartbeat at least every 15 s; a silent one is cut after this.
    idle_timeout_seconds: float = 300.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StreamSettings:
        upstream = env_str(env, UPSTREAM_VARIABLE).rstrip("/")
        check_upstream(upstream)
        return cls(
            table=env_str(env, "SWITCHBOARD_TABLE"),
            upstream_url=upstream,
            max_request_bytes=env_int(
                env, "SWITCHBOARD_MAX_REQUEST_BYTES", DEFAULT_MAX_REQUEST_BYTES, minimum=1024
            ),
            max_document_bytes=DocumentSettings.from_env(env).max_body_bytes,
            key_cache_seconds=env_float(env, "SWITCHBOARD_KEY_CACHE_SECONDS", 5.0),
            connect_timeout_seconds=env_float(
                env, "SWITCHBOARD_UPSTREAM_CONNECT_TIMEOUT_SECONDS", 5.0, minimum=0.01
            ),
            first_byte_timeout_seconds=env_float(
                env, "SWITCHBOARD_UPSTREAM_FIRST_BYTE_TIMEOUT_SECONDS", 300.0, minimum=0.01
            ),
            idle_timeout_seconds=env_float(
                env, "SWITCHBOARD_UPSTREAM_IDLE_TIMEOUT_SECONDS", 300.0, minimum=0.01
            ),
        )


def check_upstream(url: str) -> None:
    """Refuse an upstream the door cannot or must not relay to: the client's own API key
    goes with every request, so plain http is allowed to a loopback address only."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{UPSTREAM_VARIABLE} must be an http(s) URL, got {url!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(
            f"{UPSTREAM_VARIABLE} must be a plain base URL (no query, fragment or user), "
            f"got {url!r}"
        )
    if parts.path.rstrip("/").endswith("/v1"):
        raise ConfigError(
            f"{UPSTREAM_VARIABLE} is the API's base URL with its stage (e.g. "
            f"https://<id>.execute-api.<region>.amazonaws.com/api), without /v1: the door "
            f"relays /v1/... paths as they come, got {url!r}"
        )
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ConfigError(
            f"{UPSTREAM_VARIABLE} is plain http to {parts.hostname}, which is not a loopback "
            f"address: every relayed request carries the client's API key, which would cross "
            f"the network unencrypted. Use https:// (the REST API's invoke URL), or "
            f"127.0.0.1 for a local upstream."
        )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
