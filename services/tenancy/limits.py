"""Admission: the tenant's monthly budget and the key's rate limits, checked before any
provider is called.

    result = await admission.admit(principal)   # raises RateLimited (429)
    response.headers.update(result.headers)     # x-ratelimit-* for a key with rate limits

or, for a Starlette route, `guard(authenticator, admission, handler)` does both (and puts
the headers on error responses too). Every AI route of the worker goes through it: chat
completions, Anthropic messages, run creation, and any route that calls a provider.

- The tenant's limits (services/tenancy/tenants.py) are cached per process for `cache_seconds`
  (5 s by default, `SWITCHBOARD_LIMITS_CACHE_SECONDS`), so a change takes effect on every
  worker within that bound. A tenant without limits, or without a tenant record, then costs
  no DynamoDB call per request.
- Budget: with a `monthly_budget_usd`, the tenant's spend counter for the current UTC month
  (`TENANT#<t>` / `SPEND#<YYYY-MM>`, cost_usd_micros, written by the usage recorder with
  ADD once per provider attempt, retries and fallbacks included) is read with a strongly
  consistent GetItem on every request, and a spend >= the budget answers 429
  `insufficient_quota` / `budget_exceeded`.
- Rate limits: with `rpm` or `tpm`, one conditional UpdateItem on the key's window for the
  current minute (`RATE#<key id>` / `MIN#<epoch minute>`) adds the request and reads the
  tokens the usage recorder has added, refusing (and adding nothing) when the window holds
  `rpm` requests or at least `tpm` tokens. The state is in DynamoDB, so the limit holds
  across every worker and front door; windows expire by TTL two minutes after they end.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import ClientError

from services.dynamo import attributes, conditional_failed, plain
from services.errors import APIError, RateLimited
from services.tenancy.auth import REFRESH_AHEAD, Authenticator, Principal
from services.tenancy.tenants import Limits, TenantStore
from services.web.singleflight import SingleFlight

if TYPE_CHECKING:
    from starlette.responses import Response

    from services.web.asgi import Incoming

DEFAULT_CACHE_SECONDS = 5.0
WINDOW_SECONDS = 60
# Windows stay readable this long after they end (then DynamoDB's TTL removes them).
WINDOW_RETENTION_SECONDS = 120
MICROS_PER_USD = 1_000_000
_MAX_CACHED = 10_000
# What the worker's answers carry for the client; the front doors relay them.
RESPONSE_HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
    "x-should-retry",
)


@dataclass(frozen=True, slots=True)
class AdmissionResult:
    """An admitted request: `headers` go on its response (empty without rate limits)."""

    headers: Mapping[str, str] = field(default_factory=dict)


_ADMITTED = AdmissionResult()


class Admission:
    """Admits requests against the caller's tenant budget and key rate limits.

    Takes a boto3 DynamoDB client; its calls (blocking) run in threads."""

    def __init__(
        self,
        client: Any,
        table: str,
        *,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._table = table
        self._tenants = TenantStore(client, table)
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, Limits | None]] = {}
        self._lock = threading.Lock()
        self._reads: SingleFlight[Limits | None] = SingleFlight()

    async def admit(self, principal: Principal) -> AdmissionResult:
        """Admit the request or raise `RateLimited` (429). No I/O for a tenant without
        limits whose settings are cached."""
        tenant = principal.tenant_id
        entry = self._cache.get(tenant)
        now = self._monotonic()
        if entry is None or entry[0] <= now:
            limits = await self._reads.run(tenant, lambda: self._load(tenant))
        else:
            limits = entry[1]
            if entry[0] - now < self._cache_seconds * REFRESH_AHEAD:
                self._reads.refresh(tenant, lambda: self._load(tenant))  # see Authenticator
        if limits is None or not limits.any:
            return _ADMITTED
        return await asyncio.to_thread(self.check, principal, limits)

    def check(self, principal: Principal, limits: Limits) -> AdmissionResult:
        """The budget, then the rate limits (so a refused budget consumes no request)."""
        now = self._clock()
        if limits.monthly_budget_usd is not None:
            self._check_budget(principal.tenant_id, limits.monthly_budget_usd, now)
        if not limits.rate_limited:
            return _ADMITTED
        return self._count_request(principal.key_id, limits, now)

    def _load(self, tenant_id: str) -> Limits | None:
        limits = self._tenants.limits(tenant_id)
        with self._lock:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            self._cache[tenant_id] = (self._monotonic() + self._cache_seconds, limits)
        return limits

    def _check_budget(self, tenant_id: str, budget: Decimal, now: float) -> None:
        month = time.strftime("%Y-%m", time.gmtime(now))
        response = self._client.get_item(
            TableName=self._table,
            Key=attributes({"pk": f"TENANT#{tenant_id}", "sk": f"SPEND#{month}"}),
            ProjectionExpression="cost_usd_micros",
            ConsistentRead=True,
        )
        spent = Decimal(plain(response.get("Item", {})).get("cost_usd_micros", 0))
        if spent >= budget * MICROS_PER_USD:
            raise RateLimited(
                f"Tenant '{tenant_id}' has spent its monthly budget of {_usd(budget)} "
                f"({_usd(spent / MICROS_PER_USD)} so far this month); requests are refused "
                f"until it resets on {_next_month(now)} 00:00 UTC or the budget is raised.",
                type="insufficient_quota",
                code="budget_exceeded",
                # The OpenAI and Anthropic SDKs honour this: retrying cannot help.
                headers={"x-should-retry": "false"},
            )

    def _count_request(self, key_id: str, limits: Limits, now: float) -> AdmissionResult:
        minute = int(now // WINDOW_SECONDS)
        window_end = (minute + 1) * WINDOW_SECONDS
        reset = window_end - now
        names = {"#r": "requests"}
        values: dict[str, Any] = {":one": 1, ":exp": window_end + WINDOW_RETENTION_SECONDS}
        conditions = []
        if limits.rpm is not None:
            conditions.append("(attribute_not_exists(#r) OR #r < :rpm)")
            values[":rpm"] = limits.rpm
        if limits.tpm is not None:
            names["#t"] = "tokens"
            conditions.append("(attribute_not_exists(#t) OR #t < :tpm)")
            values[":tpm"] = limits.tpm
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=attributes({"pk": f"RATE#{key_id}", "sk": f"MIN#{minute}"}),
                UpdateExpression="ADD #r :one SET expires_at = :exp",
                ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=attributes(values),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not conditional_failed(exc):
                raise
            old = exc.response.get("Item") or {}
            requests, tokens = _count(old, "requests"), _count(old, "tokens")
            headers = {
                **rate_headers(limits, requests, tokens, reset),
                "retry-after": str(max(1, math.ceil(reset))),
            }
            if limits.rpm is not None and requests >= limits.rpm:
                raise RateLimited(
                    f"Rate limit reached for requests: this key may make {limits.rpm} requests "
                    f"per minute. Try again in {math.ceil(reset)} s.",
                    code="rate_limit_exceeded",
                    headers=headers,
                ) from None
            raise RateLimited(
                f"Rate limit reached for tokens: this key may use {limits.tpm} tokens per "
                f"minute and has used {tokens}. Try again in {math.ceil(reset)} s.",
                code="token_rate_limit_exceeded",
                headers=headers,
            ) from None
        item = response["Attributes"]
        return AdmissionResult(
            rate_headers(limits, _count(item, "requests"), _count(item, "tokens"), reset)
        )


def rate_headers(limits: Limits, requests: int, tokens: int, reset: float) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers, for each limit the key has; `requests` and `tokens`
    are what the current window holds, this request included."""
    headers: dict[str, str] = {}
    until = f"{max(1, math.ceil(reset))}s"
    if limits.rpm is not None:
        headers["x-ratelimit-limit-requests"] = str(limits.rpm)
        headers["x-ratelimit-remaining-requests"] = str(max(0, limits.rpm - requests))
        headers["x-ratelimit-reset-requests"] = until
    if limits.tpm is not None:
        headers["x-ratelimit-limit-tokens"] = str(limits.tpm)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, limits.tpm - tokens))
        headers["x-ratelimit-reset-tokens"] = until
    return headers


R = TypeVar("R", bound="Incoming")


def guard(
    authenticator: Authenticator,
    admission: Admission | None,
    handler: Callable[[R, Principal], Awaitable[Response]],
) -> Callable[[R], Awaitable[Response]]:
    """An endpoint (for a Starlette `Request`, or a `Plain` one's `Exchange`) that
    authenticates, admits, calls `handler(request, principal)` and puts the rate-limit
    headers on its response, errors included. Without an `admission` (a test's app), it
    only authenticates."""

    async def endpoint(request: R) -> Response:
        principal = await authenticator.authenticate_async(request.headers)
        if admission is None:
            return await handler(request, principal)
        admitted = await admission.admit(principal)
        if not admitted.headers:
            return await handler(request, principal)
        try:
            response = await handler(request, principal)
        except APIError as exc:
            exc.headers = {**admitted.headers, **exc.headers}
            raise
        response.headers.update(admitted.headers)
        return response

    return endpoint


def _count(item: Mapping[str, Any], name: str) -> int:
    return int(plain(item).get(name, 0))


def _usd(amount: Decimal) -> str:
    return f"${amount:,.2f}" if amount == round(amount, 2) else f"${amount:,.6f}".rstrip("0")


def _next_month(now: float) -> str:
    year, month = time.gmtime(now)[:2]
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return f"{year:04d}-{month:02d}-01"
