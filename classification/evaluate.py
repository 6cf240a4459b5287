"""Accuracy, per-class recall and a confusion matrix for any classifier runtime on a crop split."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from facewear.constants import CLASS_NAMES
from facewear.io import atomic_path

from .data import eval_crops, load_split
from .runtime import Classifier


def scores(y_true: np.ndarray, y_pred: np.ndarray, names: tuple[str, ...] = CLASS_NAMES) -> dict:
    """Accuracy, per-class recall/precision and the confusion matrix (rows: truth, columns: prediction)."""
    k = len(names)
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    rec = {n: (float(cm[i, i] / cm[i].sum()) if cm[i].sum() else None) for i, n in enumerate(names)}
    prec = {n: (float(cm[i, i] / cm[:, i].sum()) if cm[:, i].sum() else None) for i, n in enumerate(names)}
    present = [r for r in rec.values() if r is not None]
    return {"n": len(y_true), "accuracy": float((y_true == y_pred).mean()) if len(y_true) else None,
            "balanced_accuracy": float(np.mean(present)) if present else None,
            "recall": rec, "precision": prec, "support": {n: int(cm[i].sum()) for i, n in enumerate(names)},
            "confusion": cm.tolist()}


def scores_by_group(y_true: np.ndarray, y_pred: np.ndarray, groups: list[str] | np.ndarray,
                    names: tuple[str, ...] = CLASS_NAMES) -> dict[str, dict]:
    """:func:`scores` of each group of samples (``groups[i]`` names sample ``i``'s group, e.g. its source label),
    in order of first appearance. Raises ValueError when the three lengths differ."""
    g = np.asarray(groups)
    if not len(y_true) == len(y_pred) == len(g):
        raise ValueError(f"lengths differ: {len(y_true)} labels, {len(y_pred)} predictions, {len(g)} groups")
    return {str(k): scores(y_true[g == k], y_pred[g == k], names) for k in dict.fromkeys(g.tolist())}


def predict_split(clf: Classifier, root: str | Path, split: str, batch: int = 256,
                  cache: dict | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(labels (N,), predicted class ids (N,), crop files relative to root)`` of ``clf`` on ``<root>/<split>``.
    ``cache`` (a dict) keeps decoded crops between calls."""
    key = (str(root), split, clf.imgsz, clf.margin)
    if cache is not None and key in cache:
        x, y, files = cache[key]
    else:
        imgs, y, files = load_split(root, split, clf.names)
        x = eval_crops(imgs, clf.imgsz, clf.margin)
        if cache is not None:
            cache[key] = (x, y, files)
    pred = np.concatenate([clf(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])
    return y, pred, files


def evaluate(clf: Classifier, root: str | Path, split: str, batch: int = 256,
             cache: dict | None = None) -> dict:
    """Score ``clf`` on ``<root>/<split>``. ``cache`` (a dict) keeps decoded crops between calls."""
    y, pred, _ = predict_split(clf, root, split, batch, cache)
    return scores(y, pred, clf.names)


def plot_confusion(res: dict, path: str | Path, title: str, names: tuple[str, ...] = CLASS_NAMES) -> None:
    """Row-normalised confusion matrix with counts, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(res["confusion"], float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{int(cm[i, j])}\n{norm[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = res["accuracy"]
    ax.set_title(f"{title}\naccuracy {acc:.3f} (n={res['n']})" if acc is not None else title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
