"""`python -m devstack.aws --port N`: moto's DynamoDB, SQS and S3 on 127.0.0.1, in a process
of its own so that every local stack has its own state."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import warnings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.aws")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*moto\\[server\\].*")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
