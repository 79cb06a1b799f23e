"""Several feature stores of one backbone seen as one row space, read out-of-core."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, FingerprintMismatchError, Fix, StoreError
from ..store import FeatureStore

# Above this share of a store's rows, a sample is read by one sequential pass rather than
# by gathering rows one by one.
_SEQUENTIAL_DENSITY = 1 / 256
# ... unless they form at most this many contiguous runs (rows appended by an update).
_MAX_RUNS = 64


@dataclass
class SourceInfo:
    """Where a slice of the index's rows came from."""

    path: str
    n_rows: int
    offset: int
    fingerprint: str
    dataset_digest: str
    image_root: str | None
    provenance: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def as_hashes(raw: np.ndarray) -> np.ndarray:
    """Content hashes as a 1-d array of 16-byte strings (stores give ``[N, 16]`` bytes)."""
    arr = np.asarray(raw)
    if arr.ndim == 2:
        return np.ascontiguousarray(arr, np.uint8).view("S16").reshape(-1)
    return arr.astype("S16")


def read_contents(fs: FeatureStore, rows: np.ndarray) -> list[str | None]:
    """What identifies each of ``rows`` of ``fs`` (text, or image path / URL / key), ``None``
    where the store does not record it (schema v1 stores).

    Uses the store's own reader (``read_contents(rows)``, else ``contents``).
    """
    rows = np.asarray(rows, np.int64)
    reader = getattr(fs, "read_contents", None)
    if callable(reader):
        return [None if c is None else str(c) for c in reader(rows)]
    contents = getattr(fs, "contents", None)
    if callable(contents):
        contents = contents()
    if contents is None:
        return [None] * len(rows)
    arr = np.asarray(contents, dtype=object)
    return [None if arr[r] is None else str(arr[r]) for r in rows.tolist()]


def has_contents(fs: FeatureStore) -> bool:
    """True when ``fs`` records content that says more than the ids (schema v2 stores whose
    source gave each item a text, path, URL or key; a store of bare arrays records its ids)."""
    contents = getattr(fs, "contents", None)
    if callable(contents):
        contents = contents()
    if contents is None or len(fs) == 0:
        return False
    return bool(np.any(np.asarray(contents, dtype=object) != np.asarray(fs.ids, dtype=object)))


def _image_root(fs: FeatureStore) -> str | None:
    """The folder an image store's ids are relative paths in (image-folder sources only)."""
    extra = fs.provenance.get("extra") or {}
    src = extra.get("source") if isinstance(extra, dict) else None
    if isinstance(src, dict) and src.get("kind") == "ImageFolderSource" and src.get("root"):
        return str(src["root"])
    return None


class StoreSet:
    """Feature stores of one backbone, concatenated: global row ``r`` is row ``r - offset`` of
    the store it falls in.

    Parameters
    ----------
    stores
        Paths of ``.h5`` stores, or open :class:`FeatureStore` objects (left open on close).
    prefix_ids
        Prefix every id with its store's file name (``"train/42"``) so ids repeated across
        stores (e.g. splits numbered from 0) stay unique.
    image_root
        Folder the ids are relative image paths in, for every store; default: the folder an
        image-folder store was encoded from, if any.
    merge
        Load and merge ids, labels and classes (``False``: row reads only).

    Raises
    ------
    FingerprintMismatchError
        The stores were encoded by different backbones.
    StoreError
        A store is incomplete or empty.
    ConfigError
        Ids repeat across stores (and ``prefix_ids`` is off).
    """

    def __init__(
        self,
        stores: Sequence[str | Path | FeatureStore] | str | Path | FeatureStore,
        *,
        prefix_ids: bool = False,
        image_root: str | Path | None = None,
        merge: bool = True,
        allow_incomplete: bool = False,
    ) -> None:
        self.allow_incomplete = allow_incomplete
        if isinstance(stores, str | Path | FeatureStore):
            stores = [stores]
        if not stores:
            raise ConfigError("no feature store given; pass at least one .h5 store.")
        self._owned: list[FeatureStore] = []
        self.stores: list[FeatureStore] = []
        try:
            for s in stores:
                if isinstance(s, FeatureStore):
                    self.stores.append(s)
                else:
                    fs = FeatureStore(s)
                    self._owned.append(fs)
                    self.stores.append(fs)
            self._check()
            if merge:
                self._merge(prefix_ids, image_root)
            else:  # row access only (re-ranking, contents): no ids loaded
                sizes = [len(fs) for fs in self.stores]
                self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        except BaseException:
            self.close()
            raise

    # ---- validation and merging ------------------------------------------------------------
    def _check(self) -> None:
        first = self.stores[0]
        for fs in self.stores:
            fs.require_complete(self.allow_incomplete)
            if len(fs) == 0:
                raise StoreError(f"{str(fs.path)!r} holds no rows; encode some data into it first.")
            if fs.fingerprint != first.fingerprint:
                raise FingerprintMismatchError(
                    f"store {str(fs.path)!r} cannot join an index with {str(first.path)!r}",
                    first.fingerprint,
                    fs.fingerprint,
                    f"They were encoded by different backbones ({first.backbone.get('name')!r} "
                    f"vs {fs.backbone.get('name')!r}); an index holds one backbone's features. "
                    "Encode every store with the same backbone, layer and pooling.",
                )
            if fs.dim != first.dim:
                raise StoreError(
                    f"{str(fs.path)!r} has dimension {fs.dim}, {str(first.path)!r} {first.dim}."
                )

    def _merge(self, prefix_ids: bool, image_root: str | Path | None) -> None:
        classes: list[str] = []
        pos: dict[str, int] = {}
        ids, labels, source, hashes = [], [], [], []
        stems = [fs.path.stem for fs in self.stores]
        if len(set(stems)) != len(stems):
            stems = [f"{i}-{s}" for i, s in enumerate(stems)]
        self.offsets = np.zeros(len(self.stores) + 1, np.int64)
        for i, fs in enumerate(self.stores):
            remap = np.empty(len(fs.classes) + 1, np.int64)
            remap[-1] = -1  # label -1 (none) indexes the last slot
            for c, name in enumerate(fs.classes):
                if name not in pos:
                    pos[name] = len(classes)
                    classes.append(name)
                remap[c] = pos[name]
            store_ids = fs.ids
            if prefix_ids:
                store_ids = np.array([f"{stems[i]}/{x}" for x in store_ids.tolist()], dtype=object)
            ids.append(store_ids)
            labels.append(remap[fs.labels])
            source.append(np.full(len(fs), i, np.int16))
            hashes.append(as_hashes(fs.content_hashes))
            self.offsets[i + 1] = self.offsets[i] + len(fs)
        self.ids: np.ndarray = np.concatenate(ids)
        self.labels: np.ndarray = np.concatenate(labels)
        self.source: np.ndarray = np.concatenate(source)
        #: Each row's content hash (16 bytes): with the id, what an index update compares.
        self.hashes: np.ndarray = np.concatenate(hashes)
        self.classes = classes
        if len(self.stores) > 1:
            uniq, counts = np.unique(self.ids.astype(str), return_counts=True)
            if (counts > 1).any():
                dup = uniq[counts > 1][:5].tolist()
                raise ConfigError(
                    f"ids repeat across the stores {[str(fs.path) for fs in self.stores]} "
                    f"(e.g. {dup}); ids must be unique in an index.",
                    Fix(
                        " Pass ", prefix_ids=True, does=" to prefix each id with its store's name."
                    ),
                )
        self.image_roots = [
            str(Path(image_root).expanduser().resolve())
            if image_root is not None
            else _image_root(fs)
            for fs in self.stores
        ]

    # ---- properties -------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def dim(self) -> int:
        return self.stores[0].dim

    @property
    def fingerprint(self) -> str:
        return self.stores[0].fingerprint

    @property
    def backbone(self) -> dict[str, Any]:
        return self.stores[0].backbone

    @property
    def modality(self) -> str:
        return str(self.backbone.get("modality", "image"))

    def infos(self) -> list[SourceInfo]:
        """One :class:`SourceInfo` per store."""
        out = []
        for i, fs in enumerate(self.stores):
            prov = {k: v for k, v in fs.provenance.items() if k != "backbone"}
            out.append(
                SourceInfo(
                    path=str(fs.path.resolve()),
                    n_rows=len(fs),
                    offset=int(self.offsets[i]),
                    fingerprint=fs.fingerprint,
                    dataset_digest=fs.dataset_digest,
                    image_root=self.image_roots[i],
                    provenance=prov,
                )
            )
        return out

    # ---- reading ----------------------------------------------------------------------------
    def iter_batches(self, batch_size: int = 65536) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first global row, float32 features)`` over every row, store after store."""
        for i, fs in enumerate(self.stores):
            for b in fs.iter_batches(batch_size):
                yield int(self.offsets[i]) + b.start, b.features

    def _by_store(self, rows: np.ndarray) -> Iterator[tuple[FeatureStore, np.ndarray, np.ndarray]]:
        """``(store, positions in rows, its local rows)`` for each store holding some ``rows``."""
        which = np.searchsorted(self.offsets, rows, side="right") - 1
        for i, fs in enumerate(self.stores):
            sel = np.flatnonzero(which == i)
            if sel.size:
                yield fs, sel, rows[sel] - self.offsets[i]

    def read_rows(self, rows: np.ndarray, batch_size: int = 65536) -> np.ndarray:
        """Features of global ``rows`` (any order), read without loading a store whole."""
        rows = np.asarray(rows, np.int64)
        out = np.empty((rows.size, self.dim), np.float32)
        if rows.size == 0:
            return out
        if rows.min() < 0 or rows.max() >= len(self):
            raise IndexError(f"row out of range 0..{len(self) - 1}")
        for fs, sel, local in self._by_store(rows):
            uniq = np.unique(local)
            runs = 1 + int(np.count_nonzero(np.diff(uniq) != 1))
            if sel.size < len(fs) * _SEQUENTIAL_DENSITY or runs <= _MAX_RUNS:
                out[sel] = fs.read(local)  # few rows, or a few contiguous runs of them
                continue
            order = np.argsort(local, kind="stable")
            sorted_local = local[order]
            for b in fs.iter_batches(batch_size):
                lo, hi = np.searchsorted(sorted_local, [b.start, b.start + len(b.features)])
                if hi > lo:
                    out[sel[order[lo:hi]]] = b.features[sorted_local[lo:hi] - b.start]
        return out

    @property
    def column_names(self) -> list[str]:
        """Kept user columns of any store (``--keep-columns``), sorted."""
        return sorted({c for fs in self.stores for c in getattr(fs, "column_names", [])})

    def column(self, name: str) -> np.ndarray:
        """Kept column ``name`` over every row (``""`` in stores that do not keep it)."""
        parts = []
        for fs in self.stores:
            if name in getattr(fs, "column_names", []):
                parts.append(np.asarray(fs.column(name), dtype=object))
            else:
                parts.append(np.full(len(fs), "", dtype=object))
        return np.concatenate(parts)

    def has_contents(self) -> bool:
        """True when some store records its rows' content."""
        return any(has_contents(fs) for fs in self.stores)

    def read_contents(self, rows: np.ndarray) -> list[str | None]:
        """Content of global ``rows`` (any order); ``None`` where a store has none."""
        rows = np.asarray(rows, np.int64)
        out: list[str | None] = [None] * rows.size
        if rows.size == 0:
            return out
        for fs, sel, local in self._by_store(rows):
            order = np.argsort(local, kind="stable")
            got = read_contents(fs, local[order])
            for j, c in zip(sel[order].tolist(), got, strict=True):
                out[j] = c
        return out

    # ---- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        for fs in self._owned:
            fs.close()
        self._owned = []

    def __enter__(self) -> StoreSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
