"""The package's import graph has no cycle, and the Keras layer depends on none of its adapters.

Every ``import`` and ``from ... import`` in every module of ``simplernn_numba/`` counts,
function-level ones included, with relative imports resolved, as do
``importlib.import_module`` calls with literal names. Importing ``p.q.m`` also imports the
package ``p.q`` (its ``__init__``), so that counts as an edge too, except from modules inside
``p.q`` and except for the root package, whose ``__init__`` only gathers the public names.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "simplernn_numba"


def module_files(package_dir: Path = PACKAGE_DIR) -> dict[str, tuple[Path, bool]]:
    """{dotted module name: (path, is_package)} for every ``.py`` file under ``package_dir``."""
    root = package_dir.name
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [root, *path.relative_to(package_dir).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        modules[".".join(parts)] = (path, is_package)
    return modules


def _resolve(name: str | None, level: int, module: str, is_package: bool) -> str:
    if level == 0:
        return name or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _targets(tree: ast.AST, module: str, is_package: bool, modules) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module, node.level, module, is_package)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in modules else base)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) \
                == "import_module" and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            name = node.args[0].value
            level = len(name) - len(name.lstrip("."))
            found.add(_resolve(name[level:] or None, level, module, is_package))
    return found


def import_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    """{module: modules of the package it imports} (see the module docstring for what counts)."""
    modules = module_files(package_dir)
    root = package_dir.name
    graph = {}
    for module, (path, is_package) in modules.items():
        edges = set()
        for target in _targets(ast.parse(path.read_text(encoding="utf-8")), module, is_package, modules):
            parts = target.split(".")
            for end in range(2, len(parts) + 1):  # the target and each package above it, not the root
                name = ".".join(parts[:end])
                if name in modules and name != module and not (
                        end < len(parts) and (module + ".").startswith(name + ".")):
                    edges.add(name)
            if target == root and module != root:
                edges.add(root)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_layers_import_no_adapter():
    graph = import_graph()
    for layer in ("simplernn_numba.layer", "simplernn_numba.bidirectional", "simplernn_numba.engine",
                  "simplernn_numba.functional"):
        below = reachable(graph, layer)
        assert not {m for m in below if m.startswith(("simplernn_numba.interop", "simplernn_numba.bench"))}
        assert "simplernn_numba" not in below  # nothing imports names from the root package


def test_the_checker_sees_function_level_and_relative_imports(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from .sub import b\n")
    (package / "sub" / "__init__.py").write_text("from . import b\n")
    (package / "sub" / "b.py").write_text("import importlib\nimportlib.import_module('pkg.c')\n")
    (package / "c.py").write_text("from pkg import a\n")
    graph = import_graph(package)
    assert graph["pkg.a"] == {"pkg.sub", "pkg.sub.b"}
    assert graph["pkg.sub"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.c"}
    assert cycles(graph) == [["pkg.a", "pkg.c", "pkg.sub", "pkg.sub.b"]]
