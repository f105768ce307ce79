"""The whole platform on 127.0.0.1: moto (DynamoDB, SQS, S3), the workers behind their load
balancer, the API Gateway emulator (AI routes through the authorizer to the load balancer,
streamed; the control plane to the gateway Lambda's handler), and the stream front door.

Each component runs in its own process, as it would on AWS, configured only through the
environment variables the CDK stacks set. `make dev` and the integration tests both use
`LocalStack`.

The stack supervises its components as AWS runs them: a component that dies is started
again (a worker as ECS replaces a stopped task, under a new task id, so the survivors take
its runs over), except the embedded AWS services, whose state dies with them: then
`failure()` says so and `python -m devstack` stops.

The platform's own state (DynamoDB, SQS, S3, Secrets Manager) is always the embedded one,
through botocore's per-service endpoint variables (`AWS_ENDPOINT_URL_DYNAMODB`...), so any
other AWS service a component calls (Bedrock) is the real one. With `inherit_credentials`
(as `make dev` runs), the developer's provider keys reach the components, and so do their
AWS credentials when Bedrock is configured; otherwise the components get placeholder
credentials, which the embedded services accept.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import boto3
import httpx

from devstack.processes import die_with_parent
from devstack.tables import create_table
from services.tenancy.keys import KeyStore
from services.tenancy.tenants import TenantStore

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
DEV_TENANT = "dev"
PLACEHOLDER_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
# The services the platform keeps its state in: always the embedded ones, named as
# botocore's per-service endpoint variables name them (AWS_ENDPOINT_URL_<ID>).
EMBEDDED_SERVICES = ("DYNAMODB", "SQS", "S3", "SECRETS_MANAGER")
PROVIDER_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
# Where boto3 finds the developer's AWS identity (besides the shared config files).
AWS_IDENTITY = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
)
BEDROCK_SETTINGS = ("SWITCHBOARD_BEDROCK_MODELS", "SWITCHBOARD_BEDROCK_EMBEDDING_MODELS")
# A component that exits sooner than this after its start is crash-looping: it is started
# again after a growing pause (1, 2, 4... up to 30 s), as ECS backs off a failing task.
STEADY_SECONDS = 10.0

log = logging.getLogger("switchboard.devstack")


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
    # The gateway Lambda's integration timeout (CONTROL routes); AI routes stream from the
    # workers for up to `worker_timeout_seconds`, cut after `idle_timeout_seconds` with
    # nothing sent (API Gateway's STREAM limits: 15 min, and 5 min idle).
    integration_timeout_seconds: float = 29.0
    worker_timeout_seconds: float = 900.0
    idle_timeout_seconds: float = 300.0
    stage: str = "api"
    first_token_ms: float = 0.0
    chunk_ms: float = 0.0
    words_per_chunk: int = 1
    max_request_bytes: int = 4 * 1024 * 1024
    # How many execution environments the gateway Lambda may have at once; requests beyond
    # that wait for one (SWITCHBOARD_LAMBDA_CONCURRENCY).
    lambda_concurrency: int = 8
    # Pass the developer's provider keys (OPENAI_API_KEY...) and, when Bedrock is
    # configured, their AWS credentials to the components, as `make dev` does. Off, a
    # stack is hermetic: a developer's keys never reach a test's stack.
    inherit_credentials: bool = False
    # Start a component again when it dies (the embedded AWS services excepted).
    supervise: bool = True
    table: str = "switchboard-local"
    bucket: str = "switchboard-local"
    dev_api_key: str | None = None  # None: a new one per start
    admin_key: str | None = None  # None: a new one per start
    # Keep the embedded AWS's state (tables, objects, queued messages) in this file between
    # runs: restored at start, saved at stop (devstack.aws). None: in memory only.
    state_file: Path | None = None
    # How long each component may take to answer its first probe (longer on a busy host).
    ready_timeout_seconds: float = 120.0
    log_dir: Path | None = None  # None: children log to this process's stdout/stderr
    # How the components write their logs (SWITCHBOARD_LOG_FORMAT): JSON lines as deployed,
    # or `console`, one readable line per request (what `make dev` prints).
    log_format: str = "json"
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]
    log: IO[bytes] | None
    args: list[str]
    env: dict[str, str]
    started: float
    incarnation: int = 1
    crashes: int = 0  # exits in a row, each soon after its start
    restart_at: float | None = None


class StackError(RuntimeError):
    """The stack could not start; the message says what to do."""


class PortInUse(StackError):
    pass


# The fixed ports a developer chooses, each with what uses it and the option that moves it.
PORTS = {
    "api": ("the API Gateway emulator", "--api-port"),
    "stream": ("the stream front door", "--stream-port"),
    "worker": ("the workers' load balancer", "--worker-port"),
    "moto": ("the embedded DynamoDB/SQS/S3", "--aws-port"),
}


def check_port(host: str, port: int, name: str) -> None:
    """Raise `PortInUse`, naming the port and the option that moves it, unless `port` is
    free to listen on (as the component will: SO_REUSEADDR, so a port a stopped stack
    left in TIME_WAIT counts as free)."""
    what, option = PORTS[name]
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(
                    f"Port {port} ({what}) is already in use on {host}, perhaps by another "
                    f"`make dev`: stop that, or choose another port with "
                    f"`.venv/bin/python -m devstack {option} <port>`."
                ) from None
            raise PortInUse(
                f"Cannot listen on port {port} ({what}) on {host}: {exc.strerror}; choose "
                f"another port with `.venv/bin/python -m devstack {option} <port>`."
            ) from None


def check_ports(config: StackConfig) -> None:
    """`check_port` for every fixed port of `config` (0: any free port, not checked)."""
    for name, port in (("api", config.api_port), ("stream", config.stream_port),
                       ("worker", config.worker_port), ("moto", config.moto_port)):  # fmt: skip
        if port:
            check_port(config.host, port, name)


def developer_has_aws_credentials() -> bool:
    """Whether boto3 finds credentials for the developer (environment, profile, SSO,
    config files), without probing EC2 instance metadata (a second or two off EC2)."""
    import botocore.session

    session = botocore.session.Session()
    resolver = session.get_component("credential_provider")
    resolver.remove("iam-role")
    try:
        return resolver.load_credentials() is not None
    except Exception:
        return False


def developer_region(environ: Mapping[str, str]) -> str | None:
    """The region the developer's AWS configuration names, if any."""
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if region:
        return region
    import botocore.session

    try:
        configured = botocore.session.Session().get_config_variable("region")
    except Exception:
        return None
    return str(configured) if configured else None


def component_environment(
    environ: Mapping[str, str], aws_endpoint: str, *, inherit_credentials: bool
) -> dict[str, str]:
    """The environment every component starts from: `environ` with the platform's state on
    the embedded AWS endpoint, and only the credentials the stack means to pass on."""
    env = {k: v for k, v in environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    env.pop("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", None)  # it would ignore ours too
    bedrock = any(environ.get(name) for name in BEDROCK_SETTINGS)
    if inherit_credentials:
        # Endpoints the developer set for other services (AWS_ENDPOINT_URL_BEDROCK_RUNTIME)
        # stay theirs; a global AWS_ENDPOINT_URL would send Bedrock to the embedded AWS.
        env.update(
            {
                k: v
                for k, v in environ.items()
                if k.startswith("AWS_ENDPOINT_URL_")
                and k.removeprefix("AWS_ENDPOINT_URL_") not in EMBEDDED_SERVICES
            }
        )
    else:
        for name in PROVIDER_KEYS:
            env.pop(name, None)
    if inherit_credentials and bedrock and developer_has_aws_credentials():
        region = developer_region(environ)
        if region and not environ.get("SWITCHBOARD_BEDROCK_REGION"):
            env["SWITCHBOARD_BEDROCK_REGION"] = region
    else:
        # Nothing outside the stack needs AWS credentials: the embedded services take any,
        # and a developer's expired session must not break them.
        for name in AWS_IDENTITY:
            env.pop(name, None)
        env.update(PLACEHOLDER_CREDENTIALS)
    for service in EMBEDDED_SERVICES:
        env[f"AWS_ENDPOINT_URL_{service}"] = aws_endpoint
    # The platform's state is in the embedded services' region (queue URLs name it).
    env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = REGION
    return env


_given: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


# The request id of the calls the stack makes itself while starting (a cold start of each
# Lambda): their access lines read `... 401 ... req=devstack-warm-up`.
WARM_UP_ID = "devstack-warm-up"


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
        # The admin API's key (only the gateway knows it, as SWITCHBOARD_ADMIN_KEY).
        self.admin_key = c.admin_key or "sb-admin-" + secrets.token_urlsafe(32)
        self.api_key = ""
        # What the kept state brought back (`devstack.aws`'s counts), with `state_file`.
        self.restored: dict[str, Any] | None = None
        # Why the development key is not the one configured, when it cannot be.
        self.api_key_replaced: str | None = None
        self._children: list[_Child] = []
        self._lock = threading.Lock()  # the children, between the supervisor and `stop`
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._failure: str | None = None

    # URLs a client uses: each is what an SDK's base_url should be.
    @property
    def api_url(self) -> str:
        """The API's base URL (the emulator takes paths with the stage too, as the deployed
        `ApiUrl` has them: `/api/v1`)."""
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
        """The process of worker `index` now (a new one after a restart)."""
        return self.process(f"worker-{index}")

    def process(self, name: str) -> subprocess.Popen[bytes]:
        """The process of a component now: `aws`, `worker-N`, `balancer`, `stream`,
        `apigw`."""
        with self._lock:
            return next(c.process for c in self._children if c.name == name)

    @staticmethod
    def worker_index(worker_id: str) -> int:
        """The index of the worker whose id (a run's `owner`) is `worker_id`: `worker-N`,
        or `worker-N.K` for its K-th incarnation."""
        return int(worker_id.removeprefix("worker-").split(".")[0])

    @property
    def sync_deadline_seconds(self) -> float:
        """How long a worker answers a non-streamed call before it names the run that will
        hold the result: as deployed (240 s), below the idle timeout that would cut a
        response that sends nothing (the gateway's 29 s bounds the control plane only)."""
        if self.config.sync_deadline_seconds is not None:
            return self.config.sync_deadline_seconds
        return min(240.0, self.config.idle_timeout_seconds * 0.8)

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
        """Start every component and wait until each answers; raises `StackError` (a
        sentence saying what to do) when a fixed port is taken, before starting anything."""
        c = self.config
        check_ports(c)
        try:
            aws = ["-m", "devstack.aws", "--host", c.host, "--port", str(self.ports["moto"])]
            if c.state_file is not None:
                aws += ["--state", str(c.state_file)]
            self._spawn("aws", aws, self._env())
            self._wait_ready({"aws": f"{self.aws_endpoint}/moto-api/"})
            dynamodb = self.client("dynamodb")
            create_table(dynamodb, self.config.table)
            self.client("s3").create_bucket(Bucket=self.config.bucket)
            self._create_queues()
            if c.state_file is not None:
                self.restored = self._restore_state()
            tenants = TenantStore(dynamodb, self.config.table)
            if tenants.get(DEV_TENANT) is None:
                tenants.create(DEV_TENANT, "Development")
            self.api_key = self._dev_key(KeyStore(dynamodb, self.config.table))
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
            # The stream door relays AI routes with the client's own key: to the worker's
            # load balancer here, which authenticates that key as the API's authorizer would.
            stream_env = {"SWITCHBOARD_UPSTREAM_URL": self.worker_url, **env}
            self._spawn("stream", self._uvicorn("lambdas.stream.app", self.ports["stream"]),
                        stream_env)  # fmt: skip
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
                    "apigw": f"http://{self.config.host}:{self.ports['api']}/health",
                    # An unauthenticated call answering 401 shows that the gateway function
                    # is up (and gives it its first cold start here, not in a request).
                    "gateway function": f"{self.api_url}/runs",
                }
            )
            # The authorizer's first cold start, once the stack is up rather than before:
            # on a 2-core machine a third cold start during start-up delayed the workers'.
            threading.Thread(target=self._warm_authorizer, daemon=True).start()
        except BaseException:
            self.stop()
            raise
        if self.config.supervise:
            self._supervisor = threading.Thread(
                target=self._supervise, name="devstack-supervisor", daemon=True
            )
            self._supervisor.start()
        return self

    def _warm_authorizer(self) -> None:
        """One AI request with the development key: the authorizer lets it through."""
        # A stack stopped at once: the first request cold-starts it instead.
        headers = {"x-request-id": WARM_UP_ID, "authorization": f"Bearer {self.api_key}"}
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"{self.api_url}/models", timeout=30.0, headers=headers)

    def _restore_state(self) -> dict[str, Any]:
        """Load the kept state into the resources just created (devstack.aws)."""
        from devstack.aws import RESTORE_PATH

        response = httpx.post(f"{self.aws_endpoint}{RESTORE_PATH}", timeout=300)
        if response.status_code != 200:
            raise StackError(
                f"{response.json().get('error', response.text)}. Move the file away to start "
                "with an empty state."
            )
        counts: dict[str, Any] = response.json()
        for what in counts.get("skipped", []):
            log.warning("kept state: %s has nowhere to go now; left out", what)
        return counts

    def _dev_key(self, keys: KeyStore) -> str:
        """The development key: the configured one (stored unless the kept state has it
        already), or a new one."""
        wanted = self.config.dev_api_key
        if wanted is None:
            return keys.create(DEV_TENANT, "development").secret
        found = keys.lookup(wanted)
        if found is None:
            return keys.create(DEV_TENANT, "development", secret=wanted).secret
        if found.tenant_id == DEV_TENANT and found.status == "active":
            return wanted
        self.api_key_replaced = (
            f"the kept development key is {found.status} in the kept state"
            if found.tenant_id == DEV_TENANT
            else f"the kept development key belongs to tenant {found.tenant_id!r}"
        )
        return keys.create(DEV_TENANT, "development").secret

    def stop(self) -> None:
        """Stop the components, then the AWS services they use: a worker that stops writes
        its queued usage records first, and needs DynamoDB to do it."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
            self._supervisor = None
        with self._lock:
            children, self._children = list(self._children), []
        self._terminate([c for c in children if c.name != "aws"])
        # The embedded AWS writes the kept state as it stops: give it time to.
        saving = 120 if self.config.state_file is not None else 10
        self._terminate([c for c in children if c.name == "aws"], saving)

    @staticmethod
    def _terminate(children: list[_Child], grace: float = 10) -> None:
        for child in children:
            if child.process.poll() is None:
                child.process.terminate()
        deadline = time.monotonic() + grace
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

    def failure(self) -> str | None:
        """Why the stack cannot go on, once it cannot (a sentence), else None."""
        if self._failure is None and not self.config.supervise:
            with self._lock:
                dead = next((c for c in self._children if c.process.poll() is not None), None)
            if dead is not None:
                self._failure = f"{dead.name} exited with code {dead.process.returncode}"
        return self._failure

    def _supervise(self) -> None:
        while not self._stopping.wait(0.2):
            try:
                self._check_children()
            except Exception:
                log.exception("the supervisor could not check the components")

    def _check_children(self) -> None:
        now = time.monotonic()
        with self._lock:
            for child in self._children:
                code = child.process.poll()
                if code is None or self._stopping.is_set():
                    continue
                if child.name == "aws":
                    if self._failure is None:
                        self._failure = (
                            f"the embedded AWS services exited ({_exit_status(code)}), and "
                            "the platform's state with them"
                        )
                        log.error("%s; stopping the stack", self._failure)
                    continue
                if child.restart_at is None:
                    lived = now - child.started
                    child.crashes = child.crashes + 1 if lived < STEADY_SECONDS else 0
                    pause = min(30.0, 2.0 ** (child.crashes - 1)) if child.crashes else 0.0
                    child.restart_at = now + pause
                    log.warning(
                        "%s exited (%s); starting it again%s, as ECS replaces a stopped task",
                        self._label(child), _exit_status(code),
                        f" in {pause:.0f} s" if pause else "",
                    )  # fmt: skip
                if now >= child.restart_at:
                    self._restart(child)

    def _label(self, child: _Child) -> str:
        worker_id = child.env.get("SWITCHBOARD_WORKER_ID")
        return (
            f"{child.name} ({worker_id})" if worker_id and worker_id != child.name else child.name
        )

    def _restart(self, child: _Child) -> None:
        child.incarnation += 1
        if "SWITCHBOARD_WORKER_ID" in child.env:
            # A new task id, as ECS gives a replacement: the runs the dead one owned are
            # taken over, not mistaken for this one's.
            child.env = {**child.env, "SWITCHBOARD_WORKER_ID": f"{child.name}.{child.incarnation}"}
        child.process = self._popen(child.args, child.env, child.log)
        child.started = time.monotonic()
        child.restart_at = None
        log.warning("%s started again (pid %d)", self._label(child), child.process.pid)

    def logs(self, name: str) -> str:
        """What a child process has logged so far (only with `log_dir`)."""
        if self.config.log_dir is None:
            return ""
        path = self.config.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _env(self) -> dict[str, str]:
        c = self.config
        env = {
            **component_environment(
                os.environ, self.aws_endpoint, inherit_credentials=c.inherit_credentials
            ),
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "SWITCHBOARD_TABLE": c.table,
            "SWITCHBOARD_BUCKET": c.bucket,
            "SWITCHBOARD_WORKER_URL": self.worker_url,
            "SWITCHBOARD_MAX_REQUEST_BYTES": str(c.max_request_bytes),
            "SWITCHBOARD_APIGW_TIMEOUT_SECONDS": str(c.integration_timeout_seconds),
            "SWITCHBOARD_APIGW_WORKER_TIMEOUT_SECONDS": str(c.worker_timeout_seconds),
            "SWITCHBOARD_APIGW_IDLE_TIMEOUT_SECONDS": str(c.idle_timeout_seconds),
            "SWITCHBOARD_APIGW_STAGE": c.stage,
            "SWITCHBOARD_LAMBDA_CONCURRENCY": str(c.lambda_concurrency),
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
            "SWITCHBOARD_LOG_FORMAT": c.log_format,
        }
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
        # uvicorn through the launcher whose own errors have the OpenAI envelope, as in the
        # worker image and the stream Lambda.
        args = [
            "-m", "services.web.serve", f"{module}:create_app", "--factory",
            "--host", self.config.host, "--port", str(port),
            "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        if worker:
            # As in the image (containers/worker/Dockerfile): the worker never reads the
            # client's address, so no proxy-headers middleware runs on every request, and
            # its answers do not name the server (one header less to check and write).
            args += ["--loop", "uvloop", "--backlog", "16384"]
            args += ["--no-proxy-headers", "--no-server-header"]
        return args

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        output: IO[bytes] | None = None
        if self.config.log_dir is not None:
            self.config.log_dir.mkdir(parents=True, exist_ok=True)
            output = (self.config.log_dir / f"{name}.log").open("ab")
        process = self._popen(args, env, output)
        with self._lock:
            self._children.append(_Child(name, process, output, args, env, time.monotonic()))

    @staticmethod
    def _popen(
        args: list[str], env: dict[str, str], output: IO[bytes] | None
    ) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
            preexec_fn=die_with_parent,
        )

    def _wait_ready(self, probes: dict[str, str], timeout: float | None = None) -> None:
        """Wait until every probe answers 200 or 401, or fail naming what is not up. The
        probes run side by side (one waiting on a cold start holds up no other) on one
        client, each at most 10 times a second: start-up is CPU-bound on a small machine,
        and probing must not take the CPU from what it waits for."""
        timeout = self.config.ready_timeout_seconds if timeout is None else timeout
        deadline = time.monotonic() + timeout
        ready: set[str] = set()
        given_up = threading.Event()
        # Long enough for a function's first cold start: a shorter probe would give up on
        # it and start another environment.
        # Named, so the console's access line of a warm-up call says what it is.
        client = httpx.Client(timeout=10.0, headers={"x-request-id": WARM_UP_ID})

        def probe(name: str, url: str) -> None:
            while not given_up.is_set() and time.monotonic() < deadline:
                try:
                    status = client.get(url).status_code
                except httpx.TransportError:
                    status = None
                if status in (200, 401):
                    ready.add(name)
                    return
                given_up.wait(0.1)

        threads = [
            threading.Thread(target=probe, args=(name, url), daemon=True)
            for name, url in probes.items()
        ]
        for thread in threads:
            thread.start()
        try:
            while len(ready) < len(probes):
                for child in self._children:
                    if child.process.poll() is not None:
                        raise StackError(
                            f"{child.name} exited with code {child.process.returncode} during "
                            "start-up"
                            + (f":\n{self.logs(child.name)}" if self.config.log_dir else "")
                        )
                if time.monotonic() > deadline:
                    pending = [name for name in probes if name not in ready]
                    raise StackError(f"not ready after {timeout:.0f} s: {', '.join(pending)}")
                time.sleep(0.05)
        finally:
            given_up.set()
            ends = time.monotonic() + 11
            for thread in threads:
                thread.join(max(0.0, ends - time.monotonic()))
            if not any(thread.is_alive() for thread in threads):
                client.close()


def _exit_status(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
