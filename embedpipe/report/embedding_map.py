"""The interactive embedding map: a 2-D projection of the stores' items (UMAP when
``umap-learn`` is installed, else PCA or t-SNE from scikit-learn), cached by the stores'
identity, drawn on a canvas by a self-contained page (no CDN): pan, zoom, colour by label,
prediction, correctness or curate issue, hover for the text, click for neighbours and issues,
shift-drag to select a box of items and export their ids.

Used by ``embedpipe curate --out``, the ``curate`` pipeline stage and ``embedpipe serve``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import ConfigError

Projection = Literal["auto", "umap", "pca", "tsne"]

#: Points drawn at most (a seeded sample beyond).
MAX_POINTS = 100_000
#: Characters of each item's content carried into the page.
TEXT_CHARS = 300


def default_cache_dir() -> Path:
    """Where projections are cached: ``$EMBEDPIPE_MAP_CACHE``, else
    ``$XDG_CACHE_HOME/embedpipe/maps`` (``~/.cache/embedpipe/maps``)."""
    env = os.environ.get("EMBEDPIPE_MAP_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "embedpipe" / "maps"


def resolve_method(method: Projection, n: int) -> str:
    """``auto`` is UMAP when ``umap-learn`` imports and there are 50+ points, else PCA."""
    if method not in ("auto", "umap", "pca", "tsne"):
        raise ConfigError(f"projection {method!r} is not one of 'auto', 'umap', 'pca', 'tsne'.")
    if method != "auto":
        return method
    if n < 50:
        return "pca"
    try:
        import umap  # noqa: F401
    except ImportError:
        return "pca"
    return "umap"


def _atomic_save(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def project(
    corpus: Any,
    rows: np.ndarray,
    *,
    method: Projection = "auto",
    graph: Any = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> tuple[np.ndarray, str, bool]:
    """2-D coordinates of global ``rows`` of a curate corpus, cached by the stores' identity.

    Parameters
    ----------
    corpus
        A :class:`embedpipe.curate.Corpus` (its ``identity`` names the stores' fingerprints,
        dataset digests and sizes: the cache key).
    rows
        The rows to place.
    method
        ``umap``, ``pca``, ``tsne`` or ``auto`` (see :func:`resolve_method`).
    graph
        The corpus's :class:`~embedpipe.curate.KnnGraph`; UMAP reuses it when every row is
        placed (no second neighbour search).
    cache_dir
        Folder of cached projections (default :func:`default_cache_dir`).

    Returns
    -------
    (points, method, cached)
        ``[len(rows), 2]`` float32 coordinates, the method used, and whether they came from
        the cache.
    """
    rows = np.asarray(rows, dtype=np.int64)
    how = resolve_method(method, len(rows))
    key_doc = json.dumps(
        {
            "stores": corpus.identity,
            "method": how,
            "seed": seed,
            "rows": hashlib.blake2b(rows.tobytes(), digest_size=16).hexdigest(),
        },
        sort_keys=True,
    )
    key = hashlib.blake2b(key_doc.encode(), digest_size=16).hexdigest()
    path = Path(cache_dir or default_cache_dir()) / f"{key}.npz"
    if path.exists():
        try:
            with np.load(path) as z:
                pts = z["points"]
            if pts.shape == (len(rows), 2):
                return pts.astype(np.float32), how, True
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is recomputed
    X = corpus.read_rows(rows)
    X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    if how == "pca":
        from .projection import pca_2d

        pts, _ = pca_2d(X)
    elif how == "tsne":
        from sklearn.manifold import TSNE

        perp = float(min(30, max(2, (len(rows) - 1) // 3)))
        pts = TSNE(2, perplexity=perp, init="pca", random_state=seed).fit_transform(X)
    else:
        import umap

        nn = int(min(15, len(rows) - 1))
        kwargs: dict[str, Any] = {}
        if graph is not None and len(rows) == len(corpus) and graph.k + 1 >= nn:
            idx = np.hstack([np.arange(len(rows))[:, None], graph.rows[:, : nn - 1]])
            dist = np.hstack([np.zeros((len(rows), 1)), 1.0 - graph.sims[:, : nn - 1]])
            if (idx >= 0).all():
                kwargs["precomputed_knn"] = (idx, dist.astype(np.float32), None)
        reducer = umap.UMAP(n_neighbors=nn, metric="cosine", random_state=seed, n_jobs=1, **kwargs)
        pts = reducer.fit_transform(X)
    pts = np.asarray(pts, dtype=np.float32)
    _atomic_save(path, points=pts)
    return pts, how, False


def map_data(
    result: Any,
    *,
    max_points: int = MAX_POINTS,
    method: Projection = "auto",
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """The JSON the map page draws, from a :class:`embedpipe.curate.CurateResult`: each
    point's coordinates, id, split, text, label, predicted label, issues and neighbours."""
    corpus, graph = result.corpus, result.graph
    n = len(corpus)
    if n <= max_points:
        rows = np.arange(n)
    else:
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(n, size=max_points, replace=False))
    pts, how, cached = project(
        corpus, rows, method=method, graph=graph, seed=seed, cache_dir=cache_dir
    )
    point_of = np.full(n, -1, np.int64)
    point_of[rows] = np.arange(len(rows))
    pred = np.full(n, -1, np.int64)
    lab = result.labels
    if lab is not None and lab.probs.size:
        present = np.unique(corpus.labels[lab.rows])
        pred[lab.rows] = present[lab.probs.argmax(axis=1)]
    issues: dict[int, list[str]] = {}
    ref_row = {corpus.ref(r): r for r in range(n)} if len(result.table) else {}
    for rec in result.table[["split", "id", "issue"]].to_dict(orient="records"):
        ref = rec["id"] if len(corpus.paths) == 1 else f"{rec['split']}:{rec['id']}"
        r = ref_row.get(ref)
        if r is not None:
            issues.setdefault(r, []).append(rec["issue"])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    norm = (pts - lo) / span
    nb_rows = graph.rows[rows]
    nb_sims = graph.sims[rows]
    return {
        "method": how,
        "cached": cached,
        "n_items": n,
        "classes": corpus.classes,
        "splits": corpus.splits,
        "x": np.round(norm[:, 0], 5).tolist(),
        "y": np.round(norm[:, 1], 5).tolist(),
        "id": [corpus.ref(int(r)) for r in rows],
        "split": corpus.store_of[rows].tolist(),
        "text": [str(corpus.contents[r])[:TEXT_CHARS] for r in rows],
        "label": corpus.labels[rows].tolist(),
        "pred": pred[rows].tolist(),
        "issues": [issues.get(int(r), []) for r in rows],
        "nb": [
            [
                [corpus.ref(int(j)), int(point_of[j]), round(float(s), 4)]
                for j, s in zip(nr, ns, strict=True)
                if j >= 0
            ]
            for nr, ns in zip(nb_rows, nb_sims, strict=True)
        ],
    }


def _asset(name: str) -> str:
    return resources.files("embedpipe.report").joinpath("static", name).read_text()


def render_map(
    data: dict[str, Any],
    *,
    title: str = "Embedding map",
    nav: Sequence[tuple[str, str]] = (),
) -> str:
    """A self-contained HTML page (its script and data inline; no network) drawing ``data``
    from :func:`map_data`; ``nav``: ``(text, href)`` links shown in its header.

    Examples
    --------
    >>> d = {"method": "pca", "cached": False, "n_items": 1, "classes": ["a"], "splits": ["s"],
    ...      "x": [0.5], "y": [0.5], "id": ["i"], "split": [0], "text": ["</script>"],
    ...      "label": [0], "pred": [-1], "issues": [[]], "nb": [[]]}
    >>> page = render_map(d)
    >>> "<canvas" in page and "</script>\\"" not in page
    True
    """
    from html import escape

    links = " ".join(f'<a href="{escape(h)}">{escape(t)}</a>' for t, h in nav)
    payload = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
    return (
        _asset("map.html")
        .replace("{{TITLE}}", escape(title))
        .replace("{{NAV}}", links)
        .replace("{{CSS}}", _asset("map.css"))
        .replace("{{JS}}", _asset("map.js"))
        .replace("{{DATA}}", payload)
    )


def write_map(
    result: Any,
    path: str | Path,
    *,
    title: str = "Embedding map",
    max_points: int = MAX_POINTS,
    method: Projection = "auto",
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> Path:
    """Write the map page of a curate result to ``path`` (atomically) and return the path."""
    data = map_data(result, max_points=max_points, method=method, seed=seed, cache_dir=cache_dir)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        Path(tmp).write_text(render_map(data, title=title), encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
