"""services.web.deadlines: `async with Deadline(s)` as `asyncio.timeout(s)`, with one timer per loop."""

from __future__ import annotations

import asyncio

import pytest

from services.web.deadlines import RESOLUTION, Deadline, _deadlines


def test_a_deadline_that_passes_raises_timeout_error_not_early() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            async with Deadline(0.05) as deadline:
                await asyncio.sleep(10)
        assert deadline.expired
        return loop.time() - started

    took = asyncio.run(main())
    assert 0.05 <= took < 0.05 + RESOLUTION + 0.5


def test_work_that_ends_in_time_is_not_touched() -> None:
    async def main() -> str:
        async with Deadline(5) as deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.02)  # no stray cancellation arrives later
        assert not deadline.expired
        async with Deadline(None):
            await asyncio.sleep(0)
        return "done"

    assert asyncio.run(main()) == "done"


def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    async def main() -> None:
        async def work() -> None:
            async with Deadline(5):
                await asyncio.sleep(10)

        task = asyncio.create_task(work())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_the_inner_of_two_deadlines_fires_and_the_outer_goes_on() -> None:
    async def main() -> str:
        async with Deadline(5):
            try:
                async with Deadline(0.02):
                    await asyncio.sleep(10)
            except TimeoutError:
                pass
            await asyncio.sleep(0.01)
            return "outer finished"

    assert asyncio.run(main()) == "outer finished"


def test_many_deadlines_share_one_timer_and_each_fires() -> None:
    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        fired = 0
        never = asyncio.Event()

        async def wait(seconds: float) -> None:
            nonlocal fired
            try:
                async with Deadline(seconds):
                    await never.wait()
            except TimeoutError:
                fired += 1

        tasks = [asyncio.create_task(wait(0.02 + i * 0.001)) for i in range(200)]
        await asyncio.sleep(0)
        timers = sum(1 for handle in getattr(loop, "_scheduled", []) if not handle.cancelled())
        await asyncio.gather(*tasks)
        assert not _deadlines(loop).buckets  # every entry has left
        return fired, timers

    fired, timers = asyncio.run(main())
    assert fired == 200
    assert timers == 1  # the loop holds one timer for all 200 deadlines


def test_a_deadline_works_on_each_new_loop() -> None:
    for _ in range(3):
        with pytest.raises(TimeoutError):
            asyncio.run(_expire_soon())


async def _expire_soon() -> None:
    async with Deadline(0.01):
        await asyncio.sleep(1)
