"""`python -m services.web.serve APP [uvicorn's options]`: uvicorn, except that the errors
uvicorn answers by itself have the OpenAI error envelope too.

uvicorn answers a request it cannot parse (a malformed request line or header) with a
`text/plain` "Invalid HTTP request received.", before any application sees it. Every
error a client can receive must have the documented envelope, and uvicorn's `--http`
option takes only a name on the command line, so this launcher takes uvicorn's own
options and serves with `JSONErrorsHttpToolsProtocol` (httptools, as the worker always
used). WebSocket upgrades are off (`ws="none"`): no entry point serves WebSockets, and an
upgrade request is then served as the plain HTTP request it also is.

The worker image (containers/worker/Dockerfile), the stream front door's Lambda
(lambdas/stream/run.sh) and the local stack (devstack) all start their servers with it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from uvicorn.main import main as uvicorn_command
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

INVALID_HTTP_BODY = json.dumps(
    {
        "error": {
            "message": (
                "The request is not valid HTTP/1.1: its request line or a header is malformed."
            ),
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_http_request",
        }
    }
).encode()


class JSONErrorsHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering a request it cannot parse with a 400 in the
    OpenAI error envelope (and closing the connection, as uvicorn does)."""

    def send_400_response(self, msg: str) -> None:
        content = [STATUS_LINE[400]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: %d\r\n" % len(INVALID_HTTP_BODY),
                b"connection: close\r\n",
                b"\r\n",
                INVALID_HTTP_BODY,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()


def _serve(**options: Any) -> None:
    if options["http"] not in ("auto", "httptools"):
        raise click.UsageError("this launcher serves with httptools only; leave out --http")
    if options.get("http2"):
        raise click.UsageError("this launcher serves HTTP/1.1 only; leave out --http2")
    options["http"] = JSONErrorsHttpToolsProtocol
    options["ws"] = "none"
    callback = uvicorn_command.callback
    assert callback is not None
    callback(**options)


command = click.Command(
    name="python -m services.web.serve",
    params=uvicorn_command.params,
    callback=_serve,
    help=__doc__,
    context_settings={"auto_envvar_prefix": "UVICORN"},
)


def main(argv: list[str] | None = None) -> None:
    command.main(args=sys.argv[1:] if argv is None else argv, prog_name=command.name)


if __name__ == "__main__":
    main()
