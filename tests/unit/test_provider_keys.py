from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from services.config import ConfigError
from services.models.provider_keys import provider_env
from services.providers import build_providers


def test_no_secret_configured_keeps_the_environment() -> None:
    def never() -> None:
        raise AssertionError("no secret should be read")

    assert provider_env({"OPENAI_API_KEY": "sk-env"}, never) == {"OPENAI_API_KEY": "sk-env"}


def test_keys_from_the_secret_offer_their_providers() -> None:
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        arn = client.create_secret(
            Name="keys",
            SecretString=json.dumps({"OPENAI_API_KEY": "sk-secret", "ANTHROPIC_API_KEY": ""}),
        )["ARN"]
        env = provider_env({"SWITCHBOARD_PROVIDER_KEYS_SECRET_ARN": arn}, lambda: client)
    assert env["OPENAI_API_KEY"] == "sk-secret"
    assert "ANTHROPIC_API_KEY" not in env  # an empty value offers nothing
    assert set(build_providers(env)) == {"local", "openai"}


@pytest.mark.parametrize("value", ["not json", '["a"]', '{"OPENAI_API_KEY": 5}'])
def test_a_malformed_secret_fails_start_up_without_showing_it(value: str) -> None:
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        arn = client.create_secret(Name="keys", SecretString=value)["ARN"]
        with pytest.raises(ConfigError) as info:
            provider_env({"SWITCHBOARD_PROVIDER_KEYS_SECRET_ARN": arn}, lambda: client)
    assert value not in str(info.value)
