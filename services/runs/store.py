"""Runs in the DynamoDB table (the run, run event and idempotency key items of the key
layout in services/dynamo.py).

A run and its events share a partition, so a replay is one Query. Listing a tenant's runs,
newest first, is a Query on `gsi1`. JSON-valued fields (input, checkpoint, result, ...)
are stored as JSON text. Ownership is a lease: the owner renews `lease_until`, and every
write an owner makes is conditional on still owning a running run, so a run that was
cancelled or taken over cannot be overwritten by a worker that lost it.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import ClientError

from services.dynamo import GSI1, Listing, attributes, conditional_failed, plain
from services.errors import APIError, NotFound
from services.runs.model import Event, Run

IDEMPOTENCY_SECONDS = 24 * 3600
_JSON_FIELDS = ("input", "checkpoint", "progress", "result", "error", "pending_input", "answer")
_BATCH = 25


class IdempotencyMismatch(APIError):
    status = 422
    type = "invalid_request_error"
    code = "idempotency_key_reused"


class RunConflict(APIError):
    status = 409
    type = "invalid_request_error"
    code = "run_not_cancellable"


class NotAwaitingInput(APIError):
    status = 409
    type = "invalid_request_error"
    code = "run_not_awaiting_input"


def new_run_id() -> str:
    return "run_" + secrets.token_hex(12)


def request_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _pk(tenant_id: str, run_id: str) -> str:
    return f"TENANT#{tenant_id}#RUN#{run_id}"


def _seq_key(seq: int) -> str:
    return f"EVT#{seq:010d}"


RUN_ID = re.compile(r"run_[0-9a-f]{24}")
_LIST_SORT_KEY = re.compile(r"[0-9]{13}#run_[0-9a-f]{24}")


def listing(tenant_id: str) -> Listing:
    """The tenant's runs on `gsi1`, newest first; sort key `<created ms:013d>#<run id>`."""
    return Listing(
        f"TENANT#{tenant_id}#RUNS",
        _LIST_SORT_KEY,
        lambda sort_key: (_pk(tenant_id, sort_key.partition("#")[2]), "META"),
    )


class RunStore:
    """Run records and events. Takes a boto3 DynamoDB client; every call blocks."""

    def __init__(
        self,
        client: Any,
        table: str,
        *,
        retention_days: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._table = table
        self._retention = retention_days * 86400
        self._clock = clock

    # -- records -----------------------------------------------------------------------

    def create(self, run: Run, *, body_hash: str | None = None) -> tuple[Run, bool]:
        """Store a new run; with an idempotency key, return the run it already names.

        Returns the run and whether it was created now. The run item and the idempotency
        item are written in one transaction, so two concurrent requests with one key
        yield one run.
        """
        run.expires_at = int(run.created_at + self._retention)
        put_run = {
            "Put": {
                "TableName": self._table,
                "Item": self._item(run),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        if run.idempotency_key is None:
            self._client.transact_write_items(TransactItems=[put_run])
            return run, True
        idem_key = self._idempotency_key(run.tenant_id, run.idempotency_key)
        put_idem = {
            "Put": {
                "TableName": self._table,
                "Item": idem_key
                | attributes(
                    {
                        "run_id": run.id,
                        "request_hash": body_hash or "",
                        "expires_at": int(run.created_at + IDEMPOTENCY_SECONDS),
                    }
                ),
                # An expired key (DynamoDB deletes it late) may be reused.
                "ConditionExpression": "attribute_not_exists(pk) OR expires_at < :now",
                "ExpressionAttributeValues": attributes({":now": int(self._clock())}),
            }
        }
        try:
            self._client.transact_write_items(TransactItems=[put_run, put_idem])
            return run, True
        except ClientError as exc:
            if not conditional_failed(exc):
                raise
        existing = self._client.get_item(TableName=self._table, Key=idem_key, ConsistentRead=True)
        if "Item" not in existing:  # the other request's transaction failed after all: retry
            return self.create(run, body_hash=body_hash)
        item = plain(existing["Item"])
        if body_hash is not None and item["request_hash"] not in ("", body_hash):
            raise IdempotencyMismatch(
                "This Idempotency-Key was already used with a different request body.",
                param="Idempotency-Key",
            )
        found = self.get(run.tenant_id, item["run_id"])
        if found is None:
            raise NotFound("The run this Idempotency-Key names has expired.")
        return found, False

    def get(self, tenant_id: str, run_id: str) -> Run | None:
        response = self._client.get_item(
            TableName=self._table,
            Key=attributes({"pk": _pk(tenant_id, run_id), "sk": "META"}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        if item is None:
            return None
        run = self._run(item)
        return None if run.expires_at and run.expires_at < self._clock() else run

    def require(self, tenant_id: str, run_id: str) -> Run:
        run = self.get(tenant_id, run_id) if _valid_id(run_id) else None
        if run is None:
            raise NotFound(f"No run with id '{run_id}'.", param="run_id", code="run_not_found")
        return run

    def page(
        self, tenant_id: str, *, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[Run], str | None]:
        """A page of the tenant's runs, newest first, and the cursor of the next page."""
        runs_list = listing(tenant_id)
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": GSI1,
            "KeyConditionExpression": "gsi1pk = :p",
            "ExpressionAttributeValues": attributes({":p": runs_list.partition}),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if cursor:
            query["ExclusiveStartKey"] = runs_list.start_key(cursor)
        response = self._client.query(**query)
        now = self._clock()
        runs = [self._run(i) for i in response.get("Items", [])]
        runs = [r for r in runs if not (r.expires_at and r.expires_at < now)]
        last = response.get("LastEvaluatedKey")
        return runs, runs_list.cursor(last["gsi1sk"]["S"]) if last else None

    def claim(
        self, run: Run, owner: str, owner_url: str | None, lease_seconds: float
    ) -> Run | None:
        """Take ownership of a queued run, or of a running one whose owner's lease lapsed."""
        now = self._clock()
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=self._key(run),
                UpdateExpression=(
                    "SET #s = :running, #o = :owner, owner_url = :url, lease_until = :lease, "
                    "updated_at = :now ADD attempts :one"
                ),
                ConditionExpression=(
                    "attribute_exists(pk) AND "
                    "(#s = :queued OR (#s = :running AND lease_until < :now))"
                ),
                ExpressionAttributeNames={"#s": "status", "#o": "owner"},
                ExpressionAttributeValues=attributes(
                    {
                        ":running": "running",
                        ":queued": "queued",
                        ":owner": owner,
                        ":url": owner_url or "",
                        ":lease": float(now + lease_seconds),
                        ":now": float(now),
                        ":one": 1,
                    }
                ),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if conditional_failed(exc):
                return None
            raise
        return self._run(response["Attributes"])

    def renew(self, run: Run, owner: str, lease_seconds: float) -> bool:
        """Extend the lease; False once the run was cancelled or taken over."""
        return self._owned_update(
            run,
            owner,
            "SET lease_until = :lease",
            {":lease": self._clock() + lease_seconds},
        )

    def release(self, run: Run, owner: str) -> bool:
        """Give up a run this worker owns and is no longer executing (it is shutting down,
        or its execution stopped without an ending): the lease ends now, so the next worker
        that receives its message takes it over at once, and the attempt is not counted.
        False if the run ended, or another worker owns it, meanwhile."""
        return self._owned_update(
            run,
            owner,
            "SET lease_until = :zero, attempts = attempts - :one",
            {":zero": 0, ":one": 1},
        )

    def checkpoint(
        self, run: Run, owner: str, checkpoint: dict[str, Any], progress: dict[str, Any]
    ) -> bool:
        run.checkpoint, run.progress = checkpoint, progress
        return self._owned_update(
            run,
            owner,
            "SET checkpoint = :c, progress = :p, updated_at = :now",
            {
                ":c": json.dumps(checkpoint),
                ":p": json.dumps(progress),
                ":now": self._clock(),
            },
        )

    def finish(
        self, run: Run, owner: str, *, result: Any = None, error: dict[str, Any] | None = None
    ) -> bool:
        """Record the outcome; False if the run was cancelled or taken over meanwhile."""
        status = "failed" if error is not None else "succeeded"
        ok = self._owned_update(
            run,
            owner,
            "SET #s = :status, #r = :result, #e = :error, lease_until = :zero, updated_at = :now",
            {
                ":status": status,
                ":result": json.dumps(result),
                ":error": json.dumps(error),
                ":zero": 0,
                ":now": self._clock(),
            },
            names={"#s": "status", "#r": "result", "#e": "error"},
        )
        if ok:
            run.status, run.result, run.error = status, result, error  # type: ignore[assignment]
        return ok

    def suspend(self, run: Run, owner: str, pending: dict[str, Any]) -> bool:
        """Park a run this worker owns until a person answers `pending`: it keeps its
        checkpoint and holds no lease. False if the run was cancelled or taken over."""
        ok = self._owned_update(
            run,
            owner,
            "SET #s = :awaiting, pending_input = :pending, answer = :none, #o = :nobody, "
            "owner_url = :nobody, lease_until = :zero, updated_at = :now",
            {
                ":awaiting": "awaiting_input",
                ":pending": json.dumps(pending),
                ":none": "null",
                ":nobody": "",
                ":zero": 0,
                ":now": self._clock(),
            },
            names={"#s": "status", "#o": "owner"},
        )
        if ok:
            run.status, run.pending_input, run.answer = "awaiting_input", pending, None
            run.owner = run.owner_url = None
        return ok

    def answer(self, tenant_id: str, run_id: str, answer: dict[str, Any]) -> Run:
        """Store the answer to a waiting run and queue it again (409 if it is not waiting:
        it never was, or another answer won). Its attempts start again at 0: they count
        the workers that tried this turn."""
        run = self.require(tenant_id, run_id)
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=self._key(run),
                UpdateExpression=(
                    "SET #s = :queued, answer = :answer, pending_input = :none, "
                    "attempts = :zero, updated_at = :now"
                ),
                ConditionExpression="#s = :awaiting",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=attributes(
                    {
                        ":queued": "queued",
                        ":awaiting": "awaiting_input",
                        ":answer": json.dumps(answer),
                        ":none": "null",
                        ":zero": 0,
                        ":now": float(self._clock()),
                    }
                ),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if conditional_failed(exc):
                raise not_awaiting(self.require(tenant_id, run_id)) from None
            raise
        return self._run(response["Attributes"])

    def fail_unowned(self, run: Run, error: dict[str, Any]) -> bool:
        """Fail a run that nobody can finish (out of attempts), unless it already ended."""
        try:
            self._end_active(run, "failed", error)
            return True
        except ClientError as exc:
            if conditional_failed(exc):
                return False
            raise

    def cancel(self, tenant_id: str, run_id: str) -> Run:
        """Cancel an active run (409 if it has already ended)."""
        run = self.require(tenant_id, run_id)
        error = {"message": "The run was cancelled.", "type": "cancelled", "code": "run_cancelled"}
        try:
            return self._end_active(run, "cancelled", error)
        except ClientError as exc:
            if conditional_failed(exc):
                current = self.require(tenant_id, run_id)
                raise RunConflict(
                    f"The run has already ended ({current.status}); only a queued, running or "
                    "waiting run can be cancelled."
                ) from None
            raise

    def _end_active(self, run: Run, status: str, error: dict[str, Any]) -> Run:
        """End a run that is still queued, running or awaiting input, whoever owns it."""
        response = self._client.update_item(
            TableName=self._table,
            Key=self._key(run),
            UpdateExpression="SET #s = :end, #e = :error, lease_until = :zero, updated_at = :now",
            ConditionExpression="#s IN (:queued, :running, :awaiting)",
            ExpressionAttributeNames={"#s": "status", "#e": "error"},
            ExpressionAttributeValues=attributes(
                {
                    ":end": status,
                    ":error": json.dumps(error),
                    ":zero": 0,
                    ":now": float(self._clock()),
                    ":queued": "queued",
                    ":running": "running",
                    ":awaiting": "awaiting_input",
                }
            ),
            ReturnValues="ALL_NEW",
        )
        return self._run(response["Attributes"])

    # -- events ------------------------------------------------------------------------

    def append_events(self, run: Run, events: Iterable[Event]) -> None:
        """Persist events (BatchWriteItem, 25 at a time, retrying unprocessed items)."""
        pk = _pk(run.tenant_id, run.id)
        requests = [
            {
                "PutRequest": {
                    "Item": attributes(
                        {
                            "pk": pk,
                            "sk": _seq_key(e.seq),
                            "type": e.type,
                            "data": json.dumps(e.data),
                            "at": float(e.at),
                            "expires_at": run.expires_at,
                        }
                    )
                }
            }
            for e in events
        ]
        for start in range(0, len(requests), _BATCH):
            pending: dict[str, Any] = {self._table: requests[start : start + _BATCH]}
            for attempt in range(8):
                response = self._client.batch_write_item(RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise RuntimeError(f"could not persist events of run {run.id}")

    def events(self, run: Run, after: int = 0, *, limit: int | None = None) -> list[Event]:
        """The persisted events with `seq > after`, in order."""
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :p AND sk > :after",
            "ExpressionAttributeValues": attributes(
                {
                    ":p": _pk(run.tenant_id, run.id),
                    ":after": _seq_key(after),
                }
            ),
            "ConsistentRead": True,
        }
        if limit is not None:
            query["Limit"] = limit
        out: list[Event] = []
        while True:
            response = self._client.query(**query)
            for item in map(plain, response.get("Items", [])):
                if not item["sk"].startswith("EVT#"):
                    continue
                out.append(
                    Event(
                        seq=int(item["sk"][4:]),
                        type=item["type"],
                        data=json.loads(item["data"]),
                        at=float(item["at"]),
                    )
                )
            last = response.get("LastEvaluatedKey")
            if not last or (limit is not None and len(out) >= limit):
                return out
            query["ExclusiveStartKey"] = last

    def last_seq(self, run: Run) -> int:
        response = self._client.query(
            TableName=self._table,
            KeyConditionExpression="pk = :p AND begins_with(sk, :evt)",
            ExpressionAttributeValues=attributes(
                {
                    ":p": _pk(run.tenant_id, run.id),
                    ":evt": "EVT#",
                }
            ),
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        items = response.get("Items", [])
        return int(items[0]["sk"]["S"][4:]) if items else 0

    # -- helpers -----------------------------------------------------------------------

    def _owned_update(
        self,
        run: Run,
        owner: str,
        expression: str,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
    ) -> bool:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(run),
                UpdateExpression=expression,
                ConditionExpression="#own = :me AND #st = :running",
                ExpressionAttributeNames={**(names or {}), "#own": "owner", "#st": "status"},
                ExpressionAttributeValues=attributes(
                    {
                        **values,
                        ":me": owner,
                        ":running": "running",
                    }
                ),
            )
            return True
        except ClientError as exc:
            if conditional_failed(exc):
                return False
            raise

    def _key(self, run: Run) -> dict[str, Any]:
        return attributes({"pk": _pk(run.tenant_id, run.id), "sk": "META"})

    def _idempotency_key(self, tenant_id: str, key: str) -> dict[str, Any]:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return attributes({"pk": f"TENANT#{tenant_id}#IDEMPOTENCY#{digest}", "sk": "IDEMPOTENCY"})

    def _item(self, run: Run) -> dict[str, Any]:
        return attributes(
            {
                "pk": _pk(run.tenant_id, run.id),
                "sk": "META",
                "gsi1pk": f"TENANT#{run.tenant_id}#RUNS",
                "gsi1sk": f"{int(run.created_at * 1000):013d}#{run.id}",
                "id": run.id,
                "tenant_id": run.tenant_id,
                "key_id": run.key_id,
                "kind": run.kind,
                "status": run.status,
                "created_at": float(run.created_at),
                "updated_at": float(run.updated_at),
                "owner": run.owner or "",
                "owner_url": run.owner_url or "",
                "lease_until": float(run.lease_until),
                "attempts": run.attempts,
                "cancel_on_disconnect": run.cancel_on_disconnect,
                "expires_at": run.expires_at,
                **{name: json.dumps(getattr(run, name)) for name in _JSON_FIELDS},
                "idempotency_key": run.idempotency_key or None,
                "request_id": run.request_id,
            }
        )

    @staticmethod
    def _run(item: dict[str, Any]) -> Run:
        v = plain(item)
        return Run(
            id=v["id"],
            tenant_id=v["tenant_id"],
            key_id=v["key_id"],
            kind=v["kind"],
            status=v["status"],
            input=json.loads(v["input"]),
            created_at=float(v["created_at"]),
            updated_at=float(v["updated_at"]),
            owner=v["owner"] or None,
            owner_url=v.get("owner_url") or None,
            lease_until=float(v["lease_until"]),
            attempts=int(v["attempts"]),
            checkpoint=json.loads(v["checkpoint"]) or {},
            progress=json.loads(v["progress"]) or {},
            result=json.loads(v["result"]),
            error=json.loads(v["error"]),
            idempotency_key=v.get("idempotency_key"),
            cancel_on_disconnect=v["cancel_on_disconnect"],
            expires_at=int(v["expires_at"]),
            pending_input=json.loads(v.get("pending_input", "null")),
            answer=json.loads(v.get("answer", "null")),
            request_id=v.get("request_id"),
        )


def not_awaiting(run: Run) -> NotAwaitingInput:
    return NotAwaitingInput(
        f"The run is {run.status}, not awaiting input"
        + (" (another answer was taken first)." if run.status in ("queued", "running") else "."),
        param="run_id",
    )


def _valid_id(run_id: str) -> bool:
    return RUN_ID.fullmatch(run_id) is not None
