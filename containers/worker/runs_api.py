"""The runs API on the worker: create, list, read, cancel and follow runs, and the internal
endpoints other workers use to follow and cancel the runs this worker owns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from services.errors import AuthenticationFailed, InvalidRequest, NotFound
from services.runs.model import Run
from services.runs.service import RunService, unavailable
from services.tenancy.auth import Authenticator, Principal
from services.tenancy.limits import Admission, guard
from services.web import sse
from services.web.asgi import Incoming, JSONBytesResponse, decode_json, read_body
from services.web.params import page_limit
from services.web.sse import HEADERS as SSE_HEADERS
from services.web.sse import parse_after

DEADLINE_HEADER = "x-switchboard-deadline-ms"
IDEMPOTENCY_HEADER = "idempotency-key"
MAX_IDEMPOTENCY_KEY = 255
HEARTBEAT_SECONDS = 15.0
_CREATE_FIELDS = {"kind", "input", "background", "stream", "cancel_on_disconnect"}
_background: set[asyncio.Task[None]] = set()


def idempotency_key(request: Incoming) -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not key.strip() or len(key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidRequest(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters.",
            param="Idempotency-Key",
            code="invalid_idempotency_key",
        )
    return key


def deadline(request: Incoming) -> float | None:
    """Seconds a synchronous answer may take, when a front door set a deadline."""
    raw = request.headers.get(DEADLINE_HEADER)
    if raw is None or not raw.isdigit():
        return None
    return max(0.05, int(raw) / 1000)


def accepted(run: Run) -> Response:
    """202: the work goes on; the run's URL says where to find it."""
    return JSONBytesResponse(
        run.public(), status_code=202, headers={"location": run.public()["urls"]["self"]}
    )


def run_routes(
    service: RunService | None,
    authenticator: Authenticator,
    max_request_bytes: int,
    wait_seconds: float,
    *,
    admission: Admission | None = None,
) -> list[Route]:
    def runs() -> RunService:
        if service is None:
            raise unavailable()
        return service

    async def create(request: Request, principal: Principal) -> Response:
        svc = runs()
        body = decode_json(await read_body(request, max_request_bytes))
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object.", code="invalid_body")
        unknown = sorted(set(body) - _CREATE_FIELDS)
        if unknown:
            raise InvalidRequest(
                f"Unrecognized request argument supplied: {unknown[0]}",
                param=unknown[0],
                code="unknown_parameter",
            )
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
        run, _ = await svc.create(
            principal,
            body["kind"],
            body["input"],
            background=flags["background"],
            idempotency_key=idempotency_key(request),
            cancel_on_disconnect=flags["cancel_on_disconnect"],
        )
        if flags["background"]:
            return accepted(run)
        if flags["stream"]:
            return _event_stream(
                svc,
                principal,
                run,
                0,
                cancel_on_disconnect=run.cancel_on_disconnect,
                request=request,
            )
        finished = await svc.wait(principal, run, deadline(request) or wait_seconds)
        return JSONBytesResponse(finished.public()) if finished.terminal else accepted(finished)

    async def list_runs(request: Request) -> Response:
        principal = await authenticator.authenticate_async(request.headers)
        svc = runs()
        limit = page_limit(request.query_params.get("limit"))
        page, cursor = await asyncio.to_thread(
            svc.store.page,
            principal.tenant_id,
            limit=limit,
            cursor=request.query_params.get("after"),
        )
        return JSONBytesResponse(
            {
                "object": "list",
                "data": [r.public() for r in page],
                "has_more": cursor is not None,
                "next_cursor": cursor,
            }
        )

    async def get_run(request: Request) -> Response:
        principal = await authenticator.authenticate_async(request.headers)
        run = await asyncio.to_thread(
            runs().store.require, principal.tenant_id, request.path_params["run_id"]
        )
        return JSONBytesResponse(run.public())

    async def cancel(request: Request) -> Response:
        principal = await authenticator.authenticate_async(request.headers)
        run = await runs().cancel(principal, request.path_params["run_id"])
        return JSONBytesResponse(run.public())

    async def submit_input(request: Request) -> Response:
        """A person's answer to a run awaiting input (services/runs/inputs.py)."""
        principal = await authenticator.authenticate_async(request.headers)
        body = decode_json(await read_body(request, max_request_bytes))
        run = await runs().answer(principal, request.path_params["run_id"], body)
        return JSONBytesResponse(run.public())

    async def events(request: Request) -> Response:
        principal = await authenticator.authenticate_async(request.headers)
        svc = runs()
        after = parse_after(request.headers.get("last-event-id"), request.query_params.get("after"))
        run = await asyncio.to_thread(
            svc.store.require, principal.tenant_id, request.path_params["run_id"]
        )
        return _event_stream(
            svc, principal, run, after, cancel_on_disconnect=False, request=request
        )

    async def internal_events(request: Request) -> Response:
        principal = _internal(authenticator, request)
        svc = runs()
        run_id = request.path_params["run_id"]
        if not svc.owns(run_id):
            raise NotFound("This worker does not own that run.", code="run_not_owned")
        run = await asyncio.to_thread(svc.store.require, principal.tenant_id, run_id)
        after = parse_after(None, request.query_params.get("after"))
        return _event_stream(
            svc, principal, run, after, cancel_on_disconnect=False, request=request
        )

    async def internal_cancel(request: Request) -> Response:
        _internal(authenticator, request)
        return JSONBytesResponse({"stopped": runs().cancel_local(request.path_params["run_id"])})

    return [
        # Creating a run is AI work: admitted against the budget and rate limits.
        Route("/v1/runs", guard(authenticator, admission, create), methods=["POST"]),
        Route("/v1/runs", list_runs, methods=["GET"]),
        Route("/v1/runs/{run_id}", get_run, methods=["GET"]),
        Route("/v1/runs/{run_id}/cancel", cancel, methods=["POST"]),
        Route("/v1/runs/{run_id}/input", submit_input, methods=["POST"]),
        Route("/v1/runs/{run_id}/events", events, methods=["GET"]),
        Route("/internal/runs/{run_id}/events", internal_events, methods=["GET"]),
        Route("/internal/runs/{run_id}/cancel", internal_cancel, methods=["POST"]),
    ]


def _internal(authenticator: Authenticator, request: Request) -> Principal:
    principal = authenticator.internal(request.headers)
    if principal is None:
        raise AuthenticationFailed(
            "This endpoint is for workers only.", code="invalid_internal_token"
        )
    return principal


def _event_stream(
    service: RunService,
    principal: Principal,
    run: Run,
    after: int,
    *,
    cancel_on_disconnect: bool,
    request: Request,
) -> Response:
    async def frames() -> AsyncIterator[bytes]:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for event in service.subscribe(principal, run, after):
                    await queue.put(event.frame())
            finally:
                await queue.put(None)

        pumping = asyncio.create_task(pump())
        finished = False
        try:
            while True:
                try:
                    frame = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
                except TimeoutError:
                    yield sse.comment("keep-alive")  # load balancers close idle connections
                    continue
                if frame is None:
                    finished = True
                    return
                yield frame
        finally:
            pumping.cancel()
            if not finished and cancel_on_disconnect:
                # The response task is being torn down: cancel from a task of its own.
                task = asyncio.create_task(_cancel_quietly(service, principal, run.id))
                _background.add(task)
                task.add_done_callback(_background.discard)

    return StreamingResponse(frames(), media_type="text/event-stream", headers=SSE_HEADERS)


async def _cancel_quietly(service: RunService, principal: Principal, run_id: str) -> None:
    try:
        await service.cancel(principal, run_id)
    except Exception:  # already ended, or unreachable: the client asked, we tried
        return
