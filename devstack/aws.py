"""`python -m devstack.aws --port N`: moto's DynamoDB, SQS and S3 on 127.0.0.1, in a process
of its own so that every local stack has its own state.

DynamoDB applies each request atomically (a TransactWriteItems checks its conditions and
writes, or does nothing), and conditional writes are how Switchboard keeps concurrent
turns of a conversation from losing messages. moto's threaded server runs requests
side by side without that guarantee, so DynamoDB requests are served one at a time here.
SQS and S3 requests stay concurrent (a long poll must not hold up everything else).
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
