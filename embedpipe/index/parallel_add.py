"""FAISS at scale: fill a trained index from store shards in parallel, then merge.

Train the index on a sample on the driver (the index package's job), serialise it empty with
``faiss.serialize_index``, and call :func:`add_shards_to_index`: each worker adds one shard's
vectors to its own copy, returns it serialised, and the driver merges the copies in shard
order. The result equals adding every row on one machine.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ..errors import ConfigError, StoreError
from ..executors import Executor, ExecutorConfig, get_executor
from ..store import FeatureStore
from ..store.shards import is_sharded, read_shard_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AddTask:
    """Add the ``rows`` rows of store ``path``, whose first row is global row ``offset``."""

    index: int
    path: str
    offset: int
    rows: int

    def describe(self) -> str:
        return f"add {Path(self.path).name} ({self.rows} rows at {self.offset})"


def _has_explicit_ids(index: faiss.Index) -> bool:
    return isinstance(faiss.downcast_index(index), (faiss.IndexIDMap, faiss.IndexIDMap2))


def add_rows(
    index: faiss.Index, store: FeatureStore, offset: int, *, normalize: bool, batch_size: int
) -> None:
    """Add a store's rows to ``index`` in batches; their ids are ``offset + row``."""
    explicit = _has_explicit_ids(index)
    for b in store.iter_batches(batch_size):
        x = np.ascontiguousarray(b.features, dtype=np.float32)
        if normalize:
            faiss.normalize_L2(x)
        if explicit:
            index.add_with_ids(
                x, np.arange(offset + b.start, offset + b.start + len(x), dtype=np.int64)
            )
        else:
            index.add(x)


class IndexAddWorker:
    """Runs on a worker: adds one shard to a fresh copy of the empty index, returns it serialised."""

    def __init__(self, normalize: bool, batch_size: int, empty: np.ndarray) -> None:
        self.normalize = normalize
        self.batch_size = batch_size
        self.empty = empty

    def __call__(self, task: AddTask) -> np.ndarray:
        index = faiss.deserialize_index(self.empty)
        with FeatureStore(task.path) as fs:
            if len(fs) != task.rows:
                raise StoreError(
                    f"{task.path!r} holds {len(fs)} rows, expected {task.rows}: it changed during the index build."
                )
            add_rows(index, fs, task.offset, normalize=self.normalize, batch_size=self.batch_size)
        return faiss.serialize_index(index)


def _as_bytes(index: faiss.Index | bytes | np.ndarray) -> np.ndarray:
    if isinstance(index, faiss.Index):
        return faiss.serialize_index(index)
    if isinstance(index, bytes | bytearray | memoryview):
        return np.frombuffer(bytes(index), dtype=np.uint8)
    return np.asarray(index, dtype=np.uint8)


def _parts(stores: str | Path | Sequence[str | Path]) -> list[tuple[str, int]]:
    """``(path, rows)`` of every store to add, in id order: a master expands to its shards."""
    if isinstance(stores, str | Path):
        stores = [stores]
    out: list[tuple[str, int]] = []
    for s in stores:
        p = Path(s).absolute()
        with FeatureStore(p) as fs:  # for a master, this also checks its shards
            n = len(fs)
        if is_sharded(p):
            out += [(str(p.parent / e.file), e.rows) for e in read_shard_table(p) if e.rows]
        else:
            out.append((str(p), n))
    return out


def _mergeable(empty: np.ndarray) -> bool:
    a, b = faiss.deserialize_index(empty), faiss.deserialize_index(empty)
    try:
        a.merge_from(b, 0)
    except RuntimeError:
        return False
    return True


def _merge(into: faiss.Index, part: faiss.Index, explicit: bool) -> None:
    if explicit:
        into.merge_from(part, 0)  # the ids are global already
        return
    try:
        into.merge_from(part, into.ntotal)  # IVF: shift the part's ids 0.. to its global rows
    except RuntimeError as e:
        if "add_id == 0" not in str(e):
            raise
        into.merge_from(part, 0)  # flat codes: ids are positions, appended in order


def add_shards_to_index(
    index: faiss.Index | bytes | np.ndarray,
    stores: str | Path | Sequence[str | Path],
    *,
    executor: Executor | ExecutorConfig | str | Mapping[str, Any] | None = None,
    normalize: bool = False,
    batch_size: int = 16384,
) -> faiss.Index:
    """Add the rows of feature stores to a trained, empty FAISS index, one shard per task.

    Parameters
    ----------
    index
        A trained empty index, or its ``faiss.serialize_index`` bytes / uint8 array.
    stores
        The master of a sharded store (expanded to its shards), or store paths in order.
    executor
        Where the adds run (see :func:`get_executor`); an :class:`Executor` passed in is not
        closed here.
    normalize
        L2-normalise vectors before adding (cosine similarity with an inner-product index).
    batch_size
        Rows read and added at a time (memory per worker stays flat).

    Returns
    -------
    faiss.Index
        The filled index. **Id order:** the id of a vector is its row number in the
        concatenation of ``stores`` in the order given; for a sharded master, its row in the
        master. This is exactly what ``index.add(FeatureStore(master).features)`` gives, and
        the merged index equals that sequential add (same inverted lists in the same order;
        byte-identical for Flat, IVF-Flat/PQ/SQ and ``IDMap`` indexes whose vectors need no
        transform). An ``IndexIDMap``/``IDMap2`` gets these row numbers as explicit ids.
        Indexes that cannot be merged (HNSW) are filled on the driver, shard after shard,
        with a warning.

    Raises
    ------
    ConfigError
        The index is untrained or not empty.

    Examples
    --------
    >>> from embedpipe import encode, load_backbone, open_source
    >>> enc = load_backbone("resnet18", weights=None, crop_size=32, resize_size=32)
    >>> res = encode(open_source("builtin:digits?limit=20"), enc, "x.h5", n_shards=2,
    ...              batch_size=8, progress=False)
    >>> with FeatureStore("x.h5") as fs:
    ...     sample = np.ascontiguousarray(fs.features[:], dtype=np.float32)
    >>> empty = faiss.index_factory(512, "IVF2,Flat")
    >>> empty.train(sample)
    >>> full = add_shards_to_index(empty, "x.h5", executor="local")
    >>> full.ntotal
    20
    """
    empty = _as_bytes(index)
    probe = faiss.deserialize_index(empty)
    if not probe.is_trained:
        raise ConfigError(
            f"the {type(faiss.downcast_index(probe)).__name__} index is not trained; train it on a sample first."
        )
    if probe.ntotal:
        raise ConfigError(
            f"the index already holds {probe.ntotal} vectors; pass it empty (trained only)."
        )
    explicit = _has_explicit_ids(probe)
    parts = _parts(stores)
    offsets = np.concatenate([[0], np.cumsum([r for _, r in parts])]).astype(int).tolist()
    tasks = [AddTask(k, p, offsets[k], r) for k, (p, r) in enumerate(parts)]
    if not _mergeable(empty):
        log.warning(
            "%s indexes cannot be merged; adding %d shards on the driver one after another",
            type(faiss.downcast_index(probe)).__name__,
            len(tasks),
        )
        for t in tasks:
            with FeatureStore(t.path) as fs:
                add_rows(probe, fs, t.offset, normalize=normalize, batch_size=batch_size)
        return probe
    owned = not isinstance(executor, Executor)
    ex = executor if isinstance(executor, Executor) else get_executor(executor)
    merged = probe
    try:
        # Parts arrive in any order; merge them in shard order so the lists match a sequential add.
        waiting: dict[int, np.ndarray] = {}
        next_k = 0
        for c in ex.map(
            functools.partial(IndexAddWorker, normalize, batch_size), tasks, shared=empty
        ):
            waiting[c.index] = c.value
            while next_k in waiting:
                _merge(merged, faiss.deserialize_index(waiting.pop(next_k)), explicit)
                next_k += 1
    finally:
        if owned:
            ex.close()
    return merged
