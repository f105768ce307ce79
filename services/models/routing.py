"""Calling a route's providers: retries, fallback, circuit breakers and timeouts.

A route is an ordered list of targets (provider models). The `Router` presents a route as
one `Provider`, so everything that calls a model gets the same failure handling:

- Each target is tried up to `max_attempts` times on a retryable failure (429, 5xx, a
  reset, a timeout), with exponential backoff and full jitter, waiting at least what the
  upstream's `Retry-After` asks. A Retry-After beyond the route's remaining retry budget
  is not waited for: the next target is tried instead.
- A non-retryable failure (the upstream refused the request itself: 400, 401, 404) is
  raised at once, with the provider's message.
- Fallback to the next target happens only before the first byte: once a stream has
  yielded its first event, a failure ends it with that error (the caller keeps what was
  sent and reports the error); it is never silently restarted elsewhere.
- A stream that does not produce its first event within `first_byte` seconds, or falls
  silent for `idle` seconds, or runs past `total`, fails with a timeout; it never hangs.
- A circuit breaker per target opens after `breaker_failures` consecutive retryable
  failures; while open the target is skipped; after `breaker_cooldown` one probe request
  is let through, and its outcome closes or reopens the breaker.

Which target answered is told to every `Tally` in scope (services.usage.context), with
what the call used: an answer names the model that produced it, not the route asked for.
It is also noted on the call being served (services.telemetry.context: the access line's
`model`), and counted (services.telemetry.metrics): every attempt and retry per provider,
an answer by a fallback target, a breaker that opens, and a stream's time to first token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from services import metrics_names as names
from services.canonical import Completion, CompletionRequest, StreamEvent, Usage
from services.config import env_float, env_int
from services.errors import APIError, ServiceUnavailable
from services.providers.base import Provider
from services.providers.errors import ProviderError, timed_out
from services.providers.timeouts import Timeouts
from services.telemetry import metrics as telemetry_metrics
from services.telemetry.context import CURRENT as CALL
from services.telemetry.context import Call
from services.usage.calls import CallRecorder, ProviderCall, StreamMeter, outcome_of
from services.usage.context import CALLER, TALLIES, Caller
from services.web.deadlines import Deadline

T = TypeVar("T")

log = logging.getLogger("switchboard.routing")


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    max_attempts: int = 3
    backoff_base: float = 0.25
    backoff_max: float = 8.0
    retry_budget: float = 30.0  # seconds of waiting between attempts, per request
    breaker_failures: int = 5
    breaker_cooldown: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RoutingSettings:
        d = cls()
        return cls(
            max_attempts=env_int(env, "SWITCHBOARD_RETRY_MAX_ATTEMPTS", d.max_attempts, minimum=1),
            backoff_base=env_float(env, "SWITCHBOARD_RETRY_BACKOFF_SECONDS", d.backoff_base),
            backoff_max=env_float(env, "SWITCHBOARD_RETRY_BACKOFF_MAX_SECONDS", d.backoff_max),
            retry_budget=env_float(env, "SWITCHBOARD_RETRY_BUDGET_SECONDS", d.retry_budget),
            breaker_failures=env_int(
                env, "SWITCHBOARD_BREAKER_FAILURES", d.breaker_failures, minimum=1
            ),
            breaker_cooldown=env_float(
                env, "SWITCHBOARD_BREAKER_COOLDOWN_SECONDS", d.breaker_cooldown
            ),
        )


@dataclass(frozen=True, slots=True)
class Target:
    """One provider model on a route."""

    name: str  # public name, `<provider>/<model>`
    provider: Provider
    model: str
    timeouts: Timeouts = field(default_factory=Timeouts)


class Breaker:
    """Closed, open (skip until the cooldown ends), or half-open (one probe at a time)."""

    def __init__(self, failures: int, cooldown: float, clock: Callable[[], float]) -> None:
        self._threshold = failures
        self._cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self._cooldown:
            return "open"
        return "half_open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probing:
            self._probing = True
            return True
        return False

    def success(self) -> None:
        self._failures, self._opened_at, self._probing = 0, None, False

    def failure(self) -> bool:
        """Count a failure; True when it opens the breaker (it was closed or probing)."""
        self._failures += 1
        opened = False
        if self._probing or self._failures >= self._threshold:
            opened = self._opened_at is None or self._probing
            self._opened_at = self._clock()
        self._probing = False
        return opened

    def release(self) -> None:
        """A probe that ended without a verdict (a client error) lets the next one through."""
        self._probing = False


class Breakers:
    """One breaker per target, shared by every route through it, per worker process."""

    def __init__(
        self, settings: RoutingSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._breakers: dict[str, Breaker] = {}

    def get(self, name: str) -> Breaker:
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = Breaker(
                self._settings.breaker_failures, self._settings.breaker_cooldown, self._clock
            )
            self._breakers[name] = breaker
        return breaker


class Router(Provider):
    """A route's targets behind the provider port."""

    name = "router"

    def __init__(
        self,
        route: str,
        targets: list[Target],
        settings: RoutingSettings,
        breakers: Breakers,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        recorder: CallRecorder | None = None,
    ) -> None:
        if not targets:
            raise ValueError(f"route {route} has no targets")
        self.route = route
        self.targets = targets
        self._settings = settings
        self._breakers = breakers
        self._sleep = sleep
        self._jitter = jitter
        # Told of every attempt on a provider (services/usage); None records nothing.
        self._recorder = recorder

    def models(self) -> list[str]:
        return [self.route]

    async def complete(self, request: CompletionRequest) -> Completion:
        recorder = self._recorder
        caller = CALLER.get() if recorder is not None else None
        tallies = TALLIES.get()
        served = CALL.get()

        async def call(target: Target) -> Completion:
            """One attempt, reported to the recorder (if any) however it ends."""
            started, clock = time.time(), time.perf_counter()
            try:
                # A deadline on this task, not a wait_for (which runs the call as a task of
                # its own), nor asyncio.timeout (a loop timer per call): services.web.deadlines.
                try:
                    async with Deadline(target.timeouts.total):
                        completion = await target.provider.complete(_for(request, target))
                except TimeoutError:
                    raise timed_out(
                        target.provider.name, "whole answer", target.timeouts.total
                    ) from None
            except BaseException as exc:
                if recorder is not None:
                    self._report(
                        caller, target, started, clock, outcome_of(exc), None, request,
                        served=served,
                    )  # fmt: skip
                raise
            if recorder is not None:
                chars = len(completion.text) + sum(len(c.arguments) for c in completion.tool_calls)
                usage = completion.usage
                self._report(
                    caller, target, started, clock, "ok", usage, request, chars=chars,
                    served=served,
                )  # fmt: skip
            for tally in tallies:
                tally.answered(target.name)
                tally.add(completion.usage)
            if served is not None:
                served.model = target.name
            return completion

        return await self._route(call)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        async for batch in self.stream_batches(request):
            for event in batch:
                yield event

    async def stream_batches(self, request: CompletionRequest) -> AsyncIterator[list[StreamEvent]]:
        opened: list[tuple[Target, AsyncIterator[list[StreamEvent]], list[StreamEvent] | None]] = []
        recorder = self._recorder
        caller = CALLER.get() if recorder is not None else None
        tallies = TALLIES.get()  # read now: later batches may be read by another task
        served = CALL.get()
        timing: list[float] = []  # the opened attempt's start (epoch, perf counter) and first byte
        begun = time.perf_counter()

        async def open_stream(target: Target) -> None:
            batches = target.provider.stream_batches(_for(request, target)).__aiter__()
            try:
                async with Deadline(target.timeouts.first_byte):
                    first: list[StreamEvent] | None = await batches.__anext__()
            except StopAsyncIteration:
                first = None
            except TimeoutError:
                await _close(batches)
                raise timed_out(
                    target.provider.name, "first byte", target.timeouts.first_byte
                ) from None
            except BaseException:
                await _close(batches)
                raise
            opened.append((target, batches, first))

        async def open_recorded(target: Target) -> None:
            started, clock = time.time(), time.perf_counter()
            try:
                await open_stream(target)
            except BaseException as exc:
                outcome = outcome_of(exc)
                self._report(
                    caller, target, started, clock, outcome, None, request, stream=True,
                    served=served,
                )  # fmt: skip
                raise
            timing[:] = [started, clock, time.perf_counter()]

        await self._route(open_stream if recorder is None else open_recorded)
        target, batches, first = opened[0]
        telemetry_metrics.current().observe(
            names.TIME_TO_FIRST_TOKEN, (time.perf_counter() - begun) * 1000
        )
        for tally in tallies:
            tally.answered(target.name)
        if served is not None:
            served.model = target.name
        timeouts = target.timeouts
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeouts.total
        meter = StreamMeter() if recorder is not None or tallies else None
        outcome = "ok"
        try:
            if first is None:
                return
            if meter is not None:
                meter.see(first)
            yield first
            while True:
                # A deadline per read, entered and left by the task reading (which may
                # not be the one that opened the stream).
                try:
                    async with Deadline(min(timeouts.idle, deadline - loop.time())):
                        batch = await batches.__anext__()
                except StopAsyncIteration:
                    return
                if meter is not None:
                    meter.see(batch)
                yield batch
        except TimeoutError:
            if loop.time() >= deadline:
                error = timed_out(target.provider.name, "whole answer", timeouts.total)
            else:
                error = timed_out(target.provider.name, "next chunk", timeouts.idle)
            outcome = outcome_of(error)
            raise error from None
        except BaseException as exc:
            # Closed early (GeneratorExit), cancelled with the client, or failed mid-stream.
            outcome = outcome_of(exc)
            raise
        finally:
            if meter is not None and recorder is not None:
                started, clock, first_at = timing
                self._report(
                    caller, target, started, clock, outcome, meter.usage, request,
                    stream=True, first_at=first_at, chars=meter.chars, served=served,
                )  # fmt: skip
            if meter is not None and meter.usage is not None:
                for tally in tallies:
                    tally.add(meter.usage)
            await _close(batches)

    async def _route(self, call: Callable[[Target], Awaitable[T]]) -> T:
        """`call` on the first target that answers, with retries and fallback."""
        budget = self._settings.retry_budget
        last: APIError | None = None
        skipped: list[str] = []
        metrics = telemetry_metrics.current()
        for index, target in enumerate(self.targets):
            breaker = self._breakers.get(target.name)
            provider = target.provider.name
            for attempt in range(self._settings.max_attempts):
                if not breaker.allow():
                    skipped.append(target.name)
                    break
                metrics.count(names.PROVIDER_ATTEMPTS, provider=provider)
                if attempt:
                    metrics.count(names.PROVIDER_RETRIES, provider=provider)
                try:
                    result = await call(target)
                except ProviderError as exc:
                    last = exc
                    if not exc.retryable:
                        breaker.release()
                        raise
                    opened = breaker.failure()
                    if opened:
                        metrics.count(names.CIRCUIT_OPENS, provider=provider)
                    last_attempt = attempt + 1 == self._settings.max_attempts
                    delay = 0.0 if last_attempt else self._backoff(attempt, exc.retry_after)
                    retry = not last_attempt and delay <= budget
                    # One line per failed attempt (the call's request id is on it); the
                    # code and status only: an upstream's message may quote the prompt.
                    log.warning(
                        "provider attempt failed",
                        extra={
                            "fields": {
                                "route": self.route,
                                "target": target.name,
                                "attempt": attempt + 1,
                                "error_code": exc.code,
                                "upstream_status": exc.upstream_status,
                                "next": "retry" if retry else "next target",
                                "circuit_opened": opened or None,
                            }
                        },
                    )
                    if not retry:
                        break  # out of attempts, or not worth waiting for: the next target
                    budget -= delay
                    await self._sleep(delay)
                    continue
                except APIError:
                    breaker.release()
                    raise
                breaker.success()
                if index:
                    metrics.count(names.FALLBACKS, provider=provider)
                return result
        if last is not None:
            raise last
        raise ServiceUnavailable(
            f"Every provider for '{self.route}' is unavailable right now "
            f"(circuit open: {', '.join(skipped)}); try again shortly.",
            code="providers_unavailable",
            headers={"retry-after": str(int(self._settings.breaker_cooldown))},
        )

    def _report(
        self,
        caller: Caller | None,
        target: Target,
        started: float,
        clock: float,
        outcome: str,
        usage: Usage | None,
        request: CompletionRequest,
        *,
        stream: bool = False,
        first_at: float | None = None,
        chars: int = 0,
        served: Call | None = None,
    ) -> None:
        """Tell the recorder of one attempt that began at `started` (epoch seconds) and
        `clock` (perf counter), and ends now."""
        assert self._recorder is not None
        now = time.perf_counter()
        self._recorder.record(
            ProviderCall(
                caller,
                self.route,
                target.name,
                started,
                latency_ms=(now - clock) * 1000,
                first_token_ms=None if first_at is None else (first_at - clock) * 1000,
                outcome=outcome,
                usage=usage,
                streamed=stream,
                # Kept (until written) only where the tokens may have to be estimated.
                request=request if usage is None or not usage.total_tokens else None,
                streamed_chars=chars,
                request_id=None if served is None else served.request_id,
            )
        )

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        ceiling = min(self._settings.backoff_max, self._settings.backoff_base * 2.0**attempt)
        delay = ceiling * self._jitter()
        return max(delay, retry_after) if retry_after is not None else delay

    async def aclose(self) -> None:
        return None


def _for(request: CompletionRequest, target: Target) -> CompletionRequest:
    """`request` for `target`'s model id (as it is, for a route's first target)."""
    return request if request.model == target.model else replace(request, model=target.model)


async def _close(events: AsyncIterator[Any]) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()
