"""Nearest-neighbour examples: a few queries per class and their closest gallery items."""

from __future__ import annotations

import numpy as np


def pick_queries(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` row numbers covering the classes in turn (one of each class, then again), seeded."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    by_class: dict[int, list[int]] = {}
    for r in order.tolist():
        by_class.setdefault(int(labels[r]), []).append(r)
    picks: list[int] = []
    pools = [by_class[c] for c in sorted(by_class)]
    while len(picks) < min(n, len(labels)):
        for pool in pools:
            if pool and len(picks) < n:
                picks.append(pool.pop(0))
    return np.asarray(picks, dtype=np.int64)


def cosine_neighbours(
    queries: np.ndarray, gallery: np.ndarray, k: int, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine top-``k`` of each query in ``gallery`` (``exclude[i]``: a row to skip).

    Returns ``(scores, rows)``, closest first; ties broken by row number (deterministic).
    """

    def unit(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, dtype=np.float64)
        norms = np.linalg.norm(a, axis=1, keepdims=True)
        return a / np.where(norms > 0, norms, 1.0)

    sims = unit(queries) @ unit(gallery).T
    if exclude is not None:
        sims[np.arange(len(queries)), exclude] = -np.inf
    k = min(k, gallery.shape[0] - (1 if exclude is not None else 0))
    rows = np.lexsort((np.broadcast_to(np.arange(gallery.shape[0]), sims.shape), -sims), axis=1)[
        :, :k
    ]
    return np.take_along_axis(sims, rows, axis=1), rows


TEXT_CHARS = 300


def content_fields(content: str | None, item_id: str, modality: str) -> dict[str, str]:
    """What a neighbour example shows of an item from its stored content: a text item's text
    (``text``, cut to 300 characters), an image's path / URL / key (``content``); nothing when
    the store kept only the id.

    Examples
    --------
    >>> content_fields("A slow, tedious film about nothing.", "row-7", "text")
    {'text': 'A slow, tedious film about nothing.'}
    >>> content_fields("photos/cat/1.jpg", "cat/1.jpg", "image")
    {'content': 'photos/cat/1.jpg'}
    >>> content_fields("row-7", "row-7", "text")
    {}
    """
    if not content or content == item_id:
        return {}
    if modality == "text":
        one = " ".join(content.split())
        return {"text": one if len(one) <= TEXT_CHARS else one[: TEXT_CHARS - 1] + "…"}
    return {"content": content}


def store_contents(fs: object, rows: np.ndarray) -> list[str | None]:
    """The stored content of ``rows`` of a feature store (``None`` each for a store that keeps
    none); see :func:`content_fields`."""
    contents = getattr(fs, "contents", None)
    if contents is None:
        return [None] * len(rows)
    arr = np.asarray(contents, dtype=object)
    return [None if arr[r] is None else str(arr[r]) for r in np.asarray(rows).tolist()]
