#!/usr/bin/env python3
"""Re-render the README's generated blocks and the Markdown reports in ``weights/`` from the saved JSON.

    python tools/render_reports.py            # check: render into copies, print the differences, exit 1 if any
    python tools/render_reports.py --write    # rewrite README.md and the reports in place

Nothing is measured: every figure comes from the JSON the release tools, ``tools/real_ab.py`` and
``facewear bench --suite card`` wrote. Each README block is rendered by the function its tool writes it with:

* ``yolov5n-facewear4``: ``tools/release_yolo.py`` from ``weights/yolov5n-facewear4.metrics.json``;
* ``frcnn-mnv2-facewear4``: ``tools/release_frcnn.py`` from ``weights/frcnn-mnv2-facewear4.metrics.json``;
* ``real-data-ab``: ``tools/real_ab.py`` from ``weights/real-data-ab.json``;
* ``classifiers``: ``tools/release_cls.py`` from ``weights/classifiers.bench.json`` and ``cascades.bench.json``;
* ``card``: ``detection.card`` from ``weights/card.json``.

Reports only: ``cmu-poses*.md`` (``tools/cmu_poses.py``) and ``pose-gap*.md`` (``tools/pose_gap.py``), from the
JSON beside each.

``weights/coco-start-ab.md`` is not covered: ``tools/ab_report.py`` reads two runs' ``results.csv``, which are
not kept.
"""
from __future__ import annotations

import argparse
import difflib
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS.parent))
sys.path.insert(0, str(TOOLS))

from facewear.constants import REPO_ROOT, WEIGHTS_DIR  # noqa: E402
from facewear.io import write_marked_block, write_text  # noqa: E402


def _load(name: str) -> dict:
    return json.loads((WEIGHTS_DIR / name).read_text())


def _optional(name: str) -> dict | None:
    return _load(name) if (WEIGHTS_DIR / name).is_file() else None


def blocks() -> dict[str, tuple[str, Callable[[], str]]]:
    """README block key -> (writer named in the block, function rendering its body)."""
    import real_ab
    import release_cls
    import release_frcnn
    import release_yolo

    from detection import card

    ab_md = Path("weights/real-data-ab.md")
    return {
        "yolov5n-facewear4": ("tools/release_yolo.py",
                              lambda: release_yolo.block(_load("yolov5n-facewear4.metrics.json"))),
        "real-data-ab": ("tools/real_ab.py",
                         lambda: real_ab.readme_block(real_ab.render_saved(_load("real-data-ab.json")), ab_md)),
        "frcnn-mnv2-facewear4": ("tools/release_frcnn.py",
                                 lambda: release_frcnn.block(_load("frcnn-mnv2-facewear4.metrics.json"))),
        "classifiers": ("tools/release_cls.py",
                        lambda: release_cls.readme_body(_load("classifiers.bench.json"),
                                                        _optional("cascades.bench.json"))),
        "card": ("`facewear bench --suite card`",
                 lambda: card.headline_markdown(_load("card.json"), link="weights/README.md")),
    }


def reports() -> dict[str, Callable[[], str]]:
    """Report file in ``weights/`` -> function rendering it."""
    import cmu_poses
    import pose_gap
    import real_ab

    from classification.bench import cls_markdown
    from detection import bench, card
    from detection.cascade_bench import cascade_markdown

    return {
        "README.md": lambda: card.card_markdown(_load("card.json")),
        "real-data-ab.md": lambda: real_ab.render_saved(_load("real-data-ab.json")),
        "classifiers.bench.md": lambda: cls_markdown(_load("classifiers.bench.json")),
        "cascades.bench.md": lambda: cascade_markdown(_load("cascades.bench.json")),
        "yolov5n-facewear4.bench.md": lambda: bench.to_markdown(_load("yolov5n-facewear4.bench.json")),
        "cmu-poses.md": lambda: cmu_poses.render_saved(_load("cmu-poses.json")),
        "cmu-poses-320.md": lambda: cmu_poses.render_saved(_load("cmu-poses-320.json")),
        "pose-gap.md": lambda: pose_gap.render_saved(_load("pose-gap.json")),
        "pose-gap-turned.md": lambda: pose_gap.render_saved(_load("pose-gap-turned.json")),
    }


def _block(text: str, key: str) -> str | None:
    begin, end = f"<!-- {key}:begin -->", f"<!-- {key}:end -->"
    if begin not in text or end not in text:
        return None
    return text[text.index(begin):text.index(end) + len(end)]


def _diff(old: str, new: str, name: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        f"{name} (committed)", f"{name} (re-rendered)"))


def check(readme: Path, weights: Path, write: bool) -> dict[str, str]:
    """Render every block into a copy of ``readme`` (or ``readme`` itself with ``write``) and every report;
    returns ``{name: diff}`` ("" when unchanged, "missing ..." when the block or file is absent)."""
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        target = readme if write else Path(tmp) / "README.md"
        if not write:
            shutil.copyfile(readme, target)
        before = readme.read_text()
        for key, (writer, render) in blocks().items():
            if not write_marked_block(target, key, render(), writer):
                out[f"README block {key}"] = "missing markers"
                continue
            old, new = _block(before, key), _block(target.read_text(), key)
            out[f"README block {key}"] = _diff(old or "", new or "", key)
    for name, render in reports().items():
        p = weights / name
        new = render()
        old = p.read_text() if p.is_file() else ""
        out[f"weights/{name}"] = _diff(old, new, f"weights/{name}") if p.is_file() else "missing file"
        if write and old != new:
            write_text(p, new)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="rewrite README.md and the reports in place")
    ap.add_argument("--readme", default=str(REPO_ROOT / "README.md"))
    a = ap.parse_args()
    res = check(Path(a.readme), WEIGHTS_DIR, a.write)
    for name, d in res.items():
        print(f"{name}: {'same' if not d else 'differs' if d.startswith('---') else d}")
    for d in res.values():
        if d.startswith("---"):
            print(d)
    return 1 if any(res.values()) and not a.write else 0


if __name__ == "__main__":
    sys.exit(main())
