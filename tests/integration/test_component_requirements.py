"""Each deployable component runs with only its own pinned requirements.

The worker image and the Lambda bundles install `containers/worker/requirements.txt` and
`lambdas/*/requirements.txt` (plus, for Lambdas, the boto3 of the runtime). Docker cannot
build here, so this installs each set into a fresh virtual environment (cached under
.build/ by the requirements' hash) and imports and builds the entry point with it: a
missing dependency fails here instead of at deploy time.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_RUNTIME = ["boto3==1.44.5"]  # what the Lambda Python runtime provides

COMPONENTS = {
    "worker": (
        "containers/worker/requirements.txt",
        [],
        "from containers.worker.app import create_app; create_app(); "
        "import services.providers.anthropic, services.providers.bedrock, "
        "services.providers.openai, services.providers.openai_compatible",
    ),
    "gateway": (
        "lambdas/gateway/requirements.txt",
        LAMBDA_RUNTIME,
        "import lambdas.gateway.handler as h; h.runtime(); "
        "import lambdas.gateway.authorizer as a; a.authenticator()",
    ),
    "stream": (
        "lambdas/stream/requirements.txt",
        LAMBDA_RUNTIME,
        "from lambdas.stream.app import create_app; create_app()",
    ),
}


def environment(requirements: Path, extra: list[str]) -> Path:
    key = hashlib.sha256(requirements.read_bytes() + "\n".join(extra).encode()).hexdigest()[:16]
    target = ROOT / ".build" / "component-venvs" / key
    python = target / "bin" / "python"
    if not (target / ".complete").exists():
        venv.create(target, with_pip=True, clear=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "-r", str(requirements), *extra],
            check=True,
        )  # fmt: skip
        (target / ".complete").touch()
    return python


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_component_runs_with_only_its_requirements(component: str) -> None:
    requirements, extra, code = COMPONENTS[component]
    python = environment(ROOT / requirements, extra)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "SWITCHBOARD_TABLE": "t",
        "SWITCHBOARD_WORKER_URL": "http://127.0.0.1:9",
    }
    result = subprocess.run(
        [str(python), "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert sys.executable != str(python)
