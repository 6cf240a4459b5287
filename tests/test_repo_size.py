"""The tracked working tree stays small enough to clone quickly and to ship to a training machine (64 MiB cap)."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from facewear.constants import REPO_ROOT

LIMIT_MIB = 40.0


def tracked_bytes(root=REPO_ROOT) -> dict[str, int]:
    """Size of every file ``git ls-files`` lists (as checked out; files deleted from the tree count 0)."""
    out = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True, check=True).stdout
    sizes = {}
    for name in out.decode("utf-8", "surrogateescape").split("\0"):
        if name:
            p = root / name
            sizes[name] = p.stat().st_size if p.is_file() else 0
    return sizes


def test_tracked_tree_under_limit():
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    sizes = tracked_bytes()
    total = sum(sizes.values()) / 2**20
    biggest = ", ".join(f"{n} {b / 2**20:.1f} MiB" for n, b in sorted(sizes.items(), key=lambda x: -x[1])[:5])
    assert total <= LIMIT_MIB, (f"tracked tree is {total:.1f} MiB, over {LIMIT_MIB:g} MiB; largest: {biggest}. "
                                "Ship rebuildable weight variants through `facewear export --rebuild` instead "
                                "(weights/manifest.json, weights/.gitignore)")
