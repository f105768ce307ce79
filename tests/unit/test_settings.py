from __future__ import annotations

import pytest

from containers.worker.settings import WorkerSettings
from services.config import ConfigError
from services.frontdoor.settings import FrontDoorSettings

FRONT = {
    "SWITCHBOARD_TABLE": "t",
    "SWITCHBOARD_WORKER_URL": "http://worker.internal/",
}


def test_front_door_settings() -> None:
    settings = FrontDoorSettings.from_env(FRONT)
    assert settings.worker_url == "http://worker.internal"
    assert settings.max_request_bytes == 4 * 1024 * 1024
    # The gateway Lambda calls no worker; and no front door holds a credential of its own.
    assert FrontDoorSettings.from_env({"SWITCHBOARD_TABLE": "t"}).worker_url is None
    assert not any("internal" in name for name in FrontDoorSettings.__dataclass_fields__)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {k: v for k, v in FRONT.items() if k != "SWITCHBOARD_TABLE"},
            "SWITCHBOARD_TABLE is required",
        ),
        ({**FRONT, "SWITCHBOARD_WORKER_URL": "worker:8000"}, "must be an http"),
        ({**FRONT, "SWITCHBOARD_KEY_CACHE_SECONDS": "soon"}, "must be a number"),
        ({**FRONT, "SWITCHBOARD_MAX_REQUEST_BYTES": "10"}, "must be >= 1024"),
    ],
)
def test_front_door_settings_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FrontDoorSettings.from_env(env)


def test_worker_settings() -> None:
    settings = WorkerSettings.from_env(
        {"SWITCHBOARD_TABLE": "t", "SWITCHBOARD_KEY_CACHE_SECONDS": "2.5"}
    )
    assert settings.key_cache_seconds == 2.5
    assert settings.sync_deadline_seconds == 240.0 and settings.heartbeat_seconds == 15.0
    assert not any("internal" in name for name in WorkerSettings.__dataclass_fields__)
    for name, value, message in (
        ("SWITCHBOARD_SYNC_DEADLINE_SECONDS", "300", "below 300"),
        ("SWITCHBOARD_STREAM_HEARTBEAT_SECONDS", "20", "at most 15"),
        ("SWITCHBOARD_TASK_PROTECTION_MINUTES", "3000", "1 to 2880"),
    ):
        with pytest.raises(ConfigError, match=message):
            WorkerSettings.from_env({"SWITCHBOARD_TABLE": "t", name: value})
    assert settings.gc_threshold == 20_000
    tuned = {"SWITCHBOARD_TABLE": "t", "SWITCHBOARD_GC_THRESHOLD": "5000"}
    assert WorkerSettings.from_env(tuned).gc_threshold == 5000
    with pytest.raises(ConfigError, match="SWITCHBOARD_GC_THRESHOLD"):
        WorkerSettings.from_env({"SWITCHBOARD_TABLE": "t", "SWITCHBOARD_GC_THRESHOLD": "0"})
    with pytest.raises(ConfigError, match="SWITCHBOARD_TABLE is required"):
        WorkerSettings.from_env({})
