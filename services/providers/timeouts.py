"""Per-provider timeouts, from `SWITCHBOARD_<PROVIDER>_TIMEOUT_<PHASE>_SECONDS`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.config import env_float


@dataclass(frozen=True, slots=True)
class Timeouts:
    """connect: opening a connection; first_byte: until the first chunk (or the whole
    answer's headers); idle: the longest gap between two stream chunks; total: the whole
    call, retries of it included."""

    connect: float = 5.0
    first_byte: float = 60.0
    idle: float = 30.0
    total: float = 600.0

    @classmethod
    def from_env(cls, env: Mapping[str, str], provider: str) -> Timeouts:
        prefix = f"SWITCHBOARD_{provider.upper()}_TIMEOUT_"
        d = cls()
        return cls(
            connect=env_float(env, prefix + "CONNECT_SECONDS", d.connect, minimum=0.01),
            first_byte=env_float(env, prefix + "FIRST_BYTE_SECONDS", d.first_byte, minimum=0.01),
            idle=env_float(env, prefix + "IDLE_SECONDS", d.idle, minimum=0.01),
            total=env_float(env, prefix + "TOTAL_SECONDS", d.total, minimum=0.01),
        )
