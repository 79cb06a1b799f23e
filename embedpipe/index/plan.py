"""Choosing an index: named kinds, FAISS factory strings, and ``auto`` from N, dim and memory.

``auto`` picks, in order:

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

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

import faiss

from ..errors import ConfigError

KINDS: dict[str, str] = {
    "auto": "choose from N, dimension and the memory budget (see embedpipe.index.plan)",
    "flat": "exact brute force (Flat)",
    "ivf": "inverted file, full vectors (IVF-Flat)",
    "ivfsq": "inverted file, 8-bit scalar-quantised vectors (IVF-SQ8)",
    "ivfpq": "inverted file, product-quantised vectors (IVF-PQ)",
    "hnsw": "graph index (HNSW32)",
}
FLAT_MAX_CELLS = 4_000_000
MIN_POINTS_PER_LIST = 39
TRAIN_POINTS_PER_LIST = 50
HNSW_M = 32
ID_BYTES = 8  # an inverted list stores one int64 id per vector

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


@dataclass(frozen=True)
class IndexPlan:
    """What to build.

    Attributes
    ----------
    kind
        One of :data:`KINDS` (never ``"auto"``), or ``"factory"`` for a raw factory string.
    factory
        The FAISS ``index_factory`` string.
    n_train
        Rows to train on (0: the index needs no training).
    bytes_estimate
        Expected size of the index in memory.
    reason
        Why this plan (for ``auto``), printed by the CLI and kept in the index metadata.
    """

    kind: str
    factory: str
    n_train: int
    bytes_estimate: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def n_lists(n: int) -> int:
    """Inverted lists for ``n`` vectors: the power of two nearest 2·√n, with ≥ 2 × 39 points per
    list (so that training keeps FAISS's 39 per list after up to half the rows are held out)."""
    target = 2.0 * math.sqrt(max(n, 1))
    p = 2 ** round(math.log2(target))
    while p > 1 and n // p < 2 * MIN_POINTS_PER_LIST:
        p //= 2
    return max(1, int(p))


def _n_train(n: int, nlist: int) -> int:
    return int(min(n, max(10_000, TRAIN_POINTS_PER_LIST * nlist)))


def _pq_sizes(dim: int) -> list[int]:
    """Sub-quantizer counts for ``dim``: divisors leaving ≥ 4 dims per sub-vector (narrower
    ones train slowly for little recall), largest first."""
    return [m for m in range(dim // 4, 0, -1) if dim % m == 0]


def _estimate(kind: str, n: int, dim: int, nlist: int, m: int = 0) -> int:
    centroids = nlist * dim * 4
    if kind == "flat":
        return n * dim * 4
    if kind == "ivf":
        return n * (dim * 4 + ID_BYTES) + centroids
    if kind == "ivfsq":
        return n * (dim + ID_BYTES) + centroids + 2 * dim * 4
    if kind == "ivfpq":
        return n * (m + ID_BYTES) + centroids + 256 * dim * 4
    if kind == "hnsw":
        return n * (dim * 4 + 2 * HNSW_M * 4 + 16)
    return 0


def _fmt_bytes(b: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if b < 1000 or unit == "TB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.1f} {unit}"
        b /= 1000
    return f"{b:.1f} TB"


def _named(kind: str, n: int, dim: int, m: int | None = None) -> IndexPlan:
    nlist = n_lists(n)
    if kind == "flat":
        return IndexPlan("flat", "Flat", 0, _estimate("flat", n, dim, 0), "exact search")
    if kind == "hnsw":
        return IndexPlan(
            "hnsw",
            f"HNSW{HNSW_M}",
            0,
            _estimate("hnsw", n, dim, 0),
            "graph index, efConstruction 128",
        )
    if kind == "ivf":
        return IndexPlan(
            "ivf",
            f"IVF{nlist},Flat",
            _n_train(n, nlist),
            _estimate("ivf", n, dim, nlist),
            f"{nlist} lists",
        )
    if kind == "ivfsq":
        return IndexPlan(
            "ivfsq",
            f"IVF{nlist},SQ8",
            _n_train(n, nlist),
            _estimate("ivfsq", n, dim, nlist),
            f"{nlist} lists, 8-bit codes",
        )
    if kind == "ivfpq":
        sizes = _pq_sizes(dim)
        if not sizes:
            raise ConfigError(f"IVF-PQ needs a dimension ≥ 4; this data has {dim}.")
        m = m or next((s for s in sizes if s <= 64), sizes[-1])
        return IndexPlan(
            "ivfpq",
            f"IVF{nlist},PQ{m}x8",
            _n_train(n, nlist),
            _estimate("ivfpq", n, dim, nlist, m),
            f"{nlist} lists, {m} bytes per vector",
        )
    raise AssertionError(kind)


def _factory_plan(factory: str, n: int, dim: int) -> IndexPlan:
    try:
        index = faiss.index_factory(dim, factory)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1][:200]
        raise ConfigError(
            f"kind {factory!r} is neither a known kind ({', '.join(KINDS)}) nor a valid FAISS "
            f"factory string for dimension {dim} ({first}). Examples: 'IVF1024,Flat', "
            "'IVF4096,PQ48x8', 'HNSW32', 'OPQ32,IVF1024,PQ32'."
        ) from None
    n_train = 0
    if not index.is_trained:
        try:
            n_train = _n_train(n, int(faiss.extract_index_ivf(index).nlist))
        except RuntimeError:
            n_train = int(min(n, 50_000))
    return IndexPlan("factory", factory, n_train, 0, "factory string")


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
    if kind != "auto" and kind not in KINDS:
        if kind.lower() in KINDS:
            kind = kind.lower()
        else:
            return _factory_plan(kind, n, dim)
    if kind != "auto":
        return _named(kind, n, dim)

    budget = parse_bytes(memory_budget) or default_memory_budget()
    raw = _estimate("flat", n, dim, 0)
    if target_recall is not None and target_recall >= 1.0:
        p = _named("flat", n, dim)
        return IndexPlan(
            p.kind, p.factory, 0, p.bytes_estimate, "target recall 1.0 needs exact search"
        )
    if n * dim <= FLAT_MAX_CELLS and raw <= budget:
        p = _named("flat", n, dim)
        return IndexPlan(
            p.kind,
            p.factory,
            0,
            p.bytes_estimate,
            f"small data ({n} x {dim}): exact search is fast enough",
        )
    for k in ("ivf", "ivfsq"):
        p = _named(k, n, dim)
        if p.bytes_estimate <= budget:
            what = "raw vectors fit" if k == "ivf" else "raw vectors do not fit, 8-bit codes fit"
            return IndexPlan(
                p.kind,
                p.factory,
                p.n_train,
                p.bytes_estimate,
                f"{what} in the memory budget of {_fmt_bytes(budget)}; {p.reason}",
            )
    for m in _pq_sizes(dim):
        p = _named("ivfpq", n, dim, m)
        if p.bytes_estimate <= budget:
            return IndexPlan(
                p.kind,
                p.factory,
                p.n_train,
                p.bytes_estimate,
                f"only product-quantised codes fit in the memory budget of {_fmt_bytes(budget)}; {p.reason}",
            )
    smallest = _named("ivfpq", n, dim, _pq_sizes(dim)[-1]).bytes_estimate if _pq_sizes(dim) else raw
    raise ConfigError(
        f"memory budget {_fmt_bytes(budget)} is too small for {n} vectors of dimension {dim}: "
        f"the smallest index (IVF-PQ) needs about {_fmt_bytes(smallest)}. Raise memory_budget "
        "(CLI: --memory-budget) or index fewer vectors."
    )
