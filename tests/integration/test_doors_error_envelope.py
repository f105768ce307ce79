"""Every error a client can receive from a local door (the API Gateway emulator, the stream
front door, the workers' load balancer, each worker) has the documented envelope, even
for requests no HTTP client sends: a malformed request line or header (answered by uvicorn
itself), odd methods, request targets that are not paths. Sent over raw sockets."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest

from devstack.stack import LocalStack
from tests.integration.doors import dechunk

ODD = [
    b"GARBAGE\r\n\r\n",
    b"GET /v1/models HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n",
    b"GET /v1/\x01models HTTP/1.1\r\nHost: x\r\n\r\n",
    b"TRACE /v1/models HTTP/1.1\r\nHost: x\r\n\r\n",
    b"PROPFIND /v1/models HTTP/1.1\r\nHost: x\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
]


def doors(stack: LocalStack) -> dict[str, tuple[str, int]]:
    urls = {"api": stack.api_url, "stream": stack.stream_url, "balancer": stack.worker_url}
    urls |= {f"worker-{i}": url for i, url in enumerate(stack.worker_urls)}
    found = {}
    for name, url in urls.items():
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        found[name] = (parts.hostname, parts.port)
    return found


def exchange(address: tuple[str, int], raw: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(raw.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("raw", ODD, ids=[r.split(b"\r\n")[0].decode("latin-1") for r in ODD])
def test_every_door_answers_odd_requests_with_the_error_envelope(
    stack: LocalStack, raw: bytes
) -> None:
    for name, address in doors(stack).items():
        status, headers, body = exchange(address, raw)
        assert 400 <= status < 500, (name, status, body[:200])
        assert headers.get("content-type", "").startswith("application/json"), (name, body[:200])
        error = json.loads(body)["error"]
        assert set(error) == {"message", "type", "param", "code"}, (name, error)
