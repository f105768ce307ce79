"""SingleFlight: concurrent misses of one key make one call."""

from __future__ import annotations

import asyncio
import threading

import pytest

from services.web.singleflight import SingleFlight


def test_concurrent_callers_of_one_key_share_one_call() -> None:
    calls: list[str] = []
    release = threading.Event()

    def read(key: str) -> str:
        calls.append(key)
        release.wait(5)
        return key.upper()

    async def main() -> list[str]:
        flight: SingleFlight[str] = SingleFlight()
        waiters = [asyncio.create_task(flight.run("a", lambda: read("a"))) for _ in range(20)]
        other = asyncio.create_task(flight.run("b", lambda: read("b")))
        await asyncio.sleep(0.05)
        release.set()
        return [*await asyncio.gather(*waiters), await other]

    results = asyncio.run(main())
    assert results == ["A"] * 20 + ["B"]
    assert sorted(calls) == ["a", "b"]


def test_a_failure_reaches_every_waiter_and_the_next_call_tries_again() -> None:
    attempts: list[int] = []

    def read() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("throttled")
        return "ok"

    async def main() -> str:
        flight: SingleFlight[str] = SingleFlight()
        first = await asyncio.gather(
            *(flight.run("k", read) for _ in range(5)), return_exceptions=True
        )
        assert all(isinstance(r, ConnectionError) for r in first)
        return await flight.run("k", read)

    assert asyncio.run(main()) == "ok"
    assert len(attempts) == 2


def test_a_cancelled_waiter_leaves_the_call_to_the_others() -> None:
    release = threading.Event()

    async def main() -> str:
        flight: SingleFlight[str] = SingleFlight()
        impatient = asyncio.create_task(flight.run("k", lambda: release.wait(5) and "done"))
        patient = asyncio.create_task(flight.run("k", lambda: "never called"))
        await asyncio.sleep(0.05)
        impatient.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await impatient
        return await patient

    assert asyncio.run(main()) == "done"


def test_a_background_refresh_runs_once_and_its_failure_is_only_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []

    def read() -> str:
        calls.append(1)
        raise ConnectionError("throttled")

    async def main() -> None:
        flight: SingleFlight[str] = SingleFlight()
        for _ in range(10):
            flight.refresh("k", read)
        await asyncio.sleep(0.2)

    asyncio.run(main())
    assert len(calls) == 1
    assert "background refresh failed" in caplog.text
