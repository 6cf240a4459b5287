"""``facewear export``: one verb for every model family, told apart by the file (:func:`detection.registry.sniff`).

* an ultralytics YOLO ``.pt``: :func:`detection.yolo.export.export_yolo` (ONNX fp32, fp16 and static int8, each
  checked against torch);
* a crop-classifier training checkpoint (a dict whose ``arch`` is one of ``classification.models.ARCHS``):
  ``classification.export.run`` (ONNX fp32/fp16/int8, TorchScript int8/fp16);
* a Faster R-CNN checkpoint (a dict whose ``arch`` starts with ``frcnn``): ``detection.frcnn.export.run`` (ONNX
  fp32 and fp16, a float16 checkpoint).

``facewear export --rebuild`` makes the released variants that are not committed (``weights/manifest.json``,
``"committed": false``) from the committed files and checks them against the manifest
(:func:`rebuild_variants`).
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from classification.export import ALL_FORMATS as CLS_ALL_FORMATS
from classification.export import FORMATS as CLS_FORMATS
from facewear.constants import DATASETS_DIR
from facewear.io import write_json

from . import manifest
from .manifest import WEIGHTS_DIR
from .yolo.export import PRECISIONS, export_yolo

LOG = logging.getLogger("facewear.export")


def run(model: str | None = None, formats: list[str] | tuple[str, ...] | None = None, imgsz: int | None = None,
        data: str = str(DATASETS_DIR / "facewear4.yaml"), calib: int | None = None, calib_dir: str | None = None,
        out_dir: str | None = None, check: int | None = None, bench: bool = False,
        json_out: str | None = None, qat_epochs: int = 1, rebuild: bool = False,
        force: bool = False) -> dict[str, Any] | int:
    """``facewear export``: a YOLO ``.pt`` (``export_yolo``), a Faster R-CNN checkpoint
    (``detection.frcnn.export.run``) or a crop-classifier checkpoint (``classification.export.run``), told apart
    by the file. ``None`` means each path's own default. A ``--json`` naming the model or the data spec is
    refused before anything is written.

    ``rebuild``: make every variant of ``weights/manifest.json`` that is not committed (``force``: present ones
    too) from its committed source, with the recorded command, and check each against the manifest
    (:func:`rebuild_variants`); returns 1 when a rebuilt file fails its check."""
    if rebuild:
        if model is not None:
            raise ValueError("--rebuild makes the variants listed in weights/manifest.json; drop --model")
        res = rebuild_variants(out_dir, force=force)
        if json_out:
            write_json(json_out, res)
        return 0 if res["ok"] else 1
    if model is None:
        raise ValueError("--model is required (or --rebuild)")
    pt = Path(model)
    if json_out:
        from facewear.io import check_not_inputs

        check_not_inputs([json_out], [pt, Path(data)], "--json")
    if pt.is_file() and pt.suffix == ".pt":
        from .registry import sniff

        kind = sniff(pt)  # from the header; ValueError naming the file when torch cannot read it at all
        if kind == "frcnn":
            from .frcnn.export import run as export_frcnn

            if calib_dir is not None or calib is not None:
                raise ValueError(f"{pt}: a Faster R-CNN exports no int8, so it takes no --calib / --calib-dir")
            return export_frcnn(pt, formats=formats, imgsz=imgsz, data=data, out_dir=out_dir,
                                check=4 if check is None else check, bench=bench, json_out=json_out)

        if kind == "torchscript":
            raise ValueError(f"{pt}: a TorchScript export, not a checkpoint to export from")
        if kind == "cls":
            from classification.export import run as export_classifier

            if imgsz is not None:
                raise ValueError(f"{pt}: a classifier exports at its checkpoint's imgsz; drop --imgsz")
            return export_classifier(pt, formats=formats or CLS_FORMATS, calib=calib_dir,
                                     n_calib=256 if calib is None else calib, out_dir=out_dir,
                                     check=64 if check is None else check, bench=bench, json_out=json_out,
                                     qat_epochs=qat_epochs)
    if calib_dir is not None:
        raise ValueError("--calib-dir is for classifier checkpoints; a detector calibrates on --data's train split")
    if imgsz is None:  # the size the checkpoint was trained at, as the released ONNX has (a fixed input)
        from .yolo.detector import trained_imgsz

        imgsz = (trained_imgsz(model) if Path(model).suffix == ".pt" and Path(model).is_file() else None) or 320
    return export_yolo(model, formats=PRECISIONS if formats is None else formats, imgsz=imgsz,
                       data=data, calib=200 if calib is None else calib, out_dir=out_dir,
                       check=8 if check is None else check, bench=bench, json_out=json_out)


# --- facewear export --rebuild ---------------------------------------------------------------
def _export(src: Path, formats: list[str], out: Path, qat_epochs: int = 1) -> dict[str, Any]:
    from .export import run as export

    return export(str(src), formats=formats, out_dir=str(out), json_out=str(out / f"{src.stem}.rebuild.json"),
                  qat_epochs=qat_epochs)


def rebuild_variants(weights_dir: str | Path | None = None, names: Sequence[str] | None = None, force: bool = False,
            verbose: bool = True) -> dict[str, Any]:
    """Make the variants that are not committed from their committed source (``facewear export --rebuild``).

    One ``facewear export`` call per source file and QAT setting, written into ``weights_dir`` (default
    ``weights/``), its report into ``<stem>.rebuild.json`` there; each file is then checked against its entry
    (``manifest.check_rebuilt``). ``force`` rebuilds present files too. A variant that cannot be made (no calibration
    data without ``../shared``, a failed export) is listed under ``skipped`` with the reason and the run goes on.
    Returns ``{"checked": [...], "skipped": {file: reason}}``; ``ok`` is False when a rebuilt file fails its check."""
    wd = Path(weights_dir) if weights_dir else WEIGHTS_DIR
    why_stale: dict[str, str] = {}
    todo = manifest.rebuildable(wd, names, missing_only=not force, reasons=why_stale)
    if verbose:
        for f, why in why_stale.items():
            print(f"  stale  {f:<32} {why}: rebuilding it")
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for m in todo:
        r = m["rebuild"]
        groups.setdefault((r["from"], int(r.get("qat_epochs", 1))), []).append(m)
    checked: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for (src, qat), entries in groups.items():
        srcf = wd / src
        if not srcf.is_file():
            for m in entries:
                skipped[m["file"]] = f"{srcf} (the committed source) not found"
            continue
        formats = [m["rebuild"]["format"] for m in entries]
        try:
            rep = _export(srcf, formats, wd, qat)
        except (FileNotFoundError, ValueError, RuntimeError) as e:
            # one format's missing data (int8 calibration) must not cost the others: retry them one by one
            rep = {"files": {}, "skipped": {}}
            for m in entries:
                fmt = m["rebuild"]["format"]
                try:
                    rep["files"].update(_export(srcf, [fmt], wd, qat)["files"])
                except (FileNotFoundError, ValueError, RuntimeError) as e1:
                    need = f" (needs {m['rebuild']['needs']})" if m["rebuild"].get("needs") else ""
                    skipped[m["file"]] = f"{type(e1).__name__}: {str(e1).splitlines()[0]}{need}"
            LOG.info("rebuild %s %s: %s; retried one format at a time", src, formats, e)
        for m in entries:
            fmt = m["rebuild"]["format"]
            key = {"onnx-fp16": "onnx-fp16"}.get(fmt, fmt)
            f = wd / m["file"]
            if m["file"] in skipped:
                continue
            if not f.is_file():
                skipped[m["file"]] = str((rep.get("skipped") or {}).get(fmt) or "export made no file")
                continue
            c = manifest.check_rebuilt(m, f, (rep.get("files") or {}).get(key))
            if c["ok"]:  # made from the committed file that is there now: not stale (manifest.stale)
                manifest.stamp(wd, f, srcf)
            checked.append(c)
    res = {"checked": checked, "skipped": skipped, "ok": all(c["ok"] for c in checked)}
    if verbose:
        for c in checked:
            fig = (f"  {c['metric']} {c['rebuilt']:.4g} (released {c['released']:.4g}, tolerance {c['tolerance']:g})"
                   if c.get("metric") and c.get("rebuilt") is not None else "")
            print(f"{'ok' if c['ok'] else 'DIFFERS':>7}  {c['file']:<32} check {c['check']}{fig}"
                  + (f"  ({c['note']})" if c.get("note") else ""))
        for f, why in skipped.items():
            print(f"skipped  {f:<32} {why}")
        if not todo:
            print(f"nothing to rebuild: every variant in {wd / 'manifest.json'} is present and current "
                  "(--force rebuilds)")
    return res


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rebuild", action="store_true",
                   help="make the weight variants that are not committed (weights/manifest.json) from the committed "
                        "files and check them against the manifest; int8 needs the datasets built from ../shared")
    p.add_argument("--force", action="store_true", help="--rebuild: also remake the variants already present")
    p.add_argument("--model", default=None, help="ultralytics .pt checkpoint, a Faster R-CNN checkpoint "
                   "(ONNX fp32/fp16; torch-fp16: a float16 checkpoint) or a crop-classifier checkpoint")
    p.add_argument("--formats", nargs="+", default=None, choices=PRECISIONS + CLS_ALL_FORMATS,
                   metavar="FORMAT", help=f"detector: {' '.join(PRECISIONS)} (default all); classifier: "
                   f"{' '.join(CLS_ALL_FORMATS)} (default all but torch-int8-qat, which fine-tunes; fp32/fp16/int8 "
                   "mean the ONNX ones)")
    p.add_argument("--imgsz", type=int, default=None,
                   help="detector input size (default: the .pt's training size, else 320); a classifier keeps its "
                        "checkpoint's")
    p.add_argument("--data", default=str(DATASETS_DIR / "facewear4.yaml"),
                   help="detector: spec whose train split calibrates int8")
    p.add_argument("--calib", type=int, default=None, help="calibration images (detector 200, classifier 256)")
    p.add_argument("--calib-dir", default=None, metavar="DIR",
                   help="classifier: crop folder that calibrates int8 (a crop-dataset root uses train to "
                        "calibrate, val to check; default $FACEWEAR_BUILD/crops)")
    p.add_argument("--out-dir", default=None, help="where the exports go (default: beside the .pt; "
                                                           "--rebuild: the weights folder, default weights/)")
    p.add_argument("--check", type=int, default=None,
                   help="samples for the agreement check (detector 8 images, classifier 64 crops)")
    p.add_argument("--bench", action="store_true",
                   help="also time each export (detector: torch too, 1 and 2 threads; classifier: batch 1, 1 thread)")
    p.add_argument("--qat-epochs", type=int, default=1,
                   help="classifier torch-int8-qat: epochs of quantization-aware fine-tuning on the train crops")
    p.add_argument("--json", dest="json_out", default=None,
                   help="report file (classifier default: <out-dir>/<stem>.export.json)")
