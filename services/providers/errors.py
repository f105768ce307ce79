"""Provider failures as values the router and the client can act on.

Every adapter raises `ProviderError` for an upstream failure. `retryable` tells the router
whether another attempt (or the next provider on the route) may succeed: rate limits,
server errors, connection failures and timeouts are retryable; the upstream's verdict on
the request itself (400, 401, 403, 404, 422) is not, and reaches the client with the
provider's own message.
"""

from __future__ import annotations

from services.errors import APIError


class ProviderError(APIError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        retryable: bool,
        retry_after: float | None = None,
        upstream_status: int | None = None,
        status: int | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message, status=status, type=type, code=code, param=param)
        self.provider = provider
        self.retryable = retryable
        self.retry_after = retry_after
        self.upstream_status = upstream_status


def from_status(
    provider: str, status: int, message: str, *, retry_after: float | None = None
) -> ProviderError:
    """The error for an upstream HTTP status, with the upstream's message kept."""
    text = f"{provider}: {message}" if message else f"{provider} answered HTTP {status}"
    if status == 429:
        return ProviderError(
            text, provider=provider, retryable=True, retry_after=retry_after,
            upstream_status=status, status=429, type="rate_limit_error",
            code="upstream_rate_limited",
        )  # fmt: skip
    if status in (408,) or status >= 500:
        return ProviderError(
            text, provider=provider, retryable=True, retry_after=retry_after,
            upstream_status=status, status=502, code="upstream_unavailable",
        )  # fmt: skip
    if status in (401, 403):
        # Switchboard's own credentials for the provider were refused: not the client's fault.
        return ProviderError(
            text, provider=provider, retryable=False, upstream_status=status,
            status=502, type="upstream_error", code="upstream_authentication_failed",
        )  # fmt: skip
    if status == 404:
        return ProviderError(
            text, provider=provider, retryable=False, upstream_status=status,
            status=404, type="not_found_error", code="upstream_not_found",
        )  # fmt: skip
    return ProviderError(
        text, provider=provider, retryable=False, upstream_status=status,
        status=400, type="invalid_request_error", code="upstream_invalid_request",
    )  # fmt: skip


def connection_failed(provider: str, detail: str) -> ProviderError:
    return ProviderError(
        f"{provider} could not be reached: {detail}",
        provider=provider, retryable=True, status=502, code="upstream_unreachable",
    )  # fmt: skip


def timed_out(provider: str, phase: str, seconds: float) -> ProviderError:
    """`phase` is what took too long: connect, first byte, idle gap between chunks, total."""
    return ProviderError(
        f"{provider} timed out waiting for the {phase} ({seconds:g} s)",
        provider=provider, retryable=True, status=504, type="timeout", code="upstream_timeout",
    )  # fmt: skip


def malformed(provider: str, detail: str) -> ProviderError:
    return ProviderError(
        f"{provider} sent a response Switchboard could not read: {detail}",
        provider=provider, retryable=True, status=502, code="upstream_malformed_response",
    )  # fmt: skip


def failed_mid_stream(provider: str, message: str) -> ProviderError:
    """An error event inside a stream, after a 200: the upstream failed mid-answer."""
    return ProviderError(
        f"{provider}: {message}",
        provider=provider,
        retryable=True,
        status=502,
        code="upstream_error",
    )
