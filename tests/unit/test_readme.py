"""The README's configuration reference cannot drift from the code: every `SWITCHBOARD_*`
setting the runtime code reads is in it, and everything in it is read by some code.

The code is scanned, not imported: every string that is a whole setting name (docstrings
and messages aside), and names built from an f-string prefix (`f"SWITCHBOARD_{p}_TIMEOUT_"
+ "IDLE_SECONDS"`, documented as `SWITCHBOARD_<PROVIDER>_TIMEOUT_IDLE_SECONDS`). The
README is parsed by its headings and table rows, so other sections may change freely.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
RUNTIME = ("services", "lambdas", "containers", "devstack")
NAME = re.compile(r"^SWITCHBOARD_[A-Z0-9_]*[A-Z0-9]$")
TEMPLATE = re.compile(r"^SWITCHBOARD_[A-Z0-9_<>]*[A-Z0-9]$")
HOLE = "<>"


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _template(node: ast.JoinedStr) -> str:
    return "".join(
        str(part.value) if isinstance(part, ast.Constant) else HOLE for part in node.values
    )


def scan(source: str) -> tuple[set[str], set[str]]:
    """The setting names a module's code holds, and the name templates it builds
    (`SWITCHBOARD_<>_TIMEOUT_IDLE_SECONDS`)."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    names: set[str] = set()
    templates: set[str] = set()
    prefixes: dict[str, str] = {}  # a variable bound to an f-string prefix
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(part) for part in node.values)
            template = _template(node)
            if TEMPLATE.match(template) and HOLE in template:
                templates.add(template)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.JoinedStr):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    prefixes[target.id] = _template(node.value)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            if NAME.match(node.value):
                names.add(node.value)
        elif (
            isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.Add)
            and isinstance(node.left, ast.Name)
            and node.left.id in prefixes
            and isinstance(node.right, ast.Constant)
            and isinstance(node.right.value, str)
        ):
            template = prefixes[node.left.id] + node.right.value
            if TEMPLATE.match(template):
                templates.add(template)
    return names, templates


def read_by_code(roots: tuple[str, ...] = RUNTIME) -> tuple[set[str], set[str]]:
    names: set[str] = set()
    templates: set[str] = set()
    for root in roots:
        for path in sorted((ROOT / root).rglob("*.py")):
            found, built = scan(path.read_text())
            names |= found
            templates |= built
    return names, templates


def reference(text: str | None = None) -> list[str]:
    """The setting names in the README's "Configuration reference" table, in order."""
    text = README.read_text() if text is None else text
    section = re.search(r"^## Configuration reference\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section is not None, "the README has no '## Configuration reference' section"
    rows = re.findall(r"^\| `(SWITCHBOARD_[^`]+)` \|", section.group(1), re.M)
    return [re.sub(r"<[A-Z_]+>", HOLE, row) for row in rows]


def _pattern(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(template).replace(re.escape(HOLE), "[A-Z0-9_]+") + "$")


def drift(
    names: set[str], templates: set[str], documented: list[str]
) -> tuple[list[str], list[str]]:
    """(read but not documented, documented but not read)."""
    exact = {d for d in documented if HOLE not in d}
    patterns = [_pattern(d) for d in documented if HOLE in d]
    missing = sorted(
        n for n in names if n not in exact and not any(p.match(n) for p in patterns)
    ) + sorted(t for t in templates if t not in documented)
    built = [_pattern(t) for t in templates]
    stale = sorted(
        d
        for d in documented
        if (HOLE in d and d not in templates)
        or (HOLE not in d and d not in names and not any(p.match(d) for p in built))
    )
    return missing, stale


def test_every_setting_the_code_reads_is_documented_and_nothing_else() -> None:
    names, templates = read_by_code()
    documented = reference()
    assert len(documented) == len(set(documented)), "a setting is documented twice"
    missing, stale = drift(names, templates, documented)
    assert not missing, f"add these to the README's configuration reference: {missing}"
    assert not stale, f"no code reads these any more; remove them from the README: {stale}"


def test_the_settings_the_stacks_set_are_read_by_the_code() -> None:
    names, _ = read_by_code()
    infra, _ = read_by_code(("infra",))
    unread = sorted(n for n in infra if n not in names)
    assert not unread, f"the stacks set settings no runtime code reads: {unread}"


def test_the_scan_finds_reads_of_every_form() -> None:
    names, templates = read_by_code()
    assert {"SWITCHBOARD_TABLE", "SWITCHBOARD_SIMULATOR", "SWITCHBOARD_APIGW_STAGE"} <= names
    assert "SWITCHBOARD_<>_TIMEOUT_IDLE_SECONDS" in templates
    assert len(names) > 60
    found, built = scan(
        '"""SWITCHBOARD_IN_A_DOCSTRING is not read."""\n'
        "import os\n"
        'a = os.environ.get("SWITCHBOARD_NEW_THING")\n'
        'raise ValueError(f"SWITCHBOARD_NEW_THING must be set, got {a}")\n'
        'prefix = f"SWITCHBOARD_{a}_LIMIT_"\n'
        'b = env_int(env, prefix + "BYTES", 1)\n'
    )
    assert found == {"SWITCHBOARD_NEW_THING"} and built == {"SWITCHBOARD_<>_LIMIT_BYTES"}


@pytest.mark.parametrize(
    ("documented", "missing", "stale"),
    [
        (["SWITCHBOARD_A", "SWITCHBOARD_<X>_TIMEOUT_SECONDS"], [], []),
        (["SWITCHBOARD_<X>_TIMEOUT_SECONDS"], ["SWITCHBOARD_A"], []),
        (
            ["SWITCHBOARD_A"],
            ["SWITCHBOARD_OPENAI_TIMEOUT_SECONDS", "SWITCHBOARD_<>_TIMEOUT_SECONDS"],
            [],
        ),
        (
            ["SWITCHBOARD_A", "SWITCHBOARD_<X>_TIMEOUT_SECONDS", "SWITCHBOARD_GONE"],
            [],
            ["SWITCHBOARD_GONE"],
        ),
    ],
)
def test_drift_is_caught_both_ways(
    documented: list[str], missing: list[str], stale: list[str]
) -> None:
    rows = "\n".join(f"| `{d}` | worker | 1 | x |" for d in documented)
    parsed = reference(
        f"# R\n\n## Configuration reference\n\n{rows}\n\n## Next\n| `SWITCHBOARD_B` |"
    )
    names = {"SWITCHBOARD_A", "SWITCHBOARD_OPENAI_TIMEOUT_SECONDS"}
    assert drift(names, {"SWITCHBOARD_<>_TIMEOUT_SECONDS"}, parsed) == (missing, stale)
