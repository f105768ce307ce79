"""The typed, validated configuration of one deployment stage.

Stacks read nothing else: ``app.py`` turns CDK context into a ``StageConfig`` and every
construct takes its values from it, so a synth is a pure function of this object.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass

PYTHON_VERSIONS = ("3.11", "3.12", "3.13")

# Fargate task sizes (CPU units -> allowed memory in MiB).
FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
    8192: tuple(range(16384, 61441, 4096)),
    16384: tuple(range(32768, 122881, 8192)),
}

# The values CloudWatch Logs accepts for a log group's retention.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip

_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
_CERTIFICATE_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[A-Za-z0-9-]+$")
_DOMAIN_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")

LAMBDA_MAX_TIMEOUT_SECONDS = 900
ALB_MAX_IDLE_TIMEOUT_SECONDS = 4000
# A synchronous Lambda invocation carries at most 6 MB, headers and base64 included.
MAX_REQUEST_BYTES_LIMIT = 6 * 1024 * 1024
# Where the offline simulator may answer (SWITCHBOARD_SIMULATOR; services.models.catalogue).
SIMULATOR_MODES = ("off", "on", "fallback")


class StageConfigError(ValueError):
    """A stage configuration value is out of range or inconsistent with another."""


@dataclass(frozen=True, kw_only=True)
class StageConfig:
    """Everything that differs between two deployments of Switchboard.

    Defaults are a sensible production shape; ``dev`` differs only by its name unless
    context overrides a value. Construction fails with a ``StageConfigError`` naming the
    field and the accepted range, so a typo in ``cdk.json`` stops the synth, not a deploy.
    """

    name: str = "dev"
    python_version: str = "3.12"

    worker_cpu: int = 1024
    worker_memory_mib: int = 2048
    worker_desired_count: int = 2
    worker_min_count: int = 1
    worker_max_count: int = 10
    worker_cpu_target_percent: int = 60
    nat_gateways: int = 1

    api_integration_timeout_seconds: int = 29
    # Past this, a synchronous call is answered 202 with a run instead of waiting on.
    sync_deadline_seconds: float = 25.0
    gateway_memory_mib: int = 512
    stream_memory_mib: int = 512
    lwa_layer_version: int = 25
    tracing: bool = True

    log_retention_days: int = 30
    alb_idle_timeout_seconds: int = 300
    certificate_arn: str | None = None
    worker_domain_name: str | None = None

    max_request_bytes: int = 4 * 1024 * 1024
    # How long a front door or worker may keep accepting a revoked key.
    key_cache_seconds: int = 5
    conversation_retention_days: int = 30
    # The worker's SWITCHBOARD_SIMULATOR: off unless a stage explicitly enables it.
    simulator: str = "off"

    retain_data: bool = True
    termination_protection: bool = True

    def __post_init__(self) -> None:
        self._check_types()
        errors = list(self._problems())
        if errors:
            raise StageConfigError(f"invalid stage config {self.name!r}: " + "; ".join(errors))

    @property
    def lambda_timeout_seconds(self) -> int:
        """The gateway Lambda outlives the API Gateway integration by one second, no more."""
        return self.api_integration_timeout_seconds + 1

    @property
    def gateway_forward_timeout_seconds(self) -> int:
        """The gateway never waits on the worker longer than API Gateway waits on it."""
        return self.api_integration_timeout_seconds - 1

    @property
    def worker_scheme(self) -> str:
        return "https" if self.certificate_arn else "http"

    @classmethod
    def from_context(cls, name: str, values: Mapping[str, object]) -> StageConfig:
        """Build a config from CDK context values, which arrive as strings on the CLI.

        Unknown keys are an error, so a misspelt override cannot be silently ignored.
        """
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise StageConfigError(
                f"unknown stage config key(s): {', '.join(unknown)}; known: {', '.join(known)}"
            )
        hints = typing.get_type_hints(cls)
        kwargs = {key: _coerce(key, hints[key], value) for key, value in values.items()}
        kwargs["name"] = name
        return cls(**kwargs)  # type: ignore[arg-type]

    def _check_types(self) -> None:
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            expected = _allowed_types(hints[field.name])
            # bool is an int subclass; an int field must not accept True.
            if isinstance(value, bool) and bool not in expected:
                ok = False
            else:
                ok = isinstance(value, expected)
            if not ok:
                names = " or ".join(t.__name__ for t in expected)
                raise StageConfigError(
                    f"{field.name} must be {names}, got {type(value).__name__} {value!r}"
                )

    def _problems(self) -> typing.Iterator[str]:
        if not _STAGE_NAME.match(self.name):
            yield (
                f"name {self.name!r} must be 1-20 characters of a-z, 0-9 and '-', "
                "starting with a letter"
            )
        if self.python_version not in PYTHON_VERSIONS:
            yield f"python_version {self.python_version!r} must be one of {PYTHON_VERSIONS}"

        memory = FARGATE_SIZES.get(self.worker_cpu)
        if memory is None:
            yield f"worker_cpu {self.worker_cpu} must be one of {tuple(FARGATE_SIZES)}"
        elif self.worker_memory_mib not in memory:
            yield (
                f"worker_memory_mib {self.worker_memory_mib} is not valid with worker_cpu "
                f"{self.worker_cpu}; use {memory[0]}-{memory[-1]} in steps of "
                f"{memory[1] - memory[0] if len(memory) > 1 else memory[0]}"
            )
        if self.worker_min_count < 1:
            yield f"worker_min_count {self.worker_min_count} must be at least 1"
        if self.worker_max_count < self.worker_min_count:
            yield (
                f"worker_max_count {self.worker_max_count} must be >= worker_min_count "
                f"{self.worker_min_count}"
            )
        if not self.worker_min_count <= self.worker_desired_count <= self.worker_max_count:
            yield (
                f"worker_desired_count {self.worker_desired_count} must be between "
                f"worker_min_count {self.worker_min_count} and worker_max_count "
                f"{self.worker_max_count}"
            )
        if not 10 <= self.worker_cpu_target_percent <= 90:
            yield f"worker_cpu_target_percent {self.worker_cpu_target_percent} must be 10-90"
        if not 0 <= self.nat_gateways <= 2:
            yield f"nat_gateways {self.nat_gateways} must be 0, 1 or 2 (the VPC has 2 AZs)"

        if not 1 <= self.api_integration_timeout_seconds < LAMBDA_MAX_TIMEOUT_SECONDS:
            yield (
                f"api_integration_timeout_seconds {self.api_integration_timeout_seconds} "
                f"must be 1-{LAMBDA_MAX_TIMEOUT_SECONDS - 1} (above 29 needs a quota increase)"
            )
        if not 0 < self.sync_deadline_seconds <= self.api_integration_timeout_seconds - 2:
            yield (
                f"sync_deadline_seconds {self.sync_deadline_seconds} must be > 0 and at least "
                f"2 s below api_integration_timeout_seconds "
                f"{self.api_integration_timeout_seconds}, or the gateway cannot answer a 202 "
                "before API Gateway answers a 504"
            )
        for field in ("gateway_memory_mib", "stream_memory_mib"):
            value = getattr(self, field)
            if not 128 <= value <= 10240:
                yield f"{field} {value} must be 128-10240"
        if self.lwa_layer_version < 1:
            yield f"lwa_layer_version {self.lwa_layer_version} must be a positive integer"

        if self.log_retention_days not in LOG_RETENTION_DAYS:
            yield (
                f"log_retention_days {self.log_retention_days} must be one of {LOG_RETENTION_DAYS}"
            )
        if not 1 <= self.alb_idle_timeout_seconds <= ALB_MAX_IDLE_TIMEOUT_SECONDS:
            yield (
                f"alb_idle_timeout_seconds {self.alb_idle_timeout_seconds} must be "
                f"1-{ALB_MAX_IDLE_TIMEOUT_SECONDS}"
            )
        if self.certificate_arn is not None and not _CERTIFICATE_ARN.match(self.certificate_arn):
            yield (
                f"certificate_arn {self.certificate_arn!r} must look like "
                "arn:aws:acm:<region>:<account>:certificate/<id>"
            )
        if self.worker_domain_name is not None and not _DOMAIN_NAME.match(self.worker_domain_name):
            yield f"worker_domain_name {self.worker_domain_name!r} is not a lower-case DNS name"
        if self.certificate_arn and not self.worker_domain_name:
            yield (
                "certificate_arn needs worker_domain_name: TLS to the load balancer's own "
                "DNS name would fail certificate verification"
            )
        if self.worker_domain_name and not self.certificate_arn:
            yield "worker_domain_name needs certificate_arn (it is only used for HTTPS)"

        if not 1024 <= self.max_request_bytes <= MAX_REQUEST_BYTES_LIMIT:
            yield (
                f"max_request_bytes {self.max_request_bytes} must be 1024-"
                f"{MAX_REQUEST_BYTES_LIMIT} (the Lambda synchronous payload limit)"
            )
        if not 0 <= self.key_cache_seconds <= 3600:
            yield f"key_cache_seconds {self.key_cache_seconds} must be 0-3600"
        if not 1 <= self.conversation_retention_days <= 3650:
            yield f"conversation_retention_days {self.conversation_retention_days} must be 1-3650"
        if self.simulator not in SIMULATOR_MODES:
            yield f"simulator {self.simulator!r} must be one of {SIMULATOR_MODES}"


def _allowed_types(hint: object) -> tuple[type, ...]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(t for arg in typing.get_args(hint) for t in _allowed_types(arg))
    if hint is float:
        return (float, int)
    assert isinstance(hint, type)
    return (hint,)


def _coerce(key: str, hint: object, value: object) -> object:
    if not isinstance(value, str):
        return value
    allowed = _allowed_types(hint)
    if type(None) in allowed and value.strip().lower() in ("", "none", "null"):
        return None
    try:
        if bool in allowed:
            lowered = value.strip().lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
            raise ValueError(value)
        if int in allowed and float not in allowed:
            return int(value)
        if float in allowed:
            return float(value)
    except ValueError:
        names = " or ".join(t.__name__ for t in allowed if t is not type(None))
        raise StageConfigError(f"{key} must be {names}, got {value!r}") from None
    return value
