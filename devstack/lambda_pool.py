"""A Lambda function, locally: a pool of execution environments, one invocation in each at
a time, as Lambda runs a function.

Each environment is a process (`devstack.lambda_runtime`) that imports the handler on its
first use (a cold start) and then serves invocations one after another, keeping its module
globals between them. An invocation gets an idle environment, or a new one while fewer
than `concurrency` exist; beyond that it waits for one, in order (Lambda would throttle;
locally nothing is dropped). An invocation that runs past the function's timeout ends
with "Task timed out", and its environment is killed and replaced, as Lambda does.

The caller may stop waiting (`asyncio.wait_for`, as API Gateway's integration timeout
does): an invocation still waiting for an environment is then withdrawn and never runs,
while one that has started runs on to its end in its environment, which stays busy until
then, as a Lambda goes on after API Gateway has answered 504.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import struct
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from devstack.lambda_runtime import frame
from devstack.processes import die_with_parent

log = logging.getLogger("switchboard.lambda")

ROOT = Path(__file__).resolve().parent.parent
_LENGTH = struct.Struct(">I")
# Frames carry events of up to API Gateway's 10 MB payload (base64: a third more).
_STREAM_LIMIT = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class LambdaSettings:
    handler: str  # "package.module.function"
    timeout_seconds: float = 30.0
    # How many environments may exist at once: the function's concurrency.
    concurrency: int = 8
    # Extra environment variables for the environments (they inherit this process's).
    env: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Invocation:
    """The outcome of one invocation: the handler's result, or Lambda's error report."""

    result: Any = None
    error: dict[str, Any] | None = None
    cold_start: bool = False
    environment: int = 0  # the environment's process id


class FunctionError(Exception):
    """An environment failed outside the handler (could not start, died, timed out)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.report = {"errorType": error_type, "errorMessage": message}


class _Environment:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    async def send(self, message: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(frame(message))
        await self.process.stdin.drain()

    async def receive(self) -> Any:
        assert self.process.stdout is not None
        head = await self.process.stdout.readexactly(_LENGTH.size)
        (length,) = _LENGTH.unpack(head)
        return orjson.loads(await self.process.stdout.readexactly(length))

    async def kill(self) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        await self.process.wait()


class LambdaPool:
    """One function's execution environments. `invoke` runs an event in one of them."""

    def __init__(self, settings: LambdaSettings) -> None:
        if settings.concurrency < 1:
            raise ValueError("a function's concurrency must be at least 1")
        self.settings = settings
        self._idle: list[_Environment] = []
        self._count = 0  # environments that exist or are starting, busy or idle
        # Invocations waiting for an environment: each future gets an idle environment, or
        # None (a free slot: start a new one).
        self._waiting: collections.deque[asyncio.Future[_Environment | None]] = collections.deque()
        self._running: set[asyncio.Task[Invocation]] = set()
        self._stopping: set[asyncio.Future[None]] = set()
        self._closed = False

    @property
    def environments(self) -> int:
        """How many environments exist (busy, idle or starting)."""
        return self._count

    async def invoke(self, event: dict[str, Any], request_id: str) -> Invocation:
        """Run `event` in an environment and return the outcome. Raises `FunctionError`
        when the environment fails outside the handler (the invocation then failed, as a
        Lambda invocation reports `Runtime.*` or `Sandbox.Timedout`)."""
        if self._closed:
            raise FunctionError("Runtime.Shutdown", "The function is shut down.")
        environment = await self._acquire()
        # From here the invocation belongs to its environment: a caller that stops waiting
        # does not stop it.
        task = asyncio.ensure_future(self._run(environment, event, request_id))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return await asyncio.shield(task)

    async def aclose(self) -> None:
        """Stop every environment (invocations in progress end with an error)."""
        self._closed = True
        for waiter in self._waiting:
            if not waiter.done():
                waiter.cancel()
        idle, self._idle = self._idle, []
        for environment in idle:
            await _stop(environment)
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        await asyncio.gather(*self._stopping, return_exceptions=True)

    async def _acquire(self) -> _Environment | None:
        while self._idle:
            environment = self._idle.pop()  # the most recently used: the warmest
            if environment.alive:
                return environment
            self._count -= 1  # it died while idle
        if self._count < self.settings.concurrency:
            self._count += 1
            return None
        waiter: asyncio.Future[_Environment | None] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release(waiter.result())  # handed over as the caller gave up
            raise

    def _release(self, environment: _Environment | None) -> None:
        """Give back an environment (None: a slot whose environment is gone)."""
        if environment is not None and (self._closed or not environment.alive):
            self._stop_later(environment)
            environment = None
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(environment)
                return
        if environment is None:
            self._count -= 1
        else:
            self._idle.append(environment)

    def _stop_later(self, environment: _Environment) -> None:
        task = asyncio.ensure_future(_stop(environment))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _run(
        self, environment: _Environment | None, event: dict[str, Any], request_id: str
    ) -> Invocation:
        cold = environment is None
        timeout = self.settings.timeout_seconds
        try:
            if environment is None:
                environment = await self._start(request_id)
            invocation = {
                "event": event,
                "request_id": request_id,
                "timeout_ms": int(timeout * 1000),
            }
            try:
                await environment.send(invocation)
                reply = await asyncio.wait_for(environment.receive(), timeout)
            except TimeoutError:
                log.warning(
                    "%s Task timed out after %.2f seconds; its environment (pid %d) is replaced",
                    request_id, timeout, environment.process.pid,
                )  # fmt: skip
                await environment.kill()
                raise FunctionError(
                    "Sandbox.Timedout", f"Task timed out after {timeout:.2f} seconds"
                ) from None
            except (asyncio.IncompleteReadError, ConnectionError):
                code = await environment.process.wait()
                log.error("%s the environment (pid %d) exited with code %s; it is replaced",
                          request_id, environment.process.pid, code)  # fmt: skip
                raise FunctionError(
                    "Runtime.ExitError", f"The runtime exited with code {code}."
                ) from None
            return Invocation(
                result=reply.get("result"),
                error=reply.get("error"),
                cold_start=cold,
                environment=environment.process.pid,
            )
        except BaseException:
            if environment is not None:
                self._stop_later(environment)
            environment = None
            raise
        finally:
            self._release(environment)

    async def _start(self, request_id: str) -> _Environment:
        """A new environment, once it has imported the handler (its init phase, bounded
        by the function's timeout)."""
        timeout = self.settings.timeout_seconds
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "devstack.lambda_runtime", self.settings.handler,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            cwd=ROOT, env=self._env(), limit=_STREAM_LIMIT, preexec_fn=die_with_parent,
        )  # fmt: skip
        environment = _Environment(process)
        try:
            reply = await asyncio.wait_for(environment.receive(), timeout)
        except TimeoutError:
            await environment.kill()
            raise FunctionError(
                "Runtime.InitTimeout", f"The init phase took longer than {timeout:.2f} seconds."
            ) from None
        except asyncio.IncompleteReadError:
            code = await process.wait()
            raise FunctionError(
                "Runtime.ExitError", f"The runtime exited with code {code} during init."
            ) from None
        except BaseException:
            await environment.kill()
            raise
        if "init_error" in reply:
            await environment.kill()
            error = reply["init_error"]
            raise FunctionError("Runtime.ImportModuleError", str(error.get("errorMessage")))
        log.info(
            "%s cold start: environment pid %d initialized in %.0f ms",
            request_id, process.pid, (time.monotonic() - started) * 1000,
        )  # fmt: skip
        return environment

    def _env(self) -> dict[str, str] | None:
        if not self.settings.env:
            return None
        return {**os.environ, **self.settings.env}


async def _stop(environment: _Environment) -> None:
    if environment.alive and environment.process.stdin is not None:
        environment.process.stdin.close()  # the runtime's loop ends at end of input
        try:
            await asyncio.wait_for(environment.process.wait(), 2)
            return
        except TimeoutError:
            pass
    await environment.kill()
