"""What a set of stepspot entry modules needs, found statically: their stepspot modules and the
third-party distributions those import.

Every ``import`` statement counts, also inside functions (lazy imports run only on some paths, which
importing a module in a clean interpreter would miss), except under ``if TYPE_CHECKING:``. Only
stepspot's own modules are followed: a distribution's own dependencies are pip's to resolve. The
build scripts use it to fill the Lambda layer and the task runner bundle with exactly this, and the
packaging tests import every module found from the built artefacts alone.
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "stepspot"


@dataclass(frozen=True)
class Needs:
    modules: frozenset[str]  # stepspot modules (dotted names, packages included)
    external: frozenset[str]  # top-level names of third-party imports


def module_file(package_dir: Path, module: str) -> Path | None:
    """The file of a stepspot module (``package_dir`` is the directory of the ``stepspot`` package)."""
    parts = module.split(".")[1:]
    base = package_dir.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[str]:
    """Absolute dotted names imported by one module (``from a import b`` yields ``a`` and ``a.b``)."""
    found: list[str] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{node.module}" if node.module else package
            else:
                base = node.module or ""
            found.append(base)
            found.extend(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        pending.extend(ast.iter_child_nodes(node))
    return found


def scan(package_dir: Path, entries: list[str]) -> Needs:
    """Follow stepspot imports from ``entries`` (dotted module names); collect third-party names."""
    modules: set[str] = set()
    external: set[str] = set()
    queue = list(entries)
    while queue:
        module = queue.pop()
        if module in modules:
            continue
        path = module_file(package_dir, module)
        if path is None:
            raise SystemExit(f"{module}: no such module under {package_dir}")
        modules.add(module)
        parent = module.rpartition(".")[0]
        if parent:
            queue.append(parent)  # importing a submodule runs its packages' __init__ first
        tree = ast.parse(path.read_bytes(), filename=str(path))
        for name in _imports(tree, module, path.name == "__init__.py"):
            top = name.split(".")[0]
            if top == PACKAGE:
                if module_file(package_dir, name) is not None:
                    queue.append(name)
            elif top != "__future__" and top not in sys.stdlib_module_names:
                external.add(top)
    return Needs(frozenset(modules), frozenset(external))


def distributions(top_level_names: frozenset[str]) -> list[str]:
    """Distribution names providing these top-level modules (from this interpreter's installed metadata)."""
    providers = importlib.metadata.packages_distributions()
    names: set[str] = set()
    for top in sorted(top_level_names):
        if top not in providers:
            raise SystemExit(
                f"stepspot imports {top!r}, which no installed distribution provides: declare it in "
                "pyproject.toml and run `make venv`."
            )
        names.update(providers[top])
    return sorted(names, key=str.lower)
