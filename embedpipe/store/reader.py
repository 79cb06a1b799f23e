"""Read-only access to a feature store: whole arrays, slices, gathers and batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import FingerprintMismatchError, StoreError
from . import format as fmt


@dataclass
class Batch:
    """One batch of rows read from a store."""

    start: int
    features: np.ndarray
    labels: np.ndarray
    ids: np.ndarray


def open_h5(path: Path, mode: str = "r") -> h5py.File:
    """Open an HDF5 store, falling back to SWMR read for a file whose writer is active or died."""
    if not path.exists():
        siblings = sorted(p.name for p in path.parent.glob("*.h5")) if path.parent.is_dir() else []
        hint = f" Stores in {path.parent}: {', '.join(siblings)}." if siblings else ""
        raise StoreError(f"feature store {str(path)!r} does not exist.{hint}")
    try:
        return h5py.File(path, mode)
    except OSError as e:
        if mode == "r" and "already open for write" in str(e):
            try:
                return h5py.File(path, "r", libver="latest", swmr=True)
            except OSError as e2:
                e = e2
        raise StoreError(
            f"cannot open feature store {str(path)!r}: {e}. The file is truncated or not an "
            "embedpipe store; delete it and encode again."
        ) from e


class FeatureStore:
    """A feature store opened for reading.

    Rows past the last committed row (a crashed writer's partial batch) are invisible.

    Parameters
    ----------
    path
        The ``.h5`` file (or the master file of a sharded store).

    Examples
    --------
    >>> with FeatureStore("cache/reviews.h5") as fs:  # doctest: +SKIP
    ...     X, y = fs.features, fs.labels
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._f = open_h5(self.path)
        try:
            attrs = self._f.attrs
            if "schema_version" not in attrs or fmt.FEATURES not in self._f:
                raise StoreError(
                    f"{str(self.path)!r} is an HDF5 file but not an embedpipe feature store "
                    "(no schema_version / features). Encode it with `embedpipe encode`."
                )
            if int(attrs["schema_version"]) > fmt.SCHEMA_VERSION:
                raise StoreError(
                    f"{str(self.path)!r} has schema version {int(attrs['schema_version'])}, newer "
                    f"than this embedpipe understands ({fmt.SCHEMA_VERSION}); upgrade embedpipe."
                )
            if "shards" in attrs:  # a sharded master: HDF5 would fill missing shards silently
                from .shards import check_shards

                check_shards(self.path, self._f)
            self._n = int(attrs["n_committed"])
            ds = self._f[fmt.FEATURES]
            if ds.shape[0] < self._n:
                raise StoreError(
                    f"{str(self.path)!r} claims {self._n} committed rows but holds "
                    f"{ds.shape[0]}: the file is truncated. Delete it and encode again."
                )
        except Exception:
            self._f.close()
            raise

    # ---- context management -------------------------------------------------------------
    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        state = "complete" if self.complete else "incomplete"
        return f"FeatureStore({str(self.path)!r}, n={self._n}, dim={self.dim}, {state})"

    # ---- provenance ---------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self._f[fmt.FEATURES].shape[1])

    @property
    def dtype(self) -> np.dtype:
        return self._f[fmt.FEATURES].dtype

    @property
    def fingerprint(self) -> str:
        return str(self._f.attrs["fingerprint"])

    @property
    def backbone(self) -> dict[str, Any]:
        """The backbone spec (a dict of :class:`embedpipe.backbones.BackboneSpec`)."""
        return fmt.loads(self._f.attrs["backbone"])

    @property
    def dataset_digest(self) -> str:
        return str(self._f.attrs["dataset_digest"])

    @property
    def complete(self) -> bool:
        return bool(self._f.attrs["complete"])

    @property
    def provenance(self) -> dict[str, Any]:
        """Every root attribute, JSON fields decoded."""
        out: dict[str, Any] = {}
        for k, v in self._f.attrs.items():
            if k in ("backbone", "versions", "extra"):
                v = fmt.loads(v)
            elif isinstance(v, np.generic):
                v = v.item()
            elif isinstance(v, bytes):
                v = v.decode()
            out[k] = v
        out["n_rows"] = self._n
        out["dim"] = self.dim
        out["dtype"] = str(self.dtype)
        return out

    def check_fingerprint(self, expected: str, what: str = "features") -> None:
        """Raise :class:`FingerprintMismatchError` unless the store was made by ``expected``."""
        if self.fingerprint != expected:
            raise FingerprintMismatchError(
                f"{what} from {str(self.path)!r}",
                expected,
                self.fingerprint,
                f"The store was made by backbone {self.backbone.get('name')!r}; encode the data "
                "with the same backbone, layer and pooling.",
            )

    # ---- row metadata -------------------------------------------------------------------
    @cached_property
    def ids(self) -> np.ndarray:
        return self._f[fmt.IDS].asstr()[: self._n].astype(object)

    @cached_property
    def labels(self) -> np.ndarray:
        return self._f[fmt.LABELS][: self._n].astype(np.int64)

    @cached_property
    def classes(self) -> list[str]:
        return list(fmt.loads(self._f[fmt.LABELS].attrs.get("classes", "[]")))

    @cached_property
    def content_hashes(self) -> np.ndarray:
        return self._f[fmt.HASHES][: self._n]

    @cached_property
    def errors(self) -> list[tuple[str, str]]:
        """Items skipped at encode time and why (``on_error='skip'``)."""
        if fmt.ERR_IDS not in self._f:
            return []
        ids = self._f[fmt.ERR_IDS].asstr()[:]
        reasons = self._f[fmt.ERR_REASONS].asstr()[:]
        return list(zip(ids.tolist(), reasons.tolist(), strict=True))

    @cached_property
    def _row_of(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.ids.tolist())}

    def index_of(self, ids: Sequence[str]) -> np.ndarray:
        """Row numbers of ``ids``; an unknown id raises ``KeyError`` naming it."""
        row_of = self._row_of
        missing = [i for i in ids if i not in row_of]
        if missing:
            raise KeyError(f"ids not in store {str(self.path)!r}: {missing[:5]}")
        return np.array([row_of[i] for i in ids], dtype=np.int64)

    # ---- features -----------------------------------------------------------------------
    @property
    def features(self) -> np.ndarray:
        """All committed features as one float32 array (loads them into memory)."""
        return self.read(slice(0, self._n))

    def read(self, rows: slice | Sequence[int] | np.ndarray) -> np.ndarray:
        """Features of a slice or of row numbers (any order, repeats allowed), as float32."""
        ds = self._f[fmt.FEATURES]
        if isinstance(rows, slice):
            start, stop, step = rows.indices(self._n)
            return np.asarray(
                ds[start:stop:step] if step != 1 else ds[start:stop], dtype=np.float32
            )
        idx = np.asarray(rows, dtype=np.int64)
        if idx.size == 0:
            return np.empty((0, self.dim), np.float32)
        if idx.min() < 0 or idx.max() >= self._n:
            raise IndexError(f"row out of range 0..{self._n - 1} in {str(self.path)!r}")
        order = np.argsort(idx, kind="stable")
        uniq, inverse = np.unique(idx[order], return_inverse=True)
        # h5py fancy indexing wants increasing unique indices; read contiguous runs as slices.
        out = np.empty((uniq.size, self.dim), np.float32)
        breaks = np.flatnonzero(np.diff(uniq) != 1) + 1
        pos = 0
        for run in np.split(uniq, breaks):
            out[pos : pos + run.size] = ds[int(run[0]) : int(run[-1]) + 1]
            pos += run.size
        result = np.empty((idx.size, self.dim), np.float32)
        result[order] = out[inverse]
        return result

    def iter_batches(
        self, batch_size: int = 8192, rows: np.ndarray | None = None
    ) -> Iterator[Batch]:
        """Yield batches of rows without loading the store whole (flat memory)."""
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        if rows is None:
            for start in range(0, self._n, batch_size):
                stop = min(self._n, start + batch_size)
                # ids and labels are read per batch too: memory stays flat in N.
                yield Batch(
                    start,
                    self.read(slice(start, stop)),
                    self._f[fmt.LABELS][start:stop].astype(np.int64),
                    self._f[fmt.IDS].asstr()[start:stop].astype(object),
                )
        else:
            rows = np.asarray(rows, dtype=np.int64)
            for start in range(0, rows.size, batch_size):
                r = rows[start : start + batch_size]
                yield Batch(start, self.read(r), self.labels[r], self.ids[r])

    def verify(self) -> None:
        """Check the store end to end: complete, unique ids, finite features, consistent sizes."""
        if not self.complete:
            raise StoreError(
                f"{str(self.path)!r} is incomplete ({self._n} rows committed): its encode was "
                "interrupted. Run the same encode again to resume it."
            )
        for name in (fmt.IDS, fmt.HASHES, fmt.LABELS):
            if self._f[name].shape[0] < self._n:
                raise StoreError(f"{str(self.path)!r}: dataset {name!r} is shorter than features.")
        if len(set(self.ids.tolist())) != self._n:
            raise StoreError(f"{str(self.path)!r}: duplicate ids.")
        for b in self.iter_batches():
            if not np.isfinite(b.features).all():
                bad = b.ids[~np.isfinite(b.features).all(axis=1)]
                raise StoreError(
                    f"{str(self.path)!r}: non-finite features for ids {bad[:5].tolist()}."
                )
