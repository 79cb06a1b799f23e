"""Choosing an index: named kinds, FAISS factory strings, and ``auto`` from N, dim and memory.

Each kind is an :class:`~embedpipe.index.kinds.IndexType` in the index-type registry; ``auto``
asks the registered types that allow it, by their ``auto_rank``, and takes the first plan that
fits. With the built-in kinds it picks, in order:

1. **Flat** (exact) when the data is small (N·d ≤ 4M, e.g. 10k × 384) or exact recall is asked:
   brute force is then fast enough and needs no training.
2. **IVF-Flat** when the raw vectors fit the memory budget: quick to train on a sample, added
   in batches, and its one knob (``nprobe``) trades speed for recall smoothly.
3. **IVF-SQ8** (8-bit scalar quantisation, ¼ of the memory, recall close to IVF-Flat's) when
   only a quarter fits.
4. **IVF-PQ** with as many bytes per vector as fit, otherwise; its recall may top out below
   the target, which the build then reports.

HNSW is not chosen automatically: on large N its graph takes far longer to build than IVF's
k-means on a sample, and it cannot be trained once and filled out-of-core as cheaply. Ask for
it with ``kind="hnsw"``.

The number of inverted lists is the power of two nearest 2·√N, capped so that every list has
at least 39 training points (FAISS's minimum) even with tuning queries held out; the training
sample is 50 points per list (at least 10,000).
"""

from __future__ import annotations

import re

from ..errors import Arg, ConfigError, Fix
from ..units import format_bytes
from .kinds import (
    FLAT_MAX_CELLS,
    HNSW_M,
    ID_BYTES,
    INDEX_KINDS,
    INDEX_TYPES,
    MIN_POINTS_PER_LIST,
    TRAIN_POINTS_PER_LIST,
    IndexPlan,
    n_lists,
    n_train,
)

__all__ = [
    "FLAT_MAX_CELLS",
    "HNSW_M",
    "ID_BYTES",
    "INDEX_KINDS",
    "MIN_POINTS_PER_LIST",
    "TRAIN_POINTS_PER_LIST",
    "IndexPlan",
    "default_memory_budget",
    "n_lists",
    "parse_bytes",
    "plan_index",
]

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1e3,
    "kb": 1e3,
    "m": 1e6,
    "mb": 1e6,
    "g": 1e9,
    "gb": 1e9,
    "t": 1e12,
    "tb": 1e12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_bytes(value: int | float | str | None) -> int | None:
    """``"4GB"``, ``"512MiB"``, ``"2g"``, ``1e9`` → bytes; ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, int | float):
        if value <= 0:
            raise ConfigError(f"memory budget {value!r} must be positive.")
        return int(value)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(value))
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _UNITS:
        raise ConfigError(
            f"memory budget {value!r} is not a size; write e.g. '4GB', '512MiB' or a byte count."
        )
    n = int(float(m.group(1)) * _UNITS[unit])
    if n <= 0:
        raise ConfigError(f"memory budget {value!r} must be positive.")
    return n


def default_memory_budget() -> int:
    """Half of this machine's physical memory."""
    import psutil

    return int(psutil.virtual_memory().total // 2)


def _factory_plan(factory: str, n: int, dim: int) -> IndexPlan:
    import faiss

    try:
        index = faiss.index_factory(dim, factory)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1][:200]
        raise ConfigError(
            f"kind {factory!r} is neither a known kind ({', '.join(INDEX_KINDS)}) nor a valid FAISS "
            f"factory string for dimension {dim} ({first}). Examples: 'IVF1024,Flat', "
            "'IVF4096,PQ48x8', 'HNSW32', 'OPQ32,IVF1024,PQ32'."
        ) from None
    rows = 0
    if not index.is_trained:
        try:
            rows = n_train(n, int(faiss.extract_index_ivf(index).nlist))
        except RuntimeError:
            rows = int(min(n, 50_000))
    return IndexPlan("factory", factory, rows, 0, "factory string")


def plan_index(
    n: int,
    dim: int,
    kind: str = "auto",
    *,
    memory_budget: int | str | None = None,
    target_recall: float | None = 0.95,
) -> IndexPlan:
    """Choose the index to build for ``n`` vectors of dimension ``dim``.

    Parameters
    ----------
    n, dim
        Number and dimension of the vectors.
    kind
        ``"auto"``, one of ``"flat"``, ``"ivf"``, ``"ivfsq"``, ``"ivfpq"``, ``"hnsw"``, or any
        FAISS factory string (``"IVF1024,PQ32x8"``).
    memory_budget
        Bytes (or ``"4GB"``) the index may take; ``None``: half the physical memory. Only
        ``auto`` chooses by it; a named kind that exceeds it is built anyway.
    target_recall
        ``auto`` chooses Flat when it is ≥ 1.

    Returns
    -------
    IndexPlan

    Examples
    --------
    >>> plan_index(1_000_000, 384, memory_budget="8GB").factory
    'IVF2048,Flat'
    >>> plan_index(1_000_000, 384, memory_budget="1GB").factory
    'IVF2048,SQ8'
    """
    if n <= 0:
        raise ConfigError("cannot build an index over 0 vectors; encode some data first.")
    if kind != "auto" and kind not in INDEX_TYPES:
        if kind.lower() in INDEX_TYPES:
            kind = kind.lower()
        else:
            return _factory_plan(kind, n, dim)
    if kind != "auto":
        return INDEX_TYPES.get(kind).plan(n, dim)

    budget = parse_bytes(memory_budget) or default_memory_budget()
    automatic = sorted(
        (t for _, t in INDEX_TYPES.items() if t.auto_rank is not None),
        key=lambda t: (t.auto_rank, t.name),
    )
    for t in automatic:
        plan = t.auto_plan(n, dim, budget, target_recall)
        if plan is not None:
            return plan
    smallest = min(automatic, key=lambda t: t.smallest(n, dim))
    raise ConfigError(
        f"memory budget {format_bytes(budget)} is too small for {n} vectors of dimension {dim}: "
        f"the smallest index ({smallest.description}) needs about "
        f"{format_bytes(smallest.smallest(n, dim))}. Index fewer vectors",
        Fix(", or raise ", Arg("memory_budget", ..., py="...", cli="SIZE")),
        ".",
    )
