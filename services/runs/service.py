"""Creating, executing, following and cancelling runs on a worker.

Execution. A worker executes a run only while it owns it: it took the run from the queue
(`RunDispatcher`), or it accepted a synchronous request and started it at once. The owner
renews a lease in the run record every `heartbeat_seconds` (and, holding the queue
message, extends its visibility); if a renewal fails, the run was cancelled or taken over
and the owner stops. Every run in progress has a message on the queue: a worker that
receives the message of a run whose lease is alive leaves it for `watchdog_seconds`; once
the lease has lapsed (its owner died), the worker claims the run and continues it from
its checkpoint.

Following. `subscribe` yields a run's events after a sequence number. On the owner they
come from the run's live channel. Elsewhere, the subscriber reads what is persisted, then
connects to the owner at `owner_url` (the address the owner advertises in the run record:
the task's private IP in ECS, a loopback port locally) through its internal events
endpoint, with the client's own credential headers (no worker holds a credential of its
own: the owner authenticates the client's key again and checks the run's tenant); if the
owner cannot be reached it polls the persisted events until the run ends or another owner
appears. Events are persisted before they are published, so the three sources agree.

Never stranded. A run that has not ended always has an owner with a live lease or a
message on the queue, or both: a worker deletes a run's message only once the run has
ended (or waits for a person's answer, which queues it again); an execution that stops
without an ending releases the run and makes its message visible again; a worker that
shuts down releases the leases of the runs it holds (`stop`), so another worker takes them
over at once rather than when their leases lapse.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from services import metrics_names as names
from services.errors import APIError, InvalidRequest, ServiceUnavailable
from services.models.catalogue import Catalogue
from services.runs.events import Channel, EventLog, Hub
from services.runs.inputs import AwaitingInput, parse_answer
from services.runs.kinds import BUILTIN, Kind, RunContext
from services.runs.model import Event, Run, read_events
from services.runs.store import RunConflict, RunStore, new_run_id, not_awaiting, request_hash
from services.telemetry import metrics as telemetry_metrics
from services.telemetry.context import begin as begin_call
from services.telemetry.context import request_id as served_request_id
from services.tenancy.auth import Principal
from services.usage.context import bind as bind_caller

log = logging.getLogger("switchboard.runs")

TERMINAL_EVENTS = frozenset({"run.succeeded", "run.failed", "run.cancelled"})


@dataclass(frozen=True, slots=True)
class RunSettings:
    queue_url: str
    dlq_url: str
    worker_id: str
    advertise_url: str | None
    lease_seconds: float = 30.0
    heartbeat_seconds: float = 10.0
    watchdog_seconds: float = 60.0
    max_attempts: int = 3
    poll_seconds: float = 0.5
    receive_wait_seconds: int = 5
    max_concurrent_runs: int = 256


class RunLost(Exception):
    """The worker no longer owns the run (it was cancelled or taken over)."""


class RunService:
    def __init__(
        self,
        store: RunStore,
        sqs: Any,
        catalogue: Catalogue,
        settings: RunSettings,
        *,
        kinds: Iterable[Kind] = BUILTIN,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        """`kinds`: what clients may create with `POST /v1/runs` (the worker passes the
        built-in kinds and the agent kind: runs know no agent)."""
        self.store = store
        self._resources: tuple[Callable[[], Any] | None, ...] = (None, None, None)
        self.sqs = sqs
        self.catalogue = catalogue
        self.settings = settings
        self.hub = Hub()
        # What clients may create, and what this worker can execute: those, and the kinds
        # `register`ed for the synchronous calls it promotes to runs past their deadline.
        self.public: dict[str, Kind] = {kind.name: kind for kind in kinds}
        self.kinds: dict[str, Kind] = dict(self.public)
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=None))
        self._executions: dict[str, asyncio.Task[None]] = {}
        self._work: dict[str, asyncio.Future[Any]] = {}  # the kind's own task, per execution
        self._handlers: set[asyncio.Task[None]] = set()
        self._held: dict[str, str] = {}  # run id -> the receipt handle of its queue message
        self._owned: dict[str, Run] = {}  # the runs this worker executes
        self._consumer: asyncio.Task[None] | None = None
        self._stopping = False

    def use(
        self,
        documents: Callable[[], Any] | None,
        embeddings: Callable[[], Any] | None,
        conversations: Callable[[], Any] | None,
    ) -> None:
        """What tools and agents in a run may use, built on first use: the worker's
        DocumentStore, Embeddings and ConversationStore."""
        self._resources = (documents, embeddings, conversations)

    def register(self, kind: Kind) -> None:
        """A kind this worker executes but clients cannot create with `POST /v1/runs`: the
        work of a synchronous call promoted to a run, which another worker runs again if
        it takes the run over."""
        self.kinds[kind.name] = kind

    # -- creating ----------------------------------------------------------------------

    def validate(self, kind: str, input: Any) -> None:
        handler = self.public.get(kind)
        if handler is None:
            raise InvalidRequest(
                f"Unknown run kind '{kind}'; one of: {', '.join(sorted(self.public))}.",
                param="kind",
                code="invalid_value",
            )
        handler.validate(input, self.catalogue)

    async def create(
        self,
        principal: Principal,
        kind: str,
        input: Any,
        *,
        background: bool,
        idempotency_key: str | None = None,
        cancel_on_disconnect: bool = False,
    ) -> tuple[Run, bool]:
        """Create a run and get it going; returns the run and whether it is new.

        A background run is queued for any worker. Otherwise this worker owns it and starts
        it now (a queue message still guards it, should this worker die).
        """
        self.validate(kind, input)
        now = time.time()
        run = Run(
            id=new_run_id(),
            tenant_id=principal.tenant_id,
            key_id=principal.key_id,
            kind=kind,
            status="queued" if background else "running",
            input=input,
            created_at=now,
            updated_at=now,
            idempotency_key=idempotency_key,
            cancel_on_disconnect=cancel_on_disconnect,
            request_id=served_request_id(),
        )
        if not background:
            run.owner, run.owner_url = self.settings.worker_id, self.settings.advertise_url
            run.lease_until, run.attempts = now + self.settings.lease_seconds, 1
        body_hash = request_hash({"kind": kind, "input": input, "background": background})
        run, created = await asyncio.to_thread(self.store.create, run, body_hash=body_hash)
        if created:
            await self._enqueue(run)
            if not background:
                self._start(run, fresh=True)
        return run, created

    async def promote(
        self, principal: Principal, kind: str, input: Any, work: asyncio.Future[Any]
    ) -> Run:
        """Turn an in-flight synchronous call into a run of `kind` that stores its result.
        `input` is what the kind needs to do the work again on a takeover."""
        now = time.time()
        run = Run(
            id=new_run_id(),
            tenant_id=principal.tenant_id,
            key_id=principal.key_id,
            kind=kind,
            status="running",
            input=input,
            created_at=now,
            updated_at=now,
            owner=self.settings.worker_id,
            owner_url=self.settings.advertise_url,
            lease_until=now + self.settings.lease_seconds,
            attempts=1,
            request_id=served_request_id(),
        )
        await asyncio.to_thread(self.store.create, run)
        await self._enqueue(run)

        async def adopt(ctx: RunContext) -> Any:
            ctx.log.emit("run.promoted", {"reason": "the synchronous deadline passed"})
            return await work

        self._start(run, body=adopt, fresh=True)
        return run

    async def _enqueue(self, run: Run) -> None:
        body = json.dumps({"run_id": run.id, "tenant_id": run.tenant_id})
        await asyncio.to_thread(
            self.sqs.send_message, QueueUrl=self.settings.queue_url, MessageBody=body
        )

    # -- executing ---------------------------------------------------------------------

    def _start(
        self,
        run: Run,
        *,
        body: Callable[[RunContext], Awaitable[Any]] | None = None,
        on_renew: Callable[[], Awaitable[None]] | None = None,
        fresh: bool = False,
    ) -> asyncio.Task[None]:
        # A run created here has no events yet: open its channel now, so that a subscriber
        # arriving before the execution's first step finds it.
        channel = self.hub.open(run.id, 1) if fresh else None
        task = asyncio.create_task(
            self.execute(run, body=body, on_renew=on_renew, channel=channel), name=f"run-{run.id}"
        )
        self._executions[run.id] = task
        self._owned[run.id] = run

        def done(_: asyncio.Task[None]) -> None:
            self._executions.pop(run.id, None)
            if not self._stopping:  # `stop` still needs them, to release the runs
                self._owned.pop(run.id, None)

        task.add_done_callback(done)
        return task

    async def execute(
        self,
        run: Run,
        *,
        body: Callable[[RunContext], Awaitable[Any]] | None = None,
        on_renew: Callable[[], Awaitable[None]] | None = None,
        channel: Channel | None = None,
    ) -> None:
        """Execute a run this worker owns, to its end or until it loses the run."""
        me = self.settings.worker_id
        if channel is None:
            first_seq = await asyncio.to_thread(self.store.last_seq, run) + 1
            channel = self.hub.open(run.id, first_seq)
        events = EventLog(run, channel, self.store.append_events)

        async def checkpoint(state: dict[str, Any], progress: dict[str, Any]) -> None:
            await events.flush()  # a checkpoint never runs ahead of the events it covers
            if not await asyncio.to_thread(self.store.checkpoint, run, me, state, progress):
                raise RunLost(run.id)

        documents, embeddings, conversations = (f() if f else None for f in self._resources)
        ctx = RunContext(
            run, events, self.catalogue, checkpoint, documents, embeddings, conversations
        )
        # The run's provider calls are accounted to the key that created it (this task and
        # the work it starts share the binding), and its log lines and calls carry the id
        # of the request that created it.
        bind_caller(Principal(run.tenant_id, run.key_id), "/v1/runs")
        if run.request_id is None or served_request_id() != run.request_id:
            begin_call(run.request_id or f"run:{run.id}", route="/v1/runs")
        if body is None:
            kind = self.kinds.get(run.kind)
            body = kind.execute if kind is not None else _unavailable_kind
        work: asyncio.Future[Any] = asyncio.ensure_future(body(ctx))
        self._work[run.id] = work
        renewer = asyncio.create_task(self._renew(run, work, on_renew))
        events.emit(
            "run.started", {"attempt": run.attempts, "worker": me, "resumed": bool(run.checkpoint)}
        )
        try:
            result = await work
        except (asyncio.CancelledError, RunLost):
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # this worker is shutting down: `stop` releases the run
            # Only a cancel the store has recorded ends the run here. Otherwise another
            # worker took it over (and carries on with the events), or the execution was
            # stopped without an ending: the queue message brings it back (`_settle`).
            latest = await asyncio.to_thread(self.store.get, run.tenant_id, run.id)
            if latest is not None and latest.status == "cancelled":
                events.emit("run.cancelled", {})
        except AwaitingInput as pause:
            pending = pause.pending.public()
            await events.last("awaiting_input", pending, lambda: self._suspend(run, pending))
        except APIError as exc:
            error = exc.body()["error"]
            partial = getattr(exc, "result", None)  # what a kind got done before it failed
            await events.last(
                "run.failed",
                {"error": error},
                lambda: self._finish(run, partial, error=error),
            )
        except Exception:
            log.exception("run %s failed", run.id)
            error = {
                "message": "The run failed with an internal error.",
                "type": "server_error",
                "param": None,
                "code": "internal_error",
            }
            await events.last(
                "run.failed", {"error": error}, lambda: self._finish(run, error=error)
            )
        else:
            await events.last(
                "run.succeeded", {"result": result}, lambda: self._finish(run, result)
            )
        finally:
            renewer.cancel()
            self._work.pop(run.id, None)
            with contextlib.suppress(Exception):
                await events.close()
            self.hub.release(run.id, channel)

    async def _finish(
        self, run: Run, result: Any = None, *, error: dict[str, Any] | None = None
    ) -> None:
        await asyncio.to_thread(
            self.store.finish, run, self.settings.worker_id, result=result, error=error
        )

    async def _suspend(self, run: Run, pending: dict[str, Any]) -> None:
        await asyncio.to_thread(self.store.suspend, run, self.settings.worker_id, pending)

    async def answer(self, principal: Principal, run_id: str, body: Any) -> Run:
        """Store a person's answer to a run awaiting input and queue the run again."""
        run = await asyncio.to_thread(self.store.require, principal.tenant_id, run_id)
        if run.status != "awaiting_input" or run.pending_input is None:
            raise not_awaiting(run)
        answer = parse_answer(run.pending_input, body)
        run = await asyncio.to_thread(self.store.answer, principal.tenant_id, run_id, answer)
        await self._enqueue(run)
        return run

    async def _renew(
        self, run: Run, work: asyncio.Future[Any], on_renew: Callable[[], Awaitable[None]] | None
    ) -> None:
        while not work.done():
            await asyncio.sleep(self.settings.heartbeat_seconds)
            try:
                owned = await asyncio.to_thread(
                    self.store.renew, run, self.settings.worker_id, self.settings.lease_seconds
                )
                if on_renew is not None:
                    await on_renew()
            except Exception:
                log.exception("could not renew the lease of run %s", run.id)
                continue
            if not owned:
                await self._lost(run, work)
                return

    async def _lost(self, run: Run, work: asyncio.Future[Any]) -> None:
        work.cancel()

    # -- following ---------------------------------------------------------------------

    async def subscribe(
        self,
        principal: Principal,
        run: Run,
        after: int,
        credentials: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Event]:
        """The run's events after `after`, live while it runs; ends when the run has ended
        or waits for input (its last event is then `awaiting_input`). `credentials` are
        the client's own credential headers, forwarded when the run is followed at its
        owner (without them, a run owned elsewhere is followed from the table)."""
        while True:
            channel = self.hub.get(run.id)
            if channel is not None:
                if after < channel.first_seq - 1:
                    for event in await asyncio.to_thread(self.store.events, run, after):
                        if event.seq >= channel.first_seq:
                            break
                        yield event
                        after = event.seq
                async for event in channel.after(after):
                    yield event
                    after = event.seq
                current = await asyncio.to_thread(self.store.get, run.tenant_id, run.id)
                if current is None or current.terminal or current.status == "awaiting_input":
                    async for event in self._persisted(current or run, after):
                        yield event
                    return
                continue
            current = await asyncio.to_thread(self.store.get, run.tenant_id, run.id)
            if current is None:
                return
            async for event in self._persisted(current, after):
                yield event
                after = event.seq
            if current.terminal or current.status == "awaiting_input":
                return  # a waiting run's stream ends; follow it again after answering
            mine = current.owner == self.settings.worker_id
            if mine and current.status == "running" and current.lease_until > time.time():
                await asyncio.sleep(0.02)  # this worker is opening the run's channel
                continue
            remote = current.owner_url
            if (
                remote
                and remote != self.settings.advertise_url
                and current.lease_until > time.time()
            ):
                try:
                    async for event in self._remote(credentials, remote, current, after):
                        yield event
                        after = event.seq
                    continue
                except (httpx.HTTPError, RemoteUnavailable):
                    pass  # the owner is gone or unreachable: fall back to the persisted events
            await asyncio.sleep(self.settings.poll_seconds)

    async def _persisted(self, run: Run, after: int) -> AsyncIterator[Event]:
        for event in await asyncio.to_thread(self.store.events, run, after):
            yield event

    async def _remote(
        self, credentials: Mapping[str, str] | None, owner_url: str, run: Run, after: int
    ) -> AsyncIterator[Event]:
        if not credentials:
            raise RemoteUnavailable
        headers = dict(credentials)
        url = f"{owner_url}/internal/runs/{run.id}/events"
        async with self._http.stream(
            "GET", url, params={"after": after}, headers=headers
        ) as response:
            if response.status_code != 200:
                raise RemoteUnavailable
            async for event in read_events(response.aiter_bytes()):
                yield event

    def owns(self, run_id: str) -> bool:
        return self.hub.get(run_id) is not None

    async def wait(
        self,
        principal: Principal,
        run: Run,
        seconds: float,
        credentials: Mapping[str, str] | None = None,
    ) -> Run:
        """The run once it has ended, or as it is when `seconds` have passed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                async for event in self.subscribe(principal, run, 0, credentials):
                    if event.type in TERMINAL_EVENTS:
                        break
        return await asyncio.to_thread(self.store.require, run.tenant_id, run.id)

    # -- cancelling --------------------------------------------------------------------

    async def cancel(
        self, principal: Principal, run_id: str, credentials: Mapping[str, str] | None = None
    ) -> Run:
        """Cancel the caller's run (409 once it has ended) and stop its execution: here,
        or at its owner, told now with the client's `credentials` rather than at its next
        lease renewal."""
        run = await asyncio.to_thread(self.store.cancel, principal.tenant_id, run_id)
        if (
            not self._stop_local(run_id)
            and run.owner_url
            and run.owner_url != self.settings.advertise_url
            and credentials
        ):
            with contextlib.suppress(httpx.HTTPError):
                await self._http.post(
                    f"{run.owner_url}/internal/runs/{run_id}/cancel",
                    headers=dict(credentials),
                    timeout=2.0,
                )
        return run

    async def stop_cancelled(self, principal: Principal, run_id: str) -> Run:
        """What the owner does when another worker tells it a run was cancelled: stop its
        execution, if the run is the caller's (404 otherwise) and its cancel is recorded
        (409 otherwise). A run that is not cancelled is never stopped: it would be left
        running with no execution."""
        run = await asyncio.to_thread(self.store.require, principal.tenant_id, run_id)
        if run.status != "cancelled":
            raise RunConflict(
                f"The run is {run.status}, not cancelled: cancel it with "
                f"POST /v1/runs/{run_id}/cancel.",
                code="run_not_cancelled",
            )
        self._stop_local(run_id)
        return run

    def _stop_local(self, run_id: str) -> bool:
        """Stop this worker's execution of a run whose cancel is recorded, if it has one."""
        work = self._work.get(run_id)
        if work is None:
            return False
        work.cancel()
        return True

    # -- consuming the queue -----------------------------------------------------------

    def start(self) -> None:
        """Take runs from the queue, in a task of its own, until `stop_taking` or `stop`."""
        if self._consumer is None:
            self._consumer = asyncio.create_task(self.consume(), name="run-consumer")

    async def consume(self) -> None:
        """Take runs from the queue until `stop` is called."""
        while not self._stopping:
            free = self.settings.max_concurrent_runs - len(self._executions)
            if free <= 0:
                await asyncio.sleep(0.1)
                continue
            try:
                response = await asyncio.to_thread(
                    self.sqs.receive_message,
                    QueueUrl=self.settings.queue_url,
                    MaxNumberOfMessages=min(10, free),
                    WaitTimeSeconds=self.settings.receive_wait_seconds,
                    MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
                )
            except Exception:
                log.exception("could not receive from the run queue")
                await asyncio.sleep(1.0)
                continue
            if self._stopping:  # received while stopping: for another worker, now
                for message in response.get("Messages", []):
                    with contextlib.suppress(Exception):
                        await self._visibility(message["ReceiptHandle"], 0)
                return
            for message in response.get("Messages", []):
                handler = asyncio.create_task(self._handle(message))
                self._handlers.add(handler)
                handler.add_done_callback(self._handlers.discard)

    async def _handle(self, message: dict[str, Any]) -> None:
        handle = message["ReceiptHandle"]
        try:
            ref = json.loads(message["Body"])
            run = await asyncio.to_thread(self.store.get, ref["tenant_id"], ref["run_id"])
            if run is None or run.terminal or run.status == "awaiting_input":
                # A waiting run holds no message: answering it queues a new one.
                await self._delete(handle)
                return
            if run.status == "running" and run.lease_until > time.time():
                # Its owner is alive: look again later, in case it dies.
                await self._visibility(handle, self.settings.watchdog_seconds)
                return
            if run.attempts >= self.settings.max_attempts:
                await self._give_up(run, message)
                return
            if run.status == "queued":  # how long it waited for a worker to take it
                _count_queue_age(message)
            claimed = await asyncio.to_thread(
                self.store.claim,
                run,
                self.settings.worker_id,
                self.settings.advertise_url,
                self.settings.lease_seconds,
            )
            if claimed is None:
                await self._visibility(handle, min(self.settings.watchdog_seconds, 5))
                return
            if run.status == "running":
                log.warning(
                    "run %s taken over: owner %s let its lease lapse; new owner %s, attempt %d",
                    run.id, run.owner, claimed.owner, claimed.attempts,
                )  # fmt: skip
            await self._visibility(handle, self._hold_seconds())

            async def extend() -> None:
                await self._visibility(handle, self._hold_seconds())

            self._held[run.id] = handle
            try:
                await self._start(claimed, on_renew=extend)
            except asyncio.CancelledError:
                if self._stopping:
                    raise  # `stop` releases the run and makes its message visible
                await self._settle(claimed, handle)
                raise
            await self._settle(claimed, handle)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("could not handle run message %s", message.get("MessageId"))

    async def _settle(self, run: Run, handle: str) -> None:
        """After this worker's execution of a queued run: the message goes once the run
        has ended or waits for input. A run still running here without an execution (it
        was stopped without an ending) is released and its message shown again; a run
        another worker took over keeps its message (this receipt is stale: the message
        reappears, and the owner's live lease sends it back to wait)."""
        self._held.pop(run.id, None)
        current = await asyncio.to_thread(self.store.get, run.tenant_id, run.id)
        if current is None or current.terminal or current.status == "awaiting_input":
            await self._delete(handle)
        elif current.owner == self.settings.worker_id and current.status == "running":
            log.warning("run %s stopped without an ending; released for a takeover", run.id)
            await asyncio.to_thread(self.store.release, current, self.settings.worker_id)
            await self._visibility(handle, 0)

    def _hold_seconds(self) -> int:
        # The message reappears only after the lease would have lapsed without renewals.
        return int(self.settings.lease_seconds + self.settings.heartbeat_seconds) + 1

    async def _give_up(self, run: Run, message: dict[str, Any]) -> None:
        step = run.progress.get("completed_steps")
        where = f" after {step} finished steps" if step is not None else ""
        error = {
            "message": (
                f"The run was abandoned by {run.attempts} workers in turn{where}; "
                "it will not be tried again."
            ),
            "type": "server_error",
            "param": None,
            "code": "run_attempts_exhausted",
        }
        await asyncio.to_thread(self.store.fail_unowned, run, error)
        await asyncio.to_thread(
            self.sqs.send_message,
            QueueUrl=self.settings.dlq_url,
            MessageBody=message["Body"],
            MessageAttributes={
                "reason": {"DataType": "String", "StringValue": "run_attempts_exhausted"}
            },
        )
        await self._delete(message["ReceiptHandle"])

    async def _delete(self, handle: str) -> None:
        await asyncio.to_thread(
            self.sqs.delete_message, QueueUrl=self.settings.queue_url, ReceiptHandle=handle
        )

    async def _visibility(self, handle: str, seconds: float) -> None:
        await asyncio.to_thread(
            self.sqs.change_message_visibility,
            QueueUrl=self.settings.queue_url,
            ReceiptHandle=handle,
            VisibilityTimeout=max(0, min(int(seconds), 43_200)),
        )

    def stop_taking(self) -> None:
        """Take no more runs from the queue (the worker is draining); runs in progress go on."""
        self._stopping = True

    async def stop(self) -> None:
        """Stop taking runs, stop the runs in progress and release them: each one's lease
        ends now and its message is visible now (a run created here gets a new message), so
        another worker takes it over at once and continues from its last checkpoint."""
        self._stopping = True
        tasks = [*self._executions.values(), *self._handlers]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # their events are flushed
        for run_id, run in list(self._owned.items()):
            try:
                await self._release(run, self._held.pop(run_id, None))
            except Exception:
                log.exception("could not release run %s; its lease will lapse", run_id)
        self._owned.clear()
        if self._consumer is not None:
            # Its last receive ends within the long poll; what it got is made visible again.
            done, _ = await asyncio.wait(
                {self._consumer}, timeout=self.settings.receive_wait_seconds + 1
            )
            if not done:
                self._consumer.cancel()
            self._consumer = None
        await self._http.aclose()

    async def _release(self, run: Run, handle: str | None) -> None:
        if not await asyncio.to_thread(self.store.release, run, self.settings.worker_id):
            return  # it ended, or another worker has it
        if handle is not None:
            await self._visibility(handle, 0)
        else:
            await self._enqueue(run)
        log.info("released run %s for another worker", run.id)


class RemoteUnavailable(Exception):
    pass


def _count_queue_age(message: dict[str, Any]) -> None:
    sent = message.get("Attributes", {}).get("SentTimestamp")
    if sent and sent.isdigit():
        age = max(0.0, time.time() - int(sent) / 1000)
        telemetry_metrics.current().observe(names.RUN_QUEUE_AGE, age)


async def _unavailable_kind(ctx: RunContext) -> Any:
    raise APIError(
        f"This worker cannot execute runs of kind '{ctx.run.kind}'.", code="run_kind_unavailable"
    )


def unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "Runs are not configured on this worker (no run queue).", code="runs_unavailable"
    )
