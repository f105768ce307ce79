"""The admin API, answered by the gateway Lambda from DynamoDB, for the holder of the admin
key only (never a tenant's API key):

    POST  /v1/admin/tenants                       {"id"?, "name"?, "limits"?: {...}}
    GET   /v1/admin/tenants?limit=&after=         in id order; `after` is the last id seen
    GET   /v1/admin/tenants/{tenant_id}
    PATCH /v1/admin/tenants/{tenant_id}           {"limits": {...}}
    POST  /v1/admin/tenants/{tenant_id}/keys      {"name"?}: the secret is in this answer only
    GET   /v1/admin/tenants/{tenant_id}/keys
    GET   /v1/admin/tenants/{tenant_id}/keys/{key_id}
    POST  /v1/admin/tenants/{tenant_id}/keys/{key_id}/revoke
    POST  /v1/admin/tenants/{tenant_id}/keys/{key_id}/rotate   a new secret; the old key is revoked

`limits` holds `monthly_budget_usd`, `rpm` and `tpm`; a field set to null is removed (no
limit), a field left out is kept. Keys are addressed under their tenant, so a key id alone
never reaches another tenant's key.

The admin key is sent like an API key (`Authorization: Bearer <admin key>`). It comes from
`SWITCHBOARD_ADMIN_KEY` (the local stack) or the Secrets Manager secret named by
`SWITCHBOARD_ADMIN_KEY_SECRET_ARN` (deployed), read on first use and again every
`cache_seconds`, so a rotated secret takes effect without a redeploy.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from services.errors import AuthenticationFailed, InvalidRequest, PermissionDenied
from services.tenancy.auth import Authenticator, bearer_token
from services.tenancy.keys import KEY_PREFIX, KeyStore
from services.tenancy.tenants import (
    LIMIT_FIELDS,
    MAX_NAME_CHARS,
    UNSET,
    Limits,
    TenantStore,
    check_tenant_id,
    parse_budget,
    parse_per_minute,
)
from services.web.body import known_fields
from services.web.params import page_limit

ADMIN_KEY_CACHE_SECONDS = 300.0
MAX_KEY_NAME_CHARS = 128


class AdminCredential:
    """The admin key: a fixed value, or a Secrets Manager secret re-read every
    `cache_seconds`. `value()` is None when neither is configured (the admin API is off)."""

    def __init__(
        self,
        value: str | None,
        secret_arn: str | None,
        secrets_client: Callable[[], Any],
        *,
        cache_seconds: float = ADMIN_KEY_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._value = value
        self._secret_arn = secret_arn
        self._secrets_client = secrets_client
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cached: tuple[float, str] | None = None
        self._lock = threading.Lock()

    def value(self) -> str | None:
        if self._value is not None or self._secret_arn is None:
            return self._value
        cached = self._cached
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        with self._lock:
            response = self._secrets_client().get_secret_value(SecretId=self._secret_arn)
            secret = str(response["SecretString"])
            self._cached = (self._clock() + self._cache_seconds, secret)
        return secret


class AdminAPI:
    """Validation and answers of the admin routes; `authorize` first, on every call."""

    def __init__(
        self,
        tenants: TenantStore,
        keys: KeyStore,
        credential: AdminCredential,
        authenticator: Authenticator,
    ) -> None:
        self._tenants = tenants
        self._keys = keys
        self._credential = credential
        self._authenticator = authenticator

    def authorize(self, headers: Mapping[str, str]) -> None:
        """Pass for the admin key; 401 for none or a wrong one, 403 for a tenant's key."""
        try:
            presented = bearer_token(headers)
        except AuthenticationFailed:
            raise AuthenticationFailed(
                "The admin API needs the admin key: send 'Authorization: Bearer <admin key>'.",
                code="missing_admin_key",
            ) from None
        expected = self._credential.value()
        if expected is None:
            raise AuthenticationFailed(
                "The admin API is disabled: no admin key is configured.",
                code="admin_api_disabled",
            )
        if hmac.compare_digest(presented.encode(), expected.encode()):
            return
        if presented.startswith(KEY_PREFIX):
            try:
                self._authenticator.authenticate({"authorization": f"Bearer {presented}"})
            except AuthenticationFailed:
                pass
            else:
                raise PermissionDenied(
                    "This is a tenant's API key; the admin API needs the admin key.",
                    code="admin_key_required",
                )
        raise AuthenticationFailed("Incorrect admin key provided.", code="invalid_admin_key")

    # Tenants

    def create_tenant(self, body: object) -> dict[str, Any]:
        fields = known_fields(body, {"id", "name", "limits"})
        tenant_id = (
            check_tenant_id(fields["id"]) if fields.get("id") is not None else TenantStore.new_id()
        )
        name = _name(fields.get("name"), "name", MAX_NAME_CHARS)
        changes = _limit_changes(fields.get("limits"))
        limits = Limits(
            monthly_budget_usd=changes.get("monthly_budget_usd"),
            rpm=changes.get("rpm"),
            tpm=changes.get("tpm"),
        )
        return self._tenants.create(tenant_id, name, limits).public()

    def list_tenants(self, query: Mapping[str, str]) -> dict[str, Any]:
        unknown = sorted(set(query) - {"limit", "after"})
        if unknown:
            raise InvalidRequest(
                f"Unrecognized query parameter: {unknown[0]}",
                param=unknown[0],
                code="unknown_parameter",
            )
        limit = page_limit(query.get("limit"))
        after = query.get("after")
        if after is not None:
            check_tenant_id(after, "after")
        page, more = self._tenants.page(limit=limit, after=after)
        return {
            "object": "list",
            "data": [t.public() for t in page],
            "has_more": more,
            "last_id": page[-1].tenant_id if page else None,
        }

    def get_tenant(self, tenant_id: str) -> dict[str, Any]:
        return self._tenants.require(tenant_id).public()

    def update_tenant(self, tenant_id: str, body: object) -> dict[str, Any]:
        fields = known_fields(body, {"limits"})
        changes = _limit_changes(fields.get("limits"))
        tenant = self._tenants.set_limits(
            tenant_id,
            monthly_budget_usd=changes.get("monthly_budget_usd", UNSET),
            rpm=changes.get("rpm", UNSET),
            tpm=changes.get("tpm", UNSET),
        )
        return tenant.public()

    # Keys

    def create_key(self, tenant_id: str, body: object) -> dict[str, Any]:
        fields = known_fields(body, {"name"})
        name = _name(fields.get("name"), "name", MAX_KEY_NAME_CHARS) or "default"
        self._tenants.require(tenant_id)
        minted = self._keys.create(tenant_id, name)
        return {**minted.record.public(), "secret": minted.secret}

    def list_keys(self, tenant_id: str) -> dict[str, Any]:
        keys = self._keys.for_tenant(tenant_id)
        if not keys:
            self._tenants.require(tenant_id)
        return {"object": "list", "data": [k.public() for k in keys], "has_more": False}

    def get_key(self, tenant_id: str, key_id: str) -> dict[str, Any]:
        return self._keys.require(tenant_id, key_id).public()

    def revoke_key(self, tenant_id: str, key_id: str) -> dict[str, Any]:
        return self._keys.revoke(tenant_id, key_id).public()

    def rotate_key(self, tenant_id: str, key_id: str) -> dict[str, Any]:
        minted = self._keys.rotate(tenant_id, key_id)
        return {**minted.record.public(), "secret": minted.secret, "replaces": key_id}


def _name(value: object, param: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise InvalidRequest(
            f"'{param}' must be a non-empty string of at most {limit} characters.",
            param=param,
            code="invalid_value",
        )
    return value


def _limit_changes(value: object) -> dict[str, Any]:
    """The limits an object sets (a value) or clears (None); fields left out are absent."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(
            "'limits' must be an object with monthly_budget_usd, rpm and tpm.",
            param="limits",
            code="invalid_value",
        )
    unknown = sorted(set(value) - set(LIMIT_FIELDS))
    if unknown:
        raise InvalidRequest(
            f"Unknown limit '{unknown[0]}'; the limits are {', '.join(LIMIT_FIELDS)}.",
            param=f"limits.{unknown[0]}",
            code="unknown_parameter",
        )
    changes: dict[str, Any] = {}
    if "monthly_budget_usd" in value:
        changes["monthly_budget_usd"] = parse_budget(
            value["monthly_budget_usd"], "limits.monthly_budget_usd"
        )
    for name in ("rpm", "tpm"):
        if name in value:
            changes[name] = parse_per_minute(value[name], f"limits.{name}")
    return changes
