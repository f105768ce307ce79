"""The runs API on the worker: create, list, read, cancel and follow runs, and the internal
endpoints other workers use to follow and cancel the runs this worker owns.

No worker holds a credential of its own: a worker that follows or cancels a run at its
owner forwards the client's own credential headers, and the owner authenticates them
again and checks that the run is the caller's (another tenant's run is a 404) and, for a
cancel, that the cancel is recorded (409 otherwise: stopping a run that is not cancelled
would leave it running with nobody executing it).

A streamed run (`"stream": true`) says which run it is before anything else: the
`Location` header, and a first event `run.created` (`seq` 0, `data` the run, and no
`id:` line, so `Last-Event-ID` still counts only the run's own events), so a client that
loses the connection can resume with `GET /v1/runs/{id}/events` and `Last-Event-ID`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.errors import InvalidRequest, NotFound
from services.runs.model import Run
from services.runs.service import RunService, unavailable
from services.runs.sync import (
    Caller,
    Pending,
    SyncCalls,
    accepted,
    idempotency_key,
    late,
)
from services.tenancy.auth import Authenticator, Principal
from services.tenancy.limits import Admission, guard
from services.web.asgi import JSONBytesResponse, StreamResponse, decode_json, read_body
from services.web.body import known_fields
from services.web.params import page_limit
from services.web.sse import HEADERS as SSE_HEADERS
from services.web.sse import event as sse_event
from services.web.sse import parse_after

_CREATE_FIELDS = {"kind", "input", "background", "stream", "cancel_on_disconnect"}
_background: set[asyncio.Task[None]] = set()


def run_endpoints(
    service: RunService | None,
    authenticator: Authenticator,
    max_request_bytes: int,
    calls: SyncCalls,
    stream: StreamResponse,
    *,
    admission: Admission | None = None,
) -> dict[tuple[str, str], Callable[[Request], Any]]:
    """The public endpoints, by the route table's (method, path)."""

    def runs() -> RunService:
        if service is None:
            raise unavailable()
        return service

    async def create(request: Request, principal: Principal) -> Response:
        svc = runs()
        caller = Caller.of(principal, request.headers)
        body = decode_json(await read_body(request, max_request_bytes))
        kind, input, flags = _parse_create(body)
        run, _ = await svc.create(
            principal,
            kind,
            input,
            background=flags["background"],
            idempotency_key=idempotency_key(request.headers),
            cancel_on_disconnect=flags["cancel_on_disconnect"],
        )
        if flags["background"]:
            return accepted(run, caller)
        if flags["stream"]:
            return _event_stream(
                stream,
                svc,
                caller,
                run,
                0,
                cancel_on_disconnect=run.cancel_on_disconnect,
                created=True,
            )
        outcome = await calls.follow(caller, run)
        if isinstance(outcome, Pending):
            return late(outcome, caller)
        return JSONBytesResponse(outcome.run.public(caller.prefix))

    async def list_runs(request: Request) -> Response:
        caller = Caller.of(await authenticator.authenticate_async(request.headers), request.headers)
        svc = runs()
        limit = page_limit(request.query_params.get("limit"))
        page, cursor = await asyncio.to_thread(
            svc.store.page,
            caller.principal.tenant_id,
            limit=limit,
            cursor=request.query_params.get("after"),
        )
        return JSONBytesResponse(
            {
                "object": "list",
                "data": [r.public(caller.prefix) for r in page],
                "has_more": cursor is not None,
                "next_cursor": cursor,
            }
        )

    async def get_run(request: Request) -> Response:
        caller = Caller.of(await authenticator.authenticate_async(request.headers), request.headers)
        run = await asyncio.to_thread(
            runs().store.require, caller.principal.tenant_id, request.path_params["run_id"]
        )
        return JSONBytesResponse(run.public(caller.prefix))

    async def cancel(request: Request) -> Response:
        caller = Caller.of(await authenticator.authenticate_async(request.headers), request.headers)
        run = await runs().cancel(
            caller.principal, request.path_params["run_id"], caller.credentials
        )
        return JSONBytesResponse(run.public(caller.prefix))

    async def submit_input(request: Request) -> Response:
        """A person's answer to a run awaiting input (services/runs/inputs.py)."""
        caller = Caller.of(await authenticator.authenticate_async(request.headers), request.headers)
        body = decode_json(await read_body(request, max_request_bytes))
        run = await runs().answer(caller.principal, request.path_params["run_id"], body)
        return JSONBytesResponse(run.public(caller.prefix))

    async def events(request: Request) -> Response:
        caller = Caller.of(await authenticator.authenticate_async(request.headers), request.headers)
        svc = runs()
        after = parse_after(request.headers.get("last-event-id"), request.query_params.get("after"))
        run = await asyncio.to_thread(
            svc.store.require, caller.principal.tenant_id, request.path_params["run_id"]
        )
        return _event_stream(stream, svc, caller, run, after, cancel_on_disconnect=False)

    return {
        # Creating a run is AI work: admitted against the budget and rate limits.
        ("POST", "/v1/runs"): guard(authenticator, admission, create),
        ("GET", "/v1/runs"): list_runs,
        ("GET", "/v1/runs/{run_id}"): get_run,
        ("POST", "/v1/runs/{run_id}/cancel"): cancel,
        ("POST", "/v1/runs/{run_id}/input"): submit_input,
        ("GET", "/v1/runs/{run_id}/events"): events,
    }


def internal_routes(
    service: RunService | None, authenticator: Authenticator, stream: StreamResponse
) -> list[Route]:
    """What other workers call on the owner of a run, with the client's own credentials."""

    def runs() -> RunService:
        if service is None:
            raise unavailable()
        return service

    async def internal_events(request: Request) -> Response:
        principal = await authenticator.authenticate_async(request.headers)
        svc = runs()
        run_id = request.path_params["run_id"]
        run = await asyncio.to_thread(svc.store.require, principal.tenant_id, run_id)
        if not svc.owns(run_id):
            raise NotFound("This worker does not own that run.", code="run_not_owned")
        after = parse_after(None, request.query_params.get("after"))
        caller = Caller(principal, {})  # the owner follows its own channel, never elsewhere
        return _event_stream(stream, svc, caller, run, after, cancel_on_disconnect=False)

    async def internal_cancel(request: Request) -> Response:
        principal = await authenticator.authenticate_async(request.headers)
        run = await runs().stop_cancelled(principal, request.path_params["run_id"])
        return JSONBytesResponse(run.public())

    return [
        Route("/internal/runs/{run_id}/events", internal_events, methods=["GET"]),
        Route("/internal/runs/{run_id}/cancel", internal_cancel, methods=["POST"]),
    ]


def _parse_create(body: Any) -> tuple[str, Any, dict[str, bool]]:
    body = known_fields(body, _CREATE_FIELDS)
    if "input" not in body or "kind" not in body:
        missing = "kind" if "kind" not in body else "input"
        raise InvalidRequest(
            f"Missing required parameter: '{missing}'.",
            param=missing,
            code="missing_required_parameter",
        )
    flags = {}
    for name in ("background", "stream", "cancel_on_disconnect"):
        value = body.get(name, False)
        if not isinstance(value, bool):
            raise InvalidRequest(
                f"'{name}' must be true or false.", param=name, code="invalid_value"
            )
        flags[name] = value
    if flags["background"] and flags["stream"]:
        raise InvalidRequest(
            "A run is either background or streamed, not both.",
            param="stream",
            code="invalid_value",
        )
    if not isinstance(body["kind"], str):
        raise InvalidRequest("'kind' must be a string.", param="kind", code="invalid_value")
    return body["kind"], body["input"], flags


def _event_stream(
    stream: StreamResponse,
    service: RunService,
    caller: Caller,
    run: Run,
    after: int,
    *,
    cancel_on_disconnect: bool,
    created: bool = False,
) -> Response:
    """The run's events as SSE; a run created by this request is announced first."""

    async def frames() -> AsyncIterator[bytes]:
        finished = False
        try:
            if created:  # seq 0: before the run's own events, and no `id:` to resume from
                announced = {"seq": 0, "type": "run.created", "data": run.public(caller.prefix)}
                yield sse_event({**announced, "at": time.time()}, name="run.created")
            async for event in service.subscribe(caller.principal, run, after, caller.credentials):
                yield event.frame()
            finished = True
        finally:
            if not finished and cancel_on_disconnect:
                # The response task is being torn down: cancel from a task of its own.
                task = asyncio.create_task(_cancel_quietly(service, caller, run.id))
                _background.add(task)
                task.add_done_callback(_background.discard)

    headers = {**SSE_HEADERS, "location": caller.location(run)} if created else SSE_HEADERS
    return stream(frames(), headers)


async def _cancel_quietly(service: RunService, caller: Caller, run_id: str) -> None:
    try:
        await service.cancel(caller.principal, run_id, caller.credentials)
    except Exception:  # already ended, or unreachable: the client asked, we tried
        return
