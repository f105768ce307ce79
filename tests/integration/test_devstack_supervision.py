"""The local stack supervises its components as AWS does: a worker that dies is started
again (as ECS replaces a stopped task), the platform keeps serving meanwhile, and the
survivors take the dead worker's runs over, saying so in their logs. `make dev`'s own loop
(`python -m devstack`) goes on too."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.stack import ROOT, LocalStack, StackConfig, free_port
from services.runs.store import RunStore

STEP = {"model": "local/simulator", "messages": [{"role": "user", "content": "step"}]}


@pytest.fixture(scope="module")
def supervised(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    config = StackConfig(
        workers=2,
        first_token_ms=400,
        chunk_ms=10,
        run_lease_seconds=2,
        run_heartbeat_seconds=0.5,
        run_watchdog_seconds=1,
        log_dir=tmp_path_factory.mktemp("supervised-logs"),
    )
    with LocalStack(config) as running:
        yield running


def auth(stack: LocalStack) -> dict[str, str]:
    return {"authorization": f"Bearer {stack.api_key}"}


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_a_killed_worker_comes_back_and_its_run_is_taken_over(
    supervised: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    stack = supervised
    caplog.set_level(logging.WARNING, logger="switchboard.devstack")
    run = httpx.post(
        f"{stack.api_url}/runs",
        json={"kind": "pipeline", "input": {"steps": [STEP] * 4}, "background": True},
        headers=auth(stack),
        timeout=30,
    ).json()
    store = RunStore(stack.client("dynamodb"), stack.config.table)
    deadline = time.monotonic() + 30
    record = None
    while time.monotonic() < deadline:  # wait until the first step is checkpointed
        record = store.get("dev", run["id"])
        if record is not None and record.progress.get("completed_steps", 0) >= 1:
            break
        time.sleep(0.05)
    assert record is not None and record.owner is not None
    victim = stack.worker_index(record.owner)
    killed = stack.worker_process(victim)
    killed.send_signal(signal.SIGKILL)
    killed.wait(10)

    # The platform keeps serving while the worker is down or starting again.
    chat = {"model": "local/simulator", "messages": [{"role": "user", "content": "still?"}]}
    for door in (stack.api_url, stack.stream_url):
        answer = httpx.post(f"{door}/chat/completions", json=chat, headers=auth(stack), timeout=30)
        assert answer.status_code == 200, answer.text

    # The worker comes back, as a new process on its port.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (
        stack.worker_process(victim).pid != killed.pid and healthy(stack.worker_urls[victim])
    ):
        time.sleep(0.2)
    assert stack.worker_process(victim).pid != killed.pid
    assert healthy(stack.worker_urls[victim])
    assert f"worker-{victim} exited (killed by SIGKILL); starting it again" in caplog.text

    # The run finishes, taken over once from its last checkpoint.
    deadline = time.monotonic() + 60
    done: dict[str, Any] = {}
    while time.monotonic() < deadline:
        done = httpx.get(f"{stack.api_url}/runs/{run['id']}", headers=auth(stack)).json()
        if done["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.2)
    assert done["status"] == "succeeded" and done["attempts"] == 2
    final = store.get("dev", run["id"])
    assert final is not None and final.owner not in (None, record.owner)
    line = (
        f"run {run['id']} taken over: owner {record.owner} let its lease lapse; "
        f"new owner {final.owner}, attempt 2"
    )
    logs = "".join(stack.logs(f"worker-{i}") for i in range(len(stack.worker_urls)))
    assert line in logs


def _children(pid: int) -> dict[int, str]:
    """The command lines of `pid`'s child processes (Linux /proc)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == pid:
                found[int(entry.name)] = (entry / "cmdline").read_text().replace("\0", " ")
        except (OSError, ValueError, IndexError):
            continue
    return found


def _workers(pid: int) -> dict[int, int]:
    """Each worker process of the stack `pid` runs, by its port."""
    return {
        int(re.search(r"--port (\d+)", cmd).group(1)): child  # type: ignore[union-attr]
        for child, cmd in _children(pid).items()
        if "containers.worker.app" in cmd
    }


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_make_devs_own_loop_survives_a_dead_worker(tmp_path: Path) -> None:
    ports = {o: free_port() for o in ("--api-port", "--stream-port", "--worker-port", "--aws-port")}
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY") and not k.startswith("SWITCHBOARD_")
    }
    args = [sys.executable, "-m", "devstack", "--workers", "2", "--first-token-ms", "0",
            "--chunk-ms", "0", "--data-dir", str(tmp_path / "devstack"),
            *(str(x) for kv in ports.items() for x in kv)]  # fmt: skip
    stderr = (tmp_path / "stderr").open("w+")
    # Ctrl-C as from a terminal: a shell starting the suite in the background (`&` without
    # job control) leaves SIGINT ignored, and an ignored SIGINT is inherited.
    devstack = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        assert devstack.stdout is not None
        key = None
        deadline = time.monotonic() + 120
        while key is None and time.monotonic() < deadline:
            line = devstack.stdout.readline().decode()
            assert line or devstack.poll() is None, "python -m devstack exited"
            if "Development API key" in line:
                key = line.split()[3]
        assert key is not None and key.startswith("sb-")
        # The rest (a console line per request) is drained: a full pipe would block the stack.
        threading.Thread(target=devstack.stdout.read, daemon=True).start()
        workers = _workers(devstack.pid)
        assert len(workers) == 2
        port, victim = sorted(workers.items())[0]
        os.kill(victim, signal.SIGKILL)

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            back = _workers(devstack.pid).get(port)
            if back is not None and back != victim and healthy(f"http://127.0.0.1:{port}"):
                break
            time.sleep(0.2)
        assert devstack.poll() is None, "the stack stopped when a worker died"
        assert _workers(devstack.pid).get(port) not in (None, victim)
        models = httpx.get(
            f"http://127.0.0.1:{ports['--api-port']}/v1/models",
            headers={"authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert models.status_code == 200
        stderr.seek(0)
        assert "exited (killed by SIGKILL); starting it again" in stderr.read()
    finally:
        devstack.send_signal(signal.SIGINT)
        asked = time.monotonic()
        try:
            # The stack's own bound: 10 s for the components, then 10 s for the embedded
            # AWS (each killed past it).
            code = devstack.wait(60)
        except subprocess.TimeoutExpired:
            devstack.kill()
            code = devstack.wait()
        took = time.monotonic() - asked
        stderr.seek(0)
        said = stderr.read()
        stderr.close()
    assert code == 0, f"exit {code} {took:.1f} s after SIGINT; stderr:\n{said[-2000:]}"
