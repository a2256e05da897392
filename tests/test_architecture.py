"""The import contract of the package layout (docs/ARCHITECTURE.md).

- A layer imports only the layers it is allowed to (lower ones): `ALLOWED`.
- Only ``store`` imports oss2, only ``fuse`` imports mfusepy, only ``net`` speaks HTTP.
- No import cycles between modules.

Every ``import`` counts, also ones inside functions and under ``TYPE_CHECKING``: a lazy import
is still a dependency.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

PACKAGE: Final = Path(__file__).resolve().parent.parent / "ossfs"

# Which ossfs packages each package may import (besides itself and ``ossfs`` for __version__).
ALLOWED: Final[dict[str, frozenset[str]]] = {
    "core": frozenset(),
    "net": frozenset({"core"}),
    "store": frozenset({"core", "net"}),
    "read": frozenset({"core"}),
    "fs": frozenset({"core", "read"}),
    "verify": frozenset({"core", "store"}),
    "obs": frozenset({"core", "read", "fs"}),
    "fuse": frozenset({"core", "read", "fs", "obs"}),
    "app": frozenset({"core", "net", "store", "read", "fs", "verify", "obs", "fuse", "emulator"}),
    "emulator": frozenset({"core"}),
}
TOP_LEVEL: Final = frozenset({"__init__", "__main__"})

# Third-party or standard modules only one layer may import: (module prefix, the layer).
OWNED: Final[dict[str, str]] = {
    "oss2": "store",
    "mfusepy": "fuse",
    "fuse": "fuse",
    "http.client": "net",
    "ssl": "net",
    "socket": "net",
    "selectors": "net",
    "certifi": "net",
    "requests": "net",
    "urllib3": "net",
    "pycurl": "net",
    "h11": "net",
    "httptools": "net",
}
# The emulator is a server: it speaks HTTP of its own and is held to none of `OWNED`.
OWNED_EXEMPT: Final = frozenset({"emulator"})

# Known breaches, each to be removed by the work that fixes it (none left since the store split
# of issue 18). Listed ones that no longer happen fail the test too, so this list only shrinks.
KNOWN: Final[frozenset[str]] = frozenset()


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(("ossfs", *parts)), path


def _imports(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """Every module ``module`` imports, absolute, with the line.

    ``from pkg import name`` imports the module ``pkg.name`` when there is one, else ``pkg``.
    """
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            for alias in node.names:
                submodule = f"{name}.{alias.name}"
                yield (submodule if submodule in MODULES else name), node.lineno


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "ossfs" or len(parts) < 2:
        return None
    return None if parts[1] in TOP_LEVEL else parts[1]


MODULES: Final = dict(_modules())


def _layer_violations(module: str, path: Path) -> list[str]:
    layer = _layer(module)
    if layer is None:
        return []
    assert layer in ALLOWED, f"{module}: package {layer!r} has no entry in ALLOWED"
    return [
        f"{module}: {layer} -> {name}"
        for name, _ in _imports(module, path)
        if name in MODULES and _layer(name) not in (None, layer, *ALLOWED[layer])
    ]


def test_architecture_layers_import_only_allowed_layers() -> None:
    problems = {p for module, path in MODULES.items() for p in _layer_violations(module, path)}
    assert problems - KNOWN == set()
    assert KNOWN - problems - _owned_violations() == set(), "fixed: remove them from KNOWN"


def _owned_violations() -> set[str]:
    problems = set()
    for module, path in MODULES.items():
        layer = _layer(module)
        if layer in OWNED_EXEMPT:
            continue
        for name, _ in _imports(module, path):
            for prefix, owner in OWNED.items():
                if (name == prefix or name.startswith(prefix + ".")) and layer != owner:
                    problems.add(f"{module}: {name} (only {owner} may)")
    return problems


def test_architecture_owned_libraries_imported_by_their_layer_only() -> None:
    problems = _owned_violations()
    assert problems - KNOWN == set()


def test_architecture_has_no_import_cycles() -> None:
    graph = {
        module: {name for name, _ in _imports(module, path) if name in MODULES and name != module}
        for module, path in MODULES.items()
    }
    # A package's __init__ importing its own modules is not a cycle worth naming.
    cycles = [cycle for cycle in _cycles(graph) if len(cycle) > 1]
    assert cycles == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan), each a sorted list of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize(
    ("module", "source", "upward"),
    [
        ("ossfs.read.x", "import ossfs.app.cli", True),
        ("ossfs.read.x", "from ossfs.fs import filesystem", True),
        ("ossfs.read.x", "def f() -> None:\n    from ossfs.store.retry import RetryPolicy", True),
        ("ossfs.read.x", "from ..app import cli", True),
        ("ossfs.fs.x", "from ossfs.read.reader import Reader", False),
        ("ossfs.fs.x", "from ossfs import __version__", False),
    ],
)
def test_architecture_checker_catches_upward_imports(
    tmp_path: Path, module: str, source: str, upward: bool
) -> None:
    """The checker itself: an upward import, plain, from a package, relative or lazy, is found."""
    path = tmp_path / "x.py"
    path.write_text(source + "\n")
    assert bool(_layer_violations(module, path)) is upward


def test_architecture_doc_indexes_every_module() -> None:
    """docs/ARCHITECTURE.md's module index names every module of the package (but the
    emulator's), and names no module that is gone."""
    doc = (PACKAGE.parent / "docs" / "ARCHITECTURE.md").read_text()
    paths = {
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py" and "emulator" not in path.parts
    }
    named = set(re.findall(r"`(ossfs/[\w/]+\.py)`", doc))
    assert sorted(paths - named) == []
    assert sorted(p for p in named if not (PACKAGE.parent / p).exists()) == []
