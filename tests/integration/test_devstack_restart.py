"""`make dev` stopped and started again: the same keys, and with `--keep-state` the same
tables, objects and queued messages; without it, a fresh state that says so.

Each run is `python -m devstack` (with a scratch `--data-dir` in place of `.devstack/`),
stopped with SIGTERM as a closing terminal does."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import boto3
import httpx

from devstack.stack import AWS_IDENTITY, PROVIDER_KEYS, ROOT, free_port


@dataclass
class Run:
    banner: str
    api: str
    aws: str

    def line(self, label: str) -> str:
        found = re.search(rf"^  {label}\s+(.+)$", self.banner, re.MULTILINE)
        assert found, f"no {label!r} line in:\n{self.banner}"
        return found.group(1).strip()

    @property
    def api_key(self) -> str:
        return self.line("Development API key").split()[0]

    @property
    def admin_key(self) -> str:
        return self.line("Admin key")

    def s3(self) -> Any:
        return boto3.client(
            "s3", endpoint_url=self.aws, region_name="us-east-1",
            aws_access_key_id="local", aws_secret_access_key="local",
        )  # fmt: skip


def _read_banner(stdout: IO[str], process: subprocess.Popen[str], log: Path) -> str:
    lines: list[str] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = stdout.readline()
        if not line:
            raise AssertionError(f"make dev exited ({process.poll()}):\n{log.read_text()}")
        lines.append(line)
        if line.startswith("Ctrl-C stops everything"):
            return "".join(lines)
    raise AssertionError("no banner within 180 s")


@contextmanager
def make_dev(directory: Path, *args: str) -> Iterator[Run]:
    ports = [free_port() for _ in range(4)]
    argv = [
        "--api-port", str(ports[0]), "--stream-port", str(ports[1]),
        "--worker-port", str(ports[2]), "--aws-port", str(ports[3]),
        "--workers", "1", "--first-token-ms", "0", "--chunk-ms", "0", *args,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in (*PROVIDER_KEYS, *AWS_IDENTITY)}
    log = directory / f"make-dev-{ports[0]}.log"
    with log.open("w") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack", "--data-dir", str(directory), *argv],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=errors, text=True,
        )  # fmt: skip
        try:
            assert process.stdout is not None
            banner = _read_banner(process.stdout, process, log)
            # The rest (a console line per request) is drained: a full pipe would block the stack.
            threading.Thread(target=process.stdout.read, daemon=True).start()
            yield Run(banner, f"http://127.0.0.1:{ports[0]}/api/v1", f"http://127.0.0.1:{ports[3]}")
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(150) == 0, log.read_text()


def _bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_keys_and_kept_state_survive_a_restart(tmp_path: Path) -> None:
    with make_dev(tmp_path, "--keep-state") as first:
        assert first.line("State").startswith(f"kept in {tmp_path}/state/aws.json: restored 0")
        conversation = httpx.post(
            f"{first.api}/conversations", json={"title": "kept"}, headers=_bearer(first.api_key)
        )
        assert conversation.status_code == 200, conversation.text
        tenant = httpx.post(
            f"{first.api}/admin/tenants", json={"id": "acme", "name": "Acme"},
            headers=_bearer(first.admin_key),
        )  # fmt: skip
        assert tenant.status_code == 200, tenant.text
        first.s3().put_object(Bucket="switchboard-local", Key="acme/a.txt", Body=b"kept")
    kept_keys = (first.api_key, first.admin_key)
    assert (tmp_path / "keys.json").exists() and (tmp_path / "state" / "aws.json").exists()

    with make_dev(tmp_path, "--keep-state") as second:
        assert (second.api_key, second.admin_key) == kept_keys
        assert second.line("Keys").startswith(f"kept in {tmp_path}/keys.json")
        state = second.line("State")
        restored = re.search(r"restored ([\d,]+) items, (\d+) objects", state)
        assert restored and int(restored.group(1).replace(",", "")) > 0, state
        assert restored.group(2) == "1"
        again = httpx.get(
            f"{second.api}/conversations/{conversation.json()['id']}",
            headers=_bearer(second.api_key),
        )
        assert again.status_code == 200 and again.json()["title"] == "kept"
        acme = httpx.get(f"{second.api}/admin/tenants/acme", headers=_bearer(second.admin_key))
        assert acme.status_code == 200 and acme.json()["name"] == "Acme"
        body = second.s3().get_object(Bucket="switchboard-local", Key="acme/a.txt")["Body"]
        assert body.read() == b"kept"

    with make_dev(tmp_path, "--new-keys") as third:  # new keys, state in memory
        assert third.api_key != kept_keys[0] and third.admin_key != kept_keys[1]
        assert third.line("State").startswith("in memory")
        assert third.line("Keys").startswith("new, as asked")
        old = httpx.get(f"{third.api}/conversations", headers=_bearer(kept_keys[0]))
        assert old.status_code == 401
        fresh = httpx.get(f"{third.api}/conversations", headers=_bearer(third.api_key))
        assert fresh.status_code == 200 and fresh.json()["data"] == []

    kept = json.loads((tmp_path / "keys.json").read_text())  # what the next run starts with
    assert (kept["api_key"], kept["admin_key"]) == (third.api_key, third.admin_key)
