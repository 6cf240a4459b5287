#!/usr/bin/env python3
"""A/B of training data on real photos: the same recipe on the old and the new dataset.

    python tools/real_ab.py --model "release=weights/yolov5n-facewear4.pt" \
        --model "old data=runs/yolo/ab-old-ft1/weights/best.pt" \
        --model "new data=runs/yolo/ab-new-ft1/weights/best.pt" \
        --command "old data=facewear train yolo ..." --command "new data=facewear train yolo ..." \
        --out weights/real-data-ab.md

For every model it runs ``facewear val`` on the held-out set (``datasets/ilc-heldout.yaml``) and on the
real checks (``datasets/real-checks.yaml``: the held-out photos with real sunglasses faces and
``cmu-faces``), plus the blank-frame check, and writes a Markdown report and its JSON beside it.
Never train or tune on either set: this only measures.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from facewear.constants import CLASS_NAMES, DATASETS_DIR, REPO_ROOT
from facewear.io import portable_paths, read_report_json, write_json, write_marked_block, write_text
from facewear.metrics import AP50, MAP50, MAP50_95, DetMetrics
from facewear.timing import machine  # the one machine line of every report


def _pair(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for it in items:
        if "=" not in it:
            raise SystemExit(f"--{what} {it!r}: expected LABEL=VALUE")
        k, v = it.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def measure(model: str, imgsz: int, max_images: int | None, specs: Path = DATASETS_DIR) -> dict:
    from detection import val
    from detection.blank import blank_frame_check
    from detection.registry import load_detector

    held = val.run(model, data=str(specs / "ilc-heldout.yaml"), imgsz=imgsz, max_images=max_images)
    real = val.run(model, data=str(specs / "real-checks.yaml"), imgsz=imgsz, max_images=max_images)
    blank = blank_frame_check(load_detector(model, imgsz=imgsz, conf=0.25))
    return {"ilc-heldout": row_figures(held), "real-checks": row_figures(real), "blank": blank, "imgsz": imgsz}


def row_figures(m: dict) -> dict:
    """What a report row keeps of a ``facewear val`` result: mAP, AP50 per class, true-class outcomes, images."""
    d = DetMetrics.from_json(m)
    return {MAP50: d.map50, MAP50_95: d.map50_95, AP50: d.ap50(), "true_class": d.extra.get("true_class", {}),
            "images": d.extra["images"]}


def render(results: dict, commands: dict, argv: str, machine_line: str | None = None) -> str:
    """The Markdown report; ``machine_line`` defaults to this machine (a re-render passes the saved one)."""
    f = lambda v: "n/a" if v is None or v != v else f"{v:.3f}"  # noqa: E731
    lines = ["# Real data A/B: does the new dataset fix real sunglasses?", "",
             "Same recipe and budget, old dataset against new (see the commands below). Figures from "
             "`facewear val` at each model's input size (column px; AP at IoU 0.5; recall and confusions at "
             "conf 0.25, IoU 0.5) on",
             "* **held-out**: `ilc2021-heldout` (1600 real web photos; 64 sunglasses and 48 mask_sunglasses faces "
             "after label correction);",
             "* **real checks**: `datasets/real-checks.yaml`, the held-out photos holding real sunglasses faces "
             "plus `cmu-faces` (real dark sunglasses, and the same people without), boxes reviewed by eye;",
             "* **blank frames**: uniform, near-uniform and 1x1 frames (`detection/blank.py`): frames with any "
             "detection at conf 0.25.", "",
             f"Machine: {machine_line or machine()}. Each row measured by `python tools/real_ab.py --model "
             f"LABEL=PATH` (rows of several runs joined with `--merge`); models: {argv}.", "",
             "| model | px | held-out mAP50 | AP50 face | AP50 mask | AP50 sunglasses | AP50 mask_sunglasses | "
             "real sunglasses recall | called face | missed | real mask_sunglasses recall | "
             "blank frames with boxes |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, r in results.items():
        h, rc = r["ilc-heldout"], r["real-checks"]
        sg = rc["true_class"].get("sunglasses", {})
        msg = rc["true_class"].get("mask_sunglasses", {})
        ap = h["AP50"]
        lines.append(f"| {label} | {r.get('imgsz', 320)} | {f(h['mAP50'])} | " +
                     " | ".join(f(ap.get(n)) for n in CLASS_NAMES) +
                     f" | {f(sg.get('recall'))} (n {sg.get('n', 0)}) | {f(sg.get('as', {}).get('face'))} | "
                     f"{f(sg.get('as', {}).get('missed'))} | {f(msg.get('recall'))} (n {msg.get('n', 0)}) | "
                     f"{r['blank']['frames_with_detections']}/{r['blank']['frames']} |")
    lines += ["", "How the real sunglasses faces of the held-out set alone were predicted (conf 0.25):", ""]
    for label, r in results.items():
        tc = r["ilc-heldout"]["true_class"]
        part = "; ".join(f"{n}: " + ", ".join(f"{k} {v:.2f}" for k, v in tc[n]["as"].items() if v)
                         for n in ("sunglasses", "mask_sunglasses") if n in tc)
        lines.append(f"* {label}: {part}")
    if commands:
        lines += ["", "Commands:", ""]
        lines += [f"* {label}: `{cmd}`" for label, cmd in commands.items()]
    return "\n".join(lines) + "\n"


def argv_line(models: dict[str, str]) -> str:
    return " ".join(f"--model {label!r}={path}" for label, path in models.items())


def render_saved(saved: dict) -> str:
    """The Markdown report from this tool's JSON output, as measured then (its machine line included)."""
    return render(saved["results"], saved.get("commands", {}), argv_line(saved["models"]), saved.get("machine"))


def readme_block(report: str, out: Path) -> str:
    """The README block: the report's tables and a link to it."""
    table = "\n".join(ln for ln in report.splitlines() if ln.startswith("|"))
    return (f"{table}\n\nFrom [`{out.as_posix()}`]({out.as_posix()}) (machine, commands and the "
            f"held-out-only breakdown there).\n")


def rename_rows(renames: dict[str, str], *tables: dict) -> tuple[dict, ...]:
    """``tables`` (results, models, commands: each keyed by row label) with each ``OLD`` label of ``renames``
    replaced by its ``NEW`` one, in place in the row order; the figures are not touched. SystemExit when an
    ``OLD`` label is not a row of the first table, or a ``NEW`` one is already a row."""
    tables = tuple(dict(t) for t in tables)
    for old, new in renames.items():
        if old not in tables[0]:
            raise SystemExit(f"--rename {old}=...: no merged row {old!r} (rows: {', '.join(tables[0])})")
        if new != old and new in tables[0]:
            raise SystemExit(f"--rename {old}={new}: a row {new!r} exists already (its figures would be lost)")
        tables = tuple({new if k == old else k: v for k, v in t.items()} for t in tables)
    return tables


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", default=[], help="LABEL=PATH (.pt or .onnx); repeat")
    ap.add_argument("--merge", nargs="+", default=[],
                    help="earlier JSON outputs of this tool whose models go into the report as measured then "
                         "(rows keep their order: merged files first, then --model)")
    ap.add_argument("--command", action="append", default=[], help="LABEL=training command; repeat")
    ap.add_argument("--rename", action="append", default=[],
                    help="OLD=NEW: give a merged row a new label (its figures stay as measured); repeat")
    ap.add_argument("--imgsz", type=int, default=None,
                    help="input size of the --model rows (default 320; each row records its own)")
    ap.add_argument("--max-images", type=int, default=None, help="first N images only (dry runs)")
    ap.add_argument("--specs", default=str(DATASETS_DIR), help="folder holding ilc-heldout.yaml and real-checks.yaml")
    ap.add_argument("--out", default="weights/real-data-ab.md")
    ap.add_argument("--readme", action="store_true",
                    help="also write the table into README.md between <!-- real-data-ab:begin/end --> markers")
    a = ap.parse_args()
    models, commands = _pair(a.model, "model"), _pair(a.command, "command")
    if not models and not a.merge:
        raise SystemExit("give --model LABEL=PATH and/or --merge FILE.json")
    results: dict = {}
    merged_models: dict = {}
    imgsz = a.imgsz
    for f in a.merge:  # one machine line covers every row: rows from another machine are refused
        old = read_report_json(f, "tools/real_ab.py", ("models", "results"), {"machine": machine()})
        if not models and a.imgsz is None:  # nothing measured now: keep the merged rows' input size
            imgsz = old.get("imgsz", imgsz)
        results.update(old["results"])
        merged_models.update(old["models"])
        commands = {**old.get("commands", {}), **commands}
    imgsz = imgsz or 320
    results, merged_models, commands = rename_rows(_pair(a.rename, "rename"), results, merged_models, commands)
    results.update({label: measure(path, imgsz, a.max_images, Path(a.specs)) for label, path in models.items()})
    # committed reports name no machine directory: every path as facewear.io.portable_paths writes it
    models, commands = portable_paths({**merged_models, **models}), portable_paths(commands)
    argv = argv_line(models)
    out = Path(a.out)
    write_text(out, render(results, commands, argv))
    write_json(out.with_suffix(".json"), {"models": models, "commands": commands, "imgsz": imgsz,
                                          "machine": machine(), "results": results})
    if a.readme:
        write_marked_block(REPO_ROOT / "README.md", "real-data-ab", readme_block(out.read_text(), out),
                           "tools/real_ab.py")
    print(out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
