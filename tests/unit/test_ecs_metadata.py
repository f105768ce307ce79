"""The worker finds the address other workers reach it at from ECS task metadata."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from containers.worker.ecs import METADATA_ENV, advertise_url

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
