"""Lambda bundles are built on the host with pip, never in Docker: Graviton wheels, only the
modules each door imports, and bytecode compiled for the Lambda's Python."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import FileSystem, IgnoreMode

from infra.bundling import (
    PLATFORM,
    LocalPythonBundler,
    host_platform,
    link_runtime_provided,
    source_excludes,
)
from infra.config import DEFAULT_LAMBDA_PYTHON
from infra.imports import bundle_files, door_imports
from tests.infra.conftest import REPO_ROOT, Synth

DOORS = ("gateway", "stream")
CACHE = REPO_ROOT / ".build" / "lambda-deps"
WORKER_ONLY_GROUPS = ("chat", "wire", "models", "providers", "tools", "agents")


def test_bundling_is_skipped_when_the_context_says_so(synth: Synth) -> None:
    assert synth.bundler_calls == []
    # Both functions still have code assets, so the templates stay complete.
    outdir = Path(synth.assembly.directory)
    assert (outdir / "Switchboard-test-FrontDoor.assets.json").is_file()


def _bundle(component: str, out: Path, platform: str) -> Path:
    bundler = LocalPythonBundler(
        component=component,
        repo_root=REPO_ROOT,
        python_version=DEFAULT_LAMBDA_PYTHON,
        cache_dir=CACHE,
        platform=platform,
    )
    assert bundler.try_bundle(str(out), image=None) is True  # type: ignore[arg-type]
    return out


@pytest.fixture(scope="module")
def host_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each door's bundle with this machine's wheels, so it can be imported here (needs
    PyPI the first time; pip output is cached in .build). Same pins, same sources."""
    return {
        door: _bundle(door, tmp_path_factory.mktemp(f"{door}-bundle"), host_platform())
        for door in DOORS
    }


@pytest.fixture(scope="module")
def runtime_provided(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with only what the Lambda runtime provides besides the bundle (boto3)."""
    return link_runtime_provided(tmp_path_factory.mktemp("lambda-runtime"))


def test_gateway_bundle_holds_the_handler_the_library_and_its_pinned_deps(
    host_bundles: dict[str, Path],
) -> None:
    bundle = host_bundles["gateway"]
    assert (bundle / "lambdas" / "gateway" / "handler.py").is_file()
    assert (bundle / "lambdas" / "__init__.py").is_file()
    assert (bundle / "services" / "__init__.py").is_file()
    assert (bundle / "orjson").is_dir()
    assert not (bundle / "lambdas" / "stream").exists()
    assert not (bundle / "containers").exists()
    top = {p.name for p in bundle.iterdir()}
    # Powertools neither: its Logger and Metrics cost a cold start ~50 ms (README,
    # "Observability"); services/telemetry writes the same lines.
    for unwanted in ("aws_cdk", "openai", "anthropic", "boto3", "botocore", "tests",
                     "aws_lambda_powertools"):  # fmt: skip
        assert unwanted not in top


@pytest.mark.parametrize("door", DOORS)
def test_both_doors_carry_the_console_and_the_api_description(
    host_bundles: dict[str, Path], door: str
) -> None:
    """Data files beside the modules that serve them: /console/, /v1/openapi.json, /docs."""
    bundle = host_bundles[door]
    for name in ("console/__init__.py", "console/static/index.html", "console/static/app.js"):
        assert (bundle / name).is_file(), name
    contract = bundle / "services" / "contract"
    assert (contract / "openapi.json").is_file()
    assert (contract / "reference" / "swagger-ui-bundle.js").is_file()


def test_gateway_bundle_serves_the_contract_and_the_reference_page(
    host_bundles: dict[str, Path],
) -> None:
    """The bundle's own files answer /v1/openapi.json and /docs (no pydantic needed)."""
    code = (
        "import json, sys\n"
        f"sys.path[:0] = [{str(host_bundles['gateway'])!r}]\n"
        "from services.contract import public\n"
        "doc = json.loads(public.answer('/v1/openapi.json').body)\n"
        "page = public.answer('/docs').body\n"
        "js = public.answer('/docs/swagger-ui-bundle.js').body\n"
        "print(doc['openapi'], len(doc['paths']), 'swagger-ui' in page.lower() or 'docs/' in page,"
        " len(js) > 100_000, 'pydantic' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["3.1.0", out[1], "True", "True", "False"] and int(out[1]) > 30


@pytest.mark.parametrize("door", DOORS)
def test_bundles_leave_out_what_only_the_worker_imports(
    host_bundles: dict[str, Path], door: str
) -> None:
    services = host_bundles[door] / "services"
    for group in WORKER_ONLY_GROUPS:
        assert not (services / group).exists(), group
    # The canonical types are the doors' only link to the model side.
    assert (services / "canonical.py").is_file()
    shipped = {
        p.relative_to(host_bundles[door]).as_posix()
        for p in services.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert shipped == {f for f in bundle_files(door, REPO_ROOT) if f.startswith("services/")}


@pytest.mark.parametrize("door", DOORS)
def test_bytecode_is_compiled_for_the_lambda_python_and_trusted_without_timestamps(
    host_bundles: dict[str, Path], door: str
) -> None:
    bundle = host_bundles[door]
    tag = f"cpython-{DEFAULT_LAMBDA_PYTHON.replace('.', '')}"
    sources = [p for p in bundle.rglob("*.py") if "__pycache__" not in p.parts]
    assert sources
    for source in sources[:: max(1, len(sources) // 50)]:
        (compiled,) = (source.parent / "__pycache__").glob(f"{source.stem}.{tag}.pyc")
        flags = int.from_bytes(compiled.read_bytes()[4:8], "little")
        assert flags == 0b01, compiled  # hash-based, unchecked: a zip keeps no mtimes


@pytest.mark.parametrize("door", DOORS)
def test_every_module_a_door_may_load_imports_from_its_own_bundle(
    host_bundles: dict[str, Path], runtime_provided: Path, door: str
) -> None:
    """Lazily loaded route modules too: the bundle's own pins, nothing from the dev venv."""
    modules = [m for m in door_imports(door, REPO_ROOT).lazily_checked() if m != "lambdas"]
    assert f"lambdas.{door}" in modules
    code = (
        "import importlib, sys\n"
        f"sys.path[:0] = [{str(host_bundles[door])!r}, {str(runtime_provided)!r}]\n"
        "failed = {}\n"
        f"for name in {modules!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed[name] = f'{type(exc).__name__}: {exc}'\n"
        "print(__import__('json').dumps(failed))\n"
    )
    # -I -S: no dev venv, no site-packages, no PYTHONPATH; only the bundle and the runtime.
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
        env={"PATH": os.environ.get("PATH", ""), "AWS_DEFAULT_REGION": "us-east-1"},
    )
    assert json.loads(result.stdout) == {}


def test_stream_bundle_has_an_executable_run_sh(host_bundles: dict[str, Path]) -> None:
    run_sh = host_bundles["stream"] / "run.sh"
    assert run_sh.is_file()
    assert os.access(run_sh, os.X_OK)
    assert (host_bundles["stream"] / "uvicorn").is_dir()
    assert (host_bundles["stream"] / "lambdas" / "stream" / "app.py").is_file()


def _requirements() -> list[tuple[str, str, tuple[str, ...]]]:
    """Each bundle's and image's pins, its Python, and the wheel platforms it can use."""
    lambda_python = DEFAULT_LAMBDA_PYTHON
    image_python = _image_python()
    return [(f"lambdas/{door}/requirements.txt", lambda_python, (PLATFORM,)) for door in DOORS] + [
        # python:3.12-slim is Debian (glibc 2.36): newer manylinux tags work there too.
        (
            "containers/worker/requirements.txt",
            image_python,
            ("manylinux_2_28_aarch64", "manylinux2014_aarch64"),
        )
    ]


def _image_python() -> str:
    dockerfile = (REPO_ROOT / "containers" / "worker" / "Dockerfile").read_text()
    (line,) = [line for line in dockerfile.splitlines() if line.startswith("FROM python:")]
    return line.split(":")[1].split("-")[0]


@pytest.mark.parametrize(("requirements", "python", "platforms"), _requirements())
def test_every_pin_has_an_aarch64_wheel_for_its_python(
    requirements: str, python: str, platforms: tuple[str, ...], tmp_path: Path
) -> None:
    """pip resolves each pinned set for Graviton as the bundler does: wheels only, the
    target platform and Python (metadata only: nothing is installed)."""
    report = tmp_path / "report.json"
    command = [
        sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
        "--quiet", "--disable-pip-version-check", "--report", str(report),
        "--target", str(tmp_path / "target"),
        "--only-binary=:all:", "--implementation", "cp", "--python-version", python,
        "--requirement", str(REPO_ROOT / requirements),
    ]  # fmt: skip
    for platform in platforms:
        command += ["--platform", platform]
    subprocess.run(
        command, check=True, capture_output=True, env={**os.environ, "PIP_NO_INPUT": "1"}
    )
    installs = json.loads(report.read_text())["install"]
    pinned = {
        line.split("==")[0].split("[")[0].strip().lower().replace("_", "-")
        for line in (REPO_ROOT / requirements).read_text().splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    }
    resolved = {i["metadata"]["name"].lower().replace("_", "-"): i for i in installs}
    assert pinned <= set(resolved), pinned - set(resolved)
    for name, item in resolved.items():
        wheel = item["download_info"]["url"].rsplit("/", 1)[-1]
        assert wheel.endswith(".whl"), (name, wheel)
        tags = wheel[:-4].split("-")[-3:]
        assert tags[2] == "any" or "aarch64" in tags[2], (name, wheel)
        assert tags[0].startswith(("py3", "py2.py3", f"cp{python.replace('.', '')}")) or (
            tags[1] == "abi3"
        ), (name, wheel)


def test_pip_runs_once_per_requirements_platform_and_python(
    host_bundles: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    requirements = REPO_ROOT / "lambdas" / "gateway" / "requirements.txt"
    host = LocalPythonBundler(
        component="gateway",
        repo_root=REPO_ROOT,
        python_version=DEFAULT_LAMBDA_PYTHON,
        cache_dir=CACHE,
        platform=host_platform(),
    )
    graviton = LocalPythonBundler(
        component="gateway", repo_root=REPO_ROOT, python_version="3.12", cache_dir=CACHE
    )
    assert host.cache_key(requirements) != graviton.cache_key(requirements)

    def no_pip(*args: object, **kwargs: object) -> None:
        raise AssertionError("pip ran although its output is cached")

    monkeypatch.setattr(subprocess, "run", no_pip)
    assert host.dependencies(requirements) == CACHE / host.cache_key(requirements)


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    for part in ("services", "lambdas", "containers", "console"):
        shutil.copytree(
            REPO_ROOT / part, root / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    (root / "README.md").write_text("readme")
    return root


@pytest.mark.parametrize(
    ("path", "redeploys"),
    [
        ("services/providers/openai.py", False),  # a provider edit leaves the doors alone
        ("services/chat/completions.py", False),
        ("containers/worker/app.py", False),
        ("lambdas/stream/app.py", False),
        ("README.md", False),
        ("services/providers/base.py", False),  # the provider port: the worker's only
        ("services/canonical.py", True),  # the canonical types the doors use
        ("services/tenancy/auth.py", True),
        ("services/usage/prices.toml", True),  # data beside a module the door imports
        ("lambdas/__init__.py", True),
        ("lambdas/gateway/handler.py", True),
        ("console/static/app.js", True),  # the console, served by the gateway
        ("services/contract/openapi.json", True),  # the contract it serves
    ],
)
def test_gateway_asset_hash_covers_only_what_is_bundled(
    repo_copy: Path, path: str, redeploys: bool
) -> None:
    def fingerprint() -> str:
        return FileSystem.fingerprint(
            str(repo_copy),
            exclude=source_excludes("gateway", repo_copy),
            ignore_mode=IgnoreMode.GIT,
        )

    before = fingerprint()
    target = repo_copy / path
    original = target.read_text()
    target.write_text(original + "\n# changed\n")
    try:
        assert (fingerprint() != before) is redeploys
    finally:
        target.write_text(original)
