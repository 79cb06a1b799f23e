"""A FAISS index together with its row ids, labels and provenance: search it, save it, load it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ..errors import Arg, ConfigError, FingerprintMismatchError, UnknownKeyError
from ..store import FeatureStore
from . import persist
from .meta import IndexMeta
from .metric import Metric, higher_is_closer, prepare, to_scores
from .params import excluding, for_k, get_search_params, set_search_params
from .sources import SourceReader


def _as_list(items: Sequence[Any] | Any) -> list[Any]:
    return list(items) if isinstance(items, list | tuple) else [items]


ContentFn = Callable[[np.ndarray], list[str | None]]
ColumnsFn = Callable[[str], np.ndarray]


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
    content
        What identifies the item: its text, or its image's path / URL / key (``None`` when
        the store it came from does not record it).
    """

    rank: int
    id: str
    score: float
    label: str | None
    row: int
    content: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict; ``content`` only when the hit has one."""
        d = asdict(self)
        if d["content"] is None:
            del d["content"]
        return d


class SimilarityIndex:
    """A similarity index over feature-store rows.

    Build one with :func:`~embedpipe.index.build_index`, reopen a saved one with
    :meth:`load`. :meth:`find` is the one search entry: queries are vectors of the index's
    backbone, raw texts or images encoded by that same backbone, or ids already in the index,
    each with ``k``, a ``where`` filter and, for ids, themselves left out. :meth:`search`,
    :meth:`search_texts`, :meth:`search_images`, :meth:`search_ids` and :meth:`search_store`
    (rows of another store of that backbone) are shorthands for it; :meth:`search_arrays`
    gives raw ``(scores, rows)``.

    Each hit carries the item's ``content`` (its text, or its image's path / URL / key) when
    the stores record it. With ``rerank`` > 0, that many candidates per query are re-scored
    exactly from the source stores' float features (compressed indexes: IVF-PQ, SQ8, binary).

    A row is an item's position in the source stores (concatenated), the order of ``ids``.
    FAISS may hold them in another order (a build keeps its tuning queries out and adds them
    last): ``order[f]`` is the row of FAISS's vector ``f`` (``None``: the same order).

    Examples
    --------
    >>> from embedpipe.store import write_store
    >>> X = np.random.default_rng(0).normal(size=(300, 8)).astype("float32")
    >>> store = write_store("v.h5", X, [f"v{i}" for i in range(300)])
    >>> from embedpipe.index import build_index
    >>> index = build_index(store, "ivfpq", target_recall=None, search_params={"nprobe": 4}, rerank=50)
    >>> [n.id for n in index.find(vectors=X[7], k=2)[0]][0], index.find(ids=["v7"], k=1)[0][0].id
    ('v7', ...)
    """

    def __init__(
        self,
        index: faiss.Index,
        meta: IndexMeta,
        ids: np.ndarray,
        labels: np.ndarray,
        source: np.ndarray,
        path: Path | None = None,
        *,
        order: np.ndarray | None = None,
        contents: ContentFn | None = None,
        hashes: np.ndarray | None = None,
        columns: ColumnsFn | None = None,
        column_names: Sequence[str] = (),
        delta_rows: np.ndarray | None = None,
        delta_vectors: np.ndarray | None = None,
    ) -> None:
        self.faiss_index = index
        self.meta = meta
        self.ids = np.asarray(ids, dtype=object)
        self.labels = np.asarray(labels, np.int64)
        self.source = np.asarray(source, np.int16)
        self.order = None if order is None else np.asarray(order, np.int64)
        #: Each row's content hash (16 bytes; ``None`` for indexes built before updates).
        self.hashes = hashes
        #: Rows searched exactly, not yet merged into the FAISS index, and their vectors.
        self.delta_rows = (
            np.zeros(0, np.int64) if delta_rows is None else np.asarray(delta_rows, np.int64)
        )
        self.delta_vectors = (
            np.zeros((0, meta.dim), np.float32)
            if delta_vectors is None
            else np.ascontiguousarray(delta_vectors, np.float32)
        )
        self._columns = columns
        self._column_names = [c for c in column_names if c not in ("id", "label")]
        self._column_cache: dict[str, np.ndarray] = {}
        self._mask_cache: dict[str, np.ndarray] = {}
        self.path = path
        self._sources = SourceReader(meta)
        self._contents = contents
        self._encoder: Any = None
        self._encoders: dict[str, Any] = {}
        self._encoder_lock = threading.Lock()
        if meta.search_params:
            set_search_params(index, meta.search_params)

    # ---- description ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

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
    def rerank(self) -> int:
        """Candidates per query re-scored exactly from the source stores (0: none)."""
        return int(self.meta.rerank)

    def set_rerank(self, n: int) -> None:
        """Re-rank the top ``n`` candidates of each query exactly (0 turns it off).

        The exact scores come from the source stores' float features, which must stay where
        the index was built from (``meta.sources``)."""
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ConfigError(Arg("rerank", n), ": give a number of candidates ≥ 0 (0: off).")
        self.meta.rerank = int(n)

    @property
    def has_content(self) -> bool:
        """True when hits carry their item's content (text, path / URL / key)."""
        return bool(self.meta.has_content)

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
            "rerank": self.rerank,
            "content": self.has_content,
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
            raise UnknownKeyError(
                f"id {missing[0]!r} is not in this index ({len(self)} items, e.g. "
                f"{self.ids[:3].tolist()})"
            )
        return np.array([self._row_of[i] for i in ids], np.int64)

    def label_of(self, row: int) -> str | None:
        lab = int(self.labels[row])
        return self.classes[lab] if 0 <= lab < len(self.classes) else None

    @cached_property
    def _faiss_row(self) -> np.ndarray | None:
        if self.order is None:
            return None
        inv = np.full(len(self), -1, np.int64)
        live = np.flatnonzero(self.order >= 0)
        inv[self.order[live]] = live
        return inv

    @cached_property
    def _delta_pos(self) -> np.ndarray:
        pos = np.full(len(self), -1, np.int64)
        pos[self.delta_rows] = np.arange(len(self.delta_rows))
        return pos

    @property
    def n_removed(self) -> int:
        """FAISS vectors of rows removed by updates (left out of every search until a rebuild)."""
        return 0 if self.order is None else int((self.order < 0).sum())

    @property
    def n_pending(self) -> int:
        """Rows added by updates and searched exactly, not yet merged into the FAISS index."""
        return len(self.delta_rows)

    @property
    def _holes(self) -> bool:
        return self.n_pending > 0 or self.n_removed > 0

    def faiss_rows(self, rows: np.ndarray) -> np.ndarray:
        """FAISS's vector numbers of ``rows`` (``-1`` for rows not merged into it yet)."""
        rows = np.asarray(rows, np.int64)
        inv = self._faiss_row
        return rows if inv is None else inv[rows]

    def _from_faiss(self, found: np.ndarray) -> np.ndarray:
        if self.order is None:
            return found
        return np.where(found >= 0, self.order[np.maximum(found, 0)], -1)

    def contents_of(self, rows: Sequence[int] | np.ndarray) -> list[str | None]:
        """The content of index ``rows`` (``None`` each when the index has none)."""
        rows = np.asarray(rows, np.int64)
        if not self.has_content or rows.size == 0:
            return [None] * int(rows.size)
        if self._contents is not None:
            return self._contents(rows)
        return self._sources.contents(rows)

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """The stored (prepared) vectors of ``ids``: exact for Flat/IVF-Flat/HNSW, decoded
        (approximate) for quantised indexes unless ``rerank`` is on, read from the source
        store otherwise."""
        rows = self.rows_of(ids)
        if self.rerank:
            return prepare(self._read_from_sources(rows), self.metric)
        return self.row_vectors(rows, exact=False)

    def row_vectors(self, rows: np.ndarray, *, exact: bool = True) -> np.ndarray:
        """Prepared vectors of index ``rows``: pending rows from memory, the others from the
        FAISS index when it keeps them whole (or ``exact=False``), else from the source stores."""
        rows = np.asarray(rows, np.int64)
        out = np.empty((rows.size, self.dim), np.float32)
        dpos = self._delta_pos[rows] if self.n_pending else np.full(rows.size, -1)
        pend = dpos >= 0
        out[pend] = self.delta_vectors[dpos[pend]]
        rest = np.flatnonzero(~pend)
        if rest.size:
            got = None
            if self.keeps_vectors or not exact:
                try:
                    got = self.faiss_index.reconstruct_batch(self.faiss_rows(rows[rest]))
                except RuntimeError:
                    got = None
            if got is None:
                got = prepare(self._read_from_sources(rows[rest]), self.metric)
            out[rest] = got
        return out

    @cached_property
    def keeps_vectors(self) -> bool:
        """True when the FAISS index holds the prepared vectors exactly (Flat, HNSW, IVF-Flat)."""
        from .kinds import type_of

        t = type_of(self.meta.kind)
        return t is not None and not t.compressed and not self.meta.truncate_dim

    def _read_from_sources(self, rows: np.ndarray) -> np.ndarray:
        try:
            return self._sources.vectors(rows)
        except ConfigError as e:
            raise ConfigError(
                f"this index ({self.meta.factory}) cannot give back the vectors of "
                f"{self.ids[rows[:1]].tolist()} and its source store is unavailable: {e}"
            ) from None

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

    def search_arrays(
        self, queries: np.ndarray, k: int = 10, *, where: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw search: ``(scores, rows)`` of shape ``[nq, k]``, row ``-1`` where none was found."""
        k = self._check_k(k)
        mask = self.where_mask(where) if where is not None else None
        q = prepare(self._check_vectors(queries), self.metric)
        return self.search_prepared(q, min(k, len(self)), mask=mask)

    def search_prepared(
        self,
        q: np.ndarray,
        k: int,
        *,
        exclude: np.ndarray | None = None,
        mask: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, rows)`` of prepared queries, re-ranked when ``rerank`` is on.

        ``exclude``: rows left out of every result (held-out evaluation). ``mask``: a boolean
        per row, only rows where it is true can be found (a filter, see :meth:`where_mask`).
        """
        if mask is not None or self._holes:
            allowed = np.ones(len(self), bool) if mask is None else np.asarray(mask, bool).copy()
            if exclude is not None and len(exclude):
                allowed[np.asarray(exclude, np.int64)] = False
            from .filtered import search_allowed

            dist, rows = search_allowed(self, q, k, allowed)
            return to_scores(dist[:, :k], self.metric), rows[:, :k]
        if exclude is not None and len(exclude):
            exclude = self.faiss_rows(exclude)
        n_cand = min(max(k, self.rerank), len(self))
        if exclude is not None and len(exclude):
            try:
                params, keep = excluding(self.faiss_index, exclude, n_cand)
                dist, rows = self.faiss_index.search(q, n_cand, params=params)
                del keep
            except RuntimeError:  # no id selectors (LSH): fetch more, drop the excluded rows
                wide = min(len(self), n_cand + len(exclude))
                dist, rows = self.faiss_index.search(q, wide)
                drop = np.isin(rows, exclude)
                pick = np.argsort(drop, axis=1, kind="stable")[:, :n_cand]
                rows = np.where(
                    np.take_along_axis(drop, pick, 1), -1, np.take_along_axis(rows, pick, 1)
                )
                dist = np.take_along_axis(dist, pick, 1)
        else:
            wide = for_k(self.faiss_index, n_cand)  # HNSW: efSearch >= k, or hits go missing
            if wide is None:
                dist, rows = self.faiss_index.search(q, n_cand)
            else:
                dist, rows = self.faiss_index.search(q, n_cand, params=wide)
        rows = self._from_faiss(rows)
        if self.rerank:
            dist, rows = self._exact_rerank(q, rows, k)
        return to_scores(dist[:, :k], self.metric), rows[:, :k]

    def _exact_rerank(
        self, q: np.ndarray, cand: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact FAISS-style distances of the candidates (inner product or squared L2) from
        the stores' float features; the ``k`` best of each query, best first."""
        from .exact import rerank_exact

        def vectors_of(rows: np.ndarray) -> np.ndarray:
            return prepare(self._read_from_sources(rows), self.metric)

        return rerank_exact(q, cand, vectors_of, self.metric, k)

    def _neighbors(
        self, scores: np.ndarray, rows: np.ndarray, k: int, exclude: np.ndarray | None = None
    ) -> list[list[Neighbor]]:
        picked: list[list[tuple[float, int]]] = []
        for qi in range(len(rows)):
            hits: list[tuple[float, int]] = []
            for s, r in zip(scores[qi].tolist(), rows[qi].tolist(), strict=True):
                if r < 0 or (exclude is not None and r == exclude[qi]) or len(hits) == k:
                    continue
                hits.append((float(s), int(r)))
            picked.append(hits)
        flat = np.array([r for hits in picked for _, r in hits], np.int64)
        contents: dict[int, str | None] = {}
        if flat.size:
            uniq = np.unique(flat)
            contents = dict(zip(uniq.tolist(), self.contents_of(uniq), strict=True))
        return [
            [
                Neighbor(rank, str(self.ids[r]), s, self.label_of(r), r, contents.get(r))
                for rank, (s, r) in enumerate(hits, start=1)
            ]
            for hits in picked
        ]

    def find(
        self,
        *,
        vectors: np.ndarray | None = None,
        texts: Sequence[str] | str | None = None,
        images: Sequence[Any] | Any | None = None,
        ids: Sequence[str] | str | None = None,
        k: int = 10,
        where: str | None = None,
        fingerprint: str | None = None,
        exclude_self: bool = True,
    ) -> list[list[Neighbor]]:
        """The ``k`` nearest items of each query: the one search entry.

        Give exactly one kind of query; :meth:`search`, :meth:`search_texts`,
        :meth:`search_images`, :meth:`search_ids`, the CLI, the server and batch search all
        come here.

        Parameters
        ----------
        vectors
            ``[nq, dim]`` (or ``[dim]``) vectors made by the index's backbone.
        texts, images
            Raw queries (images: paths, bytes or PIL images), encoded by the index's backbone
            (or, for a dual encoder, its other tower).
        ids
            Items already in the index ("more like this"); themselves left out of their
            results unless ``exclude_self=False``.
        k
            Neighbours per query (fewer when the index holds fewer items).
        where
            A filter over ``id``, ``label`` and the kept columns (see
            :mod:`embedpipe.index.where`), e.g. ``"label == 'rotten' and year >= 2020"``:
            only matching rows are found, with the same recall as an unfiltered search. A bad
            filter fails before any backbone runs.
        fingerprint
            With ``vectors``: the backbone fingerprint they were encoded with; a different one
            raises :class:`FingerprintMismatchError` (vectors of another model are meaningless
            here).
        exclude_self
            With ``ids``: leave each query item out of its own results.

        Returns
        -------
        list of list of Neighbor
            One list per query, closest first.

        See the class's example.
        """
        given = [
            n
            for n, v in (("vectors", vectors), ("texts", texts), ("images", images), ("ids", ids))
            if v is not None
        ]
        if len(given) != 1:
            raise ConfigError(
                "give exactly one of vectors=, texts=, images= or ids= "
                f"(got {', '.join(given) or 'none'})."
            )
        if fingerprint is not None and fingerprint != self.fingerprint:
            raise FingerprintMismatchError(
                "query vectors",
                self.fingerprint,
                fingerprint,
                f"This index holds features of backbone {self.backbone.get('name')!r}; encode the "
                "queries with it (or pass raw texts/images to search_texts/search_images).",
            )
        k = self._check_k(k)
        if where is not None:
            self.where_mask(where)  # a bad filter fails before the backbone runs
        exclude = None
        if texts is not None:
            from .queries import check_texts

            vectors = self._encode(check_texts(texts), "text")
        elif images is not None:
            from .queries import load_images

            vectors = self._encode(
                load_images(_as_list(images), self.query_encoder("image")), "image"
            )
        elif ids is not None:
            ids = [ids] if isinstance(ids, str) else list(ids)
            exclude = self.rows_of(ids) if exclude_self else None
            vectors = self.vectors(ids)
        assert vectors is not None
        kk = k + 1 if exclude is not None else k
        scores, rows = self.search_arrays(vectors, kk, where=where)
        return self._neighbors(scores, rows, k, exclude=exclude)

    def search(
        self,
        queries: np.ndarray,
        k: int = 10,
        *,
        fingerprint: str | None = None,
        where: str | None = None,
    ) -> list[list[Neighbor]]:
        """The ``k`` nearest items of each query vector (:meth:`find` with ``vectors``)."""
        return self.find(vectors=queries, k=k, fingerprint=fingerprint, where=where)

    def search_ids(
        self,
        ids: Sequence[str],
        k: int = 10,
        *,
        exclude_self: bool = True,
        where: str | None = None,
    ) -> list[list[Neighbor]]:
        """Neighbours of items already in the index ("more like this"), themselves excluded
        (:meth:`find` with ``ids``)."""
        return self.find(ids=ids, k=k, exclude_self=exclude_self, where=where)

    def search_texts(
        self, texts: Sequence[str] | str, k: int = 10, *, where: str | None = None
    ) -> list[list[Neighbor]]:
        """Encode texts with the index's backbone and search them (:meth:`find` with ``texts``)."""
        return self.find(texts=texts, k=k, where=where)

    def search_images(
        self, images: Sequence[Any] | Any, k: int = 10, *, where: str | None = None
    ) -> list[list[Neighbor]]:
        """Encode images (paths, bytes or PIL images) with the index's backbone and search them
        (:meth:`find` with ``images``)."""
        return self.find(images=images, k=k, where=where)

    # ---- filters ----------------------------------------------------------------------------
    @property
    def column_names(self) -> list[str]:
        """What a filter can name: ``id``, ``label`` and the kept columns of the stores."""
        return ["id", "label", *self._column_names]

    def column(self, name: str) -> np.ndarray:
        """The values of column ``name`` (``id``, ``label`` or a kept column), one per row."""
        if name == "id":
            return self.ids
        if name == "label":
            names = np.array([*self.classes, ""], dtype=object)
            return names[np.where(self.labels >= 0, self.labels, len(self.classes))]
        if name not in self._column_names or self._columns is None:
            raise ConfigError(
                f"no column {name!r} in this index; its columns are {', '.join(self.column_names)}."
            )
        if name not in self._column_cache:
            self._column_cache[name] = np.asarray(self._columns(name), dtype=object)
        return self._column_cache[name]

    def where_mask(self, where: str) -> np.ndarray:
        """The rows a filter lets through, as a boolean mask (see :mod:`embedpipe.index.where`).

        Raises
        ------
        ConfigError
            A malformed filter, or one naming a column the index does not have (one line
            naming it and the columns there are).
        """
        from .where import parse_where

        got = self._mask_cache.get(where)
        if got is None:
            got = parse_where(where).mask(self.column, self.column_names, len(self))
            if len(self._mask_cache) >= 8:
                self._mask_cache.pop(next(iter(self._mask_cache)))
            self._mask_cache[where] = got
        return got

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
        return self.find(vectors=x, k=k)

    # ---- raw queries ------------------------------------------------------------------------
    def encoder(self, device: str = "auto") -> Any:
        """The index's backbone, loaded on first use and checked against its fingerprint."""
        with self._encoder_lock:
            if self._encoder is None:
                from .queries import load_query_encoder, runtime_of_label

                # Queries run on the runtime the stores were encoded with (torch: fp32).
                labels = [str(s.provenance.get("precision", "")) for s in self.meta.sources]
                runtime, precision = runtime_of_label(labels[0] if labels else "")
                self._encoder = load_query_encoder(
                    self.backbone,
                    self.fingerprint,
                    device=device,
                    precision=precision,
                    runtime=runtime,
                )
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
        with self._encoder_lock:
            self._encoder = encoder
            self._encoders = {}

    def query_encoder(self, modality: str) -> Any:
        """The encoder of ``modality`` queries: the index's backbone, or, for a dual encoder
        (CLIP-style), its other tower in the same embedding space.

        Raises
        ------
        ConfigError
            The backbone has no encoder of ``modality`` (the message says how to query).
        """
        enc = self.encoder()
        if getattr(enc, "modality", None) == modality:
            return enc
        with self._encoder_lock:
            if modality not in self._encoders:
                from ..backbones.base import encoder_for, space_of
                from .queries import check_modality

                desc = f"index of {self.backbone.get('name')!r} features"
                try:
                    other = encoder_for(enc, modality)
                except ConfigError:
                    check_modality(enc, modality, desc)  # raises, naming how to query
                    raise
                if space_of(other) != space_of(enc):
                    raise FingerprintMismatchError(
                        f"{modality} tower of {self.backbone.get('name')!r}",
                        space_of(enc),
                        space_of(other),
                        "Its vectors are not in the index's embedding space.",
                    )
                check_modality(other, modality, desc)
                self._encoders[modality] = other
            return self._encoders[modality]

    def query_modalities(self) -> list[str]:
        """The raw-query modalities this index takes: its own, plus the other tower's for a
        dual encoder (only known once the backbone is loaded; never loads it)."""
        out = [self.modality]
        if self._encoder is None:
            return out
        for m in ("text", "image"):
            if m not in out:
                try:
                    self.query_encoder(m)
                    out.append(m)
                except (ConfigError, FingerprintMismatchError):
                    pass
        return out

    def search_batch(
        self, queries: Any, out: str | Path | None = None, *, k: int = 10, **kwargs: Any
    ) -> Any:
        """Many queries at once, one row per hit (see :func:`embedpipe.index.batch.search_batch`)."""
        from .batch import search_batch

        return search_batch(self, queries, out, k=k, **kwargs)

    def _encode(self, items: list[Any], modality: str) -> np.ndarray:
        from .queries import encode_queries

        enc = self.query_encoder(modality)
        with self._encoder_lock:  # one forward pass at a time (server threads share the model)
            return encode_queries(enc, items)

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
    def save(
        self, path: str | Path, *, overwrite: bool = False, same_index_as: Path | None = None
    ) -> Path:
        """Write the index folder (``index.faiss``, ``rows.h5`` with ids, labels and contents,
        ``meta.json``); contents are copied in batches (flat memory). ``same_index_as``: a
        saved ``index.faiss`` of this very FAISS index, hard-linked instead of written."""
        self.meta.search_params = get_search_params(self.faiss_index)
        self.path = persist.save_files(
            path,
            self.faiss_index,
            self.meta,
            self.ids,
            self.labels,
            self.source,
            order=self.order,
            contents=self.contents_of if self.has_content else None,
            overwrite=overwrite,
            hashes=self.hashes,
            columns=self.column if self.meta.columns else None,
            delta_rows=self.delta_rows,
            delta_vectors=self.delta_vectors,
            same_index_as=same_index_as,
        )
        self._contents = persist.folder_contents(self.path) if self.has_content else None
        if self.meta.columns:
            self._columns = persist.folder_columns(self.path)
        return self.path

    @classmethod
    def load(cls, path: str | Path, *, image_root: str | Path | None = None) -> SimilarityIndex:
        """Open a saved index; ``image_root`` overrides where its images are (they moved)."""
        index, meta, rows = persist.load_files(path)
        out = cls(
            index,
            meta,
            rows["ids"],
            rows["labels"],
            rows["source"],
            path=Path(path),
            order=rows.get("order"),
            contents=persist.folder_contents(path) if meta.has_content else None,
            hashes=rows.get("content_hash"),
            columns=persist.folder_columns(path) if meta.columns else None,
            column_names=meta.columns,
            delta_rows=rows.get("delta_rows"),
            delta_vectors=rows.get("delta_vectors"),
        )
        if image_root is not None:
            out.set_image_root(image_root)
        return out

    def close(self) -> None:
        """Close the source stores opened for re-ranking or contents (reopened on demand)."""
        self._sources.close()

    @property
    def closer(self) -> str:
        """``"higher"`` or ``"lower"``: which scores are closer."""
        return "higher" if higher_is_closer(self.metric) else "lower"
