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
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import warnings
from collections.abc import Callable, Iterable
from typing import Any

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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.aws")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
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
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(
        args.host,
        args.port,
        serialize_dynamodb(app),
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


if __name__ == "__main__":
    main()
