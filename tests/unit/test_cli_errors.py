"""The command lines answer a missing region, credentials or table, and an endpoint with
nothing listening, with a sentence saying what to do, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from moto import mock_aws

from services.admin import main as admin
from services.usage.__main__ import main as usage

ROOT = Path(__file__).resolve().parents[2]
AWS_VARIABLES = (
    "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB", "SWITCHBOARD_TABLE",
)  # fmt: skip
CLIS: dict[str, Callable[[list[str]], int]] = {
    "admin": lambda extra: admin(["key", "list", "--tenant", "acme", *extra]),
    "usage": lambda extra: usage(["report", "--tenant", "acme", *extra]),
}


@pytest.fixture(autouse=True)
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No region, no credentials, no endpoint: a machine that has never seen AWS."""
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")


def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")


def error_of(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("error: ")
    return err


def test_the_admin_cli_asks_for_the_table_before_anything_else(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert admin(["key", "list", "--tenant", "acme"]) == 1
    assert "set --table or SWITCHBOARD_TABLE" in error_of(capsys)


@pytest.mark.parametrize("cli", sorted(CLIS))
def test_no_region(cli: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert CLIS[cli](["--table", "t"]) == 1
    err = error_of(capsys)
    assert "No AWS region is set: pass --region" in err
    assert "AWS_ENDPOINT_URL=http://127.0.0.1:5050" in err  # and how to reach make dev


@pytest.mark.parametrize("cli", sorted(CLIS))
def test_no_credentials(cli: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert CLIS[cli](["--table", "t", "--region", "eu-west-1"]) == 1
    assert "No AWS credentials were found" in error_of(capsys)


@pytest.mark.parametrize("cli", sorted(CLIS))
def test_no_such_table(
    cli: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials(monkeypatch)
    with mock_aws():
        assert CLIS[cli](["--table", "nope", "--region", "eu-west-1"]) == 1
    err = error_of(capsys)
    assert "The table 'nope' does not exist in region eu-west-1" in err
    assert "--table with the State stack's table name" in err


@pytest.mark.parametrize("cli", sorted(CLIS))
def test_nothing_listening_at_a_local_endpoint(
    cli: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials(monkeypatch)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    assert CLIS[cli](["--table", "t", "--region", "us-east-1"]) == 1
    err = error_of(capsys)
    assert f"Cannot connect to http://127.0.0.1:{port}" in err
    assert "Is `make dev` running?" in err


def test_the_usage_report_takes_a_region(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        usage(["report", "--help"])
    assert "--region" in capsys.readouterr().out


def test_the_module_entry_points_print_the_sentence(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in AWS_VARIABLES and not k.startswith("AWS_")
    }
    env |= {"AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true"}
    for module, args in (
        ("services.admin", ["tenant", "list", "--table", "t"]),
        ("services.usage", ["report", "--table", "t", "--tenant", "acme"]),
    ):
        done = subprocess.run(
            [sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert done.returncode == 1, done.stderr
        assert done.stderr.startswith("error: No AWS region is set"), done.stderr
