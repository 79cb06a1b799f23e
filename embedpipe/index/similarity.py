"""A FAISS index together with its row ids, labels and provenance: search it, save it, load it."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ..errors import ConfigError, FingerprintMismatchError, StoreError
from ..store import FeatureStore
from . import persist
from .meta import IndexMeta
from .metric import Metric, higher_is_closer, prepare, to_scores
from .params import get_search_params, set_search_params


@dataclass(frozen=True)
class Neighbor:
    """One search result.

    Attributes
    ----------
    rank
        1 for the closest.
    id
        The item's id in its feature store.
    score
        Cosine similarity (metric ``cosine``), inner product (``ip``): higher is closer;
        Euclidean distance (``l2``): lower is closer.
    label
        The item's class name, ``None`` when unlabelled.
    row
        Its row number in the index.
    """

    rank: int
    id: str
    score: float
    label: str | None
    row: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SimilarityIndex:
    """A similarity index over feature-store rows.

    Build one with :func:`~embedpipe.index.build_index`, reopen a saved one with
    :meth:`load`. Queries are vectors of the index's backbone (:meth:`search`), raw texts or
    images encoded by that same backbone (:meth:`search_texts`, :meth:`search_images`), rows
    of another store of that backbone (:meth:`search_store`), or ids already in the index
    (:meth:`search_ids`).

    Examples
    --------
    >>> index = SimilarityIndex.load("cache/reviews.index")  # doctest: +SKIP
    >>> [(n.id, round(n.score, 3), n.label) for n in index.search_texts(["a moving film"], k=3)[0]]  # doctest: +SKIP
    [('row-004211', 0.713, 'fresh'), ('row-000087', 0.702, 'fresh'), ('row-010932', 0.698, 'rotten')]
    """

    def __init__(
        self,
        index: faiss.Index,
        meta: IndexMeta,
        ids: np.ndarray,
        labels: np.ndarray,
        source: np.ndarray,
        path: Path | None = None,
    ) -> None:
        self.faiss_index = index
        self.meta = meta
        self.ids = np.asarray(ids, dtype=object)
        self.labels = np.asarray(labels, np.int64)
        self.source = np.asarray(source, np.int16)
        self.path = path
        self._encoder: Any = None
        self._encoder_lock = threading.Lock()
        if meta.search_params:
            set_search_params(index, meta.search_params)

    # ---- description ------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.faiss_index.ntotal)

    def __repr__(self) -> str:
        where = f" {str(self.path)!r}" if self.path else ""
        return (
            f"SimilarityIndex({self.meta.factory!r}{where}, n={len(self)}, dim={self.dim}, "
            f"metric={self.metric!r}, backbone={self.backbone.get('name')!r})"
        )

    @property
    def dim(self) -> int:
        return int(self.meta.dim)

    @property
    def metric(self) -> Metric:
        return self.meta.metric

    @property
    def fingerprint(self) -> str:
        return self.meta.fingerprint

    @property
    def backbone(self) -> dict[str, Any]:
        return self.meta.backbone

    @property
    def modality(self) -> str:
        return self.meta.modality

    @property
    def classes(self) -> list[str]:
        return self.meta.classes

    @property
    def search_params(self) -> dict[str, int]:
        return get_search_params(self.faiss_index)

    def set_search_params(self, **params: int) -> None:
        """Change ``nprobe`` / ``efSearch`` (saved with the index by :meth:`save`)."""
        set_search_params(self.faiss_index, params)
        self.meta.search_params = get_search_params(self.faiss_index)

    @property
    def has_images(self) -> bool:
        """True when some rows are image files the index can find (thumbnails)."""
        return any(s.image_root for s in self.meta.sources)

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary (used by ``/health`` and the CLI)."""
        return {
            "n": len(self),
            "dim": self.dim,
            "metric": self.metric,
            "kind": self.meta.kind,
            "factory": self.meta.factory,
            "search_params": self.search_params,
            "modality": self.modality,
            "backbone": self.backbone.get("name"),
            "fingerprint": self.fingerprint,
            "classes": len(self.classes),
            "images": self.has_images,
            "tuning": self.meta.tuning,
        }

    # ---- rows -------------------------------------------------------------------------------
    @cached_property
    def _row_of(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.ids.tolist())}

    def rows_of(self, ids: Sequence[str]) -> np.ndarray:
        """Row numbers of ``ids``; an unknown id raises ``KeyError`` naming it."""
        if isinstance(ids, str):
            ids = [ids]
        missing = [i for i in ids if i not in self._row_of]
        if missing:
            raise KeyError(
                f"id {missing[0]!r} is not in this index ({len(self)} items, e.g. "
                f"{self.ids[:3].tolist()})"
            )
        return np.array([self._row_of[i] for i in ids], np.int64)

    def label_of(self, row: int) -> str | None:
        lab = int(self.labels[row])
        return self.classes[lab] if 0 <= lab < len(self.classes) else None

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """The stored (prepared) vectors of ``ids``: exact for Flat/IVF-Flat/HNSW, decoded
        (approximate) for quantised indexes, read from the source store otherwise."""
        rows = self.rows_of(ids)
        try:
            return self.faiss_index.reconstruct_batch(rows)
        except RuntimeError:
            return prepare(self._read_from_sources(rows), self.metric)

    def _read_from_sources(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), self.dim), np.float32)
        for k, r in enumerate(rows.tolist()):
            src = self.meta.sources[int(self.source[r])]
            try:
                with FeatureStore(src.path) as fs:
                    fs.check_fingerprint(self.fingerprint, "query vector")
                    out[k] = fs.read([r - src.offset])[0]
            except StoreError as e:
                raise ConfigError(
                    f"this index ({self.meta.factory}) cannot give back the vector of "
                    f"{self.ids[r]!r} and its source store is unavailable: {e}"
                ) from None
        return out

    # ---- searching --------------------------------------------------------------------------
    def _check_vectors(self, queries: np.ndarray) -> np.ndarray:
        q = np.asarray(queries)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ConfigError(
                f"query vectors of shape {tuple(np.shape(queries))}; this index holds vectors of "
                f"dimension {self.dim} (backbone {self.backbone.get('name')!r}). Encode queries "
                "with the index's backbone, or pass raw texts/images to search_texts/search_images."
            )
        if not np.issubdtype(q.dtype, np.number):
            raise ConfigError(f"query vectors must be numbers, not {q.dtype}.")
        bad = ~np.isfinite(q).all(axis=1)
        if bad.any():
            raise ConfigError(
                f"query vectors {np.flatnonzero(bad)[:5].tolist()} contain NaN or Inf."
            )
        return q

    @staticmethod
    def _check_k(k: int) -> int:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ConfigError(f"k={k!r}: the number of neighbours must be a positive integer.")
        return int(k)

    def search_arrays(self, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Raw search: ``(scores, rows)`` of shape ``[nq, k]``, row ``-1`` where none was found."""
        k = self._check_k(k)
        q = prepare(self._check_vectors(queries), self.metric)
        kk = min(k, len(self))
        dist, rows = self.faiss_index.search(q, kk)
        return to_scores(dist, self.metric), rows

    def _neighbors(
        self, scores: np.ndarray, rows: np.ndarray, k: int, exclude: np.ndarray | None = None
    ) -> list[list[Neighbor]]:
        out = []
        for qi in range(len(rows)):
            hits: list[Neighbor] = []
            for s, r in zip(scores[qi].tolist(), rows[qi].tolist(), strict=True):
                if r < 0 or (exclude is not None and r == exclude[qi]) or len(hits) == k:
                    continue
                hits.append(
                    Neighbor(len(hits) + 1, str(self.ids[r]), float(s), self.label_of(r), int(r))
                )
            out.append(hits)
        return out

    def search(
        self, queries: np.ndarray, k: int = 10, *, fingerprint: str | None = None
    ) -> list[list[Neighbor]]:
        """The ``k`` nearest items of each query vector.

        Parameters
        ----------
        queries
            ``[nq, dim]`` (or ``[dim]``) vectors made by the index's backbone.
        k
            Neighbours per query (fewer when the index holds fewer items).
        fingerprint
            The backbone fingerprint the queries were encoded with; a different one raises
            :class:`FingerprintMismatchError` (vectors of another model are meaningless here).

        Returns
        -------
        list of list of Neighbor
            One list per query, closest first.
        """
        if fingerprint is not None and fingerprint != self.fingerprint:
            raise FingerprintMismatchError(
                "query vectors",
                self.fingerprint,
                fingerprint,
                f"This index holds features of backbone {self.backbone.get('name')!r}; encode the "
                "queries with it (or pass raw texts/images to search_texts/search_images).",
            )
        scores, rows = self.search_arrays(queries, k)
        return self._neighbors(scores, rows, k)

    def search_ids(
        self, ids: Sequence[str], k: int = 10, *, exclude_self: bool = True
    ) -> list[list[Neighbor]]:
        """Neighbours of items already in the index ("more like this"), themselves excluded."""
        k = self._check_k(k)
        if isinstance(ids, str):
            ids = [ids]
        rows = self.rows_of(ids)
        vecs = self.vectors(ids)
        scores, found = self.search_arrays(vecs, k + 1 if exclude_self else k)
        return self._neighbors(scores, found, k, exclude=rows if exclude_self else None)

    def search_store(
        self, store: str | Path | FeatureStore, k: int = 10, rows: Sequence[int] | None = None
    ) -> list[list[Neighbor]]:
        """Use rows of another feature store (all, or ``rows``) as queries.

        Raises
        ------
        FingerprintMismatchError
            The store was encoded by another backbone.
        """
        fs = store if isinstance(store, FeatureStore) else FeatureStore(store)
        try:
            fs.check_fingerprint(self.fingerprint, "queries")
            x = fs.features if rows is None else fs.read(np.asarray(rows, np.int64))
        finally:
            if fs is not store:
                fs.close()
        return self.search(x, k)

    # ---- raw queries ------------------------------------------------------------------------
    def encoder(self, device: str = "auto") -> Any:
        """The index's backbone, loaded on first use and checked against its fingerprint."""
        with self._encoder_lock:
            if self._encoder is None:
                from .queries import load_query_encoder

                self._encoder = load_query_encoder(self.backbone, self.fingerprint, device=device)
            return self._encoder

    def set_encoder(self, encoder: Any) -> None:
        """Use an already loaded encoder for raw queries (it must have the index's fingerprint)."""
        if encoder.fingerprint != self.fingerprint:
            raise FingerprintMismatchError(
                f"query encoder {encoder.spec.name!r}",
                self.fingerprint,
                encoder.fingerprint,
                f"This index was built from features of backbone {self.backbone.get('name')!r}.",
            )
        self._encoder = encoder

    def _encode(self, items: list[Any], modality: str) -> np.ndarray:
        from .queries import check_modality, encode_queries

        enc = self.encoder()
        check_modality(enc, modality, f"index of {self.backbone.get('name')!r} features")
        with self._encoder_lock:  # one forward pass at a time (server threads share the model)
            return encode_queries(enc, items)

    def search_texts(self, texts: Sequence[str] | str, k: int = 10) -> list[list[Neighbor]]:
        """Encode texts with the index's backbone and search them."""
        from .queries import check_texts

        return self.search(self._encode(check_texts(texts), "text"), k)

    def search_images(self, images: Sequence[Any] | Any, k: int = 10) -> list[list[Neighbor]]:
        """Encode images (paths, bytes or PIL images) with the index's backbone and search them."""
        from .queries import load_images

        if not isinstance(images, list | tuple):
            images = [images]
        return self.search(self._encode(load_images(images), "image"), k)

    # ---- image files ------------------------------------------------------------------------
    def image_path(self, item_id: str) -> Path | None:
        """The image file of an indexed item, or ``None`` if it has none or lies outside its root.

        Only ids in the index are looked up, and the resolved path (symlinks followed) must lie
        inside the root folder of its source: nothing else on disk can be reached.
        """
        row = self._row_of.get(item_id)
        if row is None:
            return None
        root = self.meta.sources[int(self.source[row])].image_root
        if not root:
            return None
        base = Path(root).resolve()
        try:
            p = (base / item_id).resolve()
        except (OSError, RuntimeError, ValueError):
            return None
        if not p.is_relative_to(base) or not p.is_file():
            return None
        return p

    def set_image_root(self, root: str | Path, source: int | None = None) -> None:
        """Point thumbnails at a folder (for all sources, or one) after the images moved."""
        r = Path(root).expanduser()
        if not r.is_dir():
            raise ConfigError(f"image root {str(root)!r} is not a folder.")
        for i, s in enumerate(self.meta.sources):
            if source is None or i == source:
                s.image_root = str(r.resolve())

    # ---- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the index folder (``index.faiss``, ``rows.h5``, ``meta.json``)."""
        self.meta.search_params = get_search_params(self.faiss_index)
        self.path = persist.save_files(
            path,
            self.faiss_index,
            self.meta,
            self.ids,
            self.labels,
            self.source,
            overwrite=overwrite,
        )
        return self.path

    @classmethod
    def load(cls, path: str | Path, *, image_root: str | Path | None = None) -> SimilarityIndex:
        """Open a saved index; ``image_root`` overrides where its images are (they moved)."""
        index, meta, rows = persist.load_files(path)
        out = cls(index, meta, rows["ids"], rows["labels"], rows["source"], path=Path(path))
        if image_root is not None:
            out.set_image_root(image_root)
        return out

    @property
    def closer(self) -> str:
        """``"higher"`` or ``"lower"``: which scores are closer."""
        return "higher" if higher_is_closer(self.metric) else "lower"
