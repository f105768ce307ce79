"""Synchronous calls and the sync deadline.

A non-streamed answer on a `sync` route (`services/frontdoor/routes.py`: chat completions,
messages, tools, embeddings, run creation) sends nothing until it is whole, and API
Gateway cuts a response that sends nothing for 5 minutes. The worker therefore bounds such
a call by its own sync deadline (`SWITCHBOARD_SYNC_DEADLINE_SECONDS`, 240 s deployed).
Past it, the work is not lost: it goes on as a run that will hold the result, and the
caller gets

- with `Prefer: respond-async` (RFC 7240): `202 Accepted`, the run and its `Location`;
- otherwise: `504` in the route's error envelope, code `run_pending`, naming the run,
  with `Location` and `x-should-retry: false`. The openai and anthropic SDKs retry a 5xx,
  which would start the work again; told not to, they raise one `APIStatusError` whose
  message says where the result will be.

`Caller` is what the worker reads of a call's headers for this: the preference, the
client's own credential headers (to follow the run at its owner) and the stage prefix
that API Gateway sends in `X-Forwarded-Prefix`, which goes before every URL it answers
with (`Location`, a run's `urls`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from services.errors import APIError, InvalidRequest
from services.frontdoor.prefix import stage_prefix
from services.models.catalogue import Catalogue
from services.runs.kinds import RunContext
from services.runs.model import Run
from services.runs.service import RunService
from services.tenancy.auth import Principal, credential_headers
from services.web.asgi import JSONBytesResponse, error_response
from services.web.deadlines import Deadline

log = logging.getLogger("switchboard.runs")

PREFER_HEADER = "prefer"
PREFIX_HEADER = "x-forwarded-prefix"
IDEMPOTENCY_HEADER = "idempotency-key"
MAX_IDEMPOTENCY_KEY = 255
_WAIT = re.compile(r"[0-9]{1,9}")

Envelope = Callable[[APIError], Response]  # an error as the route answers it


def parse_prefer(raw: str | None) -> tuple[bool, float | None]:
    """`respond-async` and `wait=<seconds>` from a `Prefer` header (RFC 7240); other
    preferences, and malformed ones, are ignored as the RFC asks."""
    respond_async, wait = False, None
    for preference in (raw or "").split(","):
        token, _, value = preference.partition(";")[0].partition("=")
        name = token.strip().lower()
        value = value.strip().strip('"')
        if name == "respond-async":
            respond_async = True
        elif name == "wait" and _WAIT.fullmatch(value):
            wait = float(value)
    return respond_async, wait


def idempotency_key(headers: Mapping[str, str]) -> str | None:
    key = headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not key.strip() or len(key) > MAX_IDEMPOTENCY_KEY or not key.isascii():
        raise InvalidRequest(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} ASCII characters.",
            param="Idempotency-Key",
            code="invalid_idempotency_key",
        )
    return key


@dataclass(slots=True)  # not frozen: built on every AI call, and a frozen init costs more
class Caller:
    """Who made a call and how it wants a slow answer."""

    principal: Principal
    credentials: Mapping[str, str]  # the client's own, forwarded to a run's owner
    prefix: str = ""  # the API stage's path, before every URL in the answer
    respond_async: bool = False
    wait: float | None = None  # `Prefer: wait=N`, honoured with respond-async

    @classmethod
    def of(cls, principal: Principal, headers: Mapping[str, str]) -> Caller:
        prefer = headers.get(PREFER_HEADER)
        respond_async, wait = parse_prefer(prefer) if prefer else (False, None)
        prefix = headers.get(PREFIX_HEADER)
        return cls(
            principal,
            credential_headers(headers),
            stage_prefix(prefix) if prefix else "",
            respond_async,
            wait,
        )

    def location(self, run: Run) -> str:
        return f"{self.prefix}/v1/runs/{run.id}"


@dataclass(frozen=True, slots=True)
class Answered:
    """The call's answer, within the deadline."""

    body: Any


@dataclass(frozen=True, slots=True)
class Settled:
    """The call's run ended (or waits for a person's answer) within the deadline."""

    run: Run


@dataclass(frozen=True, slots=True)
class Pending:
    """Past the deadline: `run` goes on and will hold the result."""

    run: Run
    waited: float


Outcome = Answered | Settled | Pending


class RunPending(APIError):
    """504: the answer was not ready within the sync deadline; a run will hold it."""

    status = 504
    type = "timeout"
    code = "run_pending"

    def __init__(self, run: Run, location: str, waited: float) -> None:
        super().__init__(
            f"The answer was not ready within the synchronous deadline of {waited:g} s. "
            f"The work goes on in run {run.id}, which will hold the result: GET {location} "
            f"(its events: GET {location}/events). Do not send the request again: that "
            "would start the work again. To get a 202 with the run instead of this error, "
            "send 'Prefer: respond-async'.",
            headers={"location": location, "x-should-retry": "false"},
        )


class SyncCalls:
    """Bounds synchronous calls by the sync deadline, promoting late work to runs.

    Without a run service (a worker with no run queue) nothing could hold a late result,
    so a call is not bounded."""

    def __init__(self, runs: RunService | None, deadline_seconds: float) -> None:
        self.runs = runs
        self.deadline_seconds = deadline_seconds

    def deadline(self, caller: Caller) -> float:
        if caller.respond_async and caller.wait is not None:
            return min(self.deadline_seconds, caller.wait)
        return self.deadline_seconds

    async def call(
        self,
        caller: Caller,
        kind: str,
        input_of: Callable[[], Any],
        work: Coroutine[Any, Any, Any],
    ) -> Outcome:
        """`work`'s answer within the deadline (its error is raised as it is); past it,
        the work goes on as a run of `kind` (`input_of()` is what that kind needs to do
        it again, should another worker take the run over)."""
        if self.runs is None:
            return Answered(await work)
        loop = asyncio.get_running_loop()
        task = loop.create_task(work)
        if not task.done():
            # Wait on a future of our own: a deadline cancels the wait, never the work.
            waiter: asyncio.Future[None] = loop.create_future()
            task.add_done_callback(functools.partial(_wake, waiter))
            seconds = self.deadline(caller)
            try:
                async with Deadline(seconds):
                    await waiter
            except TimeoutError:
                try:
                    run = await self.runs.promote(caller.principal, kind, input_of(), task)
                except Exception:
                    log.exception("could not promote a late %s call to a run", kind)
                    return Answered(await task)
                return Pending(run, seconds)
            except BaseException:
                task.cancel()  # the call itself was cancelled: nobody will read the answer
                raise
        return Answered(task.result())

    async def keyed(self, caller: Caller, kind: str, input: Any, key: str) -> Settled | Pending:
        """A call with an `Idempotency-Key`: the key's run (created now, or the one a first
        try created), so a retry gets the same answer."""
        runs = self._runs()
        run, _ = await runs.create(
            caller.principal, kind, input, background=False, idempotency_key=key
        )
        return await self.follow(caller, run)

    async def follow(self, caller: Caller, run: Run) -> Settled | Pending:
        """Wait for a run this call started, up to the deadline."""
        seconds = self.deadline(caller)
        current = await self._runs().wait(caller.principal, run, seconds, caller.credentials)
        if current.terminal or current.status == "awaiting_input":
            return Settled(current)
        return Pending(current, seconds)

    def _runs(self) -> RunService:
        if self.runs is None:
            from services.runs.service import unavailable

            raise unavailable()
        return self.runs


def _wake(waiter: asyncio.Future[None], _: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def openai_error(error: APIError) -> Response:
    """`error` in OpenAI's envelope, the default for every route but /v1/messages."""
    return error_response(error, "")


def accepted(run: Run, caller: Caller) -> JSONBytesResponse:
    """202: the work goes on; `Location` and the run's `urls` say where to find it."""
    headers = {"location": caller.location(run)}
    if caller.respond_async:
        headers["preference-applied"] = "respond-async"
    return JSONBytesResponse(run.public(caller.prefix), status_code=202, headers=headers)


def late(outcome: Pending, caller: Caller, envelope: Envelope = openai_error) -> Response:
    """The answer to a call past its deadline: 202 if the caller prefers it, else a 504
    naming the run in the route's error envelope."""
    if caller.respond_async:
        return accepted(outcome.run, caller)
    return envelope(RunPending(outcome.run, caller.location(outcome.run), outcome.waited))


def failure_status(error: Mapping[str, Any] | None) -> int:
    """The HTTP status a call gets for its run's failure."""
    error = error or {}
    if error.get("code") == "run_cancelled":
        return 409
    return {"upstream_error": 502, "timeout": 504, "invalid_request_error": 400}.get(
        str(error.get("type")), 500
    )


def reply(
    outcome: Outcome,
    caller: Caller,
    *,
    envelope: Envelope = openai_error,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The HTTP answer to a bounded call whose answer is a JSON body: the body; the body
    its run stored (or the run's error); or, past the deadline, what `late` says."""
    if isinstance(outcome, Answered):
        return JSONBytesResponse(outcome.body, headers=headers or None)
    if isinstance(outcome, Pending):
        return late(outcome, caller, envelope)
    run = outcome.run
    if run.status == "succeeded":
        return JSONBytesResponse(run.result)
    return JSONBytesResponse({"error": run.error}, status_code=failure_status(run.error))


@dataclass(slots=True)
class CallKind:
    """A synchronous call's work as a run kind: what a run promoted from a late call does
    again when another worker takes it over. Clients cannot create runs of these kinds
    (`RunService.register`); `input` was checked when the call came in."""

    name: str
    call: Callable[[Run], Awaitable[Any]]

    def validate(self, input: Any, catalogue: Catalogue) -> None:
        return None

    async def execute(self, ctx: RunContext) -> Any:
        return await self.call(ctx.run)
