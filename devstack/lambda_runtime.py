"""`python -m devstack.lambda_runtime HANDLER`: one Lambda execution environment.

What Lambda's Python runtime does, locally: import the handler module once (the init phase,
a cold start), then serve one invocation at a time, each with a context object whose
remaining time counts down from the function's timeout. Module globals (clients built on
first use, caches) live as long as the environment, as in Lambda.

It speaks to `devstack.lambda_pool` over its stdin and stdout in frames: a 4-byte
big-endian length, then JSON. The environment first sends `{"ready": true}` (or
`{"init_error": {...}}` if the import failed); then, for each `{"event", "request_id",
"timeout_ms"}` it reads, it sends `{"result": ...}` or `{"error": {"errorType",
"errorMessage", "stackTrace"}}`, as Lambda reports an unhandled exception. Whatever the
handler prints goes to stderr (its log), not into the frames.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import struct
import sys
import time
import traceback
from collections.abc import Callable
from typing import IO, Any

import orjson

Handler = Callable[[dict[str, Any], Any], Any]
_LENGTH = struct.Struct(">I")
FUNCTION_NAME = "switchboard-gateway-local"
REGION = "us-east-1"


def frame(message: Any) -> bytes:
    data = orjson.dumps(message)
    return _LENGTH.pack(len(data)) + data


def _read_frame(stream: IO[bytes]) -> Any:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None  # the pool closed our stdin: the environment is shut down
    (length,) = _LENGTH.unpack(head)
    return orjson.loads(stream.read(length))


class LambdaContext:
    """The parts of the Lambda context object a handler reads."""

    def __init__(self, timeout_ms: int, request_id: str) -> None:
        self._deadline = time.monotonic() + timeout_ms / 1000
        self.aws_request_id = request_id
        self.function_name = FUNCTION_NAME
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:000000000000:function:{FUNCTION_NAME}"
        self.log_group_name = f"/aws/lambda/{FUNCTION_NAME}"
        self.log_stream_name = f"local/{os.getpid()}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _error(exc: BaseException) -> dict[str, Any]:
    return {
        "errorType": type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(exc),
    }


def load(path: str) -> Handler:
    module, _, name = path.rpartition(".")
    handler: Handler = getattr(importlib.import_module(module), name)
    return handler


def serve(handler_path: str, requests: IO[bytes], replies: IO[bytes]) -> None:
    def reply(message: Any) -> None:
        replies.write(frame(message))
        replies.flush()

    try:
        handler = load(handler_path)
    except Exception as exc:
        traceback.print_exc()
        reply({"init_error": _error(exc)})
        return
    reply({"ready": True})
    while (invocation := _read_frame(requests)) is not None:
        context = LambdaContext(invocation["timeout_ms"], invocation["request_id"])
        try:
            result = handler(invocation["event"], context)
            message = frame({"result": result})
        except Exception as exc:
            # Reported with its stack trace to the caller, which logs it where it is a
            # failure (an authorizer's "Unauthorized" is its way to answer 401).
            message = frame({"error": _error(exc)})
        replies.write(message)
        replies.flush()


def main() -> None:
    # The frames keep the original stdin and stdout; the handler's own prints go to stderr
    # and it reads nothing from the pool's pipe.
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):  # the pool is gone
        serve(sys.argv[1], requests, replies)


if __name__ == "__main__":
    main()
