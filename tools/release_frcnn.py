#!/usr/bin/env python3
"""Release a trained Faster R-CNN run into ``weights/``: copy, export, validate, manifest, README block.

    python tools/release_frcnn.py --run runs/frcnn/mnv2-320 --name frcnn-mnv2-facewear4 \\
        --train-command "facewear train frcnn --epochs 2 --fraction 0.5 --imgsz 320 --half --name mnv2-320"

``best.pt`` (float16 weights when trained with ``--half``) becomes ``weights/<name>.pt``; ``facewear export``
writes ``<name>-fp16.onnx`` beside it (float16 weights, float32 compute), checked against torch. The fp32 ONNX file
(~26 MB, over the repository's 25 MB per-file limit, and computing the same as the fp16-weight file) is not
shipped: ``facewear export --model weights/<name>.pt --formats fp32`` makes it. ``facewear val`` measures the
checkpoint on the held-out real set and the synthetic val split, and the ONNX file on the held-out set. When
the run's fp32 ``last.pt`` is the same epoch as ``best.pt``, it is measured on the held-out set too, so the cost of
storing float16 weights is a measured figure. Every number written comes from this run, on this machine.

Release gate (``facewear.gate``, as in ``tools/release_yolo.py``): ``best.pt`` must match or beat the released
model (``--against``, default the entry named ``--name``) on held-out face and mask AP50 and real sunglasses recall
before it is copied; the released model's figures come from its manifest entry, and those it did not record (the
first Faster R-CNN release kept no real-check recall) are measured on its file. ``--force`` overrides and is
recorded.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from release_yolo import add_gate_args, gate_detector, held_table, real_recall, released_entry, stored

from facewear.constants import DATASETS_DIR, REPO_ROOT, WEIGHTS_DIR
from facewear.io import (
    OverwriteError,
    check_not_inputs,
    portable_checkpoint,
    portable_paths,
    write_json,
    write_marked_block,
)
from facewear.metrics import MAP50, DetMetrics


def _head(m: dict) -> dict:
    return DetMetrics.from_json(m).head()


def training_record(ck: dict) -> dict:
    """What the CPU allowed, from the checkpoint: images seen, iterations, per-epoch history and timing."""
    import math

    from detection.frcnn.train import YoloDetDataset
    from facewear.data.layout import load_spec

    a = ck["args"]
    spec = load_spec(a["data"])
    n = len(YoloDetDataset(spec, "train", a["imgsz"], fraction=a["fraction"], seed=a["seed"]))
    n_all = len(YoloDetDataset(spec, "train", a["imgsz"]))
    hist = ck["metrics"]["history"]
    iters = math.ceil(n / a["batch"])
    s_it = sum(h["seconds"] for h in hist) / (len(hist) * iters)
    return {"train_images": n, "train_images_all": n_all, "batch": a["batch"], "imgsz": a["imgsz"],
            "init": Path(a["init"]).name if a.get("init") not in (None, "imagenet", "none") else a.get("init"),
            "start": ck.get("start"),
            "freeze": a["freeze"], "epochs": len(hist), "iterations_per_epoch": iters, "max_val_images":
            a["max_val_images"], "seconds_per_iteration_with_val": round(s_it, 2),
            "full_epoch_minutes_estimate": round(s_it * math.ceil(n_all / a["batch"]) / 60), "history": hist}


def init_identity(init: str | None, pt: Path, released: str) -> dict:
    """``{"init_sha256": ...}`` of the checkpoint a fine-tune started from (``--init``), for runs whose checkpoint
    does not carry it (``facewear train frcnn`` records ``init_sha256`` in its args since 2026-11-30): when
    ``init`` is the file being released over (``pt``), the sha256 comes from the manifest entry ``released`` (the
    file on disk may already be another); otherwise from the file itself (relative paths: from the repository
    root, where the release commands run). Empty for an ImageNet or scratch start, or an ``init`` file that is no
    longer there."""
    from facewear.io import sha256_file

    if init in (None, "imagenet", "none"):
        return {}
    p = Path(init) if Path(init).is_absolute() else REPO_ROOT / init
    if p.resolve() == pt.resolve():
        e = released_entry(released, fallback_default=False)
        return {"init_sha256": e["sha256"]} if e and e.get("sha256") else {}
    return {"init_sha256": sha256_file(p)} if p.is_file() else {}


def agreement_with(pt: Path, ag: dict, samples_from: str) -> str:
    """What the fp16 ONNX agreement check ran on, in words, for the manifest's ``rebuild.agreement.with``:
    ``samples_from`` is ``detection.frcnn.export.sample_frames``' description of the frames."""
    return f"torch model of {pt.name} on {ag['samples']} frames: {samples_from}"


def recheck_export(name: str, data: str | None = None, check: int = 4) -> dict:
    """Check the released ``<name>-fp16.onnx`` against ``<name>.pt`` again (``facewear export``'s agreement check:
    torch and onnxruntime on the same labelled sample frames of ``data``, default the built dataset), and write it
    into ``weights/<name>.export.json`` and the ONNX entry's ``agreement_with_torch`` in the manifest. The files
    themselves are not touched. Returns the check; SystemExit when a file or the manifest entry is missing."""
    from detection import manifest
    from detection.frcnn.export import agreement, onnx_forward, sample_frames, torch_forward
    from detection.frcnn.model import load_checkpoint

    pt, onnx16 = WEIGHTS_DIR / f"{name}.pt", WEIGHTS_DIR / f"{name}-fp16.onnx"
    for f in (pt, onnx16):
        if not f.is_file():
            raise SystemExit(f"{f}: not found (release first, or facewear export --rebuild)")
    man = manifest.load()
    entry = next((m for m in man["models"] if m["name"] == f"{name}-fp16-onnx"), None)
    if entry is None:
        raise SystemExit(f"{manifest.MANIFEST}: no entry {name}-fp16-onnx")
    net, meta = load_checkpoint(pt)
    imgsz = int(meta["imgsz"])
    samples, samples_from = sample_frames(data or str(DATASETS_DIR / "facewear4.yaml"), imgsz, check)
    ag = agreement(torch_forward(net), onnx_forward(onnx16), samples)
    report = {"model": str(pt), "arch": meta["arch"], "imgsz": imgsz,
              "files": {"fp16": {"file": str(onnx16), "bytes": onnx16.stat().st_size, **ag}}, "skipped": {},
              "samples_from": samples_from}
    write_json(WEIGHTS_DIR / f"{name}.export.json", portable_paths(report))
    entry.setdefault("metrics", {})["agreement_with_torch"] = ag
    if "rebuild" in entry:  # the rebuild check compares against these figures: refresh them too
        entry["rebuild"] = manifest.refresh_rebuild(entry["rebuild"], onnx16, {"agreement_with_torch": ag},
                                                    agreement_with(pt, ag, samples_from))
    write_json(manifest.MANIFEST, man)
    print(f"{onnx16.name}: {ag['detections_matched'] * 100:.1f}% of {ag['detections_torch']} torch detections "
          f"matched on {ag['samples']} frames, max box diff {ag['max_box_diff']:.3g} px")
    return ag


def block(m: dict) -> str:
    """The README block: per-class table, ONNX and fp16 figures, and the training record, all from ``m``."""
    out = [held_table(m["ilc-heldout"], m["facewear4-val"])]
    extra = []
    if "ilc-heldout-onnx-fp16" in m:
        o = m["ilc-heldout-onnx-fp16"]
        extra.append(f"ONNX (fp16 weights) on the held-out set: mAP50 {o['mAP50']:.3f}, mAP50-95 {o['mAP50-95']:.3f}.")
    c = m.get("fp16_storage_cost")
    if c:
        extra.append(f"Storing float16 weights: held-out mAP50 {c['ilc-heldout-fp16']['mAP50']:.4f} vs "
                     f"{c['ilc-heldout-fp32']['mAP50']:.4f} with the fp32 checkpoint of the same epoch.")
    rc = real_recall(m.get("real-checks")).get("real-checks-recall")
    if rc:
        extra.append("Real checks (`datasets/real-checks.yaml`), recall at conf 0.25: "
                     + ", ".join(f"{n} {v:.3f}" for n, v in rc.items() if v is not None) + ".")
    out.append(" ".join(extra) + "\n")
    t = m.get("training")
    if t:
        init = t.get("init")
        sha = f"sha256 {t['init_sha256'][:12]}; " if t.get("init_sha256") else ""
        was = str(t.get("start") or "")
        if was.startswith(f"{init} (") and was.endswith(")"):  # "<file> (epoch 2 at 320 px, ...)": the file once
            was = was[len(init) + 2:-1]
        began = (f"Fine-tuned from `{init}` ({sha}{was}). " if init not in (None, "imagenet", "none") else
                 f"Started from {t.get('start')}. " if t.get("start") else "")
        out.append(f"Training record (from the checkpoint; this machine): {began}{t['train_images']} of the "
                   f"{t['train_images_all']} training images, {t['epochs']} epoch{'s' if t['epochs'] != 1 else ''} "
                   f"of {t['iterations_per_epoch']} "
                   f"iterations at batch {t['batch']}, {t['imgsz']} px, first {t['freeze']} MobileNetV2 stages frozen. "
                   f"About {t['seconds_per_iteration_with_val']} s per iteration (val pass included), so one epoch "
                   f"over all {t['train_images_all']} images would take about "
                   f"{t['full_epoch_minutes_estimate']} min.\n")
        vn = f"{t['max_val_images']} evenly spaced" if t.get("max_val_images") else "all"
        out.append(f"| epoch | train loss | val mAP50 ({vn} synthetic val images) | val mAP50-95 | minutes |\n"
                   "|---:|---:|---:|---:|---:|\n"
                   + "".join(f"| {h['epoch'] + 1} | {h['loss']:.3f} | {h['mAP50']:.3f} | {h['mAP50-95']:.3f} | "
                             f"{h['seconds'] / 60:.0f} |\n" for h in t["history"]))
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=None,
                    help="facewear train frcnn run folder (holds weights/best.pt); required unless --recheck-export")
    ap.add_argument("--name", default="frcnn-mnv2-facewear4")
    ap.add_argument("--train-command", default=None,
                    help="the training command (required unless --readme-only or --recheck-export)")
    ap.add_argument("--readme-only", action="store_true",
                    help="re-render the README block from weights/<name>.metrics.json (adding the training record "
                         "from --run's best.pt when missing); measures nothing")
    ap.add_argument("--recheck-export", action="store_true",
                    help="re-run the fp16 ONNX agreement check of the released files (torch vs onnxruntime on "
                         "labelled frames) and record it in the manifest and <name>.export.json; measures nothing else")
    ap.add_argument("--max-images", type=int, default=None, help="evaluate on N evenly spaced images only (dry runs)")
    add_gate_args(ap)
    a = ap.parse_args()

    import torch

    from detection import manifest, val
    from detection.frcnn.export import run as export

    if a.recheck_export:
        if a.readme_only:
            raise SystemExit("--recheck-export and --readme-only are separate steps: run one at a time")
        recheck_export(a.name)
        return 0
    if not a.run:
        raise SystemExit("--run is required (the facewear train frcnn run folder)")
    run = Path(a.run)
    best, last = run / "weights" / "best.pt", run / "weights" / "last.pt"
    mfile = WEIGHTS_DIR / f"{a.name}.metrics.json"
    if a.readme_only:
        if not mfile.is_file():
            raise SystemExit(f"{mfile}: not found (release first)")
        raw = json.loads(mfile.read_text())
        metrics = portable_paths(raw)  # releases before 2026-11-30 wrote this machine's paths
        if "training" not in metrics and best.is_file():
            metrics["training"] = training_record(torch.load(best, map_location="cpu", weights_only=False))
        if metrics != raw:
            write_json(mfile, metrics)
        write_marked_block(REPO_ROOT / "README.md", a.name, block(metrics), "tools/release_frcnn.py")
        return 0
    if not a.train_command:
        raise SystemExit("--train-command is required")
    if not best.is_file():
        raise SystemExit(f"{best}: not found")
    ck = torch.load(best, map_location="cpu", weights_only=False)
    record = training_record(ck)
    pt = WEIGHTS_DIR / f"{a.name}.pt"
    record.update({"init_sha256": ck["args"]["init_sha256"]} if ck["args"].get("init_sha256") else
                  init_identity(ck["args"].get("init"), pt, a.name))
    imgsz, epoch = int(ck["imgsz"]), int(ck["epoch"])
    half, arch, train_args, start = bool(ck.get("half")), ck["arch"], ck["args"], ck.get("start")
    del ck
    try:
        check_not_inputs([pt], [best], "--name")  # a run inside weights/ must not be copied onto itself
    except OverwriteError as e:
        raise SystemExit(str(e)) from None
    held_data, synth_data = str(DATASETS_DIR / "ilc-heldout.yaml"), str(DATASETS_DIR / "facewear4.yaml")
    kw = dict(imgsz=imgsz, max_images=a.max_images, spread=True)
    # the gate's figures are measured on the run's checkpoint, before anything in weights/ is touched
    gate_plots = run / "release-plots" / f"{a.name}-heldout"
    held = val.run(str(best), data=held_data, plots_dir=str(gate_plots), **kw)
    real_spec = DATASETS_DIR / "real-checks.yaml"
    real = val.run(str(best), data=str(real_spec), **kw) if real_spec.is_file() else None
    gate_record = gate_detector(held, real, released_entry(a.against or a.name, fallback_default=False),
                                dict(max_images=a.max_images, spread=True), a)
    for r in (held, real):
        if r is not None:
            r["model"] = str(pt)
    portable_checkpoint(best, pt, ("args",))  # best.pt with no machine path in its training arguments
    if gate_plots.is_dir():
        shutil.copytree(gate_plots, WEIGHTS_DIR / "plots" / f"{a.name}-heldout", dirs_exist_ok=True)
    ex = export(str(pt), formats=["fp16"], json_out=str(WEIGHTS_DIR / f"{a.name}.export.json"))

    synth = val.run(str(pt), data=synth_data, split="val", plots_dir=str(WEIGHTS_DIR / "plots" / f"{a.name}-val"),
                    **kw)
    metrics: dict = {"epoch": epoch, "imgsz": imgsz, "train_args": train_args,
                     "ilc-heldout": stored(held), "facewear4-val": stored(synth), "training": record,
                     "gate": gate_record}
    if real is not None:
        metrics["real-checks"] = stored(real)
    onnx16 = WEIGHTS_DIR / f"{a.name}-fp16.onnx"
    exported = "fp16" in ex["files"]  # False when the export was skipped (the report says why)
    held_onnx = val.run(str(onnx16), data=held_data, **kw) if exported else None
    if held_onnx:
        metrics["ilc-heldout-onnx-fp16"] = _head(held_onnx)
    if half and last.is_file():
        lk = torch.load(last, map_location="cpu", weights_only=False)
        same = int(lk["epoch"]) == epoch
        del lk
        if same:
            full = val.run(str(last), data=held_data, **kw)
            metrics["fp16_storage_cost"] = {
                "fp32_checkpoint": str(last), "ilc-heldout-fp32": _head(full), "ilc-heldout-fp16": _head(held),
                "mAP50_delta": round(held[MAP50] - full[MAP50], 4)}
    write_json(mfile, portable_paths(metrics))  # a committed report: repository-relative paths

    common = dict(task="detect", architecture=arch, imgsz=imgsz, train_command=a.train_command,
                  data="datasets/facewear4.yaml", epoch=epoch, start=start,
                  **({"init_sha256": record["init_sha256"]} if record.get("init_sha256") else {}))
    manifest.add_entry(pt, name=a.name, precision="fp16 weights (checkpoint dict, loaded in fp32)" if half else "fp32",
                       metrics={"ilc-heldout": _head(held),
                                "ilc-heldout-AP50": DetMetrics.from_json(held).ap50(),
                                "facewear4-val-AP50": DetMetrics.from_json(synth).ap50(),
                                **real_recall(real),
                                **({"fp16_storage_cost": metrics["fp16_storage_cost"]}
                                   if "fp16_storage_cost" in metrics else {})},
                       runtime="torch", gate=gate_record, **common)
    if exported:
        ag = {k: v for k, v in ex["files"]["fp16"].items() if k not in ("file", "bytes")}
        m = {"agreement_with_torch": ag}
        if held_onnx:
            m["ilc-heldout"] = _head(held_onnx)
        manifest.add_entry(onnx16, name=f"{a.name}-fp16-onnx", precision="fp16 weights, fp32 compute", metrics=m,
                           io=manifest.FRCNN_ONNX_IO, exported_from=pt.name, runtime="onnxruntime",
                           agreement_on=agreement_with(pt, ag, ex.get("samples_from", "frames of the export check")),
                           **common)

    write_marked_block(REPO_ROOT / "README.md", a.name, block(metrics), "tools/release_frcnn.py")
    print(f"released {a.name}: held-out mAP50 {held['mAP50']:.4f}, synthetic val mAP50 {synth['mAP50']:.4f}"
          + (f", ONNX fp16 held-out {held_onnx['mAP50']:.4f}" if held_onnx else ""))
    print(json.dumps(metrics.get("fp16_storage_cost", {}), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
