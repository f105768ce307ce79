"""Lambda packaging without Docker.

A front-door bundle is the shared ``services`` package, the web console (``console``, which
both front doors serve under ``/console/``), ``lambdas/<component>`` and the component's
pinned requirements, installed by pip for the Lambda platform
(``manylinux2014_x86_64``, CPython ``config.python_version``, wheels only). Nothing else
from the repository is staged: no tests, no provider SDKs, no CDK.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jsii
from aws_cdk import BundlingOptions, DockerImage, IgnoreMode, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from infra.config import StageConfig

PLATFORM = "manylinux2014_x86_64"
IMPLEMENTATION = "cp"
DEPS_CACHE = Path(".build") / "lambda-deps"
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "tests", ".pytest_cache", ".mypy_cache")


def source_excludes(component: str) -> list[str]:
    """Gitignore-style patterns that keep only what a component's bundle is built from.

    They define the asset's source hash, so a change anywhere else in the repository does
    not re-bundle or re-deploy the function.
    """
    return [
        "/*",
        "!/services",
        "!/console",
        "!/lambdas",
        "/lambdas/*",
        "!/lambdas/__init__.py",
        f"!/lambdas/{component}",
        "__pycache__",
        "*.pyc",
        "tests",
    ]


def lambda_code(component: str, repo_root: Path, config: StageConfig) -> lambda_.Code:
    """The deployment package of ``lambdas/<component>``, bundled locally, never in Docker."""
    bundler = LocalPythonBundler(
        component=component,
        repo_root=repo_root,
        python_version=config.python_version,
        cache_dir=repo_root / DEPS_CACHE,
    )
    return lambda_.Code.from_asset(
        str(repo_root),
        exclude=source_excludes(component),
        ignore_mode=IgnoreMode.GIT,
        bundling=BundlingOptions(
            # Never pulled: LocalPythonBundler always succeeds, so Docker is not needed.
            image=DockerImage.from_registry("unused"),
            local=bundler,
            # Part of the asset hash: another Python version or platform is another bundle.
            environment={"PYTHON_VERSION": config.python_version, "PLATFORM": PLATFORM},
        ),
    )


@jsii.implements(ILocalBundling)
class LocalPythonBundler:
    """Builds one Lambda bundle on the host with pip's cross-platform wheel download."""

    def __init__(
        self, *, component: str, repo_root: Path, python_version: str, cache_dir: Path
    ) -> None:
        self.component = component
        self.repo_root = Path(repo_root)
        self.python_version = python_version
        self.cache_dir = Path(cache_dir)

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_options: object) -> bool:
        self.bundle(Path(output_dir))
        return True

    def bundle(self, out: Path) -> None:
        """Write the bundle into ``out``: dependencies first, so our sources win a clash."""
        component_dir = self.repo_root / "lambdas" / self.component
        requirements = component_dir / "requirements.txt"
        if not requirements.is_file():
            raise FileNotFoundError(f"{requirements} is missing; every Lambda pins its deps")
        out.mkdir(parents=True, exist_ok=True)
        shutil.copytree(self.dependencies(requirements), out, dirs_exist_ok=True, symlinks=True)

        for package in ("services", "console"):
            shutil.copytree(
                self.repo_root / package, out / package, ignore=_SKIP, dirs_exist_ok=True
            )
        (out / "lambdas").mkdir(exist_ok=True)
        shutil.copy2(self.repo_root / "lambdas" / "__init__.py", out / "lambdas" / "__init__.py")
        shutil.copytree(
            component_dir, out / "lambdas" / self.component, ignore=_SKIP, dirs_exist_ok=True
        )

        startup = component_dir / "run.sh"
        if startup.is_file():
            # The Lambda Web Adapter runs the handler file as the process to start.
            shutil.copyfile(startup, out / "run.sh")
            (out / "run.sh").chmod(0o755)

    def cache_key(self, requirements: Path) -> str:
        """Names the pip output: same requirements, platform and Python, same packages."""
        parts = (PLATFORM, IMPLEMENTATION, self.python_version)
        digest = hashlib.sha256(requirements.read_bytes())
        digest.update("\0".join(("", *parts)).encode())
        return digest.hexdigest()

    def dependencies(self, requirements: Path) -> Path:
        """Install the pinned requirements once; later synths reuse the cached tree."""
        key = self.cache_key(requirements)
        target = self.cache_dir / key
        if target.is_dir():
            return target
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=self.cache_dir))
        staging.chmod(0o755)
        try:
            subprocess.run(
                [
                    sys.executable, "-m", "pip", "install",
                    "--requirement", str(requirements),
                    "--target", str(staging),
                    "--platform", PLATFORM,
                    "--implementation", IMPLEMENTATION,
                    "--python-version", self.python_version,
                    "--only-binary=:all:",
                    "--no-compile",
                    "--disable-pip-version-check",
                    "--quiet",
                ],
                check=True,
                env={**os.environ, "PIP_NO_INPUT": "1"},
            )  # fmt: skip
            # Another synth may have finished the same install meanwhile; either copy is good.
            try:
                staging.rename(target)
            except OSError:
                if not target.is_dir():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target
