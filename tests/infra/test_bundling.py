"""Lambda bundles are built on the host with pip, never in Docker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import FileSystem, IgnoreMode

from infra.bundling import LocalPythonBundler, source_excludes
from tests.infra.conftest import REPO_ROOT, Synth


def test_bundling_is_skipped_when_the_context_says_so(synth: Synth) -> None:
    assert synth.bundler_calls == []
    # Both functions still have code assets, so the templates stay complete.
    outdir = Path(synth.assembly.directory)
    assert (outdir / "Switchboard-test-FrontDoor.assets.json").is_file()


@pytest.fixture(scope="module")
def gateway_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real gateway bundle (needs PyPI the first time; pip output is cached in .build)."""
    out = tmp_path_factory.mktemp("gateway-bundle")
    bundler = LocalPythonBundler(
        component="gateway",
        repo_root=REPO_ROOT,
        python_version="3.12",
        cache_dir=REPO_ROOT / ".build" / "lambda-deps",
    )
    assert bundler.try_bundle(str(out), image=None) is True  # type: ignore[arg-type]
    return out


def test_gateway_bundle_holds_the_handler_the_library_and_its_pinned_deps(
    gateway_bundle: Path,
) -> None:
    assert (gateway_bundle / "lambdas" / "gateway" / "handler.py").is_file()
    assert (gateway_bundle / "lambdas" / "__init__.py").is_file()
    assert (gateway_bundle / "services" / "__init__.py").is_file()
    assert (gateway_bundle / "aws_lambda_powertools").is_dir()
    # The web console, served by the gateway under /console/.
    assert (gateway_bundle / "console" / "__init__.py").is_file()
    assert (gateway_bundle / "console" / "static" / "index.html").is_file()
    assert (gateway_bundle / "console" / "static" / "app.js").is_file()
    assert not (gateway_bundle / "lambdas" / "stream").exists()
    assert not (gateway_bundle / "containers").exists()


def test_gateway_bundle_has_no_sdk_no_cdk_no_bytecode(gateway_bundle: Path) -> None:
    top = {p.name for p in gateway_bundle.iterdir()}
    for unwanted in ("aws_cdk", "openai", "anthropic", "boto3", "botocore", "tests"):
        assert unwanted not in top
    assert not list(gateway_bundle.rglob("__pycache__"))
    assert not list(gateway_bundle.rglob("*.pyc"))


def test_gateway_bundle_serves_the_contract_and_the_reference_page(gateway_bundle: Path) -> None:
    """The bundle's own files answer /v1/openapi.json and /docs (no pydantic needed)."""
    code = (
        "import json, sys\n"
        "from services.frontdoor import public\n"
        "doc = json.loads(public.answer('/v1/openapi.json').body)\n"
        "page = public.answer('/docs').body\n"
        "js = public.answer('/docs/swagger-ui-bundle.js').body\n"
        "print(doc['openapi'], len(doc['paths']), 'swagger-ui' in page.lower() or 'docs/' in page,"
        " len(js) > 100_000, 'pydantic' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=gateway_bundle,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["3.1.0", out[1], "True", "True", "False"] and int(out[1]) > 30


def test_stream_bundle_has_an_executable_run_sh(tmp_path: Path) -> None:
    bundler = LocalPythonBundler(
        component="stream",
        repo_root=REPO_ROOT,
        python_version="3.12",
        cache_dir=REPO_ROOT / ".build" / "lambda-deps",
    )
    bundler.bundle(tmp_path)
    run_sh = tmp_path / "run.sh"
    assert run_sh.is_file()
    assert os.access(run_sh, os.X_OK)
    assert (tmp_path / "uvicorn").is_dir()
    assert (tmp_path / "lambdas" / "stream" / "app.py").is_file()
    assert (tmp_path / "console" / "static" / "index.html").is_file()  # served under /console/


def test_pip_runs_once_per_requirements_platform_and_python(
    gateway_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requirements = REPO_ROOT / "lambdas" / "gateway" / "requirements.txt"
    cache = REPO_ROOT / ".build" / "lambda-deps"
    py312 = LocalPythonBundler(
        component="gateway", repo_root=REPO_ROOT, python_version="3.12", cache_dir=cache
    )
    py313 = LocalPythonBundler(
        component="gateway", repo_root=REPO_ROOT, python_version="3.13", cache_dir=cache
    )
    assert py312.cache_key(requirements) != py313.cache_key(requirements)

    def no_pip(*args: object, **kwargs: object) -> None:
        raise AssertionError("pip ran although its output is cached")

    monkeypatch.setattr(subprocess, "run", no_pip)
    assert py312.dependencies(requirements) == cache / py312.cache_key(requirements)


@pytest.mark.parametrize(
    ("path", "redeploys"),
    [
        ("services/chat/completions.py", True),
        ("lambdas/__init__.py", True),
        ("lambdas/gateway/handler.py", True),
        ("console/static/app.js", True),
        ("console/__init__.py", True),
        ("lambdas/stream/app.py", False),
        ("containers/worker/app.py", False),
        ("README.md", False),
        (".venv/lib/site.py", False),
        ("services/__pycache__/chat.cpython-312.pyc", False),
    ],
)
def test_gateway_asset_hash_covers_only_what_is_bundled(
    tmp_path: Path, path: str, redeploys: bool
) -> None:
    files = [
        "services/chat/completions.py",
        "lambdas/__init__.py",
        "lambdas/gateway/handler.py",
        "console/static/app.js",
        "console/__init__.py",
        "lambdas/stream/app.py",
        "containers/worker/app.py",
        "README.md",
        ".venv/lib/site.py",
        "services/__pycache__/chat.cpython-312.pyc",
    ]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)

    def fingerprint() -> str:
        return FileSystem.fingerprint(
            str(tmp_path), exclude=source_excludes("gateway"), ignore_mode=IgnoreMode.GIT
        )

    before = fingerprint()
    (tmp_path / path).write_text("changed")
    assert (fingerprint() != before) is redeploys
