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
# The Lambda Python is the build machine's: a bundle's bytecode is compiled by the
# interpreter that builds it, and .pyc files only load on the version that wrote them.
DEFAULT_LAMBDA_PYTHON = "3.11"

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
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_MODEL_FAMILY = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
_DOMAIN_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")

LAMBDA_MAX_TIMEOUT_SECONDS = 900
ALB_MAX_IDLE_TIMEOUT_SECONDS = 4000
# API Gateway REST response streaming (STREAM transfer mode): a response may last 15 min,
# and a regional endpoint cuts a stream idle for 5 min -- before the first byte as well.
STREAM_MAX_SECONDS = 900
STREAM_IDLE_SECONDS = 300
# Fargate allows a container up to 120 s between SIGTERM and SIGKILL.
FARGATE_MAX_STOP_TIMEOUT_SECONDS = 120
ALB_MAX_DEREGISTRATION_DELAY_SECONDS = 3600
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
    python_version: str = DEFAULT_LAMBDA_PYTHON

    worker_cpu: int = 1024
    worker_memory_mib: int = 2048
    worker_min_count: int = 1
    worker_max_count: int = 10
    worker_cpu_target_percent: int = 60
    # Scale-out when the load balancer sends a task more requests than this per minute.
    worker_requests_per_target_per_minute: int = 3000
    worker_stop_timeout_seconds: int = FARGATE_MAX_STOP_TIMEOUT_SECONDS
    # No NAT by default: tasks get public addresses and an egress-only security group.
    nat_gateways: int = 0

    # CONTROL routes: API Gateway to the gateway Lambda (Lambda proxy, buffered).
    api_integration_timeout_seconds: int = 29
    # WORKER routes: API Gateway to the worker's load balancer, streamed.
    worker_integration_timeout_seconds: int = STREAM_MAX_SECONDS
    # The worker's bound on a non-streamed call; past it the caller gets a 202 with a run
    # (Prefer: respond-async) or an error naming the run. Below API Gateway's 5 min idle cut.
    sync_deadline_seconds: float = 240.0
    # By measurement (`make bench`, bench/cold_import.py): a Lambda's CPU share grows with
    # its memory (one vCPU at 1,769 MB), and these keep each door's measured cold import
    # under 150 ms (measured: gateway 118 ms, stream 121 ms, authorizer 79 ms of CPU).
    authorizer_memory_mib: int = 1024
    gateway_memory_mib: int = 1792
    stream_memory_mib: int = 1792
    lwa_layer_version: int = 25
    tracing: bool = True

    log_retention_days: int = 30
    alb_idle_timeout_seconds: int = 300
    # How long the load balancer lets a deregistered task finish its in-flight requests.
    deregistration_delay_seconds: int = 250
    # An internal load balancer is reached only through the VPC link; internet-facing is
    # for debugging a dev stage and needs a certificate anywhere else.
    alb_internet_facing: bool = False
    certificate_arn: str | None = None
    worker_domain_name: str | None = None

    max_request_bytes: int = 4 * 1024 * 1024
    # How long a front door or worker may keep accepting a revoked key.
    key_cache_seconds: int = 5
    conversation_retention_days: int = 30
    # The worker's SWITCHBOARD_SIMULATOR: off unless a stage explicitly enables it.
    simulator: str = "off"

    # None: decided by the stage. A dev stage is destroyable (data deleted with its stack,
    # no termination protection); every other stage keeps its data and is protected.
    retain_data: bool | None = None
    termination_protection: bool | None = None

    # Operations (issue 13).
    alarm_email: str | None = None  # subscribed to the alarm topic (confirm the email)
    alarm_api_5xx_percent: float = 1.0
    alarm_first_token_p99_ms: int = 15_000
    alarm_budget_refusals_per_5_minutes: int = 50
    alarm_oldest_run_message_seconds: int = 600
    api_throttle_rate_limit: int = 200  # requests per second, stage-wide
    api_throttle_burst_limit: int = 400
    # API Gateway writes access logs only with an account-level CloudWatch role. One per
    # account and region: set false where another stack already manages it.
    manage_apigw_account_role: bool = True
    waf: bool = False  # AWS managed common rules and a per-IP rate rule on the API stage
    waf_requests_per_ip_per_5_minutes: int = 2000
    # Bedrock model-id prefixes the worker may invoke (comma-separated), e.g. "anthropic".
    bedrock_model_families: str = "anthropic,amazon.nova"

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
    def worker_scheme(self) -> str:
        return "https" if self.certificate_arn else "http"

    @property
    def retains_data(self) -> bool:
        return (not self.is_dev) if self.retain_data is None else self.retain_data

    @property
    def protected(self) -> bool:
        if self.termination_protection is None:
            return not self.is_dev
        return self.termination_protection

    @property
    def bedrock_families(self) -> tuple[str, ...]:
        return tuple(f.strip() for f in self.bedrock_model_families.split(",") if f.strip())

    @property
    def is_dev(self) -> bool:
        """A developer's own stage: ``dev`` or ``dev-<something>``."""
        return self.name == "dev" or self.name.startswith("dev-")

    @property
    def plain_http_over_internet(self) -> bool:
        """Keys would cross the internet without TLS: an internet-facing load balancer
        listening on plain HTTP."""
        return self.alb_internet_facing and not self.certificate_arn

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
        if not 10 <= self.worker_cpu_target_percent <= 90:
            yield f"worker_cpu_target_percent {self.worker_cpu_target_percent} must be 10-90"
        if not 10 <= self.worker_requests_per_target_per_minute <= 1_000_000:
            yield (
                f"worker_requests_per_target_per_minute "
                f"{self.worker_requests_per_target_per_minute} must be 10-1000000"
            )
        if not 2 <= self.worker_stop_timeout_seconds <= FARGATE_MAX_STOP_TIMEOUT_SECONDS:
            yield (
                f"worker_stop_timeout_seconds {self.worker_stop_timeout_seconds} must be "
                f"2-{FARGATE_MAX_STOP_TIMEOUT_SECONDS} (the Fargate maximum)"
            )
        if not 0 <= self.nat_gateways <= 2:
            yield f"nat_gateways {self.nat_gateways} must be 0, 1 or 2 (the VPC has 2 AZs)"

        if not 1 <= self.api_integration_timeout_seconds < LAMBDA_MAX_TIMEOUT_SECONDS:
            yield (
                f"api_integration_timeout_seconds {self.api_integration_timeout_seconds} "
                f"must be 1-{LAMBDA_MAX_TIMEOUT_SECONDS - 1} (above 29 needs a quota increase)"
            )
        if not 1 <= self.worker_integration_timeout_seconds <= STREAM_MAX_SECONDS:
            yield (
                f"worker_integration_timeout_seconds {self.worker_integration_timeout_seconds} "
                f"must be 1-{STREAM_MAX_SECONDS} (a streamed response lasts 15 min at most)"
            )
        first_byte_limit = min(
            STREAM_IDLE_SECONDS,
            self.alb_idle_timeout_seconds,
            self.worker_integration_timeout_seconds,
        )
        if not 0 < self.sync_deadline_seconds < first_byte_limit:
            yield (
                f"sync_deadline_seconds {self.sync_deadline_seconds} must be > 0 and below "
                f"{first_byte_limit} s: nothing flows before a non-streamed answer's first byte, "
                f"and API Gateway cuts a stream idle for {STREAM_IDLE_SECONDS} s, the load "
                f"balancer a connection idle for alb_idle_timeout_seconds "
                f"{self.alb_idle_timeout_seconds}"
            )
        for field in ("gateway_memory_mib", "stream_memory_mib", "authorizer_memory_mib"):
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
        if not 0 <= self.deregistration_delay_seconds <= ALB_MAX_DEREGISTRATION_DELAY_SECONDS:
            yield (
                f"deregistration_delay_seconds {self.deregistration_delay_seconds} must be "
                f"0-{ALB_MAX_DEREGISTRATION_DELAY_SECONDS}"
            )
        elif self.deregistration_delay_seconds < self.sync_deadline_seconds:
            yield (
                f"deregistration_delay_seconds {self.deregistration_delay_seconds} must be at "
                f"least sync_deadline_seconds {self.sync_deadline_seconds}, or a deploy cuts "
                "non-streamed calls in flight"
            )
        if self.plain_http_over_internet and not self.is_dev:
            yield (
                "alb_internet_facing without certificate_arn would send API keys, prompts and "
                "answers across the internet in plain HTTP; set certificate_arn and "
                "worker_domain_name, or keep the load balancer internal (the default: API "
                "Gateway reaches it through the VPC link). Only a dev stage may do this, with "
                "a warning"
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

        if self.alarm_email is not None and not _EMAIL.match(self.alarm_email):
            yield f"alarm_email {self.alarm_email!r} is not an email address"
        if not 0 < self.alarm_api_5xx_percent <= 100:
            yield f"alarm_api_5xx_percent {self.alarm_api_5xx_percent} must be > 0 and <= 100"
        for field in (
            "alarm_first_token_p99_ms",
            "alarm_budget_refusals_per_5_minutes",
            "alarm_oldest_run_message_seconds",
            "api_throttle_rate_limit",
            "api_throttle_burst_limit",
        ):
            if getattr(self, field) < 1:
                yield f"{field} {getattr(self, field)} must be at least 1"
        if not 10 <= self.waf_requests_per_ip_per_5_minutes <= 2_000_000_000:
            yield (
                f"waf_requests_per_ip_per_5_minutes {self.waf_requests_per_ip_per_5_minutes} "
                "must be 10-2000000000 (the WAF rate-based rule's range)"
            )
        families = self.bedrock_families
        if not families or not all(_MODEL_FAMILY.match(f) for f in families):
            yield (
                f"bedrock_model_families {self.bedrock_model_families!r} must be comma-separated "
                "model-id prefixes such as 'anthropic,amazon.nova' (no wildcards)"
            )
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
