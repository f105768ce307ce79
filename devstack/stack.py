"""The whole platform on 127.0.0.1: moto (DynamoDB, SQS, S3), the worker, the API Gateway
emulator in front of the gateway Lambda's handler, and the stream front door.

Each component runs in its own process, as it would on AWS, configured only through the
environment variables the CDK stacks set. `make dev` and the integration tests both use
`LocalStack`.
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import boto3
import httpx

from devstack.tables import create_table
from services.tenancy.keys import KeyStore
from services.tenancy.tenants import TenantStore

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
DEV_TENANT = "dev"


@dataclass
class StackConfig:
    """Everything about a local stack that a developer or a test may want to change."""

    host: str = "127.0.0.1"
    api_port: int = 0  # 0: any free port
    stream_port: int = 0
    worker_port: int = 0  # the load balancer in front of the workers
    moto_port: int = 0
    workers: int = 1
    # How long the gateway waits before answering 202 with a run (None: as deployed, a
    # few seconds below the integration timeout).
    sync_deadline_seconds: float | None = None
    run_lease_seconds: float = 30.0
    run_heartbeat_seconds: float = 10.0
    run_watchdog_seconds: float = 60.0
    run_max_attempts: int = 3
    run_poll_seconds: float = 0.5
    integration_timeout_seconds: float = 29.0
    forward_timeout_seconds: float = 28.0
    first_token_ms: float = 0.0
    chunk_ms: float = 0.0
    words_per_chunk: int = 1
    max_request_bytes: int = 4 * 1024 * 1024
    table: str = "switchboard-local"
    bucket: str = "switchboard-local"
    dev_api_key: str | None = None
    admin_key: str | None = None  # None: a new one per start
    # How long each component may take to answer its first probe (longer on a busy host).
    ready_timeout_seconds: float = 120.0
    log_dir: Path | None = None  # None: children log to this process's stdout/stderr
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]
    log: IO[bytes] | None


_given: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1") -> int:
    """A port free to listen on, for a component started a moment later.

    Not one from the kernel's ephemeral range: between this check and the component's
    bind, any outgoing connection on the machine may be given that port as its own end
    (under load, a test run makes thousands), and the component then fails to start. A
    port below the range is only ever taken by something that asks for it by number.
    """
    low, _ = _ephemeral_range()
    first = 20000 if low > 21000 else 1024
    top = low if low > 21000 else 65535
    for _ in range(200):
        port = random.randrange(first, top)
        if port in _given:
            continue
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _given.add(port)
        return port
    with socket.socket() as sock:  # everything tried was taken: let the kernel choose
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Children must not outlive the stack, even when it is killed (Linux only)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class LocalStack:
    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        c = self.config
        self.ports = {
            "api": c.api_port or free_port(c.host),
            "stream": c.stream_port or free_port(c.host),
            "worker": c.worker_port or free_port(c.host),
            "moto": c.moto_port or free_port(c.host),
        }
        self.worker_ports = [free_port(c.host) for _ in range(c.workers)]
        self.queue_url = ""
        self.dlq_url = ""
        self.internal_token = secrets.token_urlsafe(32)
        # The admin API's key (only the gateway knows it, as SWITCHBOARD_ADMIN_KEY).
        self.admin_key = c.admin_key or "sb-admin-" + secrets.token_urlsafe(32)
        self.api_key = ""
        self._children: list[_Child] = []

    # URLs a client uses: each is what an SDK's base_url should be.
    @property
    def api_url(self) -> str:
        return f"http://{self.config.host}:{self.ports['api']}/v1"

    @property
    def stream_url(self) -> str:
        return f"http://{self.config.host}:{self.ports['stream']}/v1"

    @property
    def worker_url(self) -> str:
        """The load balancer in front of the workers."""
        return f"http://{self.config.host}:{self.ports['worker']}"

    @property
    def worker_urls(self) -> list[str]:
        """Each worker process, by its index."""
        return [f"http://{self.config.host}:{port}" for port in self.worker_ports]

    def worker_process(self, index: int) -> subprocess.Popen[bytes]:
        return next(c.process for c in self._children if c.name == f"worker-{index}")

    @property
    def sync_deadline_seconds(self) -> float:
        if self.config.sync_deadline_seconds is not None:
            return self.config.sync_deadline_seconds
        timeout = self.config.integration_timeout_seconds
        return min(25.0, max(timeout - 4.0, timeout * 0.75))

    @property
    def aws_endpoint(self) -> str:
        return f"http://{self.config.host}:{self.ports['moto']}"

    def client(self, service: str) -> Any:
        """A boto3 client for the embedded AWS services."""
        return boto3.client(
            service,
            endpoint_url=self.aws_endpoint,
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def start(self) -> LocalStack:
        try:
            self._spawn("aws", ["-m", "devstack.aws", "--host", self.config.host,
                                "--port", str(self.ports["moto"])], self._env())  # fmt: skip
            self._wait_ready({"aws": f"{self.aws_endpoint}/moto-api/"})
            dynamodb = self.client("dynamodb")
            create_table(dynamodb, self.config.table)
            self.client("s3").create_bucket(Bucket=self.config.bucket)
            TenantStore(dynamodb, self.config.table).create(DEV_TENANT, "Development")
            minted = KeyStore(dynamodb, self.config.table).create(
                DEV_TENANT, "development", secret=self.config.dev_api_key
            )
            self.api_key = minted.secret
            self._create_queues()
            env = self._env()
            for index, port in enumerate(self.worker_ports):
                worker_env = {
                    **env,
                    "SWITCHBOARD_WORKER_ID": f"worker-{index}",
                    "SWITCHBOARD_ADVERTISE_URL": self.worker_urls[index],
                }
                args = self._uvicorn("containers.worker.app", port, worker=True)
                self._spawn(f"worker-{index}", args, worker_env)
            backends = [f"{self.config.host}:{port}" for port in self.worker_ports]
            self._spawn(
                "balancer",
                ["-m", "devstack.balancer", "--host", self.config.host,
                 "--port", str(self.ports["worker"]), *backends],
                env,
            )  # fmt: skip
            self._spawn("stream", self._uvicorn("lambdas.stream.app", self.ports["stream"]), env)
            self._spawn(
                "apigw",
                self._uvicorn("devstack.apigw", self.ports["api"]),
                {**env, "SWITCHBOARD_ADMIN_KEY": self.admin_key},
            )
            self._wait_ready(
                {
                    **{f"worker-{i}": f"{url}/health" for i, url in enumerate(self.worker_urls)},
                    "balancer": f"{self.worker_url}/health",
                    "stream": f"http://{self.config.host}:{self.ports['stream']}/health",
                    # API Gateway has no health route: an unauthenticated call answering
                    # 401 shows that the emulator and the gateway handler are both up (a
                    # control-plane route: the gateway handler serves no other).
                    "apigw": f"{self.api_url}/runs",
                }
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the components, then the AWS services they use: a worker that stops writes
        its queued usage records first, and needs DynamoDB to do it."""
        services = [c for c in self._children if c.name == "aws"]
        self._terminate([c for c in self._children if c.name != "aws"])
        self._terminate(services)
        self._children.clear()

    @staticmethod
    def _terminate(children: list[_Child]) -> None:
        for child in children:
            if child.process.poll() is None:
                child.process.terminate()
        deadline = time.monotonic() + 10
        for child in children:
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
            if child.log is not None:
                child.log.close()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def exited(self) -> str | None:
        """The name of a component whose process has exited, if any has."""
        return next((c.name for c in self._children if c.process.poll() is not None), None)

    def logs(self, name: str) -> str:
        """What a child process has logged so far (only with `log_dir`)."""
        if self.config.log_dir is None:
            return ""
        path = self.config.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _env(self) -> dict[str, str]:
        c = self.config
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "AWS_ENDPOINT_URL": self.aws_endpoint,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "SWITCHBOARD_TABLE": c.table,
            "SWITCHBOARD_BUCKET": c.bucket,
            "SWITCHBOARD_INTERNAL_TOKEN": self.internal_token,
            "SWITCHBOARD_WORKER_URL": self.worker_url,
            "SWITCHBOARD_MAX_REQUEST_BYTES": str(c.max_request_bytes),
            "SWITCHBOARD_FORWARD_TIMEOUT_SECONDS": str(c.forward_timeout_seconds),
            "SWITCHBOARD_APIGW_TIMEOUT_SECONDS": str(c.integration_timeout_seconds),
            "SWITCHBOARD_LOCAL_FIRST_TOKEN_MS": str(c.first_token_ms),
            "SWITCHBOARD_LOCAL_CHUNK_MS": str(c.chunk_ms),
            "SWITCHBOARD_LOCAL_WORDS_PER_CHUNK": str(c.words_per_chunk),
            "SWITCHBOARD_RUN_QUEUE_URL": self.queue_url,
            "SWITCHBOARD_RUN_DLQ_URL": self.dlq_url,
            "SWITCHBOARD_RUN_LEASE_SECONDS": str(c.run_lease_seconds),
            "SWITCHBOARD_RUN_HEARTBEAT_SECONDS": str(c.run_heartbeat_seconds),
            "SWITCHBOARD_RUN_WATCHDOG_SECONDS": str(c.run_watchdog_seconds),
            "SWITCHBOARD_RUN_MAX_ATTEMPTS": str(c.run_max_attempts),
            "SWITCHBOARD_RUN_POLL_SECONDS": str(c.run_poll_seconds),
            "SWITCHBOARD_SYNC_DEADLINE_SECONDS": str(self.sync_deadline_seconds),
        }
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
            env.pop(name, None)
        env.update(c.extra_env)
        return env

    def _create_queues(self) -> None:
        """The run queue and its dead-letter queue, as the CDK app creates them."""
        sqs = self.client("sqs")
        self.dlq_url = sqs.create_queue(QueueName="switchboard-runs-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=self.dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.queue_url = sqs.create_queue(
            QueueName="switchboard-runs",
            Attributes={
                "VisibilityTimeout": "30",
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1000}
                ),
            },
        )["QueueUrl"]

    def _uvicorn(self, module: str, port: int, *, worker: bool = False) -> list[str]:
        args = [
            "-m", "uvicorn", f"{module}:create_app", "--factory",
            "--host", self.config.host, "--port", str(port),
            "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        if worker:
            # As in the image (containers/worker/Dockerfile): the worker never reads the
            # client's address, so no proxy-headers middleware runs on every request, and
            # its answers do not name the server (one header less to check and write).
            args += ["--loop", "uvloop", "--http", "httptools", "--backlog", "16384"]
            args += ["--no-proxy-headers", "--no-server-header"]
        return args

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log: IO[bytes] | None = None
        if self.config.log_dir is not None:
            self.config.log_dir.mkdir(parents=True, exist_ok=True)
            log = (self.config.log_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT if log else None,
            preexec_fn=_die_with_parent,
        )
        self._children.append(_Child(name, process, log))

    def _wait_ready(self, probes: dict[str, str], timeout: float | None = None) -> None:
        """Wait until every probe answers 200 or 401, or fail naming what is not up."""
        timeout = self.config.ready_timeout_seconds if timeout is None else timeout
        deadline = time.monotonic() + timeout
        pending = dict(probes)
        while pending:
            for child in self._children:
                if child.process.poll() is not None:
                    raise RuntimeError(
                        f"{child.name} exited with code {child.process.returncode} during start-up"
                        + (f":\n{self.logs(child.name)}" if self.config.log_dir else "")
                    )
            for name, url in list(pending.items()):
                try:
                    status = httpx.get(url, timeout=1.0).status_code
                except httpx.TransportError:
                    continue
                if status in (200, 401):
                    del pending[name]
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {timeout:.0f} s: {', '.join(pending)}")
            if pending:
                time.sleep(0.05)
