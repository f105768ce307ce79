"""Lambda packaging without Docker.

A front-door bundle is the part of ``services`` its door imports (``infra/imports.py``),
``lambdas/<component>`` and the component's pinned requirements, installed by pip for the
Lambda platform (``manylinux2014_aarch64``: Graviton; CPython ``config.python_version``,
wheels only), then compiled to bytecode. The web console (``console``) and the API's
description travel as data files beside the modules that serve them. Nothing else from
the repository is staged: no tests, no provider adapters, no CDK.

Bytecode: a ``.pyc`` loads only on the Python version that wrote it, so the bundle is
compiled by an interpreter of exactly ``python_version`` (this one, or ``pythonX.Y`` on
PATH), and the synth fails, naming the fix, when there is none. ``unchecked-hash`` pycs
are used without comparing source timestamps, which a deployment zip does not keep.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jsii
from aws_cdk import BundlingOptions, DockerImage, IgnoreMode, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from infra.config import StageConfig
from infra.imports import bundle_files, exclude_patterns

PLATFORM = "manylinux2014_aarch64"
IMPLEMENTATION = "cp"
DEPS_CACHE = Path(".build") / "lambda-deps"
LAMBDA_TASK_ROOT = "/var/task"
# What the Lambda Python runtime itself provides beside a bundle (lambdas/*/requirements.txt
# leave them out): boto3 and its dependencies.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "tests", ".pytest_cache", ".mypy_cache")


class BundlingError(RuntimeError):
    """A bundle cannot be built as the stage config asks."""


def host_platform() -> str:
    """The wheel platform of this machine: a bundle built for it can be imported here
    (tests and `make bench` measure the same pins and sources, with host wheels)."""
    machine = platform.machine().lower()
    return "manylinux2014_aarch64" if machine in ("aarch64", "arm64") else "manylinux2014_x86_64"


def source_excludes(component: str, repo_root: Path) -> list[str]:
    """Gitignore-style patterns that keep only what a component's bundle is built from.

    They define the asset's source hash, so a change to a module the door does not import
    (a provider adapter, the worker) does not re-bundle or re-deploy the function.
    """
    return exclude_patterns(bundle_files(component, repo_root))


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
        exclude=source_excludes(component, repo_root),
        ignore_mode=IgnoreMode.GIT,
        bundling=BundlingOptions(
            # Never pulled: LocalPythonBundler always succeeds, so Docker is not needed.
            image=DockerImage.from_registry("unused"),
            local=bundler,
            # Part of the asset hash: another Python version or platform is another bundle.
            environment={
                "PYTHON_VERSION": config.python_version,
                "PLATFORM": PLATFORM,
                "BYTECODE": "unchecked-hash",
            },
        ),
    )


def interpreter_for(python_version: str) -> str:
    """An interpreter of exactly ``python_version``, to compile the bundle's bytecode."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == python_version:
        return sys.executable
    found = shutil.which(f"python{python_version}")
    if found is None:
        raise BundlingError(
            f"the Lambda bundles are compiled for Python {python_version} (python_version), "
            f"but neither this interpreter ({sys.version.split()[0]}) nor python"
            f"{python_version} on PATH is that version: install python{python_version}, or "
            f"set python_version to {sys.version_info.major}.{sys.version_info.minor}"
        )
    return found


@jsii.implements(ILocalBundling)
class LocalPythonBundler:
    """Builds one Lambda bundle on the host with pip's cross-platform wheel download."""

    def __init__(
        self,
        *,
        component: str,
        repo_root: Path,
        python_version: str,
        cache_dir: Path,
        platform: str = PLATFORM,
        compile_bytecode: bool = True,
    ) -> None:
        self.component = component
        self.repo_root = Path(repo_root)
        self.python_version = python_version
        self.cache_dir = Path(cache_dir)
        self.platform = platform
        self.compile_bytecode = compile_bytecode

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

        for name in bundle_files(self.component, self.repo_root):
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(self.repo_root / name, target)

        startup = component_dir / "run.sh"
        if startup.is_file():
            # The Lambda Web Adapter runs the handler file as the process to start.
            shutil.copyfile(startup, out / "run.sh")
            (out / "run.sh").chmod(0o755)
        if self.compile_bytecode:
            self.compile(out)

    def compile(self, out: Path) -> None:
        """Compile every module once, at build time: a Lambda cannot write ``__pycache__``
        into its read-only code directory, so without this each cold start compiles all
        it imports again. Paths in tracebacks are the deployed ones (/var/task/...)."""
        subprocess.run(
            [
                interpreter_for(self.python_version), "-m", "compileall",
                "-q", "-j", "0",
                "--invalidation-mode", "unchecked-hash",
                "-s", str(out), "-p", LAMBDA_TASK_ROOT,
                str(out),
            ],
            check=True,
        )  # fmt: skip

    def cache_key(self, requirements: Path) -> str:
        """Names the pip output: same requirements, platform and Python, same packages."""
        parts = (self.platform, IMPLEMENTATION, self.python_version)
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
                    "--platform", self.platform,
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


def link_runtime_provided(out: Path) -> Path:
    """`out`, holding links to this machine's copies of what the Lambda runtime provides
    (`RUNTIME_PROVIDED`): with a bundle on `sys.path`, an import sees what it would see in
    Lambda."""
    import boto3

    site = Path(boto3.__file__).parent.parent
    for name in RUNTIME_PROVIDED:
        for candidate in (site / name, site / f"{name}.py"):
            if candidate.exists():
                (out / candidate.name).symlink_to(candidate)
    return out
