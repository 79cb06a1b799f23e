"""The report's PNG plots (matplotlib's Agg canvas; no display, no pyplot state)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _figure(w: float, h: float):  # -> matplotlib.figure.Figure
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=100, layout="constrained")


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", metadata={"Software": None})
    return path


def confusion_png(
    matrix: Sequence[Sequence[int]], classes: Sequence[str], path: Path, title: str = ""
) -> Path:
    """A confusion-matrix heatmap: rows are true classes, columns predicted (row-normalised colours).

    Examples
    --------
    >>> confusion_png([[5, 1], [0, 4]], ["cat", "dog"], Path("cm.png")).name
    'cm.png'
    """
    cm = np.asarray(matrix, dtype=np.int64)
    n = len(classes)
    size = min(12.0, 4.0 + 0.45 * n)
    fig = _figure(size, size * 0.85)
    ax = fig.add_subplot()
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, float), where=rows > 0)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(
        range(n),
        [str(c) for c in classes],
        rotation=45 if n > 6 else 0,
        ha="right" if n > 6 else "center",
    )
    ax.set_yticks(range(n), [str(c) for c in classes])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    str(cm[i, j]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of true class")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def projection_png(
    points: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    path: Path,
    explained: np.ndarray | None = None,
) -> Path:
    """A 2-D scatter of embeddings, one colour per class.

    Examples
    --------
    >>> pts = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    >>> projection_png(pts, np.array([0, 1, -1]), ["a", "b"], Path("p.png")).exists()
    True
    """
    from matplotlib import colormaps

    fig = _figure(7.0, 6.0)
    ax = fig.add_subplot()
    cmap = colormaps["tab10" if len(classes) <= 10 else "tab20"]
    for c, name in enumerate(classes):
        sel = labels == c
        if sel.any():
            ax.scatter(
                points[sel, 0],
                points[sel, 1],
                s=9,
                alpha=0.7,
                color=cmap(c % cmap.N),
                label=str(name),
            )
    sel = labels < 0
    if sel.any():
        ax.scatter(points[sel, 0], points[sel, 1], s=9, alpha=0.5, color="grey", label="(no label)")
    if explained is not None:
        ax.set_xlabel(f"PC 1 ({explained[0]:.0%} of variance)")
        ax.set_ylabel(f"PC 2 ({explained[1]:.0%} of variance)")
    ax.legend(loc="best", fontsize=8, markerscale=2, ncols=2 if len(classes) > 10 else 1)
    return _save(fig, path)


def scores_png(names: Sequence[str], values: Sequence[float], metric: str, path: Path) -> Path:
    """A horizontal bar chart of one metric per head, best at the top.

    Examples
    --------
    >>> scores_png(["logreg", "knn"], [0.91, 0.87], "accuracy", Path("s.png")).exists()
    True
    """
    fig = _figure(7.0, 1.2 + 0.45 * len(names))
    ax = fig.add_subplot()
    y = np.arange(len(names))[::-1]
    ax.barh(y, values, color="#4c72b0")
    ax.set_yticks(y, list(names))
    for yi, v in zip(y, values, strict=True):
        ax.text(v, yi, f" {v:.3f}", va="center", fontsize=9)
    ax.set_xlim(0, max(1.0, max(values, default=0) * 1.1))
    ax.set_xlabel(metric)
    return _save(fig, path)


def thumbnail_png(image, path: Path, size: int = 72) -> Path:  # image: PIL.Image.Image
    """A square thumbnail; small images (e.g. 8x8 digits) are enlarged with nearest-neighbour.

    Examples
    --------
    >>> from PIL import Image
    >>> Image.open(thumbnail_png(Image.new("L", (8, 8)), Path("t.png"))).size
    (72, 72)
    """
    from PIL import Image

    img = image.convert("RGB")
    scale = size / max(img.size)
    new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    resample = Image.Resampling.NEAREST if scale > 2 else Image.Resampling.LANCZOS
    img = img.resize(new, resample)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG")
    return path


def pareto_png(
    costs: Sequence[float],
    scores: Sequence[float],
    labels: Sequence[str],
    front: Sequence[bool],
    path: Path,
    *,
    cost_label: str = "encode cost (ms per item)",
    score_label: str = "accuracy",
) -> Path:
    """Score against cost, one labelled point per feature extractor, the Pareto front joined.

    Examples
    --------
    >>> out = pareto_png([1.0, 2.0, 3.0], [0.8, 0.9, 0.85], ["a", "b", "c"],
    ...                  [True, True, False], Path("pareto.png"))
    >>> out.stat().st_size > 1000
    True
    """
    fig = _figure(7.0, 4.8)
    ax = fig.add_subplot()
    c = np.asarray(costs, float)
    s = np.asarray(scores, float)
    on = np.asarray(front, bool)
    ax.scatter(c[~on], s[~on], color="#999999", s=30, label="dominated")
    ax.scatter(c[on], s[on], color="#c44e52", s=45, label="Pareto front")
    if on.any():
        order = np.argsort(c[on])
        ax.plot(c[on][order], s[on][order], color="#c44e52", lw=1.2, alpha=0.7)
    for x, y, t in zip(c, s, labels, strict=True):
        ax.annotate(str(t), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel(cost_label)
    ax.set_ylabel(score_label)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)
