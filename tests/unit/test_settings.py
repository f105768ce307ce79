from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from containers.worker.settings import WorkerSettings
from services.config import ConfigError
from services.frontdoor.settings import FrontDoorSettings

FRONT = {
    "SWITCHBOARD_TABLE": "t",
    "SWITCHBOARD_WORKER_URL": "http://worker.internal/",
    "SWITCHBOARD_INTERNAL_TOKEN": "tok",
}


def test_front_door_settings() -> None:
    settings = FrontDoorSettings.from_env({**FRONT, "SWITCHBOARD_FORWARD_TIMEOUT_SECONDS": "25"})
    assert settings.worker_url == "http://worker.internal"
    assert settings.forward_timeout_seconds == 25.0
    assert settings.max_request_bytes == 4 * 1024 * 1024


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {k: v for k, v in FRONT.items() if k != "SWITCHBOARD_TABLE"},
            "SWITCHBOARD_TABLE is required",
        ),
        ({**FRONT, "SWITCHBOARD_WORKER_URL": "worker:8000"}, "must be an http"),
        ({**FRONT, "SWITCHBOARD_INTERNAL_TOKEN": ""}, "SWITCHBOARD_INTERNAL_TOKEN_SECRET_ARN"),
        ({**FRONT, "SWITCHBOARD_FORWARD_TIMEOUT_SECONDS": "soon"}, "must be a number"),
        ({**FRONT, "SWITCHBOARD_MAX_REQUEST_BYTES": "10"}, "must be >= 1024"),
    ],
)
def test_front_door_settings_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FrontDoorSettings.from_env(env)


def test_internal_token_from_secrets_manager() -> None:
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        arn = client.create_secret(Name="internal", SecretString="from-the-vault")["ARN"]
        env = {
            **FRONT,
            "SWITCHBOARD_INTERNAL_TOKEN": "",
            "SWITCHBOARD_INTERNAL_TOKEN_SECRET_ARN": arn,
        }
        settings = FrontDoorSettings.from_env(env)
        assert settings.resolve_internal_token(lambda: client) == "from-the-vault"


def test_worker_settings() -> None:
    settings = WorkerSettings.from_env(
        {"SWITCHBOARD_TABLE": "t", "SWITCHBOARD_KEY_CACHE_SECONDS": "2.5"}
    )
    assert settings.internal_token is None
    assert settings.key_cache_seconds == 2.5
    assert settings.gc_threshold == 20_000
    tuned = {"SWITCHBOARD_TABLE": "t", "SWITCHBOARD_GC_THRESHOLD": "5000"}
    assert WorkerSettings.from_env(tuned).gc_threshold == 5000
    with pytest.raises(ConfigError, match="SWITCHBOARD_GC_THRESHOLD"):
        WorkerSettings.from_env({"SWITCHBOARD_TABLE": "t", "SWITCHBOARD_GC_THRESHOLD": "0"})
    with pytest.raises(ConfigError, match="SWITCHBOARD_TABLE is required"):
        WorkerSettings.from_env({})
