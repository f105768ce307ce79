"""The worker finds the address other workers reach it at from ECS task metadata, and
holds ECS task scale-in protection while it has open streams (against a fake agent)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from containers.worker.ecs import METADATA_ENV, TaskProtection, advertise_url
from tests.fakes.ecs_agent import FakeAgent

TASK = {
    "Containers": [
        {"Name": "~internal~ecs~pause", "Networks": []},
        {"Name": "Worker", "Networks": [{"NetworkMode": "awsvpc", "IPv4Addresses": ["10.0.3.17"]}]},
    ]
}


@pytest.fixture
def metadata() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(TASK).encode() if self.path.endswith("/task") else b"{}"
            self.send_response(200 if self.path.endswith("/task") else 404)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v4/abc"
    server.shutdown()


def test_advertise_url_from_task_metadata(metadata: str) -> None:
    assert advertise_url({METADATA_ENV: metadata}) == "http://10.0.3.17:8000"


def test_outside_ecs_there_is_none() -> None:
    assert advertise_url({}) is None


# -- scale-in protection while streams are open --------------------------------------------


@pytest.fixture
def agent() -> Iterator[FakeAgent]:
    fake = FakeAgent()
    yield fake
    fake.server.shutdown()


async def settle(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_protection_is_set_renewed_and_cleared_with_the_open_streams(agent: FakeAgent) -> None:
    async def main() -> None:
        protection = TaskProtection(agent.uri, minutes=3, linger=0.1, renew=0.2)
        protection.start()
        protection.changed(1)  # the first stream opens
        await settle(lambda: protection.protected)
        assert agent.puts[0] == {"ProtectionEnabled": True, "ExpiresInMinutes": 3}
        await settle(lambda: len(agent.puts) >= 3)  # renewed while streams stay open
        assert set(agent.states()) == {True}
        protection.changed(0)  # the last one closes
        await settle(lambda: not protection.protected)
        assert agent.puts[-1] == {"ProtectionEnabled": False}
        count = len(agent.puts)
        await asyncio.sleep(0.3)
        assert len(agent.puts) == count  # nothing more while no stream is open
        await protection.aclose()
        assert len(agent.puts) == count

    asyncio.run(main())


def test_a_short_gap_between_streams_keeps_the_protection(agent: FakeAgent) -> None:
    async def main() -> None:
        protection = TaskProtection(agent.uri, linger=0.5)
        protection.start()
        protection.changed(1)
        await settle(lambda: agent.states() == [True])
        protection.changed(0)
        await asyncio.sleep(0.1)
        protection.changed(1)
        await asyncio.sleep(0.6)
        assert agent.states() == [True]  # not cleared and set again for a 0.1 s gap
        await protection.aclose()  # stopping clears it
        assert agent.states() == [True, False]

    asyncio.run(main())


def test_an_agent_that_refuses_is_retried_and_never_raises(agent: FakeAgent) -> None:
    agent.fail = True

    async def main() -> None:
        protection = TaskProtection(agent.uri, retry=0.05)
        protection.start()
        protection.changed(1)
        await settle(lambda: len(agent.puts) >= 2)
        assert not protection.protected
        agent.fail = False
        await settle(lambda: protection.protected)
        await protection.aclose()

    asyncio.run(main())


def test_without_an_agent_it_does_nothing() -> None:
    async def main() -> None:
        protection = TaskProtection(None)
        protection.start()
        protection.changed(1)
        protection.changed(0)
        assert not protection.enabled and not protection.protected
        await protection.aclose()

    asyncio.run(main())
