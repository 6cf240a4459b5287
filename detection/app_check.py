"""A real-browser check of the FiftyOne App that ``facewear inspect preds`` serves.

:func:`check_app` builds a tiny generated dataset (coloured squares, one
colour per class) with the predictions of a tiny colour "model"
(:class:`SquaresDetector`, a true :class:`detection.detector.Detector`), or takes
an existing FiftyOne dataset by name; launches the App on 127.0.0.1 on a free
port; opens ``http://127.0.0.1:PORT/datasets/NAME`` in headless Chromium
(Debian's ``chromium``, driven by Playwright with ``executable_path``, or by
``chromium --headless --dump-dom`` when Playwright is missing); waits until the
React app has rendered the dataset name and every prediction field name; and
saves a screenshot. ``tools/check_app.py`` is its command line.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from facewear.constants import CLASS_NAMES, default_build_dir
from facewear.data.layout import ImageMeta, write_spec
from facewear.formats import Box, ImageAnn, to_coco, yolo_lines
from facewear.io import write_json, write_text

LOG = logging.getLogger("facewear.app_check")

#: BGR colour of each class's squares (far from the grey background and from each other).
SQUARE_COLORS: tuple[tuple[int, int, int], ...] = ((40, 200, 40), (200, 120, 20), (20, 60, 230), (200, 40, 200))
BROWSER_ENV = "FACEWEAR_CHROMIUM"
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHECK_DATASET = "facewear-app-check"


# --- tiny data and a tiny "model" ----------------------------------------------------------
def make_squares_dataset(root: str | Path, n_val: int = 6, n_train: int = 2, size: int = 96, seed: int = 0) -> Path:
    """Write PNG images holding 1-3 non-overlapping filled squares (class = colour) with YOLO labels,
    COCO JSON, provenance and a spec; returns the spec path (``root/squares.yaml``)."""
    import cv2

    root = Path(root)
    rng = np.random.default_rng(seed)
    cell = size // 3
    for split, n in (("train", n_train), ("val", n_val)):
        anns, metas = [], []
        for i in range(n):
            img = np.full((size, size, 3), 128, np.uint8)
            boxes = []
            cells = rng.choice(9, size=1 + i % 3, replace=False)
            for k in cells:
                c = int(rng.integers(len(CLASS_NAMES)))
                s = int(rng.integers(cell // 2, cell - 2))
                x = int(k % 3) * cell + int(rng.integers(0, cell - s))
                y = int(k // 3) * cell + int(rng.integers(0, cell - s))
                cv2.rectangle(img, (x, y), (x + s - 1, y + s - 1), SQUARE_COLORS[c], -1)
                boxes.append(Box(x, y, x + s, y + s, CLASS_NAMES[c]))
            name = f"{split}{i:03d}.png"
            (root / "images" / split).mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(root / "images" / split / name), img):
                raise OSError(f"{root / 'images' / split / name}: cv2.imwrite failed")
            ann = ImageAnn(name, size, size, boxes)
            write_text(root / "labels" / split / f"{Path(name).stem}.txt", yolo_lines(ann))
            anns.append(ann)
            metas.append(ImageMeta(file=name, split=split, source="squares", origin=name, group=name,
                                   synthetic=bool(i % 2)))
        write_json(root / "coco" / f"{split}.json", to_coco(anns))
        write_text(root / "meta" / f"{split}.jsonl", "".join(m.to_json() + "\n" for m in metas))
    spec = root / "squares.yaml"
    write_spec(spec, root, {"train": "images/train", "val": "images/val"})
    return spec


class SquaresDetector:
    """Finds :func:`make_squares_dataset`'s squares by colour: a :class:`~detection.detector.Detector` for made-up data.

    ``confuse`` maps a class id to the id it reports instead (a deliberately wrong model);
    the score is the fraction of the box the colour fills.
    """

    def __init__(self, name: str = "squares", confuse: dict[int, int] | None = None, tol: int = 40,
                 min_side: int = 4) -> None:
        self.names: tuple[str, ...] = CLASS_NAMES
        self.name = name
        self.source = f"colour-squares detector {name!r}"
        self.confuse = dict(confuse or {})
        self.tol, self.min_side = tol, min_side

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        import cv2

        rows = []
        f = frame.astype(np.int16)
        for c, col in enumerate(SQUARE_COLORS):
            mask = (np.abs(f - np.array(col, np.int16)).max(axis=2) <= self.tol).astype(np.uint8)
            _, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            for x, y, w, h, area in stats[1:].tolist():
                if min(w, h) >= self.min_side:
                    rows.append([x, y, x + w, y + h, area / (w * h), self.confuse.get(c, c)])
        return np.asarray(rows, np.float32).reshape(-1, 6)


# --- browser ------------------------------------------------------------------------------
def find_browser(browser: str | None = None) -> str | None:
    """The Chromium binary: ``browser``, ``$FACEWEAR_CHROMIUM``, or the first of chromium/chrome on PATH."""
    for cand in (browser, os.environ.get(BROWSER_ENV), *BROWSER_NAMES):
        if cand and (shutil.which(cand) or (Path(cand).is_file() and os.access(cand, os.X_OK))):
            return shutil.which(cand) or str(cand)
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _have_playwright() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


CHROMIUM_ARGS = ("--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
                 "--disable-extensions", "--disable-background-networking", "--disable-sync",
                 "--disable-component-update", "--metrics-recording-only", "--no-default-browser-check")


#: The page's visible text plus the values of its inputs (the App shows the dataset name in an input).
PAGE_TEXT_JS = ("() => (document.body ? document.body.innerText : '') + '\\n' + "
                "Array.from(document.querySelectorAll('input, textarea')).map((e) => e.value).join('\\n')")


@dataclass
class Page:
    """One page to open: its URL, the strings it must show, and where its screenshot goes."""

    url: str
    needles: list[str]
    screenshot: Path
    found: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.found) and all(self.found.values()) and self.screenshot.is_file() \
            and self.screenshot.stat().st_size > 0


def _visit_playwright(browser: str, pages: list[Page], timeout_s: float) -> None:
    """Open each page, wait until all its needles are in the rendered text (or time out), screenshot it."""
    from playwright.sync_api import TimeoutError as PwTimeout
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=browser, headless=True, args=list(CHROMIUM_ARGS))
        try:
            for pg in pages:
                page = b.new_page(viewport={"width": 1400, "height": 900})
                page.goto(pg.url, wait_until="domcontentloaded", timeout=timeout_s * 1000)
                try:
                    page.wait_for_function(
                        f"(n) => {{ const t = ({PAGE_TEXT_JS})(); return n.every((s) => t.includes(s)); }}",
                        arg=pg.needles, timeout=timeout_s * 1000, polling=250)
                    try:  # the App's "Explore Enterprise" pop-up covers part of the grid
                        page.get_by_text("Dismiss", exact=True).click(timeout=2000)
                    except PwTimeout:
                        pass
                    page.wait_for_timeout(1500)  # let the grid draw its images
                except PwTimeout:
                    LOG.warning("%s did not show %s within %.0f s", pg.url, pg.needles, timeout_s)
                page.screenshot(path=str(pg.screenshot), full_page=False)
                text = page.evaluate(PAGE_TEXT_JS)
                pg.screenshot.with_suffix(".html").write_text(page.content())
                pg.found = {n: n in text for n in pg.needles}
                page.close()
        finally:
            b.close()


def _visit_cli(browser: str, pages: list[Page], timeout_s: float) -> None:
    """Headless Chromium without Playwright: ``--dump-dom`` and ``--screenshot`` with a virtual time budget."""
    args = [browser, "--headless", *CHROMIUM_ARGS, f"--virtual-time-budget={int(timeout_s * 1000)}",
            "--window-size=1400,900"]
    for pg in pages:
        dom = subprocess.run([*args, "--dump-dom", pg.url], capture_output=True, text=True, timeout=timeout_s + 60)
        subprocess.run([*args, f"--screenshot={pg.screenshot}", pg.url], capture_output=True, timeout=timeout_s + 60)
        pg.screenshot.with_suffix(".html").write_text(dom.stdout)
        text = dom.stdout + "\n" + dom_text(dom.stdout)
        pg.found = {n: n in text for n in pg.needles}


def dom_text(html_text: str) -> str:
    """Rough text of a DOM dump: tags dropped (no separator, as inline elements read), entities decoded."""
    import html
    import re

    return html.unescape(re.sub(r"<[^>]*>", "", html_text))


@dataclass
class AppCheck:
    """What the browser saw: the dataset page, then (when one has images) a worst-first saved view."""

    dataset: str
    pages: list[Page] = field(default_factory=list)
    driver: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.pages) and all(p.ok for p in self.pages)


def prediction_fields(ds: Any) -> list[str]:
    """The prediction fields ``inspect preds`` recorded on ``ds`` (else every Detections field but ground truth)."""
    import fiftyone as fo

    recs = (ds.info or {}).get("models") or {}
    if recs:
        return sorted(recs)
    return sorted(k for k, v in ds.get_field_schema(embedded_doc_type=fo.Detections).items() if k != "ground_truth")


def _count_text(n: int) -> str:
    """How the App writes a sample count (``1 sample``, ``1,234 samples``): the common prefix."""
    return f"{n:,} sample"


def plan_pages(ds: Any, base: str, out: Path) -> list[Page]:
    """The dataset page (name, prediction fields, sample count) and the first non-empty saved view (its name, count)."""
    pages = [Page(f"{base}/datasets/{quote(ds.name)}", [ds.name, *prediction_fields(ds), _count_text(len(ds))],
                  out / "app.png")]
    from fiftyone.core.utils import to_slug

    for name in ds.list_saved_views():
        view = ds.load_saved_view(name)
        if len(view):
            pages.append(Page(f"{base}/datasets/{quote(ds.name)}?view={quote(to_slug(name))}",
                              [name, _count_text(len(view))], out / "app-view.png"))
            break
    return pages


def check_app(name: str | None = None, port: int | None = None, out_dir: str | Path | None = None,
              browser: str | None = None, timeout_s: float = 90.0, keep: bool = False,
              use_playwright: bool | None = None) -> AppCheck:
    """Serve a dataset in the FiftyOne App on 127.0.0.1 and check it renders in headless Chromium.

    Without ``name``, a tiny squares dataset with two models' predictions
    (:class:`SquaresDetector`, one exact, one that calls ``mask_sunglasses``
    ``sunglasses``) is made under ``out_dir`` and loaded by
    :func:`detection.fiftyone_preds.run` as ``facewear-app-check`` (deleted afterwards
    unless ``keep``). Screenshots go to ``out_dir/app.png`` and ``app-view.png``
    (default ``build/app_check/``, git-ignored). Raises ``FileNotFoundError``
    when no Chromium is found.
    """
    exe = find_browser(browser)
    if exe is None:
        raise FileNotFoundError(f"no Chromium found (tried {browser or ''} ${BROWSER_ENV} {' '.join(BROWSER_NAMES)}); "
                                "install it with `apt-get install -y chromium`")
    out = Path(out_dir) if out_dir is not None else default_build_dir() / "app_check"
    out.mkdir(parents=True, exist_ok=True)

    import fiftyone as fo

    from . import fiftyone_preds as preds

    made = name is None
    if made:
        spec = make_squares_dataset(out / "data")
        ds = preds.run([SquaresDetector("squares"), SquaresDetector("squares-confused", confuse={3: 2})],
                       data=spec, name=CHECK_DATASET, no_launch=True)
    else:
        if not fo.dataset_exists(name):
            raise ValueError(f"FiftyOne dataset {name!r} not found (have {fo.list_datasets()})")
        ds = fo.load_dataset(name)
    port = port or free_port()
    res = AppCheck(dataset=ds.name, pages=plan_pages(ds, f"http://127.0.0.1:{port}", out))
    for pg in res.pages:
        pg.screenshot.unlink(missing_ok=True)
    t0 = time.perf_counter()
    session = fo.launch_app(ds, address="127.0.0.1", port=port, auto=False)
    try:
        pw = _have_playwright() if use_playwright is None else use_playwright
        res.driver = "playwright" if pw else "chromium --dump-dom"
        (_visit_playwright if pw else _visit_cli)(exe, res.pages, timeout_s)
    finally:
        res.seconds = time.perf_counter() - t0
        try:
            session.close()
        except Exception:  # noqa: BLE001  # pragma: no cover - server already gone
            pass
        if made and not keep and fo.dataset_exists(CHECK_DATASET):
            fo.delete_dataset(CHECK_DATASET)
    return res


def main(argv: list[str] | None = None) -> int:
    """Command line of :func:`check_app` (``tools/check_app.py``); exit 1 when the page lacks a name, 2 on errors."""
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", default=None, help="check this existing FiftyOne dataset (default: make a tiny one)")
    p.add_argument("--port", type=int, default=None, help="App port on 127.0.0.1 (default: a free one)")
    p.add_argument("--out", default=None, help="screenshot folder (default build/app_check)")
    p.add_argument("--browser", default=None, help=f"Chromium binary (default ${BROWSER_ENV} or chromium on PATH)")
    p.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for the App to render")
    p.add_argument("--keep", action="store_true", help="keep the generated dataset")
    p.add_argument("--no-playwright", action="store_true", help="drive chromium --headless --dump-dom directly")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        r = check_app(a.name, a.port, a.out, a.browser, a.timeout, a.keep, False if a.no_playwright else None)
    except (FileNotFoundError, ValueError) as e:
        print(f"check_app: error: {e}")
        return 2
    for pg in r.pages:
        print(f"check_app: {pg.url}")
        for s, ok in pg.found.items():
            print(f"check_app:   {'found' if ok else 'MISSING'} {s!r}")
        print(f"check_app:   screenshot {pg.screenshot}")
    print(f"check_app: {r.driver}, {r.seconds:.1f} s")
    print(f"check_app: {'OK' if r.ok else 'FAILED'}")
    return 0 if r.ok else 1
