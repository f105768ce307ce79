"""Retries, fallback, circuit breakers and timeouts, with in-process providers that fail
on cue (the fault injection over real wire protocols is in tests/integration)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.errors import APIError
from services.models.catalogue import Catalogue, CatalogueConfig
from services.models.routing import Breaker, Breakers, Router, RoutingSettings, Target
from services.providers.base import (
    Completion,
    CompletionRequest,
    Finish,
    Message,
    Provider,
    StreamEvent,
    TextDelta,
    TextPart,
    Usage,
)
from services.providers.errors import ProviderError, from_status
from services.providers.timeouts import Timeouts

REQUEST = CompletionRequest(model="ignored", messages=[Message("user", [TextPart("hi")])])


class Flaky(Provider):
    """Fails with the queued errors (None = succeed), then succeeds."""

    def __init__(
        self,
        name: str,
        *failures: ProviderError | None,
        fail_after_first: bool = False,
        hang: float = 0,
    ) -> None:
        self.name = name
        self.failures = list(failures)
        self.calls: list[str] = []
        self.fail_after_first = fail_after_first
        self.hang = hang

    def models(self) -> list[str]:
        return ["m"]

    def _next_failure(self) -> ProviderError | None:
        return self.failures.pop(0) if self.failures else None

    async def complete(self, request: CompletionRequest) -> Completion:
        self.calls.append(request.model)
        failure = self._next_failure()
        if failure is not None:
            raise failure
        return Completion(f"from {self.name}", "stop", Usage(1, 1))

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        self.calls.append(request.model)
        failure = self._next_failure()
        if failure is not None and not self.fail_after_first:
            raise failure
        if self.hang:
            await asyncio.sleep(self.hang)
        yield TextDelta(f"from {self.name}")
        if failure is not None:
            raise failure
        if self.hang:
            await asyncio.sleep(self.hang)
        yield Finish("stop")


def busy(retry_after: float | None = None) -> ProviderError:
    return from_status("p", 429, "slow down", retry_after=retry_after)


def down() -> ProviderError:
    return from_status("p", 503, "unavailable")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def router(
    *providers: Provider,
    clock: Clock | None = None,
    timeouts: Timeouts | None = None,
    **settings: Any,
) -> Router:
    clock = clock or Clock()
    config = RoutingSettings(**{"backoff_base": 0.5, "backoff_max": 4, **settings})
    targets = [Target(f"{p.name}/m", p, "m", timeouts or Timeouts()) for p in providers]
    return Router(
        "route", targets, config, Breakers(config, clock), sleep=clock.sleep, jitter=lambda: 1.0
    )


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def drain(r: Router) -> list[StreamEvent]:
    return [event async for event in r.stream(REQUEST)]


def test_retries_with_backoff_then_succeeds() -> None:
    provider = Flaky("a", down(), down())
    clock = Clock()
    assert run(router(provider, clock=clock).complete(REQUEST)).text == "from a"
    assert provider.calls == ["m", "m", "m"]
    assert clock.slept == [0.5, 1.0]  # exponential (jitter pinned to its ceiling here)


def test_retry_after_is_honoured() -> None:
    clock = Clock()
    run(router(Flaky("a", busy(retry_after=3)), clock=clock).complete(REQUEST))
    assert clock.slept == [3]


def test_retry_after_beyond_the_budget_falls_back_instead_of_waiting() -> None:
    clock = Clock()
    a, b = Flaky("a", busy(retry_after=120)), Flaky("b")
    assert run(router(a, b, clock=clock, retry_budget=10).complete(REQUEST)).text == "from b"
    assert clock.slept == [] and a.calls == ["m"]


def test_client_errors_are_not_retried_and_keep_the_provider_message() -> None:
    a, b = Flaky("a", from_status("a", 400, "messages: bad role")), Flaky("b")
    with pytest.raises(ProviderError) as info:
        run(router(a, b).complete(REQUEST))
    assert a.calls == ["m"] and b.calls == []
    assert info.value.status == 400 and "messages: bad role" in info.value.message


def test_falls_back_along_the_route_when_retries_run_out() -> None:
    a, b = Flaky("a", down(), down(), down()), Flaky("b")
    assert run(router(a, b).complete(REQUEST)).text == "from b"
    assert len(a.calls) == 3 and b.calls == ["m"]


def test_every_target_failing_raises_the_last_error() -> None:
    with pytest.raises(ProviderError) as info:
        run(router(Flaky("a", *[down()] * 3), Flaky("b", *[down()] * 3)).complete(REQUEST))
    assert info.value.status == 502


def test_stream_falls_back_before_the_first_byte() -> None:
    a, b = Flaky("a", down(), down(), down()), Flaky("b")
    events = run(drain(router(a, b)))
    assert events[0] == TextDelta("from b")


def test_stream_failure_after_the_first_byte_is_raised_not_restarted() -> None:
    a, b = Flaky("a", down(), fail_after_first=True), Flaky("b")
    received: list[StreamEvent] = []

    async def consume() -> None:
        async for event in router(a, b).stream(REQUEST):
            received.append(event)

    with pytest.raises(ProviderError):
        run(consume())
    assert received == [TextDelta("from a")]  # the partial output was delivered
    assert b.calls == []


def test_slow_first_byte_times_out_and_falls_back() -> None:
    slow, fast = Flaky("slow", hang=5), Flaky("fast")
    events = run(drain(router(slow, fast, timeouts=Timeouts(first_byte=0.05), max_attempts=1)))
    assert events[0] == TextDelta("from fast")


def test_a_stalled_stream_ends_with_a_timeout_and_never_hangs() -> None:
    class Stall(Flaky):
        async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
            yield TextDelta("partial")
            await asyncio.sleep(30)
            yield Finish("stop")

    received: list[StreamEvent] = []

    async def consume() -> None:
        async for event in router(Stall("s"), timeouts=Timeouts(idle=0.1)).stream(REQUEST):
            received.append(event)

    with pytest.raises(ProviderError) as info:
        run(asyncio.wait_for(consume(), 5))
    assert info.value.code == "upstream_timeout" and "next chunk" in info.value.message
    assert received == [TextDelta("partial")]


def test_breaker_opens_skips_then_probes() -> None:
    clock = Clock()
    a = Flaky("a", *[down()] * 4)
    b = Flaky("b")
    r = router(a, b, clock=clock, max_attempts=1, breaker_failures=2, breaker_cooldown=30)
    for _ in range(2):
        assert run(r.complete(REQUEST)).text == "from b"
    assert len(a.calls) == 2
    assert run(r.complete(REQUEST)).text == "from b"
    assert len(a.calls) == 2  # open: skipped
    clock.now += 31
    assert run(r.complete(REQUEST)).text == "from b"  # half-open probe fails: open again
    assert len(a.calls) == 3
    clock.now += 31
    a.failures.clear()
    assert run(r.complete(REQUEST)).text == "from a"  # probe succeeds: closed
    assert run(r.complete(REQUEST)).text == "from a"


def test_all_breakers_open_is_a_503_with_retry_after() -> None:
    clock = Clock()
    r = router(Flaky("a", *[down()] * 10), clock=clock, max_attempts=1, breaker_failures=1)
    with pytest.raises(ProviderError):
        run(r.complete(REQUEST))
    with pytest.raises(APIError) as info:
        run(r.complete(REQUEST))
    assert info.value.status == 503 and info.value.headers["retry-after"] == "30"


def test_half_open_lets_one_probe_through_at_a_time() -> None:
    clock = Clock()
    breaker = Breaker(failures=1, cooldown=10, clock=clock)
    breaker.failure()
    assert not breaker.allow()
    clock.now = 11
    assert breaker.allow() and not breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow()


def test_catalogue_routes_keep_only_available_models_and_resolve_aliases() -> None:
    config = CatalogueConfig(
        context_windows={"a/m": 1000},
        aliases={"short": "a/m", "gone": "zzz/m"},
        routes={"fast": ["zzz/m", "a/m", "b/m"], "empty": ["zzz/m"]},
    )
    a, b = Flaky("a", down(), down(), down()), Flaky("b")
    catalogue = Catalogue({"a": a, "b": b}, config, routing=RoutingSettings(backoff_base=0))
    assert catalogue.names() == ["a/m", "b/m", "fast", "short"]
    fast = catalogue.resolve("fast")
    assert fast.context_window == 1000  # the smallest window on the route
    assert run(fast.provider.complete(REQUEST)).text == "from b"
    assert catalogue.resolve("short").owned_by == "a"
    with pytest.raises(APIError):
        catalogue.resolve("gone")


def test_the_shipped_catalogue_is_valid() -> None:
    config = CatalogueConfig.load()
    assert "fast" in config.routes and "smart" in config.routes
    # No route names the simulator: where it may answer is SWITCHBOARD_SIMULATOR's to say.
    assert all("local/simulator" not in models for models in config.routes.values())
