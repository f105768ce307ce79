"""Runtime code never imports infrastructure code, and the front doors stay light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_ROOTS = ["services", "lambdas", "containers", "devstack", "console"]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def runtime_files() -> list[Path]:
    return sorted(p for root in RUNTIME_ROOTS for p in (ROOT / root).rglob("*.py"))


def test_runtime_code_exists() -> None:
    assert len(runtime_files()) > 10


@pytest.mark.parametrize("path", runtime_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_runtime_code_does_not_import_aws_cdk(path: Path) -> None:
    offending = {
        m for m in imported_modules(path) if m.split(".")[0] in {"aws_cdk", "constructs", "infra"}
    }
    assert not offending, f"{path.relative_to(ROOT)} imports {sorted(offending)}"


def test_the_check_catches_an_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from aws_cdk import aws_s3\n")
    assert "aws_cdk" in imported_modules(sample)


HEAVY = ["openai", "anthropic", "pydantic", "aws_cdk", "jsii", "starlette", "httpx", "boto3"]


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("lambdas.gateway.handler", set()),
        ("lambdas.gateway.authorizer", set()),
        ("lambdas.stream.app", set()),
    ],
)
def test_front_doors_import_no_provider_sdk(module: str, allowed: set[str]) -> None:
    """Importing a front door loads no provider SDK, and no boto3 until it is first called."""
    code = (
        f"import sys, {module}\n"
        f"print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert set(out) <= allowed, f"{module} imports {sorted(set(out) - allowed)}"
