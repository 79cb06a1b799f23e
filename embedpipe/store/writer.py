"""Appending to a feature store, crash-safely.

The file is written in HDF5's SWMR mode, whose metadata flush ordering keeps the file readable
whatever instant the writer dies at (SIGKILL included). Rows are appended and flushed first, and
only then is ``n_committed`` advanced: readers ignore rows past it, and a resume continues from
it. A store left behind by a dead writer is rebuilt from its committed rows before appending.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import FeatureValueError, FingerprintMismatchError, StoreError
from . import format as fmt
from .reader import open_h5

log = logging.getLogger(__name__)


def _create_layout(
    f: h5py.File,
    *,
    dim: int,
    dtype: str,
    fingerprint: str,
    backbone: dict[str, Any],
    dataset_digest: str,
    classes: Sequence[str],
    extra: dict[str, Any],
    created: str | None = None,
    versions: dict[str, str] | None = None,
) -> None:
    rows = fmt.chunk_rows(dim, dtype)
    f.create_dataset(
        fmt.FEATURES, shape=(0, dim), maxshape=(None, dim), chunks=(rows, dim), dtype=dtype
    )
    f.create_dataset(fmt.IDS, shape=(0,), maxshape=(None,), chunks=(4096,), dtype=fmt.STR_DTYPE)
    f.create_dataset(
        fmt.HASHES,
        shape=(0, fmt.HASH_BYTES),
        maxshape=(None, fmt.HASH_BYTES),
        chunks=(4096, fmt.HASH_BYTES),
        dtype=np.uint8,
    )
    lab = f.create_dataset(fmt.LABELS, shape=(0,), maxshape=(None,), chunks=(4096,), dtype=np.int64)
    lab.attrs["classes"] = fmt.dumps(list(classes))
    f.create_dataset(fmt.ERR_IDS, shape=(0,), maxshape=(None,), chunks=(256,), dtype=fmt.STR_DTYPE)
    f.create_dataset(
        fmt.ERR_REASONS, shape=(0,), maxshape=(None,), chunks=(256,), dtype=fmt.STR_DTYPE
    )
    a = f.attrs
    a["schema_version"] = fmt.SCHEMA_VERSION
    a["backbone"] = fmt.dumps(backbone)
    a["fingerprint"] = fingerprint
    a["dataset_digest"] = dataset_digest
    a["n_committed"] = np.int64(0)
    a["complete"] = False
    a["versions"] = fmt.dumps(versions or fmt.library_versions())
    a["created"] = created or datetime.now(timezone.utc).isoformat(timespec="seconds")
    a["extra"] = fmt.dumps(extra)


def _append_rows(f: h5py.File, start: int, data: dict[str, np.ndarray]) -> None:
    k = len(data[fmt.IDS])
    for name, values in data.items():
        ds = f[name]
        ds.resize(start + k, axis=0)
        ds[start : start + k] = values


def _recover(path: Path) -> None:
    """Rebuild a store whose writer died: keep exactly its committed rows."""
    tmp = path.with_name(path.name + ".recover")
    src = open_h5(path)  # falls back to SWMR read
    try:
        n = int(src.attrs["n_committed"])
        with h5py.File(tmp, "w", libver="latest") as dst:
            for k, v in src.attrs.items():
                dst.attrs[k] = v
            for name in (
                fmt.FEATURES,
                fmt.IDS,
                fmt.HASHES,
                fmt.LABELS,
                fmt.ERR_IDS,
                fmt.ERR_REASONS,
            ):
                s = src[name]
                m = n if name in (fmt.FEATURES, fmt.IDS, fmt.HASHES, fmt.LABELS) else s.shape[0]
                d = dst.create_dataset(
                    name,
                    shape=(m, *s.shape[1:]),
                    maxshape=(None, *s.shape[1:]),
                    chunks=s.chunks,
                    dtype=s.dtype,
                )
                for k, v in s.attrs.items():
                    d.attrs[k] = v
                step = max(1, s.chunks[0] * 16)
                for i in range(0, m, step):
                    d[i : min(m, i + step)] = s[i : min(m, i + step)]
    finally:
        src.close()
    os.replace(tmp, path)
    log.warning("recovered %s from an interrupted write: %d committed rows kept", path, n)


class StoreWriter:
    """The single writer of a feature store.

    Use :meth:`create` for a new store or :meth:`open_append` to resume an interrupted one (or
    grow a finished one). Every :meth:`append` is committed when it returns.
    """

    def __init__(self, path: Path, f: h5py.File) -> None:
        self.path = path
        self._f = f
        self._n = int(f.attrs["n_committed"])
        self._dim = int(f[fmt.FEATURES].shape[1])
        self._ids: set[str] = set(f[fmt.IDS].asstr()[: self._n].tolist())
        self._n_err = int(f[fmt.ERR_IDS].shape[0])
        for name in (fmt.FEATURES, fmt.IDS, fmt.HASHES, fmt.LABELS):
            f[name].resize(self._n, axis=0)  # drop a dead writer's uncommitted tail
        f.swmr_mode = True

    # ---- opening ------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        dim: int,
        fingerprint: str,
        backbone: dict[str, Any],
        dataset_digest: str = "",
        classes: Sequence[str] = (),
        dtype: str = "float32",
        extra: dict[str, Any] | None = None,
        overwrite: bool = False,
    ) -> StoreWriter:
        """Create a new, empty store (an existing file is an error unless ``overwrite``)."""
        path = Path(path)
        if dtype not in fmt.FEATURE_DTYPES:
            raise StoreError(
                f"feature dtype {dtype!r} is not supported; use one of {fmt.FEATURE_DTYPES}."
            )
        if path.exists() and not overwrite:
            raise StoreError(
                f"{str(path)!r} already exists. Resume or grow it with the same backbone, or pass "
                "overwrite=True (CLI: --overwrite) to start again."
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".creating")
        with h5py.File(tmp, "w", libver="latest") as f:
            _create_layout(
                f,
                dim=dim,
                dtype=dtype,
                fingerprint=fingerprint,
                backbone=backbone,
                dataset_digest=dataset_digest,
                classes=classes,
                extra=extra or {},
            )
        os.replace(tmp, path)
        return cls(path, h5py.File(path, "r+", libver="latest"))

    @classmethod
    def open_append(cls, path: str | Path, *, fingerprint: str) -> StoreWriter:
        """Reopen a store to resume or grow it; its fingerprint must equal ``fingerprint``."""
        path = Path(path)
        with open_h5(path) as f:
            if "shards" in f.attrs:
                raise StoreError(
                    f"{str(path)!r} is a sharded store; resume or grow it with "
                    "encode_sharded(...), or pass overwrite=True (CLI: --overwrite)."
                )
            found = str(f.attrs.get("fingerprint", ""))
            backbone = fmt.loads(f.attrs.get("backbone", "{}"))
        if found != fingerprint:
            raise FingerprintMismatchError(
                f"cannot append to {str(path)!r}",
                fingerprint,
                found,
                f"It holds features of backbone {backbone.get('name')!r}. Write to another file, "
                "or pass overwrite=True (CLI: --overwrite) to replace it.",
            )
        try:
            f = h5py.File(path, "r+", libver="latest")
        except OSError as e:
            if "already open for write" not in str(e) and "file locking" not in str(e).lower():
                raise StoreError(f"cannot open {str(path)!r} for appending: {e}") from e
            _recover(path)
            f = h5py.File(path, "r+", libver="latest")
        if bool(f.attrs["complete"]):
            f.attrs["complete"] = False
        return cls(path, f)

    # ---- state --------------------------------------------------------------------------
    @property
    def n_committed(self) -> int:
        return self._n

    @property
    def committed_ids(self) -> set[str]:
        return self._ids

    @property
    def classes(self) -> list[str]:
        return list(fmt.loads(self._f[fmt.LABELS].attrs["classes"]))

    # ---- writing ------------------------------------------------------------------------
    def append(
        self,
        features: np.ndarray,
        ids: Sequence[str],
        content_hashes: np.ndarray | Sequence[bytes],
        labels: np.ndarray | Sequence[int] | None = None,
    ) -> None:
        """Append rows and commit them. NaN/Inf features or a repeated id raise before writing."""
        k = len(ids)
        features = np.asarray(features)
        if features.shape != (k, self._dim):
            raise StoreError(
                f"append: features of shape {features.shape} for {k} ids; expected ({k}, {self._dim})."
            )
        finite = np.isfinite(features).all(axis=1)
        if not finite.all():
            bad = [ids[i] for i in np.flatnonzero(~finite)[:5]]
            raise FeatureValueError(
                f"NaN/Inf features for items {bad} ({int((~finite).sum())} rows) refused before "
                f"writing to {str(self.path)!r}. Check these inputs, or use precision='fp32' if "
                "half precision overflowed."
            )
        ids_list = [str(i) for i in ids]
        dup = [i for i in ids_list if i in self._ids]
        if dup or len(set(ids_list)) != k:
            dup = dup or [i for i in ids_list if ids_list.count(i) > 1]
            raise StoreError(
                f"append: ids already in {str(self.path)!r}: {dup[:5]}. Ids must be unique."
            )
        if isinstance(content_hashes, np.ndarray):
            hashes = content_hashes.astype(np.uint8).reshape(k, fmt.HASH_BYTES)
        else:
            hashes = np.frombuffer(b"".join(content_hashes), dtype=np.uint8).reshape(
                k, fmt.HASH_BYTES
            )
        labs = (
            np.full(k, -1, np.int64) if labels is None else np.asarray(labels, np.int64).reshape(k)
        )
        if k == 0:
            return
        _append_rows(
            self._f,
            self._n,
            {
                fmt.FEATURES: features.astype(self._f[fmt.FEATURES].dtype, copy=False),
                fmt.IDS: np.array(ids_list, dtype=object),
                fmt.HASHES: hashes,
                fmt.LABELS: labs,
            },
        )
        self._f.flush()
        self._n += k
        self._f.attrs["n_committed"] = np.int64(self._n)
        self._f.flush()
        self._ids.update(ids_list)

    def add_errors(self, ids: Sequence[str], reasons: Sequence[str]) -> None:
        """Record skipped items (``on_error='skip'``) and why."""
        if not ids:
            return
        n = self._n_err
        for name, values in ((fmt.ERR_IDS, ids), (fmt.ERR_REASONS, reasons)):
            ds = self._f[name]
            ds.resize(n + len(ids), axis=0)
            ds[n:] = np.array([str(v) for v in values], dtype=object)
        self._n_err += len(ids)
        self._f.flush()

    def finalize(
        self, dataset_digest: str | None = None, extra: dict[str, Any] | None = None
    ) -> None:
        """Mark the store complete and close it."""
        self._f.close()
        with h5py.File(self.path, "r+", libver="latest") as f:
            if dataset_digest is not None:
                f.attrs["dataset_digest"] = dataset_digest
            if extra:
                merged = fmt.loads(f.attrs.get("extra", "{}"))
                merged.update(extra)
                f.attrs["extra"] = fmt.dumps(merged)
            f.attrs["complete"] = True

    def close(self) -> None:
        """Close without marking complete (the store stays resumable)."""
        if self._f.id.valid:
            self._f.close()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
