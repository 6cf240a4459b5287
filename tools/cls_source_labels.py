#!/usr/bin/env python3
"""Crop classifier accuracy on a crop split, broken down by the source datasets' own labels.

    python tools/cls_source_labels.py --model weights/facewear-cls.onnx --without with_incorrect_mask \\
        --out weights/facewear-cls.source-labels.md

ILC 2021 labels ``with_mask``, ``without_mask`` and ``with_incorrect_mask``; the build maps the first and last to
``mask`` (``facewear.constants.SOURCE_CLASS_MAP``). This report shows how each source label fares
(``classification.source_labels``): accuracy and what the crops were called. ``--without LABEL`` adds a row over
every crop but that label's. It measures only: never train or tune on the held-out set.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from facewear.constants import DATASETS_DIR, WEIGHTS_DIR, default_build_dir
from facewear.io import portable_path, portable_paths, write_json, write_text
from facewear.timing import machine


def measure(model: str, crops: Path, split: str, without: list[str], spec: str | None, data_root: str | None) -> dict:
    """Per source label :func:`classification.evaluate.scores` of ``model`` on ``<crops>/<split>``."""
    from classification.evaluate import predict_split, scores, scores_by_group
    from classification.runtime import load_classifier
    from classification.source_labels import source_labels

    clf = load_classifier(model)
    y, pred, files = predict_split(clf, crops, split)
    held = split.startswith("heldout")
    if spec is None and not held:
        spec = str(DATASETS_DIR / "facewear4.yaml")
    src = source_labels(crops, split, spec=spec, data_root=data_root, missing_ok=not held)
    missing = [f for f in files if f not in src]
    if missing:
        raise SystemExit(f"{crops / 'index.csv'}: {len(missing)} crops of {split} not in the index "
                         f"(first: {missing[0]}); rebuild with `facewear data crops`")
    groups = np.array([src[f] for f in files])
    res = {"all": scores(y, pred, clf.names), **scores_by_group(y, pred, groups, clf.names)}
    for lab in without:
        keep = groups != lab
        res[f"all but {lab}"] = scores(y[keep], pred[keep], clf.names)
    return {"model": model, "names": list(clf.names), "groups": res}


def render(results: list[dict], command: str, machine_line: str, split: str) -> str:
    """The Markdown report of :func:`measure`'s results."""
    names = results[0]["names"]
    out = [f"# Crop classifier on `{split}`, by the source datasets' own labels\n",
           f"Machine: {machine_line}. Command: `{command}`.\n",
           "*called X*: share of the crops the classifier put in class X (the row's mapped class is the right one: "
           "`with_mask` and `with_incorrect_mask` are `mask`, `without_mask` is `face`; the held-out's corrected "
           "sunglasses faces keep the source label they had).\n",
           "| model | source label | n | accuracy | " + " | ".join(f"called {n}" for n in names) + " |",
           "|---|---|---:|---:|" + "---:|" * len(names)]
    for r in results:
        for g, s in r["groups"].items():
            called = np.asarray(s["confusion"]).sum(0) / max(s["n"], 1)
            out.append(f"| {Path(r['model']).name} | {g} | {s['n']} | {s['accuracy']:.3f} | "
                       + " | ".join(f"{c:.3f}" for c in called) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True, help="classifier file (.pt or .onnx); repeat")
    ap.add_argument("--crops", default=None, help="crop folder (default build/crops)")
    ap.add_argument("--split", default="heldout-real",
                    help="crop split (default heldout-real; train and val read datasets/facewear4.yaml, and their "
                         "crops from sources without VOC files form one group)")
    ap.add_argument("--spec", default=None,
                    help="spec of the split's build (default datasets/ilc-heldout.yaml, facewear4.yaml for train/val)")
    ap.add_argument("--data-root", default=None, help="raw data root (default ../shared/data)")
    ap.add_argument("--without", action="append", default=[], help="add a row over every crop but this source label")
    ap.add_argument("--out", default=str(WEIGHTS_DIR / "facewear-cls.source-labels.md"),
                    help="Markdown report, JSON beside it (default weights/facewear-cls.source-labels.md)")
    a = ap.parse_args(argv)
    crops = Path(a.crops) if a.crops else default_build_dir() / "crops"
    results = [measure(m, crops, a.split, a.without, a.spec, a.data_root) for m in a.model]
    argv_list = sys.argv[1:] if argv is None else argv
    command = "python tools/cls_source_labels.py " + " ".join(shlex.quote(portable_path(x)) for x in argv_list)
    mline = machine()
    out = Path(a.out)
    text = render(results, command, mline, a.split)
    write_text(out, text)
    write_json(out.with_suffix(".json"), portable_paths({"command": command, "machine": mline, "split": a.split,
                                                        "results": results}))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
