"""The uvicorn launcher (services/web/serve.py): a request uvicorn cannot parse is
answered with the OpenAI error envelope, not uvicorn's text/plain line. Shown with raw
sockets, since no HTTP client sends such requests."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.stack import ROOT, free_port


async def tiny_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """What the launcher serves in these tests."""
    if scope["type"] != "http":
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    chosen = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "services.web.serve", "tests.unit.test_uvicorn_json:tiny_app",
         "--host", "127.0.0.1", "--port", str(chosen), "--log-level", "error",
         "--no-server-header"],
        cwd=ROOT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", chosen), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, "the launcher exited"
                time.sleep(0.05)
        yield chosen
    finally:
        server.terminate()
        server.wait(10)


def exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `raw` on a new connection; the status, headers and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep and b"content-length" in head.lower():
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                if len(body) >= length:
                    break
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return status, headers, body


MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
]


@pytest.mark.parametrize("raw", MALFORMED, ids=range(len(MALFORMED)))
def test_a_malformed_request_is_answered_with_the_error_envelope(port: int, raw: bytes) -> None:
    status, headers, body = exchange(port, raw)
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_http_request"


def test_a_well_formed_request_reaches_the_app(port: int) -> None:
    status, _, body = exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (status, body) == (200, b"ok")


def test_the_launcher_refuses_another_http_implementation() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.web.serve", "x:y", "--http", "h11"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "httptools only" in result.stderr


def test_every_server_that_ships_starts_through_the_launcher() -> None:
    """The worker image, the stream Lambda and the local stack (uvicorn alone would answer
    a malformed request in text/plain)."""
    from devstack.stack import LocalStack, StackConfig

    dockerfile = (ROOT / "containers" / "worker" / "Dockerfile").read_text()
    cmd = dockerfile[dockerfile.index("\nCMD ") :]
    assert '"-m", "services.web.serve", "containers.worker.app:create_app"' in cmd
    run_sh = (ROOT / "lambdas" / "stream" / "run.sh").read_text()
    assert "exec python3 -m services.web.serve lambdas.stream.app:create_app" in run_sh
    stack = LocalStack(StackConfig())
    for worker in (False, True):
        assert stack._uvicorn("m", 1, worker=worker)[:2] == ["-m", "services.web.serve"]
