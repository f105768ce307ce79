"""The README's examples, run as written against a local stack of their own, so the README
cannot break silently.

The README is parsed by its fenced code blocks, never by line numbers. Run, in order:

- every `bash` block that talks to the local stack (it names one of `make dev`'s
  addresses), in one shell session (a variable an example sets, such as `$DOC`, is there
  for the next), with `set -euo pipefail` and curl failing on an HTTP error status;
- every `python` block, in one interpreter, so a block may use what an earlier one made
  (`client`).

`make dev`'s addresses are replaced by this stack's, `$KEY`/`KEY` is its development key,
and the shell runs in a folder with the files the examples upload (`report.pdf`, over the
~96 KB that used to break the upload recipe, and `scan.pdf`). A block the README marks
`<!-- readme-examples: not run (why) -->` is skipped.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.stack import LocalStack, StackConfig
from tests.pdf import make_pdf

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
# make dev's addresses: the API Gateway emulator, the stream door, the workers, moto.
ADDRESSES = ("http://127.0.0.1:3000", "http://127.0.0.1:3001", "http://127.0.0.1:8000",
             "http://127.0.0.1:5050")  # fmt: skip
SKIP = "<!-- readme-examples: not run"
MARK = "::readme-block "


@dataclass(frozen=True)
class Block:
    number: int  # its place among the README's fenced blocks
    language: str
    body: str
    skipped: bool


def blocks(text: str) -> list[Block]:
    """Every fenced block of `text`, with whether the README marks it as not run."""
    found: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("```"):
            i += 1
            continue
        language = line[3:].strip()
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        body = "\n".join(lines[i + 1 : end]) + "\n"
        found.append(Block(len(found), language, body, before.startswith(SKIP)))
        i = end + 1
    return found


def runnable(text: str) -> tuple[list[Block], list[Block]]:
    """(the bash blocks that talk to the local stack, the python blocks), not skipped."""
    all_blocks = [b for b in blocks(text) if not b.skipped]
    shell = [
        b
        for b in all_blocks
        if b.language in ("bash", "sh", "shell") and any(a in b.body for a in ADDRESSES)
    ]
    python = [b for b in all_blocks if b.language == "python"]
    return shell, python


def localized(body: str, stack: LocalStack) -> str:
    ours = (
        stack.api_url.removesuffix("/v1"),
        stack.stream_url.removesuffix("/v1"),
        stack.worker_url,
        stack.aws_endpoint,
    )
    for theirs, mine in zip(ADDRESSES, ours, strict=True):
        body = body.replace(theirs, mine)
    return body


def outputs(stdout: str) -> dict[int, str]:
    """What each block printed, by its number."""
    parts = re.split(rf"^{re.escape(MARK)}(\d+)$", stdout, flags=re.M)
    return {int(parts[i]): parts[i + 1] for i in range(1, len(parts), 2)}


def test_the_examples_are_found() -> None:
    shell, python = runnable(README.read_text())
    bodies = "".join(b.body for b in shell)
    for path in ("/v1/chat/completions", "/v1/documents", "/v1/tools/", "/v1/runs"):
        assert path in bodies, f"no runnable README example calls {path}"
    assert "services.admin" in bodies
    code = "".join(b.body for b in python)
    assert "OpenAI(" in code and "Anthropic(" in code
    # The parser: a marked block is skipped, and the blocks are found whatever their place.
    sample = "x\n<!-- readme-examples: not run (placeholder) -->\n```bash\ncurl http://127.0.0.1:3000\n```\n"
    sample += "```bash\ncurl http://127.0.0.1:3001/v1\n```\n```bash\nmake dev\n```\n"
    shell, _ = runnable(sample)
    assert [b.number for b in shell] == [1]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    config = StackConfig(log_dir=tmp_path_factory.mktemp("readme-stack-logs"))
    with LocalStack(config) as running:
        yield running


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the shell examples run: the files they upload, and `.venv` as in a clone."""
    here = tmp_path_factory.mktemp("readme-cwd")
    pages = [f"Page {n}: the tides turn the turbines.\n" + "Tidal power. " * 300 for n in range(40)]
    report = make_pdf(pages)
    assert len(report) > 100 * 1024  # its base64 is too long for one command-line argument
    (here / "report.pdf").write_bytes(report)
    (here / "scan.pdf").write_bytes(make_pdf(["A scanned page.", "Another page."]))
    (here / ".venv").symlink_to(Path(sys.prefix))
    return here


def environment(stack: LocalStack) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SWITCHBOARD_"))}
    env |= {"KEY": stack.api_key, "PYTHONPATH": str(ROOT), "AWS_EC2_METADATA_DISABLED": "true"}
    return env


def test_the_shell_examples_run(stack: LocalStack, folder: Path) -> None:
    shell, _ = runnable(README.read_text())
    script = [
        "set -euo pipefail",
        # An HTTP error status fails the example, with the body on stdout for the report.
        'curl() { command curl --fail-with-body "$@"; }',
    ]
    for block in shell:
        script += [f"echo; echo '{MARK}{block.number}'", localized(block.body, stack)]
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=folder,
        env=environment(stack),
        capture_output=True,
        text=True,
        timeout=240,
    )
    printed = outputs(done.stdout)
    failed = max(printed, default=None)
    assert done.returncode == 0, (
        f"README block {failed} failed ({done.returncode}):\n"
        f"{next((b.body for b in shell if b.number == failed), '')}\n"
        f"stdout: {done.stdout[-1500:]}\nstderr: {done.stderr[-1500:]}"
    )
    assert sorted(printed) == [b.number for b in shell]
    by_path = {b.number: b.body for b in shell}
    for number, body in by_path.items():
        out = printed[number]
        if "/v1/chat/completions" in body:
            assert json.loads(out)["model"] == "local/simulator"
        if "/v1/documents" in body:
            report = json.loads((folder / "report.json").read_text())
            assert report["status"] == "ready" and report["pages"] == 40
            assert json.loads(out.strip().splitlines()[-1])["status"] == "ready"  # the scan
        if "/v1/tools/" in body:
            assert json.loads(out)["object"] == "tool.result"
        if "/v1/runs" in body:
            assert "event: run.succeeded" in out
        if "services.admin tenant list --json" in body:
            assert "acme" in out


def test_the_python_examples_run(stack: LocalStack) -> None:
    _, python = runnable(README.read_text())
    program = ["import os", "KEY = os.environ['KEY']", "namespace = {'KEY': KEY}"]
    for block in python:
        code = localized(block.body, stack)
        program += [
            f"print({MARK + str(block.number)!r}, flush=True)",
            f"exec(compile({code!r}, 'README block {block.number}', 'exec'), namespace)",
            "print(flush=True)",
        ]
    done = subprocess.run(
        [sys.executable, "-c", "\n".join(program)],
        env=environment(stack),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"stdout: {done.stdout[-1500:]}\nstderr: {done.stderr[-2500:]}"
    printed = outputs(done.stdout)
    assert sorted(printed) == [b.number for b in python]
    for block in python:
        if "Anthropic(" in block.body:
            assert printed[block.number].strip().startswith("local/simulator [local simulator")
        elif "OpenAI(" in block.body:
            assert "[local simulator, not a model]" in printed[block.number]
