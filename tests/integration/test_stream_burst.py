"""A burst of 2,000 concurrent streams through the stream front door (issue 15): every one
completes, all 2,000 are open upstream at the same time (the door queues none of them),
and `/health` is answered throughout.

The door runs as `lambdas/stream/run.sh` starts it, in front of the Node upstream of
`make bench` (bench/upstream.js), which holds each stream for a few seconds before its
chunks and counts how many it holds at once; Node's `bench/hold.js` opens the streams.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench.__main__ import door_command
from devstack.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
STREAMS = 2000
HOLD_MS = 10_000

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node")


def _raise_open_file_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"the open-file hard limit ({hard}) is below the {need} this burst needs")
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it


@contextmanager
def _process(
    args: list[str], env: dict[str, str] | None = None, *, read: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    # Unread, a pipe fills (64 KiB: some 200 access lines of the door) and blocks its writer.
    stdout = subprocess.PIPE if read else subprocess.DEVNULL
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=stdout)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read())


def test_two_thousand_concurrent_streams_through_the_door() -> None:
    _raise_open_file_limit(2 * STREAMS + 2000)
    upstream_port, door_port = free_port(), free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SWITCHBOARD_TABLE": "unused",
        "SWITCHBOARD_UPSTREAM_URL": f"http://127.0.0.1:{upstream_port}",
    }
    with (
        _process(["node", "bench/upstream.js", str(upstream_port)], read=True) as upstream,
        _process(door_command(door_port), env) as door,
    ):
        assert upstream.stdout is not None and upstream.stdout.readline().strip() == b"ready"
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(f"http://127.0.0.1:{door_port}/health", 1)
                break
            except OSError:
                assert door.poll() is None, "the door exited"
                assert time.monotonic() < deadline, "the door did not start"
                time.sleep(0.1)

        probes: list[float] = []
        failures: list[str] = []
        done = threading.Event()

        def probe() -> None:
            while not done.wait(0.05):
                started = time.monotonic()
                try:
                    _get(f"http://127.0.0.1:{door_port}/health", 10)
                    probes.append(time.monotonic() - started)
                except OSError as exc:
                    failures.append(repr(exc))

        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        body = {
            "model": f"bench-{HOLD_MS}ms",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
        }
        held = subprocess.run(
            ["node", "bench/hold.js", f"http://127.0.0.1:{door_port}/v1/chat/completions",
             str(STREAMS), json.dumps(body), json.dumps({"authorization": "Bearer sb-burst"})],
            cwd=ROOT, capture_output=True, text=True, timeout=240, check=True,
        )  # fmt: skip
        done.set()
        prober.join()
        result = json.loads(held.stdout.strip().splitlines()[-1])
        at_once = json.loads(_get(f"http://127.0.0.1:{upstream_port}/stats"))["max_waiting"]

    slowest = max(probes, default=float("inf"))
    print(
        f"\n{STREAMS} streams through the stream door: {result['ok']} completed, "
        f"{result['failed']} failed, {at_once} open upstream at once, {result['seconds']:.1f} s; "
        f"/health answered {len(probes)} times during the burst, slowest {slowest * 1000:.0f} ms, "
        f"{len(failures)} unanswered"
    )
    assert result["ok"] == STREAMS, result["first_error"]
    assert at_once == STREAMS  # none waited for another to finish
    assert not failures, failures[:3]
    assert len(probes) >= 10 and slowest < 5.0
