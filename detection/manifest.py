"""``weights/manifest.json``: one entry per released model file, committed or rebuilt.

Each entry holds what a user needs to trust and run the file: name, file,
sha256, size, task, architecture, input size, precision, class names, the
training command and data spec, held-out metrics, and for ONNX files the
pre-processing and output layout for plain onnxruntime.

Only what runs each released model travels with the repository (``"committed": true``): the ``.pt`` checkpoints
and the default detector's ONNX. Every other variant (``"committed": false``, git-ignored in ``weights/``) is
rebuilt from a committed file by ``facewear export --rebuild`` (``detection.export.rebuild``); its entry says how
(``made_by``: the exact ``facewear export`` command; ``rebuild``: source file, format, what it needs) and how a
rebuilt file is checked (``rebuild.check``):

* ``sha256``: the rebuild is bit-identical, the file's ``sha256`` must match;
* ``content_sha256``: identical but for the export date ultralytics writes into the ONNX metadata; the sha256 of
  the file without that key must match;
* ``agreement``: not reproducible bit for bit (int8 calibration, exporter non-determinism): the rebuilt file's
  agreement with its source model (``rebuild.agreement``: the figure the released file reached on the same
  check samples) must be within ``tolerance``.

int8 calibration (and the QAT fine-tune) reads the built datasets, which come from ``../shared/data``
(``facewear data build`` / ``facewear data crops``): without them those variants are skipped with the reason.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from facewear.constants import (
    CLASS_NAMES,
    DEFAULT_DETECTOR,
    FRCNN_MAX_DET,
    FRCNN_NMS_IOU,
    FRCNN_SCORE_THRESH,
    WEIGHTS_DIR,
)
from facewear.io import sha256_file as sha256  # the one file checksum
from facewear.io import write_json

MANIFEST = WEIGHTS_DIR / "manifest.json"
KEEP = ("committed", "made_by", "rebuild")  # kept from the previous entry of the same name by add_entry
SHARED_NOTE = ("int8 calibration reads the built datasets (facewear data build / facewear data crops), "
               "which come from ../shared/data")

YOLO_ONNX_IO = {
    "input": {"name": "images", "shape": [1, 3, "S", "S"], "dtype": "float32",
              "preprocess": "BGR->RGB; letterbox (keep aspect, centre pad value 114) to SxS; /255; NCHW"},
    "output": {"name": "output0", "shape": [1, "4+nc", "N"],
               "layout": "rows 0-3: box cx, cy, w, h in letterboxed pixels; rows 4..: per-class scores (sigmoid); "
                         "no NMS inside: threshold, then class-wise NMS (IoU 0.45), then undo the letterbox"},
}

FRCNN_ONNX_IO = {
    "input": {"name": "images", "shape": [1, 3, "H", "W"], "dtype": "float32",
              "preprocess": "BGR->RGB; resize so the long side is input_size (aspect kept, no padding); /255; NCHW"},
    "output": {"names": ["boxes", "scores", "labels"], "shape": [["N", 4], ["N"], ["N"]],
               "layout": f"boxes x1y1x2y2 in the resized frame's pixels; scores; labels int64 class ids 0-based; "
                         f"score threshold {FRCNN_SCORE_THRESH:g}, class-wise NMS (IoU {FRCNN_NMS_IOU:g}) and the "
                         f"{FRCNN_MAX_DET}-detection cap are in the graph"},
}


def load() -> dict[str, Any]:
    return json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {"models": []}


def add_entry(file: str | Path, *, name: str, task: str, architecture: str, imgsz: int, precision: str,
              train_command: str, data: str, metrics: dict[str, Any] | None = None,
              class_names: tuple[str, ...] = CLASS_NAMES, io: dict | None = None, agreement_on: str | None = None,
              **extra: Any) -> dict[str, Any]:
    """Add or replace (by name) the entry for ``file`` (a path under ``weights/``). A ``rebuild`` record kept from
    the previous release is refreshed (:func:`refresh_rebuild`; ``agreement_on`` says what the agreement check
    ran on)."""
    f = Path(file)
    if not f.is_file():
        raise FileNotFoundError(f"{f}: weights file not found")
    entry = {"name": name, "file": f.name, "sha256": sha256(f), "bytes": f.stat().st_size, "task": task,
             "architecture": architecture, "input_size": imgsz, "precision": precision,
             "class_names": list(class_names), "train_command": train_command, "data": data,
             "metrics": metrics or {}, **({"io": io} if io else {}), **extra}
    man = load()
    old = next((m for m in man["models"] if m["name"] == name), {})
    for k in KEEP:  # how the file is shipped and rebuilt outlives a re-release
        if k in old and k not in entry:
            entry[k] = old[k]
    if str(entry.get("made_by", "")).startswith(TRAINED) and "made_by" not in extra:
        entry["made_by"] = _trained_by(entry["made_by"], train_command)
    if "rebuild" in entry and "rebuild" not in extra:  # kept from the previous release: its figures are the new file's
        entry["rebuild"] = refresh_rebuild(entry["rebuild"], f, entry["metrics"], agreement_on)
    man["models"] = [m for m in man["models"] if m["name"] != name] + [entry]
    write_json(MANIFEST, man)
    return entry


TRAINED = "trained: "  # how a checkpoint's ``made_by`` starts: its training command, then how it was released


def _trained_by(made_by: str, train_command: str) -> str:
    """A checkpoint's kept ``made_by`` with the new release's ``train_command`` (the previous release's command
    must not outlive it); the text after the command (", released by tools/release_yolo.py") is kept."""
    tail = made_by[made_by.rfind(", released by"):] if ", released by" in made_by else ""
    return f"{TRAINED}{train_command}{tail}"


def refresh_rebuild(rebuild: dict[str, Any], f: Path, metrics: dict[str, Any],
                    agreement_on: str | None = None) -> dict[str, Any]:
    """A kept ``rebuild`` record made true for the newly released ``f``: its ``content_sha256``, and the agreement
    figures from ``metrics["agreement_with_torch"]`` when the release measured them (else they are dropped, so no
    figure of the previous file survives), and its ``with`` text from ``agreement_on`` (what the check ran on)
    when given."""
    r = dict(rebuild)
    if "content_sha256" in r:
        r["content_sha256"] = content_sha256(f)
    agr = dict(r.get("agreement") or {})
    if agr:
        now = metrics.get("agreement_with_torch") or {}
        if agreement_on:
            agr["with"] = agreement_on
        if agr.get("metric") in now:
            agr["value"] = now[agr["metric"]]
            agr["released_figures"] = now
        else:
            agr.pop("released_figures", None)
        r["agreement"] = agr
    return r


def default_model(name: str = DEFAULT_DETECTOR) -> Path:
    """The file of the released model ``name`` in ``weights/manifest.json`` (default: the released detector).

    Resolved from the package's own ``weights/`` folder, so it works from any current directory. Raises
    :class:`FileNotFoundError` naming the manifest or the file when either is missing."""
    if not MANIFEST.is_file():
        raise FileNotFoundError(f"{MANIFEST}: model manifest not found; pass --model")
    entry = next((m for m in load()["models"] if m["name"] == name), None)
    if entry is None:
        raise FileNotFoundError(f"{MANIFEST}: no model named {name!r}; pass --model")
    f = WEIGHTS_DIR / entry["file"]
    if not f.is_file():
        how = ("; rebuild it with `facewear export --rebuild`" if entry.get("committed") is False
               else "; pass --model")
        raise FileNotFoundError(f"{f}: released model {name!r} listed in {MANIFEST.name} is missing{how}")
    return f


def content_sha256(path: str | Path, ignore: tuple[str, ...] = ("date",)) -> str:
    """sha256 of an ONNX file's serialised model without the metadata keys ``ignore`` (ultralytics' export date)."""
    import onnx

    m = onnx.load(str(path))
    keep = [(p.key, p.value) for p in m.metadata_props if p.key not in ignore]
    del m.metadata_props[:]
    for k, v in keep:
        m.metadata_props.add(key=k, value=v)
    return hashlib.sha256(m.SerializeToString(deterministic=True)).hexdigest()


def verify(weights_dir: str | Path | None = None) -> list[str]:
    """Names of entries whose file is present but fails its check, or missing although committed.

    Committed files and bit-identical rebuilds are checked by ``sha256``, ``content_sha256`` entries by that;
    ``agreement`` entries can only be checked by running them (``detection.export.rebuild_variants`` does), so only
    their presence counts here. A rebuilt variant that is simply absent is not an error (``facewear export
    --rebuild`` makes it)."""
    wd = Path(weights_dir) if weights_dir else WEIGHTS_DIR
    bad = []
    for m in load_from(wd)["models"]:
        f = wd / m["file"]
        if not f.is_file():
            if m.get("committed", True):
                bad.append(m["name"])
            continue
        check = (m.get("rebuild") or {}).get("check", "sha256")
        if check == "sha256" and sha256(f) != m["sha256"]:
            bad.append(m["name"])
        elif check == "content_sha256" and content_sha256(f) != m["rebuild"]["content_sha256"]:
            bad.append(m["name"])
    return bad


def load_from(weights_dir: str | Path) -> dict[str, Any]:
    f = Path(weights_dir) / "manifest.json"
    return json.loads(f.read_text()) if f.is_file() else {"models": []}


STAMPS = ".rebuilt.json"  # in weights/ (git-ignored): {variant file: {"sha256", "from", "from_sha256"}}


def read_stamps(weights_dir: str | Path) -> dict[str, dict[str, str]]:
    """What ``facewear export --rebuild`` recorded about the variants it made in ``weights_dir``: for each file its
    sha256 and the sha256 of the committed file it was made from. ``{}`` when there is no (readable) record."""
    f = Path(weights_dir) / STAMPS
    try:
        d = json.loads(f.read_text()) if f.is_file() else {}
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def stamp(weights_dir: str | Path, variant: str | Path, source: str | Path) -> None:
    """Record that ``variant`` (a file in ``weights_dir``) was just rebuilt from ``source``, so that
    :func:`stale` can tell it from a variant of an earlier release."""
    wd = Path(weights_dir)
    d = read_stamps(wd)
    v, s = wd / Path(variant).name, Path(source)
    d[v.name] = {"sha256": sha256(v), "from": s.name, "from_sha256": sha256(s)}
    write_json(wd / STAMPS, d)


def stale(weights_dir: str | Path | None = None, entries: Sequence[dict[str, Any]] | None = None) -> dict[str, str]:
    """Variants that are present in ``weights_dir`` but are not those of the current release: ``{file: why}``.

    A file left from an earlier release (say the 320 px int8 ONNX after a 416 px re-release) would otherwise pass
    as present. A present, not committed variant is current when its ``sha256`` is the manifest's (the released file
    itself), when its ``rebuild.check`` is ``content_sha256`` and that matches, or when ``facewear export --rebuild``
    made it (:func:`stamp`) from the committed source file that is there now (same sha256). Committed files and
    absent variants are not listed (:func:`verify` covers the first; :func:`rebuildable` the second)."""
    wd = Path(weights_dir) if weights_dir else WEIGHTS_DIR
    stamps = read_stamps(wd)
    out: dict[str, str] = {}
    for m in entries if entries is not None else load_from(wd)["models"]:
        f = wd / m["file"]
        r = m.get("rebuild") or {}
        if m.get("committed", True) or not r or not f.is_file():
            continue
        sha = sha256(f)
        if sha == m.get("sha256"):
            continue
        if r.get("check") == "content_sha256":
            if content_sha256(f) != r.get("content_sha256"):
                out[m["file"]] = "its content differs from the manifest's content_sha256 (an earlier release?)"
            continue
        src = wd / r.get("from", "")
        st = stamps.get(m["file"]) or {}
        if st.get("sha256") == sha and src.is_file() and st.get("from_sha256") == sha256(src):
            continue
        out[m["file"]] = (f"not the released file (sha256 differs from the manifest) and not rebuilt from the "
                          f"current {r.get('from', '?')}: left from an earlier release?")
    return out


def rebuildable(weights_dir: str | Path | None = None, names: Sequence[str] | None = None,
                missing_only: bool = True, reasons: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The manifest entries ``facewear export --rebuild`` would make: not committed, with a ``rebuild`` recipe,
    (``missing_only``) absent from ``weights_dir`` or :func:`stale` there, and (``names``) among those names or
    files. ``reasons``, when given, receives :func:`stale`'s ``{file: why}`` of that one pass."""
    wd = Path(weights_dir) if weights_dir else WEIGHTS_DIR
    out = [m for m in load_from(wd)["models"] if not m.get("committed", True) and m.get("rebuild")
           and (names is None or m["name"] in names or m["file"] in names)]
    if missing_only:
        old = stale(wd, out)  # one pass: the stamps read once, each present file hashed once
        if reasons is not None:
            reasons.update(old)
        out = [m for m in out if not (wd / m["file"]).is_file() or m["file"] in old]
    return out


def _figure(report_file: dict[str, Any], metric: str) -> float | None:
    v = report_file.get(metric)
    return None if v is None else float(v)


def check_rebuilt(entry: dict[str, Any], path: Path, report_file: dict[str, Any] | None) -> dict[str, Any]:
    """Check a rebuilt file against its manifest entry: by sha256, content sha256 or agreement (see the module)."""
    r = entry["rebuild"]
    check = r.get("check", "agreement")
    res: dict[str, Any] = {"name": entry["name"], "file": entry["file"], "check": check}
    if check == "sha256":
        res["ok"] = sha256(path) == entry["sha256"]
    elif check == "content_sha256":
        res["ok"] = content_sha256(path) == r["content_sha256"]
    if "agreement" in r and report_file is not None:  # the agreement figures, always reported when measured
        ag = r["agreement"]
        got = _figure(report_file, ag["metric"])
        res.update(metric=ag["metric"], released=ag["value"], rebuilt=got, tolerance=ag["tolerance"])
        if check == "agreement":
            res["ok"] = got is not None and got >= ag["value"] - ag["tolerance"]
        if report_file.get("detections_torch") == 0:  # nothing to match: the figure says nothing
            res["note"] = "the source model found no detection on the check samples: agreement not measured"
    res.setdefault("ok", False)
    return res
