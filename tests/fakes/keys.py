"""A key store of fixed keys, for tests of components that authenticate API keys."""

from __future__ import annotations

from services.tenancy.keys import ApiKey


class StaticKeys:
    """`KeyStore.lookup` over fixed keys: secret -> (tenant, key id)."""

    def __init__(self, keys: dict[str, tuple[str, str]]) -> None:
        self.keys = keys

    def lookup(self, secret: str) -> ApiKey | None:
        found = self.keys.get(secret)
        if found is None:
            return None
        tenant, key_id = found
        return ApiKey(key_id, tenant, secret[:10], "test", "active", 0)


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}
