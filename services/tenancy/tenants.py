"""Tenants: who owns API keys, and the limits and monthly budget that apply to them.

Items: the tenant row of the key layout in services/dynamo.py (listed on `gsi1` in id
order); it holds name, status, created_at and the limits monthly_budget_usd (N), rpm (N)
and tpm (N).

A limit that is absent is no limit. `rpm` and `tpm` apply to each of the tenant's keys;
`monthly_budget_usd` to the tenant as a whole (services/tenancy/limits.py enforces all three). The
gsi1 entry lists tenants in id order without a scan.

A tenant id is 1 to 64 characters of letters, digits, `.`, `_` and `-`, starting with a
letter or digit: it is part of every key of the tenant's items, so `#` can never appear.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from botocore.exceptions import ClientError

from services.dynamo import GSI1, Listing, attributes, conditional_failed, plain
from services.errors import APIError, InvalidRequest, NotFound

TENANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_NAME_CHARS = 256
MAX_BUDGET_USD = Decimal(1_000_000_000)
MAX_PER_MINUTE = 1_000_000_000
LIST_INDEX_PK = "TENANTS"
LIMIT_FIELDS = ("monthly_budget_usd", "rpm", "tpm")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()
"""For `set_limits`: leave this limit as it is (None clears it)."""


class TenantExists(APIError):
    status = 409
    type = "invalid_request_error"
    code = "tenant_exists"


@dataclass(frozen=True, slots=True)
class Limits:
    """A tenant's limits; None is unlimited. Budget in US dollars, rates per key per minute."""

    monthly_budget_usd: Decimal | None = None
    rpm: int | None = None
    tpm: int | None = None

    @property
    def any(self) -> bool:
        return self.monthly_budget_usd is not None or self.rpm is not None or self.tpm is not None

    @property
    def rate_limited(self) -> bool:
        return self.rpm is not None or self.tpm is not None

    def public(self) -> dict[str, Any]:
        budget = self.monthly_budget_usd
        return {
            "monthly_budget_usd": None if budget is None else _json_number(budget),
            "rpm": self.rpm,
            "tpm": self.tpm,
        }


@dataclass(frozen=True, slots=True)
class Tenant:
    tenant_id: str
    name: str
    status: str
    created_at: int
    limits: Limits

    def public(self) -> dict[str, Any]:
        return {
            "object": "tenant",
            "id": self.tenant_id,
            "name": self.name,
            "status": self.status,
            "created_at": self.created_at,
            "limits": self.limits.public(),
        }


def check_tenant_id(tenant_id: object, param: str = "id") -> str:
    if not isinstance(tenant_id, str) or not TENANT_ID.match(tenant_id):
        raise InvalidRequest(
            "A tenant id is 1 to 64 characters of letters, digits, '.', '_' and '-', "
            "starting with a letter or digit.",
            param=param,
            code="invalid_tenant_id",
        )
    return tenant_id


def parse_budget(value: object, param: str = "monthly_budget_usd") -> Decimal | None:
    """A budget in dollars (>= 0, at most 6 decimal places, i.e. whole micro-dollars)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise _bad_limit(param, "must be a number of US dollars or null")
    try:
        budget = Decimal(str(value))
    except InvalidOperation:
        raise _bad_limit(param, "must be a number of US dollars or null") from None
    if not budget.is_finite() or budget < 0 or budget > MAX_BUDGET_USD:
        raise _bad_limit(param, f"must be from 0 to {MAX_BUDGET_USD} US dollars")
    if budget != budget.quantize(Decimal("0.000001")):
        raise _bad_limit(param, "may have at most 6 decimal places (whole micro-dollars)")
    return budget.normalize() if budget else Decimal(0)


def parse_per_minute(value: object, param: str) -> int | None:
    """A per-minute limit: a positive integer, or None for unlimited."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad_limit(param, "must be a positive integer or null")
    if not 1 <= value <= MAX_PER_MINUTE:
        raise _bad_limit(param, f"must be from 1 to {MAX_PER_MINUTE}")
    return value


def _bad_limit(param: str, problem: str) -> InvalidRequest:
    return InvalidRequest(f"'{param}' {problem}.", param=param, code="invalid_limit")


def _json_number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


class TenantStore:
    """Tenant records in the DynamoDB table. Takes a boto3 DynamoDB client."""

    def __init__(self, client: Any, table: str, *, clock: Any = time.time) -> None:
        self._client = client
        self._table = table
        self._clock = clock

    @staticmethod
    def new_id() -> str:
        return "tenant_" + secrets.token_hex(6)

    def create(
        self, tenant_id: str, name: str | None = None, limits: Limits | None = None
    ) -> Tenant:
        """Create a tenant; `TenantExists` (409) if the id is taken."""
        check_tenant_id(tenant_id)
        limits = limits or Limits()
        tenant = Tenant(
            tenant_id=tenant_id,
            name=name or tenant_id,
            status="active",
            created_at=int(self._clock()),
            limits=limits,
        )
        item = self._key(tenant_id) | attributes(
            {
                "name": tenant.name,
                "status": tenant.status,
                "created_at": tenant.created_at,
                "gsi1pk": LIST_INDEX_PK,
                "gsi1sk": tenant_id,
                "monthly_budget_usd": limits.monthly_budget_usd,
                "rpm": limits.rpm,
                "tpm": limits.tpm,
            }
        )
        try:
            self._client.put_item(
                TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as exc:
            if not conditional_failed(exc):
                raise
            raise TenantExists(
                f"A tenant with id '{tenant_id}' already exists.", param="id"
            ) from None
        return tenant

    def get(self, tenant_id: str) -> Tenant | None:
        if not TENANT_ID.match(tenant_id):
            return None
        response = self._client.get_item(
            TableName=self._table, Key=self._key(tenant_id), ConsistentRead=True
        )
        item = response.get("Item")
        return None if item is None else _tenant(item)

    def require(self, tenant_id: str) -> Tenant:
        """The tenant, or `NotFound` (404)."""
        tenant = self.get(tenant_id)
        if tenant is None:
            raise _not_found(tenant_id)
        return tenant

    def limits(self, tenant_id: str) -> Limits | None:
        """Only the limits (one eventually consistent read); None for an unknown tenant."""
        response = self._client.get_item(
            TableName=self._table,
            Key=self._key(tenant_id),
            ProjectionExpression="monthly_budget_usd, rpm, tpm",
        )
        item = response.get("Item")
        return None if item is None else _limits(item)

    def set_limits(
        self,
        tenant_id: str,
        *,
        monthly_budget_usd: Decimal | _Unset | None = UNSET,
        rpm: int | _Unset | None = UNSET,
        tpm: int | _Unset | None = UNSET,
    ) -> Tenant:
        """Set (a value), clear (None) or keep (UNSET) each limit; `NotFound` if no tenant."""
        if not TENANT_ID.match(tenant_id):
            raise _not_found(tenant_id)
        wanted = {"monthly_budget_usd": monthly_budget_usd, "rpm": rpm, "tpm": tpm}
        sets, removes, values = [], [], {}
        for field, value in wanted.items():
            if isinstance(value, _Unset):
                continue
            if value is None:
                removes.append(field)
            else:
                sets.append(f"{field} = :{field}")
                values[f":{field}"] = value
        if not sets and not removes:
            return self.require(tenant_id)
        expression = " ".join(
            part
            for part in (
                "SET " + ", ".join(sets) if sets else "",
                "REMOVE " + ", ".join(removes) if removes else "",
            )
            if part
        )
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": self._key(tenant_id),
            "UpdateExpression": expression,
            "ConditionExpression": "attribute_exists(pk)",
            "ReturnValues": "ALL_NEW",
        }
        if values:
            request["ExpressionAttributeValues"] = attributes(values)
        try:
            response = self._client.update_item(**request)
        except ClientError as exc:
            if not conditional_failed(exc):
                raise
            raise _not_found(tenant_id) from None
        return _tenant(response["Attributes"])

    def page(self, *, limit: int = 20, after: str | None = None) -> tuple[list[Tenant], bool]:
        """Tenants in id order after the id `after`, and whether more follow."""
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": GSI1,
            "KeyConditionExpression": "gsi1pk = :p",
            "ExpressionAttributeValues": attributes({":p": LIST_INDEX_PK}),
            "Limit": limit,
        }
        if after:
            query["ExclusiveStartKey"] = LISTING.start_key_at(after)
        response = self._client.query(**query)
        tenants = [_tenant(i) for i in response.get("Items", [])]
        return tenants, "LastEvaluatedKey" in response

    @staticmethod
    def _key(tenant_id: str) -> dict[str, Any]:
        return attributes(_table_key(tenant_id))


def _table_key(tenant_id: str) -> dict[str, str]:
    return {"pk": f"TENANT#{tenant_id}", "sk": "TENANT"}


LISTING = Listing(
    LIST_INDEX_PK,
    re.compile(TENANT_ID.pattern.strip("^$")),
    lambda tenant_id: (_table_key(tenant_id)["pk"], "TENANT"),
)
"""Tenants on `gsi1`, in id order (the admin API's `after` is the last id seen)."""


def _not_found(tenant_id: str) -> NotFound:
    return NotFound(f"No tenant with id '{tenant_id}'.", code="tenant_not_found")


def _limits(item: dict[str, Any]) -> Limits:
    v = plain(item)
    budget, rpm, tpm = v.get("monthly_budget_usd"), v.get("rpm"), v.get("tpm")
    return Limits(
        monthly_budget_usd=None if budget is None else Decimal(budget),
        rpm=None if rpm is None else int(rpm),
        tpm=None if tpm is None else int(tpm),
    )


def _tenant(item: dict[str, Any]) -> Tenant:
    v = plain(item)
    return Tenant(
        tenant_id=v["pk"].removeprefix("TENANT#"),
        name=v["name"],
        status=v["status"],
        created_at=int(v["created_at"]),
        limits=_limits(item),
    )
