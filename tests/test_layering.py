"""The layering between the top-level packages, read from the source with ``ast`` (every import, in functions too).

    tools/           -> detection/, classification/, facewear/
    detection/       -> classification/, facewear/
    classification/  -> facewear/
    facewear/        -> (no other project package)

A new import against that order fails the test. ``KNOWN_VIOLATIONS`` is empty and is to stay so: an exception
would have to be listed there, module by module, and a listed one that is gone fails the test too.
"""
from __future__ import annotations

import ast

from facewear.constants import REPO_ROOT

PACKAGES = ("facewear", "classification", "detection", "tools")
ALLOWED: dict[str, set[str]] = {
    "facewear": set(),
    "classification": {"facewear"},
    "detection": {"facewear", "classification"},
    "tools": {"facewear", "classification", "detection"},
}
#: (importing file, imported module) pairs allowed against the layering: none
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()


def _module(path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path) -> set[str]:
    """Every module ``path`` imports (absolute names; relative imports resolved)."""
    mod, is_pkg = _module(path), path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                out.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                out.add(node.module)
    return out


def cross_package_imports() -> set[tuple[str, str]]:
    """(file, imported module) for every import from one project package into another."""
    found = set()
    for pkg in PACKAGES:
        for f in sorted((REPO_ROOT / pkg).rglob("*.py")):
            for name in imports(f):
                top = name.split(".")[0]
                if top in PACKAGES and top != pkg:
                    found.add((f.relative_to(REPO_ROOT).as_posix(), name))
    return found


def test_package_layering():
    found = cross_package_imports()
    assert found, "no cross-package import found: is the walk looking at the right folders?"
    forbidden = {(f, m) for f, m in found if m.split(".")[0] not in ALLOWED[f.split("/")[0]]}
    new = sorted(forbidden - KNOWN_VIOLATIONS)
    assert not new, ("imports against the layering (tools -> detection -> classification -> facewear): "
                     + "; ".join(f"{f} imports {m}" for f, m in new))
    gone = sorted(KNOWN_VIOLATIONS - forbidden)
    assert not gone, ("known violations no longer present, delete them from KNOWN_VIOLATIONS: "
                      + "; ".join(f"{f} -> {m}" for f, m in gone))


def _module_names() -> dict[str, object]:
    """Every project module (dotted name -> path), packages by their ``__init__``."""
    return {_module(f): f for pkg in PACKAGES for f in sorted((REPO_ROOT / pkg).rglob("*.py"))}


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (``from pkg import mod`` counts as an import of ``pkg.mod``)."""
    mods = _module_names()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = ".".join(base[:len(base) - (node.level - 1)] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            graph[mod].update(t for t in targets if t in mods and t != mod and t not in PACKAGES)
    return graph


def test_no_import_cycles():
    """No module reaches itself through imports (in functions too): each file only imports downward."""
    graph = import_graph()
    assert sum(map(len, graph.values())) > 50, "the walk found too few imports: is it reading the right folders?"
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)
