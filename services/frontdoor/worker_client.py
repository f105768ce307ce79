"""The gateway Lambda's blocking HTTP client to the worker (urllib3, pooled, with a deadline).

urllib3 ships with botocore in every Lambda Python runtime, so the gateway bundle adds
nothing for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import urllib3

from services.errors import GatewayTimeout, ServiceUnavailable

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "content-encoding",
}


@dataclass(frozen=True, slots=True)
class WorkerResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class WorkerClient:
    def __init__(self, base_url: str, *, pool: urllib3.PoolManager | None = None) -> None:
        self._base_url = base_url.rstrip("/")
        self._pool = pool or urllib3.PoolManager(maxsize=4, retries=False)

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str],
        body: bytes | None = None,
        timeout: float,
    ) -> WorkerResponse:
        """One call to the worker that finishes within `timeout` seconds or raises 504."""
        try:
            response = self._pool.request(
                method,
                self._base_url + path,
                body=body,
                headers=headers,
                timeout=urllib3.Timeout(connect=min(timeout, 3.0), read=timeout),
                preload_content=False,
                retries=False,
            )
            data = _read_within(response, timeout)
        except (urllib3.exceptions.TimeoutError, TimeoutError):
            raise GatewayTimeout(
                f"The worker did not finish within the gateway's deadline of {timeout:.1f} s."
            ) from None
        except urllib3.exceptions.HTTPError as exc:
            raise ServiceUnavailable(
                f"The AI worker is unreachable: {exc.__class__.__name__}."
            ) from None
        headers_out = {
            k.lower(): v for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP
        }
        return WorkerResponse(response.status, headers_out, data)


def _read_within(response: urllib3.BaseHTTPResponse, timeout: float) -> bytes:
    """The whole body, or TimeoutError once `timeout` has passed (a slow drip included)."""
    deadline = time.monotonic() + timeout
    parts = []
    try:
        for chunk in response.stream(64 * 1024):
            parts.append(chunk)
            if time.monotonic() > deadline:
                raise TimeoutError
    except BaseException:
        response.close()  # never return a half-read connection to the pool
        raise
    response.release_conn()
    return b"".join(parts)
