"""``facewear demo``: the main job on media the project makes itself (no ../shared, no network).

It sits with the detectors because its last step runs the released detector through ``facewear predict``; the
data steps it runs first are ``facewear.data``'s.

Until a trained detector is committed, the demo runs the data tools end to
end on a small demo set:

1. **media**: the public-domain astronaut portrait shipped inside
   scikit-image (``skimage.data.astronaut()``), plus flipped, rescaled,
   darkened and multi-face scene variants, annotated in Pascal VOC;
2. **convert**: VOC -> YOLO -> COCO and back, checking the round trip;
3. **build**: the four-class dataset with composites drawn from the
   project's procedural masks and sunglasses, exactly as ``facewear data
   build`` does on the real data;
4. **stats** and a **contact sheet** of every class, plus a summary table.

Everything goes under ``build/demo`` (git-ignored) or ``--out``.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import logging
from pathlib import Path

import cv2
import numpy as np
import yaml

from facewear.constants import CLASS_NAMES, default_build_dir
from facewear.data.sheets import contact_sheet
from facewear.formats import Box, ImageAnn, write_voc
from facewear.io import write_image, write_text

LOG = logging.getLogger("facewear.demo")
DEMO_SOURCE = "demo-photos"


def astronaut_face() -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The astronaut photo (BGR) and its face box, found by OpenCV's Haar cascade (fallback: a fixed box)."""
    from skimage import data

    img = np.ascontiguousarray(data.astronaut()[..., ::-1])
    box = (165.0, 55.0, 275.0, 190.0)  # measured once on this image; used if the cascade finds nothing
    try:
        casc = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        faces = casc.detectMultiScale(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), 1.1, 5, minSize=(60, 60))
        if len(faces):
            x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
            # Haar boxes are tight on brows..mouth; annotated faces run forehead..chin
            box = (float(x), float(y - 0.12 * h), float(x + w), float(y + 1.1 * h))
    except (AttributeError, cv2.error):
        pass
    return img, box


def make_demo_media(root: Path) -> list[ImageAnn]:
    """Write the demo photos as a VOC source ``<root>/demo-photos/{images,annotations}``."""
    img, (x1, y1, x2, y2) = astronaut_face()
    h, w = img.shape[:2]
    face = lambda a, b, c, d: Box(a, b, c, d, "without_mask")  # noqa: E731  (the public sets' label)
    shots: list[tuple[str, np.ndarray, list[Box]]] = [
        ("astronaut", img, [face(x1, y1, x2, y2)]),
        ("astronaut_flip", img[:, ::-1].copy(), [face(w - x2, y1, w - x1, y2)]),
        ("astronaut_dark", np.clip(img * 0.45, 0, 255).astype(np.uint8), [face(x1, y1, x2, y2)]),
    ]
    s = 0.6
    small = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    shots.append(("astronaut_small", small, [face(x1 * s, y1 * s, x2 * s, y2 * s)]))
    # a multi-face scene: several astronauts at different scales on one canvas
    canvas = np.full((480, 900, 3), (120, 110, 100), np.uint8)
    boxes = []
    for k, (sc, ox, oy) in enumerate(((0.55, 10, 60), (0.4, 320, 200), (0.7, 520, 30))):
        tile = cv2.resize(img, None, fx=sc, fy=sc, interpolation=cv2.INTER_AREA)
        th, tw = tile.shape[:2]
        th, tw = min(th, 480 - oy), min(tw, 900 - ox)
        canvas[oy:oy + th, ox:ox + tw] = tile[:th, :tw] if k != 1 else tile[:th, ::-1][:, :tw]
        bx1, bx2 = (x1 * sc, x2 * sc) if k != 1 else (tw - x2 * sc, tw - x1 * sc)
        boxes.append(face(ox + bx1, oy + y1 * sc, ox + bx2, oy + y2 * sc))
    shots.append(("astronaut_crowd", canvas, boxes))
    anns = []
    src = root / DEMO_SOURCE
    for name, im, bxs in shots:
        write_image(src / "images" / f"{name}.jpg", im, quality=95)
        ann = ImageAnn(f"{name}.jpg", im.shape[1], im.shape[0], bxs)
        write_voc(ann, src / "annotations" / f"{name}.xml")
        anns.append(ann)
    return anns


DEMO_RECIPE = {
    "seed": 0,
    "val_fraction": 0.3,
    "near_duplicate_hamming": 6,
    "min_face": 24,
    "sources": {DEMO_SOURCE: {"variants": [
        {"name": "sg", "p_face": {"sunglasses": 1.0}},
        {"name": "mask", "p_face": {"mask": 1.0}},
        {"name": "msg", "p_face": {"mask+sunglasses": 1.0}},
    ]}},
}


def make_demo_video(built: Path, out: Path, fps: int = 10, size: tuple[int, int] = (640, 360)) -> Path:
    """A short 640x360 video from the demo dataset's images (each held for half a second)."""
    from facewear.io import list_images

    frames = [p for p in list_images(built / "images") if "crowd" not in p.name][:8]
    out.parent.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for p in frames:
        img = cv2.imread(str(p))
        h, w = img.shape[:2]
        r = min(size[0] / w, size[1] / h)
        im = cv2.resize(img, (int(w * r), int(h * r)))
        canvas = np.full((size[1], size[0], 3), 90, np.uint8)
        y0, x0 = (size[1] - im.shape[0]) // 2, (size[0] - im.shape[1]) // 2
        canvas[y0:y0 + im.shape[0], x0:x0 + im.shape[1]] = im
        for _ in range(fps // 2):
            vw.write(canvas)
    vw.release()
    return out


def detect_demo(model: Path, out_dir: Path, media: list[Path]) -> dict[str, dict]:
    """Run the committed detector on each demo source: annotated output, crops per class, JSON."""
    from .predict import run as predict

    results = {}
    for src in media:
        name = src.stem
        results[name] = predict(source=str(src), model=str(model), save=str(out_dir / "annotated" / name),
                                save_crops=str(out_dir / "crops"), save_json=str(out_dir / f"{name}.json"),
                                track=src.suffix.lower() in (".mp4", ".avi"), progress=False)
    return results


def run(out: str | None = None, workers: int = 1, model: str | None = None) -> dict:
    """Make the demo media, convert it, build a four-class demo dataset, write stats and a contact sheet;
    then, when a trained detector is committed, detect and crop faces in the demo photos and video."""
    from facewear.data import build, convert, stats

    out_dir = Path(out) if out else default_build_dir() / "demo"
    raw = out_dir / "raw"
    anns = make_demo_media(raw)
    src = raw / DEMO_SOURCE
    # convert round trip: VOC -> YOLO -> COCO -> VOC
    conv = out_dir / "convert"
    convert.run("voc", "yolo", str(src / "images"), str(src / "annotations"), str(conv / "yolo"))
    convert.run("yolo", "coco", str(src / "images"), str(conv / "yolo"), str(conv / "coco.json"))
    convert.run("coco", "voc", str(src / "images"), str(conv / "coco.json"), str(conv / "voc"))
    recipe = out_dir / "demo.recipe.yaml"
    write_text(recipe, yaml.safe_dump(DEMO_RECIPE, sort_keys=False))
    with contextlib.redirect_stdout(io.StringIO()):  # build prints its summary as JSON; the demo prints a table
        summary = build.run(data_root=str(raw), out=str(out_dir / "built"), specs=str(out_dir), recipe=str(recipe),
                            corrections=str(out_dir / "no-corrections.csv"), workers=workers,
                            skip_heldout=True, sources=[DEMO_SOURCE])
    stats.run(data=[str(out_dir / "facewear4.yaml")], out=str(out_dir / "stats.md"), plot=str(out_dir / "stats.png"))
    contact_sheet(out_dir / "built" / "facewear4", out_dir / "contact_sheet.png")
    counts = summary["facewear4"]["train+val"]
    print("\nfacewear demo: boxes per class (train+val)")
    print(f"{'class':<18}{'boxes':>7}")
    for name in CLASS_NAMES:
        print(f"{name:<18}{counts.get(name, 0):>7}")
    print(f"\n{len(anns)} demo photos -> {out_dir}\n  spec: {out_dir / 'facewear4.yaml'}\n"
          f"  contact sheet: {out_dir / 'contact_sheet.png'}\n  stats: {out_dir / 'stats.md'}")
    from facewear.constants import default_data_root

    if model:
        mpath = Path(model)
    else:
        from .manifest import default_model

        try:
            mpath = default_model()
        except FileNotFoundError as e:
            print(f"\n(no released detector: {e}; skipped the detection part of the demo)")
            return summary
    if not mpath.is_file():
        print(f"\n(no detector at {mpath}: skipped the detection part of the demo)")
        return summary
    built = out_dir / "built" / "facewear4"
    video = make_demo_video(built, out_dir / "media" / "demo_video.mp4")
    media = [built / "images", video]  # the photos (with drawn masks and sunglasses) and the video
    root = default_data_root()
    if root is not None and (root / "videos").is_dir():
        media += sorted((root / "videos").glob("*.mp4"))
    det = detect_demo(mpath, out_dir / "detect", [m for m in media if m.exists()])
    print(f"\nfacewear demo: detections by {mpath.name} (crops in {out_dir / 'detect' / 'crops'})")
    print(f"{'source':<22}{'frames':>7}" + "".join(f"{n:>17}" for n in CLASS_NAMES) + f"{'tracks':>8}{'crops':>7}")
    for name, sm in det.items():
        per = sm.get("detections", {})
        frames = sm.get("frames", 0) or sm.get("images", 0)
        tracks = str(sum(sm["tracks"].values())) if "tracks" in sm else "-"
        print(f"{name:<22}{frames:>7}" + "".join(f"{per.get(n, 0):>17}" for n in CLASS_NAMES)
              + f"{tracks:>8}{sm.get('crops', 0):>7}")
    print("Class columns count detections in every frame. Videos are tracked (ByteTrack): one crop per track, under\n"
          "the class voted over its frames. demo_video shows one astronaut at one place in every frame, with masks\n"
          "and sunglasses drawn on in turn, so it is one face followed through the video: one track, one crop.")
    summary["detect"] = det
    return summary


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None, help="output folder (default: build/demo)")
    p.add_argument("--workers", type=int, default=1, help="processes for the build")
    p.add_argument("--model", default=None,
                   help="detector (default: the released detector of weights/manifest.json, when present)")
