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
