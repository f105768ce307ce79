"""The worker's settings, parsed once from the environment at start-up."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.config import ConfigError, env_float, env_int, env_optional, env_str
from services.models.catalogue import DEFAULT_CONFIG, SIMULATOR_MODES

DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024
# API Gateway (REST, streamed integration) cuts a response that sends nothing for 5 minutes
# on a regional endpoint, and a non-streamed answer sends nothing until it is whole.
API_IDLE_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    table: str
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    key_cache_seconds: float = 5.0
    limits_cache_seconds: float = 5.0
    catalogue_path: Path = DEFAULT_CONFIG
    # Durable runs: without a queue, the runs API answers 503.
    run_queue_url: str | None = None
    run_dlq_url: str | None = None
    worker_id: str = "worker"
    advertise_url: str | None = None
    run_lease_seconds: float = 30.0
    run_heartbeat_seconds: float = 10.0
    run_watchdog_seconds: float = 60.0
    run_max_attempts: int = 3
    run_poll_seconds: float = 0.5
    run_retention_days: int = 30
    # A non-streamed answer on a `sync` route comes within this, or the work goes on as a
    # run (services/runs/sync.py). Below API Gateway's 5-minute idle timeout.
    sync_deadline_seconds: float = 240.0
    # A stream that has sent nothing for this long sends an SSE comment.
    heartbeat_seconds: float = 15.0
    # ECS task scale-in protection while streams are open (only with ECS_AGENT_URI).
    task_protection_minutes: int = 10
    # Allocations between two young-generation collections (Python's default is 700):
    # each request allocates a few hundred objects, and collecting every couple of
    # requests cost ~6% of the worker's CPU in the benchmark.
    gc_threshold: int = 20_000
    # Where the simulator may answer (services.models.catalogue): `fallback` by default,
    # for `make dev`; the deployed worker stack sets `off` unless its stage enables it.
    simulator: str = "fallback"
    # How often the worker writes its metrics (EMF lines on stdout): counted in memory
    # between two writes, and written at shutdown too.
    metrics_interval_seconds: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        env = os.environ if env is None else env
        settings = cls(
            table=env_str(env, "SWITCHBOARD_TABLE"),
            max_request_bytes=env_int(
                env, "SWITCHBOARD_MAX_REQUEST_BYTES", DEFAULT_MAX_REQUEST_BYTES, minimum=1024
            ),
            key_cache_seconds=env_float(env, "SWITCHBOARD_KEY_CACHE_SECONDS", 5.0),
            limits_cache_seconds=env_float(env, "SWITCHBOARD_LIMITS_CACHE_SECONDS", 5.0),
            catalogue_path=Path(env_str(env, "SWITCHBOARD_CATALOGUE", str(DEFAULT_CONFIG))),
            run_queue_url=env_optional(env, "SWITCHBOARD_RUN_QUEUE_URL"),
            run_dlq_url=env_optional(env, "SWITCHBOARD_RUN_DLQ_URL"),
            worker_id=env_str(
                env, "SWITCHBOARD_WORKER_ID", f"{socket.gethostname()}-{os.getpid()}"
            ),
            advertise_url=env_optional(env, "SWITCHBOARD_ADVERTISE_URL"),
            run_lease_seconds=env_float(env, "SWITCHBOARD_RUN_LEASE_SECONDS", 30.0, minimum=1.0),
            run_heartbeat_seconds=env_float(
                env, "SWITCHBOARD_RUN_HEARTBEAT_SECONDS", 10.0, minimum=0.1
            ),
            run_watchdog_seconds=env_float(
                env, "SWITCHBOARD_RUN_WATCHDOG_SECONDS", 60.0, minimum=1.0
            ),
            run_max_attempts=env_int(env, "SWITCHBOARD_RUN_MAX_ATTEMPTS", 3, minimum=1),
            run_poll_seconds=env_float(env, "SWITCHBOARD_RUN_POLL_SECONDS", 0.5, minimum=0.05),
            run_retention_days=env_int(env, "SWITCHBOARD_RUN_RETENTION_DAYS", 30, minimum=1),
            sync_deadline_seconds=env_float(
                env, "SWITCHBOARD_SYNC_DEADLINE_SECONDS", 240.0, minimum=0.05
            ),
            heartbeat_seconds=env_float(
                env, "SWITCHBOARD_STREAM_HEARTBEAT_SECONDS", 15.0, minimum=0.01
            ),
            task_protection_minutes=env_int(
                env, "SWITCHBOARD_TASK_PROTECTION_MINUTES", 10, minimum=1
            ),
            gc_threshold=env_int(env, "SWITCHBOARD_GC_THRESHOLD", 20_000, minimum=1),
            simulator=env_str(env, "SWITCHBOARD_SIMULATOR", "fallback").strip().lower(),
            metrics_interval_seconds=env_float(
                env, "SWITCHBOARD_METRICS_INTERVAL_SECONDS", 10.0, minimum=0.1
            ),
        )
        if settings.simulator not in SIMULATOR_MODES:
            raise ConfigError(
                f"SWITCHBOARD_SIMULATOR must be one of {', '.join(SIMULATOR_MODES)}, "
                f"got {settings.simulator!r}"
            )
        if settings.run_heartbeat_seconds * 2 > settings.run_lease_seconds:
            raise ConfigError(
                "SWITCHBOARD_RUN_HEARTBEAT_SECONDS must be at most half of "
                "SWITCHBOARD_RUN_LEASE_SECONDS, or a live owner's lease could lapse"
            )
        if settings.sync_deadline_seconds >= API_IDLE_SECONDS:
            raise ConfigError(
                "SWITCHBOARD_SYNC_DEADLINE_SECONDS must be below 300: API Gateway cuts a "
                "response that sends nothing for 5 minutes, and a non-streamed answer sends "
                "nothing until it is whole"
            )
        if settings.heartbeat_seconds > 15.0:
            raise ConfigError(
                "SWITCHBOARD_STREAM_HEARTBEAT_SECONDS must be at most 15: idle streams are "
                "cut by load balancers and API Gateway"
            )
        if not 1 <= settings.task_protection_minutes <= 2880:
            raise ConfigError(
                "SWITCHBOARD_TASK_PROTECTION_MINUTES must be 1 to 2880 (what ECS accepts)"
            )
        if bool(settings.run_queue_url) != bool(settings.run_dlq_url):
            raise ConfigError(
                "set both SWITCHBOARD_RUN_QUEUE_URL and SWITCHBOARD_RUN_DLQ_URL, or neither"
            )
        return settings
