"""Each front door's cold import, measured from its own built bundle.

The bundle is what `cdk synth` builds (infra/bundling.py: the door's modules, its pinned
requirements, bytecode compiled with unchecked-hash pycs), with this machine's wheels
instead of Graviton's so that it can be imported here. Each sample is a fresh interpreter
(`-I -S`: no venv, no site-packages) whose path is the bundle and what the Lambda runtime
provides (boto3 and its dependencies); it imports the handler's module, as Lambda's INIT
does. Figures: the median wall time and the median CPU time of the import (CPU time is
the work; wall time adds whatever else this shared machine runs), the peak RSS, and the
same import with the bytecode removed, for the ratio.

Lambda memory: a function's CPU share is proportional to its memory (one vCPU at 1,769 MB),
so an import that takes C ms of CPU here takes about C x 1769 / M ms at M MB, on a core as
fast as this one. The line "memory for the budget" is the smallest M (in 64 MB steps)
that keeps that under the 150 ms budget, and never below twice the peak RSS.

    python -m bench.cold_import [--samples N]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from infra.bundling import DEPS_CACHE, LocalPythonBundler, host_platform, link_runtime_provided
from infra.config import StageConfig

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / ".build" / "bench-bundles"
BUDGET_MS = 150.0
ONE_VCPU_MB = 1769
# Each front-door function: its bundle, the module its handler lives in, its memory.
FUNCTIONS = (
    ("gateway", "gateway", "lambdas.gateway.handler", "gateway_memory_mib"),
    ("authorizer", "gateway", "lambdas.gateway.authorizer", "authorizer_memory_mib"),
    ("stream", "stream", "lambdas.stream.app", "stream_memory_mib"),
)

# Peak RSS from /proc (VmHWM): getrusage's ru_maxrss keeps the parent's high-water mark
# across fork and exec, so it would report the bench's own size.
_PROBE = """
import json, sys, time
sys.path[:0] = {paths!r}
wall, cpu = time.perf_counter(), time.process_time()
import {module}
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
with open("/proc/self/status") as status:
    hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps({{"wall_ms": wall * 1000, "cpu_ms": cpu * 1000, "rss_mb": hwm / 1024}}))
"""


@dataclass(frozen=True)
class Figure:
    function: str
    wall_ms: float
    cpu_ms: float
    rss_mb: float
    source_only_cpu_ms: float
    configured_mb: int

    @property
    def memory_for_budget_mb(self) -> int:
        by_cpu = ONE_VCPU_MB * self.cpu_ms / BUDGET_MS
        needed = max(128.0, by_cpu, 2 * self.rss_mb)
        return int(math.ceil(needed / 64) * 64)


def build_bundles(config: StageConfig) -> dict[str, Path]:
    bundles = {}
    for component in sorted({component for _, component, _, _ in FUNCTIONS}):
        out = BUILD / component
        shutil.rmtree(out, ignore_errors=True)
        LocalPythonBundler(
            component=component,
            repo_root=ROOT,
            python_version=config.python_version,
            cache_dir=ROOT / DEPS_CACHE,
            platform=host_platform(),
        ).bundle(out)
        source_only = BUILD / f"{component}-source-only"
        shutil.rmtree(source_only, ignore_errors=True)
        shutil.copytree(out, source_only, ignore=shutil.ignore_patterns("__pycache__"))
        bundles[component] = out
        bundles[f"{component}-source-only"] = source_only
    return bundles


def runtime_provided() -> Path:
    """What the Lambda Python runtime adds to the bundle: boto3 and its dependencies."""
    out = BUILD / "lambda-runtime"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return link_runtime_provided(out)


def sample(bundle: Path, runtime: Path, module: str, *, write_bytecode: bool) -> dict[str, float]:
    flags = ["-I", "-S"] + ([] if write_bytecode else ["-B"])
    code = _PROBE.format(paths=[str(bundle), str(runtime)], module=module)
    result = subprocess.run(
        [sys.executable, *flags, "-c", code],
        capture_output=True,
        text=True,
        cwd="/",
        env={"AWS_DEFAULT_REGION": "us-east-1"},
    )
    if result.returncode != 0:
        raise RuntimeError(f"importing {module} from {bundle} failed:\n{result.stderr}")
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def measure(samples: int = 9) -> tuple[list[Figure], list[str]]:
    config = StageConfig()
    bundles = build_bundles(config)
    runtime = runtime_provided()
    figures, skipped = [], []
    for function, component, module, memory_field in FUNCTIONS:
        if not (ROOT / (module.replace(".", "/") + ".py")).is_file():
            skipped.append(f"{function}: {module} is not in this tree")
            continue
        with_bytecode = [
            sample(bundles[component], runtime, module, write_bytecode=False)
            for _ in range(samples)
        ]
        without = [
            sample(bundles[f"{component}-source-only"], runtime, module, write_bytecode=False)
            for _ in range(samples)
        ]
        figures.append(
            Figure(
                function=function,
                wall_ms=statistics.median(s["wall_ms"] for s in with_bytecode),
                cpu_ms=statistics.median(s["cpu_ms"] for s in with_bytecode),
                rss_mb=max(s["rss_mb"] for s in with_bytecode),
                source_only_cpu_ms=statistics.median(s["cpu_ms"] for s in without),
                configured_mb=int(getattr(config, memory_field)),
            )
        )
    return figures, skipped


def report(figures: list[Figure], skipped: list[str], samples: int) -> list[str]:
    lines = [
        f"Front-door cold import, from each built bundle (Python {StageConfig().python_version}, "
        f"bytecode compiled; median of {samples} fresh interpreters)"
    ]
    for f in figures:
        verdict = "met" if f.cpu_ms < BUDGET_MS else "MISSED"
        lines.append(
            f"  {f.function + ' import (CPU)':<52} {f.cpu_ms:>10.1f} ms     "
            f"target < {BUDGET_MS:g} ms  {verdict}"
        )
        lines.append(
            f"    wall {f.wall_ms:.1f} ms; without bytecode {f.source_only_cpu_ms:.1f} ms CPU "
            f"({f.source_only_cpu_ms / max(f.cpu_ms, 0.001):.1f}x); peak RSS {f.rss_mb:.0f} MB; "
            f"memory for the budget {f.memory_for_budget_mb} MB, configured {f.configured_mb} MB"
        )
    lines += [f"  not measured: {s}" for s in skipped]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cold_import")
    parser.add_argument("--samples", type=int, default=9)
    args = parser.parse_args()
    figures, skipped = measure(args.samples)
    print("\n".join(report(figures, skipped, args.samples)))
    return 0 if all(f.cpu_ms < BUDGET_MS for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
