"""`OPENAI_API_KEY=... make dev` offers real models: the stack `python -m devstack` starts
passes the developer's provider keys to its components, and gives Bedrock the developer's
AWS credentials and region while the platform's own state stays on the embedded AWS.
Shown against the fake upstreams (tests/fakes), configured as a developer would, in the
environment `make dev` starts from."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack.__main__ import parse_args
from devstack.stack import LocalStack, free_port
from tests.fakes import bedrock as bedrock_fake
from tests.fakes import openai as openai_fake
from tests.fakes.upstream import FakeUpstream

OPENAI_MODEL = f"openai/{openai_fake.MODEL}"
BEDROCK_MODEL = f"bedrock/{bedrock_fake.MODEL}"


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeUpstream]]:
    running = {"openai": openai_fake.FakeOpenAI().start(), "bedrock": bedrock_fake.BedrockFake()}
    running["bedrock"].start()
    yield running
    for fake in running.values():
        fake.stop()


@pytest.fixture(scope="module")
def developer_stack(
    fakes: dict[str, FakeUpstream], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    home = tmp_path_factory.mktemp("developer-home")
    with pytest.MonkeyPatch.context() as env:
        for name in list(os.environ):
            if name.startswith(("AWS_", "SWITCHBOARD_")) or name.endswith("_API_KEY"):
                env.delenv(name)
        developer = {
            "OPENAI_API_KEY": "sk-fake",
            "SWITCHBOARD_OPENAI_BASE_URL": f"{fakes['openai'].url}/v1",
            "SWITCHBOARD_BEDROCK_MODELS": bedrock_fake.MODEL,
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": fakes["bedrock"].url,
            "AWS_ACCESS_KEY_ID": "AKIADEVELOPER",
            "AWS_SECRET_ACCESS_KEY": "developer-secret",
            "AWS_SESSION_TOKEN": "developer-session",
            "AWS_REGION": "eu-west-3",
            "AWS_CONFIG_FILE": str(home / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        }
        for name, value in developer.items():
            env.setenv(name, value)
        ports = [free_port() for _ in range(4)]
        config = parse_args(
            ["--api-port", str(ports[0]), "--stream-port", str(ports[1]),
             "--worker-port", str(ports[2]), "--aws-port", str(ports[3]),
             "--workers", "1", "--first-token-ms", "0", "--chunk-ms", "0"]
        )  # fmt: skip
        config.log_dir = tmp_path_factory.mktemp("developer-stack-logs")
        with LocalStack(config) as running:
            yield running


def chat(stack: LocalStack, door: str, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "Hello"}]}
    return httpx.post(
        f"{door}/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {stack.api_key}"},
        timeout=30,
    )


def models(stack: LocalStack) -> list[str]:
    response = httpx.get(
        f"{stack.api_url}/models", headers={"authorization": f"Bearer {stack.api_key}"}
    )
    assert response.status_code == 200, response.text
    return [m["id"] for m in response.json()["data"]]


def test_an_openai_key_in_the_developers_environment_offers_and_answers_openai(
    developer_stack: LocalStack, fakes: dict[str, FakeUpstream]
) -> None:
    assert OPENAI_MODEL in models(developer_stack)
    for door in (developer_stack.api_url, developer_stack.stream_url):
        response = chat(developer_stack, door, OPENAI_MODEL)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        assert answer["choices"][0]["message"]["content"] == "Hello, world"
        assert answer["model"] == OPENAI_MODEL
    sent = fakes["openai"].requests[-1]
    assert sent.headers["authorization"] == "Bearer sk-fake"


def test_bedrock_signs_with_the_developers_credentials_while_state_stays_embedded(
    developer_stack: LocalStack, fakes: dict[str, FakeUpstream]
) -> None:
    assert BEDROCK_MODEL in models(developer_stack)
    response = chat(developer_stack, developer_stack.api_url, BEDROCK_MODEL)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "Hello, world"
    sent = fakes["bedrock"].requests[-1]
    authorization = sent.headers["authorization"]
    assert "Credential=AKIADEVELOPER/" in authorization
    assert "/eu-west-3/bedrock/aws4_request" in authorization
    assert sent.headers["x-amz-security-token"] == "developer-session"

    # The platform's state is on the embedded AWS: a conversation created through the API
    # is in the embedded table (and the API key that authenticated the calls is too).
    created = httpx.post(
        f"{developer_stack.api_url}/conversations",
        json={"title": "kept locally"},
        headers={"authorization": f"Bearer {developer_stack.api_key}"},
    )
    assert created.status_code == 200, created.text
    items = developer_stack.client("dynamodb").scan(TableName=developer_stack.config.table)
    assert any(item.get("title", {}).get("S") == "kept locally" for item in items["Items"]), (
        "the conversation is not in the embedded table"
    )
