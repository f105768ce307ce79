"""Which parts of ``services`` a front door imports, read from the source (never imported).

A Lambda bundle holds only the modules its door reaches, so an edit to a module only the
worker uses (a provider adapter, chat, wire, ...) neither changes the door's asset hash
nor redeploys it. The closure follows what Python runs: a package's ``__init__`` with each
module; every import a module makes while it loads (not those inside its functions, nor
under ``if TYPE_CHECKING:``); and, in the door's own modules, the imports inside functions
too, which is how a door loads a route's module lazily.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOTS = ("services", "lambdas", "console")


@dataclass(frozen=True, slots=True)
class DoorImports:
    """What ``lambdas/<component>`` reaches: module names, and the top-level entries of
    ``services/`` (group folders and single modules) that hold them."""

    modules: frozenset[str]
    service_entries: frozenset[str]

    def lazily_checked(self) -> tuple[str, ...]:
        """Every reached module, sorted: what an import test loads from a built bundle."""
        return tuple(sorted(self.modules))


def bundle_files(component: str, repo_root: Path) -> tuple[str, ...]:
    """The repository files a door's bundle is built from, relative and sorted.

    ``lambdas/__init__.py``, all of ``lambdas/<component>`` (no tests), each reached
    ``services`` module, and the data files beside it (a package's ``.toml`` travels with
    its modules). The bundler copies exactly these, and the asset hash covers exactly
    these, so the two cannot disagree.
    """
    repo_root = Path(repo_root)
    files: set[str] = {"lambdas/__init__.py"}
    component_dir = repo_root / "lambdas" / component
    for path in component_dir.rglob("*"):
        if path.is_file() and not _skipped(path.relative_to(repo_root)):
            files.add(path.relative_to(repo_root).as_posix())
    for name in door_imports(component, repo_root).modules:
        module = _module_path(name, repo_root)
        if module is None or name.startswith("lambdas"):
            continue
        files.add(module.relative_to(repo_root).as_posix())
        files.update(_data_beside(module.parent, repo_root))
    return tuple(sorted(files))


def _data_beside(folder: Path, repo_root: Path) -> set[str]:
    """The data files a package's modules read: those in its folder, and everything in its
    subfolders that are not packages themselves (static files, vendored assets)."""
    found: set[str] = set()
    for path in folder.iterdir():
        relative = path.relative_to(repo_root)
        if _skipped(relative):
            continue
        if path.is_file() and path.suffix != ".py":
            found.add(relative.as_posix())
        elif path.is_dir() and not (path / "__init__.py").exists():
            found.update(
                p.relative_to(repo_root).as_posix()
                for p in path.rglob("*")
                if p.is_file() and not _skipped(p.relative_to(repo_root))
            )
    return found


def exclude_patterns(files: tuple[str, ...]) -> list[str]:
    """Gitignore patterns that keep exactly ``files`` (a parent folder is re-included
    before its children are excluded, as gitignore requires)."""
    folders: set[str] = set()
    for name in files:
        parts = name.split("/")[:-1]
        folders.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    patterns = ["/*"]
    for folder in sorted(folders, key=lambda f: (f.count("/"), f)):
        patterns += [f"!/{folder}", f"/{folder}/*"]
    patterns += [f"!/{name}" for name in files]
    return patterns


def _skipped(relative: Path) -> bool:
    return any(part in ("tests", "__pycache__") for part in relative.parts) or (
        relative.suffix == ".pyc"
    )


def door_imports(component: str, repo_root: Path) -> DoorImports:
    repo_root = Path(repo_root)
    start = [
        _module_name(path, repo_root)
        for path in sorted((repo_root / "lambdas" / component).rglob("*.py"))
        if not _skipped(path.relative_to(repo_root))
    ]
    door = set(start)
    seen: set[str] = set()
    todo = list(start)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_path(name, repo_root)
        if path is None:
            continue
        seen.add(name)
        todo.extend(_parents(name))
        todo.extend(_imports_of(path, name, repo_root, lazy=name in door))
    entries = frozenset(
        name.split(".")[1] for name in seen if name.startswith("services.") and "." in name
    )
    return DoorImports(modules=frozenset(seen), service_entries=entries)


def _module_name(path: Path, repo_root: Path) -> str:
    parts = list(path.relative_to(repo_root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _module_path(name: str, repo_root: Path) -> Path | None:
    if name.split(".")[0] not in ROOTS:
        return None
    base = repo_root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _statements(tree: ast.AST, *, lazy: bool) -> list[ast.AST]:
    """The nodes Python runs when the module loads (and, if ``lazy``, in its functions)."""
    found: list[ast.AST] = []
    todo = list(ast.iter_child_nodes(tree))
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
            continue
        if not lazy and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        found.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports_of(path: Path, name: str, repo_root: Path, *, lazy: bool) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: list[str] = []
    for node in _statements(tree, lazy=lazy):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                base = node.module or ""
            found.append(base)
            # `from package import module` imports a submodule when one exists.
            found.extend(
                f"{base}.{alias.name}"
                for alias in node.names
                if _module_path(f"{base}.{alias.name}", repo_root) is not None
            )
    return [n for n in found if n.split(".")[0] in ROOTS]
