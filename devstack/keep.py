"""What `make dev` keeps between runs, in `.devstack/` at the repository's root (gitignored):

- `keys.json`: the development API key and the admin key. The same keys come back at
  every start, so a client configured once keeps working; `--new-keys` mints new ones
  (and `--api-key` puts a given development key in place of the kept one).
- `state/aws.json` (with `--keep-state`): the embedded AWS's tables, objects and queued
  messages, saved when the stack stops and restored at the next start
  (`devstack.aws`). Without it, all state is in memory and goes when the stack stops.

`python -m devstack --data-dir DIR` keeps them elsewhere. Tests never use this directory:
their stacks mint keys of their own and keep nothing, and a test that runs
`python -m devstack` gives it a scratch `--data-dir`.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from services.tenancy.keys import KEY_PREFIX, generate_secret

ROOT = Path(__file__).resolve().parent.parent
DIRECTORY = ROOT / ".devstack"
ADMIN_PREFIX = "sb-admin-"


@dataclass(frozen=True, slots=True)
class DevKeys:
    api_key: str
    admin_key: str


def new_admin_key() -> str:
    return ADMIN_PREFIX + secrets.token_urlsafe(32)


def state_file(directory: Path = DIRECTORY) -> Path:
    return directory / "state" / "aws.json"


def keys(
    directory: Path = DIRECTORY, *, new: bool = False, api_key: str | None = None
) -> tuple[DevKeys, str]:
    """The development and admin keys, and a sentence saying where they came from.

    They are the kept ones unless `new` (both minted again) or `api_key` (that development
    key, with the kept admin key). Whatever is chosen is kept for the next run.
    """
    path = directory / "keys.json"
    kept = None if new else _read(path)
    if kept is not None and api_key is None:
        return kept, f"kept in {shown(path)} (`make dev ARGS=--new-keys` mints new ones)"
    admin = kept.admin_key if kept is not None else new_admin_key()
    chosen = DevKeys(api_key=api_key or generate_secret(), admin_key=admin)
    save_keys(chosen, directory)
    if api_key is not None:
        return chosen, f"given with --api-key, now kept in {shown(path)}"
    why = "new, as asked" if new else "new"
    return chosen, f"{why}; kept in {shown(path)} for the next runs"


def save_keys(chosen: DevKeys, directory: Path = DIRECTORY) -> None:
    """Write the keys, readable by their owner only."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / "keys.json"
    partial = directory / "keys.json.partial"
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump({"api_key": chosen.api_key, "admin_key": chosen.admin_key}, out, indent=2)
        out.write("\n")
    os.replace(partial, path)


def _read(path: Path) -> DevKeys | None:
    """The kept keys, or None if there are none (or the file is not theirs: then new ones
    replace it)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    api_key, admin_key = data.get("api_key"), data.get("admin_key")
    if not isinstance(api_key, str) or not api_key.startswith(KEY_PREFIX) or len(api_key) < 24:
        return None
    if not isinstance(admin_key, str) or len(admin_key) < 24:
        return None
    return DevKeys(api_key=api_key, admin_key=admin_key)


def shown(path: Path) -> str:
    """`path`, relative to the working directory when it is under it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
