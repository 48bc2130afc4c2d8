"""The package's shape: layers that import one way, no import circle between files or
packages (deferred imports included), other layers reached only through their public surface,
and pyproject's list of packages agreeing with the folders.

The layers, lowest first (each imports only those before it, and its own):

    railstream.config_schema  <-  railstream.stages  <-  railstream.runtime  <-  railstream.facade
        <-  railstream.server, railstream.cli  <-  railstream (the public names, python -m)
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from .linktree import package_dirs

LAYERS = (
    "railstream.config_schema",
    "railstream.stages",
    "railstream.runtime",
    "railstream.facade",
    "railstream.server",
    "railstream.cli",
    "railstream",
)
# The CLI launches the server (`railstream server`), so it sits above it.
RANK = {layer: i for i, layer in enumerate(LAYERS)}


@attrs.frozen
class Module:
    name: str
    path: Path
    is_package: bool

    @property
    def package(self) -> str:
        return self.name if self.is_package else self.name.rpartition(".")[0]


def find_modules(dirs: dict[str, Path] | None = None) -> dict[str, Module]:
    """Every module of railstream by import name, as pyproject maps its folders."""
    dirs = package_dirs() if dirs is None else dirs
    found: dict[str, Module] = {}
    for package, folder in dirs.items():
        nested = [f for p, f in dirs.items() if p != package and p.startswith(f"{package}.")]
        for path in sorted(folder.rglob("*.py")):
            if any(path.is_relative_to(n) for n in nested):
                continue
            parts = (*package.split("."), *path.relative_to(folder).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_package else parts)
            found[name] = Module(name, path, is_package)
    return found


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, leaving out ``if TYPE_CHECKING:`` blocks (imports only a type checker runs)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in (child, *_runtime_nodes(child)))
            continue
        yield node
        yield from _runtime_nodes(node)


def imports_of(module: Module, modules: dict[str, Module]) -> set[str]:
    """The railstream modules ``module`` imports, at module level or deferred in a function."""
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(module.path.read_text(), str(module.path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            # ``from package import submodule`` imports the submodule.
            targets = [
                f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source
                for a in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != module.name:
                found.add(target)
    return found


def layer_of(name: str) -> str:
    return next(layer for layer in LAYERS if name == layer or name.startswith(f"{layer}."))


def import_graph() -> tuple[dict[str, Module], dict[str, set[str]]]:
    modules = find_modules()
    return modules, {name: imports_of(m, modules) for name, m in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The graph's strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def package_graph(modules: dict[str, Module], graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Module edges lifted to packages. A package's ``__init__`` re-exporting its own
    subpackages is its surface, not a dependency, so those edges are left out."""
    packages: dict[str, set[str]] = defaultdict(set)
    for name, targets in graph.items():
        source = modules[name].package
        for target in targets:
            dest = modules[target].package
            if dest == source:
                continue
            if modules[name].is_package and dest.startswith(f"{source}."):
                continue
            packages[source].add(dest)
    return packages


def test_no_import_circle_between_files() -> None:
    _, graph = import_graph()
    assert cycles(graph) == []


def test_no_import_circle_between_packages() -> None:
    modules, graph = import_graph()
    assert cycles(package_graph(modules, graph)) == []


def test_each_layer_imports_only_the_layers_below_it() -> None:
    _, graph = import_graph()
    upward = sorted(
        f"{name} imports {target}"
        for name, targets in graph.items()
        for target in targets
        if RANK[layer_of(target)] > RANK[layer_of(name)]
        or (RANK[layer_of(target)] == RANK[layer_of(name)] and layer_of(target) != layer_of(name))
    )
    assert upward == []


def test_another_layer_is_imported_only_through_its_public_surface() -> None:
    """A private module (``_x.py``) is reached only from its own layer: what other layers use
    is re-exported by the package's ``__init__``."""
    _, graph = import_graph()
    reaching = sorted(
        f"{name} imports {target}"
        for name, targets in graph.items()
        for target in targets
        if layer_of(target) != layer_of(name)
        and any(part.startswith("_") for part in target.split("."))
    )
    assert reaching == []


def test_pyproject_lists_every_package_the_folders_hold() -> None:
    """setuptools puts in the wheel only the packages pyproject names: a new folder left out
    of the list would be missing from every install but an editable one."""
    import tomllib

    from .helpers import ROOT

    with (ROOT / "pyproject.toml").open("rb") as f:
        listed = tomllib.load(f)["tool"]["setuptools"]["packages"]
    assert sorted(listed) == sorted(n for n, m in find_modules().items() if m.is_package)


def write(folder: Path, files: dict[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return {"railstream": folder}


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(
            {
                "__init__.py": "",
                "a.py": "from . import b\n",
                "b.py": "def f():\n    from . import a\n",
            },
            [["railstream.a", "railstream.b"]],
            id="deferred-import",
        ),
        pytest.param(
            {
                "__init__.py": "",
                "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import b\n",
                "b.py": "from .a import x\n",
            },
            [],
            id="type-checking-only",
        ),
        pytest.param(
            {
                "__init__.py": "",
                "p/__init__.py": "from ..q import y\n",
                "q.py": "from .p import x\n",
            },
            [["railstream.p", "railstream.q"]],
            id="package-and-module",
        ),
    ],
)
def test_the_circle_finder_sees_what_python_would_run(
    tmp_path: Path, files: dict[str, str], expected: list[list[str]]
) -> None:
    modules = find_modules(write(tmp_path / "railstream", files))
    assert cycles({n: imports_of(m, modules) for n, m in modules.items()}) == expected
