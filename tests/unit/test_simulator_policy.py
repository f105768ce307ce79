"""The simulator is a stand-in, never passed off as a model: where it may answer is
`SWITCHBOARD_SIMULATOR`'s to say (off in deployed stages), a route falls back to it only
when configured to, every answer's `model` names the model that actually answered (the
route asked for is in `x-switchboard-route`), and a worker with no real provider warns at
start and says so on `/ready`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from containers.worker.app import create_app
from containers.worker.settings import WorkerSettings
from services.canonical import Completion, CompletionRequest, StreamEvent, TextDelta, Usage
from services.config import ConfigError
from services.errors import APIError
from services.models.catalogue import Catalogue, CatalogueConfig
from services.providers.base import Provider
from services.providers.errors import connection_failed
from services.providers.local import LocalProvider
from services.runs.events import Channel, EventLog
from services.runs.kinds import complete as run_completion
from services.runs.model import Run
from services.tenancy.auth import Authenticator
from services.tenancy.keys import ApiKey
from services.tenancy.limits import Admission
from services.wire.openai import parse_chat_request

KEY = "sb-test-key"
AUTH = {"authorization": f"Bearer {KEY}"}
HELLO = [{"role": "user", "content": "Hello"}]


class OpenAILike(Provider):
    """`openai/gpt-4o-mini`, up (answers "real answer") or down (cannot be reached)."""

    name = "openai"

    def __init__(self, up: bool) -> None:
        self.up = up

    def models(self) -> list[str]:
        return ["gpt-4o-mini"]

    async def complete(self, request: CompletionRequest) -> Completion:
        if not self.up:
            raise connection_failed("openai", "connection refused")
        return Completion("real answer", "stop", Usage(3, 2))

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        if not self.up:
            raise connection_failed("openai", "connection refused")
        yield TextDelta("real answer")


class OneKey:
    def lookup(self, secret: str) -> ApiKey | None:
        return ApiKey("key_1", "acme", "sb-test", "t", "active", 0) if secret == KEY else None


class NoTenants:
    def get_item(self, **request: object) -> dict[str, object]:
        return {}


@pytest.fixture(autouse=True)
def _one_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_RETRY_MAX_ATTEMPTS", "1")  # no backoff waits in tests


def worker(simulator: str, providers: dict[str, Provider]) -> TestClient:
    settings = WorkerSettings(table="t", simulator=simulator)
    app = create_app(
        settings,
        providers=providers,
        authenticator=Authenticator(OneKey()),  # type: ignore[arg-type]
        admission=Admission(NoTenants(), "t"),
    )
    return TestClient(app, raise_server_exceptions=False)


def shipped(simulator: str, **providers: Provider) -> Catalogue:
    return Catalogue(
        {"local": LocalProvider(), **providers}, CatalogueConfig.load(), simulator=simulator
    )


# The catalogue


def test_off_offers_the_simulator_nowhere() -> None:
    catalogue = shipped("off", openai=OpenAILike(up=True))
    assert "local/simulator" not in catalogue.names()
    with pytest.raises(APIError) as caught:
        catalogue.resolve("local/simulator")
    assert caught.value.status == 404 and "SWITCHBOARD_SIMULATOR=off" in caught.value.message
    assert catalogue.real_models() == ["openai/gpt-4o-mini"]


def test_off_with_no_provider_leaves_routes_unavailable_with_the_reason() -> None:
    catalogue = shipped("off")
    assert catalogue.real_models() == [] and "fast" not in catalogue.names()
    with pytest.raises(APIError) as caught:
        catalogue.resolve("fast")
    error = caught.value
    assert (error.status, error.code) == (503, "route_unavailable")
    assert "openai/gpt-4o-mini" in error.message and error.headers["x-should-retry"] == "false"


def test_on_offers_it_by_name_but_routes_do_not_fall_back_to_it() -> None:
    catalogue = shipped("on", openai=OpenAILike(up=False))
    assert catalogue.resolve("local/simulator").public_name == "local/simulator"
    router = catalogue.resolve("fast").provider
    with pytest.raises(APIError) as caught:
        asyncio.run(router.complete(CompletionRequest("gpt-4o-mini", [])))
    assert caught.value.code == "upstream_unreachable"


def test_a_catalogue_that_lists_it_on_a_route_is_configured_to_fall_back() -> None:
    config = CatalogueConfig(routes={"demo": ["openai/gpt-4o-mini", "local/simulator"]})
    providers = {"local": LocalProvider(), "openai": OpenAILike(up=False)}
    on = Catalogue(providers, config, simulator="on")
    completion = asyncio.run(on.resolve("demo").provider.complete(CompletionRequest("x", [])))
    assert completion.text.startswith("[local simulator, not a model]")
    off = Catalogue(providers, config, simulator="off")
    with pytest.raises(APIError):
        asyncio.run(off.resolve("demo").provider.complete(CompletionRequest("x", [])))


def test_the_setting_is_parsed_and_checked() -> None:
    assert WorkerSettings.from_env({"SWITCHBOARD_TABLE": "t"}).simulator == "fallback"
    for mode in ("off", "on", "fallback", " OFF "):
        settings = WorkerSettings.from_env(
            {"SWITCHBOARD_TABLE": "t", "SWITCHBOARD_SIMULATOR": mode}
        )
        assert settings.simulator == mode.strip().lower()
    with pytest.raises(ConfigError, match="SWITCHBOARD_SIMULATOR"):
        WorkerSettings.from_env({"SWITCHBOARD_TABLE": "t", "SWITCHBOARD_SIMULATOR": "maybe"})
    with pytest.raises(ValueError):
        Catalogue({}, simulator="sometimes")


# Answers name the model that answered


def test_a_fallback_to_the_simulator_says_so_in_every_answer() -> None:
    client = worker("fallback", {"local": LocalProvider(), "openai": OpenAILike(up=False)})
    plain = client.post(
        "/v1/chat/completions", headers=AUTH, json={"model": "fast", "messages": HELLO}
    )
    assert plain.status_code == 200, plain.text
    assert plain.json()["model"] == "local/simulator"
    assert plain.headers["x-switchboard-route"] == "fast"

    streamed = client.post(
        "/v1/chat/completions",
        headers=AUTH,
        json={"model": "fast", "messages": HELLO, "stream": True,
              "stream_options": {"include_usage": True}},
    )  # fmt: skip
    chunks = [c for c in streamed.text.split("\n\n") if c.startswith("data: {")]
    assert len(chunks) > 3 and all('"model":"local/simulator"' in c for c in chunks)
    assert streamed.headers["x-switchboard-route"] == "fast"

    message = client.post(
        "/v1/messages",
        headers=AUTH,
        json={"model": "fast", "max_tokens": 50, "messages": HELLO},
    )
    assert message.status_code == 200 and message.json()["model"] == "local/simulator"
    assert message.headers["x-switchboard-route"] == "fast"
    streamed_message = client.post(
        "/v1/messages",
        headers=AUTH,
        json={"model": "fast", "max_tokens": 50, "messages": HELLO, "stream": True},
    )
    assert '"model":"local/simulator"' in streamed_message.text.split("\n\n")[0]

    tool = client.post("/v1/tools/summarize", headers=AUTH, json={"input": {"text": "Tides."}})
    assert tool.status_code == 200, tool.text
    assert (tool.json()["model"], tool.json()["models"]) == ("local/simulator", ["local/simulator"])
    assert tool.headers["x-switchboard-route"] == "fast"


def test_a_real_answer_names_the_provider_model_not_the_route() -> None:
    client = worker("fallback", {"local": LocalProvider(), "openai": OpenAILike(up=True)})
    for model in ("fast", "gpt-4o-mini", "openai/gpt-4o-mini"):
        answer = client.post(
            "/v1/chat/completions", headers=AUTH, json={"model": model, "messages": HELLO}
        )
        assert answer.json()["model"] == "openai/gpt-4o-mini", model
        assert answer.json()["choices"][0]["message"]["content"] == "real answer"
        assert answer.headers["x-switchboard-route"] == model


def test_with_the_simulator_off_a_failed_route_is_an_error_not_simulated_text() -> None:
    client = worker("off", {"local": LocalProvider(), "openai": OpenAILike(up=False)})
    answer = client.post(
        "/v1/chat/completions", headers=AUTH, json={"model": "fast", "messages": HELLO}
    )
    assert answer.status_code == 502
    assert answer.json()["error"]["code"] == "upstream_unreachable"
    tool = client.post("/v1/tools/summarize", headers=AUTH, json={"input": {"text": "Tides."}})
    assert tool.status_code == 502 and "local simulator" not in tool.text
    gone = client.post(
        "/v1/chat/completions",
        headers=AUTH,
        json={"model": "local/simulator", "messages": HELLO},
    )
    assert gone.status_code == 404


def test_a_chat_completion_run_names_the_model_that_answered() -> None:
    catalogue = shipped("fallback", openai=OpenAILike(up=False))
    run = Run("run_1", "acme", "key_1", "chat.completion", "running", {}, 0.0, 0.0)

    async def scenario() -> dict[str, Any]:
        log = EventLog(run, Channel(1), lambda *_: None)
        chat = parse_chat_request({"model": "fast", "messages": HELLO})
        return await run_completion(catalogue, chat, log)

    assert asyncio.run(scenario())["model"] == "local/simulator"


# Readiness


def test_no_real_provider_warns_at_start_and_is_not_ready(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="switchboard.worker"):
        client = worker("off", {"local": LocalProvider()})
    assert any("No real model provider is configured" in r.message for r in caplog.records)
    ready = client.get("/ready")
    assert ready.status_code == 503
    error = ready.json()["error"]
    assert error["code"] == "no_provider_configured" and error["type"] == "server_error"
    assert "no model can answer" in error["message"]
    assert worker("fallback", {"local": LocalProvider()}).get("/ready").status_code == 503
    assert client.get("/health").status_code == 200  # alive, though not ready


def test_a_real_provider_is_ready_and_quiet(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The table's part of readiness is tested in tests/unit/test_telemetry.py: here it answers.
    monkeypatch.setattr("services.web.ready.TableProbe.problem", lambda self: None)
    with caplog.at_level(logging.WARNING, logger="switchboard.worker"):
        client = worker("off", {"local": LocalProvider(), "openai": OpenAILike(up=True)})
    assert not [r for r in caplog.records if r.name == "switchboard.worker"]
    ready = client.get("/ready")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
