"""No import circle between farmtools' modules (issue 21's layering, checked on every run).

The graph is read from the source with :mod:`ast` (nothing is imported): an edge for every
import at module level, ``if TYPE_CHECKING:`` blocks included (an annotation-only import still
ties the two modules together; mypy follows it).  Imports inside functions are left out: the
tree's convention is a function-level import for what is needed late or is slow to load
(SQLAlchemy, uproot, numba kernels), and each module's docstring says what it imports lazily.

A module's import of one of its own parent packages is no edge: Python initialises the parents
first in any case, and a package's ``__init__`` re-exporting its submodules is the ordinary
shape of a package, not a circle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import farmtools

ROOT = Path(farmtools.__file__).resolve().parent


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` below ``root`` (the package ``package``)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _module_level(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements run when the module is loaded (or read by a type checker):
    top level and inside module-level ``if``/``try``/``with`` blocks, not inside functions
    or classes."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            yield from _module_level(node.body)
            yield from _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _module_level(block)
            for handler in node.handlers:
                yield from _module_level(handler.body)
        elif isinstance(node, ast.With):
            yield from _module_level(node.body)


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports at module level (see the module docstring)."""
    modules = module_names(root, package)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        here = name if is_package else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _module_level(ast.parse(path.read_text(), str(path)).body):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
                continue
            base = node.module or ""
            if node.level:
                anchor = here.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in modules else base)
        parents = {name.rsplit(".", k)[0] for k in range(1, name.count(".") + 1)}
        graph[name] = {t for t in targets if t in modules and t != name and t not in parents}
    return graph


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One circle of the graph as a path (first node repeated at the end), or None."""
    colour: dict[str, int] = {}  # absent: not seen, 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if colour.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in colour and (found := visit(nxt)) is not None:
                return found
        path.pop()
        colour[node] = 2
        return None

    for start in sorted(graph):
        if start not in colour and (found := visit(start)) is not None:
            return found
    return None


def test_farmtools_has_no_import_circle() -> None:
    graph = import_graph(ROOT, "farmtools")
    assert len(graph) > 100  # the walk found the tree (an empty graph has no circle either)
    assert sum(len(t) for t in graph.values()) > 300
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_a_circle_is_found_whatever_the_import_form(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""A package."""\n')
    (pkg / "sub" / "__init__.py").write_text("from pkg.sub.b import B\n")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.sub import b\n"
    )
    (pkg / "sub" / "b.py").write_text("from ..c import C\nB = 1\n")
    (pkg / "c.py").write_text("import os\n\ndef f():\n    from pkg import a\n")
    graph = import_graph(pkg, "pkg")
    assert graph["pkg.a"] == {"pkg.sub.b"}
    assert graph["pkg.sub.b"] == {"pkg.c"}
    assert graph["pkg.sub"] == {"pkg.sub.b"}
    assert find_cycle(graph) is None  # c imports a inside a function only

    (pkg / "c.py").write_text("import pkg.a\n")  # now at module level: a -> b -> c -> a
    cycle = find_cycle(import_graph(pkg, "pkg"))
    assert cycle == ["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]
