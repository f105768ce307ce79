"""The local stack's start: what environment its components get (provider keys, AWS
credentials, endpoints), and a fixed port that is taken (a second `make dev`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.stack import (
    EMBEDDED_SERVICES,
    ROOT,
    PortInUse,
    check_port,
    component_environment,
    free_port,
)

MOTO = "http://127.0.0.1:5999"
DEVELOPER = {
    "PATH": "/usr/bin",
    "OPENAI_API_KEY": "sk-developer",
    "ANTHROPIC_API_KEY": "sk-ant-developer",
    "AWS_ACCESS_KEY_ID": "AKIADEVELOPER",
    "AWS_SECRET_ACCESS_KEY": "developer-secret",
    "AWS_SESSION_TOKEN": "developer-token",
    "AWS_REGION": "eu-west-3",
    "AWS_ENDPOINT_URL": "http://somewhere-else",
    "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": "http://bedrock.example",
    "AWS_ENDPOINT_URL_DYNAMODB": "http://not-the-stack",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
}
BEDROCK = {"SWITCHBOARD_BEDROCK_MODELS": "anthropic.claude-3-5-haiku-20241022-v1:0"}


@pytest.fixture
def developer_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """The developer's environment, also as boto3 reads it (no config files)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    for name, value in DEVELOPER.items():
        monkeypatch.setenv(name, value)
    yield


def embedded(env: dict[str, str]) -> None:
    """The platform's own state is on the embedded AWS, and nothing else is."""
    for service in EMBEDDED_SERVICES:
        assert env[f"AWS_ENDPOINT_URL_{service}"] == MOTO
    assert "AWS_ENDPOINT_URL" not in env
    assert "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS" not in env
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"


def test_a_hermetic_stack_passes_on_no_key_and_no_credentials(developer_env: None) -> None:
    env = component_environment({**DEVELOPER, **BEDROCK}, MOTO, inherit_credentials=False)
    embedded(env)
    assert "OPENAI_API_KEY" not in env and "ANTHROPIC_API_KEY" not in env
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("local", "local")
    assert "AWS_SESSION_TOKEN" not in env
    assert "AWS_ENDPOINT_URL_BEDROCK_RUNTIME" not in env


def test_make_dev_passes_provider_keys_through(developer_env: None) -> None:
    env = component_environment(DEVELOPER, MOTO, inherit_credentials=True)
    embedded(env)
    assert env["OPENAI_API_KEY"] == "sk-developer"
    assert env["ANTHROPIC_API_KEY"] == "sk-ant-developer"
    # No Bedrock: nothing outside the stack needs AWS credentials, so a developer's
    # (perhaps expired) session never signs the embedded services' requests.
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("local", "local")
    assert "AWS_SESSION_TOKEN" not in env


def test_make_dev_gives_bedrock_the_developers_credentials_and_region(
    developer_env: None,
) -> None:
    env = component_environment({**DEVELOPER, **BEDROCK}, MOTO, inherit_credentials=True)
    embedded(env)
    assert env["AWS_ACCESS_KEY_ID"] == "AKIADEVELOPER"
    assert env["AWS_SESSION_TOKEN"] == "developer-token"
    assert env["SWITCHBOARD_BEDROCK_REGION"] == "eu-west-3"
    assert env["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] == "http://bedrock.example"


def test_make_dev_gives_placeholder_credentials_when_the_developer_has_none(
    developer_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    environ = {k: v for k, v in {**DEVELOPER, **BEDROCK}.items() if "KEY_ID" not in k}
    env = component_environment(environ, MOTO, inherit_credentials=True)
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("local", "local")


@pytest.fixture
def taken() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_taken_port_is_named_with_the_option_that_moves_it(taken: int) -> None:
    with pytest.raises(PortInUse) as info:
        check_port("127.0.0.1", taken, "moto")
    assert str(info.value).startswith(f"Port {taken} (the embedded DynamoDB/SQS/S3) is already")
    assert "--aws-port" in str(info.value)
    check_port("127.0.0.1", free_port(), "moto")  # a free one passes


@pytest.mark.parametrize(("option", "name"), [("--aws-port", "aws"), ("--api-port", "api")])
def test_a_second_make_dev_says_which_port_is_in_use(
    taken: int, option: str, name: str, tmp_path: Path
) -> None:
    ports = {o: str(free_port()) for o in ("--api-port", "--stream-port", "--worker-port")}
    ports["--aws-port"] = str(free_port())
    ports[option] = str(taken)
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "devstack",
            "--data-dir",
            str(tmp_path / "devstack"),
            *(x for kv in ports.items() for x in kv),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "AWS_CONFIG_FILE": str(tmp_path / "none")},
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one sentence, no traceback
    assert f"Port {taken}" in lines[0] and option in lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert time.monotonic() - started < 30  # nothing was started, nothing waited for
    assert not (tmp_path / "devstack").exists()  # nor any key written
