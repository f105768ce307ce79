"""What the worker asks of ECS: the address other workers reach it at (task metadata
endpoint), and scale-in protection while it has open streams (ECS agent endpoint)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.request
from collections.abc import Mapping

import httpx

log = logging.getLogger("switchboard.worker")

METADATA_ENV = "ECS_CONTAINER_METADATA_URI_V4"


def advertise_url(env: Mapping[str, str], port: int = 8000) -> str | None:
    """`http://<task private IP>:<port>` in ECS (awsvpc networking), else None."""
    base = env.get(METADATA_ENV)
    if not base:
        return None
    with urllib.request.urlopen(f"{base}/task", timeout=2) as response:
        task = json.load(response)
    for container in task.get("Containers", []):
        for network in container.get("Networks", []):
            addresses = network.get("IPv4Addresses") or []
            if addresses:
                return f"http://{addresses[0]}:{port}"
    return None


AGENT_ENV = "ECS_AGENT_URI"
PROTECTION_PATH = "/task-protection/v1/state"


class TaskProtection:
    """ECS task scale-in protection while the worker has open streams.

    A deploy or a scale-in stops a task with SIGTERM and kills it after the stop timeout
    (120 s at most on Fargate), while a stream may last 15 minutes. While streams are
    open, the task asks its ECS agent for scale-in protection (`PUT
    $ECS_AGENT_URI/task-protection/v1/state` with `{"ProtectionEnabled": true,
    "ExpiresInMinutes": minutes}`), renews it at half its life while streams stay open,
    and clears it (`"ProtectionEnabled": false`) once none has been open for `linger`
    seconds. Deploys and scale-in then wait for the streams; a task that hangs loses its
    protection within `minutes`.

    Without `ECS_AGENT_URI` (not in ECS) it does nothing. The agent's errors are logged,
    never raised: protection is best effort, and the stop timeout still lets streams
    finish. `changed(open_streams)` is told of each 0 -> 1 and 1 -> 0 transition.
    """

    def __init__(
        self,
        agent_uri: str | None,
        *,
        minutes: int = 10,
        linger: float = 2.0,
        retry: float = 5.0,
        renew: float | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = agent_uri.rstrip("/") + PROTECTION_PATH if agent_uri else None
        self.minutes = minutes
        self.renew = renew if renew is not None else minutes * 30.0  # at half its life
        self.linger = linger
        self.retry = retry
        self.protected = False
        self._open = 0
        self._http = http
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.url is not None

    def changed(self, open_streams: int) -> None:
        self._open = open_streams
        if self.url is not None:
            self._wake.set()

    def start(self) -> None:
        if self.url is not None and self._task is None:
            self._http = self._http or httpx.AsyncClient(timeout=3.0)
            self._task = asyncio.create_task(self._keep(), name="task-protection")

    async def aclose(self) -> None:
        """Stop; the protection is cleared, whatever is still open (the task is stopping)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.protected:
            await self._put(False)
        if self._http is not None:
            await self._http.aclose()

    async def _keep(self) -> None:
        loop = asyncio.get_running_loop()
        renew_at = 0.0
        idle_since: float | None = None
        while True:
            now = loop.time()
            timeout: float | None = None
            if self._open > 0:
                idle_since = None
                if not self.protected or now >= renew_at:
                    ok = await self._put(True)
                    renew_at = loop.time() + (self.renew if ok else self.retry)
                timeout = max(0.0, renew_at - loop.time())
            elif self.protected:
                idle_since = now if idle_since is None else idle_since
                if now - idle_since >= self.linger:
                    if not await self._put(False):
                        timeout = self.retry
                else:
                    timeout = self.linger - (now - idle_since)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _put(self, enabled: bool) -> bool:
        assert self.url is not None and self._http is not None
        body: dict[str, object] = {"ProtectionEnabled": enabled}
        if enabled:
            body["ExpiresInMinutes"] = self.minutes
        try:
            response = await self._http.put(self.url, json=body)
            answer = response.json() if response.content else {}
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("task protection: the ECS agent is unreachable (%s)", exc)
            return False
        if response.status_code != 200 or "protection" not in answer:
            log.warning(
                "task protection: the ECS agent refused %s: %s %s",
                body,
                response.status_code,
                answer.get("failure") or answer.get("error") or "",
            )
            return False
        self.protected = enabled
        log.info("task protection %s", "set" if enabled else "cleared")
        return True
