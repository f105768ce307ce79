"""Every component pins the same versions as the root requirements, and pins them exactly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = [
    "lambdas/gateway/requirements.txt",
    "lambdas/stream/requirements.txt",
    "containers/worker/requirements.txt",
]


def pins(path: Path) -> dict[str, str]:
    found = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#")[0].strip()
        if not line or line.startswith("-r"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]+\])?==([^\s;]+)", line)
        assert match, f"{path.name}: '{line}' is not pinned with =="
        found[match.group(1).lower().replace("_", "-")] = match.group(3)
    return found


def test_root_requirements_are_pinned() -> None:
    assert pins(ROOT / "requirements.txt")
    assert pins(ROOT / "requirements-dev.txt")


@pytest.mark.parametrize("component", COMPONENTS)
def test_component_pins_match_the_root(component: str) -> None:
    root = pins(ROOT / "requirements.txt")
    for name, version in pins(ROOT / component).items():
        assert name in root, f"{component}: {name} is not in requirements.txt"
        assert root[name] == version, (
            f"{component}: {name}=={version}, requirements.txt has {root[name]}"
        )
