"""StageConfig validation: bad values fail at construction with a message naming the field."""

from __future__ import annotations

import dataclasses
import re

import pytest

from infra.config import LOG_RETENTION_DAYS, SIMULATOR_MODES, StageConfig, StageConfigError
from infra.constructs.logs import RETENTION


def test_defaults_are_valid_and_match_the_runtime_contract() -> None:
    config = StageConfig()
    assert config.name == "dev"
    assert config.python_version == "3.11"
    assert config.api_integration_timeout_seconds == 29
    assert config.worker_integration_timeout_seconds == 900
    assert config.sync_deadline_seconds == 240
    assert config.alb_idle_timeout_seconds == 300
    assert config.worker_stop_timeout_seconds == 120
    assert config.deregistration_delay_seconds == 250
    assert config.alb_internet_facing is False
    assert config.lambda_timeout_seconds == 30
    assert config.max_request_bytes == 4 * 1024 * 1024
    assert config.key_cache_seconds == 5
    assert config.lwa_layer_version == 25
    assert config.nat_gateways == 0
    assert config.worker_scheme == "http"


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        StageConfig().name = "prod"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "Prod"}, "name 'Prod'"),
        ({"name": "a-very-long-stage-name-indeed"}, "1-20 characters"),
        ({"python_version": "3.9"}, "python_version '3.9'"),
        ({"worker_cpu": 300}, "worker_cpu 300"),
        ({"worker_cpu": 256, "worker_memory_mib": 4096}, "worker_memory_mib 4096"),
        ({"worker_min_count": 0}, "worker_min_count 0"),
        ({"worker_max_count": 1, "worker_min_count": 2}, "worker_max_count 1"),
        ({"worker_stop_timeout_seconds": 121}, "worker_stop_timeout_seconds 121"),
        ({"worker_requests_per_target_per_minute": 1}, "worker_requests_per_target_per_minute 1"),
        ({"worker_integration_timeout_seconds": 901}, "worker_integration_timeout_seconds 901"),
        ({"nat_gateways": 3}, "nat_gateways 3"),
        ({"api_integration_timeout_seconds": 0}, "api_integration_timeout_seconds 0"),
        ({"sync_deadline_seconds": 300}, "sync_deadline_seconds 300 must be > 0 and below 300"),
        ({"alb_idle_timeout_seconds": 200}, "sync_deadline_seconds 240.0 must be > 0 and below 200"),
        ({"deregistration_delay_seconds": 60}, "deregistration_delay_seconds 60 must be at least"),
        ({"gateway_memory_mib": 64}, "gateway_memory_mib 64"),
        ({"lwa_layer_version": 0}, "lwa_layer_version 0"),
        ({"log_retention_days": 31}, "log_retention_days 31"),
        ({"alb_idle_timeout_seconds": 5000}, "alb_idle_timeout_seconds 5000"),
        ({"certificate_arn": "not-an-arn", "worker_domain_name": "w.example.com"},
         "certificate_arn 'not-an-arn'"),
        ({"certificate_arn": "arn:aws:acm:eu-west-1:123456789012:certificate/abc"},
         "needs worker_domain_name"),
        ({"worker_domain_name": "w.example.com"}, "needs certificate_arn"),
        ({"max_request_bytes": 7 * 1024 * 1024}, "max_request_bytes"),
        ({"key_cache_seconds": -1}, "key_cache_seconds -1"),
        ({"conversation_retention_days": 0}, "conversation_retention_days 0 must be 1-3650"),
        ({"worker_cpu": "1024"}, "worker_cpu must be int, got str"),
        ({"tracing": 1}, "tracing must be bool"),
        ({"nat_gateways": True}, "nat_gateways must be int, got bool"),
        ({"alarm_email": "not-an-address"}, "alarm_email 'not-an-address'"),
        ({"bedrock_model_families": "*"}, "bedrock_model_families '*'"),
        ({"bedrock_model_families": ""}, "bedrock_model_families ''"),
        ({"waf_requests_per_ip_per_5_minutes": 5}, "waf_requests_per_ip_per_5_minutes 5"),
        ({"api_throttle_rate_limit": 0}, "api_throttle_rate_limit 0"),
    ],
)  # fmt: skip
def test_bad_values_raise_a_clear_error(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(StageConfigError, match=re.escape(message)):
        StageConfig(**overrides)  # type: ignore[arg-type]


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(StageConfigError) as raised:
        StageConfig(nat_gateways=5, key_cache_seconds=-1)
    assert "nat_gateways 5" in str(raised.value)
    assert "key_cache_seconds -1" in str(raised.value)


def test_from_context_coerces_cli_strings() -> None:
    config = StageConfig.from_context(
        "prod",
        {
            "nat_gateways": "2",
            "sync_deadline_seconds": "200.5",
            "termination_protection": "false",
            "certificate_arn": "arn:aws:acm:us-east-1:123456789012:certificate/abc-123",
            "worker_domain_name": "worker.example.com",
            "alb_idle_timeout_seconds": 600,
        },
    )
    assert config.name == "prod"
    assert config.nat_gateways == 2
    assert config.sync_deadline_seconds == 200.5
    assert config.termination_protection is False
    assert config.alb_idle_timeout_seconds == 600
    assert config.worker_scheme == "https"


def test_from_context_rejects_unknown_and_malformed_values() -> None:
    with pytest.raises(StageConfigError, match=r"unknown stage config key.*nat_gateway\b"):
        StageConfig.from_context("dev", {"nat_gateway": "1"})
    with pytest.raises(StageConfigError, match="nat_gateways must be int, got 'one'"):
        StageConfig.from_context("dev", {"nat_gateways": "one"})
    with pytest.raises(StageConfigError, match="retain_data must be bool"):
        StageConfig.from_context("dev", {"retain_data": "maybe"})


def test_every_accepted_retention_maps_to_a_cdk_value() -> None:
    assert set(RETENTION) == set(LOG_RETENTION_DAYS)


def test_the_simulator_setting_is_checked_and_matches_the_worker() -> None:
    from services.models.catalogue import SIMULATOR_MODES as WORKER_MODES

    assert StageConfig().simulator == "off"
    assert SIMULATOR_MODES == WORKER_MODES
    assert StageConfig.from_context("demo", {"simulator": "fallback"}).simulator == "fallback"
    with pytest.raises(StageConfigError, match="simulator 'maybe'"):
        StageConfig(simulator="maybe")


@pytest.mark.parametrize("name", ["prod", "staging", "qa"])
def test_plain_http_from_the_internet_refuses_outside_dev(name: str) -> None:
    with pytest.raises(StageConfigError) as raised:
        StageConfig(name=name, alb_internet_facing=True)
    message = str(raised.value)
    assert "plain HTTP" in message and "internet" in message and "certificate_arn" in message


@pytest.mark.parametrize("name", ["dev", "dev-alice"])
def test_plain_http_from_the_internet_is_allowed_in_dev(name: str) -> None:
    config = StageConfig(name=name, alb_internet_facing=True)
    assert config.plain_http_over_internet is True


def test_an_internet_facing_balancer_with_a_certificate_is_accepted() -> None:
    config = StageConfig(
        name="prod",
        alb_internet_facing=True,
        certificate_arn="arn:aws:acm:us-east-1:123456789012:certificate/abc-123",
        worker_domain_name="worker.example.com",
    )
    assert config.plain_http_over_internet is False


@pytest.mark.parametrize(
    ("name", "retains", "protected"), [("dev", False, False), ("dev-bob", False, False),
                                       ("prod", True, True), ("staging", True, True)]
)  # fmt: skip
def test_dev_stages_are_destroyable_and_others_keep_their_data(
    name: str, retains: bool, protected: bool
) -> None:
    config = StageConfig(name=name)
    assert (config.retains_data, config.protected) == (retains, protected)
    forced = StageConfig(name=name, retain_data=True, termination_protection=True)
    assert (forced.retains_data, forced.protected) == (True, True)
