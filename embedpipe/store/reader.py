"""Read-only access to a feature store: whole arrays, slices, gathers and batches.

Rows come back in the source's order: a finished store is stored sorted by source position
(:mod:`embedpipe.store.reorder`); an unfinished one (an interrupted encode) is read through a
permutation. Schema-1 stores (no positions: rows in encode order) open read-only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import FingerprintMismatchError, Fix, StoreError, UnknownKeyError
from . import format as fmt
from .checks import BlockChecks
from .flags import clear_write_flags
from .lock import StoreLock

log = logging.getLogger(__name__)
_CRC = "CRC-32 mismatch"


@dataclass
class Batch:
    """One batch of rows read from a store."""

    start: int
    features: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    positions: np.ndarray | None = None


def open_h5(path: Path, mode: str = "r") -> h5py.File:
    """Open an HDF5 store, falling back to SWMR read for a file whose writer is active or died.

    A file whose writer died while it had the file open outside SWMR mode (the finish of an
    encode) carries HDF5's "open for write" flag, which no reader gets past: when the store's
    writer lock is free (so that writer is dead), the flag is cleared and the committed rows are
    checked against their checksums before the file is used.
    """
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
                if recover_dead_writer(path):
                    return h5py.File(path, mode)
                e = e2
        raise StoreError(
            f"cannot open feature store {str(path)!r}: {e}. The file is truncated or not an "
            "embedpipe store; delete it and encode again."
        ) from e


def _all_finite_fast(x: np.ndarray) -> bool:
    """True when every value is finite, or (rarely) False for finite values too large to
    square: one BLAS pass (NaN and Inf propagate through a dot product); callers confirm a
    False with an exact check."""
    v = np.ascontiguousarray(x).reshape(-1)
    if v.dtype != np.float32:
        return bool(np.isfinite(v.sum(dtype=np.float64)))
    return bool(np.isfinite(np.dot(v, v)))


def recover_dead_writer(path: Path, lock: StoreLock | None = None) -> bool:
    """Clear the write flags a dead writer left in ``path`` and check its rows' checksums.

    ``lock``: the store's writer lock, already held by the caller; else it is taken here
    without waiting, and a live writer (the lock is busy) means nothing is done. Returns True
    when flags were cleared.

    Raises
    ------
    StoreError
        When the committed rows fail their checksums (the file is damaged, not only flagged).
    """
    own = lock is None
    if own:
        try:
            lock = StoreLock(path, wait=False).acquire()
        except (StoreError, OSError):
            return False  # a live writer holds it, or the folder is read-only
    try:
        if not clear_write_flags(path):
            return False
        with FeatureStore(path) as fs:
            fs.check_checksums()
            n = len(fs)
        log.warning(
            "%s: cleared the 'open for write' flag its dead writer left; %d committed rows "
            "pass their checksums",
            path,
            n,
        )
        return True
    finally:
        if own and lock is not None:
            lock.release()


class FeatureStore:
    """A feature store opened for reading.

    Rows past the last committed row (a crashed writer's partial batch) are invisible.

    Parameters
    ----------
    path
        The ``.h5`` file (or the master file of a sharded store).

    Examples
    --------
    >>> import numpy as np
    >>> from embedpipe.store import StoreWriter
    >>> w = StoreWriter.create("demo.h5", dim=3, fingerprint="fp", backbone={"name": "demo"},
    ...                        classes=["neg", "pos"], precision="fp32")
    >>> w.append(np.eye(3), ["c", "a", "b"], [bytes(16)] * 3, labels=[1, 0, 1],
    ...          positions=[2, 0, 1], contents=["third", "first", "second"])
    >>> w.finalize()
    >>> with FeatureStore("demo.h5") as fs:
    ...     X, y = fs.features, fs.labels
    ...     print(fs.ids.tolist(), fs.contents.tolist(), y.tolist(), fs.precision)
    ['a', 'b', 'c'] ['first', 'second', 'third'] [0, 1, 1] fp32
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
        return fmt.flag(self._f.attrs["complete"])

    @property
    def schema_version(self) -> int:
        return fmt.schema_version(self._f)

    @property
    def precision(self) -> str:
        """What the features were computed at (``"fp32"``, ``"bf16"``, ``"bf16+fp32"`` when
        mixed on purpose); for a schema-1 store what its encode recorded, else ``""``."""
        p = self._f.attrs.get("precision")
        if p is None:
            p = fmt.loads(self._f.attrs.get("extra", "{}")).get("precision", "")
        return str(p.decode() if isinstance(p, bytes) else p)

    @property
    def feature_dtype(self) -> str:
        """The on-disk feature dtype (``"float32"`` or ``"float16"``)."""
        return str(self.dtype)

    @property
    def provenance(self) -> dict[str, Any]:
        """Every root attribute, JSON fields decoded."""
        out: dict[str, Any] = {}
        for k, v in self._f.attrs.items():
            if k in ("backbone", "versions", "extra", "shards"):
                v = fmt.loads(v)
            elif k == "complete":
                v = fmt.flag(v)
            elif isinstance(v, np.generic):
                v = v.item()
            elif isinstance(v, bytes):
                v = v.decode()
            out[k] = v
        out["n_rows"] = self._n
        out["dim"] = self.dim
        out["dtype"] = str(self.dtype)
        return out

    @property
    def n_expected(self) -> int | None:
        """How many items the encode was given (known for schema-2 stores), or None."""
        n = self._f.attrs.get("n_source_items")
        if n is not None:
            return int(n)
        source = fmt.loads(self._f.attrs.get("extra", "{}")).get("source", {})
        return int(source["n_items"]) if isinstance(source.get("n_items"), int) else None

    def require_complete(self, allow_incomplete: bool = False) -> None:
        """The one rule for using an unfinished store (an interrupted encode): refused unless
        ``allow_incomplete``; training, evaluation, export and indexing all apply it.

        Raises
        ------
        StoreError
            ``'x.h5' holds 1,152 of 3,000 rows: its encode was interrupted; finish the encode
            (run it again) or pass allow_incomplete=True``.
        """
        if allow_incomplete or self.complete:
            return
        total = self.n_expected
        of = f" of {total:,}" if total is not None else ""
        raise StoreError(
            f"{str(self.path)!r} holds {self._n:,}{of} rows: its encode was interrupted; finish "
            "the encode (run the same command again)",
            Fix(" or pass ", allow_incomplete=True, does=" to use the rows it has"),
            ".",
        )

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

    # ---- row order ----------------------------------------------------------------------
    @cached_property
    def _perm(self) -> np.ndarray | None:
        """Physical row of each public row, or None when stored in source order."""
        if "shards" in self._f.attrs or str(self._f.attrs.get("row_order", "")) == "source":
            return None
        from .reorder import order_of

        return order_of(self._f)

    def _rows(self, name: str) -> np.ndarray:
        ds = self._f[name]
        try:
            raw = ds.asstr()[: self._n].astype(object) if ds.dtype.kind == "O" else ds[: self._n]
        except OSError as e:  # a chunk whose Fletcher-32 checksum fails, or a truncated file
            raise self._damaged(name, 0, self._n, e) from e
        return raw if self._perm is None else raw[self._perm]

    # ---- row metadata -------------------------------------------------------------------
    @cached_property
    def ids(self) -> np.ndarray:
        return self._rows(fmt.IDS)

    @cached_property
    def labels(self) -> np.ndarray:
        return self._rows(fmt.LABELS).astype(np.int64)

    @cached_property
    def classes(self) -> list[str]:
        return list(fmt.loads(self._f[fmt.LABELS].attrs.get("classes", "[]")))

    @cached_property
    def content_hashes(self) -> np.ndarray:
        return self._rows(fmt.HASHES)

    @cached_property
    def positions(self) -> np.ndarray:
        """Each row's index in the source it was encoded from (ascending); a schema-1 store,
        which did not record them, gives its row numbers."""
        if fmt.POSITIONS not in self._f:
            return np.arange(self._n, dtype=np.int64)
        return self._rows(fmt.POSITIONS).astype(np.int64)

    @cached_property
    def contents(self) -> np.ndarray:
        """What a person needs to recognise each row's item: its text (cut to 2,000
        characters) or its path / URL / key (:func:`embedpipe.data.base.reference`); the ids
        for a schema-1 store."""
        if fmt.CONTENT not in self._f:
            return self.ids
        return self._rows(fmt.CONTENT)

    @property
    def column_names(self) -> list[str]:
        """Kept user columns (``--keep-columns``)."""
        return sorted(self._f[fmt.COLUMNS]) if fmt.COLUMNS in self._f else []

    def column(self, name: str) -> np.ndarray:
        """The values of kept user column ``name``, one per row."""
        if name not in self.column_names:
            import difflib

            near = difflib.get_close_matches(name, self.column_names, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; it keeps {self.column_names}."
            raise UnknownKeyError(f"store {str(self.path)!r} keeps no column {name!r}{hint}")
        return self._rows(fmt.column_path(name))

    def to_pandas(self, features: bool = True) -> Any:
        """The rows as a :class:`pandas.DataFrame` (see :func:`embedpipe.store.export.to_pandas`)."""
        from .export import to_pandas

        return to_pandas(self, features=features)

    def to_arrow(self, features: bool = True) -> Any:
        """The rows as a :class:`pyarrow.Table` (see :func:`embedpipe.store.export.to_arrow`)."""
        from .export import to_arrow

        return to_arrow(self, features=features)

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
            raise UnknownKeyError(f"ids not in store {str(self.path)!r}: {missing[:5]}")
        return np.array([row_of[i] for i in ids], dtype=np.int64)

    # ---- features -----------------------------------------------------------------------
    @property
    def features(self) -> np.ndarray:
        """All committed features as one float32 array (loads them into memory)."""
        return self.read(slice(0, self._n))

    def read(self, rows: slice | Sequence[int] | np.ndarray) -> np.ndarray:
        """Features of a slice or of row numbers (any order, repeats allowed), as float32.

        Every block of rows read is checked against its stored CRC-32 (once per open store)
        and every row read must be finite: a damaged block or a NaN / Inf row raises
        :class:`StoreError` naming the rows, instead of handing damaged features on.
        """
        ds = self._f[fmt.FEATURES]
        if isinstance(rows, slice):
            start, stop, step = rows.indices(self._n)
            if self._perm is not None:
                return self._gather(ds, self._perm[start:stop:step])
            if step < 0:
                return self._gather(ds, np.arange(start, stop, step, dtype=np.int64))
            return np.asarray(self._physical(ds, start, max(start, stop))[::step], np.float32)
        idx = np.asarray(rows, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self._n):
            raise IndexError(f"row out of range 0..{self._n - 1} in {str(self.path)!r}")
        return self._gather(ds, idx if self._perm is None else self._perm[idx])

    @cached_property
    def _checks(self) -> BlockChecks | None:
        return BlockChecks.of(self.path, self._f, self._n)

    def _physical(self, ds: h5py.Dataset, lo: int, hi: int) -> np.ndarray:
        """Physical feature rows ``lo .. hi - 1`` as stored; each block they lie in is checked
        once per open store (its CRC-32, finite values)."""
        checks = self._checks
        if checks is None:  # a schema-1 store: no CRCs, finite values checked at every read
            data = self._raw(ds, lo, hi)
            self._check_finite(data, lo)
            return data
        if hi > lo:
            a, b = checks.span(lo, hi)
            if checks.unchecked(a, b):  # read the whole blocks (HDF5 reads whole chunks anyway)
                s0, s1 = int(checks.starts[a]), int(checks.stops[b - 1])
                data = self._raw(ds, s0, s1)
                checks.check(
                    a,
                    b,
                    data,
                    s0,
                    lambda s, e: self._damaged(fmt.FEATURES, s, e, _CRC),
                    self._check_finite,
                )
                return data[lo - s0 : hi - s0]
        return self._raw(ds, lo, hi)

    def _raw(self, ds: h5py.Dataset, lo: int, hi: int) -> np.ndarray:
        try:
            return ds[lo:hi]
        except OSError as e:
            raise self._damaged(fmt.FEATURES, lo, hi, e) from e

    def _check_finite(self, x: np.ndarray, first: int) -> None:
        """A NaN / Inf row (the writer refuses them: the file was changed) is an error naming
        the row, not a training traceback or a row an index drops silently. ``x``: physical
        rows from ``first``."""
        if x.size and not _all_finite_fast(x):
            bad = first + np.flatnonzero(~np.isfinite(x).all(axis=1))
            if bad.size == 0:
                return  # finite rows whose sum overflowed
            perm = self._perm
            public = bad if perm is None else np.flatnonzero(np.isin(perm, bad))
            ids = self._f[fmt.IDS]
            names = [ids.asstr()[int(r)] for r in bad[:3]]
            raise StoreError(
                f"{str(self.path)!r}: non-finite features (NaN or Inf) in row {int(public[0])} "
                f"(id {names[0]!r}){f' and {bad.size - 1} more' if bad.size > 1 else ''}; the "
                "file was changed after its encode. Delete it and encode again",
                Fix(", or re-encode it with ", overwrite=True),
                ".",
            )

    def _gather(self, ds: h5py.Dataset, idx: np.ndarray) -> np.ndarray:
        """Physical rows ``idx`` (any order, repeats allowed), read run by run."""
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
            out[pos : pos + run.size] = self._physical(ds, int(run[0]), int(run[-1]) + 1)
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
        if rows is None and self._perm is None:
            has_pos = fmt.POSITIONS in self._f
            for start in range(0, self._n, batch_size):
                stop = min(self._n, start + batch_size)
                # ids, labels and positions are read per batch too: memory stays flat in N.
                yield Batch(
                    start,
                    self.read(slice(start, stop)),
                    self._slice(fmt.LABELS, start, stop).astype(np.int64),
                    self._slice(fmt.IDS, start, stop),
                    self._slice(fmt.POSITIONS, start, stop).astype(np.int64)
                    if has_pos
                    else np.arange(start, stop, dtype=np.int64),
                )
        else:
            rows = np.arange(self._n) if rows is None else np.asarray(rows, dtype=np.int64)
            for start in range(0, rows.size, batch_size):
                r = rows[start : start + batch_size]
                yield Batch(start, self.read(r), self.labels[r], self.ids[r], self.positions[r])

    def _slice(self, name: str, start: int, stop: int) -> np.ndarray:
        """Physical rows of a row dataset; a damaged chunk is a :class:`StoreError`."""
        ds = self._f[name]
        try:
            return ds.asstr()[start:stop].astype(object) if ds.dtype.kind == "O" else ds[start:stop]
        except OSError as e:
            raise self._damaged(name, start, stop, e) from e

    def verify(self) -> None:
        """Check the store end to end: complete, consistent sizes, unique ids, unique skip
        records, positions in source order, every chunk's checksum, finite features.

        Raises
        ------
        StoreError
            Naming what is wrong and the fix.
        """
        where = repr(str(self.path))
        if not self.complete:
            raise StoreError(
                f"{where} is incomplete ({self._n} rows committed): its encode was "
                "interrupted. Run the same encode again to resume it."
            )
        for name in fmt.row_datasets(self._f):
            if self._f[name].shape[0] < self._n:
                raise StoreError(f"{where}: dataset {name!r} is shorter than features.")
        ids = self.ids.tolist()
        if len(set(ids)) != self._n:
            raise StoreError(
                f"{where}: duplicate ids.", Fix(" Re-encode it with ", overwrite=True, does=".")
            )
        err_ids = [i for i, _ in self.errors]
        if len(set(err_ids)) != len(err_ids):
            raise StoreError(
                f"{where}: an item is recorded as skipped more than once (made by an older "
                "embedpipe)",
                Fix("; re-encode it with ", overwrite=True),
                ".",
            )
        if fmt.POSITIONS in self._f and self._n > 1:
            pos = self.positions
            if not bool((np.diff(pos) > 0).all()):
                raise StoreError(f"{where}: rows are not in source order (repeated positions).")
        self.check_checksums()
        for b in self._checked_batches():
            if not np.isfinite(b.features).all():
                bad = b.ids[~np.isfinite(b.features).all(axis=1)]
                raise StoreError(f"{where}: non-finite features for ids {bad[:5].tolist()}.")

    def check_checksums(self) -> None:
        """Read every committed row of the checksummed datasets (their chunks' Fletcher-32) and
        compare each block of feature rows with its CRC-32; complete or interrupted stores.

        Raises
        ------
        StoreError
            Naming the dataset and the damaged rows.
        """
        for name in fmt.CHECKSUMMED:
            if name in self._f and not self._f[name].is_virtual:
                self._check_chunks(name)
        if "shards" in self._f.attrs:
            from .shards import shard_paths

            for shard in shard_paths(self.path):
                with FeatureStore(shard) as s:
                    s._check_feature_crcs()
        else:
            self._check_feature_crcs()

    def _check_chunks(self, name: str) -> None:
        ds = self._f[name]
        step = (ds.chunks or (4096,))[0] * 16
        for s in range(0, self._n, step):
            try:
                ds[s : min(self._n, s + step)]
            except OSError as e:
                raise self._damaged(name, s, min(self._n, s + step), e) from e

    def _check_feature_crcs(self) -> None:
        """Compare each block of feature rows with the CRC-32 written beside it."""
        if fmt.FEATURE_CRC not in self._f:
            return  # a schema-1 store: written without checksums
        ds = self._f[fmt.FEATURE_CRC]
        block = int(ds.attrs["block_rows"])
        stored = ds[:]
        expected = -(-self._n // block)
        if not self.complete and stored.shape[0] == self._n // block:
            expected = stored.shape[0]  # an interrupted encode: its open block has no CRC yet
        if stored.shape[0] != expected:
            raise StoreError(
                f"{str(self.path)!r}: {stored.shape[0]} feature checksums for {expected} blocks "
                "of rows; the file was changed outside embedpipe.",
                Fix(" Re-encode it with ", overwrite=True, does="."),
            )
        try:
            for k, (start, stop, crc) in enumerate(
                fmt.feature_crcs(self._f[fmt.FEATURES], min(self._n, expected * block), block)
            ):
                if crc != int(stored[k]):
                    raise self._damaged(fmt.FEATURES, start, stop, "checksum mismatch")
        except OSError as e:
            raise self._damaged(fmt.FEATURES, 0, self._n, e) from e

    def _damaged(self, name: str, start: int, stop: int, e: Exception | str) -> StoreError:
        return StoreError(
            f"{str(self.path)!r}: dataset {name!r} is damaged in rows {start}..{stop - 1} "
            f"(checksum or read failure: {e}). Delete it and encode again",
            Fix(", or re-encode it with ", overwrite=True),
            ".",
        )

    def _checked_batches(self) -> Iterator[Batch]:
        """Physical batches of features (every chunk read, so every checksum checked)."""
        ds = self._f[fmt.FEATURES]
        step = (ds.chunks or (1024,))[0] * 8
        ids = self._f[fmt.IDS]
        for s in range(0, self._n, step):
            stop = min(self._n, s + step)
            try:
                x = np.asarray(ds[s:stop], dtype=np.float32)
            except OSError as e:
                raise self._damaged(fmt.FEATURES, s, stop, e) from e
            yield Batch(s, x, np.empty(0, np.int64), ids.asstr()[s:stop].astype(object))
