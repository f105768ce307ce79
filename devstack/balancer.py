"""`python -m devstack.balancer`: the load balancer in front of the local workers.

Like the ALB in front of the Fargate service, it spreads connections over the workers
(round robin) and skips a worker that refuses connections, so that killing one worker
leaves the platform reachable. It forwards bytes, so streams pass through untouched.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def serve(host: str, port: int, backends: list[tuple[str, int]]) -> None:
    order = itertools.cycle(range(len(backends)))

    async def handle(
        client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        for _ in range(len(backends)):
            backend_host, backend_port = backends[next(order)]
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(
                    backend_host, backend_port
                )
                break
            except OSError:
                continue
        else:
            client_writer.write(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
                b"connection: close\r\ncontent-length: 109\r\n\r\n"
                b'{"error":{"message":"No worker is reachable.","type":"server_error",'
                b'"param":null,"code":"no_healthy_worker"}}'
            )
            with contextlib.suppress(Exception):
                await client_writer.drain()
                client_writer.close()
            return
        await asyncio.gather(
            _pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer)
        )

    server = await asyncio.start_server(handle, host, port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.balancer")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("backends", nargs="+", help="host:port of each worker")
    args = parser.parse_args()
    backends = [(b.rsplit(":", 1)[0], int(b.rsplit(":", 1)[1])) for b in args.backends]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, backends))


if __name__ == "__main__":
    main()
