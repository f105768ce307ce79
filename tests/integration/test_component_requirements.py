"""Each deployable component runs with only its own pinned requirements.

The worker image and the Lambda bundles install `containers/worker/requirements.txt` and
`lambdas/*/requirements.txt` (plus, for Lambdas, the boto3 of the runtime). Docker cannot
build here, so this installs each set into a fresh virtual environment (cached under
.build/ by the requirements' hash) and, with it:

- imports and builds the entry point;
- imports every first-party module the component can reach, following every import
  statement in the code (those inside functions too: a route's module loaded on its first
  call, as the gateway loads `services.usage.report` for `GET /v1/usage`) and the plugin
  packages registries scan. A module that needs a package the component does not pin
  fails here instead of on its first request in AWS.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_RUNTIME = ["boto3==1.44.5"]  # what the Lambda Python runtime provides
FIRST_PARTY = ("services", "lambdas", "containers")


class Component:
    def __init__(
        self,
        requirements: str,
        extra: list[str],
        entry: str,
        build: str,
        plugins: tuple[str, ...] = (),
    ) -> None:
        self.requirements = requirements
        self.extra = extra
        self.entry = entry  # the entry point's module
        self.build = build  # code that builds the app, as the runtime does
        self.plugins = plugins  # packages whose modules a registry imports by scanning


COMPONENTS = {
    "worker": Component(
        "containers/worker/requirements.txt",
        [],
        "containers.worker.app",
        "from containers.worker.app import create_app; create_app(); import services.web.serve",
        plugins=("services.providers", "services.tools", "services.agents.builtin"),
    ),
    "gateway": Component(
        "lambdas/gateway/requirements.txt",
        LAMBDA_RUNTIME,
        "lambdas.gateway.handler",
        "import lambdas.gateway.handler as h; h.runtime(); "
        "import lambdas.gateway.authorizer as a; a.authenticator()",
        plugins=("lambdas.gateway",),  # the authorizer is a second entry point
    ),
    "stream": Component(
        "lambdas/stream/requirements.txt",
        LAMBDA_RUNTIME,
        "lambdas.stream.app",
        "from lambdas.stream.app import create_app; create_app(); import services.web.serve",
    ),
}
ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "SWITCHBOARD_TABLE": "t",
    "SWITCHBOARD_UPSTREAM_URL": "https://abc123.execute-api.us-east-1.amazonaws.com/api",
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


def run_with(component: Component, code: str) -> subprocess.CompletedProcess[str]:
    python = environment(ROOT / component.requirements, component.extra)
    assert sys.executable != str(python)
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **ENV}
    return subprocess.run(
        [str(python), "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )


# -- what a component can import ----------------------------------------------------------


def source(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.exists():
            return path
    return None


def imported_by(module: str) -> set[str]:
    """The first-party modules `module` imports anywhere (inside functions too), except
    under `if TYPE_CHECKING:`, which never runs."""
    path = source(module)
    assert path is not None, module
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node.test):
            for other in node.orelse:
                visit(other)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return {m for m in found if m.split(".")[0] in FIRST_PARTY and source(m) is not None}


def _type_checking(test: ast.expr) -> bool:
    name = test.attr if isinstance(test, ast.Attribute) else getattr(test, "id", None)
    return name == "TYPE_CHECKING"


def reachable(component: Component) -> list[str]:
    """Every first-party module the component may import, from its entry point on."""
    todo = [component.entry]
    for package in component.plugins:
        folder = ROOT.joinpath(*package.split("."))
        todo += [f"{package}.{p.stem}" for p in folder.glob("*.py") if p.stem != "__init__"]
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # its packages
        todo += sorted(imported_by(module))
    return sorted(seen)


def test_lazy_imports_are_found() -> None:
    gateway = reachable(COMPONENTS["gateway"])
    # GET /v1/usage imports its module on first use; the type-only import is not followed.
    assert "services.usage.report" in gateway and "services.usage.store" in gateway
    assert "services.tenancy.admin_api" in gateway
    worker = reachable(COMPONENTS["worker"])
    assert {"services.providers.bedrock", "services.tools.summarize"} <= set(worker)
    assert "services.agents.builtin.docs_chat" in worker


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_component_runs_with_only_its_requirements(name: str) -> None:
    result = run_with(COMPONENTS[name], COMPONENTS[name].build)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_every_module_a_component_can_load_imports_on_its_pins(name: str) -> None:
    modules = reachable(COMPONENTS[name])
    code = (
        "import importlib, json, sys\n"
        "failed = {}\n"
        f"for module in {modules!r}:\n"
        "    try:\n"
        "        importlib.import_module(module)\n"
        "    except Exception as exc:\n"
        "        failed[module] = f'{type(exc).__name__}: {exc}'\n"
        "print(json.dumps(failed))\n"
    )
    result = run_with(COMPONENTS[name], code)
    assert result.returncode == 0, result.stderr[-2000:]
    failed = json.loads(result.stdout.strip().splitlines()[-1])
    assert not failed, f"{name} cannot import, on its own pins: {failed}"
