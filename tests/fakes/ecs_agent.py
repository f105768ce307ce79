"""A fake ECS agent: the task-protection endpoint a task reaches at `$ECS_AGENT_URI`."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeAgent:
    """The ECS agent's task-protection endpoint on loopback: records each PUT, answers as
    the agent does (`{"protection": {...}}`), or with a failure when told to."""

    def __init__(self) -> None:
        self.puts: list[dict[str, object]] = []
        self.fail = False
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length))
                if self.path != "/api/task-123/task-protection/v1/state":
                    self.send_response(404)
                    self.end_headers()
                    return
                agent.puts.append(body)
                if agent.fail:
                    answer: dict[str, object] = {
                        "failure": {"Arn": "arn:task", "Reason": "TASK_NOT_VALID"}
                    }
                else:
                    answer = {
                        "protection": {
                            "ExpirationDate": "2026-01-01T00:10:00Z",
                            "ProtectionEnabled": body["ProtectionEnabled"],
                            "TaskArn": "arn:aws:ecs:eu-west-1:123456789012:task/c/123",
                        }
                    }
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}/api/task-123"

    def states(self) -> list[object]:
        return [p["ProtectionEnabled"] for p in self.puts]
