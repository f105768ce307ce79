"""`python -m devstack.aws --port N`: moto's DynamoDB, SQS and S3 on 127.0.0.1, in a process
of its own so that every local stack has its own state.

DynamoDB applies each request atomically (a TransactWriteItems checks its conditions and
writes, or does nothing), and conditional writes are how Switchboard keeps concurrent
turns of a conversation from losing messages. moto's threaded server runs requests
side by side without that guarantee, so DynamoDB requests are served one at a time here.
SQS and S3 requests stay concurrent (a long poll must not hold up everything else).

moto backs up a table for a transaction's rollback by deep-copying the whole table once per
action, so a transaction's cost grows with the table: a 100-action write took seconds once
the table held a few thousand usage records. `cheap_transaction_rollback` snapshots only
the items a transaction touches, and restores those when it fails.

moto keeps everything in memory and has no persistence of its own (5.2.5: its recorder
journals and replays every request, reads and queue polls included, which grows without
bound and replays in time proportional to the history). With `--state FILE` this process
keeps the state between runs itself: `POST /_devstack/state/restore` loads the items,
objects and queued messages saved in FILE into the tables, buckets and queues the stack
has just created (so their definitions are always the code's), and from then on the state
is saved to FILE when the process stops (SIGTERM or SIGINT, also when the stack that
started it dies). A process whose state was never restored saves nothing, so a stack
that failed to start cannot overwrite a good file with an empty one.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger("devstack.aws")
Environ = dict[str, Any]
WSGIApp = Callable[[Environ, Callable[..., Any]], Iterable[bytes]]


def serialize_dynamodb(app: WSGIApp) -> WSGIApp:
    """`app`, serving one DynamoDB request at a time (the whole request, body included)."""
    lock = threading.Lock()

    def serve(environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return app(environ, start_response)
        with lock:
            return list(app(environ, start_response))

    return serve


def cheap_transaction_rollback() -> None:
    """Make moto's TransactWriteItems back up only the items it touches (call once, in the
    process serving DynamoDB one request at a time)."""
    import copy

    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    if getattr(models.DynamoDBBackend.transact_write_items, "_cheap", False):
        return
    backing_up = threading.local()

    class TableBackupSkipped:
        """moto's `copy` module, except that a table is not copied during a transaction:
        the wrapper below keeps the touched items instead."""

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            if getattr(backing_up, "active", False) and isinstance(value, Table):
                return value
            return copy.deepcopy(value, memo)

    vars(models)["copy"] = TableBackupSkipped  # the name moto's backend module copies with
    transact = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        before: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
        for action in transact_items:
            op = next(iter(action.values()))
            table = self.get_table(op["TableName"])
            if "Item" in op:
                names = [table.hash_key_attr, table.range_key_attr]
                key = {n: op["Item"][n] for n in names if n is not None and n in op["Item"]}
            else:
                key = op["Key"]
            current = self.get_item(op["TableName"], key)
            attrs = None if current is None else copy.deepcopy(current.to_json()["Attributes"])
            before.append((op["TableName"], key, attrs))
        backing_up.active = True
        try:
            transact(self, transact_items)
        except BaseException:
            for table_name, key, attrs in reversed(before):
                if attrs is None:
                    if self.get_item(table_name, key) is not None:
                        self.delete_item(table_name, key)
                else:
                    self.put_item(table_name, attrs)
            raise
        finally:
            backing_up.active = False

    transact_write_items._cheap = True  # type: ignore[attr-defined]
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


STATE_VERSION = 1
RESTORE_PATH = "/_devstack/state/restore"


class StateError(RuntimeError):
    """The saved state cannot be read; the message says which file and why."""


def snapshot() -> dict[str, Any]:
    """Every table's items, every bucket's objects and every queue's messages (in flight
    or not), from moto's backends."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.s3.models import FakeKey, s3_backends
    from moto.sqs.models import sqs_backends

    tables = [
        {
            "account": account, "region": region, "table": name,
            "items": [_binary(item.to_json()["Attributes"], _b64) for item in table.all_items()],
        }
        for account, regions in list(dynamodb_backends.items())
        for region, backend in list(regions.items())
        for name, table in list(backend.tables.items())
    ]  # fmt: skip
    objects = [
        {
            "account": account, "partition": partition, "bucket": bucket_name, "key": key,
            "metadata": dict(fake.metadata),
            "body": base64.b64encode(fake.value).decode(),
        }
        for account, partitions in list(s3_backends.items())
        for partition, backend in list(partitions.items())
        for bucket_name, bucket in list(backend.buckets.items())
        for key, fake in bucket.keys.items()
        if isinstance(fake, FakeKey)
    ]  # fmt: skip
    queues = [
        {
            "account": account, "region": region, "queue": name,
            "messages": [
                {"body": m.body, "attributes": m.message_attributes} for m in list(queue._messages)
            ],
        }
        for account, regions in list(sqs_backends.items())
        for region, backend in list(regions.items())
        for name, queue in list(backend.queues.items())
    ]  # fmt: skip
    return {"version": STATE_VERSION, "dynamodb": tables, "s3": objects, "sqs": queues}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _binary(item: dict[str, Any], convert: Callable[[Any], Any]) -> dict[str, Any]:
    """`item` (DynamoDB JSON) with `convert` applied to every binary value (moto holds
    them as bytes; the file holds them as base64, as DynamoDB's JSON does)."""

    def value(typed: dict[str, Any]) -> dict[str, Any]:
        (kind, inner), *_ = typed.items()
        if kind == "B":
            return {"B": convert(inner)}
        if kind == "BS":
            return {"BS": [convert(v) for v in inner]}
        if kind == "M":
            return {"M": {k: value(v) for k, v in inner.items()}}
        if kind == "L":
            return {"L": [value(v) for v in inner]}
        return typed

    return {name: value(typed) for name, typed in item.items()}


def restore(state: dict[str, Any]) -> dict[str, Any]:
    """Load `state` (a `snapshot()`) into the tables, buckets and queues that exist now,
    and count what was loaded and what had nowhere to go. Queued messages come back
    visible at once (a message in flight when the state was saved belonged to a worker
    of the last run)."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.s3.models import s3_backends
    from moto.sqs.models import sqs_backends

    if state.get("version") != STATE_VERSION:
        raise StateError(f"it is version {state.get('version')!r}, not {STATE_VERSION}")
    items = objects = messages = 0
    skipped: list[str] = []
    for table in state["dynamodb"]:
        tables = dynamodb_backends[table["account"]][table["region"]]
        if table["table"] not in tables.tables:
            skipped.append(f"table {table['table']} ({len(table['items'])} items)")
            continue
        for item in table["items"]:
            tables.put_item(table["table"], _binary(item, base64.b64decode))
        items += len(table["items"])
    for obj in state["s3"]:
        buckets = s3_backends[obj["account"]][obj["partition"]]
        if obj["bucket"] not in buckets.buckets:
            skipped.append(f"object {obj['bucket']}/{obj['key']}")
            continue
        key = buckets.put_object(obj["bucket"], obj["key"], base64.b64decode(obj["body"]))
        key.set_metadata(dict(obj["metadata"]))  # onto the default content type
        objects += 1
    for queue in state["sqs"]:
        queues = sqs_backends[queue["account"]][queue["region"]]
        if queue["queue"] not in queues.queues:
            skipped.append(f"queue {queue['queue']} ({len(queue['messages'])} messages)")
            continue
        for message in queue["messages"]:
            queues.send_message(
                queue["queue"], message["body"], message_attributes=message["attributes"] or None
            )
        messages += len(queue["messages"])
    return {"items": items, "objects": objects, "messages": messages, "skipped": skipped}


def save(path: Path) -> None:
    """Write the state to `path` atomically (a stop halfway leaves the last good file)."""
    started = time.monotonic()
    state = snapshot()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w") as out:
        json.dump(state, out, separators=(",", ":"))
    os.replace(partial, path)
    log.info(
        "state saved to %s in %.2f s: %d items, %d objects, %d messages",
        path, time.monotonic() - started,
        sum(len(t["items"]) for t in state["dynamodb"]), len(state["s3"]),
        sum(len(q["messages"]) for q in state["sqs"]),
    )  # fmt: skip


def load(path: Path) -> dict[str, Any]:
    """The state saved in `path` (none yet: an empty one)."""
    if not path.exists():
        return {"version": STATE_VERSION, "dynamodb": [], "s3": [], "sqs": []}
    try:
        with path.open() as saved:
            state = json.load(saved)
    except (OSError, ValueError) as exc:
        raise StateError(f"cannot read {path}: {exc}") from None
    if not isinstance(state, dict):
        raise StateError(f"{path} does not hold a saved state")
    return state


class StateKeeper:
    """The `--state` file: restored on request, then saved when the process stops."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.armed = False  # saving starts only once the state was restored

    def routes(self, app: WSGIApp) -> WSGIApp:
        def serve(environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("PATH_INFO") != RESTORE_PATH or environ["REQUEST_METHOD"] != "POST":
                return app(environ, start_response)
            started = time.monotonic()
            try:
                counts = restore(load(self.path))
            except Exception as exc:
                log.exception("could not restore the state from %s", self.path)
                why = exc if isinstance(exc, StateError) else f"{type(exc).__name__}: {exc}"
                message = f"The saved state in {self.path} cannot be restored: {why}"
                body = json.dumps({"error": message}).encode()
                start_response("500 Internal Server Error", [("content-type", "application/json")])
                return [body]
            self.armed = True
            counts["seconds"] = round(time.monotonic() - started, 3)
            start_response("200 OK", [("content-type", "application/json")])
            return [json.dumps(counts).encode()]

        return serve

    def save(self) -> None:
        if self.armed:
            save(self.path)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.aws")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--state", type=Path, default=None, help="keep the state in this file between runs"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="devstack.aws: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*moto\\[server\\].*")
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    cheap_transaction_rollback()
    # What moto's ThreadedMotoServer does, with DynamoDB requests serialized.
    app: WSGIApp = serialize_dynamodb(DomainDispatcherApplication(create_backend_app))
    keeper = StateKeeper(args.state) if args.state is not None else None
    if keeper is not None:
        app = keeper.routes(app)
    server = make_server(
        args.host,
        args.port,
        app,
        threaded=True,
        request_handler=MotoRequestHandler,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    if keeper is not None:
        keeper.save()


if __name__ == "__main__":
    main()
