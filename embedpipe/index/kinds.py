"""Index types: one registry entry per kind of FAISS index, each carrying its own hooks.

An :class:`IndexType` knows its FAISS factory string for ``n`` vectors of dimension ``dim``,
its memory estimate (which ``auto`` compares with the budget), whether ``auto`` may choose it
and when, its search-time parameter (:class:`~embedpipe.index.params.SearchParam`), whether its
vectors are compressed (an exact re-rank from the store's float features then lifts its recall
cap), the build-time tweaks it needs, and a one-line description for the CLI's help. Generic
code (``plan_index``, ``build_index``, the tuning, the kNN head) asks these hooks and never
branches on a kind's name. A new kind is one new :class:`IndexType` registered with
:func:`register_index_type`, here or in a plugin (entry-point group ``embedpipe.indexes``).

This module imports no FAISS at import time (the CLI builds its help from it).

Examples
--------
>>> ivf = INDEX_TYPES.get("ivf")
>>> ivf.plan(20_000, 384).factory
'IVF256,Flat'
>>> ivf.search_param.name, INDEX_TYPES.get("ivfpq").compressed
('nprobe', True)
>>> INDEX_TYPES.get("ivff")
Traceback (most recent call last):
...
embedpipe.errors.NotFoundError: unknown index type 'ivff'; did you mean 'ivf'? Known: binary, flat, hnsw, int8, ivf, ivfpq, ivfsq.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..registry import Registry
from ..units import format_bytes
from .params import EF_SEARCH, NPROBE, SearchParam

if TYPE_CHECKING:
    import faiss

FLAT_MAX_CELLS = 4_000_000
MIN_POINTS_PER_LIST = 39
TRAIN_POINTS_PER_LIST = 50
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 128
ID_BYTES = 8  # an inverted list stores one int64 id per vector


@dataclass(frozen=True)
class IndexPlan:
    """What to build.

    Attributes
    ----------
    kind
        A registered index type (never ``"auto"``), or ``"factory"`` for a raw factory string.
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


def n_lists(n: int) -> int:
    """Inverted lists for ``n`` vectors: the power of two nearest 2·√n, with ≥ 2 × 39 points per
    list (so that training keeps FAISS's 39 per list after up to half the rows are held out).

    Examples
    --------
    >>> n_lists(20_000), n_lists(1_000_000)
    (256, 2048)
    """
    target = 2.0 * math.sqrt(max(n, 1))
    p = 2 ** round(math.log2(target))
    while p > 1 and n // p < 2 * MIN_POINTS_PER_LIST:
        p //= 2
    return max(1, int(p))


def n_train(n: int, nlist: int) -> int:
    """Training rows for ``nlist`` lists: 50 per list, at least 10,000 (at most ``n``)."""
    return int(min(n, max(10_000, TRAIN_POINTS_PER_LIST * nlist)))


def pq_sizes(dim: int) -> list[int]:
    """Sub-quantizer counts for ``dim``: divisors leaving ≥ 4 dims per sub-vector (narrower
    ones train slowly for little recall), largest first.

    Examples
    --------
    >>> pq_sizes(16)
    [4, 2, 1]
    """
    return [m for m in range(dim // 4, 0, -1) if dim % m == 0]


class IndexType:
    """One kind of index and its hooks; subclass it and register an instance.

    Attributes
    ----------
    name
        The kind's name (``--kind NAME``).
    description
        One line for ``--help`` and error messages.
    search_param
        The search-time knob that trades speed for recall, or ``None`` (exhaustive search).
    compressed
        True when the index keeps lossy codes, not the vectors: recall is capped unless the
        search re-ranks candidates exactly from the store's float features (``rerank``).
    auto_rank
        Order in which ``auto`` considers the kind (lower first); ``None``: never automatic.
    default_rerank
        Candidates re-ranked exactly per query when the user does not say (0: none).
    """

    name: str = ""
    description: str = ""
    search_param: SearchParam | None = None
    compressed: bool = False
    auto_rank: int | None = None
    default_rerank: int = 0

    # ---- hooks ------------------------------------------------------------------------------
    def factory(self, n: int, dim: int, **options: Any) -> str:
        """The FAISS factory string for ``n`` vectors of dimension ``dim``."""
        raise NotImplementedError

    def estimate(self, n: int, dim: int, **options: Any) -> int:
        """Expected bytes in memory."""
        raise NotImplementedError

    def n_train(self, n: int, dim: int, **options: Any) -> int:
        """Rows to train on (0: no training)."""
        return 0

    def reason(self, n: int, dim: int, **options: Any) -> str:
        """What the plan is, in a few words."""
        return self.description

    def auto_plan(
        self, n: int, dim: int, budget: int, target_recall: float | None
    ) -> IndexPlan | None:
        """The plan ``auto`` would take for this kind, or ``None`` when it does not fit.

        The default takes the kind when its estimate fits the budget.
        """
        p = self.plan(n, dim)
        return p if p.bytes_estimate <= budget else None

    def smallest(self, n: int, dim: int) -> int:
        """The least memory this kind can take (for the "budget too small" message)."""
        return self.estimate(n, dim)

    def prepare(self, index: faiss.Index) -> None:
        """Adjust a freshly made FAISS index before training (build-effort settings)."""

    def faiss_metric(self, metric: int) -> int:
        """The FAISS metric to make the index with, given the one the vectors are compared
        by (a kind that compares codes its own way, such as Hamming, overrides it)."""
        return metric

    # ---- generic ----------------------------------------------------------------------------
    def plan(self, n: int, dim: int, **options: Any) -> IndexPlan:
        """The :class:`IndexPlan` of this kind for ``n`` × ``dim``."""
        return IndexPlan(
            self.name,
            self.factory(n, dim, **options),
            self.n_train(n, dim, **options),
            self.estimate(n, dim, **options),
            self.reason(n, dim, **options),
        )

    def new_index(self, dim: int, metric: int, n: int, **options: Any) -> faiss.Index:
        """An empty (untrained) FAISS index of this kind, prepared (see :meth:`prepare`).

        ``metric`` is a FAISS metric constant; ``options`` go to :meth:`factory` (``nlist``,
        ``m``…).
        """
        import faiss

        index = faiss.index_factory(dim, self.factory(n, dim, **options), self.faiss_metric(metric))
        self.prepare(index)
        return index

    def __repr__(self) -> str:
        return f"IndexType({self.name!r})"


INDEX_TYPES: Registry[IndexType] = Registry("index type", group="embedpipe.indexes")


def register_index_type(cls: type[IndexType]) -> type[IndexType]:
    """Class decorator: register an instance of an :class:`IndexType` subclass under its name.

    Examples
    --------
    >>> @register_index_type
    ... class Flat2(FlatType):
    ...     name = "flat2"
    ...     description = "another exact index"
    >>> INDEX_TYPES.get("flat2").plan(10, 4).factory
    'Flat'
    >>> INDEX_TYPES.unregister("flat2")
    """
    INDEX_TYPES.register(cls.name, cls())
    return cls


class _KindsView(Mapping[str, str]):
    """``{"auto": ..., kind: description}`` over the live registry (plugins included)."""

    def _items(self) -> dict[str, str]:
        out = {"auto": "choose from N, dimension and the memory budget (see embedpipe.index.plan)"}
        for name, t in INDEX_TYPES.items():
            out[name] = t.description
        return out

    def __getitem__(self, key: str) -> str:
        return self._items()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())

    def __repr__(self) -> str:
        return repr(self._items())


#: The ``--kind`` names and their descriptions, ``auto`` first (a live view of the registry).
INDEX_KINDS: Mapping[str, str] = _KindsView()


def kinds_help() -> str:
    """``"auto, binary, flat, …, or a FAISS factory string"`` for ``--kind``'s help."""
    return ", ".join(INDEX_KINDS) + " or a FAISS factory string (e.g. 'IVF1024,PQ32x8')"


# ---- the built-in kinds -----------------------------------------------------------------------
@register_index_type
class FlatType(IndexType):
    name = "flat"
    description = "exact brute force (Flat)"
    auto_rank = 0

    def factory(self, n: int, dim: int, **options: Any) -> str:
        return "Flat"

    def estimate(self, n: int, dim: int, **options: Any) -> int:
        return n * dim * 4

    def reason(self, n: int, dim: int, **options: Any) -> str:
        return "exact search"

    def auto_plan(
        self, n: int, dim: int, budget: int, target_recall: float | None
    ) -> IndexPlan | None:
        p = self.plan(n, dim)
        if target_recall is not None and target_recall >= 1.0:
            return IndexPlan(
                p.kind, p.factory, 0, p.bytes_estimate, "target recall 1.0 needs exact search"
            )
        if n * dim <= FLAT_MAX_CELLS and p.bytes_estimate <= budget:
            return IndexPlan(
                p.kind,
                p.factory,
                0,
                p.bytes_estimate,
                f"small data ({n} x {dim}): exact search is fast enough",
            )
        return None


class _IVFType(IndexType):
    """Inverted-file kinds: ``IVF{nlist},{codes}``, trained on a sample, tuned by ``nprobe``."""

    search_param = NPROBE
    codes = "Flat"
    fits_text = ""
    #: Bytes of one dimension of a vector's code, and floats per dimension beside the lists
    #: (a scalar quantiser's ranges, a product quantiser's codebooks).
    code_bytes_per_dim = 4
    extra_floats_per_dim = 0
    #: What the plan's reason adds after the number of lists.
    codes_text = ""

    def nlist(self, n: int, options: dict[str, Any]) -> int:
        return int(options.get("nlist") or n_lists(n))

    def factory(self, n: int, dim: int, **options: Any) -> str:
        return f"IVF{self.nlist(n, options)},{self.codes}"

    def n_train(self, n: int, dim: int, **options: Any) -> int:
        return n_train(n, self.nlist(n, options))

    def code_bytes(self, dim: int, options: dict[str, Any]) -> int:
        return dim * self.code_bytes_per_dim

    def extra_bytes(self, dim: int) -> int:
        return self.extra_floats_per_dim * dim * 4

    def reason(self, n: int, dim: int, **options: Any) -> str:
        return f"{self.nlist(n, options)} lists{self.codes_text}"

    def estimate(self, n: int, dim: int, **options: Any) -> int:
        centroids = self.nlist(n, options) * dim * 4
        return n * (self.code_bytes(dim, options) + ID_BYTES) + centroids + self.extra_bytes(dim)

    def auto_plan(
        self, n: int, dim: int, budget: int, target_recall: float | None
    ) -> IndexPlan | None:
        p = self.plan(n, dim)
        if p.bytes_estimate > budget:
            return None
        return IndexPlan(
            p.kind,
            p.factory,
            p.n_train,
            p.bytes_estimate,
            f"{self.fits_text} in the memory budget of {format_bytes(budget)}; {p.reason}",
        )

    def new_index(self, dim: int, metric: int, n: int, **options: Any) -> faiss.Index:
        import faiss

        index = super().new_index(dim, metric, n, **options)
        nlist = self.nlist(n, options)
        # no "please provide at least 39 training points" warning on tiny data
        faiss.extract_index_ivf(index).cp.min_points_per_centroid = min(39, max(1, n // nlist))
        return index

    def prepare(self, index: faiss.Index) -> None:
        import faiss

        # Skip IVF-PQ's polysemous training: slow (minutes) and only used by Hamming-filtered
        # search, which embedpipe never turns on.
        try:
            ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
        except RuntimeError:  # not an IVF index (prepare hooks also run on factory strings)
            return
        if hasattr(ivf, "do_polysemous_training"):
            ivf.do_polysemous_training = False


@register_index_type
class IVFFlatType(_IVFType):
    name = "ivf"
    description = "inverted file, full vectors (IVF-Flat)"
    auto_rank = 10
    fits_text = "raw vectors fit"


@register_index_type
class IVFSQ8Type(_IVFType):
    name = "ivfsq"
    description = "inverted file, 8-bit scalar-quantised vectors (IVF-SQ8)"
    codes = "SQ8"
    compressed = True
    auto_rank = 20
    fits_text = "raw vectors do not fit, 8-bit codes fit"
    code_bytes_per_dim = 1
    extra_floats_per_dim = 2
    codes_text = ", 8-bit codes"


@register_index_type
class IVFPQType(_IVFType):
    name = "ivfpq"
    description = "inverted file, product-quantised vectors (IVF-PQ)"
    compressed = True
    auto_rank = 30

    def m(self, dim: int, options: dict[str, Any]) -> int:
        sizes = pq_sizes(dim)
        if not sizes:
            raise ConfigError(f"IVF-PQ needs a dimension ≥ 4; this data has {dim}.")
        return int(options.get("m") or next((s for s in sizes if s <= 64), sizes[-1]))

    def factory(self, n: int, dim: int, **options: Any) -> str:
        return f"IVF{self.nlist(n, options)},PQ{self.m(dim, options)}x8"

    def code_bytes(self, dim: int, options: dict[str, Any]) -> int:
        return self.m(dim, options)

    extra_floats_per_dim = 256

    def reason(self, n: int, dim: int, **options: Any) -> str:
        return f"{self.nlist(n, options)} lists, {self.m(dim, options)} bytes per vector"

    def auto_plan(
        self, n: int, dim: int, budget: int, target_recall: float | None
    ) -> IndexPlan | None:
        for m in pq_sizes(dim):  # the largest codes that fit
            p = self.plan(n, dim, m=m)
            if p.bytes_estimate <= budget:
                return IndexPlan(
                    p.kind,
                    p.factory,
                    p.n_train,
                    p.bytes_estimate,
                    "only product-quantised codes fit in the memory budget of "
                    f"{format_bytes(budget)}; {p.reason}",
                )
        return None

    def smallest(self, n: int, dim: int) -> int:
        sizes = pq_sizes(dim)
        return self.estimate(n, dim, m=sizes[-1]) if sizes else n * dim * 4


@register_index_type
class HNSWType(IndexType):
    """HNSW graphs, built with efConstruction 128 instead of FAISS's 40.

    Measured on 300k clustered 384-d vectors (1000 make_blobs clusters): efConstruction 40
    tops out at recall@10 0.98 with efSearch 1024 (200 queries/s); 120 gives 0.988 at
    efSearch 64 (4,000 queries/s) for 1.35x the build time. At 40 the graph barely links
    well-separated clusters, and on 1M vectors recall stays near 0.87 whatever efSearch.

    Not chosen by ``auto``: on large N its graph takes far longer to build than IVF's k-means
    on a sample, and it cannot be trained once and filled out-of-core as cheaply.
    """

    name = "hnsw"
    description = "graph index (HNSW32)"
    search_param = EF_SEARCH

    def m(self, options: dict[str, Any]) -> int:
        return int(options.get("m") or HNSW_M)

    def factory(self, n: int, dim: int, **options: Any) -> str:
        return f"HNSW{self.m(options)}"

    def estimate(self, n: int, dim: int, **options: Any) -> int:
        return n * (dim * 4 + 2 * self.m(options) * 4 + 16)

    def reason(self, n: int, dim: int, **options: Any) -> str:
        return f"graph index, efConstruction {HNSW_EF_CONSTRUCTION}"

    def prepare(self, index: faiss.Index) -> None:
        from .params import hnsw_of

        hnsw = hnsw_of(index)
        if hnsw is not None:
            hnsw.hnsw.efConstruction = max(int(hnsw.hnsw.efConstruction), HNSW_EF_CONSTRUCTION)


@register_index_type
class Int8Type(IndexType):
    """8-bit scalar quantisation of every dimension (FAISS ``SQ8``), exhaustive search: a
    quarter of Flat's memory; exact re-ranking from the stores (``rerank``) lifts what the
    codes lose."""

    name = "int8"
    description = "8-bit scalar codes (SQ8), exhaustive; 1/4 of Flat's memory"
    compressed = True

    def factory(self, n: int, dim: int, **options: Any) -> str:
        return "SQ8"

    def n_train(self, n: int, dim: int, **options: Any) -> int:
        return int(min(n, 50_000))

    def estimate(self, n: int, dim: int, **options: Any) -> int:
        return n * dim + 2 * dim * 4

    def reason(self, n: int, dim: int, **options: Any) -> str:
        return f"{dim} bytes per vector (8-bit codes)"


@register_index_type
class BinaryType(IndexType):
    """One bit per dimension (FAISS ``LSH``), exhaustive Hamming search, then an exact re-rank
    of the top candidates read from the store (binary quantisation with rescoring).

    The bits are the signs of the vectors less per-dimension medians learnt on a sample
    (``LSH{d}t``: the codes alone), or, when a random rotation costs little beside the codes
    (``d² × 4`` bytes ≤ a quarter of them) or fewer than 256 dimensions need more bits, of
    randomly rotated vectors (``LSH{bits}r``). Measured on MiniLM features of Rotten Tomatoes
    (10,246 rows): 400 re-ranked candidates keep recall@10 ≈ 0.97 (200: 0.93, 100: 0.86)."""

    name = "binary"
    description = "1 bit per dimension, Hamming search (LSH), exact re-rank of 400 candidates"
    compressed = True
    default_rerank = 400
    MIN_BITS = 256

    def bits(self, dim: int) -> int:
        return max(dim, self.MIN_BITS)

    def rotated(self, n: int, dim: int) -> bool:
        bits = self.bits(dim)
        return bits != dim or dim * dim * 4 * 4 <= n * bits // 8

    def factory(self, n: int, dim: int, **options: Any) -> str:
        return f"LSH{self.bits(dim)}{'r' if self.rotated(n, dim) else 't'}"

    def n_train(self, n: int, dim: int, **options: Any) -> int:
        # the medians are learnt; a random rotation needs no training
        return 0 if self.rotated(n, dim) else int(min(n, 50_000))

    def estimate(self, n: int, dim: int, **options: Any) -> int:
        extra = dim * self.bits(dim) * 4 if self.rotated(n, dim) else dim * 4
        return n * (self.bits(dim) // 8) + extra

    def reason(self, n: int, dim: int, **options: Any) -> str:
        how = "of rotated vectors" if self.rotated(n, dim) else "against per-dimension medians"
        return f"{self.bits(dim) // 8} bytes per vector (sign bits {how})"

    def faiss_metric(self, metric: int) -> int:
        import faiss

        return int(faiss.METRIC_L2)  # FAISS's LSH takes L2 and compares sign bits (Hamming)


def type_of(kind: str) -> IndexType | None:
    """The registered type of a plan's ``kind`` (``None`` for raw factory strings)."""
    return INDEX_TYPES.get(kind) if kind in INDEX_TYPES else None
